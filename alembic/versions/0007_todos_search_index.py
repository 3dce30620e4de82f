"""Trigram indexes for `q` on PostgreSQL: a case-insensitive substring of the title or the
description (`ILIKE '%…%'`) is looked up in them instead of read row by row, so a search that
matches nothing costs no more than one that matches a page. Nothing on SQLite.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {"ix_todos_title_trgm": "title", "ix_todos_description_trgm": "description"}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in INDEXES.items():
        op.create_index(
            name,
            "todos",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )


def downgrade() -> None:
    # The extension stays: other objects (or another database's user) may rely on it.
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.drop_index(name, table_name="todos")
