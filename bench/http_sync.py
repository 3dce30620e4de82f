"""bench/http's sync and live-event scenarios: an incremental sync with nothing new and one
with 20 changes (wrk, against this run's get_one), and N open event streams on one worker
receiving one write (the time until every stream has it, and the worker's RSS per stream)."""

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import httpx
import psycopg

from bench import http_servers as servers
from bench import http_wrk as wrk
from bench.http_tokens import Client, _lua, owned_todos

T = TypeVar("T")
SYNC = "/api/v1/sync"
EVENTS = "/api/v1/events"
CHANGES = 20
CHANGED_USERS = 50  # users whose 20 changes the second scenario reads (each its own token)
STREAMS = 1000
SMOKE_STREAMS = 10
NOTHING_NEW_FLOOR = 0.8  # of this run's get_one rps
STREAM_P99_MS = 500.0
STREAM_KIB_EACH = 50.0


async def _sync_token(http: httpx.AsyncClient, client: Client) -> str:
    """The token at the end of the user's full sync chain: nothing new after it."""
    token = None
    while True:
        params = {"limit": 1000, **({"token": token} if token else {})}
        response = await http.get(SYNC, params=params, headers=_auth(client))
        response.raise_for_status()
        body = response.json()
        token = body["sync_token"]
        if not body["has_more"]:
            return str(token)


def _auth(client: Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}


async def _gather(calls: Sequence[Awaitable[T]], concurrency: int = 16) -> list[T]:
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(call) for call in calls)))


def sync_tokens(base_url: str, clients: Sequence[Client]) -> list[str]:
    async def run() -> list[str]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            return await _gather([_sync_token(http, c) for c in clients])

    return asyncio.run(run())


def change_todos(base_url: str, database_url: str, clients: Sequence[Client]) -> None:
    """CHANGES of each user's todos renamed, through the API (so each is in the log)."""
    todos = owned_todos(database_url, [c.user_id for c in clients], per_user=CHANGES)

    async def run() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            calls = [
                http.patch(
                    f"/api/v1/todos/{todo}", json={"title": f"changed {n}"}, headers=_auth(c)
                )
                for c in clients
                for n, (todo, _, _) in enumerate(todos[c.user_id])
            ]
            for response in await _gather(calls):
                response.raise_for_status()

    asyncio.run(run())


def write_sync_lua(path: Path, clients: Sequence[Client], tokens: Sequence[str]) -> Path:
    lines = ["return {"]
    for client, token in zip(clients, tokens, strict=True):
        fields = {"user": _lua(client.user_id), "token": _lua(client.token), "sync": _lua(token)}
        lines.append("  {" + ", ".join(f"{k}={v}" for k, v in fields.items()) + "},")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sync_load(tokens_file: Path) -> wrk.Load:
    return wrk.Load("sync.lua", 32, {"BENCH_TOKENS": str(tokens_file)})


@dataclass(frozen=True)
class Fanout:
    streams: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    received: int
    rss_before_mib: float
    rss_after_mib: float

    @property
    def kib_per_stream(self) -> float:
        return (self.rss_after_mib - self.rss_before_mib) * 1024 / self.streams

    def as_dict(self) -> dict[str, float]:
        return {
            "streams": self.streams,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "received": self.received,
            "rss_before_mib": self.rss_before_mib,
            "rss_after_mib": self.rss_after_mib,
            "kib_per_stream": self.kib_per_stream,
        }


def share_with(database_url: str, owner: Client, members: Sequence[Client]) -> UUID:
    """A project of `owner`'s with every member in it (as a viewer), made in SQL: the stream
    test needs one write that every stream hears."""
    project = uuid4()
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO projects (id, owner_id, name, description, color, is_inbox,"
            " created_at, updated_at, version) VALUES (%s, %s, 'Streams', '', NULL, false,"
            " now(), now(), 1)",
            (project, owner.user_id),
        )
        rows = [(project, owner.user_id, "owner")]
        rows += [(project, m.user_id, "viewer") for m in members if m.user_id != owner.user_id]
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO memberships (project_id, user_id, role, added_at)"
                " VALUES (%s, %s, %s, now())",
                rows,
            )
    return project


def unshare(database_url: str, project: UUID) -> None:
    """The stream test's project gone (its memberships and todo with it): later scenarios list
    each user's own projects only, as before."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("DELETE FROM projects WHERE id = %s", (project,))


async def _open_stream(
    server_url: str, client: Client
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The client's event stream on a connection of its own, past the response's head (200).
    Read line by line from a plain asyncio connection: with a thousand httpx streams in this
    one process, the bench's own parsing of one event on every stream took about 200 ms (half
    of what it reported, measured on 2026-12-05), which is the client's time, not the
    server's. The body is chunked; each event's lines lie inside one chunk, so a line that
    reads `event: <type>` is that event's."""
    url = urlsplit(server_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        f"GET {EVENTS} HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {client.token}\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise RuntimeError(f"event stream answered {status.decode()}: {head[:200]!r}")
    return reader, writer


def fanout(
    server_url: str, pids: list[int], owner: Client, members: Sequence[Client], project: UUID
) -> Fanout:
    """One stream per member (each user may open a few): opened, settled, measured; then
    one todo created in the shared project and the time until each stream has its event."""

    async def run() -> Fanout:
        timeout = httpx.Timeout(30, read=None)
        async with httpx.AsyncClient(base_url=server_url, timeout=timeout) as http:
            # Warm: the first stream starts the worker's feed and its Redis subscription.
            async with http.stream("GET", EVENTS, headers=_auth(owner)) as response:
                response.raise_for_status()
                await asyncio.sleep(0.5)
            await asyncio.sleep(0.5)
            before = sum(servers.rss_mib(pids))
            opened = asyncio.Event()
            ready = 0
            arrived: list[float] = []
            gate = asyncio.Semaphore(32)

            async def listen(member: Client) -> None:
                nonlocal ready
                async with gate:  # opened a few at a time; then held open
                    reader, writer = await _open_stream(server_url, member)
                ready += 1
                if ready == len(members):
                    opened.set()
                try:
                    while line := await reader.readline():
                        if line.rstrip() == b"event: todo.created":
                            arrived.append(time.perf_counter())
                            return
                finally:
                    writer.close()

            tasks = [asyncio.create_task(listen(member)) for member in members]
            await asyncio.wait_for(opened.wait(), 120)
            await asyncio.sleep(2)  # settled: every stream idle, its feed subscribed
            after = sum(servers.rss_mib(pids))
            sent = time.perf_counter()
            created = await http.post(
                "/api/v1/todos",
                json={"title": "Stream bench", "project_id": str(project)},
                headers=_auth(owner),
            )
            created.raise_for_status()
            _, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
            latencies = sorted((t - sent) * 1000 for t in arrived)
            if not latencies:
                latencies = [float("inf")]

            def pct(p: float) -> float:
                return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

            return Fanout(
                streams=len(members),
                p50_ms=pct(0.5),
                p99_ms=pct(0.99),
                max_ms=latencies[-1],
                received=len(arrived),
                rss_before_mib=before,
                rss_after_mib=after,
            )

    return asyncio.run(run())
