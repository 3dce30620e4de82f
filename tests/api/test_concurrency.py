"""Concurrent writers: compare-and-set versions and idempotency keys hold under a burst,
also across two app instances (two connection pools: as two processes would be)."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient

from app.config import Settings
from app.main import create_app
from tests.conftest import MakeUser

API = "/api/v1"


@pytest.fixture
async def second_client(settings: Settings) -> AsyncIterator[AsyncClient]:
    """Another instance of the service on the same database (and Redis, when configured)."""
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        transport = ASGITransport(app=other, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://other") as http:
            yield http


async def test_twenty_patches_with_one_if_match_have_exactly_one_winner(
    client: AsyncClient, second_client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    todo = (await client.post(f"{API}/todos", json={"title": "start"}, headers=ada.headers)).json()
    path = f"{API}/todos/{todo['id']}"
    headers = {**ada.headers, "If-Match": '"1"'}

    def patch(n: int) -> Any:
        http = client if n % 2 else second_client
        return http.patch(path, json={"title": f"writer {n}"}, headers=headers)

    responses = await asyncio.gather(*(patch(n) for n in range(20)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 412: 19}
    winner = next(r.json() for r in responses if r.status_code == 200)
    final = (await client.get(path, headers=ada.headers)).json()
    assert final["version"] == 2
    assert final["title"] == winner["title"]
    for response in responses:
        if response.status_code == 412:
            assert response.json()["code"] == "precondition_failed"


async def test_ten_identical_posts_with_one_key_create_one_todo(
    client: AsyncClient, second_client: AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    ada = await make_user()
    headers = {**ada.headers, "Idempotency-Key": "burst-1"}
    # Without Redis each instance has its own in-process store: one instance only, then.
    clients = [client, second_client] if settings.redis_url else [client]

    responses = await asyncio.gather(
        *(
            clients[n % len(clients)].post(f"{API}/todos", json={"title": "once"}, headers=headers)
            for n in range(10)
        )
    )
    statuses = {r.status_code for r in responses}
    assert statuses <= {201, 409}
    created_ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created_ids) == 1
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == "idempotency_key_in_flight"
    listed = (await client.get(f"{API}/todos", headers=ada.headers)).json()["items"]
    assert [t["id"] for t in listed] == list(created_ids)
