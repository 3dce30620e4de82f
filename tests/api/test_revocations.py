"""Revocations outlive the store that answers them fast: a session ended by logout, by a
password change or by refresh-token reuse stays ended after Redis is emptied, and after a
restart of an instance with in-process stores. The database holds the record."""

import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from uuid import UUID

import pytest
from httpx import ASGITransport, AsyncClient
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from app.application.ports import AccessCheck
from app.bootstrap import Container
from app.config import Settings
from app.domain.users import Role
from app.infrastructure.redis import RedisRevocationList
from app.main import create_app
from app.presentation.rate_limit import CountingRevocationList
from tests.conftest import TEST_REDIS_URL, empty_stores
from tests.support import API, PASSWORD, MakeUser, assert_problem, login

NEW_PASSWORD = "a brand new passphrase"

needs_redis = pytest.mark.skipif(not TEST_REDIS_URL, reason="needs TEST_REDIS_URL")


async def _logged_out(client: AsyncClient, make_user: MakeUser) -> str:
    ada = await make_user()
    response = await client.post(f"{API}/auth/logout", headers=ada.headers)
    assert response.status_code == 204
    return ada.access_token


async def _signed_out_by_a_password_change(client: AsyncClient, make_user: MakeUser) -> str:
    ada = await make_user()
    other = await login(client, ada.email)
    response = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=ada.headers,
    )
    assert response.status_code == 204
    return other.access_token


async def _ended_by_refresh_reuse(client: AsyncClient, make_user: MakeUser) -> str:
    ada = await make_user()
    rotated = await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert rotated.status_code == 200
    replayed = await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert replayed.json()["code"] == "token_reused"
    return str(rotated.json()["access_token"])


EndSession = Callable[[AsyncClient, MakeUser], Awaitable[str]]
ENDINGS = pytest.mark.parametrize(
    "end_session",
    [_logged_out, _signed_out_by_a_password_change, _ended_by_refresh_reuse],
    ids=["logout", "password-change", "refresh-reuse"],
)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _assert_refused(client: AsyncClient, token: str) -> None:
    response = await client.get(f"{API}/todos", headers=_bearer(token))
    assert_problem(response, 401, "invalid_token")


async def _flush(url: str) -> None:
    redis = Redis.from_url(url)
    await redis.flushdb()  # this test's own database only, never FLUSHALL
    await redis.aclose()


@asynccontextmanager
async def _instance(settings: Settings) -> AsyncIterator[AsyncClient]:
    """A fresh instance of the service: new in-process stores, as after a restart."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = ASGITransport(app=application, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://restarted") as http:
            yield http


@needs_redis
@ENDINGS
async def test_an_ended_session_stays_ended_after_redis_is_emptied(
    client: AsyncClient, make_user: MakeUser, settings: Settings, end_session: EndSession
) -> None:
    token = await end_session(client, make_user)
    await _assert_refused(client, token)

    await _flush(str(settings.redis_url))

    await _assert_refused(client, token)
    await _assert_refused(client, token)  # and so it stays, once refilled


@ENDINGS
async def test_an_ended_session_stays_ended_on_a_restarted_instance(
    client: AsyncClient, make_user: MakeUser, settings: Settings, end_session: EndSession
) -> None:
    token = await end_session(client, make_user)

    async with _instance(settings) as restarted:
        await _assert_refused(restarted, token)


@needs_redis
async def test_live_sessions_still_pass_after_redis_is_emptied(
    client: AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    leaving = await make_user()
    staying = await login(client, leaving.email)
    assert (await client.post(f"{API}/auth/logout", headers=leaving.headers)).status_code == 204

    await _flush(str(settings.redis_url))

    assert (await client.get(f"{API}/todos", headers=staying.headers)).status_code == 200
    await _assert_refused(client, leaving.access_token)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def private_redis() -> Iterator[str]:
    """A Redis server of this test's own, whose permissions it may change."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("needs redis-server")
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - a fixed command line
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        with SyncRedis.from_url(url, retry=Retry(ExponentialBackoff(cap=0.2), retries=50)) as redis:
            redis.ping()
        yield url
    finally:
        process.terminate()
        process.wait()


