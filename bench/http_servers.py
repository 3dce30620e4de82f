"""The servers under load, as subprocesses: the service through scripts/serve, the floor
through uvicorn with the same flags. Each writes to its own log; stop() ends it and its
workers; rss_mib() and cpu_seconds() read the workers' memory and CPU time from /proc."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import ROOT, SECRET_KEY

# The floor's flags. The service gets uvloop too, and its protocol from scripts/serve: httptools
# with bounded request heads (app/server.py), which `--http httptools` would replace.
UVICORN_FLAGS = ("--loop", "uvloop", "--http", "httptools", "--no-access-log")
SERVICE_FLAGS = ("--loop", "uvloop")
# Every request comes from one IP: the limits stay on and are counted on every request, only
# raised. The default one too: it counts logins per IP (1 000 logins take ~20 s), and the deep
# page is one user's.
RAISED_LIMITS = {
    "RATE_LIMIT_DEFAULT": "100000/minute",
    "RATE_LIMIT_LOGIN": "100000/minute",
    "RATE_LIMIT_LOGIN_IP": "100000/minute",
    "RATE_LIMIT_REFRESH": "100000/minute",
    "RATE_LIMIT_REGISTER": "100000/hour",
}


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _start(name: str, argv: list[str], env: Mapping[str, str], port: int, log: Path) -> Server:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        # A session of its own: stop() can end the workers with the master.
        process = subprocess.Popen(  # noqa: S603 - our own commands, no shell
            argv,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, port, process, log)
    try:
        _wait_healthy(server)
    except BaseException:
        stop(server)
        raise
    return server


def _wait_healthy(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server.name} exited ({server.process.returncode}):\n{tail}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} did not answer /health within {timeout:.0f} s")


def start_service(
    *, port: int, workers: int, database_url: str, redis_url: str, pool_size: int | None, log: Path
) -> Server:
    env = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "PORT": str(port),
        # Tokens are collected once, at the start; they must outlive the longest run.
        "ACCESS_TOKEN_EXPIRE_MINUTES": str(24 * 60),
        **RAISED_LIMITS,
    }
    if pool_size is not None:
        env["DB_POOL_SIZE"] = str(pool_size)
    argv = ["scripts/serve", "--port", str(port), "--workers", str(workers), *SERVICE_FLAGS]
    return _start(f"service ({workers} worker{'s' * (workers > 1)})", argv, env, port, log)


def start_floor(*, port: int, database_url: str, pool_size: int, log: Path) -> Server:
    env = {"FLOOR_DATABASE_URL": database_url, "FLOOR_POOL_SIZE": str(pool_size)}
    argv = [sys.executable, "-m", "uvicorn", "bench.floor:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", "1", *UVICORN_FLAGS]
    return _start("floor", argv, env, port, log)


def stop(server: Server, timeout: float = 30) -> None:
    """SIGTERM (uvicorn drains and stops its workers), then SIGKILL what is left."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)  # the group we started, workers and all
    server.process.wait()


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name may hold spaces; the fields after its ")" do not.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def worker_pids(server: Server) -> list[int]:
    """With --workers N, uvicorn's spawned children; with one worker, the server itself."""
    workers = []
    for child in _children(server.process.pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:  # not multiprocessing's resource tracker
            workers.append(child)
    return sorted(workers) or [server.process.pid]


def cpu_seconds(pids: list[int]) -> list[float]:
    """User + system CPU time so far, per process."""
    ticks = os.sysconf("SC_CLK_TCK")
    times = []
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        times.append((int(fields[11]) + int(fields[12])) / ticks)  # utime, stime
    return times


def rss_mib(pids: list[int]) -> list[float]:
    sizes = []
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes
