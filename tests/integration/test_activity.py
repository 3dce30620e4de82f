"""The activity log on the real database: an entry commits with its write or not at all, and on
PostgreSQL a reader bounded by the horizon never skips an entry whose transaction commits late
(the position scheme in app/infrastructure/repositories/activity.py)."""

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application.activity import project_activity
from app.bootstrap import Container
from app.domain.activity import ActivityType
from app.domain.projects import Project
from app.domain.todos import TodoDraft
from app.domain.users import Actor
from app.infrastructure.db import create_engine
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from tests.conftest import on_postgres
from tests.support import API, MakeUser


class CommitFails(Exception):
    pass


async def _count(container: Container, table: str) -> int:
    async with container.engine.connect() as connection:
        result = await connection.execute(sa.text(f"SELECT count(*) FROM {table}"))  # noqa: S608
        return int(result.scalar_one())


async def test_activity_is_written_in_the_writes_transaction_a_failed_write_leaves_none(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada = await make_user()
    me = (await client.get(f"{API}/users/me", headers=ada.headers)).json()
    async with container.unit_of_work() as uow:
        user = await uow.users.get(UUID(me["id"]))
    assert user is not None
    actor = Actor.of(user)
    entries, todos = await _count(container, "activity"), await _count(container, "todos")

    async with container.unit_of_work() as uow:

        async def failing_commit() -> None:
            raise CommitFails

        uow.commit = failing_commit  # type: ignore[method-assign]
        with pytest.raises(CommitFails):
            await container.todo_service(uow).create(actor, TodoDraft(title="never"))
        # Within the transaction, before the (failed) commit, the entry was there with the todo.
        assert await uow.activity.for_project(
            (await uow.projects.inbox(actor.user_id) or _no_inbox()).id, after=None, limit=1
        )
    assert (await _count(container, "activity"), await _count(container, "todos")) == (
        entries,
        todos,
    )

    async with container.unit_of_work() as uow:
        todo, _ = await container.todo_service(uow).create(actor, TodoDraft(title="kept"))
    assert (await _count(container, "activity"), await _count(container, "todos")) == (
        entries + 1,
        todos + 1,
    )
    async with container.unit_of_work(read_only=True) as uow:
        [entry] = await uow.activity.for_todo(todo.id, reader_id=None, after=None, limit=5)
    assert (entry.type, entry.todo_id, entry.actor_id) == (
        ActivityType.TODO_CREATED,
        todo.id,
        actor.user_id,
    )


def _no_inbox() -> Project:
    raise AssertionError("every account has an Inbox")


@pytest.fixture
async def engine(container: Container, settings: Any) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database_url)
    yield engine
    await engine.dispose()


@on_postgres
async def test_a_reader_bounded_by_the_horizon_never_skips_a_late_commit(
    client: AsyncClient, make_user: MakeUser, container: Container, engine: AsyncEngine
) -> None:
    """Transaction A writes first (a lower txid) and commits last; B writes and commits in
    between. A reader at that moment sees B's entry committed, but the horizon stays at or
    below A's position: a reader that reads only below the horizon and resumes from it sees
    A's entry later, instead of jumping past it."""
    ada = await make_user()
    me = (await client.get(f"{API}/users/me", headers=ada.headers)).json()
    project_id = UUID(
        (await client.get(f"{API}/projects", headers=ada.headers)).json()["items"][0]["id"]
    )

    def entry() -> Any:
        return project_activity(
            ActivityType.PROJECT_UPDATED,
            actor_id=UUID(me["id"]),
            project_id=project_id,
            at=container.clock.now(),
        )

    async with SqlAlchemyUnitOfWork(engine) as early, SqlAlchemyUnitOfWork(engine) as late:
        first, second = entry(), entry()
        await early.activity.add(first)
        await late.activity.add(second)
        await late.commit()
        async with container.unit_of_work(read_only=True) as reader:
            horizon = await reader.activity.horizon()
            seen = await reader.activity.for_project(project_id, after=None, limit=10)
        assert second.id in {e.id for e in seen}
        assert first.id not in {e.id for e in seen}
        await early.commit()
    async with container.unit_of_work(read_only=True) as reader:
        later_horizon = await reader.activity.horizon()
        entries = {
            e.id: e for e in await reader.activity.for_project(project_id, after=None, limit=10)
        }
    early_position, late_position = entries[first.id].position, entries[second.id].position
    assert early_position is not None
    assert late_position is not None
    # B's entry was visible above the horizon; A's, committed later, is below B's position: a
    # reader that had read "up to B" would have skipped it, one bounded by the horizon did not.
    assert horizon <= early_position[0] < late_position[0]
    # The horizon moves on (how far depends on every transaction of the server, all of which
    # hold it back while they run, so no more is asserted).
    assert later_horizon >= horizon
