"""An index of revoked refresh tokens: the sessions ended lately, read when the revocation
list refills from the database (an emptied Redis, a new process).

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_refresh_tokens_revoked_at"
REVOKED = sa.text("revoked_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        NAME, "refresh_tokens", ["revoked_at"], postgresql_where=REVOKED, sqlite_where=REVOKED
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="refresh_tokens")
