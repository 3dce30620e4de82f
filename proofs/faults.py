"""scripts/faults: the service's worst day, on private PostgreSQL and Redis it starts, stops
and restarts itself, with the service started by scripts/serve in production settings.

    scripts/faults [--keys 100] [--retry-for 20] [--idle 10000] [--only a,b,…,l]

a. 100 concurrent keyed POSTs, the server killed (-9) while they are in flight, restarted, and
   every request retried with its key until answered 201/200: exactly one todo per key.
b. Redis killed and restarted empty mid-run: no logged-out token honoured, no duplicate from
   a keyed retry, no 5xx other than the documented 503.
c. PostgreSQL stopped (immediate) and restarted mid-run: documented 503s while it is down,
   successes after, and every write acknowledged 201 is in the database at the end.
d. The documented deployment (nginx on deploy/nginx.conf in front of the service): one host
   (127.0.0.1) holds 10 000 idle, half-sent connections while another (127.0.0.2) registers,
   logs in and lists, every request answered 2xx; the first host's requests in progress past
   nginx's per-client bound are refused 429.
e. The documented deployment's bounds on request heads and reads: a 64 KiB header and a
   thousand small ones are each refused 431 problem+json by nginx, never reaching the service
   (no access line of its own, its memory does not grow); a head that stops half-way and a
   body that stops half-way each lose their connection within nginx's timeout for them.
f. A member removed from a project, then Redis killed and restarted empty: the removed
   member is refused (404) before, while Redis is down (or 503) and after, on every path of
   the project and its todos; a member who stayed is served after the restart.
g. Live-event streams open while todos are written, Redis emptied (FLUSHALL) and then killed
   and restarted empty: every stream, resuming from its last event id whenever it must,
   has every acknowledged todo exactly once.
h. Live-event streams on one instance, todos written through a second one, the first killed
   (-9): its clients reconnect to the second with their last event id and have every
   acknowledged todo exactly once.

i-l. Webhooks, with the job worker (scripts/worker) beside the service: the API killed
   mid-run, the worker killed mid-delivery twice, Redis emptied, the receiver down for a
   minute (proofs/webhooks.py says what each checks).

Black-box: HTTP, process control and the database's todos table only, so it runs on any
version of the service. Prints every check with its counts; exits 1 if any fails.
"""

import argparse
import asyncio
import re
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import redis

from harness import live_server
from harness.raised_limits import RAISED_LIMITS
from harness.reverse_proxy import NGINX_CONF
from proofs import db, webhooks
from proofs.api import (
    API,
    PASSWORD,
    Reply,
    Report,
    call,
    client,
    create_todo,
    login,
    logout,
    new_token,
    new_user,
    refresh,
    shared_project,
    tally,
    unique_email,
    until_created,
)
from proofs.connections import (
    IdleFlood,
    allow_descriptors,
    requests_without_bodies,
    resident_kib,
    until_closed,
)
from proofs.run import run_proof
from proofs.stack import Nginx, Service, Stores, Workspace
from proofs.streams import Follower, lost_and_twice

# Time the service gets, once PostgreSQL is back, to replace the pool's dead connections.
POOL_SETTLE_SECONDS = 1.0
WRITERS = 4
# Scenario d: the hostile host, the other one, and the address nginx reaches the service from
# (the one the service trusts X-Forwarded-For from), all on loopback.
HOSTILE_HOST = "127.0.0.1"
OTHER_HOST = "127.0.0.2"
PROXY_ADDRESS = "127.0.0.3"
OTHER_CLIENTS = 4
# Longer than nginx's client_header_timeout: the flood's connections are closed by nginx, and
# opened again, within it.
FLOOD_SECONDS = 12.0
FLOOD_OPEN_SECONDS = 60.0
# The other host's requests while the flood holds: each answered within this (the defect was
# connection errors, then answers after the service's 20 s read timeout).
ANSWERED_WITHIN = 5.0
PAST_THE_LIMIT = 20
HELD_WAIT = 3.0
# Scenario e: refused heads sent one after another (enough that a service buffering them
# would show it in its memory), how much its resident memory may move meanwhile for reasons
# of its own, and how late after nginx's timeout a stalled connection may still be closed.
REFUSED_HEADS = 50
BIG_HEADER_BYTES = 64 * 1024
SMALL_HEADERS = 1000
RSS_SLACK_KIB = 2048
TIMEOUT_SLACK = 3.0
REFUSED_WITHIN = 5.0


