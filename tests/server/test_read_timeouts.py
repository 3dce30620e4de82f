"""A request must arrive in time, in the deployment: nginx (deploy/nginx.conf) closes a
connection whose head stalls past client_header_timeout (a silent one too) or whose body
stalls past client_body_timeout, and logs it 408; the service never sees a request that has
not arrived whole. Time the application spends on a request that has arrived does not count.
(nginx closes a timed-out connection without an answer: it writes no 408 to it.)

The timeouts are one second here, against the deployment's ten."""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.live_server import LiveServer
from tests.conftest import on_postgres
from tests.server.conftest import (
    connect,
    locked_table,
    proxied,
    proxy_access_log,
    read_until_closed,
)
from tests.serving import Serve
from tests.support import API, sign_up

TIMEOUTS = {"client_header_timeout": "1s", "client_body_timeout": "1s"}


@pytest.fixture(scope="module")
def server(serve: Serve) -> Iterator[LiveServer]:
    with serve() as live:
        yield live


@pytest.fixture(scope="module")
def proxy(server: LiveServer) -> Iterator[LiveServer]:
    with proxied(server, **TIMEOUTS) as nginx:
        yield nginx


def timed_out(proxy: LiveServer, request_line: str) -> bool:
    """nginx logged this request line as timed out (408)."""
    return f'"{request_line}" 408 ' in proxy_access_log(proxy)


def test_a_stalled_head_is_closed_and_logged_408(proxy: LiveServer) -> None:
    with connect(proxy) as connection:
        connection.sendall(b"GET /health?stalled-head HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        assert read_until_closed(connection) == b""
    assert timed_out(proxy, "GET /health?stalled-head HTTP/1.1")


def test_a_stalled_head_after_a_kept_alive_request_is_closed_too(proxy: LiveServer) -> None:
    with connect(proxy) as connection:
        connection.sendall(
            b"GET /health HTTP/1.1\r\nHost: test\r\n\r\nGET /health?second HTTP/1.1\r\n"
        )
        answers = read_until_closed(connection)
    assert answers.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answers.count(b"HTTP/1.1 ") == 1  # the first answered, the second cut off
    assert timed_out(proxy, "GET /health?second HTTP/1.1")


def test_a_stalled_upload_is_cut_off_and_never_reaches_the_service(proxy: LiveServer) -> None:
    with httpx.Client(base_url=proxy.url) as http:
        headers = sign_up(http, "uploader@example.com").headers
    with connect(proxy) as connection:
        connection.sendall(
            f"POST {API}/todos HTTP/1.1\r\nHost: test\r\n".encode()
            + f"Authorization: {headers['Authorization']}\r\n".encode()
            + b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"title": "'
        )
        assert read_until_closed(connection) == b""  # closed, with no answer to a half body
    assert timed_out(proxy, f"POST {API}/todos HTTP/1.1")
    with httpx.Client(base_url=proxy.url, headers=headers) as http:
        assert http.get(f"{API}/todos").json()["items"] == []


def test_a_connection_that_sends_nothing_is_closed(proxy: LiveServer) -> None:
    with connect(proxy) as connection:
        assert read_until_closed(connection) == b""


@on_postgres
def test_slow_work_on_a_request_that_has_arrived_is_not_cut(
    proxy: LiveServer, migrated: str
) -> None:
    with httpx.Client(base_url=proxy.url) as http:
        headers = sign_up(http, "patient@example.com").headers
        with ThreadPoolExecutor(1) as pool, locked_table(migrated, "todos") as lock:
            post = pool.submit(
                http.post, f"{API}/todos", json={"title": "Worth the wait"}, headers=headers
            )
            lock.wait_for_waiters(1)  # the request has arrived and waits inside the app
            time.sleep(2)  # twice the proxy's read timeouts
        assert post.result().status_code == 201
