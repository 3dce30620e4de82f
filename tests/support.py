"""What the test modules share: the API prefix, the one test password, a logged-in session
(through the app in-process, or through a live server) and the problem+json assertion."""

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

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
