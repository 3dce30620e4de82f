"""The unit of work: one database connection per use case, and the one place that commits."""

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, cast

import psycopg
import sqlalchemy as sa
from psycopg.pq import TransactionStatus
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.application.ports import StatementTimedOut
from app.domain.errors import AccountGone, ProjectNotFound
from app.infrastructure.db import TIMED_OUT, cancelled
from app.infrastructure.driver_reads import DriverReads
from app.infrastructure.repositories.activity import SqlAlchemyActivityRepository
from app.infrastructure.repositories.base import Rows
from app.infrastructure.repositories.idempotency_keys import SqlAlchemyIdempotencyKeyRepository
from app.infrastructure.repositories.invitations import SqlAlchemyInvitationRepository
from app.infrastructure.repositories.memberships import SqlAlchemyMembershipRepository
from app.infrastructure.repositories.projects import SqlAlchemyProjectRepository
from app.infrastructure.repositories.todos import SqlAlchemyTodoRepository
from app.infrastructure.repositories.tokens import SqlAlchemyRefreshTokenRepository
from app.infrastructure.repositories.users import SqlAlchemyUserRepository
from app.infrastructure.repositories.webhooks import (
    SqlAlchemyDeliveryRepository,
    SqlAlchemyWebhookRepository,
)

log = logging.getLogger(__name__)

_WRITES = (sa.Insert, sa.Update, sa.Delete)
_FOREIGN_KEY_VIOLATION = "23503"  # PostgreSQL's SQLSTATE


