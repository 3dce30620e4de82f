"""What every SQL repository shares: its statements run on its unit of work's connection."""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

# A row is its values in the statement's column order: a SQLAlchemy Row, or the driver's tuple
# when the read ran directly (direct_reads.py). Names come from the statement (`mapped`).
AnyRow = Sequence[Any]
Rows = Sequence[AnyRow]


def mapped(statement: sa.Select[Any], row: AnyRow) -> dict[str, Any]:
    """A row by column name."""
    return dict(zip(statement.selected_columns.keys(), row, strict=True))


class Statements(Protocol):
    """A unit of work's connection, as its repositories see it (uow.py's SqlStatements)."""

    @property
    def dialect(self) -> str: ...
    async def rows(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> Rows:
        """What a statement returns (a query, or a write's RETURNING), fetched in full."""

    async def write(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> int:
        """Runs a write; how many rows it matched."""


class SqlRepository:
    def __init__(self, statements: Statements) -> None:
        self._statements = statements

    async def _rows(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> Rows:
        return await self._statements.rows(statement, parameters)

    async def _first(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> AnyRow | None:
        rows = await self._rows(statement, parameters)
        return rows[0] if rows else None

    async def _write(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> int:
        return await self._statements.write(statement, parameters)