@dataclass
class Drill:
    space: Workspace
    stores: Stores
    service: Service
    http: httpx.AsyncClient
    report: Report
    keys: int
    retry_for: float
    idle: int
    env: dict[str, str]
    """The service's environment: a second instance (scenario h) starts with it too."""

    def restore(self) -> None:
        """Everything up again after a scenario that stopped half-way."""
        for part in (self.stores.postgres, self.stores.redis, self.service):
            if not part.running:
                part.start()


class Load:
    """Clients that keep calling until stopped; every reply is kept, stamped with its start."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def run(self, step: Callable[[int, int], Awaitable[Reply]], clients: int) -> None:
        async def loop(n: int) -> None:
            i = 0
            while not self._stop.is_set():
                reply = await step(n, i)
                self.replies.append(reply)
                i += 1
                await asyncio.sleep(0.02 if reply.ok else 0.05)

        self._tasks += [asyncio.create_task(loop(n)) for n in range(clients)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


def between(replies: Sequence[Reply], start: float, end: float = float("inf")) -> list[Reply]:
    return [reply for reply in replies if start <= reply.started < end]


async def retry_all(d: Drill, token: str, titles: dict[str, str]) -> dict[str, Reply]:
    """Every key retried by its own client, all at once, until answered or out of time."""
    deadline = time.monotonic() + d.retry_for
    keys = list(titles)
    finals = await asyncio.gather(
        *(until_created(d.http, token, titles[key], key=key, deadline=deadline) for key in keys)
    )
    return dict(zip(keys, finals, strict=True))


def check_one_per_key(d: Drill, label: str, titles: dict[str, str]) -> None:
    made = db.todos_per_key(d.stores.database_url, titles)
    d.report.check(
        f"{label}: exactly one todo per key",
        made.each_once,
        f"{made.keys} keys: exactly one todo {made.once}, none {made.none}, "
        f"more than one {made.more} ({made.extra} extra todos)",
    )


def check_replays(
    d: Drill, label: str, firsts: dict[str, Reply], finals: dict[str, Reply], before: str
) -> None:
    """Each retry answered 201/200, with the todo a 201 before the fault acknowledged."""
    unanswered = [key for key, reply in finals.items() if reply.status not in (200, 201)]
    acknowledged = {key: r.body["id"] for key, r in firsts.items() if r.status == 201}
    other = [
        key
        for key, todo_id in acknowledged.items()
        if finals[key].status in (200, 201) and finals[key].body["id"] != todo_id
    ]
    d.report.check(
        f"{label}: every retry answered 201/200, with the todo first acknowledged",
        not unanswered and not other,
        f"{before}: {tally(firsts.values())}; retried: {tally(finals.values())}; "
        f"unanswered after {d.retry_for:.0f} s: {len(unanswered)}; of {len(acknowledged)} "
        f"acknowledged before, answered with another todo: {len(other)}",
    )


async def server_killed(d: Drill) -> None:
    """a. kill -9 with keyed POSTs in flight; restart; retry every key."""
    token = await new_token(d.http, "fault-a")
    titles = {f"a-{i:03d}": f"fault-a a-{i:03d}" for i in range(d.keys)}
    answered = 0
    enough = asyncio.Event()

    async def first(key: str) -> Reply:
        nonlocal answered
        reply = await create_todo(d.http, token, titles[key], key=key)
        answered += 1
        if answered >= max(1, d.keys // 10):  # the rest are in flight or queued
            enough.set()
        return reply

    tasks = {key: asyncio.create_task(first(key)) for key in titles}
    try:
        await asyncio.wait_for(enough.wait(), 10)
    finally:
        d.service.kill()
    firsts = {key: await task for key, task in tasks.items()}
    await asyncio.to_thread(d.service.start)
    finals = await retry_all(d, token, titles)
    check_one_per_key(d, "a. killed mid-flight", titles)
    check_replays(d, "a. killed mid-flight", firsts, finals, "before the kill")


async def redis_restarted(d: Drill) -> None:
    """b. Redis killed and restarted empty while keyed writes and logged-out tokens keep coming."""
    email, _, first_pair = await new_user(d.http, "fault-b-out")
    pairs = [first_pair, *[await login(d.http, email) for _ in range(4)]]
    for pair in pairs:
        reply = await logout(d.http, pair)
        if reply.status != 204:
            raise RuntimeError(f"logout before the fault: {reply}")
    token = await new_token(d.http, "fault-b-writer")
    titles: dict[str, str] = {}
    firsts: dict[str, Reply] = {}

    async def write(n: int, i: int) -> Reply:
        key = f"b-{n}-{i:04d}"
        titles[key] = f"fault-b {key}"
        firsts[key] = await create_todo(d.http, token, titles[key], key=key)
        return firsts[key]

    async def probe(n: int, i: int) -> Reply:
        return await call(
            d.http, "GET", f"{API}/todos", token=pairs[i % len(pairs)]["access_token"]
        )

    writes, probes = Load(), Load()
    writes.run(write, WRITERS)
    probes.run(probe, 1)
    try:
        await asyncio.sleep(1.5)
        down = time.monotonic()
        await asyncio.to_thread(d.stores.redis.kill)
        await asyncio.sleep(0.5)
        ready = await call(d.http, "GET", "/health/ready")
        await asyncio.sleep(1.5)
    finally:
        up = time.monotonic()  # from here on, the answers may come from the new Redis
        await asyncio.to_thread(d.stores.redis.start)
    await asyncio.sleep(2.0)
    await writes.stop()
    await probes.stop()
    d.report.note(f"/health/ready while Redis was down: {ready} {ready.body}")

    after = [await call(d.http, "GET", f"{API}/users/me", token=p["access_token"]) for p in pairs]
    refreshed = [await refresh(d.http, p["refresh_token"]) for p in pairs]
    honoured = [r for r in [*probes.replies, *after, *refreshed] if r.ok]
    d.report.check(
        "b. Redis emptied: no logged-out token honoured",
        not honoured,
        f"{len(pairs)} logged-out sessions; requests before the stop "
        f"{tally(between(probes.replies, 0, down))}, while down "
        f"{tally(between(probes.replies, down, up))}, after the restart "
        f"{tally(between(probes.replies, up))}; then /users/me {tally(after)}, "
        f"refresh {tally(refreshed)}",
    )
    finals = await retry_all(d, token, titles)
    check_one_per_key(d, "b. Redis emptied", titles)
    check_replays(d, "b. Redis emptied", firsts, finals, "during the run")
    replies = [*writes.replies, *probes.replies, *after, *refreshed, *finals.values()]
    check_5xx(d, "b", replies)


def check_5xx(d: Drill, scenario: str, replies: Sequence[Reply]) -> None:
    documented = sum(reply.is_documented_503() for reply in replies)
    bad = [reply for reply in replies if reply.is_bad_5xx()]
    d.report.check(
        f"{scenario}. no 5xx other than the documented 503 (problem+json, Retry-After)",
        not bad,
        f"{len(replies)} answers: documented 503 {documented}, other 5xx {len(bad)}"
        + (f" ({tally(bad)})" if bad else ""),
    )


async def postgres_restarted(d: Drill) -> None:
    """c. PostgreSQL stopped (immediate, as a crash) and started again under writes."""
    token = await new_token(d.http, "fault-c")

    async def write(n: int, i: int) -> Reply:
        return await create_todo(d.http, token, f"fault-c {n}-{i:04d}")

    load = Load()
    load.run(write, WRITERS)
    try:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(d.stores.postgres.stop)
        down = time.monotonic()
        await asyncio.sleep(0.5)
        ready = await call(d.http, "GET", "/health/ready")
        await asyncio.sleep(1.5)
        starting = time.monotonic()
    finally:
        await asyncio.to_thread(d.stores.postgres.start)
    up = time.monotonic()
    await asyncio.sleep(POOL_SETTLE_SECONDS + 2.0)
    await load.stop()
    d.report.note(f"/health/ready while PostgreSQL was down: {ready} {ready.body}")

    acknowledged = {reply.body["id"] for reply in load.replies if reply.status == 201}
    lost = acknowledged - db.existing_todo_ids(d.stores.database_url, acknowledged)
    d.report.check(
        "c. PostgreSQL restarted: no acknowledged write lost",
        bool(acknowledged) and not lost,
        f"acknowledged 201 {len(acknowledged)}, in the database at the end "
        f"{len(acknowledged) - len(lost)}, lost {len(lost)}",
    )
    during = between(load.replies, down, starting)
    settling = between(load.replies, up, up + POOL_SETTLE_SECONDS)
    settled = between(load.replies, up + POOL_SETTLE_SECONDS)
    d.report.check(
        "c. PostgreSQL restarted: 503s while down, success after",
        bool(during)
        and all(reply.is_documented_503() for reply in during)
        and bool(settled)
        and all(reply.ok for reply in settled),
        f"before {tally(between(load.replies, 0, down))}; while down {tally(during)}; "
        f"first {POOL_SETTLE_SECONDS:g} s after the restart {tally(settling)}; "
        f"then {tally(settled)}",
    )
    check_5xx(d, "c", load.replies)


@dataclass(frozen=True)
class Timed:
    reply: Reply
    seconds: float
    flood_open: int
    """The hostile host's connections open when the answer came."""


