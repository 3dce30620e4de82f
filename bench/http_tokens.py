"""Real logins through the running service, and the Lua data file the wrk scripts load: per
user its access and refresh token, its id (for the floor) and one todo it owns."""

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from uuid import UUID

import psycopg
from httpx import AsyncClient

from bench.common import BENCH_PASSWORD, DEEP_ROWS
from bench.http_seed import CREATED_TITLE
from bench.list_pages import walk

LOGIN = "/api/v1/auth/login"


@dataclass(frozen=True)
class Client:
    email: str
    user_id: UUID
    token: str
    refresh: str
    todo: UUID
    version: int
    completed: bool
    project: UUID | None = None
    """A project to create todos in (create_shared.lua); None: the Inbox."""


async def _login(client: AsyncClient, email: str) -> tuple[str, str]:
    response = await client.post(LOGIN, json={"email": email, "password": BENCH_PASSWORD})
    if response.status_code != 200:
        raise RuntimeError(f"login of {email} failed ({response.status_code}): {response.text}")
    body = response.json()
    return body["access_token"], body["refresh_token"]


async def login_all(
    base_url: str, emails: Sequence[str], concurrency: int = 4
) -> list[tuple[str, str]]:
    """(access, refresh) per email, in order; a few at a time, as Argon2 is CPU-bound."""
    gate = asyncio.Semaphore(concurrency)
    async with AsyncClient(base_url=base_url, timeout=60) as client:

        async def one(email: str) -> tuple[str, str]:
            async with gate:
                return await _login(client, email)

        return await asyncio.gather(*(one(email) for email in emails))


Owned = tuple[UUID, int, bool]
"""A todo's id, version and completed."""


def owned_todos(
    url: str, user_ids: Sequence[UUID], per_user: int = 1, skip: int = 0
) -> dict[UUID, list[Owned]]:
    """Each user's newest `per_user` seeded live todos after the newest `skip`: todos that a
    create run adds (and late ones it leaves behind) do not shift the ranks."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT owner_id, id, version, completed FROM (SELECT owner_id, id, version,"
            " completed, row_number() OVER (PARTITION BY owner_id"
            " ORDER BY created_at DESC, id DESC) AS rank FROM todos"
            " WHERE deleted_at IS NULL AND owner_id = ANY(%s) AND title <> %s) AS newest"
            " WHERE rank > %s AND rank <= %s ORDER BY owner_id, rank",
            (list(user_ids), CREATED_TITLE, skip, skip + per_user),
        ).fetchall()
    todos: dict[UUID, list[Owned]] = {}
    for owner, todo, version, completed in rows:
        todos.setdefault(owner, []).append((todo, version, completed))
    return todos


def clients(
    url: str, users: Sequence[tuple[str, UUID]], pairs: Sequence[tuple[str, str]]
) -> list[Client]:
    todos = owned_todos(url, [user_id for _, user_id in users])
    return [
        Client(email, user_id, access, refresh, *todos[user_id][0])
        for (email, user_id), (access, refresh) in zip(users, pairs, strict=True)
    ]


def patch_targets(url: str, clients: Sequence[Client], at_least: int, run: int) -> list[Client]:
    """At least `at_least` todos, each with its owner's tokens, as the database has them now:
    one per user when there are enough users, else several. Owners alternate, so requests in
    a row come from different users. Each `run` gets other todos: requests still in flight
    when wrk stopped may commit after this read, and leave its versions stale."""
    per_user = math.ceil(at_least / len(clients))
    ids = [client.user_id for client in clients]
    todos = owned_todos(url, ids, per_user, skip=run * per_user)
    return [
        replace(client, todo=todo, version=version, completed=completed)
        for rank in range(per_user)
        for client in clients
        for todo, version, completed in todos[client.user_id][rank : rank + 1]
    ]


def _lua(value: str | int | bool | UUID) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    # Then its JSON spelling is a Lua string too.
    assert text.isascii()
    assert "\\" not in text
    return json.dumps(text)


def write_lua(path: Path, clients: Sequence[Client]) -> Path:
    """`return { {token=..., user=..., todo=..., ...}, ... }` for the scripts' dofile."""
    lines = ["return {"]
    for c in clients:
        fields: dict[str, str | int | bool | UUID] = {
            "email": c.email,
            "user": c.user_id,
            "token": c.token,
            "refresh": c.refresh,
            "todo": c.todo,
            "version": c.version,
            "completed": c.completed,
        }
        if c.project is not None:
            fields["project"] = c.project
        lines.append("  {" + ", ".join(f"{k}={_lua(v)}" for k, v in fields.items()) + "},")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def deep_cursor(base_url: str, token: str, rows: int = DEEP_ROWS) -> str:
    """The cursor after `rows` todos, reached as a client would: pages of 100 (default sort)."""
    async with AsyncClient(base_url=base_url, timeout=60) as client:
        return await walk(client, {"Authorization": f"Bearer {token}"}, "-created_at", 100, rows)
