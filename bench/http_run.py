"""bench/http: the live service under wrk, scenario by scenario, and the floor (bench/floor.py,
the same routes on the bare stack) under the same scripts, one server at a time: each
scenario on the service, then at once on the floor.

    bench/http [--duration 10] [--warmup 2] [--million] [--soak SECONDS] [--smoke]

Seeds PostgreSQL (BENCH_HTTP_DATABASE_URL), logs every user in through the API, runs the
scenarios and writes bench/results/http.{json,md,png} (--smoke: into a temp directory, and
exits 1 on any failed request). See bench/README.md.
"""

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path
from types import FrameType
from urllib.parse import quote

from bench import http_servers as servers
from bench import http_shapes, http_sync, http_webhooks
from bench import http_wrk as wrk
from bench.common import DEEP_ROWS, ROOT
from bench.http_report import Report, Row, machine, scan_log, table, write_results
from bench.http_scenarios import BY_NAME, FILTERED, SCENARIOS, Bench
from bench.http_seed import SHARED_PROJECTS, Plan, Seeded, delete_created, flush_redis
from bench.http_seed import seed as seed_database
from bench.http_tokens import Client, clients, deep_cursor, login_all, write_lua
from harness.live_server import LiveServer, free_port

MILLION = 1_000_000
DEEP_TODOS = 100_000
SMOKE_DEEP_TODOS = 2_000
SHARED_TODOS = 100_000
SMOKE_SHARED_TODOS = 2_000
DEEP_ROUNDS = 3
# `q` in the deep user's todos: a text no seeded todo holds, and one in a few titles (the
# seed's titles end in `#<number>`).
SEARCHES = {"matching nothing": "zzyzx", "matching a few": "#10249"}
# Not a scan of them all: reading the user's 100 000 todos costs tens of times the first page;
# an index lookup of the text, over both trigram indexes, a few times it.
SEARCH_LIMIT = 5.0
SOAK_SAMPLE_SECONDS = 10
SMOKE_WRK_TIMEOUT_SECONDS = 60.0


def ratio_note(what: str, value: float, baseline: float, limit: float) -> tuple[str, float]:
    ratio = value / baseline if baseline else float("inf")
    verdict = "ok" if ratio <= limit else "OVER"
    return f"{what}: {ratio:.2f}x (requirement <= {limit:g}x: {verdict})", ratio