async def other_host(
    http: httpx.AsyncClient, flood: IdleFlood | None, seconds: float
) -> list[Timed]:
    """OTHER_CLIENTS clients on the other host, for `seconds`: each in turn checks health,
    registers, logs in and lists its todos."""
    deadline = time.monotonic() + seconds
    answers: list[Timed] = []

    async def timed(method: str, path: str, **kwargs: Any) -> Reply:
        started = time.monotonic()
        reply = await call(http, method, path, **kwargs)
        open_now = flood.open if flood else 0
        answers.append(Timed(reply, time.monotonic() - started, open_now))
        return reply

    async def one_client() -> None:
        while time.monotonic() < deadline:
            await timed("GET", "/health")
            body = {"email": unique_email("fault-d"), "password": PASSWORD}
            await timed("POST", f"{API}/auth/register", json=body)
            logged_in = await timed("POST", f"{API}/auth/login", json=body)
            token = logged_in.body["access_token"] if logged_in.ok else None
            await timed("GET", f"{API}/todos", token=token)

    await asyncio.gather(*(one_client() for _ in range(OTHER_CLIENTS)))
    return answers


def latencies(answers: Sequence[Timed]) -> str:
    if not answers:
        return "no answers"
    times = sorted(answer.seconds * 1000 for answer in answers)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    return f"p50 {statistics.median(times):.0f} ms, p95 {p95:.0f} ms, max {times[-1]:.0f} ms"


