"""MAX_CONNECTIONS (read by scripts/serve) bounds what one worker holds: while that many
connections are open to it, the asking one included, a request is answered 503 at once and
its connection closed, instead of the worker taking on connections until its descriptors run
out."""

import os
import subprocess
import time
from collections.abc import Iterator
from http.client import HTTPConnection

import pytest

from harness import live_server
from harness.live_server import LiveServer
from tests.server.conftest import PATIENCE_SECONDS
from tests.serving import Serve

MAX_CONNECTIONS = 3


@pytest.fixture(scope="module")
def server(serve: Serve) -> Iterator[LiveServer]:
    with serve(MAX_CONNECTIONS=str(MAX_CONNECTIONS)) as live:
        yield live


def health(connection: HTTPConnection) -> tuple[int, str | None]:
    connection.request("GET", "/health")
    response = connection.getresponse()
    response.read()
    return response.status, response.getheader("connection")


def test_a_request_past_max_connections_is_503_and_its_connection_closed(
    server: LiveServer,
) -> None:
    kept = [
        HTTPConnection(server.host, server.port, timeout=PATIENCE_SECONDS)
        for _ in range(MAX_CONNECTIONS - 1)
    ]
    try:
        # Served, and kept alive: each stays open, counted.
        assert [health(connection)[0] for connection in kept] == [200] * len(kept)
        one_too_many = HTTPConnection(server.host, server.port, timeout=PATIENCE_SECONDS)
        assert health(one_too_many) == (503, "close")
        one_too_many.close()
    finally:
        for connection in kept:
            connection.close()


def test_closed_connections_make_room_again(server: LiveServer) -> None:
    kept = [
        HTTPConnection(server.host, server.port, timeout=PATIENCE_SECONDS)
        for _ in range(MAX_CONNECTIONS - 1)
    ]
    for connection in kept:
        health(connection)
        connection.close()
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:  # the server sees the closes a moment after they are made
        fresh = HTTPConnection(server.host, server.port, timeout=PATIENCE_SECONDS)
        status, _ = health(fresh)
        fresh.close()
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200


@pytest.mark.parametrize("value", ["none", "0", "-5", "10k"])
def test_a_max_connections_that_is_not_a_positive_integer_stops_the_start(value: str) -> None:
    done = subprocess.run(  # noqa: S603 - our own script
        [*live_server.SERVE],
        env={**os.environ, "MAX_CONNECTIONS": value},
        capture_output=True,
        text=True,
        timeout=PATIENCE_SECONDS,
        check=False,
    )
    assert done.returncode == 2
    assert "Invalid configuration: MAX_CONNECTIONS" in done.stderr
