"""A pooled connection the server closed (app/infrastructure/uow.py): the statement that finds
it runs again on a fresh connection only where nothing of its unit of work can have committed,
a read or a transaction's first statement; a later statement of a transaction is never run
again, and what the transaction did before is gone with it."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.domain.projects import Project
from app.domain.todos import Todo, TodoDraft
from app.domain.users import Role, User
from app.infrastructure.db import create_engine
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from tests.conftest import empty_stores, on_postgres
from tests.fakes import a_todo, inbox_id
from tests.support import terminate_other_backends

pytestmark = on_postgres

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    await empty_stores(settings)
    engine = create_engine(settings.database_url, autocommit=True, pool_size=3)
    yield engine
    await engine.dispose()


async def _user(engine: AsyncEngine) -> User:
    ada = User(
        id=uuid.uuid4(),
        email="ada@x.io",
        password_hash="hash",
        full_name=None,
        role=Role.USER,
        is_active=True,
        created_at=NOW,
        updated_at=NOW,
    )
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await uow.users.add(ada)
        await uow.projects.add(Project.inbox(id=inbox_id(ada.id), owner_id=ada.id, now=NOW))
        await uow.commit()
    return ada


def _todo(owner: User, title: str) -> Todo:
    return a_todo(owner.id, NOW, TodoDraft(title=title))


async def _titles(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        result = await connection.exec_driver_sql("SELECT title FROM todos ORDER BY title")
        return [title for (title,) in result]


async def test_a_transactions_first_statement_runs_again_on_a_fresh_connection(
    engine: AsyncEngine, settings: Settings
) -> None:
    ada = await _user(engine)
    await terminate_other_backends(settings.database_url)
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await uow.todos.add(_todo(ada, "one"))  # finds the pooled connection dead
        await uow.todos.add(_todo(ada, "two"))
        await uow.commit()
    assert await _titles(engine) == ["one", "two"]  # each once


async def test_a_later_statement_of_a_transaction_is_never_run_again(
    engine: AsyncEngine, settings: Settings
) -> None:
    ada = await _user(engine)
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await uow.todos.add(_todo(ada, "one"))
        await terminate_other_backends(settings.database_url)
        with pytest.raises(DBAPIError) as raised:
            await uow.todos.add(_todo(ada, "two"))
        assert raised.value.connection_invalidated
    # "one" died with its transaction; "two" was not sent again without it.
    assert await _titles(engine) == []
    async with SqlAlchemyUnitOfWork(engine) as uow:  # and the pool serves the next one
        await uow.todos.add(_todo(ada, "three"))
        await uow.commit()
    assert await _titles(engine) == ["three"]


async def test_reads_through_sqlalchemy_also_run_again_on_a_fresh_connection(
    engine: AsyncEngine, settings: Settings
) -> None:
    """The read-only path when reads do not go through the driver (tracing on, SQLite)."""
    ada = await _user(engine)
    async with engine.connect(), engine.connect(), engine.connect():
        pass  # three pooled connections
    await terminate_other_backends(settings.database_url)
    async with SqlAlchemyUnitOfWork(engine, read_only=True) as uow:
        assert await uow.users.get(ada.id) == ada
        assert await uow.users.get(ada.id) == ada
