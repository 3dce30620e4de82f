"""What every SQL repository shares: its statements run on its unit of work's connection."""

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

# A row is a fresh dict by column name, the caller's to keep or change (rows.py turns it into
# a domain object in place). Never read by position: columns are matched by name.
Row = dict[str, Any]
Rows = list[Row]
S = TypeVar("S", bound=sa.Executable)


def in_locked_batch(
    column: sa.ColumnElement[Any], batch: sa.Select[Any]
) -> dict[str, sa.ColumnElement[bool]]:
    """By dialect: `column` among the ids a batch-choosing subquery returns (one that locks
    what it takes, FOR UPDATE SKIP LOCKED, up to a LIMIT), for the write on them. On PostgreSQL
    `= ANY(ARRAY(subquery))`, whose subquery runs once, before the write: as `IN (subquery)`
    the planner may run it again for each row written (a nested loop), each run locking and
    choosing anew. SQLite has no FOR UPDATE (one writer at a time) and no arrays."""
    return {
        "postgresql": column == sa.any_(sa.func.array(batch.scalar_subquery())),
        "sqlite": column.in_(batch),
    }


PLANNED_PER_RUN = "todo_planned_per_run"


def planned_per_run(statement: S) -> S:
    """`statement`, never prepared by the driver, so that PostgreSQL plans each run for its own
    values: a list's, whose best plan depends on them (a search that matches nothing wants
    the trigram index, an owner's newest rows the keyset one; a generic plan walked a large
    owner's every row for such a search). Others may be prepared and reuse a plan (db.py)."""
    return statement.execution_options(**{PLANNED_PER_RUN: True})


def like_escaped(text: str) -> str:
    """`text` with LIKE's wildcards taken literally, for a pattern that says ESCAPE '/'."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


class Statements(Protocol):
    """A unit of work's connection, as its repositories see it (uow.py's SqlStatements)."""

    @property
    def dialect(self) -> str: ...
    async def rows(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> Rows:
        """What a statement returns (a query, or a write's RETURNING), fetched in full."""

    async def write(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> int:
        """Runs a write; how many rows it matched."""

    async def later(
        self,
        statement: sa.Executable,
        parameters: Mapping[str, Any] | None,
        *,
        returned: Callable[[Rows], None] | None = None,
    ) -> None:
        """A write no caller waits on, sent with the next statement or the commit where the
        connection allows (its error is theirs); `returned` gets its rows once it has run."""


class SqlRepository:
    def __init__(self, statements: Statements) -> None:
        self._statements = statements

    async def _rows(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> Rows:
        return await self._statements.rows(statement, parameters)

    async def _first(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> Row | None:
        rows = await self._rows(statement, parameters)
        return rows[0] if rows else None

    async def _write(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> int:
        return await self._statements.write(statement, parameters)
