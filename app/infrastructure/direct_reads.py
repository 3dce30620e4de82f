"""Reads straight on a pooled DBAPI cursor: SQLAlchemy builds and compiles the statement (once),
its pool lends the connection, and its type processors convert what needs converting; its
Connection, execution context and Result, which cost a one-row read on PostgreSQL more CPU than
the driver's own work (~120 of ~260 µs per read measured on the bench machine), are skipped.

The path is taken only where what it skips cannot matter: PostgreSQL on psycopg, a SELECT whose
values are all bound parameters (the repositories' statements built once), no parameter that
expands at execution (`IN` lists), no cursor-event listeners (tracing) and no echo. Anything
else, and any fault, goes through SQLAlchemy as before, which then raises, wraps and
invalidates as it always does.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler

from app.application.ports import StatementTimedOut

_PLANS_CAPACITY = 4096  # statements built once: a few dozen, plus one per list query shape
_QUERY_CANCELED = "57014"  # SQLSTATE of a statement the server cancelled (statement_timeout)


def cancelled(error: BaseException | None) -> bool:
    """Whether the driver's error is PostgreSQL cancelling the statement (its time limit)."""
    return getattr(error, "sqlstate", None) == _QUERY_CANCELED


@dataclass(slots=True)
class _Plan:
    statement: sa.Select[Any]
    compiled: SQLCompiler
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # parameter name, its processor
    # Column index, its processor; known at the first execution, from the driver's column types.
    results: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None


class DirectReads:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.sync_engine
        self._dialect = engine.dialect
        self._enabled = self._dialect.name == "postgresql" and self._dialect.driver == "psycopg"
        self._plans: dict[sa.Executable, _Plan | None] = {}

    def rows(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None
    ) -> Sequence[Sequence[Any]] | None:
        """The statement's rows, or None when it must go through SQLAlchemy's Connection.
        Synchronous: runs inside SQLAlchemy's greenlet, like its own synchronous core. Only a
        statement run with parameters is considered: the repositories build those once, where
        one that carries its values is built per call and best served by SQLAlchemy's cache."""
        if not self._enabled or parameters is None or self._observed():
            return None
        plan = self._plan(statement)
        if plan is None:
            return None
        values = plan.compiled.construct_params(parameters)
        for name, process in plan.binds:
            values[name] = process(values[name])
        try:
            connection = self._engine.pool.connect()
        except self._dialect.loaded_dbapi.Error:
            return None  # SQLAlchemy's own attempt raises it as it should (its pool errors pass)
        try:
            cursor = connection.cursor()
            cursor.execute(plan.compiled.string, values)
            rows: Sequence[Any] = cursor.fetchall()
        except BaseException as error:
            # A connection in an unknown state is never lent again. A fault is then answered
            # by SQLAlchemy's own attempt (a fresh connection: a read may simply be repeated).
            connection.invalidate(error)
            if cancelled(error):
                # Not a fault to retry: the same statement would run out of time again.
                raise StatementTimedOut("a statement ran past its time limit") from error
            if isinstance(error, Exception):
                return None
            raise
        finally:
            connection.close()
        if plan.results is None:
            plan.results = _result_processors(plan.statement, self._dialect, cursor.description)
        if plan.results:
            rows = [_processed(row, plan.results) for row in rows]
        return rows

    def _observed(self) -> bool:
        dispatch = self._engine.dispatch
        return bool(self._engine.echo or dispatch.before_cursor_execute)

    def _plan(self, statement: sa.Executable) -> _Plan | None:
        try:
            return self._plans[statement]
        except KeyError:
            pass
        plan = _plan(statement, self._dialect) if isinstance(statement, sa.Select) else None
        if len(self._plans) >= _PLANS_CAPACITY:
            del self._plans[next(iter(self._plans))]
        self._plans[statement] = plan
        return plan


def _plan(statement: sa.Select[Any], dialect: Dialect) -> _Plan | None:
    compiled = statement.compile(dialect=dialect)
    if compiled.post_compile_params or any(
        bind.value is not None or bind.callable is not None for bind in compiled.binds.values()
    ):
        return None  # expands at execution, or carries its own values: SQLAlchemy's job
    binds = tuple(
        (compiled.escaped_bind_names.get(name, name), process)
        for name, bind in compiled.binds.items()
        if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
    )
    return _Plan(statement, compiled, binds)


def _result_processors(
    statement: sa.Select[Any], dialect: Dialect, description: Sequence[Sequence[Any]]
) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    columns = statement.selected_columns
    return tuple(
        (index, process)
        for index, (column, described) in enumerate(zip(columns, description, strict=True))
        if (process := column.type.dialect_impl(dialect).result_processor(dialect, described[1]))
        is not None
    )


def _processed(row: Sequence[Any], processors: Sequence[tuple[int, Callable[[Any], Any]]]) -> Any:
    values = list(row)
    for index, process in processors:
        values[index] = process(values[index])
    return tuple(values)
