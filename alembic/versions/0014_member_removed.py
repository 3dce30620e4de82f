"""A `member.removed` entry keeps the membership it ended: the role the member had and since
when (`activity.member_role`, `activity.member_added_at`), which its live event's Member shows
once the membership row is gone. Entries written before this have neither: their events carry
no Member.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("activity") as batch:
        batch.add_column(sa.Column("member_role", sa.String(16), nullable=True))
        batch.add_column(sa.Column("member_added_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("activity") as batch:
        batch.drop_column("member_added_at")
        batch.drop_column("member_role")
