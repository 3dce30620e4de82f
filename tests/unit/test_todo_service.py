"""TodoService: ownership, permissions, versions, trash, idempotency, lists and stats."""

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from app.application.pagination import Page
from app.application.todos import TodoService
from app.domain.errors import (
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidCursor,
    PermissionDenied,
    PreconditionFailed,
    TodoNotFound,
)
from app.domain.projects import ProjectRole
from app.domain.todos import (
    DEFAULT_SORT,
    Priority,
    SortField,
    SortKey,
    Todo,
    TodoChanges,
    TodoDraft,
    TodoFilter,
    parse_sort,
)
from app.domain.users import ROLE_PERMISSIONS, Actor, Permission, Role
from tests.fakes import (
    FakeClock,
    InMemoryState,
    InMemoryTodoRepository,
    InMemoryUnitOfWork,
    a_todo,
    a_user,
    give_inbox,
)

ALICE = Actor.of(a_user(email="alice@example.io"))
BOB = Actor.of(a_user(email="bob@example.io"))
ADMIN = Actor.of(a_user(email="admin@example.io", role=Role.ADMIN))
GUEST = Actor.of(a_user(email="guest@example.io", role=Role.GUEST))
AUDITOR = Actor(
    user_id=uuid4(),
    role=Role.USER,
    permissions=ROLE_PERMISSIONS[Role.USER] | {Permission.TODOS_READ_ALL},
)
"""Reads everyone's todos but may write only their own."""


async def _seed(uow: InMemoryUnitOfWork, todo: Todo) -> Todo:
    await uow.todos.add(todo)
    await uow.commit()
    return todo


def _todo(owner: Actor, now: datetime, draft: TodoDraft | None = None) -> Todo:
    """A todo in its owner's Inbox (which the `inboxes` fixture made)."""
    return a_todo(owner.user_id, now, draft)


@pytest.fixture(autouse=True)
async def inboxes(uow: InMemoryUnitOfWork, clock: FakeClock) -> None:
    """Every actor's Inbox, as their account's creation made it."""
    for actor in (ALICE, BOB, ADMIN, GUEST, AUDITOR):
        give_inbox(uow.state, actor.user_id, clock.now())
    await uow.commit()
    uow.commits = 0  # the tests count their own


async def _list(
    todos: TodoService,
    actor: Actor,
    query: TodoFilter | None = None,
    *,
    sort: Sequence[SortKey] = DEFAULT_SORT,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Todo]:
    return await todos.list(actor, query or TodoFilter(), sort=sort, limit=limit, cursor=cursor)


# Create and read


