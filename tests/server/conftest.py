"""The service as deployed: `scripts/serve` (migrate, then uvicorn) in a subprocess on a free
port, driven over real sockets. These tests pin what only the server process shows: which
peer it trusts, what it buffers, how long it waits, and how it stops."""

import asyncio
import copy
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import coverage
import httpx
import psycopg
import pytest
import sqlalchemy as sa

from app.config import Settings
from app.infrastructure.db import create_engine
from tests.conftest import ROOT, TEST_REDIS_URL, empty_stores

ARTIFACTS = ROOT / "artifacts"
SECRET_KEY = "server-test-secret-key-that-is-long-enough-01234"
STARTUP_SECONDS = 60
# How long a test waits for something it expects to happen at once: a guard against a hang
# (the old server waited forever), not a measurement.
PATIENCE_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class LiveServer:
    process: "subprocess.Popen[bytes]"
    host: str
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=PATIENCE_SECONDS)

    def reset_peak_memory(self) -> None:
        """Restart the kernel's peak-RSS count (VmHWM) from the current RSS (proc(5))."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def peak_memory_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def kill(self) -> None:
        """kill -9, the whole process group: a crash, with requests in flight."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> int:
        """SIGTERM, as a container runtime stops it; its exit code once it is gone."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(PATIENCE_SECONDS)

    def log_text(self) -> str:
        return self.log.read_text()


Serve = Callable[..., AbstractContextManager[LiveServer]]


@pytest.fixture(scope="module")
def serve(migrated: str) -> Serve:
    """`serve(NAME=value, …)` starts scripts/serve with those variables over a test baseline
    (rate limits off, cheap hashing) on emptied stores (`fresh=False`: on what the last server
    left), and stops it when the block ends."""

    @contextmanager
    def start(*, fresh: bool = True, **variables: str) -> Iterator[LiveServer]:
        if fresh:
            settings = Settings(
                database_url=migrated, redis_url=TEST_REDIS_URL, secret_key=SECRET_KEY
            )
            asyncio.run(empty_stores(settings))
        port = free_port()
        inherited = {
            name: value
            for name, value in os.environ.items()
            # uvicorn's own variable, and everything the service reads, come from here only.
            if name != "FORWARDED_ALLOW_IPS" and name.lower() not in Settings.model_fields
        }
        env = {
            **inherited,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "ENVIRONMENT": "test",
            "DATABASE_URL": migrated,
            "REDIS_URL": TEST_REDIS_URL or "",
            "SECRET_KEY": SECRET_KEY,
            "RATE_LIMIT_ENABLED": "false",
            "PASSWORD_HASH_TIME_COST": "1",
            "PASSWORD_HASH_MEMORY_KIB": "1024",
            "LOG_LEVEL": "WARNING",
            # scripts/serve runs inside the project's environment: this one.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **_measured(),
            **variables,
        }
        ARTIFACTS.mkdir(exist_ok=True)
        log_path = ARTIFACTS / f"server-{port}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(  # noqa: S603 - our own script, no shell
                [str(ROOT / "scripts" / "serve")],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, cleaned up below
            )
        server = LiveServer(process, "127.0.0.1", port, log_path)
        try:
            _wait_until_healthy(server)
            yield server
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(PATIENCE_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    return start


def _measured() -> dict[str, str]:
    """When this run measures coverage (scripts/test), the server's processes are measured
    too, into data files this run combines: the code only a live server runs counts."""
    current = coverage.Coverage.current()
    if current is None:
        return {}
    config = copy.copy(current.config)
    config.parallel = True  # a data file per process
    config.sigterm = True  # uvicorn ends by re-raising the SIGTERM it was stopped with
    return {"COVERAGE_PROCESS_CONFIG": config.serialize()}


def _wait_until_healthy(server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            pytest.fail(f"scripts/serve exited with {code}:\n{server.log_text()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"scripts/serve did not answer /health within {STARTUP_SECONDS} s")


def exchange(connection: socket.socket, request: bytes) -> bytes:
    """Send raw bytes (the server may cut us off mid-way), then read until it closes."""
    # Refused before we finished: its answer, if any, is already on our side.
    with suppress(BrokenPipeError, ConnectionResetError):
        connection.sendall(request)
    return read_until_closed(connection)


def read_until_closed(connection: socket.socket) -> bytes:
    received = b""
    while True:
        try:
            chunk = connection.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


class TableLock:
    """A PostgreSQL table held in ACCESS EXCLUSIVE mode by a connection of the test's own, so
    requests that touch it wait, visibly, inside their transaction."""

    def __init__(self, connection: psycopg.Connection[tuple[int]]) -> None:
        self.connection = connection

    def wait_for_waiters(self, count: int) -> None:
        deadline = time.monotonic() + PATIENCE_SECONDS
        while self.waiters() < count:
            assert time.monotonic() < deadline, f"fewer than {count} requests reached the lock"
            time.sleep(0.05)

    def waiters(self) -> int:
        row = self.connection.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
        assert row is not None
        return row[0]


@contextmanager
def locked_table(database_url: str, table: str) -> Iterator[TableLock]:
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as connection:
        connection.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        # pg_stat_activity is read from a second connection: this one is inside a transaction,
        # whose snapshot of the statistics would never change.
        with psycopg.connect(url, autocommit=True) as observer:
            yield TableLock(observer)
        connection.rollback()


def todo_titles(database_url: str) -> list[str]:
    """What the database holds, read past the application."""

    async def read() -> list[str]:
        engine = create_engine(database_url)
        async with engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT title FROM todos ORDER BY title"))
            titles = list(rows.scalars())
        await engine.dispose()
        return titles

    return asyncio.run(read())
