"""A request must arrive whole within REQUEST_READ_TIMEOUT_SECONDS (one second here): a
stalled head is answered 408, a stalled upload or a silent connection is closed. Time the
application spends on a request that has arrived does not count."""

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.live_server import LiveServer
from tests.conftest import on_postgres
from tests.server.conftest import connect, locked_table, read_until_closed
from tests.serving import Serve
from tests.support import API, sign_up


@pytest.fixture(scope="module")
def server(serve: Serve) -> Iterator[LiveServer]:
    with serve(REQUEST_READ_TIMEOUT_SECONDS="1") as live:
        yield live


def test_a_stalled_head_is_408_and_closed(server: LiveServer) -> None:
    with connect(server) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: ")  # and no more
        answer = read_until_closed(connection)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout"
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["code"] == "request_timeout"


def test_a_stalled_head_after_a_kept_alive_request_is_408_too(server: LiveServer) -> None:
    with connect(server) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\nGET /health HTTP/1.1\r\n")
        answers = read_until_closed(connection)
    first, _, second = answers.partition(b"HTTP/1.1 408 Request Timeout\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"code":"request_timeout"' in second.replace(b" ", b"")


def test_a_stalled_upload_is_cut_off(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        headers = sign_up(http, "uploader@example.com").headers
    with connect(server) as connection:
        connection.sendall(
            f"POST {API}/todos HTTP/1.1\r\nHost: test\r\n".encode()
            + f"Authorization: {headers['Authorization']}\r\n".encode()
            + b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"title": "'
        )
        assert read_until_closed(connection) == b""  # closed, with no answer to a half body
    with httpx.Client(base_url=server.url, headers=headers) as http:
        assert http.get(f"{API}/todos").json()["items"] == []


def test_a_connection_that_sends_nothing_is_closed(server: LiveServer) -> None:
    with connect(server) as connection:
        assert read_until_closed(connection) == b""


@on_postgres
def test_slow_work_on_a_request_that_has_arrived_is_not_cut(
    server: LiveServer, migrated: str
) -> None:
    with httpx.Client(base_url=server.url) as http:
        headers = sign_up(http, "patient@example.com").headers
        with ThreadPoolExecutor(1) as pool, locked_table(migrated, "todos") as lock:
            post = pool.submit(
                http.post, f"{API}/todos", json={"title": "Worth the wait"}, headers=headers
            )
            lock.wait_for_waiters(1)  # the request has arrived and waits inside the app
            time.sleep(2)  # twice the read timeout
        assert post.result().status_code == 201
