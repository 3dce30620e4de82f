"""Migrations run on the app's own engine settings; the URL comes from DATABASE_URL, or from
`config.attributes["url"]` when tests drive Alembic for a throwaway database."""

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column
from sqlalchemy.engine import Connection

from alembic import context
from app.config import get_settings
from app.infrastructure.db import create_engine
from app.infrastructure.migration_lock import migration_lock
from app.infrastructure.orm import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url")
    return str(url) if url else get_settings().database_url


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """PostgreSQL-only indexes (GIN, expressions) do not exist elsewhere: not a difference.
    The job engine's tables are its own schema's (migration 0013), not the models'."""
    if type_ == "table" and reflected and (name or "").startswith("procrastinate_"):
        return False
    dialect = context.get_context().dialect
    postgresql_only = getattr(obj, "info", {}).get("postgresql_only", False)
    return not (postgresql_only and dialect is not None and dialect.name != "postgresql")


def _unquoted(default: str | None) -> str | None:
    """A default as SQLite reflects it, `('')` or `'1'`, as the SQL literal's value: `` or `1`."""
    if default is None:
        return None
    while default.startswith("(") and default.endswith(")"):
        default = default[1:-1]
    if len(default) >= 2 and default[0] == default[-1] == "'":
        default = default[1:-1].replace("''", "'")
    return default


def _compare_server_default(
    context: MigrationContext,
    inspected_column: Column[Any],
    metadata_column: Column[Any],
    inspected_default: str | None,
    metadata_default: object,
    rendered_metadata_default: str | None,
) -> bool | None:
    """On SQLite, whether the defaults differ once quoting and parentheses are set aside (it
    reflects a default of '' as `('')`, which Alembic's own comparison calls a change).
    Elsewhere None: Alembic's comparison, which asks PostgreSQL itself."""
    if context.dialect.name != "sqlite":
        return None
    return _unquoted(inspected_default) != _unquoted(rendered_metadata_default)


def _configure(connection: Connection) -> None:
    # Replicas started together migrate one after the other: the later ones find it done.
    with migration_lock(connection):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=_include_object,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most
            compare_type=True,
            compare_server_default=_compare_server_default,
        )
        with context.begin_transaction():
            context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
