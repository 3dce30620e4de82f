"""What every SQL repository shares: statements run on its unit of work's one connection."""

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from app.infrastructure.db import Connect


class SqlRepository:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def _execute(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> sa.CursorResult[*tuple[Any, ...]]:
        return await (await self._connect()).execute(statement, parameters)
