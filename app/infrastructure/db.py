"""The async engine for DATABASE_URL, and what its driver's errors mean."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

TIMED_OUT = "a statement ran past DB_STATEMENT_TIMEOUT_MS"
_QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement it cancelled


def cancelled(error: BaseException | None) -> bool:
    """Whether the driver's error is PostgreSQL cancelling a statement (its time limit)."""
    return getattr(error, "sqlstate", None) == _QUERY_CANCELED


def create_engine(
    url: str,
    *,
    pool_size: int = 20,
    autocommit: bool = False,
    echo: bool = False,
    statement_timeout_ms: int = 0,
    reused_plans: bool = False,
) -> AsyncEngine:
    """`autocommit`: pooled connections start in autocommit, so a read costs one round trip
    (no BEGIN, no ROLLBACK); a unit of work that writes opens and ends its transaction
    itself (uow.py). So nothing is left to reset when a connection
    goes back to the pool: no rollback on return, which also lets a read give back the raw
    connection it borrowed without another pass through SQLAlchemy (driver_reads.py). The
    app's engine; migrations and scripts keep plain transactions.

    `statement_timeout_ms` (PostgreSQL; 0: none): the server cancels any statement that runs
    longer, waiting for a lock included. The app's engine only: a migration may take long.

    `reused_plans` (PostgreSQL): a statement the driver has prepared (after a few runs) may
    reuse one plan for any values, where PostgreSQL finds that no worse than planning each
    run; the statements whose best plan depends on their values are never prepared
    (repositories/base.py, `planned_per_run`), which only the driver's path (driver_reads.py)
    can ask. Without it, every run of every statement is planned for its own values."""
    options: dict[str, Any] = (
        {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if autocommit else {}
    )
    if url.startswith("sqlite"):
        # One connection, shared in turn: SQLite allows one writer at a time, and a single
        # connection turns lock errors under concurrency into an orderly queue.
        engine = create_async_engine(
            url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=30, **options
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        echo=echo,
        # A fixed pool: overflow connections opened and closed under load cost more than they
        # serve. No pre-ping, a round trip on every checkout: a connection the database closed
        # is found by the statement that uses it, and replaced; the statement runs again where
        # that is safe (a read, or a transaction's first statement: uow.py).
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=10,
        # A logged database error never carries emails, hashes or tokens.
        hide_parameters=True,
        # Timestamps come back in UTC, so reading them needs no conversion. The timeout is a
        # session setting from the connection's start-up packet: no statement spent on it.
        # Custom plans only, unless `reused_plans`: see above.
        connect_args={
            "options": (
                f"-c timezone=UTC -c statement_timeout={statement_timeout_ms}"
                + ("" if reused_plans else " -c plan_cache_mode=force_custom_plan")
            ),
        },
        **options,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
