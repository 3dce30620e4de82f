"""Table models: the one description of the schema, and Alembic's autogenerate target."""

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.domain.projects import NAME_MAX_LENGTH
from app.domain.todos import TAG_MAX_LENGTH, TITLE_MAX_LENGTH
from app.domain.users import EMAIL_MAX_LENGTH, FULL_NAME_MAX_LENGTH

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (naive storage) as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Any:
        if dialect.name == "postgresql":
            return None  # aware already, and in UTC: the session time zone is UTC (db.py)
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Tags: a text[] with a GIN index on PostgreSQL ("has all of" is `tags @> :tags`); JSON on SQLite.
TAG_ARRAY = postgresql.ARRAY(sa.String(TAG_MAX_LENGTH))
TagList = sa.JSON().with_variant(TAG_ARRAY, "postgresql")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, UUID: sa.Uuid}


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(EMAIL_MAX_LENGTH), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    full_name: Mapped[str | None] = mapped_column(sa.String(FULL_NAME_MAX_LENGTH))
    role: Mapped[str] = mapped_column(sa.String(16))
    is_active: Mapped[bool]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (sa.Index(None, "created_at", "id"),)


REVOKED = sa.text("revoked_at IS NOT NULL")


class RefreshTokenRow(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[UUID] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (
        # Sessions ended lately, read back when the revocation list refills
        # (revocations_in_force).
        sa.Index(None, "revoked_at", postgresql_where=REVOKED, sqlite_where=REVOKED),
        # The expired ones, oldest first: the clean-up job's range (application/maintenance.py).
        sa.Index(None, "expires_at"),
    )


LIVE = sa.text("deleted_at IS NULL")
TRASHED = sa.text("deleted_at IS NOT NULL")
# Live, open todos with a due date not yet announced for its current value (todo.due): what the
# due job scans, and all that its partial index holds, so an announced todo leaves the index.
DUE_PENDING = sa.text(
    "deleted_at IS NULL AND NOT completed AND due_at IS NOT NULL"
    " AND (due_announced_for IS NULL OR due_announced_for <> due_at)"
)
POSTGRESQL_ONLY = {"postgresql_only": True}  # read by alembic/env.py: not compared on SQLite


# Nullable sort keys sort nulls last: as COALESCE(due_at, +/-infinity) they are never null,
# so "after this row" is one row comparison, an index range (see repositories/todos.py).
DUE_AT_NULLS_LAST = {
    False: sa.text("COALESCE(due_at, 'infinity'::timestamptz)"),
    True: sa.text("COALESCE(due_at, '-infinity'::timestamptz)"),
}


def _keyset_index(*columns: str) -> sa.Index:
    """Live todos of one project in one sort order: a deep keyset page is an index range scan,
    and a list across many projects merges one such range per project (repositories/todos.py)."""
    return sa.Index(None, "project_id", *columns, "id", postgresql_where=LIVE, sqlite_where=LIVE)


def _due_at_nulls_last_index(name: str, descending: bool) -> sa.Index:
    return sa.Index(
        name,
        "project_id",
        DUE_AT_NULLS_LAST[descending],
        "id",
        postgresql_where=LIVE,
        info=POSTGRESQL_ONLY,
    ).ddl_if(dialect="postgresql")


def _trigram_index(column: str) -> sa.Index:
    """`q` (ILIKE '%text%' on the title or the description) as an index lookup: pg_trgm, with
    the project first (btree_gin), so a search reads the postings of the projects in scope
    only: a common word's trigrams in everyone's todos would cost a small list more than
    reading its own rows."""
    return sa.Index(
        f"ix_todos_project_id_{column}_trgm",
        "project_id",
        column,
        postgresql_using="gin",
        postgresql_ops={column: "gin_trgm_ops"},
        info=POSTGRESQL_ONLY,
    ).ddl_if(dialect="postgresql")


INBOX = sa.text("is_inbox")


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    # A project's owner never changes; the account's deletion takes its projects with it.
    owner_id: Mapped[UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(NAME_MAX_LENGTH))
    description: Mapped[str] = mapped_column(sa.Text)
    color: Mapped[str | None] = mapped_column(sa.String(7))
    is_inbox: Mapped[bool]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int]

    __table_args__ = (
        sa.Index(None, "owner_id"),
        # One Inbox per account, whatever races to make a second.
        sa.Index(
            "uq_projects_owner_id_inbox",
            "owner_id",
            unique=True,
            postgresql_where=INBOX,
            sqlite_where=INBOX,
        ),
    )


