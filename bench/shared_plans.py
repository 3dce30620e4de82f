"""EXPLAIN (ANALYZE, BUFFERS) of the lists a member of 20 shared projects holding 100 000 todos
between them gets: the first page, the page after row 50 000 and a filtered page, against the
first page of one of those projects alone.

    uv run python -m bench.shared_plans [--runs 15] [--out plans.txt]

The data is bench/http's (`bench.http_seed` with `shared_todos`, in BENCH_HTTP_DATABASE_URL).
As bench.keyset_plans does, nothing here writes SQL for the list: TodoService.list runs as GET
/todos runs it (the deep page resumes from the cursor the service handed out after row
50 000) and the SELECT the repository executes is captured and explained.

Exits non-zero unless every page reads index ranges only, each about a page long (no
sequential scan, nothing sorted but what the ranges gave), and the deep page costs at most
MAX_RATIO times the first.
"""

import argparse
import asyncio
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.todos import Priority, TodoFilter, parse_sort
from app.domain.users import Actor
from app.infrastructure.db import create_engine
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from bench.common import DEEP_ROWS, PAGE_SIZE, app_url
from bench.http_seed import SHARED_EMAIL, database_url
from bench.keyset_plans import Explain, Measured, explain_json, listing, readable_sql, round_trip

MAX_RATIO = 2.0
FILTER = TodoFilter(completed=False, priorities=frozenset({Priority.HIGH, Priority.URGENT}))
FILTER_SORT = "-priority,due_at"
DEEP = f"page after row {DEEP_ROWS:,}"


async def capture(engine: AsyncEngine, actor: Actor) -> dict[str, sa.Select[Any]]:
    """The SELECT of each page, reached through TodoService.list as GET /todos reaches it."""
    sort = parse_sort("-created_at")
    async with listing(engine) as (service, captured):
        first = await service.list(actor, TodoFilter(), sort=sort, limit=PAGE_SIZE)
        statements = {"first page": captured[-1]}
        skip = await service.list(actor, TodoFilter(), sort=sort, limit=DEEP_ROWS)
        assert len(skip.items) == DEEP_ROWS
        deep = await service.list(
            actor, TodoFilter(), sort=sort, limit=PAGE_SIZE, cursor=skip.next_cursor
        )
        assert len(deep.items) == PAGE_SIZE
        assert {t.id for t in skip.items}.isdisjoint(t.id for t in deep.items)
        statements[DEEP] = captured[-1]
        await service.list(actor, FILTER, sort=parse_sort(FILTER_SORT), limit=PAGE_SIZE)
        statements["filtered page"] = captured[-1]
        one = TodoFilter(project_ids=frozenset({first.items[0].project_id}))
        await service.list(actor, one, sort=sort, limit=PAGE_SIZE)
        statements["one project's first page"] = captured[-1]
    return statements


async def measure(engine: AsyncEngine, actor: Actor, runs: int) -> dict[str, Measured]:
    pages = {name: Measured(s, 0) for name, s in (await capture(engine, actor)).items()}
    async with engine.connect() as connection:
        for page in pages.values():  # warm the cache; not counted
            for _ in range(2):
                await explain_json(connection, page)
            page.execution_ms.clear()
            page.planning_ms.clear()
        for _ in range(runs):  # in turns, so drift hits all alike
            for page in pages.values():
                await explain_json(connection, page)
                await round_trip(connection, page)
        for page in pages.values():
            lines = (await connection.execute(Explain(page.statement, "ANALYZE, BUFFERS"))).all()
            page.text_plan = "\n".join(str(line[0]) for line in lines)
    return pages


def report(engine: AsyncEngine, pages: dict[str, Measured]) -> tuple[list[str], bool]:
    lines: list[str] = []
    for name, page in pages.items():
        lines += [
            f"=== {name} ===",
            readable_sql(engine, page.statement),
            "",
            page.text_plan,
            "",
        ]
    first = pages["first page"]
    ok = True
    lines.append("=== summary (median execution time of EXPLAIN ANALYZE) ===")
    for name, page in pages.items():
        ratio = page.execution / first.execution
        within = page.uses_index_without_sort and (ratio <= MAX_RATIO or name != DEEP)
        ok = ok and within
        lines.append(
            f"{name:<26} {page.execution:8.3f} ms (min {min(page.execution_ms):.3f}, "
            f"n={len(page.execution_ms)})  round trip {page.round_trip:7.3f} ms  "
            f"vs first {ratio:5.2f}x  buffers {page.buffers:>5}  index rows "
            f"{page.index_rows:>4}  removed by filter {page.removed_by_filter:>5}  "
            f"planning {statistics.median(page.planning_ms):.3f} ms  "
            f"{'ok' if within else 'OVER'}"
        )
    one = pages["one project's first page"]
    lines.append(
        f"first page across 20 projects vs one project's: {first.execution / one.execution:.2f}x"
        f" (execution), {first.round_trip / one.round_trip:.2f}x (round trip)"
    )
    return lines, ok


async def run(url: str, runs: int) -> tuple[list[str], bool]:
    engine = create_engine(url)
    try:
        async with SqlAlchemyUnitOfWork(engine) as uow:
            user = await uow.users.get_by_email(SHARED_EMAIL)
        if user is None:
            raise SystemExit(f"no {SHARED_EMAIL}: seed with bench.http_seed (shared_todos) first")
        pages = await measure(engine, Actor.of(user), runs)
        return report(engine, pages)
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="timed EXPLAIN ANALYZE runs each")
    parser.add_argument("--url", default=database_url(smoke=False), help="the seeded database")
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args(argv)
    lines, ok = asyncio.run(run(app_url(args.url), args.runs))
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    if not ok:
        print(
            f"FAIL: a page read more than page-long index ranges, or the deep page cost over "
            f"{MAX_RATIO:g}x the first"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
