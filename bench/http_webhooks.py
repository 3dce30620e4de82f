"""bench/http's webhook scenarios: todo creates with three webhooks subscribed for every user
against this run's create, and the job worker's delivery rate to a local receiver.

- `create_webhooks`: the create load with every user holding three webhooks and no worker
  running: what a subscription costs the write path (the activity entry is the outbox; the
  request does nothing more).
- `create_webhooks_worker`: the same with one worker (scripts/worker) delivering beside it on
  this machine: what sharing the cores with the worker costs.
- Deliveries per second: the worker drains the backlog those runs left, into a receiver on
  loopback that answers 204 at once; the rate is counted at the receiver over a window.
"""

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import psycopg

from bench import http_wrk as wrk
from bench.common import SECRET_KEY
from bench.http_scenarios import BY_NAME, Bench
from bench.http_seed import delete_created
from bench.http_sync import _auth, _gather
from bench.http_tokens import Client
from harness import worker
from harness.live_server import LiveServer
from harness.migrations import libpq_url
from harness.receiver import Receiver, receiver

HOOKS_PER_USER = 3
CREATE_FLOOR = 0.8  # of this run's create rps
DRAIN_SECONDS = 20.0
SMOKE_DRAIN_SECONDS = 3.0


@dataclass
class WebhookResults:
    quiet: wrk.Result
    beside_worker: wrk.Result
    deliveries_per_second: float
    delivered: int


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """The receiver on a loop of its own in a thread: the bench's own code is synchronous."""
    ready = threading.Event()
    stop = threading.Event()
    holder: list[Receiver] = []

    async def serve() -> None:
        async with receiver() as target:
            holder.append(target)
            ready.set()
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the receiver did not start")
    try:
        yield holder[0]
    finally:
        stop.set()
        thread.join(10)


def subscribe(base_url: str, clients: Sequence[Client], url: str) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:

            async def one(client: Client) -> None:
                body = {"url": url, "events": ["todo.created"]}
                response = await http.post("/api/v1/webhooks", json=body, headers=_auth(client))
                response.raise_for_status()

            await _gather([one(c) for c in clients for _ in range(HOOKS_PER_USER)])

    asyncio.run(run())


def unsubscribe(database_url: str) -> None:
    """Every webhook (and delivery) gone, and the engine's queue emptied: later phases run as
    if none had existed."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        connection.execute("DELETE FROM webhooks")
        connection.execute("DELETE FROM procrastinate_jobs")


def worker_env(bench: Bench) -> dict[str, str]:
    return {
        "ENVIRONMENT": "production",
        "DATABASE_URL": bench.database_url,
        "REDIS_URL": bench.redis_url,
        "SECRET_KEY": SECRET_KEY,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",  # its start line is how harness.worker knows it is up
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",  # the receiver is on loopback
        # The seed's trash is years old: kept, so the worker is not measured purging it.
        "TRASH_RETENTION_DAYS": "3650",
    }


def webhooks_phase(bench: Bench, server: LiveServer) -> WebhookResults:
    """The module's three measurements (see its docstring), then every webhook removed."""
    create = BY_NAME["create"].load
    with running_receiver() as target:
        subscribe(server.url, bench.clients, target.url)
        try:
            quiet = bench.measure(server, "create_webhooks", [create])[0]
            delete_created(bench.database_url)
            hired = worker.start(env=worker_env(bench), log=bench.logs / "job-worker.log")
            try:
                beside = bench.measure(server, "create_webhooks_worker", [create])[0]
                delete_created(bench.database_url)
                window = SMOKE_DRAIN_SECONDS if bench.args.smoke else DRAIN_SECONDS
                before = len(target.received)
                started = time.perf_counter()
                time.sleep(window)
                delivered = len(target.received) - before
                rate = delivered / (time.perf_counter() - started)
            finally:
                code = hired.stop()
                if code != 0:
                    bench.failures.append(f"the job worker exited {code} (job-worker.log)")
        finally:
            unsubscribe(bench.database_url)
    if bench.args.smoke and not target.received:
        bench.failures.append("the job worker delivered nothing to the receiver")
    print(f"  job worker: {delivered} deliveries in {window:.0f} s: {rate:,.0f}/s", flush=True)
    return WebhookResults(quiet, beside, rate, len(target.received))
