"""What the test modules share: the API prefix, the one test password, a logged-in session
(through the app in-process, or through a live server), the problem+json assertion, and
PostgreSQL ending every other connection to the test database."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from harness.migrations import libpq_url

API = "/api/v1"
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Session:
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @classmethod
    def from_login(cls, email: str, response: httpx.Response) -> "Session":
        assert response.status_code == 200, response.text
        body = response.json()
        return cls(email, body["access_token"], body["refresh_token"])


MakeUser = Callable[..., Awaitable[Session]]


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Session:
    response = await client.post(f"{API}/auth/login", json={"email": email, "password": password})
    return Session.from_login(email, response)


def sign_up(http: httpx.Client, email: str) -> Session:
    """A new account, registered and logged in through a live server."""
    credentials = {"email": email, "password": PASSWORD}
    registered = http.post(f"{API}/auth/register", json=credentials)
    assert registered.status_code == 201, registered.text
    return Session.from_login(email, http.post(f"{API}/auth/login", json=credentials))


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 answer with this status and code, naming its request; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    assert {"type", "title", "detail", "instance"} <= body.keys()
    return body


@contextmanager
def restored_logging() -> Iterator[None]:
    """The root logger as it was, after a block that built an app with other log settings."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def terminate_other_backends(database_url: str) -> int:
    """PostgreSQL ends every connection to the database but this one's (pools included, as a
    restart or a failover would); how many it ended, once they are all gone."""
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as connection:
        cursor = await connection.execute(f"SELECT count(pg_terminate_backend(pid)) {others}")
        (ended,) = await cursor.fetchone() or (0,)
        for _ in range(200):  # a backend ends asynchronously
            cursor = await connection.execute(f"SELECT count(*) {others}")
            if await cursor.fetchone() == (0,):
                break
            await asyncio.sleep(0.05)
    return int(ended)
