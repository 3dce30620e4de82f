"""Live events' wake-up across instances, measured both ways: Redis pub/sub (PUBLISH after the
write's commit) and PostgreSQL LISTEN/NOTIFY (pg_notify inside the write's transaction).

    uv run python -m bench.wakeups [--messages 500]

For each: the writer's added cost per write (the PUBLISH round trip, or the NOTIFY in the
transaction and its commit) and the delivery latency to one listener (p50, p99). Reads
BENCH_DATABASE_URL (default the bench database) and BENCH_REDIS_URL (default DB 13).
"""

import argparse
import asyncio
import os
import statistics
import time

import psycopg
from redis.asyncio import Redis

CHANNEL = "bench_wakeups"


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def redis_pubsub(url: str, messages: int) -> dict[str, float]:
    publisher, listener = Redis.from_url(url), Redis.from_url(url)
    pubsub = listener.pubsub()
    await pubsub.subscribe(CHANNEL)
    await pubsub.get_message(timeout=1)  # the subscription's confirmation
    sent: dict[int, float] = {}
    latencies: list[float] = []
    costs: list[float] = []
    for n in range(messages):
        started = time.perf_counter()
        sent[n] = started
        await publisher.publish(CHANNEL, str(n))
        costs.append(time.perf_counter() - started)
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message is not None:
            latencies.append(time.perf_counter() - sent[int(message["data"])])
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await publisher.aclose()
    await listener.aclose()
    return _summary(costs, latencies)


async def postgres_notify(url: str, messages: int) -> dict[str, float]:
    listener = await psycopg.AsyncConnection.connect(url, autocommit=True)
    writer = await psycopg.AsyncConnection.connect(url)
    await listener.execute(f"LISTEN {CHANNEL}")
    notifies = listener.notifies()
    latencies: list[float] = []
    costs: list[float] = []
    for n in range(messages):
        started = time.perf_counter()
        await writer.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(n)))
        await writer.commit()
        costs.append(time.perf_counter() - started)
        await anext(notifies)
        latencies.append(time.perf_counter() - started)
    await writer.close()
    await listener.close()
    return _summary(costs, latencies)


def _summary(costs: list[float], latencies: list[float]) -> dict[str, float]:
    return {
        "writer_cost_ms_median": 1000 * statistics.median(costs),
        "latency_ms_p50": 1000 * _pct(latencies, 0.5),
        "latency_ms_p99": 1000 * _pct(latencies, 0.99),
        "delivered": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    database = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/todo_bench"
    )
    redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    print("redis pub/sub:", asyncio.run(redis_pubsub(redis, args.messages)))
    print("postgres LISTEN/NOTIFY:", asyncio.run(postgres_notify(database, args.messages)))


if __name__ == "__main__":
    main()
