"""Reads on PostgreSQL through psycopg itself, on a connection SQLAlchemy's pool lends.

A read-only unit of work's statement is compiled once by SQLAlchemy (`compile()`, its SQL
text) and run by psycopg on the pooled connection's driver connection, reached through
SQLAlchemy's documented raw-connection access (`AsyncEngine.raw_connection()`,
`.driver_connection`): the pool, its sizing, timeout and recycling stay SQLAlchemy's, and a read
skips what it does not need of SQLAlchemy's Connection, execution context and Result, the
larger part of a one-row read's cost (docs/performance.md, The read path).

What that path gives up, and where it is kept:

- Execute-time events (`before_cursor_execute`: tracing's SQL spans) are SQLAlchemy's, so
  the composition root takes this path only while tracing is off (app/bootstrap.py): with a
  listener installed, every statement goes through SQLAlchemy's Connection.
- SQLAlchemy's type processing: only statements whose every value is a bound parameter the
  caller passes are taken (the repositories build them once); psycopg adapts the values, and
  the SQL text casts each one to its column's type. A statement that carries values of its
  own is refused, loudly: built per call, it belongs to SQLAlchemy's compiled cache.
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
from collections.abc import Mapping
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application.ports import ServiceUnavailable, StatementTimedOut
from app.infrastructure.db import TIMED_OUT
from app.infrastructure.repositories.base import Rows

log = logging.getLogger(__name__)

_CACHE_SIZE = 2048  # statements built once: a few dozen, plus one per list query shape


class DriverReads:
    def __init__(self, engine: AsyncEngine, *, pool_size: int) -> None:
        if (engine.dialect.name, engine.dialect.driver) != ("postgresql", "psycopg"):
            raise ValueError("reads through the driver are for PostgreSQL on psycopg")
        self._engine = engine
        self._attempts = pool_size + 1
        self._sql: dict[sa.Executable, str] = {}

    async def rows(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> Rows:
        """The statement's rows, each a fresh dict by column name."""
        sql = self._compiled(statement, parameters)
        for attempt in range(1, self._attempts + 1):
            try:
                pooled = await self._engine.raw_connection()
            except psycopg.Error as error:  # the pool's new connection could not be made
                raise ServiceUnavailable("the database cannot be reached") from error
            driver = cast(psycopg.AsyncConnection[Any], pooled.driver_connection)
            try:
                async with driver.cursor(row_factory=dict_row) as cursor:
                    await cursor.execute(sql, parameters)
                    return await cursor.fetchall()
            except psycopg.errors.QueryCanceled as error:
                raise StatementTimedOut(TIMED_OUT) from error
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                if not driver.closed or attempt == self._attempts:
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
        try:
            return self._sql[statement]
        except KeyError:
            pass
        if not isinstance(statement, sa.Select):
            raise TypeError("a read through the driver is a SELECT")
        compiled = statement.compile(dialect=self._engine.dialect)
        carried = sorted(name for name, value in compiled.params.items() if value is not None)
        missing = sorted(set(compiled.params) - set(parameters or ()))
        if carried or missing:
            raise ValueError(
                "a read through the driver takes every value as a parameter it is given:"
                f" values carried {carried}, parameters missing {missing}"
            )
        if len(self._sql) >= _CACHE_SIZE:
            del self._sql[next(iter(self._sql))]
        sql = self._sql[statement] = str(compiled)
        return sql
