"""PostgreSQL closing the pool's connections while the service idles (a restart, a failover,
`pg_terminate_backend`, a proxy's idle timeout) costs the requests that follow nothing: a read
runs again on a fresh connection, a write too when its transaction's first statement found its
connection dead (nothing of it can have committed), and no write is applied twice."""

import asyncio

import pytest
from httpx import AsyncClient, Response

from app.config import Settings
from tests.conftest import on_postgres
from tests.support import API, MakeUser, Session, terminate_other_backends

pytestmark = on_postgres

REQUESTS = 30  # more than the pool holds: each of its connections is found dead by someone


async def _fill_the_pool(client: AsyncClient, session: Session) -> None:
    """Many requests at once, each holding a pooled connection of its own."""
    warm = await asyncio.gather(
        *(client.get(f"{API}/todos", headers=session.headers) for _ in range(REQUESTS))
    )
    assert all(answer.status_code == 200 for answer in warm)


@pytest.mark.parametrize("leading", ["write", "read"])
async def test_requests_one_after_another_after_every_pooled_connection_was_terminated(
    client: AsyncClient, make_user: MakeUser, settings: Settings, leading: str
) -> None:
    """One at a time, each request is lent the next dead connection in the pool's order; the
    first to find one is a write, or a read."""
    ada = await make_user()
    created = await client.post(f"{API}/todos", json={"title": "first"}, headers=ada.headers)
    assert created.status_code == 201, created.text
    todo_id = created.json()["id"]
    await _fill_the_pool(client, ada)
    assert await terminate_other_backends(settings.database_url) > 1

    async def write(index: int) -> Response:
        body = {"title": f"after {index}"}
        return await client.post(f"{API}/todos", json=body, headers=ada.headers)

    async def read(index: int) -> Response:
        path = f"{API}/todos/{todo_id}" if index % 2 else f"{API}/todos"
        return await client.get(path, headers=ada.headers)

    answers = []
    for index in range(REQUESTS):
        first, then = (write, read) if leading == "write" else (read, write)
        answers += [await first(index), await then(index)]
    assert [(a.request.method, a.status_code) for a in answers if a.status_code >= 300] == []
    # Every write applied once, none twice.
    listed = await client.get(f"{API}/todos?limit=100", headers=ada.headers)
    titles = sorted(item["title"] for item in listed.json()["items"])
    assert titles == sorted(["first", *(f"after {i}" for i in range(REQUESTS))])


async def test_requests_at_once_after_every_termination_all_succeed(
    client: AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    ada = await make_user()
    created = await client.post(f"{API}/todos", json={"title": "first"}, headers=ada.headers)
    todo_id = created.json()["id"]
    for round_ in range(3):
        await _fill_the_pool(client, ada)
        await terminate_other_backends(settings.database_url)
        answers = await asyncio.gather(
            *(client.get(f"{API}/todos/{todo_id}", headers=ada.headers) for _ in range(REQUESTS)),
            *(
                client.post(f"{API}/todos", json={"title": f"{round_}.{i}"}, headers=ada.headers)
                for i in range(REQUESTS)
            ),
        )
        assert [a.status_code for a in answers if a.status_code >= 300] == [], round_
    listed = await client.get(f"{API}/todos?limit=100", headers=ada.headers)
    titles = sorted(item["title"] for item in listed.json()["items"])
    assert titles == sorted(["first", *(f"{r}.{i}" for r in range(3) for i in range(REQUESTS))])
