"""Todos, complete: description, ranked priority, due date, tags, completed_at, version.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("deleted_at IS NULL")
KEYSET_COLUMNS = ("updated_at", "due_at", "priority", "title")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    tags_type = postgresql.ARRAY(sa.String(32)) if postgres else sa.JSON()
    with op.batch_alter_table("todos") as batch:
        batch.add_column(sa.Column("description", sa.Text(), server_default="", nullable=False))
        batch.add_column(
            sa.Column("priority", sa.SmallInteger(), server_default="1", nullable=False)
        )
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column(
                "tags",
                tags_type,
                server_default=sa.text("'{}'" if postgres else "'[]'"),
                nullable=False,
            )
        )
        batch.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    for column in KEYSET_COLUMNS:
        op.create_index(
            f"ix_todos_owner_id_{column}_id",
            "todos",
            ["owner_id", column, "id"],
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
    if postgres:
        op.create_index("ix_todos_tags", "todos", ["tags"], postgresql_using="gin")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_todos_tags", table_name="todos")
    for column in KEYSET_COLUMNS:
        op.drop_index(f"ix_todos_owner_id_{column}_id", table_name="todos")
    with op.batch_alter_table("todos") as batch:
        for column in ("version", "completed_at", "tags", "due_at", "priority", "description"):
            batch.drop_column(column)
