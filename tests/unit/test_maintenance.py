"""MaintenanceService on the fakes: which todos each job takes and the entries it records, the
batches it works in, and what the clean-up keeps. The real database, two workers at once and
a worker killed mid-way: tests/integration/test_maintenance.py."""

from dataclasses import replace
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from app.application.activity import project_activity, todo_activity
from app.application.maintenance import SYNC_HISTORY_GRACE, MaintenanceService, Removed
from app.application.ports import IdempotencyRecord
from app.application.todos import IDEMPOTENCY_TTL
from app.domain.activity import Activity, ActivityType
from app.domain.sessions import RefreshToken
from app.domain.todos import Todo, TodoDraft
from tests.fakes import FakeClock, InMemoryUnitOfWork, a_todo, give_inbox

OWNER = uuid4()
RETENTION = timedelta(days=30)
SYNC_RETENTION = timedelta(days=30)
DELIVERY_RETENTION = timedelta(days=30)


def jobs(uow: InMemoryUnitOfWork, clock: FakeClock, *, batch_size: int = 500) -> MaintenanceService:
    return MaintenanceService(
        lambda: uow,
        clock=clock,
        trash_retention=RETENTION,
        sync_retention=SYNC_RETENTION,
        delivery_retention=DELIVERY_RETENTION,
        batch_size=batch_size,
    )


async def _seed(uow: InMemoryUnitOfWork, *todos: Todo) -> None:
    for todo in todos:
        await uow.todos.add(todo)
    await uow.commit()


def _of(uow: InMemoryUnitOfWork, kind: ActivityType) -> list[Activity]:
    return [entry for entry in uow.activity.entries() if entry.type is kind]


async def test_the_purge_takes_the_trash_older_than_the_retention_one_entry_each() -> None:
    uow, clock = InMemoryUnitOfWork(), FakeClock()
    give_inbox(uow.state, OWNER)
    start = clock.now()
    old = a_todo(OWNER, start).trashed(start)
    recent = a_todo(OWNER, start).trashed(start + timedelta(days=2))
    live = a_todo(OWNER, start)
    await _seed(uow, old, recent, live)

    clock.set(start + RETENTION)
    assert await jobs(uow, clock).purge_trash() == 1  # trashed exactly 30 days ago: due
    assert await jobs(uow, clock).purge_trash() == 0

    assert set(uow.state.todos) == {recent.id, live.id}
    (entry,) = _of(uow, ActivityType.TODO_PURGED)
    assert (entry.todo_id, entry.project_id, entry.actor_id) == (old.id, old.project_id, None)
    assert entry.changes == {}


async def test_the_purge_works_in_batches_until_one_comes_back_short() -> None:
    uow, clock = InMemoryUnitOfWork(), FakeClock()
    start = clock.now()
    await _seed(uow, *(a_todo(OWNER, start).trashed(start) for _ in range(7)))
    clock.set(start + RETENTION + timedelta(days=1))

    assert await jobs(uow, clock, batch_size=3).purge_trash() == 7
    assert uow.commits == 1 + 3  # the seed's, then 3 + 3 + 1
    assert len(_of(uow, ActivityType.TODO_PURGED)) == 7


async def test_a_due_date_is_announced_once_and_again_once_changed() -> None:
    uow, clock = InMemoryUnitOfWork(), FakeClock()
    now = clock.now()
    due = a_todo(OWNER, now, TodoDraft(title="due", due_at=now))
    later = a_todo(OWNER, now, TodoDraft(title="later", due_at=now + timedelta(minutes=1)))
    done = a_todo(OWNER, now, TodoDraft(title="done", due_at=now, completed=True))
    trashed = a_todo(OWNER, now, TodoDraft(title="trashed", due_at=now)).trashed(now)
    undated = a_todo(OWNER, now)
    await _seed(uow, due, later, done, trashed, undated)

    assert await jobs(uow, clock).announce_due() == 1
    assert await jobs(uow, clock).announce_due() == 0
    assert uow.state.todos[due.id] == due  # no edit: same version, same updated_at

    moved = replace(due, due_at=now - timedelta(hours=1), version=due.version + 1)
    assert await uow.todos.save(moved, expected_version=due.version)
    await uow.commit()
    clock.advance(timedelta(minutes=1))
    assert await jobs(uow, clock).announce_due() == 2  # the moved one again, and `later`
    entries = _of(uow, ActivityType.TODO_DUE)
    assert [e.todo_id for e in entries] == [due.id, due.id, later.id]
    assert all(e.actor_id is None and e.changes == {} for e in entries)


async def test_the_clean_up_removes_each_kind_of_expired_thing_and_keeps_the_rest() -> None:
    uow, clock = InMemoryUnitOfWork(), FakeClock()
    now = clock.now()

    def token(expires_in: timedelta) -> RefreshToken:
        return RefreshToken(
            id=uuid4(),
            user_id=OWNER,
            family_id=uuid4(),
            token_hash=uuid4().hex,
            created_at=now - timedelta(days=7),
            expires_at=now + expires_in,
        )

    await uow.refresh_tokens.add(token(-timedelta(seconds=1)))
    await uow.refresh_tokens.add(token(timedelta(seconds=1)))
    for age in (IDEMPOTENCY_TTL, IDEMPOTENCY_TTL - timedelta(seconds=1)):
        record = IdempotencyRecord(OWNER, str(age), "f", uuid4(), now - age)
        await uow.idempotency_keys.claim(record, live_since=now - 2 * IDEMPOTENCY_TTL)
    await uow.commit()

    removed = await jobs(uow, clock).remove_expired()

    assert removed == Removed(refresh_tokens=1, idempotency_keys=1, invitations=0, activity=0)
    assert removed.total == 2
    assert [t.expires_at for t in uow.state.refresh_tokens.values()] == [now + timedelta(seconds=1)]
    assert len(uow.state.idempotency_keys) == 1


async def test_sync_history_goes_only_for_what_is_gone_and_only_once_old_enough() -> None:
    uow, clock = InMemoryUnitOfWork(), FakeClock()
    now = clock.now()
    inbox = give_inbox(uow.state, OWNER)
    kept, purged = a_todo(OWNER, now), a_todo(OWNER, now)
    await _seed(uow, kept, purged)
    gone_project = uuid4()

    def about(todo: Todo) -> Activity:
        return todo_activity(ActivityType.TODO_CREATED, actor=None, todo=todo, at=now)

    def of_project(project_id: UUID) -> Activity:
        return project_activity(
            ActivityType.PROJECT_CREATED, actor_id=OWNER, project_id=project_id, at=now
        )

    await uow.activity.add(
        about(kept), about(purged), of_project(inbox.id), of_project(gone_project)
    )
    await uow.todos.delete(purged.id, expected_version=None)
    await uow.commit()

    clock.set(now + SYNC_RETENTION + SYNC_HISTORY_GRACE)  # not older than that yet
    assert (await jobs(uow, clock).remove_expired()).activity == 0
    clock.advance()
    assert (await jobs(uow, clock, batch_size=1).remove_expired()).activity == 2
    left = uow.activity.entries()
    assert [(e.todo_id, e.project_id) for e in left] == [(kept.id, inbox.id), (None, inbox.id)]


def test_a_batch_holds_at_least_one_row() -> None:
    with pytest.raises(ValueError, match="at least one"):
        jobs(InMemoryUnitOfWork(), FakeClock(), batch_size=0)
