"""The unit of work: one session per request, and the one place that commits."""

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.infrastructure.repositories.todos import SqlAlchemyTodoRepository
from app.infrastructure.repositories.tokens import SqlAlchemyRefreshTokenRepository
from app.infrastructure.repositories.users import SqlAlchemyUserRepository


class SqlAlchemyUnitOfWork:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def __aenter__(self) -> Self:
        self._session = self._sessionmaker()
        self.users = SqlAlchemyUserRepository(self._session)
        self.todos = SqlAlchemyTodoRepository(self._session)
        self.refresh_tokens = SqlAlchemyRefreshTokenRepository(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever was not committed is rolled back: a failed use case writes nothing.
        await self._session.close()

    async def commit(self) -> None:
        await self._session.commit()

    async def rollback(self) -> None:
        await self._session.rollback()
