"""The async engine and session factory for DATABASE_URL."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    # hide_parameters: a logged database error never carries emails, hashes or tokens.
    if url.startswith("sqlite"):
        # One connection, shared in turn: SQLite allows one writer at a time, and a single
        # connection turns lock errors under concurrency into an orderly queue.
        engine = create_async_engine(url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=30)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a restarted database costs one failed check, not a 500
        pool_timeout=10,
        hide_parameters=True,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
