"""Indexes for sync and live events.

- `activity (txid, n) WHERE type = 'project.deleted'`: a reader's sync looks for the project
  deletions addressed to it after its position; without this, that range was every entry
  written since (anyone's).
- `todos (project_id, id)`: a full sync (and a project just joined) walks a project's todos,
  the trash included, by id, a page at a time.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DELETED = sa.text("type = 'project.deleted'")


def upgrade() -> None:
    op.create_index(
        "ix_activity_deleted_txid_n",
        "activity",
        ["txid", "n"],
        postgresql_where=DELETED,
        sqlite_where=DELETED,
    )
    op.create_index("ix_todos_project_id_id", "todos", ["project_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_todos_project_id_id", table_name="todos")
    op.drop_index("ix_activity_deleted_txid_n", table_name="activity")