def _median_p50(results: list[wrk.Result]) -> wrk.Result:
    return sorted(results, key=lambda result: result.p50_ms)[len(results) // 2]


def log_in(bench: Bench, server: LiveServer, seeded: Seeded) -> tuple[Client | None, Client | None]:
    """One real login per user, through the API; returns the deep user's client and the shared
    projects' member's, if any."""
    extra = [user for user in (seeded.deep, seeded.shared) if user is not None]
    users = seeded.users + extra
    started = time.perf_counter()
    pairs = asyncio.run(login_all(server.url, [email for email, _ in users]))
    everyone = clients(bench.database_url, users, pairs)
    print(f"logged in {len(users)} users in {time.perf_counter() - started:.1f} s", flush=True)
    bench.clients = everyone[: len(seeded.users)]
    write_lua(bench.tokens, bench.clients)
    by_email = {client.email: client for client in everyone}
    deep = by_email[seeded.deep[0]] if seeded.deep else None
    shared = by_email[seeded.shared[0]] if seeded.shared else None
    return deep, shared


def service_phase(
    bench: Bench, report: Report, seeded: Seeded
) -> tuple[dict[str, wrk.Result], dict[str, wrk.Result]]:
    """Each scenario on the service, then at once on the floor: both runs of a pair see the
    same machine (a shared VM drifts by tens of per cent over minutes)."""
    print("== service (1 worker) and floor, scenario by scenario", flush=True)
    server = bench.service(1, "service-1-worker.log")
    floor = bench.floor()
    deep_client, shared_client = log_in(bench, server, seeded)
    bench.warm(server)
    bench.warm(floor)
    results: dict[str, wrk.Result] = {}
    floor_results: dict[str, wrk.Result] = {}
    for scenario in SCENARIOS:
        results[scenario.name] = bench.scenario(server, scenario.name)
        if scenario.on_floor:
            floor_results[scenario.name] = bench.scenario(floor, scenario.name)
    floor_rss = bench.rss(floor)
    floor.stop()

    login = results["login"]
    cores = report.machine["cpus"] or 1
    report.notes.append(
        f"login: {login.rps:.1f} logins/s, {login.rps / cores:.1f} per core ({cores} cores), "
        f"p50 {login.p50_ms:.0f} ms, p95 {login.p95_ms:.0f} ms"
    )
    report.extra["login"] = {
        "per_second": login.rps,
        "per_core": login.rps / cores,
        "p95_ms": login.p95_ms,
    }

    list_load, login_load = BY_NAME["list"].load, BY_NAME["login"].load
    during, logins = bench.measure(server, "list_during_logins", [list_load, login_load])
    alone = results["list"].p99_ms
    note, ratio = ratio_note(
        f"list p99 during logins {during.p99_ms:.1f} ms vs {alone:.1f} ms alone",
        during.p99_ms,
        alone,
        2,
    )
    report.notes.append(note)
    report.extra["list_during_logins"] = {
        "list": during.as_dict(),
        "login": logins.as_dict(),
        "plain_list_p99_ms": alone,
        "ratio": ratio,
    }
    if deep_client is not None:
        search_phase(bench, server, report, deep_client, seeded.deep_todos)
        if bench.args.million:
            deep_phase(bench, server, report, deep_client)
    if shared_client is not None:
        shared_phase(bench, server, report, shared_client, seeded, results)
    sync_phase(bench, server, report, results)
    shape_phase(bench, server, report, results)
    webhook_phase(bench, server, report, results)
    report.extra["rss_mib"] = {"service_1_worker": bench.rss(server), "floor": floor_rss}
    server.stop()
    return results, floor_results


def deep_phase(bench: Bench, server: LiveServer, report: Report, client: Client) -> None:
    """One user's page 50 000 rows deep against the same user's first page."""
    started = time.perf_counter()
    cursor = asyncio.run(deep_cursor(server.url, client.token))
    print(f"  walked to the deep page in {time.perf_counter() - started:.1f} s", flush=True)
    tokens = str(write_lua(bench.out / "deep.lua", [client]))
    first_load = wrk.Load("list.lua", 32, {"BENCH_TOKENS": tokens})
    deep_load = wrk.Load(
        "list.lua", 32, {"BENCH_TOKENS": tokens, "BENCH_QUERY": f"limit=20&cursor={cursor}"}
    )
    # Taking turns, since one pair of runs ten seconds apart moved by up to 50 % on a shared VM.
    firsts: list[wrk.Result] = []
    deeps: list[wrk.Result] = []
    for _ in range(1 if bench.args.smoke else DEEP_ROUNDS):
        firsts.append(bench.measure(server, "deep_first", [first_load])[0])
        deeps.append(bench.measure(server, "deep", [deep_load])[0])
    first, deep = _median_p50(firsts), _median_p50(deeps)
    note, ratio = ratio_note(
        f"deep page p50 {deep.p50_ms:.1f} ms vs first page {first.p50_ms:.1f} ms"
        f" (medians of {len(deeps)} runs each, taking turns)",
        deep.p50_ms,
        first.p50_ms,
        1.5,
    )
    report.notes.append(note)
    report.extra["deep"] = {"deep": deep.as_dict(), "first": first.as_dict(), "ratio": ratio}


def shared_phase(
    bench: Bench,
    server: LiveServer,
    report: Report,
    client: Client,
    seeded: Seeded,
    results: dict[str, wrk.Result],
) -> None:
    """A member of SHARED_PROJECTS projects holding `shared_todos` todos between them: the
    list across them (first page, a page 50 000 rows deep, a filtered page) against this run's
    one-project list, and a create in a shared project (with its activity entry) against this
    run's create in one's Inbox. Rates, not latencies: each is one user at 32 connections."""
    started = time.perf_counter()
    depth = min(DEEP_ROWS, seeded.shared_todos_total // 2)  # the smoke's list is short
    cursor = asyncio.run(deep_cursor(server.url, client.token, depth))
    print(f"  walked the shared list {depth:,} deep in {time.perf_counter() - started:.1f} s")
    tokens = str(write_lua(bench.out / "shared.lua", [client]))
    writers = [replace(client, project=project) for project in seeded.shared_projects]
    creates = str(write_lua(bench.out / "shared-create.lua", writers))
    loads = {
        "shared_first": wrk.Load("list.lua", 32, {"BENCH_TOKENS": tokens}),
        "shared_deep": wrk.Load(
            "list.lua", 32, {"BENCH_TOKENS": tokens, "BENCH_QUERY": f"limit=20&cursor={cursor}"}
        ),
        "shared_filtered": wrk.Load(
            "list.lua", 32, {"BENCH_TOKENS": tokens, "BENCH_QUERY": FILTERED}
        ),
        "shared_create": wrk.Load("create_shared.lua", 32, {"BENCH_TOKENS": creates}),
    }
    shared = {name: bench.measure(server, name, [load])[0] for name, load in loads.items()}
    delete_created(bench.database_url)
    baselines = {
        "shared_first": ("list", 0.5),
        "shared_deep": ("list", 0.5),
        "shared_filtered": ("list_filtered", 0.5),
        "shared_create": ("create", 0.8),
    }
    ratios = {}
    for name, (baseline, floor) in baselines.items():
        ratio = shared[name].rps / results[baseline].rps if results[baseline].rps else 0.0
        ratios[name] = ratio
        verdict = "ok" if ratio >= floor else "UNDER"
        report.notes.append(
            f"{name} ({SHARED_PROJECTS} projects, {seeded.shared_todos_total:,} todos): "
            f"{shared[name].rps:,.0f} rps vs {baseline} {results[baseline].rps:,.0f} rps: "
            f"{ratio:.2f} (requirement >= {floor:g}: {verdict}); p50 {shared[name].p50_ms:.1f} ms"
        )
    report.extra["shared"] = {
        "projects": SHARED_PROJECTS,
        "todos": seeded.shared_todos_total,
        **{name: result.as_dict() for name, result in shared.items()},
        "ratios": ratios,
    }


def sync_phase(
    bench: Bench, server: LiveServer, report: Report, results: dict[str, wrk.Result]
) -> None:
    """`GET /sync?token=` with nothing new since the token (every user's own, 32 connections)
    against this run's get_one, and with 20 changes since it (CHANGED_USERS users)."""
    clients = bench.clients
    tokens = http_sync.sync_tokens(server.url, clients)
    nothing = http_sync.write_sync_lua(bench.out / "sync-nothing.lua", clients, tokens)
    nothing_new = bench.measure(server, "sync_nothing_new", [http_sync.sync_load(nothing)])[0]
    changed_clients = clients[: http_sync.CHANGED_USERS]
    before = http_sync.sync_tokens(server.url, changed_clients)
    http_sync.change_todos(server.url, bench.database_url, changed_clients)
    changed = http_sync.write_sync_lua(bench.out / "sync-changed.lua", changed_clients, before)
    twenty = bench.measure(server, "sync_20_changes", [http_sync.sync_load(changed)])[0]
    get_one = results["get_one"].rps
    ratio = nothing_new.rps / get_one if get_one else 0.0
    verdict = "ok" if ratio >= http_sync.NOTHING_NEW_FLOOR else "UNDER"
    report.notes.append(
        f"sync_nothing_new c32: {nothing_new.rps:,.0f} rps vs get_one {get_one:,.0f} rps: "
        f"{ratio:.2f} (requirement >= {http_sync.NOTHING_NEW_FLOOR:g}: {verdict}); "
        f"p50 {nothing_new.p50_ms:.1f} ms"
    )
    report.notes.append(
        f"sync_20_changes c32 ({len(changed_clients)} users, {http_sync.CHANGES} todos each): "
        f"{twenty.rps:,.0f} rps ({twenty.rps / get_one if get_one else 0:.2f} of get_one); "
        f"p50 {twenty.p50_ms:.1f} ms, p99 {twenty.p99_ms:.1f} ms"
    )
    report.extra["sync"] = {
        "nothing_new": nothing_new.as_dict(),
        "twenty_changes": twenty.as_dict(),
        "ratio_nothing_new_vs_get_one": ratio,
    }


def shape_phase(
    bench: Bench, server: LiveServer, report: Report, results: dict[str, wrk.Result]
) -> None:
    """Every list shape (bench/http_shapes.py) against this run's plain list."""
    plain = results["list"].rps
    ratios = http_shapes.shapes_phase(bench, server, plain)
    under = {label: ratio for label, ratio in ratios.items() if ratio < http_shapes.SHAPE_FLOOR}
    lowest = min(ratios, key=ratios.__getitem__)
    report.notes.append(
        f"list shapes ({len(ratios)}: each filter, one combination, each sort both ways) vs "
        f"list {plain:,.0f} rps: lowest {lowest} {ratios[lowest]:.2f} (requirement >= "
        f"{http_shapes.SHAPE_FLOOR:g}: {'ok' if not under else 'UNDER: ' + ', '.join(under)})"
    )
    report.extra["list_shapes"] = ratios


def webhook_phase(
    bench: Bench, server: LiveServer, report: Report, results: dict[str, wrk.Result]
) -> None:
    """Creates with three webhooks per user against this run's create, and the job worker's
    deliveries per second (bench/http_webhooks.py)."""
    hooks = http_webhooks.webhooks_phase(bench, server)
    create = results["create"].rps
    quiet = hooks.quiet.rps / create if create else 0.0
    beside = hooks.beside_worker.rps / create if create else 0.0
    verdict = "ok" if quiet >= http_webhooks.CREATE_FLOOR else "UNDER"
    report.notes.append(
        f"create with {http_webhooks.HOOKS_PER_USER} webhooks per user c32: "
        f"{hooks.quiet.rps:,.0f} rps vs create {create:,.0f} rps: {quiet:.2f} (requirement >= "
        f"{http_webhooks.CREATE_FLOOR:g}: {verdict}); with a job worker delivering on the same "
        f"cores: {hooks.beside_worker.rps:,.0f} rps ({beside:.2f})"
    )
    report.notes.append(
        f"job worker: {hooks.deliveries_per_second:,.0f} deliveries/s to a local receiver "
        f"(one worker, WORKER_CONCURRENCY default; {hooks.delivered:,} delivered in all)"
    )
    report.extra["webhooks"] = {
        "create_with_webhooks": hooks.quiet.as_dict(),
        "create_with_webhooks_beside_worker": hooks.beside_worker.as_dict(),
        "ratio_vs_create": quiet,
        "ratio_vs_create_beside_worker": beside,
        "deliveries_per_second_per_worker": hooks.deliveries_per_second,
    }


def streams_phase(bench: Bench, report: Report) -> None:
    """N open event streams on one worker (one per user), one write every stream hears: the
    time until each has it, and the worker's RSS growth per open stream."""
    count = min(
        http_sync.SMOKE_STREAMS if bench.args.smoke else http_sync.STREAMS, len(bench.clients)
    )
    print(f"== {count} event streams on one worker", flush=True)
    # Room for every stream besides the write (MAX_CONNECTIONS bounds open connections).
    server = bench.service(1, "service-streams.log", MAX_CONNECTIONS=str(count + 100))
    owner, members = bench.clients[0], bench.clients[:count]
    project = http_sync.share_with(bench.database_url, owner, members)
    result = http_sync.fanout(server.url, servers.worker_pids(server), owner, members, project)
    server.stop()
    http_sync.unshare(bench.database_url, project)
    latency_ok = result.received == count and result.p99_ms <= http_sync.STREAM_P99_MS
    memory_ok = result.kib_per_stream <= http_sync.STREAM_KIB_EACH
    report.notes.append(
        f"event streams: {count} open on one worker, one write: {result.received} received, "
        f"p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms (requirement <= "
        f"{http_sync.STREAM_P99_MS:g} ms: {'ok' if latency_ok else 'OVER'}); RSS "
        f"{result.rss_before_mib:.0f} -> {result.rss_after_mib:.0f} MiB, "
        f"{result.kib_per_stream:.1f} KiB per stream (requirement <= "
        f"{http_sync.STREAM_KIB_EACH:g}: {'ok' if memory_ok else 'OVER'})"
    )
    report.extra["streams"] = result.as_dict()
    if result.received != count:
        bench.failures.append(f"event streams: {result.received} of {count} got the write")


def search_phase(
    bench: Bench, server: LiveServer, report: Report, client: Client, todos: int
) -> None:
    """`GET /todos?q=…` in one user's many todos against the same user's first page without
    `q`: with the trigram indexes a search that matches nothing reads no more than a page."""
    tokens = str(write_lua(bench.out / "search.lua", [client]))
    loads = {"first page": wrk.Load("list.lua", 32, {"BENCH_TOKENS": tokens})}
    for name, text in SEARCHES.items():
        query = f"q={quote(text)}&limit=20"
        loads[name] = wrk.Load("list.lua", 32, {"BENCH_TOKENS": tokens, "BENCH_QUERY": query})
    runs: dict[str, list[wrk.Result]] = {name: [] for name in loads}
    for _ in range(1 if bench.args.smoke else DEEP_ROUNDS):  # taking turns, as deep_phase
        for name, load in loads.items():
            runs[name].append(bench.measure(server, f"search {name}", [load])[0])
    medians = {name: _median_p50(results) for name, results in runs.items()}
    first = medians["first page"]
    ratios = {}
    for name, text in SEARCHES.items():
        result = medians[name]
        note, ratios[name] = ratio_note(
            f"q={text!r} ({name}) on {todos:,} todos: p50 {result.p50_ms:.1f} ms vs "
            f"{first.p50_ms:.1f} ms for the first page without q (medians of {len(runs[name])})",
            result.p50_ms,
            first.p50_ms,
            SEARCH_LIMIT,
        )
        report.notes.append(note)
    report.extra["search"] = {
        "todos": todos,
        "first_page": first.as_dict(),
        **{name: medians[name].as_dict() | {"q": SEARCHES[name]} for name in SEARCHES},
        "ratios": ratios,
    }


def workers_phase(bench: Bench, report: Report, one: dict[str, wrk.Result]) -> None:
    print("== service, 2 workers", flush=True)
    server = bench.service(2, "service-2-workers.log")
    bench.warm(server)
    pids = servers.worker_pids(server)
    two: dict[str, wrk.Result] = {}
    shares: dict[str, list[float]] = {}
    for name in ("list", "get_one"):
        # The workers share one socket: which takes wrk's keep-alive connections is decided
        # at accept time, and may be all of them. Their CPU split says how it went.
        before = servers.cpu_seconds(pids)
        two[name] = bench.scenario(server, name)
        used = [after - b for after, b in zip(servers.cpu_seconds(pids), before, strict=True)]
        shares[name] = [round(100 * u / (sum(used) or 1)) for u in used]
    report.extra["rss_mib"]["service_2_workers"] = bench.rss(server)
    server.stop()
    for name, result in two.items():
        report.notes.append(
            f"{name} c32, 1 worker vs 2: {one[name].rps:,.0f} vs {result.rps:,.0f} rps "
            f"({result.rps / one[name].rps:.2f}x), p99 {one[name].p99_ms:.1f} vs "
            f"{result.p99_ms:.1f} ms; CPU split between the 2 workers (incl. warm-up) "
            + "/".join(f"{share} %" for share in shares[name])
        )
    report.extra["workers"] = {
        "1": {name: one[name].as_dict() for name in two},
        "2": {name: result.as_dict() for name, result in two.items()},
        "2_cpu_share_pct": shares,
    }


def soak_phase(bench: Bench, report: Report, seconds: int) -> None:
    """Mixed list/get/create for `seconds` on one worker; is the worker's memory flat?"""
    print(f"== soak, {seconds} s", flush=True)
    server = bench.service(1, "service-soak.log")
    bench.warm(server)
    load = wrk.Load("mixed.lua", 32)
    samples = [sum(bench.rss(server))]
    process = wrk.start(load, server.url, seconds, bench.env("soak"), bench.args.wrk_timeout)
    try:
        while process.poll() is None:
            try:
                process.wait(SOAK_SAMPLE_SECONDS)
            except subprocess.TimeoutExpired:  # still running: time for a sample
                samples.append(sum(servers.rss_mib(servers.worker_pids(server))))
        result = wrk.finish(process, bench.logs / "wrk.log")
    finally:
        if process.poll() is None:
            process.kill()
    samples.append(sum(bench.rss(server)))
    server.stop()
    delete_created(bench.database_url)
    bench.check(server, f"soak (mixed.lua c32, {seconds} s)", result)
    growth = (samples[-1] - samples[0]) / samples[0] * 100
    verdict = "ok" if growth <= 10 else "OVER"
    report.notes.append(
        f"soak {seconds} s at {result.rps:,.0f} rps: RSS first {samples[0]:.0f}, last "
        f"{samples[-1]:.0f}, max {max(samples):.0f} MiB, growth {growth:+.1f} % "
        f"(requirement <= 10 %: {verdict})"
    )
    report.extra["soak"] = {"result": result.as_dict(), "rss_mib": samples, "growth_pct": growth}


def rows(service: dict[str, wrk.Result], floor: dict[str, wrk.Result]) -> list[Row]:
    table_rows = []
    for scenario in SCENARIOS:
        floor_name = scenario.floor_name or (scenario.name if scenario.on_floor else None)
        table_rows.append(
            Row(
                scenario.name,
                scenario.load.connections,
                service[scenario.name],
                floor.get(floor_name) if floor_name else None,
                floor_name,
            )
        )
    return table_rows


def plan_for(args: argparse.Namespace) -> Plan:
    if args.smoke:
        return Plan(
            users=20, todos=20, deep_todos=SMOKE_DEEP_TODOS, shared_todos=SMOKE_SHARED_TODOS
        )
    if args.million:
        return Plan(
            args.users,
            args.todos,
            deep_todos=DEEP_TODOS,
            total_at_least=MILLION,
            shared_todos=SHARED_TODOS,
        )
    return Plan(args.users, args.todos, deep_todos=DEEP_TODOS, shared_todos=SHARED_TODOS)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2, help="unrecorded seconds before each")
    parser.add_argument(
        "--server-warmup", type=float, default=10, help="unrecorded seconds after a server starts"
    )
    parser.add_argument("--users", type=int, default=1000, help="users who log in")
    parser.add_argument("--todos", type=int, default=100, help="live todos per user")
    parser.add_argument("--million", action="store_true", help="+ a deep user, >= 1M todos")
    parser.add_argument("--soak", type=int, metavar="SECONDS", help="+ a soak run this long")
    parser.add_argument("--smoke", action="store_true", help="tiny and fast, for CI")
    parser.add_argument("--pool-size", type=int, help="the service's DB_POOL_SIZE")
    parser.add_argument("--floor-pool-size", type=int, default=20)
    # Free ports by default, so a run never collides with another server on this machine.
    parser.add_argument("--port", type=int, default=None, help="the service's (default: free)")
    parser.add_argument("--floor-port", type=int, default=None, help="the floor's (default: free)")
    parser.add_argument(
        "--wrk-timeout",
        type=float,
        help=f"seconds before wrk counts a request as a timeout (default "
        f"{wrk.DEFAULT_TIMEOUT_SECONDS:g}, --smoke {SMOKE_WRK_TIMEOUT_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    args.port = args.port or free_port()
    while not args.floor_port or args.floor_port == args.port:
        args.floor_port = free_port()
    if args.smoke:  # CI's budget: a second a scenario, no long extras
        args.duration, args.million, args.soak = 1, False, None
        args.warmup, args.server_warmup = min(args.warmup, 0.5), min(args.server_warmup, 0.5)
    if args.wrk_timeout is None:
        # The smoke asserts that every scenario answers 2xx, never how fast: on a loaded
        # machine a login may wait seconds for a core, which is no failure. A timeout longer
        # than any smoke run cannot fire before wrk stops.
        args.wrk_timeout = SMOKE_WRK_TIMEOUT_SECONDS if args.smoke else wrk.DEFAULT_TIMEOUT_SECONDS
    return args


def run(args: argparse.Namespace, out: Path, stack: ExitStack) -> Bench:
    bench = Bench(args, out, stack)
    plan = plan_for(args)
    started = time.perf_counter()
    seeded = seed_database(bench.database_url, plan)
    flush_redis(bench.redis_url)
    print(f"seeded {seeded.todos:,} todos in {time.perf_counter() - started:.1f} s", flush=True)
    options = vars(args) | {"plan": asdict(plan)}
    report = Report(machine(bench.database_url, bench.redis_url), options)

    service, floor = service_phase(bench, report, seeded)
    report.rows = rows(service, floor)
    streams_phase(bench, report)
    if not args.smoke:
        workers_phase(bench, report, service)
    if args.soak:
        soak_phase(bench, report, args.soak)
    rss = report.extra["rss_mib"]
    report.notes.append(
        "RSS per worker: "
        + "; ".join(
            f"{k.replace('_', ' ')} {' + '.join(f'{s:.0f}' for s in v)} MiB" for k, v in rss.items()
        )
    )
    report.extra["server_revisions"] = bench.revisions
    if len(set(bench.revisions.values())) > 1:
        report.notes.append(
            "the code changed during the run; servers started on: "
            + ", ".join(f"{name} {rev}" for name, rev in bench.revisions.items())
        )
    errors = {
        log.name: scan_log(log) for log in sorted(bench.logs.glob("*.log")) if log.name != "wrk.log"
    }
    report.extra["server_logs"] = errors
    report.notes.append(
        "server logs: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{n} {k}" for k, n in c.items()) for name, c in errors.items()
        )
    )

    # Another process busy on the machine meanwhile shows here (and moves the numbers).
    report.extra["load_average_after"] = os.getloadavg()
    print("\n" + table(report) + "\n", flush=True)
    written = write_results(report, out)
    print(f"wrote {', '.join(str(path) for path in written)}", flush=True)
    return bench


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so the finally blocks stop the servers


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if args.smoke:
        out = Path(tempfile.mkdtemp(prefix="bench-http-smoke-"))
    else:
        out = ROOT / "bench" / "results"
    started = time.perf_counter()
    with ExitStack() as stack:
        bench = run(args, out, stack)
    print(f"done in {time.perf_counter() - started:.0f} s", flush=True)
    if args.smoke and bench.failures:
        print("smoke: failed runs:\n  " + "\n  ".join(bench.failures), file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
