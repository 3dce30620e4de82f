"""WEB_CONCURRENCY: the worker processes scripts/serve runs (one by default)."""

import time
from pathlib import Path

import httpx

from harness.live_server import LiveServer
from tests.server.conftest import PATIENCE_SECONDS
from tests.serving import Serve

STARTUP_SECONDS = 180.0


def _workers(server: LiveServer) -> int:
    """The server's worker processes: children uvicorn spawned to serve (not its resource
    tracker)."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:  # the process ended while we looked
            continue
        if fields.get("PPid", "").strip() == str(server.process.pid) and b"spawn_main" in cmdline:
            count += 1
    return count


def _settled_workers(server: LiveServer, expected: int) -> int:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while (found := _workers(server)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_web_concurrency_sets_the_number_of_worker_processes(serve: Serve) -> None:
    # Each worker imports and starts the app on its own: on a busy machine that takes a while.
    with serve(WEB_CONCURRENCY="2", startup_seconds=STARTUP_SECONDS) as server:
        assert _settled_workers(server, 2) == 2
        assert httpx.get(f"{server.url}/health", timeout=PATIENCE_SECONDS).status_code == 200


def test_one_process_serves_by_default(serve: Serve) -> None:
    with serve() as server:
        assert _workers(server) == 0  # uvicorn serves in its own process: no worker spawned
        assert httpx.get(f"{server.url}/health", timeout=PATIENCE_SECONDS).status_code == 200
