"""A keyed POST whose server is killed (kill -9) inside its transaction leaves nothing behind:
the retry, on a restarted server, creates the todo once, and the next retry replays it.

A real server (scripts/serve, as deployed) in a subprocess, so it can really die. The request
is held inside its transaction by a table lock taken from another connection."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.infrastructure.db import create_engine
from tests.conftest import PASSWORD, ROOT, TEST_REDIS_URL, empty_stores, on_postgres

pytestmark = on_postgres  # LOCK TABLE, pg_stat_activity

API = "/api/v1"
SECRET_KEY = "crash-test-secret-key-that-is-long-enough-012345"
WAIT_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _server(settings: Settings, port: int, log: Path) -> Iterator["subprocess.Popen[bytes]"]:
    """scripts/serve on the test database; SIGKILLed (with its process group) on the way out
    if the test has not killed it already."""
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "ENVIRONMENT": "test",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": TEST_REDIS_URL or "",
        "SECRET_KEY": SECRET_KEY,
        "RATE_LIMIT_ENABLED": "false",
        "FIRST_ADMIN_EMAIL": "",
        "DB_POOL_SIZE": "2",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "LOG_LEVEL": "WARNING",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with log.open("ab") as out:
        server = subprocess.Popen(  # noqa: S603 - our own script, no shell
            [str(ROOT / "scripts" / "serve")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, to kill as a whole
        )
    try:
        _wait_until_healthy(server, f"http://127.0.0.1:{port}", log)
        yield server
    finally:
        _kill(server)


def _kill(server: "subprocess.Popen[bytes]") -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def _wait_until_healthy(server: "subprocess.Popen[bytes]", base_url: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"scripts/serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"scripts/serve did not answer /health within {WAIT_SECONDS} s")


async def _poll(engine: AsyncEngine, query: str, **params: object) -> object:
    """The first value `query` returns once it returns one (it is polled, never timed)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            value = (await connection.execute(sa.text(query), params)).scalar()
        if value is not None:
            return value
        await asyncio.sleep(0.05)
    pytest.fail(f"still nothing from: {query}")


async def test_a_request_killed_in_its_transaction_blocks_no_retry_and_leaves_no_duplicate(
    settings: Settings, tmp_path: Path
) -> None:
    await empty_stores(settings)
    port, log = _free_port(), tmp_path / "server.log"
    base_url = f"http://127.0.0.1:{port}"
    engine = create_engine(settings.database_url)
    credentials = {"email": "crash@example.com", "password": PASSWORD}
    body = {"title": "exactly once"}
    try:
        with _server(settings, port, log) as server:
            async with httpx.AsyncClient(base_url=base_url, timeout=WAIT_SECONDS) as http:
                assert (await http.post(f"{API}/auth/register", json=credentials)).is_success
                token = (await http.post(f"{API}/auth/login", json=credentials)).json()
                headers = {
                    "Authorization": f"Bearer {token['access_token']}",
                    "Idempotency-Key": "crash-1",
                }
                async with engine.connect() as blocker:
                    # Inserts into todos wait; everything before them in the request runs.
                    await blocker.execute(sa.text("LOCK TABLE todos IN EXCLUSIVE MODE"))
                    post = asyncio.create_task(
                        http.post(f"{API}/todos", json=body, headers=headers)
                    )
                    backend = await _poll(
                        engine,
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO todos%'",
                    )
                    _kill(server)  # kill -9, mid-transaction
                    with pytest.raises(httpx.TransportError):
                        await post
                    await blocker.rollback()
                # Its connection gone, the dead request's transaction is rolled back.
                await _poll(
                    engine,
                    "SELECT 1 WHERE NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = :pid)",
                    pid=backend,
                )

        with _server(settings, port, log):
            async with httpx.AsyncClient(base_url=base_url, timeout=WAIT_SECONDS) as http:
                retry = await http.post(f"{API}/todos", json=body, headers=headers)
                assert retry.status_code == 201, retry.text
                assert "idempotent-replayed" not in retry.headers  # the first never committed
                again = await http.post(f"{API}/todos", json=body, headers=headers)
                assert again.status_code == 201, again.text
                assert again.headers.get("idempotent-replayed") == "true"
                assert again.json()["id"] == retry.json()["id"]

        async with engine.connect() as connection:
            titles = (await connection.execute(sa.text("SELECT title FROM todos"))).scalars()
            assert list(titles) == ["exactly once"]
    finally:
        await engine.dispose()
