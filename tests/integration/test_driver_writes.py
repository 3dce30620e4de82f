"""A writing unit of work on PostgreSQL runs its statements built once through psycopg itself,
on the connection it holds (app/infrastructure/driver_reads.py, uow.py): in one transaction
that its commit() commits and its close() rolls back, whatever ran through which path; JSON
values stored as SQLAlchemy stores them; a foreign key a concurrent delete broke is the same
domain error as through SQLAlchemy."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application.activity import todo_activity
from app.application.ports import UnitOfWork
from app.bootstrap import Container
from app.config import Settings
from app.domain.activity import ActivityType
from app.domain.errors import ProjectNotFound
from app.domain.projects import Project
from app.domain.todos import Todo, TodoDraft
from app.domain.users import Actor, Role, User
from app.infrastructure.db import create_engine
from app.infrastructure.driver_reads import DriverReads
from app.infrastructure.repositories.todos import SqlAlchemyTodoRepository
from app.infrastructure.uow import SqlAlchemyUnitOfWork, SqlStatements
from tests.conftest import empty_stores, on_postgres

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    await empty_stores(settings)
    engine = create_engine(settings.database_url, autocommit=True, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
def through_sqlalchemy(engine: AsyncEngine) -> list[str]:
    """Every statement SQLAlchemy's Connection sends, as SQL text."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    return sent


async def _user_with_inbox(engine: AsyncEngine) -> tuple[User, Project]:
    user = User(
        id=uuid.uuid4(),
        email=f"{uuid.uuid4().hex}@x.io",
        password_hash="hash",
        full_name="Ada",
        role=Role.USER,
        is_active=True,
        created_at=NOW,
        updated_at=NOW,
    )
    inbox = Project.inbox(id=uuid.uuid4(), owner_id=user.id, now=NOW)
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await uow.users.add(user)
        await uow.projects.add(inbox)
        await uow.commit()
    return user, inbox


def _todo(user: User, project_id: uuid.UUID, title: str = "Buy milk") -> Todo:
    return Todo.new(
        TodoDraft(title=title, tags=("errands",)),
        id=uuid.uuid4(),
        project_id=project_id,
        owner_id=user.id,
        created_by=user.id,
        now=NOW,
    )


def _writing(engine: AsyncEngine) -> SqlAlchemyUnitOfWork:
    return SqlAlchemyUnitOfWork(engine, reads=DriverReads(engine, pool_size=2))