class MembershipRow(Base):
    """Who is in a project and as what; the owner too (role `owner`), so that "the projects I
    am a member of" is one index range (user_id, …) whatever their role."""

    __tablename__ = "memberships"

    project_id: Mapped[UUID] = mapped_column(
        sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(sa.String(16))
    added_at: Mapped[datetime]

    # A member's projects in the order they got them (the project list), and, index-only,
    # the projects a list of todos looks in.
    __table_args__ = (sa.Index(None, "user_id", "added_at", "project_id"),)


class InvitationRow(Base):
    """A single-use link secret: only the SHA-256 of its token is kept."""

    __tablename__ = "invitations"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    project_id: Mapped[UUID] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(sa.String(16))
    email: Mapped[str | None] = mapped_column(sa.String(EMAIL_MAX_LENGTH))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_by: Mapped[UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)  # the clean-up's range
    accepted_at: Mapped[datetime | None]
    accepted_by: Mapped[UUID | None]  # a record, not a reference: the account may go

    __table_args__ = (
        sa.Index(None, "project_id", "created_at", "id"),
        sa.Index(None, "created_by"),
    )


PROJECT_DELETED = sa.text("type = 'project.deleted'")


class ActivityRow(Base):
    """Activity entries, in commit order: (txid, n) is an entry's position (see
    repositories/activity.py). No foreign keys: an entry outlives its todo, its project and
    its actor, since the members of a deleted project still receive its `project.deleted`."""

    __tablename__ = "activity"

    txid: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    id: Mapped[UUID]
    at: Mapped[datetime]
    actor_id: Mapped[UUID | None]
    type: Mapped[str] = mapped_column(sa.String(32))
    project_id: Mapped[UUID]
    todo_id: Mapped[UUID | None]
    member_id: Mapped[UUID | None]
    previous_project_id: Mapped[UUID | None]
    changes: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    audience: Mapped[list[str] | None] = mapped_column(sa.JSON)
    member_role: Mapped[str | None] = mapped_column(sa.String(16))
    member_added_at: Mapped[datetime | None]
    trace: Mapped[str | None] = mapped_column(sa.String(64))

    __table_args__ = (
        sa.Index(None, "project_id", "txid", "n"),
        sa.Index(
            None,
            "todo_id",
            "txid",
            "n",
            postgresql_where=sa.text("todo_id IS NOT NULL"),
            sqlite_where=sa.text("todo_id IS NOT NULL"),
        ),
        sa.Index(
            None,
            "previous_project_id",
            "txid",
            "n",
            postgresql_where=sa.text("previous_project_id IS NOT NULL"),
            sqlite_where=sa.text("previous_project_id IS NOT NULL"),
        ),
        sa.Index(
            None,
            "member_id",
            "txid",
            "n",
            postgresql_where=sa.text("member_id IS NOT NULL"),
            sqlite_where=sa.text("member_id IS NOT NULL"),
        ),
        # The project deletions after a position (a reader's sync keeps those addressed to it).
        sa.Index(
            "ix_activity_deleted_txid_n",
            "txid",
            "n",
            postgresql_where=PROJECT_DELETED,
            sqlite_where=PROJECT_DELETED,
        ),
    )


class TodoRow(Base):
    __tablename__ = "todos"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    project_id: Mapped[UUID] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    # The project's owner (who never changes), kept on the row: the quota counts by it.
    owner_id: Mapped[UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    # Who made it; no foreign key, since it stays when that account is deleted.
    created_by: Mapped[UUID]
    title: Mapped[str] = mapped_column(sa.String(TITLE_MAX_LENGTH))
    description: Mapped[str] = mapped_column(sa.Text, server_default="")
    priority: Mapped[int] = mapped_column(sa.SmallInteger, server_default="1")
    due_at: Mapped[datetime | None]
    tags: Mapped[list[str]] = mapped_column(TagList)
    completed: Mapped[bool]
    completed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(server_default="1")
    # The due_at value a todo.due was recorded for (application/maintenance.py): set by the
    # due job only, never by an edit, so a due_at changed since makes the todo due again.
    due_announced_for: Mapped[datetime | None]

    __table_args__ = (
        _keyset_index("created_at"),
        _keyset_index("updated_at"),
        _keyset_index("due_at"),
        _due_at_nulls_last_index("ix_todos_project_id_due_at_last_id", descending=False),
        _due_at_nulls_last_index("ix_todos_project_id_due_at_first_id", descending=True),
        _keyset_index("priority"),
        # Priority then due date (nulls last), the usual "what next" order: within one
        # priority (a list sorted by priority is merged per priority) a range of this.
        sa.Index(
            "ix_todos_project_id_priority_due_at_last_id",
            "project_id",
            "priority",
            DUE_AT_NULLS_LAST[False],
            "id",
            postgresql_where=LIVE,
            info=POSTGRESQL_ONLY,
        ).ddl_if(dialect="postgresql"),
        _keyset_index("title"),
        # Every todo of a project, the trash included: the trash list, a project's deletion.
        sa.Index(None, "project_id", "deleted_at"),
        # ... and by id: a full sync walks a project's todos a page at a time.
        sa.Index(None, "project_id", "id"),
        # The quota's count, and an account's deletion.
        sa.Index(None, "owner_id", "deleted_at"),
        # `tag=` within a project (btree_gin): a merged list's range per project finds its
        # tagged rows without the postings of every todo that carries the tag.
        sa.Index(None, "project_id", "tags", postgresql_using="gin", info=POSTGRESQL_ONLY).ddl_if(
            dialect="postgresql"
        ),
        _trigram_index("title"),
        _trigram_index("description"),
        # The trash, oldest first: the purge job's range (only trashed todos are in it).
        sa.Index(
            "ix_todos_deleted_at_trashed",
            "deleted_at",
            postgresql_where=TRASHED,
            sqlite_where=TRASHED,
        ),
        # Todos whose due date is still to announce, by due date: the due job's range.
        sa.Index(
            "ix_todos_due_at_pending",
            "due_at",
            postgresql_where=DUE_PENDING,
            sqlite_where=DUE_PENDING,
        ),
    )


class IdempotencyKeyRow(Base):
    """A user's Idempotency-Key, inserted in the same transaction as the todo it created."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    # No foreign key: a todo deleted for good leaves its key, whose replay is then a 404.
    todo_id: Mapped[UUID]
    created_at: Mapped[datetime] = mapped_column(index=True)  # the expiry sweep's range


class WebhookRow(Base):
    """A user's webhook. `project_id` is no foreign key: a project's deletion is itself an
    event its webhooks deliver (then they turn inactive, at delivery)."""

    __tablename__ = "webhooks"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(sa.String(2000))
    events: Mapped[list[str]] = mapped_column(sa.JSON)
    project_id: Mapped[UUID | None]
    description: Mapped[str] = mapped_column(sa.String(500))
    active: Mapped[bool]
    secret: Mapped[str] = mapped_column(sa.String(100))
    previous_secret: Mapped[str | None] = mapped_column(sa.String(100))
    previous_secret_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (sa.Index(None, "user_id", "created_at", "id"),)


class WebhookDeliveryRow(Base):
    """One event for one webhook, with the body every attempt sends."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    webhook_id: Mapped[UUID] = mapped_column(sa.ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(sa.String(64))
    event_type: Mapped[str] = mapped_column(sa.String(32))
    project_id: Mapped[UUID | None]
    body: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int]
    response_status: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(sa.String(32))
    duration_ms: Mapped[int | None]
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime | None]
    # Held by the attempt in progress: another attempt of the same delivery waits it out.
    lease_until: Mapped[datetime | None]
    trace: Mapped[str | None] = mapped_column(sa.String(64))

    __table_args__ = (
        # One delivery per event per webhook: a dispatch run twice adds nothing.
        sa.UniqueConstraint("webhook_id", "event_id"),
        sa.Index(None, "webhook_id", "created_at", "id"),
        # The unsettled ones, by when they are due: what the sweep re-queues.
        sa.Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
            sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
        ),
        # The settled ones, by creation: what the clean-up deletes past their retention.
        sa.Index(
            "ix_webhook_deliveries_settled",
            "created_at",
            postgresql_where=sa.text("next_attempt_at IS NULL"),
            sqlite_where=sa.text("next_attempt_at IS NULL"),
        ),
    )


class WebhookDispatchRow(Base):
    """How far in the activity log webhook dispatch has read: one row."""

    __tablename__ = "webhook_dispatch"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    txid: Mapped[int] = mapped_column(sa.BigInteger)
    n: Mapped[int]
