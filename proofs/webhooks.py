"""The fault suite's webhook scenarios (scripts/faults i-l): a receiver on loopback, the job
worker (scripts/worker) beside the service, and the database's todos as the ground truth of
what was committed. Each prints its counts.

i. 200 changes (and refused ones between them) with the API killed (-9) at a random point:
   every committed change delivered at least once, nothing for a refused write.
j. The worker killed (-9) twice while deliveries are in flight: every event delivered.
k. Redis emptied (FLUSHALL), then killed and restarted empty, mid-run: nothing lost.
l. The receiver down (connection refused) for a minute: every event delivered once it is
   back, each after the retry schedule's delays.
"""

import asyncio
import random
import time
from collections.abc import Iterable
from typing import Any

import httpx
import redis

from harness.receiver import Receiver, receiver
from proofs import db
from proofs.api import API, Reply, call, new_token, tally
from proofs.stack import JobWorker

# The retry schedule the fault suite's service runs with (WEBHOOK_RETRY_SCHEDULE): a minute's
# outage is spanned by its first five delays.
RETRY_SCHEDULE = (2, 4, 8, 16, 32, 64)
ENV = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",  # the receiver is on loopback
    "WEBHOOK_RETRY_SCHEDULE": ",".join(str(delay) for delay in RETRY_SCHEDULE),
}
CHANGES = 200
WRITERS = 8
DELIVERED_WITHIN = 120.0
OUTAGE_SECONDS = 60.0


async def subscribe(http: httpx.AsyncClient, token: str, url: str) -> dict[str, Any]:
    reply = await call(
        http, "POST", f"{API}/webhooks", token=token, json={"url": url, "events": ["todo.created"]}
    )
    if reply.status != 201:
        raise RuntimeError(f"webhook not created: {reply}")
    created: dict[str, Any] = reply.body
    return created


def delivered_titles(target: Receiver) -> list[str]:
    return [r.json["data"]["todo"]["title"] for r in target.received if r.json["data"].get("todo")]


async def until_delivered(target: Receiver, titles: Iterable[str], within: float) -> set[str]:
    """The titles still undelivered once all are, or `within` seconds have passed."""
    wanted = set(titles)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        missing = wanted - set(delivered_titles(target))
        if not missing:
            return missing
        await asyncio.sleep(0.5)
    return wanted - set(delivered_titles(target))


def counts(target: Receiver, committed: set[str], prefix: str) -> tuple[int, int, int]:
    """(delivered of the committed, extra copies, deliveries of anything else with `prefix`)."""
    titles = [t for t in delivered_titles(target) if t.startswith(prefix)]
    unique = set(titles)
    return len(unique & committed), len(titles) - len(unique), len(unique - committed)


