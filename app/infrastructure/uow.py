"""The unit of work: one database connection per use case, and the one place that commits."""

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.infrastructure.repositories.idempotency_keys import SqlAlchemyIdempotencyKeyRepository
from app.infrastructure.repositories.todos import SqlAlchemyTodoRepository
from app.infrastructure.repositories.tokens import SqlAlchemyRefreshTokenRepository
from app.infrastructure.repositories.users import SqlAlchemyUserRepository


class SqlAlchemyUnitOfWork:
    """Repositories on one connection, taken from the pool at the first statement.

    Pooled connections are in autocommit (see db.py). A unit of work that may write turns
    its connection transactional; a `read_only` one leaves it as it is, so each read costs one
    round trip, with no BEGIN or ROLLBACK around it, and its commit() is an error, so a write
    can never slip through unseen.
    """

    def __init__(self, engine: AsyncEngine, *, read_only: bool = False) -> None:
        self._engine = engine
        self._read_only = read_only
        self._connection: AsyncConnection | None = None

    async def connection(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self._engine.connect()
            if not self._read_only:
                level = connection.default_isolation_level
                await connection.execution_options(isolation_level=level)
            self._connection = connection
        return self._connection

    async def __aenter__(self) -> Self:
        self.users = SqlAlchemyUserRepository(self.connection)
        self.todos = SqlAlchemyTodoRepository(self.connection)
        self.refresh_tokens = SqlAlchemyRefreshTokenRepository(self.connection)
        self.idempotency_keys = SqlAlchemyIdempotencyKeyRepository(self.connection)
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
