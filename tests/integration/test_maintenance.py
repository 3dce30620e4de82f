"""The scheduled jobs' work (app/application/maintenance.py) on the real database: the trash
purge and the due-date announcements record their entries like any write (activity, sync),
exactly once per todo even with two workers at once or after a worker died mid-way, and the
clean-up deletes what expired and keeps what lives.

Time moves through the service's clock (a FakeClock); the requests run on the real one."""

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from httpx import AsyncClient

from app.application.events import Event, read_batch
from app.application.maintenance import SYNC_HISTORY_GRACE, MaintenanceService, Removed
from app.application.ports import IdempotencyRecord, UnitOfWork
from app.bootstrap import Container
from app.domain.activity import ActivityType
from app.domain.projects import Invitation, ProjectRole
from app.domain.sessions import RefreshToken
from app.domain.todos import Todo, TodoDraft
from app.domain.webhooks import Delivery, DeliveryStatus
from tests.api.test_projects import _me, add_todo, inbox, invite, new_project
from tests.api.test_sync import HORIZON_PATIENCE_SECONDS, sync, sync_all_until
from tests.conftest import on_postgres
from tests.fakes import FakeClock
from tests.support import API, MakeUser, Session

DAY = timedelta(days=1)


def jobs(
    container: Container,
    now: datetime,
    *,
    batch_size: int = 500,
    unit_of_work: Callable[[], UnitOfWork] | None = None,
) -> MaintenanceService:
    """The jobs as the container builds them, at `now`."""
    settings = container.settings
    return MaintenanceService(
        unit_of_work or container.unit_of_work,
        clock=FakeClock(now),
        trash_retention=timedelta(days=settings.trash_retention_days),
        sync_retention=timedelta(days=settings.sync_retention_days),
        delivery_retention=timedelta(days=settings.webhook_delivery_retention_days),
        batch_size=batch_size,
    )


async def _entries(container: Container, kind: ActivityType) -> list[dict[str, Any]]:
    """Every entry of this type, oldest first."""
    async with container.engine.connect() as connection:
        result = await connection.execute(
            sa.text(
                "SELECT todo_id, actor_id, project_id, changes FROM activity"
                " WHERE type = :type ORDER BY txid, n"
            ),
            {"type": kind.value},
        )
        return [dict(row) for row in result.mappings()]


async def _count(container: Container, table: str) -> int:
    async with container.engine.connect() as connection:
        result = await connection.execute(sa.text(f"SELECT count(*) FROM {table}"))  # noqa: S608
        return int(result.scalar_one())


def _uuid(value: object) -> str:
    """An id as the API writes it, however the database's driver read it back."""
    return str(UUID(str(value)))


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return sorted(_uuid(entry["todo_id"]) for entry in entries)


async def _trash(client: AsyncClient, who: Session, todo_id: str) -> None:
    response = await client.delete(f"{API}/todos/{todo_id}", headers=who.headers)
    assert response.status_code == 204, response.text


async def _insert_todos(
    container: Container,
    who: dict[str, Any],
    project_id: str,
    count: int,
    *,
    now: datetime,
    trashed: bool = False,
    due_at: datetime | None = None,
) -> list[UUID]:
    """Many todos at once, straight through the repository (the API would take too long)."""
    owner = UUID(who["id"])
    made = []
    async with container.unit_of_work() as uow:
        for index in range(count):
            todo = Todo.new(
                TodoDraft(title=f"t{index}", due_at=due_at),
                id=uuid4(),
                project_id=UUID(project_id),
                owner_id=owner,
                created_by=owner,
                now=now,
            )
            await uow.todos.add(todo.trashed(now) if trashed else todo)
            made.append(todo.id)
        await uow.commit()
    return made


# The trash purge