@needs_redis
async def test_a_redis_that_cannot_be_refilled_answers_503_never_200(
    settings: Settings, private_redis: str
) -> None:
    own = settings.model_copy(update={"redis_url": private_redis})
    await empty_stores(own)
    async with _instance(own) as client:
        ada = await _register_and_login(client)
        assert (await client.post(f"{API}/auth/logout", headers=ada)).status_code == 204
        # Redis loses everything, and then refuses to mark itself refilled: the revocations
        # cannot be put back, so nothing may pass.
        redis = Redis.from_url(private_redis)
        await redis.flushdb()
        await redis.acl_setuser(
            "default",
            enabled=True,
            reset_keys=True,
            keys=["user-stamp:*", "revoked:*", "%R~revocations:*"],
        )
        await redis.aclose()

        response = await client.get(f"{API}/todos", headers=ada)

        assert_problem(response, 503, "service_unavailable")
        assert response.headers["retry-after"]


async def _register_and_login(client: AsyncClient) -> dict[str, str]:
    email = "ada@example.com"
    response = await client.post(
        f"{API}/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 201
    return (await login(client, email)).headers


class _RedisLostAfterFirstWrite:
    """The app's revocation list, whose Redis goes away after the first write of a change
    (the one before its commit): later writes go to a Redis on a port nobody listens on."""

    def __init__(self, working: CountingRevocationList, lost: CountingRevocationList) -> None:
        self._working, self._lost = working, lost
        self._writes = 0

    def _target(self) -> CountingRevocationList:
        self._writes += 1
        return self._working if self._writes == 1 else self._lost

    async def revoke(self, user_id: UUID, *session_ids: UUID, ttl: timedelta) -> None:
        await self._target().revoke(user_id, *session_ids, ttl=ttl)

    async def user_changed(self, user_id: UUID) -> None:
        await self._target().user_changed(user_id)

    async def check(self, user_id: UUID, session_id: UUID) -> AccessCheck:
        return await self._working.check(user_id, session_id)

    async def check_counting(
        self, user_id: UUID, session_id: UUID, counter: str, *, window: int
    ) -> tuple[AccessCheck, int]:
        return await self._working.check_counting(user_id, session_id, counter, window=window)

    async def count(self, user_id: UUID, counter: str, *, window: int) -> int:
        return await self._working.count(user_id, counter, window=window)


@needs_redis
async def test_a_change_committed_while_redis_fails_is_answered_as_committed(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    admin = await make_user(role=Role.ADMIN)
    ada = await make_user()
    ada_id = (await client.get(f"{API}/users/me", headers=ada.headers)).json()["id"]
    closed = Redis.from_url(f"redis://127.0.0.1:{_free_port()}/0", socket_connect_timeout=1)

    async def nothing(user_id: UUID) -> dict[UUID, timedelta]:
        return {}

    def losing_redis() -> None:
        lost = RedisRevocationList(closed, nothing)
        container.revocations = _RedisLostAfterFirstWrite(container.revocations, lost)

    working = container.revocations
    losing_redis()
    renamed = await client.patch(
        f"{API}/users/{ada_id}", json={"role": "guest"}, headers=admin.headers
    )
    assert renamed.status_code == 200, renamed.text
    container.revocations = working
    losing_redis()
    changed = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=ada.headers,
    )
    assert changed.status_code == 204, changed.text
    container.revocations = working
    await closed.aclose()

    stored = await client.get(f"{API}/users/{ada_id}", headers=admin.headers)
    assert stored.json()["role"] == "guest"
    assert (await login(client, ada.email, NEW_PASSWORD)).access_token
    refused = await client.post(f"{API}/todos", json={"title": "a"}, headers=ada.headers)
    assert refused.status_code == 403  # the stamp retired before the commit holds
