"""EXPLAIN (ANALYZE, BUFFERS) of the very query SqlAlchemyTodoRepository.find issues, for the
first page and for the page after row 50 000, in three sorts.

    uv run python -m bench.keyset_plans [--runs 15] [--out plans.txt]

Nothing here writes SQL for the list: TodoService.list runs as it does for GET /todos (the
deep page resumes from the cursor the service itself handed out after row 50 000), and an
engine event captures the SELECT that the repository executes. That statement object is
then wrapped in EXPLAIN and compiled by the same dialect, with the same bound parameters.

Exits non-zero if the default sort (-created_at) is not an index scan without a Sort on
both pages, or if the deep page costs more than twice the first page.

Then `q` (SEARCHES: matching nothing, a few, many) on the first page of the same user's
100 000 todos; exits non-zero if a search that matches nothing is not looked up in the
trigram indexes (migration 0007).
"""

import argparse
import asyncio
import json
import statistics
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from psycopg import AsyncConnection
from psycopg.errors import Diagnostic
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection as SAConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from app.application.pagination import CursorCodec
from app.application.todos import TodoService
from app.domain.todos import SortKey, TodoFilter, parse_sort
from app.domain.users import Actor
from app.infrastructure.audit import LoggingAuditTrail
from app.infrastructure.clock import SystemClock
from app.infrastructure.db import create_engine
from app.infrastructure.repositories.todos import todos
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from bench.common import BENCH_EMAIL, DEEP_ROWS, PAGE_SIZE, SECRET_KEY, SORTS, bench_settings

DEFAULT_SORT = "-created_at"
MAX_RATIO = 2.0
MAX_RANGES = 21 * 4
"""The most index ranges a measured page merges: bench/shared_plans.py's member of 20 shared
projects and of their own Inbox, by each of the four priorities when sorted by priority."""
TRIGRAM_INDEXES = {"ix_todos_project_id_title_trgm", "ix_todos_project_id_description_trgm"}
# What `q` costs in 100 000 todos: matching nothing (the search that read them all before
# 0007), a few (seed titles end in `#<number>`), and many (a seed noun).
SEARCHES = {"nothing": "zzyzx", "a few": "#10249", "many": "milk"}


class Explain(sa.Executable, sa.ClauseElement):
    """EXPLAIN (options) around a statement, compiled (and bound) by the statement's dialect."""

    inherit_cache = False

    def __init__(self, statement: sa.Select[Any], options: str) -> None:
        self.statement = statement
        self.explain_options = options


@compiles(Explain)
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"EXPLAIN ({element.explain_options}) {compiler.process(element.statement, **kw)}"