async def test_todos_trashed_longer_than_the_retention_are_purged_each_recorded_once(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada = await make_user()
    old, other, live = [await add_todo(client, ada, title=t) for t in ("old", "other", "live")]
    for todo in (old, other):
        await _trash(client, ada, todo["id"])
    token = (await sync(client, ada))["sync_token"]
    now = datetime.now(UTC)

    assert await jobs(container, now + 29 * DAY).purge_trash() == 0  # not yet
    assert await container.maintenance_service.purge_trash() == 0  # the settings' 30 days
    assert await jobs(container, now + 31 * DAY).purge_trash() == 2
    assert await jobs(container, now + 31 * DAY).purge_trash() == 0  # again: nothing more

    for todo in (old, other):
        response = await client.get(f"{API}/todos/{todo['id']}", headers=ada.headers)
        assert response.status_code == 404
    assert (await client.get(f"{API}/todos/{live['id']}", headers=ada.headers)).status_code == 200
    purged = await _entries(container, ActivityType.TODO_PURGED)
    assert _ids(purged) == sorted([old["id"], other["id"]])
    assert all(entry["actor_id"] is None for entry in purged)
    # In the project's history, as a permanent delete is, and in sync's `removed.todos`.
    history = await client.get(f"{API}/projects/{old['project_id']}/activity", headers=ada.headers)
    shown = [e for e in history.json()["items"] if e["type"] == "todo.purged"]
    assert sorted(e["todo_id"] for e in shown) == sorted([old["id"], other["id"]])
    assert all(e["actor_id"] is None and e["changes"] == {} for e in shown)

    def removed(pages: list[dict[str, Any]]) -> set[str]:
        return {todo_id for page in pages for todo_id in page["removed"]["todos"]}

    pages, _ = await sync_all_until(
        client, ada, token, lambda pages: {old["id"], other["id"]} <= removed(pages)
    )
    assert removed(pages) == {old["id"], other["id"]}


async def test_a_todo_restored_before_the_purge_stays(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada = await make_user()
    todo = await add_todo(client, ada)
    await _trash(client, ada, todo["id"])
    restored = await client.post(f"{API}/todos/{todo['id']}/restore", headers=ada.headers)
    assert restored.status_code == 200

    assert await jobs(container, datetime.now(UTC) + 31 * DAY).purge_trash() == 0
    assert await _entries(container, ActivityType.TODO_PURGED) == []


# Due dates


async def _patch(client: AsyncClient, who: Session, todo_id: str, **body: Any) -> dict[str, Any]:
    response = await client.patch(f"{API}/todos/{todo_id}", json=body, headers=who.headers)
    assert response.status_code == 200, response.text
    patched: dict[str, Any] = response.json()
    return patched


async def test_a_due_date_is_announced_once_per_value_and_only_for_live_open_todos(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada = await make_user()
    now = datetime.now(UTC)
    past = (now - timedelta(minutes=1)).isoformat()

    async def todo(title: str, due_at: str | None) -> dict[str, Any]:
        body = {"title": title, "due_at": due_at}
        response = await client.post(f"{API}/todos", json=body, headers=ada.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    due = await todo("due", past)
    later = await todo("later", (now + timedelta(hours=1)).isoformat())
    done = await todo("done", past)
    await _patch(client, ada, done["id"], completed=True)
    trashed = await todo("trashed", past)
    await _trash(client, ada, trashed["id"])
    await todo("no due date", None)
    token = (await sync(client, ada))["sync_token"]
    before = await client.get(f"{API}/todos/{due['id']}", headers=ada.headers)

    assert await container.maintenance_service.announce_due() == 1
    assert await container.maintenance_service.announce_due() == 0  # once per value
    entries = await _entries(container, ActivityType.TODO_DUE)
    assert _ids(entries) == [due["id"]]
    assert entries[0]["actor_id"] is None
    # Not an edit: the todo, its version and its ETag are as they were.
    after = await client.get(f"{API}/todos/{due['id']}", headers=ada.headers)
    assert after.json() == before.json()
    assert after.headers["etag"] == before.headers["etag"]
    # Sync hears of it as of any entry: the todo in its current state.
    pages, _ = await sync_all_until(
        client,
        ada,
        token,
        lambda pages: any(t["id"] == due["id"] for p in pages for t in p["todos"]),
    )
    assert [t for p in pages for t in p["todos"] if t["id"] == due["id"]] == [after.json()]
    # Live events too: a todo.due event carrying the todo.
    (event,) = await _events(container, UUID((await _me(client, ada))["id"]), "todo.due")
    assert event.todo is not None
    assert str(event.todo.id) == due["id"]

    # Another due date is due again when it comes; the same one set again is not.
    await _patch(client, ada, due["id"], due_at=(now - timedelta(seconds=30)).isoformat())
    assert await jobs(container, now).announce_due() == 1
    await _patch(client, ada, due["id"], title="renamed")
    assert await jobs(container, now).announce_due() == 0
    # The later one, when its time comes; never the completed or the trashed one.
    assert await jobs(container, now + 2 * timedelta(hours=1)).announce_due() == 1
    assert _ids(await _entries(container, ActivityType.TODO_DUE)) == sorted(
        [due["id"], due["id"], later["id"]]
    )
    history = await client.get(f"{API}/todos/{due['id']}/activity", headers=ada.headers)
    assert [e["type"] for e in history.json()["items"]].count("todo.due") == 2
    # Reopened, a todo whose due date was announced while it was open is not announced again.
    await _patch(client, ada, done["id"], completed=False)
    assert await jobs(container, now + 2 * timedelta(hours=1)).announce_due() == 1  # first time


async def _events(container: Container, user_id: UUID, kind: str) -> list[Event]:
    """The user's live events of this type in the whole log (waiting, on PostgreSQL, for the
    horizon to pass what was just committed: see tests/api/test_sync.py's `sync`)."""
    deadline = asyncio.get_running_loop().time() + HORIZON_PATIENCE_SECONDS
    while True:
        async with container.unit_of_work(read_only=True) as uow:
            batch = await read_batch(uow, (0, 0), user_id=user_id)
        events = [e for e in batch.events_for(user_id, after=(0, 0)) if e.type == kind]
        if events or asyncio.get_running_loop().time() > deadline:
            return events
        await asyncio.sleep(0.05)


# Two workers, and a worker killed mid-way


class Killed(Exception):
    """A worker dying between a batch's work and its commit."""


def _dies_at_commit(container: Container, number: int) -> Callable[[], UnitOfWork]:
    """Units of work of which the `number`th commit never happens."""
    commits = 0

    def unit_of_work() -> UnitOfWork:
        uow = container.unit_of_work()
        commit = uow.commit

        async def dying_commit() -> None:
            nonlocal commits
            commits += 1
            if commits == number:
                raise Killed
            await commit()

        uow.commit = dying_commit  # type: ignore[method-assign]
        return uow

    return unit_of_work


async def test_a_purge_killed_mid_way_is_finished_by_the_next_run_one_entry_per_todo(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada = await make_user()
    now = datetime.now(UTC)
    made = await _insert_todos(
        container,
        await _me(client, ada),
        (await inbox(client, ada))["id"],
        25,
        now=now,
        trashed=True,
    )
    later = now + 31 * DAY

    dying = jobs(container, later, batch_size=10, unit_of_work=_dies_at_commit(container, 2))
    with pytest.raises(Killed):
        await dying.purge_trash()
    assert await _count(container, "todos") == 15  # the first batch only
    assert await jobs(container, later, batch_size=10).purge_trash() == 15
    assert _ids(await _entries(container, ActivityType.TODO_PURGED)) == sorted(map(str, made))


async def test_an_announcement_killed_mid_way_is_finished_by_the_next_run(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada = await make_user()
    now = datetime.now(UTC)
    made = await _insert_todos(
        container,
        await _me(client, ada),
        (await inbox(client, ada))["id"],
        25,
        now=now,
        due_at=now + timedelta(minutes=5),
    )
    later = now + timedelta(minutes=6)

    dying = jobs(container, later, batch_size=10, unit_of_work=_dies_at_commit(container, 2))
    with pytest.raises(Killed):
        await dying.announce_due()
    assert len(await _entries(container, ActivityType.TODO_DUE)) == 10
    assert await jobs(container, later, batch_size=10).announce_due() == 15
    assert _ids(await _entries(container, ActivityType.TODO_DUE)) == sorted(map(str, made))


@on_postgres
async def test_two_workers_at_once_purge_and_announce_each_todo_exactly_once(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada = await make_user()
    now = datetime.now(UTC)
    me, project = await _me(client, ada), (await inbox(client, ada))["id"]
    trashed = await _insert_todos(container, me, project, 120, now=now, trashed=True)
    due = await _insert_todos(
        container, me, project, 120, now=now, due_at=now + timedelta(minutes=5)
    )
    # Small batches, each on a connection of its own: the two workers interleave.
    first, second = (jobs(container, now + 31 * DAY, batch_size=7) for _ in range(2))

    purged = await asyncio.gather(first.purge_trash(), second.purge_trash())
    announced = await asyncio.gather(first.announce_due(), second.announce_due())

    assert sum(purged) == len(trashed)
    assert _ids(await _entries(container, ActivityType.TODO_PURGED)) == sorted(map(str, trashed))
    assert sum(announced) == len(due)
    assert _ids(await _entries(container, ActivityType.TODO_DUE)) == sorted(map(str, due))


# The clean-up


async def test_the_clean_up_deletes_what_expired_and_keeps_what_lives(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada = await make_user()  # logged in: a live refresh token
    me = UUID((await _me(client, ada))["id"])
    project = await new_project(client, ada)
    pending = await invite(client, ada, project)
    now = datetime.now(UTC)
    created = await client.post(
        f"{API}/todos", json={"title": "keyed"}, headers={**ada.headers, "Idempotency-Key": "k1"}
    )
    assert created.status_code == 201
    async with container.unit_of_work() as uow:
        await uow.refresh_tokens.add(
            RefreshToken(
                id=uuid4(),
                user_id=me,
                family_id=uuid4(),
                token_hash="e" * 64,
                created_at=now - 8 * DAY,
                expires_at=now - DAY,
            )
        )
        await uow.idempotency_keys.claim(
            IdempotencyRecord(me, "old", "f" * 64, uuid4(), now - 2 * DAY), live_since=now - DAY
        )
        for accepted in (None, now - 3 * DAY):
            await uow.invitations.add(
                Invitation(
                    id=uuid4(),
                    project_id=UUID(project["id"]),
                    role=ProjectRole.EDITOR,
                    email=None,
                    token_hash=uuid4().hex * 2,
                    created_by=me,
                    created_at=now - 8 * DAY,
                    expires_at=now - DAY,
                    accepted_at=accepted,
                    accepted_by=None if accepted is None else me,
                )
            )
        await uow.commit()
    counts = (
        await _count(container, "refresh_tokens"),
        await _count(container, "idempotency_keys"),
        await _count(container, "invitations"),
    )

    removed = await jobs(container, now).remove_expired()

    assert (removed.refresh_tokens, removed.idempotency_keys, removed.invitations) == (1, 1, 2)
    assert removed.activity == 0
    assert (
        await _count(container, "refresh_tokens"),
        await _count(container, "idempotency_keys"),
        await _count(container, "invitations"),
    ) == (counts[0] - 1, counts[1] - 1, counts[2] - 2)
    # What lives still works: the session refreshes, the key replays, the invitation previews.
    refreshed = await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    replay = await client.post(
        f"{API}/todos", json={"title": "keyed"}, headers={**ada.headers, "Idempotency-Key": "k1"}
    )
    assert replay.json()["id"] == created.json()["id"]
    preview = await client.post(
        f"{API}/invitations/preview", json={"token": pending["token"]}, headers=ada.headers
    )
    assert preview.status_code == 200, preview.text
    assert await jobs(container, now).remove_expired() == Removed()


async def test_settled_deliveries_go_after_their_retention_one_still_retried_stays(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada = await make_user()
    created = await client.post(
        f"{API}/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["*"]},
        headers=ada.headers,
    )
    assert created.status_code == 201, created.text
    webhook_id = UUID(created.json()["id"])
    now = datetime.now(UTC)
    old = now - timedelta(days=container.settings.webhook_delivery_retention_days) - DAY

    def delivery(created_at: datetime, status: DeliveryStatus, due: datetime | None) -> Delivery:
        new = Delivery.pending(
            webhook_id=webhook_id,
            event_id=f"msg_{uuid4().hex}",
            event_type="todo.created",
            project_id=None,
            body="{}",
            now=created_at,
        )
        return replace(new, status=status, attempts=1, next_attempt_at=due)

    gone = [
        delivery(old, DeliveryStatus.SUCCEEDED, None),
        delivery(old - DAY, DeliveryStatus.FAILED, None),
    ]
    kept = [
        delivery(old, DeliveryStatus.RETRYING, now + DAY),  # however old: it is not settled
        delivery(now - 2 * DAY, DeliveryStatus.SUCCEEDED, None),
    ]
    async with container.unit_of_work() as uow:
        assert len(await uow.deliveries.add([*gone, *kept])) == 4
        await uow.commit()

    # One row a batch: the clean-up goes on until a batch comes back short.
    removed = await jobs(container, now, batch_size=1).remove_expired()

    assert removed.deliveries == 2
    listed = await client.get(f"{API}/webhooks/{webhook_id}/deliveries", headers=ada.headers)
    assert listed.status_code == 200, listed.text
    assert {item["id"] for item in listed.json()["items"]} == {str(d.id) for d in kept}
    assert (await jobs(container, now).remove_expired()).deliveries == 0


async def test_sync_history_of_what_is_gone_goes_after_the_retention_the_rest_stays(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada = await make_user()
    kept = await add_todo(client, ada, title="kept")
    purged = await add_todo(client, ada, title="purged")
    gone = await client.delete(f"{API}/todos/{purged['id']}?permanent=true", headers=ada.headers)
    assert gone.status_code == 204
    project = await new_project(client, ada, "Short-lived")
    in_project = await add_todo(client, ada, project["id"], "went with its project")
    deleted = await client.delete(f"{API}/projects/{project['id']}", headers=ada.headers)
    assert deleted.status_code == 204
    now = datetime.now(UTC)
    retention = timedelta(days=container.settings.sync_retention_days)

    async def entries() -> set[tuple[str, str | None, str]]:
        """(project_id, todo_id, type) of every entry."""
        async with container.engine.connect() as connection:
            result = await connection.execute(
                sa.text("SELECT project_id, todo_id, type FROM activity")
            )
            return {
                (_uuid(project_id), None if todo_id is None else _uuid(todo_id), kind)
                for project_id, todo_id, kind in result.all()
            }

    everything = await entries()
    assert (await jobs(container, now + retention).remove_expired()).activity == 0
    assert await entries() == everything  # not before the retention (and its grace)

    removed = await jobs(container, now + retention + SYNC_HISTORY_GRACE + DAY).remove_expired()

    # Kept: the entries of the todo and the project (the Inbox) that still exist.
    def lives(entry: tuple[str, str | None, str]) -> bool:
        project_id, todo_id, _ = entry
        return todo_id == kept["id"] or (todo_id is None and project_id != project["id"])

    left = await entries()
    assert left == {entry for entry in everything if lives(entry)}
    assert removed.activity == len(everything) - len(left)
    gone_todos = {purged["id"], in_project["id"]}
    assert {todo_id for _, todo_id, _ in everything} >= gone_todos
    assert any(entry[2] == "project.deleted" for entry in everything)
    assert (await jobs(container, now + 40 * DAY).remove_expired()).activity == 0
