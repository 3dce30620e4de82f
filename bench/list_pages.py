"""GET /api/v1/todos through the whole app (middleware, auth, service, repository), timing
the first page against a page 50 000 rows deep, in the same run.

    uv run python -m bench.list_pages [--requests 200] [--sort -created_at ...]

The app is app.main.create_app on the seeded database (BENCH_DATABASE_URL), lifespan and
all, driven in-process by httpx over ASGITransport. The deep cursor is reached the way a
client reaches it: by walking pages of 100 from the first page and following next_cursor
(500 pages), checking that no todo is skipped or repeated on the way.
"""

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from httpx import ASGITransport, AsyncClient

from app.main import create_app
from bench.common import (
    BENCH_EMAIL,
    BENCH_PASSWORD,
    DEEP_ROWS,
    PAGE_SIZE,
    SORTS,
    bench_settings,
)

TODOS = "/api/v1/todos"


@dataclass(frozen=True)
class Timings:
    first_ms: list[float]
    deep_ms: list[float]

    @staticmethod
    def line(name: str, samples: list[float]) -> str:
        ordered = sorted(samples)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        return (
            f"{name:>5}: median {statistics.median(samples):7.2f} ms  "
            f"mean {statistics.fmean(samples):7.2f} ms  p95 {p95:7.2f} ms  "
            f"min {ordered[0]:7.2f} ms  (n={len(samples)})"
        )

    @property
    def ratio(self) -> float:
        return statistics.median(self.deep_ms) / statistics.median(self.first_ms)


async def login(client: AsyncClient) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": BENCH_EMAIL, "password": BENCH_PASSWORD}
    )
    if response.status_code != 200:
        raise SystemExit(f"login failed ({response.status_code}): run `python -m bench.seed`")
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def walk(
    client: AsyncClient,
    headers: dict[str, str],
    sort: str,
    page_size: int,
    rows: int = DEEP_ROWS,
) -> str:
    """Follow next_cursor from the first page until `rows` todos have gone by."""
    seen: set[str] = set()
    cursor: str | None = None
    while len(seen) < rows:
        params = {"sort": sort, "limit": str(min(page_size, rows - len(seen)))}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(TODOS, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        ids = [item["id"] for item in body["items"]]
        assert ids, "an empty page before the deep page"
        assert seen.isdisjoint(ids), "a page repeated a todo"
        seen.update(ids)
        cursor = body["next_cursor"]
        assert cursor, "the list ended before the deep page"
    assert len(seen) == rows
    assert cursor is not None
    return cursor


async def time_pages(
    client: AsyncClient, headers: dict[str, str], sort: str, cursor: str, requests: int, warmup: int
) -> Timings:
    first = {"sort": sort}
    deep = {"sort": sort, "cursor": cursor}
    timings = Timings([], [])
    for round_ in range(warmup + requests):
        # Alternate, so whatever drifts (caches, GC, the plan cache) hits both alike.
        for params, samples in ((first, timings.first_ms), (deep, timings.deep_ms)):
            started = time.perf_counter()
            response = await client.get(TODOS, params=params, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.text
            assert len(response.json()["items"]) == PAGE_SIZE
            if round_ >= warmup:
                samples.append(elapsed)
    return timings


async def run(sorts: Sequence[str], requests: int, warmup: int, walk_size: int) -> list[str]:
    app = create_app(bench_settings())  # the bench's settings, none from the environment
    lines: list[str] = []
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://bench") as client:
            headers = await login(client)
            for sort in sorts:
                started = time.perf_counter()
                cursor = await walk(client, headers, sort, walk_size)
                walked = time.perf_counter() - started
                timings = await time_pages(client, headers, sort, cursor, requests, warmup)
                block = [
                    f"=== GET {TODOS}?sort={sort} (limit {PAGE_SIZE}) ===",
                    f"walked {DEEP_ROWS} todos in pages of {walk_size} in {walked:.1f} s "
                    "(none skipped or repeated)",
                    Timings.line("first", timings.first_ms),
                    Timings.line("deep", timings.deep_ms),
                    f"ratio deep/first (medians): {timings.ratio:.2f}x",
                    "",
                ]
                print("\n".join(block), flush=True)
                lines += block
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per page")
    parser.add_argument("--walk-size", type=int, default=100, help="page size for the walk")
    parser.add_argument(
        "--sort", action="append", help=f"sort to bench (repeatable); default {', '.join(SORTS)}"
    )
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args(argv)
    lines = asyncio.run(run(args.sort or list(SORTS), args.requests, args.warmup, args.walk_size))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
