"""What every SQL repository shares: its statements run through its unit of work."""

from collections.abc import Mapping
from typing import Any, Protocol, cast

import sqlalchemy as sa

AnyResult = sa.Result[*tuple[Any, ...]]


class Statements(Protocol):
    """The unit of work, as its repositories see it (uow.py)."""

    @property
    def dialect(self) -> str: ...
    async def execute(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> AnyResult: ...


class SqlRepository:
    def __init__(self, statements: Statements) -> None:
        self._statements = statements

    async def _execute(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> AnyResult:
        return await self._statements.execute(statement, parameters)

    async def _rowcount(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> int:
        """How many rows a write matched."""
        # A write runs on the unit of work's connection, whose result is the cursor's own.
        result = cast(sa.CursorResult[*tuple[Any, ...]], await self._execute(statement, parameters))
        return result.rowcount
