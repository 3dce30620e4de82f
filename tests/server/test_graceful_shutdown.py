"""SIGTERM: the server stops accepting, lets the requests in flight finish, and exits; a
request still stuck after GRACEFUL_SHUTDOWN_SECONDS is cut, and its transaction with it."""

import json
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from harness.live_server import LiveServer
from tests.conftest import on_postgres
from tests.server.conftest import (
    PATIENCE_SECONDS,
    connect,
    locked_table,
    read_until_closed,
    todo_titles,
)
from tests.serving import Serve
from tests.support import API, sign_up

IN_FLIGHT = 5


def start_post(server: LiveServer, authorization: str, body: bytes) -> socket.socket:
    """A POST /todos whose body waits on our side until the application asks for it
    (Expect: 100-continue): from that moment it is in flight, inside the application."""
    connection = connect(server)
    connection.sendall(
        f"POST {API}/todos HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n".encode()
        + f"Authorization: {authorization}\r\n".encode()
        + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    assert connection.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    return connection


def wait_until_not_listening(server: LiveServer) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        try:
            connect(server).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.05)
    raise AssertionError("the server still accepts connections after SIGTERM")


def test_sigterm_lets_in_flight_requests_finish(serve: Serve, migrated: str) -> None:
    with serve() as server:
        with httpx.Client(base_url=server.url) as http:
            authorization = sign_up(http, "in-flight@example.com").headers["Authorization"]
        bodies = [json.dumps({"title": f"in flight {n}"}).encode() for n in range(IN_FLIGHT)]
        connections = [start_post(server, authorization, body) for body in bodies]

        server.process.send_signal(signal.SIGTERM)
        wait_until_not_listening(server)
        answers = []
        for connection, body in zip(connections, bodies, strict=True):
            connection.sendall(body)
            answers.append(read_until_closed(connection))
            connection.close()
        exit_code = server.process.wait(PATIENCE_SECONDS)

    assert [answer.partition(b"\r\n")[0] for answer in answers] == [
        b"HTTP/1.1 201 Created"
    ] * IN_FLIGHT
    assert exit_code in (0, -signal.SIGTERM)
    assert todo_titles(migrated) == [f"in flight {n}" for n in range(IN_FLIGHT)]
    assert "Traceback" not in server.log_text()


@on_postgres
def test_a_request_stuck_past_the_graceful_timeout_is_cut_and_writes_nothing(
    serve: Serve, migrated: str
) -> None:
    with (
        serve(GRACEFUL_SHUTDOWN_SECONDS="1") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        headers = sign_up(http, "stuck@example.com").headers

        def post(n: int) -> int | str:
            try:
                body = {"title": f"stuck {n}"}
                return http.post(f"{API}/todos", json=body, headers=headers).status_code
            except httpx.TransportError as exc:
                return type(exc).__name__

        with ThreadPoolExecutor(IN_FLIGHT) as pool, locked_table(migrated, "todos") as lock:
            posts = [pool.submit(post, n) for n in range(IN_FLIGHT)]
            lock.wait_for_waiters(IN_FLIGHT)  # each inside its transaction, at its INSERT
            # The lock is still held: the server must give up on them and exit by itself.
            exit_code = server.stop()
            outcomes = [future.result() for future in posts]

    assert exit_code in (0, -signal.SIGTERM)
    assert 201 not in outcomes, outcomes  # each one failed, visibly, rather than half-done
    # Their connections are gone, so nothing can ever commit what they began.
    assert todo_titles(migrated) == []
