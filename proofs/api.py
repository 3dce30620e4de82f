"""The service as a client sees it: calls that never raise (a cut connection is an answer
too), the few flows every proof needs, and the PASS/FAIL report."""

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import httpx

API = "/api/v1"
PASSWORD = "proof-Password-7-long-enough"  # noqa: S105 (a fixture, not a secret)
TIMEOUT = httpx.Timeout(15.0)


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer; `status` is None when the connection failed or was cut."""

    status: int | None
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    body: Any = None
    started: float = 0.0  # time.monotonic()

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def is_documented_503(self) -> bool:
        """The service's fault answer: 503 problem+json `service_unavailable` + Retry-After."""
        return (
            self.status == 503
            and self.headers.get("content-type", "").startswith("application/problem+json")
            and self.code == "service_unavailable"
            and "retry-after" in self.headers
        )

    def is_bad_5xx(self) -> bool:
        return self.status is not None and self.status >= 500 and not self.is_documented_503()

    def __str__(self) -> str:
        return "no answer" if self.status is None else f"{self.status} {self.code or ''}".strip()


def client(base_url: str, connections: int = 50, *, source: str | None = None) -> httpx.AsyncClient:
    """`source`: the local address its connections come from (a loopback one, 127.0.0.2: a
    second host as far as the server can tell)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    transport = httpx.AsyncHTTPTransport(limits=limits, local_address=source)
    return httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT, transport=transport)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Reply:
    started = time.monotonic()
    sent = {**(bearer(token) if token else {}), **(headers or {})}
    try:
        response = await http.request(method, path, headers=sent, **kwargs)
    except httpx.TransportError:
        return Reply(None, started=started)
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    return Reply(response.status_code, response.headers, body, started)


def unique_email(label: str) -> str:
    return f"{label}-{uuid4().hex[:10]}@proof.example.com"


async def register(http: httpx.AsyncClient, email: str) -> str:
    """The new user's id."""
    reply = await call(
        http, "POST", f"{API}/auth/register", json={"email": email, "password": PASSWORD}
    )
    if reply.status != 201:
        raise RuntimeError(f"register {email}: {reply}")
    user_id: str = reply.body["id"]
    return user_id


async def login(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    """A token pair: `access_token`, `refresh_token`."""
    reply = await call(
        http, "POST", f"{API}/auth/login", json={"email": email, "password": password}
    )
    if reply.status != 200:
        raise RuntimeError(f"login {email}: {reply}")
    pair: dict[str, str] = reply.body
    return pair


async def new_user(http: httpx.AsyncClient, label: str) -> tuple[str, str, dict[str, str]]:
    """Registered and logged in: (email, user id, token pair)."""
    email = unique_email(label)
    user_id = await register(http, email)
    return email, user_id, await login(http, email)


async def new_token(http: httpx.AsyncClient, label: str) -> str:
    """A new user's access token."""
    _, _, pair = await new_user(http, label)
    return pair["access_token"]


async def refresh(http: httpx.AsyncClient, refresh_token: str) -> Reply:
    return await call(http, "POST", f"{API}/auth/refresh", json={"refresh_token": refresh_token})


async def logout(http: httpx.AsyncClient, pair: dict[str, str]) -> Reply:
    """Ends the session: its access token and its refresh token's family."""
    return await call(
        http,
        "POST",
        f"{API}/auth/logout",
        token=pair["access_token"],
        json={"refresh_token": pair["refresh_token"]},
    )


async def create_todo(
    http: httpx.AsyncClient,
    token: str,
    title: str,
    *,
    key: str | None = None,
    project_id: str | None = None,
) -> Reply:
    headers = {"Idempotency-Key": key} if key else None
    body = {"title": title, **({"project_id": project_id} if project_id else {})}
    return await call(http, "POST", f"{API}/todos", token=token, headers=headers, json=body)


async def shared_project(
    owner: httpx.AsyncClient,
    owner_token: str,
    member: httpx.AsyncClient,
    member_token: str,
    role: str,
) -> str:
    """A project the owner makes (on `owner`) and the member joins by invitation (on
    `member`) with `role`: its id."""
    made = await call(owner, "POST", f"{API}/projects", token=owner_token, json={"name": "Shared"})
    if made.status != 201:
        raise RuntimeError(f"project: {made}")
    project_id: str = made.body["id"]
    invited = await call(
        owner,
        "POST",
        f"{API}/projects/{project_id}/invitations",
        token=owner_token,
        json={"role": role},
    )
    if invited.status != 201:
        raise RuntimeError(f"invitation: {invited}")
    joined = await call(
        member,
        "POST",
        f"{API}/invitations/accept",
        token=member_token,
        json={"token": invited.body["token"]},
    )
    if joined.status != 200:
        raise RuntimeError(f"accept: {joined}")
    return project_id


async def until_created(
    http: httpx.AsyncClient, token: str, title: str, *, key: str, deadline: float
) -> Reply:
    """A client that retries the same keyed request until it is answered 201 or 200 (or the
    deadline passes): through 503s, cut connections and 409 "still in flight", backing off
    from a quarter of a second to one (not Retry-After's 5 s: the run is short)."""
    pause = 0.25
    while True:
        reply = await create_todo(http, token, title, key=key)
        if reply.status in (200, 201) or time.monotonic() >= deadline:
            return reply
        await asyncio.sleep(pause)
        pause = min(1.0, pause * 2)


def tally(replies: Iterable[Reply]) -> str:
    """`201x40, 503x3, no answerx2`: answers grouped by status and problem code."""
    counts: dict[str, int] = {}
    for reply in replies:
        counts[str(reply)] = counts.get(str(reply), 0) + 1
    return ", ".join(f"{name}x{n}" for name, n in sorted(counts.items())) or "none"


class Report:
    """Checks as they are decided, one line each; exit status 1 if any failed."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.results: list[tuple[str, bool]] = []

    def check(self, name: str, passed: bool, counts: str) -> bool:
        self.results.append((name, passed))
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {counts}", flush=True)
        return passed

    def note(self, text: str) -> None:
        print(f"      {text}", flush=True)

    def close(self) -> int:
        failed = [name for name, passed in self.results if not passed]
        total = len(self.results)
        print(f"{self.title}: {total - len(failed)} of {total} checks PASS, {len(failed)} FAIL")
        for name in failed:
            print(f"  FAIL {name}")
        return 1 if failed or not total else 0
