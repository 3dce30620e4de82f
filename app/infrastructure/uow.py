"""The unit of work: one database connection per use case, and the one place that commits."""

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from app.infrastructure.repositories.base import AnyResult
from app.infrastructure.repositories.idempotency_keys import SqlAlchemyIdempotencyKeyRepository
from app.infrastructure.repositories.todos import SqlAlchemyTodoRepository
from app.infrastructure.repositories.tokens import SqlAlchemyRefreshTokenRepository
from app.infrastructure.repositories.users import SqlAlchemyUserRepository

_WRITES = (sa.Insert, sa.Update, sa.Delete)


class SqlAlchemyUnitOfWork:
    """Repositories on one connection, taken from the pool at the first statement.

    Pooled connections are in autocommit (see db.py). A unit of work that may write turns
    its connection transactional. A `read_only` one holds no connection at all: reads in
    autocommit share no snapshot, so each takes a connection for itself and gives it back in
    the same step, in one pass through SQLAlchemy's synchronous core (one greenlet, where the
    async API spends three: connect, execute, close). It needs no closing, and a write or a
    commit() in it is an error, so a write can never slip through unseen.
    """

    def __init__(self, engine: AsyncEngine, *, read_only: bool = False) -> None:
        self._engine = engine
        self._read_only = read_only
        self._connection: AsyncConnection | None = None
        self.dialect = engine.dialect.name
        self.users = SqlAlchemyUserRepository(self)
        self.todos = SqlAlchemyTodoRepository(self)
        self.refresh_tokens = SqlAlchemyRefreshTokenRepository(self)
        self.idempotency_keys = SqlAlchemyIdempotencyKeyRepository(self)

    async def execute(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> AnyResult:
        if not self._read_only:
            return await (await self._connect()).execute(statement, parameters)
        if isinstance(statement, _WRITES):
            raise RuntimeError("a write in a read-only unit of work")
        return await greenlet_spawn(self._read, statement, parameters)

    def _read(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> Any:
        with self._engine.sync_engine.connect() as connection:
            # Fetched in full (a page at most) before the connection goes back.
            return connection.execute(statement, parameters).freeze()()

    async def _connect(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self._engine.connect()
            level = connection.default_isolation_level
            await connection.execution_options(isolation_level=level)
            self._connection = connection
        return self._connection

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever was not committed is rolled back: a failed use case writes nothing.
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    async def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("commit() in a read-only unit of work")
        if self._connection is not None:
            await self._connection.commit()

    async def rollback(self) -> None:
        if self._connection is not None:
            await self._connection.rollback()
