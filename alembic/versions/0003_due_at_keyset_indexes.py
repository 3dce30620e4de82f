"""Expression indexes for keyset pages on due_at (nulls last) on PostgreSQL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("deleted_at IS NULL")
INDEXES = {
    "ix_todos_owner_id_due_at_last_id": "COALESCE(due_at, 'infinity'::timestamptz)",
    "ix_todos_owner_id_due_at_first_id": "COALESCE(due_at, '-infinity'::timestamptz)",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, expression in INDEXES.items():
        op.create_index(
            name, "todos", ["owner_id", sa.text(expression), "id"], postgresql_where=LIVE
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.drop_index(name, table_name="todos")
