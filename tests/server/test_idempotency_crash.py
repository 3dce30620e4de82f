"""A keyed POST whose server is killed (kill -9) inside its transaction leaves nothing behind:
the retry, on a restarted server, creates the todo once, and the next retry replays it."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from harness.migrations import libpq_url
from tests.conftest import on_postgres
from tests.server.conftest import PATIENCE_SECONDS, locked_table, todo_titles
from tests.serving import Serve
from tests.support import API, sign_up

pytestmark = on_postgres  # LOCK TABLE, pg_stat_activity

BODY = {"title": "exactly once"}


def wait_until_gone(database_url: str, backend: int) -> None:
    """Until PostgreSQL has ended the dead request's session (and rolled its transaction back)."""
    url = libpq_url(database_url)
    deadline = time.monotonic() + PATIENCE_SECONDS
    with psycopg.connect(url, autocommit=True) as observer:
        while observer.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]
        ).fetchone():
            assert time.monotonic() < deadline, "the killed request's session lingers"
            time.sleep(0.05)


def test_a_request_killed_in_its_transaction_blocks_no_retry_and_leaves_no_duplicate(
    serve: Serve, migrated: str
) -> None:
    with serve(DB_POOL_SIZE="2") as server, ThreadPoolExecutor(1) as pool:
        with httpx.Client(base_url=server.url, timeout=PATIENCE_SECONDS) as http:
            headers = {**sign_up(http, "crash@example.com").headers, "Idempotency-Key": "k1"}
        with locked_table(migrated, "todos") as lock:
            # The insert waits on the lock; everything before it in the request has run.
            post = pool.submit(httpx.post, f"{server.url}{API}/todos", json=BODY, headers=headers)
            lock.wait_for_waiters(1)
            backend = lock.connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            ).fetchone()
            server.kill()
            with pytest.raises(httpx.TransportError):
                post.result(PATIENCE_SECONDS)
        assert backend is not None
        wait_until_gone(migrated, backend[0])

    with (
        serve(fresh=False, DB_POOL_SIZE="2") as server,
        httpx.Client(base_url=server.url, timeout=PATIENCE_SECONDS) as http,
    ):
        retry = http.post(f"{API}/todos", json=BODY, headers=headers)
        assert retry.status_code == 201, retry.text
        assert "idempotent-replayed" not in retry.headers  # the first never committed
        again = http.post(f"{API}/todos", json=BODY, headers=headers)
        assert again.status_code == 201, again.text
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json()["id"] == retry.json()["id"]

    assert todo_titles(migrated) == ["exactly once"]
