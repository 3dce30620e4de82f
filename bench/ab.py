"""A/B of one change: two checkouts of the service (before, after) served side by side on one
seeded database, each driven by the same wrk scenarios in interleaved rounds; what is compared
is the server's CPU time per request (its worker's utime + stime from /proc, over the run),
which is less at the mercy of a shared machine than requests per second.

    uv run python -m bench.ab BEFORE_DIR AFTER_DIR [--scenario get_one.lua --scenario list.lua]
        [--rounds 6] [--seconds 10] [--connections 32] [--users 200] [--pool-size 20]

Each directory is a checkout with its own environment (`uv sync --frozen` in it), e.g. the
base branch exported with `git worktree add` or `git archive`. The database
(BENCH_AB_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/todo_bench_ab) has its
`public` schema dropped and is seeded as bench/http seeds (USERS users x 100 todos); Redis
(BENCH_AB_REDIS_URL, default redis://127.0.0.1:6379/13) is emptied. Servers on free ports.
Rounds alternate which server runs first (A B, B A, ...); the report gives each scenario's
median CPU per request and requests per second, and the median of the paired differences.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import http_seed, http_tokens, http_wrk
from bench.common import SECRET_KEY
from bench.http_servers import cpu_seconds, worker_pids
from harness import live_server
from harness.live_server import LiveServer
from harness.raised_limits import RAISED_LIMITS

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/todo_bench_ab"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
WARMUP_SECONDS = 5


@dataclass(frozen=True)
class Sample:
    server: str
    scenario: str
    round: int
    cpu_us_per_request: float
    rps: float
    non2xx: int


def start(
    name: str, checkout: Path, *, database_url: str, redis_url: str, pool_size: int, log: Path
) -> LiveServer:
    env = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "ACCESS_TOKEN_EXPIRE_MINUTES": str(24 * 60),
        "DB_POOL_SIZE": str(pool_size),
        # The checkout's own environment runs its scripts/serve.
        "PATH": f"{checkout / '.venv' / 'bin'}:/usr/bin:/bin",
        **RAISED_LIMITS,
    }
    command = [str(checkout / "scripts" / "serve"), "--workers", "1", "--loop", "uvloop"]
    return live_server.start(name, command=command, env=env, log=log)


def measure(
    server: LiveServer,
    name: str,
    scenario: str,
    round_: int,
    args: argparse.Namespace,
    env: dict[str, str],
) -> Sample:
    pids = worker_pids(server)
    before = sum(cpu_seconds(pids))
    load = http_wrk.Load(scenario, args.connections)
    (result,) = http_wrk.run([load], server.url, args.seconds, env)
    spent = sum(cpu_seconds(pids)) - before
    return Sample(
        name, scenario, round_, spent / max(result.requests, 1) * 1e6, result.rps, result.non2xx
    )


def report(samples: Sequence[Sample], scenarios: Sequence[str]) -> None:
    median = statistics.median
    for scenario in scenarios:
        runs = {
            name: [s for s in samples if s.scenario == scenario and s.server == name]
            for name in ("A", "B")
        }
        cpu = {name: [s.cpu_us_per_request for s in of] for name, of in runs.items()}
        rps = {name: median([s.rps for s in of]) for name, of in runs.items()}
        paired = median([b - a for a, b in zip(cpu["A"], cpu["B"], strict=True)])
        non2xx = sum(s.non2xx for of in runs.values() for s in of)
        print(
            f"{scenario}: CPU per request A {median(cpu['A']):.0f} µs, B {median(cpu['B']):.0f}"
            f" µs; B - A paired median {paired:+.0f} µs ({paired / median(cpu['A']):+.1%});"
            f" rps A {rps['A']:.0f}, B {rps['B']:.0f}; non-2xx {non2xx}"
        )
        for name in ("A", "B"):
            print(f"  {name} µs:", " ".join(f"{value:.0f}" for value in cpu[name]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--scenario", action="append", dest="scenarios")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--pool-size", type=int, default=20)
    args = parser.parse_args(argv)
    scenarios = args.scenarios or ["get_one.lua", "list.lua"]
    url = os.environ.get("BENCH_AB_DATABASE_URL", DEFAULT_URL)
    redis_url = os.environ.get("BENCH_AB_REDIS_URL", DEFAULT_REDIS_URL)
    seeded = http_seed.seed(url, http_seed.Plan(users=args.users, todos=100))
    http_seed.flush_redis(redis_url)
    app_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    logs = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    servers: dict[str, LiveServer] = {}
    try:
        for name, checkout in (("A", args.before), ("B", args.after)):
            servers[name] = start(
                name,
                checkout.resolve(),
                database_url=app_url,
                redis_url=redis_url,
                pool_size=args.pool_size,
                log=logs / f"{name}.log",
            )
        pairs = asyncio.run(
            http_tokens.login_all(servers["A"].url, [email for email, _ in seeded.users])
        )
        clients = http_tokens.clients(url, seeded.users, pairs)
        tokens = http_tokens.write_lua(logs / "tokens.lua", clients)
        env = {"BENCH_TOKENS": str(tokens)}
        for server in servers.values():
            for scenario in scenarios:
                http_wrk.run(
                    [http_wrk.Load(scenario, args.connections)], server.url, WARMUP_SECONDS, env
                )
        samples = []
        for round_ in range(args.rounds):
            order = ("A", "B") if round_ % 2 == 0 else ("B", "A")
            for scenario in scenarios:
                for name in order:
                    sample = measure(servers[name], name, scenario, round_, args, env)
                    samples.append(sample)
                    cost = f"{sample.cpu_us_per_request:.0f} µs/request, {sample.rps:.0f} rps"
                    print(f"round {round_} {scenario} {name}: {cost}", flush=True)
        wrk = f"wrk -t1 -c{args.connections} -d{args.seconds}s"
        print(f"A = {args.before}, B = {args.after}; {wrk}, {args.rounds} rounds; logs in {logs}")
        report(samples, scenarios)
    finally:
        for server in servers.values():
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