async def _titles(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        result = await connection.execute(sa.text("SELECT title FROM todos ORDER BY title"))
        return list(result.scalars())


@on_postgres
async def test_a_create_runs_through_the_driver_and_its_commit_keeps_it(
    engine: AsyncEngine, through_sqlalchemy: list[str]
) -> None:
    user, inbox = await _user_with_inbox(engine)
    todo = _todo(user, inbox.id)
    entry = todo_activity(
        ActivityType.TODO_CREATED, actor=Actor(user.id, Role.USER), todo=todo, at=NOW
    )
    through_sqlalchemy.clear()
    async with _writing(engine) as uow:
        assert await uow.todos.add(todo, max_owned=10)
        await uow.activity.add(entry)
        await uow.commit()
    # The quota's lock, the insert and the activity entry went through psycopg: SQLAlchemy's
    # Connection sent none of them.
    assert not [sql for sql in through_sqlalchemy if "todos" in sql or "activity" in sql]
    async with SqlAlchemyUnitOfWork(engine, read_only=True) as reads:
        assert await reads.todos.get(todo.id, reader_id=user.id) is not None
        (stored,) = await reads.activity.for_todo(todo.id, reader_id=user.id, after=None, limit=5)
    assert stored.changes == entry.changes  # JSON, as SQLAlchemy's JSON type stores it
    assert stored.audience == entry.audience


@on_postgres
async def test_an_edit_and_the_scheduled_jobs_batches_run_through_the_driver(
    engine: AsyncEngine, through_sqlalchemy: list[str]
) -> None:
    """Statements on a table with a column no edit writes (todos.due_announced_for) name
    their columns, so their text does not depend on the values given: built once."""
    user, inbox = await _user_with_inbox(engine)
    todo = _todo(user, inbox.id)
    through_sqlalchemy.clear()
    async with _writing(engine) as uow:
        assert await uow.todos.add(todo)
        assert await uow.todos.save(todo.trashed(NOW), expected_version=todo.version)
        (purged,) = await uow.todos.purge_trashed(trashed_before=NOW, limit=10)
        assert purged.id == todo.id
        assert await uow.todos.mark_due(now=NOW, limit=10) == []
        assert await uow.refresh_tokens.delete_expired(now=NOW, limit=10) == 0
        assert await uow.invitations.delete_expired(now=NOW, limit=10) == 0
        assert await uow.activity.prune(recorded_before=NOW, after=(0, 0), limit=10) == (0, None)
        await uow.commit()
    assert through_sqlalchemy == []
    assert await _titles(engine) == []


@on_postgres
async def test_what_ran_through_the_driver_is_rolled_back_without_a_commit(
    engine: AsyncEngine,
) -> None:
    user, inbox = await _user_with_inbox(engine)
    async with _writing(engine) as uow:
        assert await uow.todos.add(_todo(user, inbox.id), max_owned=10)
    assert await _titles(engine) == []
    # The connection went back to the pool out of its transaction: a second unit of work on
    # the same (one) pooled connection sees nothing half-done and commits its own.
    async with _writing(engine) as uow:
        assert await uow.todos.add(_todo(user, inbox.id, "second"), max_owned=10)
        await uow.commit()
    assert await _titles(engine) == ["second"]


@on_postgres
async def test_statements_after_a_commit_are_committed_by_the_next_commit(
    engine: AsyncEngine,
) -> None:
    user, inbox = await _user_with_inbox(engine)
    async with _writing(engine) as uow:
        assert await uow.todos.add(_todo(user, inbox.id, "first"), max_owned=10)
        await uow.commit()
        assert await uow.todos.add(_todo(user, inbox.id, "then"), max_owned=10)
        await uow.commit()
        assert await uow.todos.add(_todo(user, inbox.id, "never"), max_owned=10)
    assert await _titles(engine) == ["first", "then"]


@on_postgres
async def test_a_project_deleted_under_a_create_is_project_not_found(engine: AsyncEngine) -> None:
    user, _ = await _user_with_inbox(engine)
    with pytest.raises(ProjectNotFound):
        async with _writing(engine) as uow:
            await uow.todos.add(_todo(user, uuid.uuid4()), max_owned=10)
    assert await _titles(engine) == []


@on_postgres
async def test_the_composition_roots_units_of_work_write_through_the_driver(
    settings: Settings,
) -> None:
    await empty_stores(settings)
    container = Container(settings)
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(container.engine.sync_engine, "before_cursor_execute", record)
    user, _ = await _user_with_inbox(container.engine)
    sent.clear()
    try:
        async with container.unit_of_work() as uow:
            assert await uow.todos.add(_todo(user, (await _inbox(uow, user)).id), max_owned=10)
            await uow.commit()
    finally:
        await container.engine.dispose()
    assert sent == []  # every statement went through psycopg


async def _inbox(uow: UnitOfWork, user: User) -> Project:
    inbox = await uow.projects.inbox(user.id)
    assert inbox is not None
    return inbox


class _CountingReads(DriverReads):
    """The driver's path, counting the round trips a writing unit of work makes."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, pool_size=2)
        self.round_trips = 0

    async def batch(self, *args: Any, **kwargs: Any) -> Any:
        self.round_trips += 1
        return await super().batch(*args, **kwargs)


@on_postgres
async def test_writes_no_one_waits_on_ride_with_the_next_round_trip(engine: AsyncEngine) -> None:
    """The transaction's BEGIN goes with its first statement, the quota's lock with the insert,
    the activity entry with the COMMIT: a create is two round trips here (the use case's read
    of its project, a third, opens the transaction in the app)."""
    user, inbox = await _user_with_inbox(engine)
    todo = _todo(user, inbox.id)
    reads = _CountingReads(engine)
    announced: list[int] = []

    async def announce(txid: int) -> None:
        announced.append(txid)

    async with SqlAlchemyUnitOfWork(engine, reads=reads, committed=announce) as uow:
        assert await uow.todos.add(todo, max_owned=10)
        await uow.activity.add(
            todo_activity(
                ActivityType.TODO_CREATED, actor=Actor(user.id, Role.USER), todo=todo, at=NOW
            )
        )
        assert reads.round_trips == 1
        await uow.commit()
    assert reads.round_trips == 2
    assert len(announced) == 1  # the entry's position, known once it ran with the commit
    assert await _titles(engine) == ["Buy milk"]


_JOIN_NOWHERE = sa.text(
    "INSERT INTO memberships (project_id, user_id, role, added_at)"
    " VALUES (:project_id, :user_id, 'viewer', :added_at)"
)


@on_postgres
async def test_a_write_sent_with_the_commit_that_fails_fails_the_commit_and_keeps_nothing(
    engine: AsyncEngine,
) -> None:
    user, inbox = await _user_with_inbox(engine)
    statements = SqlStatements(engine, read_only=False, reads=DriverReads(engine, pool_size=2))
    try:
        assert await SqlAlchemyTodoRepository(statements).add(_todo(user, inbox.id), max_owned=10)
        gone = {"project_id": uuid.uuid4(), "user_id": user.id, "added_at": NOW}
        await statements.later(_JOIN_NOWHERE, gone)  # a project deleted meanwhile
        with pytest.raises(ProjectNotFound):
            await statements.commit()
    finally:
        await statements.close()
    assert await _titles(engine) == []
    # The connection went back to the pool usable, out of the failed transaction.
    async with _writing(engine) as uow:
        assert await uow.todos.add(_todo(user, inbox.id, "after"), max_owned=10)
        await uow.commit()
    assert await _titles(engine) == ["after"]
