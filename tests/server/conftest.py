"""The service as deployed: `scripts/serve` (migrate, then uvicorn) in a subprocess on a free
port, driven over real sockets, and where the deployment's reverse proxy does the job
(`proxied`), through nginx on deploy/nginx.conf. These tests pin what only the server
processes show: which peer it trusts, what it buffers, how long it waits, and how it stops."""

import asyncio
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from app.infrastructure.db import create_engine
from harness import reverse_proxy
from harness.live_server import LiveServer
from harness.migrations import libpq_url
from tests.serving import ARTIFACTS

# How long a test waits for something it expects to happen at once: a guard against a hang
# (the old server waited forever), not a measurement.
PATIENCE_SECONDS = 30


IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@contextmanager
def proxied(server: LiveServer, **directives: str) -> Iterator[LiveServer]:
    """The deployment's nginx in front of `server`, with `directives` (any deploy/nginx.conf
    sets) at other values: timeouts a test need not wait out. Its error and access logs go to
    artifacts/nginx-<port>/."""
    if reverse_proxy.nginx_binary() is None:
        if IN_CI:
            pytest.fail(f"CI=true but {reverse_proxy.INSTALL_HINT}")
        pytest.skip(f"{reverse_proxy.INSTALL_HINT}; CI installs it")
    root = Path(tempfile.mkdtemp(prefix="todo-nginx-"))  # beside /tmp: its workers can reach it
    try:
        nginx = reverse_proxy.start(
            f"nginx-{server.port}",
            upstreams=[server.port],
            root=root,
            logs=ARTIFACTS / f"nginx-{server.port}",
            directives=directives,
        )
        try:
            yield nginx
        finally:
            nginx.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def proxy_access_log(proxy: LiveServer) -> str:
    """What nginx logged of the requests it answered itself (deploy/nginx.conf logs no other)."""
    path = proxy.log.parent / "nginx-access.log"
    return path.read_text() if path.exists() else ""


def connect(server: LiveServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=PATIENCE_SECONDS)


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
    url = libpq_url(database_url)
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
