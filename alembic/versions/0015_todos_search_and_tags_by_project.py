"""`q` and `tag` looked up within the projects in scope (PostgreSQL): the trigram indexes and
the tags index become GIN indexes on (project_id, …) with btree_gin, so a search or a tag filter
reads the postings of the caller's projects only, not those of every todo in the database
that shares a trigram or the tag. Nothing on SQLite.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# new index: (its text column, the index on that column alone it replaces)
TRIGRAMS = {
    "ix_todos_project_id_title_trgm": ("title", "ix_todos_title_trgm"),
    "ix_todos_project_id_description_trgm": ("description", "ix_todos_description_trgm"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Trusted since PostgreSQL 13, like pg_trgm: the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    for name, (column, old) in TRIGRAMS.items():
        op.create_index(
            name,
            "todos",
            ["project_id", column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )
        op.drop_index(old, table_name="todos")
    op.create_index(
        "ix_todos_project_id_tags", "todos", ["project_id", "tags"], postgresql_using="gin"
    )
    op.drop_index("ix_todos_tags", table_name="todos")


def downgrade() -> None:
    # The extension stays: other objects (or another database's user) may rely on it.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index("ix_todos_tags", "todos", ["tags"], postgresql_using="gin")
    op.drop_index("ix_todos_project_id_tags", table_name="todos")
    for name, (column, old) in TRIGRAMS.items():
        op.create_index(
            old,
            "todos",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )
        op.drop_index(name, table_name="todos")
