"""A server started from outside the service, as the tests, bench/http and the proofs start
one: by default `scripts/serve` (migrate, then uvicorn), on a free loopback port, in a
process group of its own, its output appended to a log file. `start` returns once GET /health
answers 200; `stop` sends SIGTERM, then SIGKILLs whatever is left of the group."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.migrations import ROOT

SERVE = (str(ROOT / "scripts" / "serve"),)
HOST = "127.0.0.1"
STARTUP_SECONDS = 60.0
STOP_GRACE_SECONDS = 30.0
LOG_TAIL_CHARS = 3000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class LiveServer:
    name: str
    process: "subprocess.Popen[bytes]"
    port: int
    log: Path
    log_start: int
    """Where this start's output begins in the log: a restart appends to the same file."""
    host: str = HOST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        """What this start of the server has written so far."""
        with self.log.open("rb") as log:
            log.seek(self.log_start)
            return log.read().decode(errors="replace")

    def kill(self) -> None:
        """kill -9, the whole process group: a crash, with whatever was in flight cut."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int:
        """SIGTERM, as a container runtime stops it (uvicorn drains, then stops its workers);
        past `grace` seconds, SIGKILL. Either way, SIGKILL for anything left in its group.
        Its exit code (negative: the signal that ended it)."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        self.kill()
        return self.process.returncode


def start(
    name: str,
    *,
    env: Mapping[str, str],
    log: Path,
    port: int | None = None,
    command: Sequence[str] = SERVE,
    baseline: Mapping[str, str] = os.environ,
    startup_seconds: float = STARTUP_SECONDS,
    abandon: threading.Event | None = None,
) -> LiveServer:
    """`command` with `env` over `baseline`, serving on HOST:`port` (a free one by default),
    answering /health. Fails with the log's tail if it exits or does not answer in time, or
    at once when `abandon` is set (the caller is stopping)."""
    port = port or free_port()
    _refuse_if_taken(name, port)
    environment = {
        **baseline,
        # scripts/serve runs alembic and uvicorn from the project's environment: this one.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{baseline.get('PATH', '')}",
        "HOST": HOST,
        "PORT": str(port),
        **env,
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        log_start = out.tell()
        process = subprocess.Popen(  # noqa: S603 - our own commands, no shell
            command,
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own: stop() ends all of it
        )
    server = LiveServer(name, process, port, log, log_start)
    try:
        _wait_until_healthy(server, startup_seconds, abandon)
    except BaseException:
        server.stop()
        raise
    return server


def _refuse_if_taken(name: str, port: int) -> None:
    """Another server already listening there would answer /health in our server's place."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise RuntimeError(f"{name}: port {port} is taken ({exc.strerror})") from exc


def _wait_until_healthy(
    server: LiveServer, timeout: float, abandon: threading.Event | None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if abandon is not None and abandon.is_set():
            raise RuntimeError(f"{server.name}: given up, the run is stopping")
        if not server.running:
            problem = f"exited with {server.process.returncode}"
            raise RuntimeError(f"{server.name} {problem}; {_tail(server)}")
        with contextlib.suppress(httpx.TransportError):  # not listening yet
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(
        f"{server.name} did not answer /health within {timeout:.0f} s; {_tail(server)}"
    )


def _tail(server: LiveServer) -> str:
    return f"the end of {server.log}:\n{server.log_text()[-LOG_TAIL_CHARS:]}"