def nginx_limit_conn() -> int:
    """The per-client bound the deployment sets: what scenario d expects nginx to enforce."""
    found = re.search(r"^\s*limit_conn per_client (\d+);", NGINX_CONF.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no `limit_conn per_client N;` in {NGINX_CONF}")
    return int(found[1])


async def connection_flood(d: Drill) -> None:
    """d. One host holds thousands of idle connections to the deployment's nginx."""
    limit = nginx_limit_conn()
    descriptors = d.idle + limit + PAST_THE_LIMIT + 200
    if allow_descriptors(descriptors) < descriptors:
        raise RuntimeError(f"this process may not open {descriptors} descriptors (ulimit -n)")
    nginx = await asyncio.to_thread(
        Nginx, d.space, [d.service], name="nginx-d", location=[f"proxy_bind {PROXY_ADDRESS}"]
    )
    flood = IdleFlood(live_server.HOST, nginx.port, HOSTILE_HOST, d.idle)
    during: asyncio.Task[list[Timed]] | None = None
    try:
        async with client(nginx.url, OTHER_CLIENTS, source=OTHER_HOST) as http:
            before = await other_host(http, None, 3.0)
            flood.start()
            took = await flood.until_open(FLOOD_OPEN_SECONDS)
            held_at_start = flood.open
            during = asyncio.create_task(other_host(http, flood, FLOOD_SECONDS))
            await asyncio.sleep(2.0)
            held = await requests_without_bodies(
                live_server.HOST,
                nginx.port,
                HOSTILE_HOST,
                limit + PAST_THE_LIMIT,
                f"{API}/todos",
                HELD_WAIT,
            )
            answers = await during
    finally:
        if during is not None and not during.done():
            during.cancel()
        await flood.stop()
        await asyncio.to_thread(nginx.stop)

    replies = [answer.reply for answer in answers]
    slow = [answer for answer in answers if answer.seconds > ANSWERED_WITHIN]
    open_counts = sorted(answer.flood_open for answer in answers)
    held_throughout = bool(open_counts) and statistics.median(open_counts) >= 0.9 * d.idle
    d.report.check(
        f"d. one host holding {d.idle} idle connections: another host's requests all "
        f"answered 2xx within {ANSWERED_WITHIN:g} s",
        held_at_start == d.idle
        and held_throughout
        and bool(replies)
        and all(reply.ok for reply in replies)
        and not slow,
        f"{HOSTILE_HOST}: {held_at_start} connections open after {took:.1f} s, each half a "
        f"request; over {FLOOD_SECONDS:g} s: opened {flood.opened}, closed by nginx "
        f"{flood.closed_by_server}, failed to connect {flood.failed}; open when the other "
        f"host's answers came: min {open_counts[0] if open_counts else 0}, median "
        f"{statistics.median(open_counts) if open_counts else 0:.0f}. {OTHER_HOST}: before "
        f"the flood {tally(a.reply for a in before)} ({latencies(before)}); during it "
        f"{tally(replies)} ({latencies(answers)}), slower than {ANSWERED_WITHIN:g} s "
        f"{len(slow)}",
    )
    statuses = [answer.partition(b"\r\n")[0].decode(errors="replace") for answer in held.refused]
    refused_429 = [
        answer
        for answer in held.refused
        if answer.startswith(b"HTTP/1.1 429 ")
        and b"application/problem+json" in answer
        and b"\r\nretry-after: " in answer.lower()
        and b'"code":"rate_limited"' in answer
    ]
    d.report.check(
        f"d. per-client bound: {HOSTILE_HOST}'s requests in progress past limit_conn "
        f"({limit}) refused 429 while {OTHER_HOST} is served",
        held.held == limit and len(refused_429) == PAST_THE_LIMIT == len(held.refused),
        f"{limit + PAST_THE_LIMIT} POSTs at once from {HOSTILE_HOST}, bodies never sent: "
        f"in progress (unanswered after {HELD_WAIT:g} s) {held.held}, refused "
        f"{len(held.refused)} ({', '.join(sorted(set(statuses))) or 'none'}), of them 429 "
        f"rate_limited problem+json with Retry-After {len(refused_429)}",
    )


def nginx_seconds(directive: str) -> float:
    """A timeout the deployment sets (`directive Ns;`): what scenario e expects nginx to keep."""
    found = re.search(rf"^\s*{directive} (\d+)s;", NGINX_CONF.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no `{directive} Ns;` in {NGINX_CONF}")
    return float(found[1])


def served(service: Service) -> int:
    """Requests the service has answered: its access lines (one for every request it sees)."""
    return service.log.read_text(errors="replace").count('"logger":"app.access"')


def headers_too_large(answer: bytes) -> bool:
    return (
        answer.startswith(b"HTTP/1.1 431 ")
        and b"application/problem+json" in answer
        and b'"code":"headers_too_large"' in answer
    )


async def head_bounds(d: Drill) -> None:
    """e. The deployment's nginx bounds request heads and reads, before the service."""
    header_timeout = nginx_seconds("client_header_timeout")
    body_timeout = nginx_seconds("client_body_timeout")
    nginx = await asyncio.to_thread(Nginx, d.space, [d.service], name="nginx-e")
    host, port = live_server.HOST, nginx.port
    big = (f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * BIG_HEADER_BYTES}\r\n\r\n").encode()
    many = "".join(f"X-Filler-{i:04d}: v\r\n" for i in range(SMALL_HEADERS))
    numerous = f"GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode()
    stalled_head = b"GET /health HTTP/1.1\r\nHost: x\r\n"
    stalled_body = (
        f"POST {API}/todos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        'Content-Length: 64\r\n\r\n{"title": '
    ).encode()
    answered_before = served(d.service)
    try:
        rss_before = resident_kib(d.service.pid)
        bigs = [await until_closed(host, port, big, REFUSED_WITHIN) for _ in range(REFUSED_HEADS)]
        rss_after = resident_kib(d.service.pid)
        numerous_answer = await until_closed(host, port, numerous, REFUSED_WITHIN)
        # Both stalls at once: each waits out its own timeout.
        head_closed, body_closed = await asyncio.gather(
            until_closed(host, port, stalled_head, header_timeout + TIMEOUT_SLACK),
            until_closed(host, port, stalled_body, body_timeout + TIMEOUT_SLACK),
        )
    finally:
        await asyncio.to_thread(nginx.stop)
    reached = served(d.service) - answered_before

    refused = [answer for answer in bigs if headers_too_large(answer.data)]
    grew = rss_after - rss_before
    d.report.check(
        f"e. a {BIG_HEADER_BYTES // 1024} KiB header: 431 headers_too_large problem+json from "
        "nginx, never reaching the service",
        len(refused) == REFUSED_HEADS and reached == 0 and grew <= RSS_SLACK_KIB,
        f"{REFUSED_HEADS} sent: 431 headers_too_large {len(refused)} "
        f"({', '.join(sorted({a.status for a in bigs}))}); requests the service answered "
        f"meanwhile (its access lines) {reached}; its RSS {rss_before} KiB before, {rss_after} KiB "
        f"after ({grew:+d} KiB, allowed {RSS_SLACK_KIB})",
    )
    d.report.check(
        f"e. {SMALL_HEADERS} small headers ({len(numerous)} bytes of head): 431 "
        "headers_too_large problem+json from nginx",
        headers_too_large(numerous_answer.data) and reached == 0,
        f"answered {numerous_answer.status} in {numerous_answer.seconds:.2f} s",
    )
    for what, closed, timeout in (
        ("a head that stops half-way", head_closed, header_timeout),
        ("a body that stops half-way", body_closed, body_timeout),
    ):
        d.report.check(
            f"e. {what}: its connection closed by nginx within its timeout ({timeout:g} s) "
            f"+ {TIMEOUT_SLACK:g} s",
            closed.closed and timeout - 1.0 <= closed.seconds <= timeout + TIMEOUT_SLACK,
            f"{'closed' if closed.closed else 'still open'} after {closed.seconds:.1f} s, "
            f"answer {closed.status}",
        )


async def removed_member(d: Drill) -> None:
    """f. A removed member and Redis emptied: access lives in the database, never readmitted."""
    owner = await new_token(d.http, "fault-f-owner")
    _, removed_id, pair = await new_user(d.http, "fault-f-removed")
    removed = pair["access_token"]
    stayed = await new_token(d.http, "fault-f-stayed")
    project_id = await shared_project(d.http, owner, d.http, removed, "editor")
    await shared_project_join(d, owner, stayed, project_id)
    made = await create_todo(d.http, removed, "fault-f by the removed", project_id=project_id)
    todo = f"{API}/todos/{made.body.get('id')}"
    project = f"{API}/projects/{project_id}"
    gone = await call(d.http, "DELETE", f"{project}/members/{removed_id}", token=owner)

    async def probes() -> list[Reply]:
        return [
            await call(d.http, "GET", todo, token=removed),
            await call(d.http, "PATCH", todo, token=removed, json={"title": "readmitted"}),
            await call(d.http, "GET", project, token=removed),
            await call(d.http, "GET", f"{project}/activity", token=removed),
            await create_todo(d.http, removed, "fault-f readmitted", project_id=project_id),
        ]

    before = await probes()
    await asyncio.to_thread(d.stores.redis.kill)
    during = await probes()
    await asyncio.to_thread(d.stores.redis.start)
    await asyncio.sleep(1.0)
    after = await probes()
    stayed_reads = await call(d.http, "GET", todo, token=stayed)
    listed = await call(d.http, "GET", f"{API}/todos", token=removed)
    readmitted = [r for r in [*before, *during, *after] if r.ok] + (
        [listed]
        if listed.ok and any(t["id"] == made.body.get("id") for t in listed.body["items"])
        else []
    )
    d.report.check(
        "f. a removed member is never readmitted, Redis emptied or not",
        made.status == 201
        and gone.status == 204
        and not readmitted
        and all(r.status == 404 for r in [*before, *after])
        and all(r.status in (401, 404, 503) for r in during)
        and stayed_reads.ok,
        f"removed {gone}; the removed member's 5 requests on the project before the fault "
        f"{tally(before)}, with Redis down {tally(during)}, after its restart empty "
        f"{tally(after)}; their list holds the todo: {bool(readmitted)}; a member who stayed "
        f"reads it {stayed_reads}",
    )


async def shared_project_join(d: Drill, owner: str, member: str, project_id: str) -> None:
    invited = await call(
        d.http,
        "POST",
        f"{API}/projects/{project_id}/invitations",
        token=owner,
        json={"role": "viewer"},
    )
    joined = await call(
        d.http,
        "POST",
        f"{API}/invitations/accept",
        token=member,
        json={"token": invited.body.get("token")},
    )
    if joined.status != 200:
        raise RuntimeError(f"accept: {joined}")


STREAM_FOLLOWERS = 2  # one user's streams: with a killed instance's places, under the cap
STREAM_WRITES_SECONDS = 2.0
STREAM_SETTLE_SECONDS = 3.0


async def _follow_while_writing(
    d: Drill, urls: list[str], write_to: httpx.AsyncClient, fault: Callable[[], Awaitable[str]]
) -> None:
    """Followers on `urls[0]`, a writer creating todos through `write_to`, `fault` midway."""
    token = await new_token(d.http, "fault-streams")
    followers = [Follower(list(urls), token) for _ in range(STREAM_FOLLOWERS)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(f.run(stop)) for f in followers]
    await asyncio.sleep(1.0)  # open and subscribed
    acknowledged: dict[str, float] = {}

    async def write(n: int, i: int) -> Reply:
        reply = await create_todo(write_to, token, f"fault-streams {n}-{i}")
        if reply.status == 201:
            acknowledged[reply.body["id"]] = time.monotonic()
        return reply

    writes = Load()
    writes.run(write, 2)
    await asyncio.sleep(STREAM_WRITES_SECONDS)
    what = await fault()
    await asyncio.sleep(STREAM_WRITES_SECONDS)
    await writes.stop()
    await asyncio.sleep(STREAM_SETTLE_SECONDS)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lost, twice = lost_and_twice(followers, set(acknowledged))
    d.report.check(
        f"{what}: streams resume from their last id with nothing lost or repeated",
        bool(acknowledged) and lost == 0 and twice == 0,
        f"{len(acknowledged)} todos acknowledged ({tally(writes.replies)}); {len(followers)} "
        f"streams got {[len(f.created()) for f in followers]} todo.created, lost {lost}, twice "
        f"{twice}; connections opened {[f.opened for f in followers]}, refused or broken "
        f"{[dict(f.refused) for f in followers]}, stream.end {[dict(f.ends) for f in followers]}",
    )


async def redis_emptied_under_streams(d: Drill) -> None:
    """g. Live-event streams open, Redis emptied, then killed and restarted empty."""

    async def fault() -> str:
        await asyncio.to_thread(_flushall, d.stores.redis.url())
        await asyncio.sleep(STREAM_WRITES_SECONDS)
        await asyncio.to_thread(d.stores.redis.kill)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(d.stores.redis.start)
        return "g. Redis emptied, then restarted empty"

    await _follow_while_writing(d, [d.service.url], d.http, fault)


def _flushall(url: str) -> None:
    with redis.Redis.from_url(url) as connection:
        connection.flushall()


async def instance_killed_under_streams(d: Drill) -> None:
    """h. Live-event streams on an instance killed (-9): they resume on another one."""
    other = await asyncio.to_thread(Service, d.space, "service-b", d.env)
    try:
        async with client(other.url) as on_other:

            async def fault() -> str:
                await asyncio.to_thread(d.service.kill)
                return "h. the streams' instance killed"

            await _follow_while_writing(d, [d.service.url, other.url], on_other, fault)
    finally:
        await asyncio.to_thread(other.stop)
        await asyncio.to_thread(d.service.start)


SCENARIOS = {
    "a": server_killed,
    "b": redis_restarted,
    "c": postgres_restarted,
    "d": connection_flood,
    "e": head_bounds,
    "f": removed_member,
    "g": redis_emptied_under_streams,
    "h": instance_killed_under_streams,
    "i": webhooks.api_killed,
    "j": webhooks.worker_killed,
    "k": webhooks.redis_emptied,
    "l": webhooks.receiver_down,
}


async def drill(d: Drill, only: Sequence[str]) -> None:
    for name in only:
        print(f"== {SCENARIOS[name].__doc__}", flush=True)
        started = time.monotonic()
        try:
            await SCENARIOS[name](d)
        except Exception as exc:  # the scenario could not finish: a failure, and the next goes on
            d.report.check(f"{name}. ran to the end", False, f"{type(exc).__name__}: {exc}")
            await asyncio.to_thread(d.restore)
        d.report.note(f"{time.monotonic() - started:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100, help="keyed POSTs in scenario a")
    parser.add_argument(
        "--retry-for", type=float, default=20.0, help="seconds a client retries one key"
    )
    parser.add_argument(
        "--idle", type=int, default=10_000, help="idle connections one host holds in scenario d"
    )
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run, e.g. a,c")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := set(only) - set(SCENARIOS):
        parser.error(f"unknown scenario {sorted(unknown)}")

    def prove(space: Workspace, stores: Stores, report: Report) -> None:
        # TRUSTED_PROXIES: the address scenario d's nginx reaches the service from.
        env = {**stores.env, **RAISED_LIMITS, **webhooks.ENV, "TRUSTED_PROXIES": PROXY_ADDRESS}
        service = Service(space, "service", env)
        postgres, redis = stores.postgres, stores.redis
        print(f"PostgreSQL :{postgres.port}, Redis :{redis.port}, service {service.url}")
        print(f"logs in {space.logs}", flush=True)

        async def run() -> None:
            async with client(service.url, connections=args.keys + 20) as http:
                d = Drill(
                    space,
                    stores,
                    service,
                    http,
                    report,
                    args.keys,
                    args.retry_for,
                    args.idle,
                    env,
                )
                await drill(d, only)

        asyncio.run(run())

    return run_proof("faults", prove)


if __name__ == "__main__":
    raise SystemExit(main())