async def test_create_stores_a_new_todo_owned_by_the_caller(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo, replayed = await todos.create(ALICE, TodoDraft(title=" Buy milk ", tags=("Home",)))

    assert not replayed
    assert todo.owner_id == ALICE.user_id
    assert (todo.title, todo.tags, todo.version) == ("Buy milk", ("home",), 1)
    assert todo.created_at == clock.now()
    assert await todos.get(ALICE, todo.id) == todo
    assert uow.commits == 1


async def test_someone_elses_todo_is_not_found_never_forbidden(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(BOB, clock.now()))

    with pytest.raises(TodoNotFound):
        await todos.get(ALICE, todo.id)
    with pytest.raises(TodoNotFound):
        await todos.update(ALICE, todo.id, TodoChanges(title="mine now"))
    with pytest.raises(TodoNotFound):
        await todos.delete(ALICE, todo.id)
    with pytest.raises(TodoNotFound):
        await todos.delete(ALICE, todo.id, permanent=True)
    assert uow.todos.stored(todo.id) == todo


async def test_unknown_todo_is_not_found(todos: TodoService) -> None:
    with pytest.raises(TodoNotFound):
        await todos.get(ALICE, uuid4())


async def test_guest_reads_but_every_write_is_permission_denied(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    own = await _seed(uow, _todo(GUEST, clock.now()))
    trashed = await _seed(uow, _todo(GUEST, clock.now()).trashed(clock.now()))

    assert await todos.get(GUEST, own.id) == own
    with pytest.raises(PermissionDenied):
        await todos.create(GUEST, TodoDraft(title="t"))
    with pytest.raises(PermissionDenied):
        await todos.create(GUEST, TodoDraft(title="t"), idempotency_key="k")
    with pytest.raises(PermissionDenied):
        await todos.update(GUEST, own.id, TodoChanges(completed=True))
    with pytest.raises(PermissionDenied):
        await todos.delete(GUEST, own.id)
    with pytest.raises(PermissionDenied):
        await todos.restore(GUEST, trashed.id)
    assert uow.todos.stored(own.id) == own
    assert len(uow.state.todos) == 2


async def test_admin_reads_and_writes_everyones_todos(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(ALICE, clock.now()))

    assert await todos.get(ADMIN, todo.id) == todo
    updated = await todos.update(ADMIN, todo.id, TodoChanges(priority=Priority.URGENT))
    assert updated.priority is Priority.URGENT
    assert updated.owner_id == ALICE.user_id


async def test_read_all_without_write_all_sees_but_cannot_change_others_todos(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(ALICE, clock.now()))

    assert await todos.get(AUDITOR, todo.id) == todo
    with pytest.raises(PermissionDenied):
        await todos.update(AUDITOR, todo.id, TodoChanges(title="edited"))
    with pytest.raises(PermissionDenied):
        await todos.delete(AUDITOR, todo.id)
    assert uow.todos.stored(todo.id) == todo


# Update and versions


async def test_update_applies_the_changes_as_a_new_version(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(ALICE, clock.now()))
    clock.advance(timedelta(minutes=1))

    updated = await todos.update(
        ALICE, todo.id, TodoChanges(completed=True), expected_version=todo.version
    )

    assert updated.version == 2
    assert updated.completed_at == clock.now()
    assert uow.todos.stored(todo.id) == updated


async def test_stale_version_is_refused_and_changes_nothing(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(ALICE, clock.now()))
    current = await todos.update(ALICE, todo.id, TodoChanges(title="v2"))
    commits = uow.commits

    with pytest.raises(PreconditionFailed):
        await todos.update(ALICE, todo.id, TodoChanges(title="v3"), expected_version=1)
    with pytest.raises(PreconditionFailed):
        await todos.delete(ALICE, todo.id, expected_version=1)

    assert uow.todos.stored(todo.id) == current
    assert uow.commits == commits


async def test_stale_version_on_permanent_delete_from_the_trash_keeps_the_todo(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(ALICE, clock.now()))
    await todos.delete(ALICE, todo.id)
    trashed = uow.todos.stored(todo.id)

    with pytest.raises(PreconditionFailed):
        await todos.delete(ALICE, todo.id, permanent=True, expected_version=1)

    assert trashed is not None
    assert uow.todos.stored(todo.id) == trashed


async def test_no_op_update_keeps_the_version(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(ALICE, clock.now()))
    clock.advance(timedelta(minutes=1))

    same = await todos.update(ALICE, todo.id, TodoChanges(title="Buy milk"), expected_version=1)

    assert same == todo
    assert uow.todos.stored(todo.id) == todo


class RacingTodoRepository(InMemoryTodoRepository):
    """After each of our first `races` reads, another writer commits a change to the todo."""

    def __init__(self, uow: InMemoryUnitOfWork, *, races: int) -> None:
        super().__init__(uow.state)
        self._uow = uow
        self.races = races

    async def get(
        self, todo_id: UUID, *, reader_id: UUID
    ) -> tuple[Todo, ProjectRole | None] | None:
        found = await super().get(todo_id, reader_id=reader_id)
        if found is not None and self.races > 0:
            self.races -= 1
            todo = found[0]
            rival = todo.apply(TodoChanges(description=f"rival {todo.version}"), todo.updated_at)
            await super().save(rival, expected_version=todo.version)
            await self._uow.commit()
        return found


async def test_concurrent_write_without_if_match_is_retried_on_the_fresh_version(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(ALICE, clock.now()))
    uow.todos = RacingTodoRepository(uow, races=1)

    updated = await todos.update(ALICE, todo.id, TodoChanges(title="ours"))

    assert updated.version == 3  # 1, the rival's 2, then ours
    assert (updated.title, updated.description) == ("ours", "rival 1")
    assert uow.todos.stored(todo.id) == updated
    assert uow.rollbacks == 1


async def test_concurrent_write_with_if_match_is_precondition_failed(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(ALICE, clock.now()))
    uow.todos = RacingTodoRepository(uow, races=1)

    with pytest.raises(PreconditionFailed):
        await todos.update(ALICE, todo.id, TodoChanges(title="ours"), expected_version=1)

    stored = uow.todos.stored(todo.id)
    assert stored is not None
    assert stored.title == "Buy milk"


async def test_update_gives_up_after_losing_every_race(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(ALICE, clock.now()))
    uow.todos = RacingTodoRepository(uow, races=100)

    with pytest.raises(PreconditionFailed):
        await todos.update(ALICE, todo.id, TodoChanges(title="ours"))

    stored = uow.todos.stored(todo.id)
    assert stored is not None
    assert stored.title == "Buy milk"


# Trash


async def test_soft_delete_hides_the_todo_until_restored(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(ALICE, clock.now()))

    await todos.delete(ALICE, todo.id, expected_version=1)

    with pytest.raises(TodoNotFound):
        await todos.get(ALICE, todo.id)
    with pytest.raises(TodoNotFound):
        await todos.update(ALICE, todo.id, TodoChanges(title="x"))
    assert [t.id for t in (await _list(todos, ALICE)).items] == []
    trash = await _list(todos, ALICE, TodoFilter(deleted=True))
    assert [t.id for t in trash.items] == [todo.id]
    assert trash.items[0].version == 2

    restored = await todos.restore(ALICE, todo.id)

    assert not restored.is_deleted
    assert restored.version == 3
    assert await todos.get(ALICE, todo.id) == restored
    assert (await _list(todos, ALICE, TodoFilter(deleted=True))).items == []


async def test_restoring_a_live_todo_returns_it_unchanged(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(ALICE, clock.now()))
    clock.advance(timedelta(minutes=1))

    assert await todos.restore(ALICE, todo.id) == todo  # idempotent: a retry succeeds
    assert await todos.get(ALICE, todo.id) == todo  # nothing written: same version, same times


async def test_permanent_delete_empties_a_todo_from_the_trash(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    todo = await _seed(uow, _todo(ALICE, clock.now()))
    await todos.delete(ALICE, todo.id)

    await todos.delete(ALICE, todo.id, permanent=True)

    assert uow.todos.stored(todo.id) is None
    assert (await _list(todos, ALICE, TodoFilter(deleted=True))).items == []


# Idempotency


async def test_same_key_and_body_replays_the_same_todo_and_creates_nothing(
    todos: TodoService, uow: InMemoryUnitOfWork
) -> None:
    draft = TodoDraft(title="Pay rent", priority=Priority.HIGH)
    first, first_replayed = await todos.create(ALICE, draft, idempotency_key="key-1")

    again, replayed = await todos.create(
        ALICE, TodoDraft(title="Pay rent", priority=Priority.HIGH), idempotency_key="key-1"
    )

    assert not first_replayed
    assert replayed
    assert again == first
    assert list(uow.state.todos) == [first.id]


async def test_same_key_with_a_different_body_is_idempotency_key_reused(
    todos: TodoService, uow: InMemoryUnitOfWork
) -> None:
    await todos.create(ALICE, TodoDraft(title="Pay rent"), idempotency_key="key-1")

    with pytest.raises(IdempotencyKeyReused):
        await todos.create(ALICE, TodoDraft(title="Pay the rent"), idempotency_key="key-1")

    assert len(uow.state.todos) == 1


async def test_same_key_from_another_user_is_a_separate_request(
    todos: TodoService, uow: InMemoryUnitOfWork
) -> None:
    draft = TodoDraft(title="Pay rent")
    alices, _ = await todos.create(ALICE, draft, idempotency_key="key-1")

    bobs, replayed = await todos.create(BOB, draft, idempotency_key="key-1")

    assert not replayed
    assert bobs.id != alices.id
    assert bobs.owner_id == BOB.user_id


class GatedTodoRepository(InMemoryTodoRepository):
    """`add` waits at a gate, so a test can act while the first request is in flight."""

    def __init__(self, state: InMemoryState) -> None:
        super().__init__(state)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def add(self, todo: Todo, *, max_owned: int | None = None) -> bool:
        self.entered.set()
        await self.gate.wait()
        return await super().add(todo, max_owned=max_owned)


async def test_same_key_while_the_first_is_in_flight_is_idempotency_key_in_flight(
    todos: TodoService, uow: InMemoryUnitOfWork
) -> None:
    gated = GatedTodoRepository(uow.state)
    uow.todos = gated
    draft = TodoDraft(title="Pay rent")
    first = asyncio.create_task(todos.create(ALICE, draft, idempotency_key="key-1"))
    await asyncio.wait_for(gated.entered.wait(), timeout=1)

    with pytest.raises(IdempotencyKeyInFlight):
        await todos.create(ALICE, draft, idempotency_key="key-1")

    gated.gate.set()
    todo, replayed = await asyncio.wait_for(first, timeout=1)
    assert not replayed
    assert (await todos.create(ALICE, draft, idempotency_key="key-1")) == (todo, True)


class FailingOnceTodoRepository(InMemoryTodoRepository):
    def __init__(self, state: InMemoryState) -> None:
        super().__init__(state)
        self.failures = 1

    async def add(self, todo: Todo, *, max_owned: int | None = None) -> bool:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the database went away")
        return await super().add(todo, max_owned=max_owned)


async def test_failed_first_request_frees_its_key_for_a_retry(
    todos: TodoService, uow: InMemoryUnitOfWork
) -> None:
    uow.todos = FailingOnceTodoRepository(uow.state)
    draft = TodoDraft(title="Pay rent")
    with pytest.raises(RuntimeError):
        async with uow:  # as a request runs it: what it did not commit is rolled back
            await todos.create(ALICE, draft, idempotency_key="key-1")
    assert uow.state.idempotency_keys == {}

    todo, replayed = await todos.create(ALICE, draft, idempotency_key="key-1")

    assert not replayed
    assert list(uow.state.todos) == [todo.id]


async def test_create_without_a_key_records_no_key(
    todos: TodoService, uow: InMemoryUnitOfWork
) -> None:
    await todos.create(ALICE, TodoDraft(title="Pay rent"))

    assert uow.state.idempotency_keys == {}
    assert uow.commits == 1


async def test_key_and_todo_are_committed_together_once(
    todos: TodoService, uow: InMemoryUnitOfWork
) -> None:
    todo, _ = await todos.create(ALICE, TodoDraft(title="Pay rent"), idempotency_key="key-1")

    assert uow.commits == 1
    assert uow.state.idempotency_keys[(ALICE.user_id, "key-1")].todo_id == todo.id


async def test_key_replays_until_24_hours_have_passed(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    draft = TodoDraft(title="Pay rent")
    first, _ = await todos.create(ALICE, draft, idempotency_key="key-1")

    clock.advance(timedelta(hours=24) - timedelta(seconds=1))
    assert await todos.create(ALICE, draft, idempotency_key="key-1") == (first, True)


async def test_key_older_than_24_hours_is_treated_as_absent(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    await todos.create(ALICE, TodoDraft(title="Pay rent"), idempotency_key="key-1")
    clock.advance(timedelta(hours=24))

    # Another body too: the old record no longer binds the key.
    second, replayed = await todos.create(
        ALICE, TodoDraft(title="Pay the rent"), idempotency_key="key-1"
    )

    assert not replayed
    assert len(uow.state.todos) == 2
    assert uow.state.idempotency_keys[(ALICE.user_id, "key-1")].todo_id == second.id


async def test_a_new_key_sweeps_expired_ones(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    await todos.create(BOB, TodoDraft(title="old"), idempotency_key="old")
    clock.advance(timedelta(hours=12))
    await todos.create(BOB, TodoDraft(title="recent"), idempotency_key="recent")
    clock.advance(timedelta(hours=12))

    await todos.create(ALICE, TodoDraft(title="new"), idempotency_key="new")

    assert set(uow.state.idempotency_keys) == {(BOB.user_id, "recent"), (ALICE.user_id, "new")}


async def test_replay_of_a_todo_deleted_for_good_is_not_found(
    todos: TodoService,
) -> None:
    draft = TodoDraft(title="Pay rent")
    todo, _ = await todos.create(ALICE, draft, idempotency_key="key-1")
    await todos.delete(ALICE, todo.id)
    await todos.delete(ALICE, todo.id, permanent=True)

    with pytest.raises(TodoNotFound):
        await todos.create(ALICE, draft, idempotency_key="key-1")


# Lists


async def test_list_shows_only_the_callers_own_todos(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    mine = await _seed(uow, _todo(ALICE, clock.now()))
    await _seed(uow, _todo(BOB, clock.now()))

    assert [t.id for t in (await _list(todos, ALICE)).items] == [mine.id]
    assert [
        t.id for t in (await _list(todos, ALICE, TodoFilter(owner_id=ALICE.user_id))).items
    ] == [mine.id]


async def test_owner_id_filter_without_read_all_is_permission_denied(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    await _seed(uow, _todo(BOB, clock.now()))

    with pytest.raises(PermissionDenied):
        await _list(todos, ALICE, TodoFilter(owner_id=BOB.user_id))


async def test_admin_lists_their_own_projects_or_one_owners(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    await _seed(uow, _todo(ALICE, clock.now()))
    bobs = await _seed(uow, _todo(BOB, clock.now()))

    own = await _list(todos, ADMIN)
    only_bob = await _list(todos, ADMIN, TodoFilter(owner_id=BOB.user_id))

    assert own.items == []  # todos:read_all adds no project to the admin's own list
    assert [t.id for t in only_bob.items] == [bobs.id]


async def test_list_filters_combine(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    now = clock.now()
    hour = timedelta(hours=1)

    async def add(draft: TodoDraft) -> UUID:
        return (await _seed(uow, _todo(ALICE, now, draft))).id

    milk = await add(TodoDraft(title="Buy MILK", tags=("home", "shop"), due_at=now - hour))
    report = await add(
        TodoDraft(
            title="Report",
            description="with milk stats",
            priority=Priority.URGENT,
            tags=("work",),
            due_at=now + hour,
        )
    )
    done = await add(
        TodoDraft(title="Done", completed=True, priority=Priority.HIGH, due_at=now - hour)
    )
    someday = await add(TodoDraft(title="Someday", priority=Priority.LOW, tags=("home",)))
    trashed = await _seed(uow, _todo(ALICE, now, TodoDraft(title="milk")).trashed(now))

    async def ids(query: TodoFilter) -> set[UUID]:
        return {t.id for t in (await _list(todos, ALICE, query)).items}

    assert await ids(TodoFilter()) == {milk, report, done, someday}
    assert await ids(TodoFilter(completed=True)) == {done}
    assert await ids(TodoFilter(completed=False)) == {milk, report, someday}
    assert await ids(TodoFilter(priorities=frozenset({Priority.HIGH, Priority.URGENT}))) == {
        report,
        done,
    }
    assert await ids(TodoFilter(tags=("home",))) == {milk, someday}
    assert await ids(TodoFilter(tags=("home", "shop"))) == {milk}
    assert await ids(TodoFilter(text="milk")) == {milk, report}
    assert await ids(TodoFilter(due_before=now)) == {milk, done}
    assert await ids(TodoFilter(due_after=now)) == {report}
    assert await ids(TodoFilter(overdue=True)) == {milk}
    assert await ids(TodoFilter(overdue=False)) == {report, done, someday}
    assert await ids(TodoFilter(text="milk", overdue=False)) == {report}
    assert await ids(TodoFilter(deleted=True)) == {trashed.id}


def _expected_order(rows: Sequence[Todo], sort: Sequence[SortKey]) -> list[UUID]:
    """The documented sort order (docs/http.md), spelled independently of the fake: stable
    sorts, last key first."""
    values: dict[SortField, Callable[[Todo], Any]] = {
        SortField.CREATED_AT: lambda t: t.created_at,
        SortField.UPDATED_AT: lambda t: t.updated_at,
        SortField.DUE_AT: lambda t: t.due_at,
        SortField.PRIORITY: lambda t: t.priority.rank,
        SortField.TITLE: lambda t: t.title,
    }
    ordered = sorted(rows, key=lambda t: t.id, reverse=sort[-1].descending)
    for key in reversed(sort):
        value = values[key.field]
        present = [t for t in ordered if value(t) is not None]
        missing = [t for t in ordered if value(t) is None]  # nulls last, either direction
        ordered = sorted(present, key=value, reverse=key.descending) + missing
    return [t.id for t in ordered]


@pytest.mark.parametrize(
    "spec",
    [
        "-created_at",
        "created_at",
        "due_at",
        "-due_at",
        "-priority,due_at",
        "priority,-title",
        "title",
        "-updated_at,priority",
        "due_at,-priority,title",
    ],
)
async def test_pages_walk_every_todo_in_sort_order_without_skips_or_repeats(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock, spec: str
) -> None:
    start = clock.now()
    # Few distinct values, so ties and nulls abound and the id must break them.
    for i in range(23):
        clock.set(start + timedelta(seconds=i // 4))
        draft = TodoDraft(
            title=f"task {i % 3}",
            priority=Priority.from_rank(i % 4),
            due_at=None if i % 3 == 0 else start + timedelta(days=i % 2),
        )
        todo = await _seed(uow, _todo(ALICE, clock.now(), draft))
        if i % 5 == 0:  # some edited later, so updated_at differs from created_at
            edited = todo.apply(TodoChanges(description="edited"), start + timedelta(hours=i % 2))
            assert await uow.todos.save(edited, expected_version=todo.version)
            await uow.commit()
    sort = parse_sort(spec)

    seen: list[UUID] = []
    cursor: str | None = None
    while True:
        page = await _list(todos, ALICE, sort=sort, limit=4, cursor=cursor)
        assert len(page.items) <= 4
        seen.extend(t.id for t in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == _expected_order(list(uow.state.todos.values()), sort)


async def test_cursor_for_other_filters_or_sort_is_invalid_cursor(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    for _ in range(3):
        await _seed(uow, _todo(ALICE, clock.now()))
    page = await _list(todos, ALICE, limit=1)
    assert page.next_cursor is not None

    with pytest.raises(InvalidCursor):
        await _list(todos, ALICE, TodoFilter(completed=False), limit=1, cursor=page.next_cursor)
    with pytest.raises(InvalidCursor):
        await _list(todos, ALICE, sort=parse_sort("title"), limit=1, cursor=page.next_cursor)
    with pytest.raises(InvalidCursor):
        await _list(todos, BOB, limit=1, cursor=page.next_cursor)
    with pytest.raises(InvalidCursor):
        await _list(todos, ALICE, limit=1, cursor="garbage")


# Stats


async def test_stats_count_the_callers_live_todos_only(
    todos: TodoService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    now = clock.now()
    past = now - timedelta(days=1)
    for draft in [
        TodoDraft(title="a", priority=Priority.HIGH, due_at=past),
        TodoDraft(title="b", priority=Priority.HIGH, due_at=past, completed=True),
        TodoDraft(title="c", priority=Priority.LOW),
    ]:
        await _seed(uow, _todo(ALICE, now, draft))
    await _seed(uow, _todo(ALICE, now, TodoDraft(title="trash", due_at=past)).trashed(now))
    await _seed(uow, _todo(BOB, now, TodoDraft(title="bob's", due_at=past)))

    stats = await todos.stats(ALICE)

    assert (stats.total, stats.completed, stats.open, stats.overdue) == (3, 1, 2, 1)
    assert stats.by_priority == {
        Priority.LOW: 1,
        Priority.MEDIUM: 0,
        Priority.HIGH: 2,
        Priority.URGENT: 0,
    }
