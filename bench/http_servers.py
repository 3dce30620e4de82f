"""The servers under load, started by harness.live_server: the service through scripts/serve,
the floor through uvicorn with the same flags. Each writes to its own log; LiveServer.stop()
ends it and its workers; rss_mib() and cpu_seconds() read the workers' memory and CPU time
from /proc."""

import os
import sys
from pathlib import Path

from bench.common import SECRET_KEY
from harness import live_server
from harness.live_server import SERVE, LiveServer
from harness.raised_limits import RAISED_LIMITS

# The floor's flags. The service gets uvloop too; the rest of its flags (httptools among them)
# are scripts/serve's.
UVICORN_FLAGS = ("--loop", "uvloop", "--http", "httptools", "--no-access-log")
SERVICE_FLAGS = ("--loop", "uvloop")


def start_service(
    *,
    port: int,
    workers: int,
    database_url: str,
    redis_url: str,
    pool_size: int | None,
    log: Path,
    env: dict[str, str] | None = None,
) -> LiveServer:
    extra = env or {}
    env = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        # Tokens are collected once, at the start; they must outlive the longest run.
        "ACCESS_TOKEN_EXPIRE_MINUTES": str(24 * 60),
        **RAISED_LIMITS,
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",  # the webhook scenarios' receiver is on loopback
        **extra,
    }
    if pool_size is not None:
        env["DB_POOL_SIZE"] = str(pool_size)
    name = f"service ({workers} worker{'s' * (workers > 1)})"
    command = [*SERVE, "--workers", str(workers), *SERVICE_FLAGS]
    return live_server.start(name, command=command, env=env, port=port, log=log)


def start_floor(*, port: int, database_url: str, pool_size: int, log: Path) -> LiveServer:
    env = {"FLOOR_DATABASE_URL": database_url, "FLOOR_POOL_SIZE": str(pool_size)}
    command = [sys.executable, "-m", "uvicorn", "bench.floor:app", "--host", live_server.HOST]
    command += ["--port", str(port), "--workers", "1", *UVICORN_FLAGS]
    return live_server.start("floor", command=command, env=env, port=port, log=log)


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


def worker_pids(server: LiveServer) -> list[int]:
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
