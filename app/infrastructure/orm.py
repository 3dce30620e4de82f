"""Table models: the one description of the schema, and Alembic's autogenerate target."""

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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

    # Sessions ended lately, read back when the revocation list refills (revocations_in_force).
    __table_args__ = (sa.Index(None, "revoked_at", postgresql_where=REVOKED, sqlite_where=REVOKED),)


LIVE = sa.text("deleted_at IS NULL")
POSTGRESQL_ONLY = {"postgresql_only": True}  # read by alembic/env.py: not compared on SQLite


# Nullable sort keys sort nulls last: as COALESCE(due_at, +/-infinity) they are never null,
# so "after this row" is one row comparison, an index range (see repositories/todos.py).
DUE_AT_NULLS_LAST = {
    False: sa.text("COALESCE(due_at, 'infinity'::timestamptz)"),
    True: sa.text("COALESCE(due_at, '-infinity'::timestamptz)"),
}


def _keyset_index(*columns: str) -> sa.Index:
    """Live todos of one owner in one sort order: a deep keyset page is an index range scan."""
    return sa.Index(None, *columns, "id", postgresql_where=LIVE, sqlite_where=LIVE)


def _trigram_index(column: str) -> sa.Index:
    """`q` (ILIKE '%text%' on the title or the description) as an index lookup: pg_trgm."""
    return sa.Index(
        f"ix_todos_{column}_trgm",
        column,
        postgresql_using="gin",
        postgresql_ops={column: "gin_trgm_ops"},
        info=POSTGRESQL_ONLY,
    ).ddl_if(dialect="postgresql")


class TodoRow(Base):
    __tablename__ = "todos"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    owner_id: Mapped[UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
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

    __table_args__ = (
        _keyset_index("owner_id", "created_at"),
        _keyset_index("owner_id", "updated_at"),
        _keyset_index("owner_id", "due_at"),
        sa.Index(
            "ix_todos_owner_id_due_at_last_id",
            "owner_id",
            DUE_AT_NULLS_LAST[False],
            "id",
            postgresql_where=LIVE,
            info=POSTGRESQL_ONLY,
        ).ddl_if(dialect="postgresql"),
        sa.Index(
            "ix_todos_owner_id_due_at_first_id",
            "owner_id",
            DUE_AT_NULLS_LAST[True],
            "id",
            postgresql_where=LIVE,
            info=POSTGRESQL_ONLY,
        ).ddl_if(dialect="postgresql"),
        _keyset_index("owner_id", "priority"),
        _keyset_index("owner_id", "title"),
        _keyset_index("created_at"),
        sa.Index(None, "owner_id", "deleted_at"),
        sa.Index(None, "tags", postgresql_using="gin", info=POSTGRESQL_ONLY).ddl_if(
            dialect="postgresql"
        ),
        _trigram_index("title"),
        _trigram_index("description"),
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