async def api_killed(d: Any) -> None:
    """i. Webhooks: 200 changes with the API killed (-9) at a random point."""
    async with receiver() as target:
        worker = await asyncio.to_thread(JobWorker, d.space, "worker-i", d.env)
        try:
            token = await new_token(d.http, "hooks-i")
            await subscribe(d.http, token, target.url)
            kill_at = random.randint(CHANGES // 10, CHANGES * 9 // 10)  # noqa: S311 - not a secret
            replies: list[Reply] = []
            refused: list[Reply] = []
            queue = list(range(CHANGES))
            killed = asyncio.Event()

            async def answered(body: dict[str, Any], key: str) -> Reply:
                """As a client does: the same request (and key) again until it is answered."""
                while True:
                    reply = await call(
                        d.http,
                        "POST",
                        f"{API}/todos",
                        token=token,
                        json=body,
                        headers={"Idempotency-Key": key},
                    )
                    if reply.status is not None and reply.status != 503:
                        return reply
                    await asyncio.sleep(0.2)

            async def writer() -> None:
                while queue:
                    n = queue.pop(0)
                    replies.append(await answered({"title": f"i-{n:03d}"}, f"i-{n}"))
                    if n % 10 == 5:  # a refused write: an unknown priority
                        bad = {"title": f"i-refused-{n:03d}", "priority": "bogus"}
                        refused.append(await answered(bad, f"i-refused-{n}"))
                    if len(replies) == kill_at and not killed.is_set():
                        killed.set()
                        await asyncio.to_thread(d.service.kill)
                        await asyncio.to_thread(d.service.start)

            await asyncio.gather(*(writer() for _ in range(WRITERS)))
            committed = await asyncio.to_thread(db.todo_titles, d.stores.database_url, "i-")
            committed -= {t for t in committed if t.startswith("i-refused")}
            missing = await until_delivered(target, committed, DELIVERED_WITHIN)
            unique, extra, stray = counts(target, committed, "i-")
            d.report.check(
                "i. API killed: every committed change delivered, none refused",
                not missing
                and not stray
                and len(committed) == CHANGES
                and all(r.status == 422 for r in refused),
                f"{CHANGES} changes ({tally(replies)}), killed after {kill_at}; "
                f"{len(committed)} committed, {unique} delivered ({extra} twice), "
                f"{len(missing)} missing; {len(refused)} refused ({tally(refused)}), "
                f"{stray} delivered",
            )
        finally:
            await asyncio.to_thread(worker.stop)


async def _written(d: Any, token: str, prefix: str, count: int) -> list[Reply]:
    return [
        await call(d.http, "POST", f"{API}/todos", token=token, json={"title": f"{prefix}{n:03d}"})
        for n in range(count)
    ]


async def worker_killed(d: Any) -> None:
    """j. Webhooks: the worker killed (-9) twice mid-delivery."""
    async with receiver() as target:
        target.delay = 0.5  # a slow receiver: deliveries are in flight when the worker dies
        worker = await asyncio.to_thread(JobWorker, d.space, "worker-j", d.env)
        try:
            token = await new_token(d.http, "hooks-j")
            await subscribe(d.http, token, target.url)
            replies = await _written(d, token, "j-", 40)
            for arrived in (5, 15):
                await target.until(arrived, within=DELIVERED_WITHIN)
                await asyncio.to_thread(worker.kill)
                await asyncio.to_thread(worker.start)
            committed = await asyncio.to_thread(db.todo_titles, d.stores.database_url, "j-")
            missing = await until_delivered(target, committed, DELIVERED_WITHIN)
            unique, extra, _ = counts(target, committed, "j-")
            d.report.check(
                "j. worker killed twice mid-delivery: every event delivered",
                not missing and len(committed) == 40,
                f"40 changes ({tally(replies)}), the worker killed twice; {unique} of "
                f"{len(committed)} delivered ({extra} twice), {len(missing)} missing",
            )
        finally:
            await asyncio.to_thread(worker.stop)


async def redis_emptied(d: Any) -> None:
    """k. Webhooks: Redis emptied, then killed and restarted empty, mid-run."""
    async with receiver() as target:
        worker = await asyncio.to_thread(JobWorker, d.space, "worker-k", d.env)
        try:
            token = await new_token(d.http, "hooks-k")
            await subscribe(d.http, token, target.url)
            replies = await _written(d, token, "k-a", 20)
            await asyncio.to_thread(_flushall, d.stores.redis.url())
            await asyncio.to_thread(d.stores.redis.kill)
            replies += await _written(d, token, "k-b", 10)  # Redis down
            await asyncio.to_thread(d.stores.redis.start)
            replies += await _written(d, token, "k-c", 20)
            committed = await asyncio.to_thread(db.todo_titles, d.stores.database_url, "k-")
            missing = await until_delivered(target, committed, DELIVERED_WITHIN)
            unique, extra, _ = counts(target, committed, "k-")
            d.report.check(
                "k. Redis emptied and restarted mid-run: nothing lost",
                not missing and len(committed) >= 40,
                f"50 changes ({tally(replies)}); {unique} of {len(committed)} committed "
                f"delivered ({extra} twice), {len(missing)} missing",
            )
        finally:
            await asyncio.to_thread(worker.stop)


def _flushall(url: str) -> None:
    with redis.Redis.from_url(url) as connection:
        connection.flushall()


async def receiver_down(d: Any) -> None:
    """l. Webhooks: the receiver down for a minute."""
    async with receiver() as first:
        port = first.port
    target = Receiver(port)  # the same address, not listening for now
    worker = await asyncio.to_thread(JobWorker, d.space, "worker-l", d.env)
    try:
        token = await new_token(d.http, "hooks-l")
        hook = await subscribe(d.http, token, target.url)
        written = time.time()
        replies = await _written(d, token, "l-", 10)
        await asyncio.sleep(OUTAGE_SECONDS)
        back = time.time()
        async with receiver(port, target):
            committed = await asyncio.to_thread(db.todo_titles, d.stores.database_url, "l-")
            missing = await until_delivered(target, committed, DELIVERED_WITHIN)
        log = await call(
            d.http, "GET", f"{API}/webhooks/{hook['id']}/deliveries?limit=100", token=token
        )
        items = log.body["items"] if log.ok else []
        attempts = sorted(item["attempts"] for item in items)
        # In the schedule: a delivery's k-th attempt comes no sooner than the first k-1 delays
        # after the change (each measured from the failed attempt before it).
        first_success = min((r.at for r in target.received), default=back)
        on_schedule = (
            all(item["status"] == "succeeded" and item["attempts"] >= 2 for item in items)
            and first_success - written >= sum(RETRY_SCHEDULE[: min(attempts or [1]) - 1]) - 1
        )
        d.report.check(
            "l. receiver down for a minute: all delivered after, in the retry schedule",
            not missing and on_schedule and len(items) == len(committed),
            f"10 changes ({tally(replies)}); down {OUTAGE_SECONDS:.0f} s; "
            f"{len(committed) - len(missing)} of {len(committed)} delivered "
            f"{first_success - back:.1f} s after it came back; attempts {attempts}",
        )
    finally:
        await asyncio.to_thread(worker.stop)
