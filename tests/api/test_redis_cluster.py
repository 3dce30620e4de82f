"""The service on a real three-node Redis Cluster (REDIS_CLUSTER=true, REDIS_URL naming one
node): the rate limits and their headers, revocations, and a node that comes back empty."""

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any
from uuid import UUID

import pytest
from httpx import ASGITransport, AsyncClient
from limits.aio.storage import RedisClusterStorage
from redis.asyncio import RedisCluster

from app.bootstrap import Container
from app.config import Settings
from app.infrastructure.redis import UserKeys
from app.main import create_app
from harness.redis_cluster import LocalCluster
from tests.conftest import empty_stores
from tests.support import API, PASSWORD, Session, assert_problem, login

Build = Callable[..., Any]


@pytest.fixture
async def on_cluster(settings: Settings, local_redis_cluster: LocalCluster) -> AsyncIterator[Build]:
    """Builds the app on the cluster with some settings changed: its client and container."""
    clustered = settings.model_copy(
        update={"redis_url": local_redis_cluster.url, "redis_cluster": True}
    )
    await empty_stores(clustered)
    async with AsyncExitStack() as running:

        async def build(**changes: Any) -> tuple[AsyncClient, Container]:
            app = create_app(clustered.model_copy(update=changes))
            await running.enter_async_context(app.router.lifespan_context(app))
            transport = ASGITransport(app=app, raise_app_exceptions=False)
            client = AsyncClient(transport=transport, base_url="http://test")
            await running.enter_async_context(client)
            return client, app.state.container

        yield build
    await empty_stores(clustered)


async def _new_user(client: AsyncClient, email: str) -> Session:
    response = await client.post(
        f"{API}/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    return await login(client, email)


async def test_the_service_selects_the_cluster_client_and_is_ready(on_cluster: Build) -> None:
    client, container = await on_cluster()

    assert isinstance(container.redis, RedisCluster)
    assert isinstance(container.rate_limits, RedisClusterStorage)
    ready = await client.get("/health/ready")
    assert ready.json()["checks"]["redis"] == "ok"


async def test_the_default_limit_counts_per_user_across_routes_on_the_cluster(
    on_cluster: Build,
) -> None:
    unlimited, _ = await on_cluster()
    ada, bob = await _new_user(unlimited, "ada@x.io"), await _new_user(unlimited, "bob@x.io")
    client, _ = await on_cluster(rate_limit_enabled=True, rate_limit_default="3/hour")

    first = await client.get(f"{API}/users/me", headers=ada.headers)  # counted by the check
    assert (first.status_code, first.headers["x-ratelimit-remaining"]) == (200, "2")
    refresh = await client.post(  # counted without a check, in the same counter
        f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token}, headers=ada.headers
    )
    assert (refresh.status_code, refresh.headers["x-ratelimit-limit"]) == (200, "3")
    assert (await client.get(f"{API}/todos", headers=ada.headers)).status_code == 200

    refused = await client.get(f"{API}/todos", headers=ada.headers)
    assert_problem(refused, 429, "rate_limited")
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert int(refused.headers["retry-after"]) >= 1
    assert (await client.get(f"{API}/todos", headers=bob.headers)).status_code == 200  # his own


async def test_the_login_limit_counts_on_the_cluster(on_cluster: Build) -> None:
    client, _ = await on_cluster(rate_limit_enabled=True, rate_limit_login="2/hour")
    body = {"email": "who@x.io", "password": "wrong password"}

    statuses = [(await client.post(f"{API}/auth/login", json=body)).status_code for _ in range(3)]

    assert statuses == [401, 401, 429]


async def test_a_logout_stays_refused_after_the_users_node_comes_back_empty(
    on_cluster: Build, local_redis_cluster: LocalCluster
) -> None:
    client, _ = await on_cluster(rate_limit_enabled=True)
    ada = await _new_user(client, "ada@x.io")
    staying = await login(client, ada.email)
    me = await client.get(f"{API}/users/me", headers=ada.headers)
    user_id = UUID(me.json()["id"])
    assert (await client.post(f"{API}/auth/logout", headers=ada.headers)).status_code == 204
    assert_problem(await client.get(f"{API}/todos", headers=ada.headers), 401, "invalid_token")

    node = local_redis_cluster.node_holding(UserKeys(user_id).loaded)
    with node.client() as emptied:
        emptied.flushdb()  # as the node restarted without its data

    assert_problem(await client.get(f"{API}/todos", headers=ada.headers), 401, "invalid_token")
    assert (await client.get(f"{API}/todos", headers=staying.headers)).status_code == 200
