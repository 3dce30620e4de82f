"""What the scheduled jobs need (application/maintenance.py).

- `todos.due_announced_for`: the due_at value a `todo.due` was recorded for. Todos already
  past their due date when this runs count as announced: the contract announces a due date
  when it passes, and these passed before there was anything to announce them (the first
  run would otherwise record a `todo.due` for every overdue todo ever made).
- `todos (due_at) WHERE <live, open, due, not announced for this due_at>`: the due job's
  range; a todo leaves it once announced, so the scan never rereads the announced ones.
- `todos (deleted_at) WHERE deleted_at IS NOT NULL`: the trash, oldest first, for the purge.
- `refresh_tokens (expires_at)`: the expired ones, for their clean-up.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRASHED = sa.text("deleted_at IS NOT NULL")
DUE_PENDING = sa.text(
    "deleted_at IS NULL AND NOT completed AND due_at IS NOT NULL"
    " AND (due_announced_for IS NULL OR due_announced_for <> due_at)"
)


def upgrade() -> None:
    with op.batch_alter_table("todos") as batch:
        batch.add_column(sa.Column("due_announced_for", sa.DateTime(timezone=True), nullable=True))
    # CURRENT_TIMESTAMP: UTC on SQLite (in the stored text's format), now() on PostgreSQL.
    op.execute(
        "UPDATE todos SET due_announced_for = due_at"
        " WHERE due_at IS NOT NULL AND due_at <= CURRENT_TIMESTAMP"
    )
    op.create_index(
        "ix_todos_due_at_pending",
        "todos",
        ["due_at"],
        postgresql_where=DUE_PENDING,
        sqlite_where=DUE_PENDING,
    )
    op.create_index(
        "ix_todos_deleted_at_trashed",
        "todos",
        ["deleted_at"],
        postgresql_where=TRASHED,
        sqlite_where=TRASHED,
    )
    op.create_index("ix_refresh_tokens_expires_at", "refresh_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_refresh_tokens_expires_at", table_name="refresh_tokens")
    op.drop_index("ix_todos_deleted_at_trashed", table_name="todos")
    op.drop_index("ix_todos_due_at_pending", table_name="todos")
    with op.batch_alter_table("todos") as batch:
        batch.drop_column("due_announced_for")
