"""Todos' tags lose their server default: the model never had one (the app writes tags on every
insert), so `alembic check`, now comparing server defaults, saw the two disagree. 0002 needed
the default only to fill the rows that were there before it; they keep their empty list.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tags_type(postgres: bool) -> sa.types.TypeEngine[Any]:
    return postgresql.ARRAY(sa.String(32)) if postgres else sa.JSON()


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("todos") as batch:
        batch.alter_column(
            "tags", existing_type=_tags_type(postgres), existing_nullable=False, server_default=None
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("todos") as batch:
        batch.alter_column(
            "tags",
            existing_type=_tags_type(postgres),
            existing_nullable=False,
            server_default=sa.text("'{}'" if postgres else "'[]'"),
        )
