"""SyncService and the live events' rules on the fakes: pages bounded by `limit`, chains that
reach the exact state, tokens bound to their user and expiring, and who hears of what."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from app.application.activity import project_activity
from app.application.events import TODO_MOVED, EventService, LiveFeed, read_batch
from app.application.pagination import CursorCodec
from app.application.projects import ProjectService
from app.application.sync import SyncPage, SyncPosition, SyncService, SyncTokens
from app.application.todos import TodoService
from app.domain.activity import ActivityType
from app.domain.errors import InvalidSyncToken, SyncTokenExpired, TooManyStreams
from app.domain.projects import Membership, ProjectDraft, ProjectRole
from app.domain.todos import TodoChanges, TodoDraft
from app.domain.users import Actor
from app.infrastructure.live import InMemoryStreamSlots, InProcessActivitySignal
from tests.fakes import FakeClock, InMemoryUnitOfWork, RecordingAuditTrail, a_user, give_inbox

ADA = Actor.of(a_user(email="ada@x.io"))
BOB = Actor.of(a_user(email="bob@x.io"))


@pytest.fixture
def sync_tokens(cursors: CursorCodec, clock: FakeClock) -> SyncTokens:
    return SyncTokens(cursors, clock=clock, retention=timedelta(days=30))


@pytest.fixture
def service(uow: InMemoryUnitOfWork, clock: FakeClock, sync_tokens: SyncTokens) -> SyncService:
    for actor in (ADA, BOB):
        give_inbox(uow.state, actor.user_id, clock.now())
    return SyncService(uow, clock=clock, tokens=sync_tokens)


@pytest.fixture
def todos(uow: InMemoryUnitOfWork, clock: FakeClock, cursors: CursorCodec) -> TodoService:
    return TodoService(uow, clock=clock, cursors=cursors, audit=RecordingAuditTrail())


@pytest.fixture
def projects(uow: InMemoryUnitOfWork, clock: FakeClock, cursors: CursorCodec) -> ProjectService:
    return ProjectService(uow, clock=clock, cursors=cursors)


async def chain(
    service: SyncService, actor: Actor, token: str | None = None, limit: int = 500
) -> tuple[list[SyncPage], str]:
    pages = []
    while True:
        page = await service.sync(actor, token=token, limit=limit)
        pages.append(page)
        token = page.sync_token
        if not page.has_more:
            return pages, token


async def test_a_full_sync_chain_by_limit_holds_every_object_once_and_says_full(
    service: SyncService, todos: TodoService
) -> None:
    made = {(await todos.create(ADA, TodoDraft(title=f"t{n}")))[0].id for n in range(5)}
    pages, _ = await chain(service, ADA, limit=2)
    assert all(page.full for page in pages)
    assert all(len(page.projects) + len(page.todos) <= 2 for page in pages)
    assert [t.id for page in pages for t in page.todos] == sorted(made)
    assert [p.project.is_inbox for page in pages for p in page.projects] == [True]


async def test_changes_since_a_token_collapse_to_each_objects_current_state(
    service: SyncService, todos: TodoService
) -> None:
    todo, _ = await todos.create(ADA, TodoDraft(title="a"))
    _, token = await chain(service, ADA)
    await todos.update(ADA, todo.id, TodoChanges(title="b"))
    await todos.update(ADA, todo.id, TodoChanges(title="c"))
    gone, _ = await todos.create(ADA, TodoDraft(title="gone"))
    await todos.delete(ADA, gone.id, permanent=True)
    page = await service.sync(ADA, token=token, limit=500)
    assert (page.full, page.has_more) == (False, False)
    assert [t.title for t in page.todos] == ["c"]
    assert page.removed_todos == [gone.id]


async def test_a_token_is_bound_to_its_user_and_expires_after_the_retention(
    service: SyncService, clock: FakeClock
) -> None:
    _, token = await chain(service, ADA)
    with pytest.raises(InvalidSyncToken):
        await service.sync(BOB, token=token, limit=10)
    with pytest.raises(InvalidSyncToken):
        await service.sync(ADA, token=token[:-1], limit=10)
    clock.advance(timedelta(days=31))
    with pytest.raises(SyncTokenExpired):
        await service.sync(ADA, token=token, limit=10)


async def test_a_project_joined_comes_whole_and_one_left_is_removed(
    service: SyncService,
    todos: TodoService,
    projects: ProjectService,
    uow: InMemoryUnitOfWork,
    clock: FakeClock,
) -> None:
    project = (await projects.create(ADA, ProjectDraft(name="Shared"))).project
    for n in range(3):
        await todos.create(ADA, TodoDraft(title=f"s{n}"), project_id=project.id)
    _, token = await chain(service, BOB)
    await uow.memberships.add(Membership(project.id, BOB.user_id, ProjectRole.VIEWER, clock.now()))
    await uow.activity.add(
        project_activity(
            ActivityType.MEMBER_ADDED,
            actor_id=BOB.user_id,
            project_id=project.id,
            at=clock.now(),
            member_id=BOB.user_id,
        )
    )
    await uow.commit()
    pages, token = await chain(service, BOB, token=token, limit=2)
    assert pages[0].projects[0].project.id == project.id
    assert len({t.id for page in pages for t in page.todos}) == 3
    await projects.remove_member(ADA, project.id, BOB.user_id)
    page = await service.sync(BOB, token=token, limit=10)
    assert page.removed_projects == [project.id]


async def test_readers_of_the_old_project_only_hear_that_a_todo_moved(
    todos: TodoService, projects: ProjectService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    give_inbox(uow.state, ADA.user_id, clock.now())
    shared = (await projects.create(ADA, ProjectDraft(name="Shared"))).project
    private = (await projects.create(ADA, ProjectDraft(name="Private"))).project
    await uow.memberships.add(Membership(shared.id, BOB.user_id, ProjectRole.VIEWER, clock.now()))
    await uow.commit()
    todo, _ = await todos.create(ADA, TodoDraft(title="m"), project_id=shared.id)
    horizon = await uow.activity.horizon()
    await todos.update(ADA, todo.id, TodoChanges(project_id=private.id))
    batch = await read_batch(uow, (horizon, 0), user_id=None)
    [for_bob] = batch.events_for(BOB.user_id, after=(horizon, 0))
    [for_ada] = batch.events_for(ADA.user_id, after=(horizon, 0))
    assert (for_bob.type, for_bob.todo) == (TODO_MOVED, None)
    assert for_ada.type == "todo.updated"
    assert for_ada.todo is not None


async def test_a_stream_replays_then_goes_live_and_a_cap_refuses_one_more(
    uow: InMemoryUnitOfWork, clock: FakeClock, sync_tokens: SyncTokens, todos: TodoService
) -> None:
    give_inbox(uow.state, ADA.user_id, clock.now())
    signal = InProcessActivitySignal()
    feed = LiveFeed(lambda: uow, signal, poll_seconds=0.05)

    async def authenticate(token: str) -> Actor:
        return ADA

    events = EventService(
        unit_of_work=lambda: uow,
        feed=feed,
        tokens=sync_tokens,
        slots=InMemoryStreamSlots(),
        authenticate=authenticate,
        now=clock.now,
        max_streams=1,
    )
    expires = clock.now() + timedelta(minutes=15)
    first, _ = await todos.create(ADA, TodoDraft(title="before"))
    start = sync_tokens.encode(
        ADA.user_id, SyncPosition((await uow.activity.horizon() - 1, 1), clock.now())
    )
    await todos.create(ADA, TodoDraft(title="missed"))
    stream = await events.open(ADA, token=start, access_token="t", expires_at=expires)
    with pytest.raises(TooManyStreams):
        await events.open(ADA, token=None, access_token="t", expires_at=expires)
    items = stream.items()
    replayed: Any = await asyncio.wait_for(anext(items), 2)
    assert replayed.event.entry.type.value == "todo.created"
    live, _ = await todos.create(ADA, TodoDraft(title="live"))
    await signal.announce(await uow.activity.horizon() - 1)
    delivered: Any = await asyncio.wait_for(anext(items), 2)
    assert delivered.event.todo.id == live.id
    await items.aclose()
    await stream.close()
    await feed.aclose()
    assert first.id != live.id