@dataclass
class Measured:
    """One query's plan checks and timings."""

    statement: sa.Select[Any]
    rows: int
    node_types: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    execution_ms: list[float] = field(default_factory=list)
    planning_ms: list[float] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)
    removed_by_filter: int = 0
    index_rows: int = 0
    """Rows the index scans returned, every loop counted: what the page read."""
    buffers: int = 0
    text_plan: str = ""
    generic_plan: str = ""

    @property
    def uses_index_without_sort(self) -> bool:
        """Index ranges only, each read for about a page (a list merges one range per project,
        or per project and priority: repositories/todos.py), and nothing else sorted."""
        scans_by_index = any(t in ("Index Scan", "Index Only Scan") for t in self.node_types)
        bad = {"Seq Scan", "Incremental Sort", "Bitmap Heap Scan"}
        return (
            scans_by_index
            and not bad.intersection(self.node_types)
            and self.index_rows + self.removed_by_filter <= MAX_RANGES * (PAGE_SIZE + 1)
        )

    @property
    def execution(self) -> float:
        return statistics.median(self.execution_ms)

    @property
    def round_trip(self) -> float:
        return statistics.median(self.round_trip_ms)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _json_plan(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    assert isinstance(value, list)
    result: dict[str, Any] = value[0]
    return result


def _selects_todos(statement: sa.Select[Any]) -> bool:
    return list(statement.selected_columns.keys()) == list(todos.columns.keys())


@asynccontextmanager
async def listing(engine: AsyncEngine) -> AsyncIterator[tuple[TodoService, list[sa.Select[Any]]]]:
    """A TodoService on `engine`, and the list SELECTs the repository runs meanwhile, as GET
    /todos runs them. The repository builds a statement once per query shape and passes the
    values apart: they are bound here, so EXPLAIN runs exactly what the page ran."""
    captured: list[sa.Select[Any]] = []

    def capture(
        _conn: object, clause: object, multiparams: Any, params: Any, *_args: object
    ) -> None:
        # A list of todos selects the todos' columns, from the table or from its pages.
        if isinstance(clause, sa.Select) and _selects_todos(clause):
            values = multiparams[0] if multiparams else params
            captured.append(clause.params(values) if values else clause)

    event.listen(engine.sync_engine, "before_execute", capture)
    try:
        async with SqlAlchemyUnitOfWork(engine) as uow:
            service = TodoService(
                uow,
                clock=SystemClock(),
                cursors=CursorCodec(SECRET_KEY.encode()),
                audit=LoggingAuditTrail(),
            )
            yield service, captured
    finally:
        event.remove(engine.sync_engine, "before_execute", capture)


async def capture_list_queries(
    engine: AsyncEngine, actor: Actor, sort: Sequence[SortKey]
) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The SELECTs the repository runs for the first page and for the page after row 50 000,
    each reached the way GET /todos reaches it: through TodoService.list and its cursor."""
    async with listing(engine) as (service, captured):
        await service.list(actor, TodoFilter(), sort=sort, limit=PAGE_SIZE)
        first = captured[-1]
        # A page of 50 000: its next_cursor is the cursor after row 50 000.
        skip = await service.list(actor, TodoFilter(), sort=sort, limit=DEEP_ROWS)
        assert len(skip.items) == DEEP_ROWS
        assert skip.next_cursor is not None
        page = await service.list(
            actor, TodoFilter(), sort=sort, limit=PAGE_SIZE, cursor=skip.next_cursor
        )
        deep = captured[-1]
        assert len(page.items) == PAGE_SIZE
        assert {t.id for t in skip.items}.isdisjoint(t.id for t in page.items)
    return first, deep


async def explain_json(connection: SAConnection, measured: Measured) -> None:
    explain = Explain(measured.statement, "ANALYZE, BUFFERS, FORMAT JSON")
    plan = _json_plan((await connection.execute(explain)).scalar_one())
    # The todos' side of the plan: how the few memberships in scope are found (a small table
    # is read whole) is no cost of the list.
    nodes = [
        node
        for node in _nodes(plan["Plan"])
        if node.get("Relation Name") not in ("memberships", "projects")
        and "memberships" not in node.get("Index Name", "")
    ]
    measured.node_types = [node["Node Type"] for node in nodes]
    measured.indexes = [node["Index Name"] for node in nodes if "Index Name" in node]
    measured.removed_by_filter = sum(node.get("Rows Removed by Filter", 0) for node in nodes)
    measured.index_rows = sum(
        int(node["Actual Rows"]) * int(node.get("Actual Loops", 1))
        for node in nodes
        if node["Node Type"] in ("Index Scan", "Index Only Scan")
    )
    measured.rows = int(plan["Plan"]["Actual Rows"])
    measured.buffers = int(plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"])
    measured.execution_ms.append(float(plan["Execution Time"]))
    measured.planning_ms.append(float(plan["Planning Time"]))


async def round_trip(connection: SAConnection, measured: Measured) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    (await connection.execute(measured.statement)).all()
    measured.round_trip_ms.append((loop.time() - started) * 1000)


async def generic_plan(connection: SAConnection, statement: sa.Select[Any]) -> str:
    """The plan a prepared statement gets once the plan cache goes generic ($1, $2...).

    psycopg prepares a query it has run five times on a connection; auto_explain, at
    NOTICE level, hands the executed plan back to us. Empty if auto_explain is unavailable.
    """
    raw = await connection.get_raw_connection()
    driver: AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
    notices: list[str] = []

    def on_notice(diagnostic: Diagnostic) -> None:
        notices.append(diagnostic.message_primary or "")

    try:
        await connection.exec_driver_sql("LOAD 'auto_explain'")
    except sa.exc.DBAPIError:
        await connection.rollback()
        return ""
    for setting in (
        "plan_cache_mode = force_generic_plan",
        "auto_explain.log_min_duration = 0",
        "auto_explain.log_analyze = on",
        "auto_explain.log_buffers = on",
        "auto_explain.log_level = notice",
        "client_min_messages = notice",
    ):
        await connection.exec_driver_sql(f"SET {setting}")
    driver.add_notice_handler(on_notice)
    try:
        for _ in range(8):  # past psycopg's prepare_threshold (5)
            (await connection.execute(statement)).all()
    finally:
        driver.remove_notice_handler(on_notice)
        for setting in ("plan_cache_mode", "auto_explain.log_min_duration", "client_min_messages"):
            await connection.exec_driver_sql(f"RESET {setting}")
    plans = [n for n in notices if "plan:" in n]
    return plans[-1] if plans else ""


async def capture_search(engine: AsyncEngine, actor: Actor, text: str) -> sa.Select[Any]:
    """The SELECT the repository runs for the first page of `GET /todos?q=text`."""
    async with listing(engine) as (service, captured):
        await service.list(
            actor, TodoFilter(text=text), sort=parse_sort(DEFAULT_SORT), limit=PAGE_SIZE
        )
    return captured[-1]


async def measure_search(
    engine: AsyncEngine, actor: Actor, runs: int
) -> tuple[list[str], dict[str, Measured]]:
    measured = {
        name: Measured(await capture_search(engine, actor, text), 0)
        for name, text in SEARCHES.items()
    }
    async with engine.connect() as connection:
        for one in measured.values():
            await explain_json(connection, one)
            one.execution_ms.clear()
            one.planning_ms.clear()
        for _ in range(runs):
            for one in measured.values():
                await explain_json(connection, one)
                await round_trip(connection, one)
        for one in measured.values():
            explained = await connection.execute(Explain(one.statement, "ANALYZE, BUFFERS"))
            one.text_plan = "\n".join(str(line) for line in explained.scalars().all())
    async with engine.connect() as connection:
        for one in measured.values():
            one.generic_plan = await generic_plan(connection, one.statement)
            await connection.rollback()
    lines = ["=== q (first page, sort=-created_at) ===", ""]
    for name, one in measured.items():
        lines += [
            f"--- q={SEARCHES[name]!r} (matches {name}): EXPLAIN (ANALYZE, BUFFERS) ---",
            one.text_plan,
            "",
        ]
        if one.generic_plan:
            lines += [f"--- q={SEARCHES[name]!r}: the plan once prepared ---", one.generic_plan, ""]
    return lines, measured


def search_summary(measured: dict[str, Measured]) -> tuple[list[str], bool]:
    lines = []
    for name, one in measured.items():
        lines.append(
            f"q={SEARCHES[name]!r:<9} ({name:<7}) rows {one.rows:>2}  execution median "
            f"{one.execution:8.3f} ms  buffers {one.buffers:>5}  rows removed by filter "
            f"{one.removed_by_filter:>6}  index={','.join(one.indexes) or '-'}"
        )
    nothing = measured["nothing"]
    return lines, bool(TRIGRAM_INDEXES & set(nothing.indexes)) and "Seq Scan" not in (
        nothing.node_types
    )


def readable_sql(engine: AsyncEngine, statement: sa.Select[Any]) -> str:
    """For reading only: the statement with its parameters rendered inline."""
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    return str(compiled)


async def measure(engine: AsyncEngine, actor: Actor, spec: str, runs: int) -> list[Measured]:
    sort = parse_sort(spec)
    first_statement, deep_statement = await capture_list_queries(engine, actor, sort)
    pair = [Measured(first_statement, 0), Measured(deep_statement, 0)]
    async with engine.connect() as connection:
        for measured in pair:  # warm the cache; these runs are not counted
            for _ in range(2):
                await explain_json(connection, measured)
            measured.execution_ms.clear()
            measured.planning_ms.clear()
        for _ in range(runs):  # alternate, so drift hits both alike
            for measured in pair:
                await explain_json(connection, measured)
                await round_trip(connection, measured)
        for measured in pair:
            explain = Explain(measured.statement, "ANALYZE, BUFFERS")
            lines = (await connection.execute(explain)).scalars().all()
            measured.text_plan = "\n".join(str(line) for line in lines)
    async with engine.connect() as connection:
        for measured in pair:
            measured.generic_plan = await generic_plan(connection, measured.statement)
            await connection.rollback()
    return pair


def report(engine: AsyncEngine, spec: str, first: Measured, deep: Measured) -> list[str]:
    ratio = deep.execution / first.execution
    trip_ratio = deep.round_trip / first.round_trip
    lines = [
        f"=== sort={spec} ===",
        "",
        "--- first page: SQL (parameters inlined for reading) ---",
        readable_sql(engine, first.statement),
        "",
        "--- first page: EXPLAIN (ANALYZE, BUFFERS) ---",
        first.text_plan,
        "",
        f"--- page after row {DEEP_ROWS}: SQL (parameters inlined for reading) ---",
        readable_sql(engine, deep.statement),
        "",
        f"--- page after row {DEEP_ROWS}: EXPLAIN (ANALYZE, BUFFERS) ---",
        deep.text_plan,
        "",
    ]
    for name, measured in (("first", first), ("deep", deep)):
        if measured.generic_plan:
            lines += [f"--- {name} page: generic plan (prepared, auto_explain) ---"]
            lines += [measured.generic_plan, ""]
    for name, measured in (("first", first), ("deep", deep)):
        lines.append(
            f"{name:>5}: rows={measured.rows} nodes={' > '.join(measured.node_types)} "
            f"index={','.join(measured.indexes) or '-'} "
            f"rows_removed_by_filter={measured.removed_by_filter} buffers={measured.buffers} "
            f"index_without_sort={'yes' if measured.uses_index_without_sort else 'NO'}"
        )
        lines.append(
            f"       execution median {measured.execution:.3f} ms "
            f"(min {min(measured.execution_ms):.3f}, max {max(measured.execution_ms):.3f}, "
            f"n={len(measured.execution_ms)}), planning median "
            f"{statistics.median(measured.planning_ms):.3f} ms, "
            f"client round trip median {measured.round_trip:.3f} ms"
        )
    verdict = "within" if ratio <= MAX_RATIO else "OVER"
    lines += [
        f"ratio deep/first: execution {ratio:.2f}x ({verdict} {MAX_RATIO:g}x), "
        f"client round trip {trip_ratio:.2f}x",
        "",
    ]
    return lines


async def run(specs: Sequence[str], runs: int) -> tuple[list[str], bool]:
    engine = create_engine(bench_settings().database_url)
    try:
        async with SqlAlchemyUnitOfWork(engine) as uow:
            user = await uow.users.get_by_email(BENCH_EMAIL)
        if user is None:
            raise SystemExit(f"no {BENCH_EMAIL}: run `uv run python -m bench.seed` first")
        actor = Actor.of(user)
        lines: list[str] = []
        summary: list[str] = ["=== summary (median execution time, EXPLAIN ANALYZE) ==="]
        ok = True
        for spec in specs:
            first, deep = await measure(engine, actor, spec, runs)
            lines += report(engine, spec, first, deep)
            ratio = deep.execution / first.execution
            summary.append(
                f"sort={spec:<12} first {first.execution:8.3f} ms  deep {deep.execution:8.3f} ms"
                f"  ratio {ratio:6.2f}x  buffers {first.buffers}/{deep.buffers}"
                f"  index+no sort: first "
                f"{'yes' if first.uses_index_without_sort else 'NO'}, deep "
                f"{'yes' if deep.uses_index_without_sort else 'NO'}"
                f"  deep rows removed by filter: {deep.removed_by_filter}"
            )
            if spec == DEFAULT_SORT:
                ok = (
                    first.uses_index_without_sort
                    and deep.uses_index_without_sort
                    and ratio <= MAX_RATIO
                )
        search_lines, searches = await measure_search(engine, actor, runs)
        search_lines_summary, search_ok = search_summary(searches)
        summary += search_lines_summary
        return [*lines, *search_lines, *summary], ok and search_ok
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=31, help="timed EXPLAIN ANALYZE runs each")
    parser.add_argument(
        "--sort", action="append", help=f"sort to explain (repeatable); default {', '.join(SORTS)}"
    )
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args(argv)
    lines, ok = asyncio.run(run(args.sort or list(SORTS), args.runs))
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    if not ok:
        print(
            f"FAIL: sort={DEFAULT_SORT} is not an index range scan within {MAX_RATIO:g}x, "
            "or a q that matches nothing is not looked up in the trigram indexes"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
