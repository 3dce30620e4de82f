"""Projects, memberships, invitations and activity; every todo moves into a project.

Every existing account gets its Inbox (made as of the account's creation, so it lists first)
with its owner's membership, and its todos move there (`created_by` is their owner). The
todos' keyset indexes lead with the project instead of the owner: a list across a member's
projects merges one index range per project (repositories/todos.py).

Downgrade drops the projects and what hangs on them; each todo stays with its project's owner
(`owner_id`, which a move keeps equal to the project's owner), the owner indexes come back.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-12
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("deleted_at IS NULL")
KEYSET_COLUMNS = ("created_at", "updated_at", "due_at", "priority", "title")
DUE_AT_NULLS_LAST = {
    "last": "COALESCE(due_at, 'infinity'::timestamptz)",
    "first": "COALESCE(due_at, '-infinity'::timestamptz)",
}
BATCH = 1000


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _create_tables() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("color", sa.String(7), nullable=True),
        sa.Column("is_inbox", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_projects_owner_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
    )
    op.create_index("ix_projects_owner_id", "projects", ["owner_id"])
    op.create_index(
        "uq_projects_owner_id_inbox",
        "projects",
        ["owner_id"],
        unique=True,
        postgresql_where=sa.text("is_inbox"),
        sqlite_where=sa.text("is_inbox"),
    )
    op.create_table(
        "memberships",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        _timestamp("added_at"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_memberships_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_memberships_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", name="pk_memberships"),
    )
    op.create_index(
        "ix_memberships_user_id_added_at_project_id",
        "memberships",
        ["user_id", "added_at", "project_id"],
    )
    op.create_table(
        "invitations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        _timestamp("accepted_at", nullable=True),
        sa.Column("accepted_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_invitations_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name="fk_invitations_created_by_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_invitations"),
        sa.UniqueConstraint("token_hash", name="uq_invitations_token_hash"),
    )
    op.create_index("ix_invitations_expires_at", "invitations", ["expires_at"])
    op.create_index(
        "ix_invitations_project_id_created_at_id", "invitations", ["project_id", "created_at", "id"]
    )
    op.create_index("ix_invitations_created_by", "invitations", ["created_by"])
    op.create_table(
        "activity",
        sa.Column("txid", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        _timestamp("at"),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("todo_id", sa.Uuid(), nullable=True),
        sa.Column("member_id", sa.Uuid(), nullable=True),
        sa.Column("previous_project_id", sa.Uuid(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("txid", "n", name="pk_activity"),
    )
    op.create_index("ix_activity_project_id_txid_n", "activity", ["project_id", "txid", "n"])
    for column in ("todo_id", "previous_project_id", "member_id"):
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"ix_activity_{column}_txid_n",
            "activity",
            [column, "txid", "n"],
            postgresql_where=where,
            sqlite_where=where,
        )


def _keyset_indexes(lead: str, *, postgres: bool) -> dict[str, list[str | sa.TextClause]]:
    indexes: dict[str, list[str | sa.TextClause]] = {
        f"ix_todos_{lead}_{column}_id": [lead, column, "id"] for column in KEYSET_COLUMNS
    }
    if postgres:
        for name, expression in DUE_AT_NULLS_LAST.items():
            indexes[f"ix_todos_{lead}_due_at_{name}_id"] = [lead, sa.text(expression), "id"]
        if lead == "project_id":  # priority, then due date: a list sorted so, per priority
            indexes["ix_todos_project_id_priority_due_at_last_id"] = [
                lead,
                "priority",
                sa.text(DUE_AT_NULLS_LAST["last"]),
                "id",
            ]
    return indexes


def _create_keyset_indexes(lead: str, *, postgres: bool) -> None:
    for name, columns in _keyset_indexes(lead, postgres=postgres).items():
        op.create_index(name, "todos", columns, postgresql_where=LIVE, sqlite_where=LIVE)


def _drop_keyset_indexes(lead: str, *, postgres: bool) -> None:
    for name in _keyset_indexes(lead, postgres=postgres):
        op.drop_index(name, table_name="todos")


def _open_inboxes() -> None:
    """An Inbox, and its owner's membership, for every account; its todos move there."""
    bind = op.get_bind()
    users = sa.table(
        "users", sa.column("id", sa.Uuid()), sa.column("created_at", sa.DateTime(timezone=True))
    )
    projects = sa.table(
        "projects",
        *(sa.column(name) for name in ("name", "description", "color", "is_inbox", "version")),
        sa.column("id", sa.Uuid()),
        sa.column("owner_id", sa.Uuid()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    memberships = sa.table(
        "memberships",
        sa.column("project_id", sa.Uuid()),
        sa.column("user_id", sa.Uuid()),
        sa.column("role", sa.String()),
        sa.column("added_at", sa.DateTime(timezone=True)),
    )
    accounts = bind.execute(sa.select(users.c.id, users.c.created_at)).all()
    for start in range(0, len(accounts), BATCH):
        inboxes = [(uuid.uuid4(), user_id, created) for user_id, created in accounts[start:][:BATCH]]
        bind.execute(
            sa.insert(projects),
            [
                {
                    "id": project_id,
                    "owner_id": user_id,
                    "name": "Inbox",
                    "description": "",
                    "color": None,
                    "is_inbox": True,
                    "created_at": created,
                    "updated_at": created,
                    "version": 1,
                }
                for project_id, user_id, created in inboxes
            ],
        )
        bind.execute(
            sa.insert(memberships),
            [
                {"project_id": project_id, "user_id": user_id, "role": "owner", "added_at": created}
                for project_id, user_id, created in inboxes
            ],
        )
    todos = sa.table(
        "todos",
        sa.column("owner_id", sa.Uuid()),
        sa.column("project_id", sa.Uuid()),
        sa.column("created_by", sa.Uuid()),
    )
    inbox = (
        sa.select(projects.c.id)
        .where(projects.c.owner_id == todos.c.owner_id, projects.c.is_inbox.is_(True))
        .scalar_subquery()
    )
    bind.execute(sa.update(todos).values(project_id=inbox, created_by=todos.c.owner_id))


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _create_tables()
    _drop_keyset_indexes("owner_id", postgres=postgres)
    op.drop_index("ix_todos_created_at_id", table_name="todos")
    with op.batch_alter_table("todos") as batch:
        batch.add_column(sa.Column("project_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("created_by", sa.Uuid(), nullable=True))
    _open_inboxes()
    with op.batch_alter_table("todos") as batch:
        batch.alter_column("project_id", existing_type=sa.Uuid(), nullable=False)
        batch.alter_column("created_by", existing_type=sa.Uuid(), nullable=False)
        batch.create_foreign_key(
            "fk_todos_project_id_projects",
            "projects",
            ["project_id"],
            ["id"],
            ondelete="CASCADE",
        )
    _create_keyset_indexes("project_id", postgres=postgres)
    op.create_index("ix_todos_project_id_deleted_at", "todos", ["project_id", "deleted_at"])


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_todos_project_id_deleted_at", table_name="todos")
    _drop_keyset_indexes("project_id", postgres=postgres)
    with op.batch_alter_table("todos") as batch:
        batch.drop_constraint("fk_todos_project_id_projects", type_="foreignkey")
        batch.drop_column("created_by")
        batch.drop_column("project_id")
    _create_keyset_indexes("owner_id", postgres=postgres)
    op.create_index(
        "ix_todos_created_at_id",
        "todos",
        ["created_at", "id"],
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    op.drop_table("activity")
    op.drop_table("invitations")
    op.drop_table("memberships")
    op.drop_table("projects")