def _is_foreign_key_violation(exc: IntegrityError) -> bool:
    """By the driver's error code: psycopg's SQLSTATE, or SQLite's extended result code name."""
    error = exc.orig
    return (
        getattr(error, "sqlstate", None) == _FOREIGN_KEY_VIOLATION
        or getattr(error, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_FOREIGNKEY"
    )


def _names_a_project(exc: IntegrityError) -> bool:
    """Whether the violated key refers to projects (PostgreSQL names the constraint; SQLite,
    whose one writer cannot see a project vanish mid-transaction, does not)."""
    diag = getattr(exc.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    return constraint.endswith("_projects")


def _as_domain(exc: IntegrityError) -> Exception:
    """A row that refers to what a concurrent request deleted: a project (its deletion took
    the caller's access with it), else the caller's own account. Any other violation as is."""
    if not _is_foreign_key_violation(exc):
        return exc
    return ProjectNotFound() if _names_a_project(exc) else AccountGone()


@contextmanager
def _timed_out_as_domain() -> Iterator[None]:
    """A statement PostgreSQL cancelled at DB_STATEMENT_TIMEOUT_MS, as the port's error."""
    try:
        yield
    except sa.exc.OperationalError as error:
        if cancelled(error.orig):
            raise StatementTimedOut(TIMED_OUT) from error
        raise


def _found_closed(error: DBAPIError) -> bool:
    """Whether SQLAlchemy found the connection closed (by the server, a proxy, a failover)
    and has invalidated it, with every pooled connection as old: the next checkout is a
    fresh connection."""
    if error.connection_invalidated:
        log.warning("a pooled connection was closed by the server; running the statement again")
    return error.connection_invalidated


def _by_name(result: sa.CursorResult[Any]) -> Rows:
    return [dict(row) for row in result.mappings()]


class SqlStatements:
    """What a unit of work's repositories run their statements on: its connection, taken from
    the pool at the first statement.

    Pooled connections are in autocommit (see db.py). `read_only` ones hold no connection at
    all: reads in autocommit share no snapshot, so each takes a connection for itself and
    gives it back in the same step, through psycopg itself where `reads` is given
    (driver_reads.py), through SQLAlchemy's Connection otherwise. A write or a commit() there
    is an error, so a write can never slip through unseen.

    One that may write holds its connection in a transaction. Through psycopg (`reads`), the
    transaction is opened with the first statement and ended with the commit, each in the
    same round trip as what it goes with, and a write no caller waits on (`later()`: a lock,
    a log entry) rides with the next statement or the commit: a round trip is a large share
    of a short statement's cost. Elsewhere (SQLite, tracing on) SQLAlchemy's Connection runs
    the transaction and each statement at once.

    A connection the server closed while it sat in the pool fails the statement that finds
    it. That statement runs again on a fresh connection when nothing of it can have
    committed: a read, or the first statement of a transaction (the transaction dies with its
    connection, uncommitted). A later statement, or a commit, is never run again: the
    transaction's earlier work is gone, or may have committed, and the use case fails (503).
    """

    def __init__(
        self, engine: AsyncEngine, *, read_only: bool, reads: DriverReads | None = None
    ) -> None:
        self._engine = engine
        self._read_only = read_only
        self._reads = reads
        self._connection: AsyncConnection | None = None
        self._driver: psycopg.AsyncConnection[Any] | None = None  # its psycopg connection
        self._later: list[_Later] = []  # through psycopg: sent with the next round trip
        self.dialect = engine.dialect.name

    async def rows(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> Rows:
        if not self._read_only:
            return (await self._execute(statement, parameters))[0]
        if isinstance(statement, _WRITES):
            raise RuntimeError("a write in a read-only unit of work")
        if self._reads is not None:
            return await self._reads.rows(statement, parameters)
        with _timed_out_as_domain():
            try:
                return await self._read(statement, parameters)
            except DBAPIError as error:
                if not _found_closed(error):
                    raise
            return await self._read(statement, parameters)

    async def write(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> int:
        if self._read_only:
            raise RuntimeError("a write in a read-only unit of work")
        return (await self._execute(statement, parameters))[1]

    async def later(
        self,
        statement: sa.Executable,
        parameters: Mapping[str, Any] | None = None,
        *,
        returned: Callable[[Rows], None] | None = None,
    ) -> None:
        """A write whose outcome no caller waits for: through psycopg, sent with the next
        statement or the commit (its error, if any, is theirs); elsewhere, run now.
        `returned` gets its rows once it has run."""
        if self._read_only:
            raise RuntimeError("a write in a read-only unit of work")
        sql = None if self._reads is None else self._reads.sql(statement, parameters)
        if sql is None:
            rows = (await self._execute(statement, parameters))[0]
            if returned is not None:
                returned(rows)
            return
        self._later.append(_Later(sql, parameters, returned))

    async def _read(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> Rows:
        async with self._engine.connect() as connection:
            # Rows are plain values once fetched: they outlive the connection, which goes back
            # to the pool at once.
            return _by_name(await connection.execute(statement, parameters))

    async def _execute(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None
    ) -> tuple[Rows, int]:
        """The statement's rows (a query's, or a write's RETURNING) and its row count."""
        first = self._connection is None
        # SQLAlchemy replaces every pooled connection once it finds one closed; the driver's
        # path replaces only the one it found, so its first statement may meet each.
        attempts = (self._reads.attempts if self._reads is not None else 2) if first else 1
        try:
            with _timed_out_as_domain():
                for attempt in range(1, attempts + 1):
                    try:
                        return await self._run(statement, parameters)
                    except DBAPIError as error:
                        if attempt == attempts or not _found_closed(error):
                            raise
                    await self._release()  # what waits to be sent goes with the retry
                raise AssertionError("unreachable: the last attempt returns or raises")
        except IntegrityError as exc:
            raise _as_domain(exc) from None

    async def _run(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None
    ) -> tuple[Rows, int]:
        connection = await self._connect()
        reads = self._reads
        sql = None if reads is None else reads.sql(statement, parameters)
        if reads is None:
            result = await connection.execute(statement, parameters)
            return (_by_name(result) if result.returns_rows else []), result.rowcount
        if sql is None:
            # Through SQLAlchemy's Connection, in the transaction the driver holds (open it,
            # with what waits to be sent, first).
            await self._send(reads, None, commit=False)
            result = await connection.execute(statement, parameters)
            return (_by_name(result) if result.returns_rows else []), result.rowcount
        results = await self._send(reads, (sql, parameters), commit=False)
        return results[-1]

    async def _send(
        self,
        reads: DriverReads,
        statement: tuple[str, Mapping[str, Any] | None] | None,
        *,
        commit: bool,
    ) -> list[tuple[Rows, int]]:
        """What waits to be sent, then `statement`, in one round trip through psycopg: in a
        transaction opened first if none is, and committed after when `commit`."""
        later = self._later
        batch = [(item.sql, item.parameters) for item in later]
        if statement is not None:
            batch.append(statement)
        connection = await self._connect()
        driver = self._driver
        if driver is None:
            raise RuntimeError("no psycopg connection held")
        begin = _idle(driver)
        if not batch and (begin if commit else not begin):
            return []  # nothing to commit, or a transaction already open and nothing new
        try:
            results = await reads.batch(driver, batch, begin=begin, commit=commit)
        except psycopg.IntegrityError as error:
            raise IntegrityError(str(error), None, error) from error
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            # As SQLAlchemy's Connection reports it: a connection the server closed is
            # invalidated (replaced in the pool), and the caller decides on a retry.
            closed = driver.closed
            if closed:
                await connection.invalidate()
            raise OperationalError(
                str(error), None, error, connection_invalidated=closed
            ) from error
        self._later = []
        for item, (rows, _) in zip(later, results, strict=False):
            if item.returned is not None:
                item.returned(rows)
        return results

    async def _connect(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self._engine.connect()
            self._connection = connection
            if self._reads is None:  # SQLAlchemy runs the transaction
                level = connection.default_isolation_level
                await connection.execution_options(isolation_level=level)
            else:  # held for the connection's life: one look-up, not one per round trip
                self._driver = await _driver(connection)
        return self._connection

    async def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("commit() in a read-only unit of work")
        if self._reads is None:
            if self._connection is not None:
                await self._connection.commit()
            return
        if self._connection is None and not self._later:
            return
        # Never run again: a commit whose connection was lost may have committed.
        try:
            with _timed_out_as_domain():
                await self._send(self._reads, None, commit=True)
        except IntegrityError as exc:
            raise _as_domain(exc) from None

    async def rollback(self) -> None:
        self._later = []
        if self._connection is None:
            return
        if self._driver is None:
            await self._connection.rollback()
            return
        await self._driver.rollback()

    async def close(self) -> None:
        # Whatever was not committed is rolled back: a failed use case writes nothing.
        self._later = []
        await self._release()

    async def _release(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            driver, self._driver = self._driver, None
            if driver is not None:
                await _end_transaction(connection, driver)
            await connection.close()


@dataclass(frozen=True, slots=True)
class _Later:
    """A write waiting to be sent with the next round trip (SqlStatements.later)."""

    sql: str
    parameters: Mapping[str, Any] | None
    returned: Callable[[Rows], None] | None


async def _driver(connection: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    raw = await connection.get_raw_connection()
    return cast(psycopg.AsyncConnection[Any], raw.driver_connection)


async def _end_transaction(
    connection: AsyncConnection, driver: psycopg.AsyncConnection[Any]
) -> None:
    """Rolls back what the driver's transaction left uncommitted: pooled connections go back
    as they came, in autocommit with no transaction open (no rollback on return, db.py). A
    connection that cannot be brought back idle is replaced."""
    if connection.invalidated:
        return  # found closed: replaced in the pool already
    if _idle(driver):
        return
    try:
        await driver.rollback()
    except psycopg.Error:
        log.warning("a connection could not roll back; replacing it")
    if not _idle(driver):
        await connection.invalidate()


def _idle(driver: psycopg.AsyncConnection[Any]) -> bool:
    """No transaction open (as libpq last heard from the server)."""
    return driver.info.transaction_status is TransactionStatus.IDLE


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
        self,
        engine: AsyncEngine,
        *,
        read_only: bool = False,
        reads: DriverReads | None = None,
        committed: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self._committed = committed
        self._statements = statements = SqlStatements(engine, read_only=read_only, reads=reads)
        self.users = SqlAlchemyUserRepository(statements)
        self.todos = SqlAlchemyTodoRepository(statements)
        self.refresh_tokens = SqlAlchemyRefreshTokenRepository(statements)
        self.idempotency_keys = SqlAlchemyIdempotencyKeyRepository(statements)
        self.projects = SqlAlchemyProjectRepository(statements)
        self.memberships = SqlAlchemyMembershipRepository(statements)
        self.invitations = SqlAlchemyInvitationRepository(statements)
        self.activity = SqlAlchemyActivityRepository(statements)
        self.webhooks = SqlAlchemyWebhookRepository(statements)
        self.deliveries = SqlAlchemyDeliveryRepository(statements)

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
        txid = self.activity.take_written()
        if txid is not None and self._committed is not None:
            # Activity is committed: live-event feeds may read it (a wake-up only; they also
            # read the log on a timer, so an announcement lost costs delay, never an event).
            await self._committed(txid)

    async def rollback(self) -> None:
        await self._statements.rollback()
        self.activity.take_written()
