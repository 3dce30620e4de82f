"""The unit of work: one database connection per use case, and the one place that commits."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from app.application.ports import StatementTimedOut
from app.domain.errors import AccountGone
from app.infrastructure.direct_reads import DirectReads, cancelled
from app.infrastructure.repositories.base import Rows
from app.infrastructure.repositories.idempotency_keys import SqlAlchemyIdempotencyKeyRepository
from app.infrastructure.repositories.todos import SqlAlchemyTodoRepository
from app.infrastructure.repositories.tokens import SqlAlchemyRefreshTokenRepository
from app.infrastructure.repositories.users import SqlAlchemyUserRepository

_WRITES = (sa.Insert, sa.Update, sa.Delete)
_TIMED_OUT = "a statement ran past DB_STATEMENT_TIMEOUT_MS"
_FOREIGN_KEY_VIOLATION = "23503"  # PostgreSQL's SQLSTATE


def _is_foreign_key_violation(exc: IntegrityError) -> bool:
    """By the driver's error code: psycopg's SQLSTATE, or SQLite's extended result code name."""
    error = exc.orig
    return (
        getattr(error, "sqlstate", None) == _FOREIGN_KEY_VIOLATION
        or getattr(error, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_FOREIGNKEY"
    )


@contextmanager
def _timed_out_as_domain() -> Iterator[None]:
    """A statement PostgreSQL cancelled at DB_STATEMENT_TIMEOUT_MS, as the port's error."""
    try:
        yield
    except sa.exc.OperationalError as error:
        if cancelled(error.orig):
            raise StatementTimedOut(_TIMED_OUT) from error
        raise


class SqlStatements:
    """What a unit of work's repositories run their statements on: its connection, taken from
    the pool at the first statement.

    Pooled connections are in autocommit (see db.py); one that may write is turned
    transactional. `read_only` ones hold no connection at all: reads in autocommit share no
    snapshot, so each takes a connection for itself and gives it back in the same step, in one
    pass through SQLAlchemy's synchronous core (one greenlet, where the async API spends three:
    connect, execute, close), or directly on the driver's cursor when `direct` can take the
    statement (direct_reads.py). A write or a commit() there is an error, so a write can never
    slip through unseen.
    """

    def __init__(
        self, engine: AsyncEngine, *, read_only: bool, direct: DirectReads | None = None
    ) -> None:
        self._engine = engine
        self._read_only = read_only
        self._direct = direct
        self._connection: AsyncConnection | None = None
        self.dialect = engine.dialect.name

    async def rows(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> Rows:
        if not self._read_only:
            return (await self._execute(statement, parameters)).all()
        if isinstance(statement, _WRITES):
            raise RuntimeError("a write in a read-only unit of work")
        with _timed_out_as_domain():
            return await greenlet_spawn(self._read, statement, parameters)

    async def write(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> int:
        if self._read_only:
            raise RuntimeError("a write in a read-only unit of work")
        result = await self._execute(statement, parameters)
        return result.rowcount

    async def _execute(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None
    ) -> sa.CursorResult[Any]:
        try:
            with _timed_out_as_domain():
                return await (await self._connect()).execute(statement, parameters)
        except IntegrityError as exc:
            if _is_foreign_key_violation(exc):
                # Every foreign key here names the user a row belongs to, and a use case only
                # writes rows of its caller: the caller's account was deleted meanwhile.
                raise AccountGone from None
            raise

    def _read(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> Rows:
        if self._direct is not None:
            rows = self._direct.rows(statement, parameters)
            if rows is not None:
                return rows
        with self._engine.sync_engine.connect() as connection:
            # Rows are plain values once fetched: they outlive the connection, which goes back
            # to the pool at once (Result.freeze() would copy them again, on every read).
            return connection.execute(statement, parameters).all()

    async def _connect(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self._engine.connect()
            level = connection.default_isolation_level
            await connection.execution_options(isolation_level=level)
            self._connection = connection
        return self._connection

    async def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("commit() in a read-only unit of work")
        if self._connection is not None:
            await self._connection.commit()

    async def rollback(self) -> None:
        if self._connection is not None:
            await self._connection.rollback()

    async def close(self) -> None:
        # Whatever was not committed is rolled back: a failed use case writes nothing.
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()


class SqlAlchemyUnitOfWork:
    """Repositories on one connection's statements (SqlStatements), and the one place that
    commits. A read-only one needs no closing.

    The repositories refer to the statements, never back to the unit of work: with no cycle
    between them, a unit of work is freed the moment its request is done, by reference
    counting. As a cycle, two a request, they were left to the cycle collector, whose every
    pass then freed a great many objects at once: a pause that stalled every request in flight
    (their p99; docs/performance.md).
    """

    def __init__(
        self, engine: AsyncEngine, *, read_only: bool = False, direct: DirectReads | None = None
    ) -> None:
        self._statements = statements = SqlStatements(engine, read_only=read_only, direct=direct)
        self.users = SqlAlchemyUserRepository(statements)
        self.todos = SqlAlchemyTodoRepository(statements)
        self.refresh_tokens = SqlAlchemyRefreshTokenRepository(statements)
        self.idempotency_keys = SqlAlchemyIdempotencyKeyRepository(statements)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._statements.close()

    async def commit(self) -> None:
        await self._statements.commit()

    async def rollback(self) -> None:
        await self._statements.rollback()
