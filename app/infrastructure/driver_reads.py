"""Statements on PostgreSQL through psycopg itself, on a connection SQLAlchemy's pool lends.

A statement is compiled once by SQLAlchemy (`compile()`, its SQL text) and run by psycopg on
the pooled connection's driver connection, reached through SQLAlchemy's documented
raw-connection access (`AsyncEngine.raw_connection()`, `AsyncConnection.get_raw_connection()`,
`.driver_connection`): the pool, its sizing, timeout and recycling stay SQLAlchemy's, and a
statement skips what it does not need of SQLAlchemy's Connection, execution context and
Result, the larger part of a short statement's cost (docs/performance.md, The read path).
A read-only unit of work's reads each borrow a connection (`rows()`); a writing unit of work
runs its statements on the connection it holds, its transaction's BEGIN and COMMIT sent with
them (`batch()`, uow.py).

What that path gives up, and where it is kept:

- Execute-time events (`before_cursor_execute`: tracing's SQL spans) are SQLAlchemy's, so
  the composition root takes this path only while tracing is off (app/bootstrap.py): with a
  listener installed, every statement goes through SQLAlchemy's Connection.
- SQLAlchemy's type processing: only statements whose every value is a bound parameter the
  caller passes are taken (the repositories build them once); psycopg adapts the values
  (JSON ones through its Json wrapper, as SQLAlchemy's JSON type serialises them), and the
  SQL text casts each one to its column's type. A read that carries values of its own is
  refused, loudly: built per call, it belongs to SQLAlchemy's compiled cache; in a writing
  unit of work such a statement runs through SQLAlchemy's Connection, on the same
  transaction (`sql()` says which, by the statement, never by a fault).
- Errors: a statement PostgreSQL cancelled at its time limit is the port's StatementTimedOut,
  a connection the server closed is tried again (below), any other operational fault is
  ServiceUnavailable (503), and everything else is raised as psycopg raised it (500). No
  fault sends a statement down another path.

A connection PostgreSQL closed while it sat in the pool (a restart, a failover,
`pg_terminate_backend`, a proxy's idle timeout) is found on the read that borrows it: that
connection is marked for replacement and the read runs again on the next one. Every pooled
connection may be dead, so a read may try as many as the pool holds, plus a fresh one.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import Json
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application.ports import ServiceUnavailable, StatementTimedOut
from app.infrastructure.db import TIMED_OUT
from app.infrastructure.repositories.base import PLANNED_PER_RUN, Rows

log = logging.getLogger(__name__)

_CACHE_SIZE = 2048  # statements built once: a few dozen, plus one per list query shape
# A unit of work's transaction, as the repositories' statements expect it (uow.py).
_BEGIN = b"BEGIN ISOLATION LEVEL READ COMMITTED"
_COMMIT = b"COMMIT"


class DriverReads:
    def __init__(self, engine: AsyncEngine, *, pool_size: int) -> None:
        if (engine.dialect.name, engine.dialect.driver) != ("postgresql", "psycopg"):
            raise ValueError("reads through the driver are for PostgreSQL on psycopg")
        self._engine = engine
        # A pooled connection may be closed by the server, each of them: as many tries as
        # the pool holds, plus a fresh connection.
        self.attempts = pool_size + 1
        self._sql: dict[sa.Executable, str] = {}
        self._json: dict[str, tuple[str, ...]] = {}  # by SQL: its JSON parameters
        self._unprepared: set[str] = set()  # by SQL: planned per run (base.planned_per_run)

    async def rows(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> Rows:
        """The statement's rows, each a fresh dict by column name."""
        sql = self._compiled(statement, parameters)
        for attempt in range(1, self.attempts + 1):
            try:
                pooled = await self._engine.raw_connection()
            except psycopg.Error as error:  # the pool's new connection could not be made
                raise ServiceUnavailable("the database cannot be reached") from error
            driver = cast(psycopg.AsyncConnection[Any], pooled.driver_connection)
            try:
                async with driver.cursor(row_factory=dict_row) as cursor:
                    await self._execute_on(cursor, sql, parameters)
                    return await cursor.fetchall()
            except psycopg.errors.QueryCanceled as error:
                raise StatementTimedOut(TIMED_OUT) from error
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                if not driver.closed or attempt == self.attempts:
                    raise ServiceUnavailable("the database cannot answer") from error
                log.warning("a pooled connection was closed by the server; reading again")
            finally:
                # Connections are in autocommit (db.py): one that is not idle now (a read
                # broken off, a connection the server closed) is never lent again. Marked
                # here, it is replaced at its next checkout, where the pool may wait.
                if driver.info.transaction_status is not TransactionStatus.IDLE:
                    pooled.invalidate(soft=True)
                pooled.close()
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _compiled(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> str:
        if not isinstance(statement, sa.Select):
            raise TypeError("a read through the driver is a SELECT")
        sql, refusal = self._sql_for(statement, parameters)
        if sql is None:
            raise ValueError(
                f"a read through the driver takes every value as a parameter {refusal}"
            )
        return sql

    def sql(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> str | None:
        """The statement's SQL for psycopg, or None where it needs SQLAlchemy to run it (a
        value of its own, as a statement built per call has, or a parameter not given). A
        statement that qualifies is compiled once."""
        return self._sql_for(statement, parameters)[0]

    async def execute(
        self,
        driver: psycopg.AsyncConnection[Any],
        sql: str,
        parameters: Mapping[str, Any] | None,
    ) -> tuple[Rows, int]:
        """Runs `sql` (from sql()) on a connection a unit of work holds, inside its
        transaction: its rows (none for a write without RETURNING), and how many it matched."""
        async with driver.cursor(row_factory=dict_row) as cursor:
            await self._execute_on(cursor, sql, parameters)
            rows = await cursor.fetchall() if cursor.description is not None else []
            return rows, cursor.rowcount

    async def batch(
        self,
        driver: psycopg.AsyncConnection[Any],
        statements: Sequence[tuple[str, Mapping[str, Any] | None]],
        *,
        begin: bool,
        commit: bool,
    ) -> list[tuple[Rows, int]]:
        """Runs `statements` (each from sql()) on a connection a unit of work holds, in one
        round trip: psycopg's pipeline mode sends them together, after a BEGIN when `begin`
        and before a COMMIT when `commit`. Each one's rows and how many it matched. The first
        error is raised once the batch is back; the statements after it did not run.

        The connection stays in autocommit, as pooled, and the transaction is opened and
        ended by these statements: psycopg, left to open it itself, waits for its BEGIN
        before it sends anything more."""
        if len(statements) == 1 and not begin and not commit:
            return [await self.execute(driver, *statements[0])]
        cursors = []
        try:
            async with driver.pipeline():
                if begin:
                    await driver.execute(_BEGIN)
                for sql, parameters in statements:
                    cursor = driver.cursor(row_factory=dict_row)
                    cursors.append(cursor)
                    await self._execute_on(cursor, sql, parameters)
                if commit:
                    await driver.execute(_COMMIT)
            return [
                (await cursor.fetchall() if cursor.description is not None else [], cursor.rowcount)
                for cursor in cursors
            ]
        finally:
            for cursor in cursors:
                await cursor.close()

    async def _execute_on(
        self,
        cursor: psycopg.AsyncCursor[Any],
        sql: str,
        parameters: Mapping[str, Any] | None,
    ) -> None:
        # Prepared when psycopg chooses to (after a few runs), never if planned per run.
        prepare = False if sql in self._unprepared else None
        await cursor.execute(sql, self._adapted(sql, parameters), prepare=prepare)

    def _adapted(self, sql: str, parameters: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        json = self._json.get(sql)
        if not json or parameters is None:
            return parameters
        return {**parameters, **{name: Json(parameters[name]) for name in json}}

    def _sql_for(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None
    ) -> tuple[str | None, str]:
        try:
            return self._sql[statement], ""
        except KeyError:
            pass
        if not isinstance(statement, sa.ClauseElement):
            return None, "(a SQL expression, not a construct of its own)"
        compiled = statement.compile(dialect=self._engine.dialect)
        carried = sorted(name for name, value in compiled.params.items() if value is not None)
        missing = sorted(set(compiled.params) - set(parameters or ()))
        if carried or missing:
            return None, f"it is given: values carried {carried}, parameters missing {missing}"
        if len(self._sql) >= _CACHE_SIZE:
            self._json.pop(self._sql.pop(next(iter(self._sql))), None)
        sql = self._sql[statement] = str(compiled)
        if statement.get_execution_options().get(PLANNED_PER_RUN):
            self._unprepared.add(sql)
        # A value for a JSON column is serialised as SQLAlchemy's JSON type does (json.dumps,
        # None as JSON null): by psycopg's Json wrapper.
        written = statement.table if isinstance(statement, (sa.Insert, sa.Update)) else None
        self._json[sql] = tuple(
            name
            for name in compiled.params
            if written is not None
            and name in written.c
            and isinstance(written.c[name].type.dialect_impl(self._engine.dialect), sa.JSON)
        )
        return sql, ""
