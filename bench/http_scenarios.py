"""bench/http's scenarios and the runner that measures them: each a wrk script with its
connections, run after a warm-up against one server at a time, its result checked."""

import argparse
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench import http_servers as servers
from bench import http_wrk as wrk
from bench.common import BENCH_PASSWORD
from bench.http_report import head, revision
from bench.http_seed import database_url, delete_created, redis_url
from bench.http_tokens import Client, patch_targets, write_lua
from harness.live_server import LiveServer

FILTERED = "completed=false&priority=high&priority=urgent&sort=-priority,due_at&limit=20"

# Logins at OWASP Argon2id cost take ~0.2 s each alone and several times that beside the list
# load (the hashing threads run at low priority): a 1 s smoke window can close before the
# first one does, which would read as a failure.
MIN_SECONDS = {"list_during_logins": 3}
SMOKE_RETRY_SECONDS = (5, 20)
# Loads that only add pressure beside the one measured (the logins beside `list`): on a busy
# machine none of them may finish within the window, which says nothing about the service
# (the `login` scenario checks logins answer). Their non-2xx answers and errors still count.
BACKGROUND = {"list_during_logins": frozenset({"login.lua"})}


@dataclass(frozen=True)
class Scenario:
    name: str
    load: wrk.Load
    on_floor: bool = False
    floor_name: str | None = None
    """The floor scenario to compare with, where the floor has no such route (filters)."""


SCENARIOS = (
    Scenario("list", wrk.Load("list.lua", 32), on_floor=True),
    Scenario("list_c64", wrk.Load("list.lua", 64), on_floor=True),
    Scenario(
        "list_filtered", wrk.Load("list.lua", 32, {"BENCH_QUERY": FILTERED}), floor_name="list"
    ),
    Scenario("get_one", wrk.Load("get_one.lua", 32), on_floor=True),
    Scenario("create", wrk.Load("create.lua", 32), on_floor=True),
    Scenario("patch", wrk.Load("patch.lua", 32)),
    Scenario("login", wrk.Load("login.lua", 4)),
    Scenario("refresh", wrk.Load("refresh.lua", 8)),
    Scenario("health", wrk.Load("health.lua", 32), on_floor=True),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


class Bench:
    """One run: its options, where its files go, the logged-in clients, what failed."""

    def __init__(self, args: argparse.Namespace, out: Path, stack: ExitStack) -> None:
        self.args = args
        self.out = out
        self.stack = stack
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        for old in self.logs.glob("*.log"):  # the report scans this run's logs only
            old.unlink()
        self.tokens = out / "tokens.lua"
        self.database_url = database_url(args.smoke)
        self.redis_url = redis_url()
        self.clients: list[Client] = []
        self.next_refresh = 1
        self.patches = 0
        self.failures: list[str] = []
        self.revisions: dict[str, str] = {}
        """The code each server started on: it may change during a run."""

    def service(self, workers: int, log: str, **env: str) -> LiveServer:
        server = servers.start_service(
            port=self.args.port,
            workers=workers,
            database_url=self.database_url,
            redis_url=self.redis_url,
            pool_size=self.args.pool_size,
            log=self.logs / log,
            env=env,
        )
        self.stack.callback(server.stop)  # on any exit; stopping twice is harmless
        self.revisions[log.removesuffix(".log")] = revision(head())
        return server

    def floor(self) -> LiveServer:
        server = servers.start_floor(
            port=self.args.floor_port,
            database_url=self.database_url,
            pool_size=self.args.floor_pool_size,
            log=self.logs / "floor.log",
        )
        self.stack.callback(server.stop)
        self.revisions["floor"] = revision(head())
        return server

    def _prepare(self, name: str) -> dict[str, str]:
        """What a scenario needs afresh before each of its runs, warm-up and measured."""
        if name == "patch":  # If-Match needs the versions the last run left behind
            connections = BY_NAME["patch"].load.connections
            targets = patch_targets(self.database_url, self.clients, 4 * connections, self.patches)
            self.patches += 1
            return {"BENCH_TOKENS": str(write_lua(self.out / "patch.lua", targets))}
        if name == "refresh":  # a spent refresh token presented again ends its login
            count = max(1, min(200, len(self.clients) // 2))
            first, self.next_refresh = self.next_refresh, self.next_refresh + count
            return {"BENCH_REFRESH_FIRST": str(first), "BENCH_REFRESH_COUNT": str(count)}
        return {}

    def env(self, name: str) -> dict[str, str]:
        env = {"BENCH_TOKENS": str(self.tokens), "BENCH_PASSWORD": BENCH_PASSWORD}
        return env | self._prepare(name)

    def measure(self, server: LiveServer, name: str, loads: Sequence[wrk.Load]) -> list[wrk.Result]:
        """A warm-up that is not recorded, then the measured run; the loads run at once."""
        log = self.logs / "wrk.log"
        timeout = self.args.wrk_timeout
        if self.args.warmup > 0:
            wrk.run(loads, server.url, self.args.warmup, self.env(name), log, timeout)
        seconds = max(self.args.duration, MIN_SECONDS.get(name, 0))
        results = wrk.run(loads, server.url, seconds, self.env(name), log, timeout)
        # A smoke asks that every scenario answers 2xx, not how soon: on a loaded machine a
        # window can close before a slow request (a login) does. One that answered nothing,
        # and nothing badly, runs again in longer windows before it counts as a failure.
        for longer in SMOKE_RETRY_SECONDS if self.args.smoke else ():
            idle_allowed = BACKGROUND.get(name, frozenset())
            if not any(
                result.requests == 0 and result.answered_well and load.script not in idle_allowed
                for load, result in zip(loads, results, strict=True)
            ):
                break
            results = wrk.run(loads, server.url, longer, self.env(name), log, timeout)
        for load, result in zip(loads, results, strict=True):
            background = load.script in BACKGROUND.get(name, ())
            label = f"{name} ({load.script} c{load.connections})"
            self.check(server, label, result, idle_ok=background)
        if name == "create":
            delete_created(self.database_url)
        return results

    def check(
        self, server: LiveServer, label: str, result: wrk.Result, *, idle_ok: bool = False
    ) -> None:
        """A failure: a non-2xx answer, a socket error, or (unless `idle_ok`) no request."""
        print(
            f"  {server.name:<19} {label:<36} {result.rps:9.1f} rps  p50 {result.p50_ms:7.1f}"
            f"  p99 {result.p99_ms:7.1f} ms  non-2xx {result.non2xx}"
            f"  errors {result.socket_errors}",
            flush=True,
        )
        if not (result.clean or (idle_ok and result.answered_well)):
            self.failures.append(f"{server.name} {label}: {result}")

    def scenario(self, server: LiveServer, name: str) -> wrk.Result:
        return self.measure(server, name, [BY_NAME[name].load])[0]

    def warm(self, server: LiveServer) -> None:
        """A fresh server is cold (pool connections, per-process caches, each user's first
        request): one unrecorded list run, long enough to reach every user, before any
        scenario. The per-scenario warm-up is too short for that."""
        if self.args.server_warmup > 0:
            load = BY_NAME["list"].load
            wrk.run(
                [load],
                server.url,
                self.args.server_warmup,
                self.env("list"),
                self.logs / "wrk.log",
                self.args.wrk_timeout,
            )

    def rss(self, server: LiveServer) -> list[float]:
        sizes = servers.rss_mib(servers.worker_pids(server))
        print(f"  {server.name}: RSS {' + '.join(f'{s:.0f}' for s in sizes)} MiB", flush=True)
        return sizes
