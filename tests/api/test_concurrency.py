"""Concurrent writers: compare-and-set versions and idempotency keys hold under a burst,
also across two app instances (two connection pools: as two processes would be); and a
change to a user bites on the next request on every instance, whatever each had cached."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from uuid import UUID

import pytest
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis

from app.bootstrap import Container
from app.config import Settings
from app.domain.users import Role
from app.main import create_app
from tests.conftest import TEST_REDIS_URL, on_postgres
from tests.support import API, MakeUser, Session, assert_problem


@asynccontextmanager
async def instance(settings: Settings) -> AsyncIterator[AsyncClient]:
    """An instance of the service of its own (its own pools and in-process stores)."""
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        transport = ASGITransport(app=other, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://other") as http:
            yield http


@pytest.fixture
async def second_client(settings: Settings) -> AsyncIterator[AsyncClient]:
    """Another instance of the service on the same database (and Redis, when configured)."""
    async with instance(settings) as http:
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


async def _burst_of_identical_posts(clients: list[AsyncClient], session: Session, key: str) -> None:
    """Ten concurrent POSTs with one key: one creates, the others are 409 or a replay of it."""
    headers = {**session.headers, "Idempotency-Key": key}
    responses = await asyncio.gather(
        *(
            clients[n % len(clients)].post(f"{API}/todos", json={"title": "once"}, headers=headers)
            for n in range(10)
        )
    )
    statuses = {r.status_code for r in responses}
    assert statuses <= {201, 409}
    created = [r for r in responses if r.status_code == 201]
    assert len([r for r in created if "idempotent-replayed" not in r.headers]) == 1
    created_ids = {r.json()["id"] for r in created}
    assert len(created_ids) == 1
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == "idempotency_key_in_flight"
    listed = (await clients[0].get(f"{API}/todos", headers=session.headers)).json()["items"]
    assert [t["id"] for t in listed] == list(created_ids)


async def test_ten_identical_posts_with_one_key_create_one_todo(
    client: AsyncClient, second_client: AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    ada = await make_user()
    # SQLite is the embedded, one-process default: one instance only, then.
    clients = [client] if settings.is_sqlite else [client, second_client]
    await _burst_of_identical_posts(clients, ada, "burst-1")


@on_postgres
async def test_identical_posts_on_two_instances_without_redis_create_one_todo(
    make_user: MakeUser, settings: Settings
) -> None:
    # The key is kept in PostgreSQL, so instances agree on it with no Redis at all.
    ada = await make_user()
    without_redis = settings.model_copy(update={"redis_url": None})
    async with instance(without_redis) as one, instance(without_redis) as two:
        await _burst_of_identical_posts([one, two], ada, "burst-2")


async def _user_id(http: AsyncClient, headers: dict[str, str]) -> str:
    response = await http.get(f"{API}/users/me", headers=headers)
    assert response.status_code == 200, response.text
    user_id: str = response.json()["id"]
    return user_id


async def test_a_role_change_bites_on_the_next_request_on_every_instance(
    client: AsyncClient, second_client: AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    admin = await make_user(role=Role.ADMIN)
    ada = await make_user()
    # Without Redis each instance has its own stores: the embedded default is one process.
    other = second_client if settings.redis_url else client
    ada_id = await _user_id(other, ada.headers)  # the other instance has read ada now
    assert (await other.post(f"{API}/todos", json={"title": "a"}, headers=ada.headers)).is_success

    demoted = await client.patch(
        f"{API}/users/{ada_id}", json={"role": "guest"}, headers=admin.headers
    )
    assert demoted.status_code == 200

    refused = await other.post(f"{API}/todos", json={"title": "b"}, headers=ada.headers)
    assert refused.status_code == 403
    assert (await other.get(f"{API}/todos", headers=ada.headers)).status_code == 200


async def test_a_deactivation_bites_on_the_next_request_on_every_instance(
    client: AsyncClient, second_client: AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    admin = await make_user(role=Role.ADMIN)
    ada = await make_user()
    other = second_client if settings.redis_url else client
    ada_id = await _user_id(other, ada.headers)

    await client.patch(f"{API}/users/{ada_id}", json={"is_active": False}, headers=admin.headers)

    response = await other.get(f"{API}/todos", headers=ada.headers)
    assert_problem(response, 401, "invalid_token")


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs TEST_REDIS_URL")
async def test_an_emptied_redis_never_lets_a_stale_user_through(
    client: AsyncClient, make_user: MakeUser, container: Container, settings: Settings
) -> None:
    ada = await make_user()
    ada_id = await _user_id(client, ada.headers)  # read, and kept under its stamp
    # A demotion whose stamp retirement is lost with the rest of Redis (a restart, a flush).
    async with container.unit_of_work() as uow:
        user = await uow.users.get(UUID(ada_id))
        assert user is not None
        await uow.users.update(replace(user, role=Role.GUEST), before=user)
        await uow.commit()
    redis = Redis.from_url(str(settings.redis_url))
    await redis.flushdb()
    await redis.aclose()

    refused = await client.post(f"{API}/todos", json={"title": "a"}, headers=ada.headers)
    assert refused.status_code == 403
