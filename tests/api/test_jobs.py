"""The scheduled jobs as the job engine runs them (in the app's process here: procrastinate on
PostgreSQL, its in-memory queue on SQLite): each is registered under its name, runs when
deferred, and what it records reaches webhooks like any change."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from app.bootstrap import Container
from app.config import Settings
from harness.receiver import Receiver, receiver
from tests.api.test_webhooks import subscribe
from tests.support import API, MakeUser


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"jobs_in_process": True})


@pytest.fixture
async def hook_receiver() -> AsyncIterator[Receiver]:
    async with receiver() as target:
        yield target


async def activity_types(client: AsyncClient, headers: dict[str, str], todo_id: str) -> list[Any]:
    response = await client.get(f"{API}/todos/{todo_id}/activity", headers=headers)
    assert response.status_code == 200, response.text
    return [entry["type"] for entry in response.json()["items"]]


async def test_a_due_todo_is_announced_once_by_the_job_and_its_webhook_hears_it(
    client: AsyncClient, make_user: MakeUser, container: Container, hook_receiver: Receiver
) -> None:
    ada = await make_user()
    await subscribe(client, ada, hook_receiver.url, ["todo.due"])
    due = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    created = await client.post(
        f"{API}/todos", json={"title": "file taxes", "due_at": due}, headers=ada.headers
    )
    assert created.status_code == 201, created.text
    todo_id = created.json()["id"]
    announce = container.jobs.configure_task("todos.announce_due")
    await announce.defer_async(timestamp=1)
    (request,) = await hook_receiver.until(1)
    assert (request.json["type"], request.json["data"]["todo_id"]) == ("todo.due", todo_id)
    await announce.defer_async(timestamp=2)  # the next tick: nothing more to announce
    await asyncio.sleep(2.5)
    assert await activity_types(client, ada.headers, todo_id) == ["todo.due", "todo.created"]
    assert len(hook_receiver.received) == 1


async def test_every_scheduled_job_is_registered_and_periodic(container: Container) -> None:
    periodic = {task.task.name for task in container.jobs.periodic_registry.periodic_tasks.values()}
    assert {
        "webhooks.dispatch",
        "webhooks.sweep",
        "jobs.retry_stalled",
        "todos.announce_due",
        "todos.purge_trash",
        "maintenance.remove_expired",
    } <= periodic
