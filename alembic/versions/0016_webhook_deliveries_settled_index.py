"""Settled webhook deliveries by creation (a partial index): what the clean-up job deletes once
they are older than WEBHOOK_DELIVERY_RETENTION_DAYS, the oldest first, without reading the rest.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTLED = sa.text("next_attempt_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_settled",
        "webhook_deliveries",
        ["created_at"],
        postgresql_where=SETTLED,
        sqlite_where=SETTLED,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_settled", table_name="webhook_deliveries")
