"""A response leaves the server in one write, head and body together (app/server.py): uvicorn
alone writes them apart, two system calls and two TCP segments per response."""

from collections.abc import Iterator
from pathlib import Path
from socket import socket

import pytest

from harness.live_server import LiveServer
from tests.server.conftest import connect
from tests.serving import Serve

REQUESTS = 50


@pytest.fixture(scope="module")
def server(serve: Serve) -> Iterator[LiveServer]:
    with serve() as live:  # LOG_LEVEL=WARNING: no access line is written either
        yield live


def write_calls(server: LiveServer) -> int:
    """The server's write system calls so far (`syscw`, proc(5))."""
    for line in Path(f"/proc/{server.process.pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/<pid>/io")


def read_response(connection: socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def test_each_response_is_one_write(server: LiveServer) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
    with connect(server) as connection:
        connection.sendall(request)
        assert read_response(connection).startswith(b"HTTP/1.1 200 OK")
        before = write_calls(server)
        for _ in range(REQUESTS):
            connection.sendall(request)
            answer = read_response(connection)
            assert answer.endswith(b'{"status":"ok"}')
        written = write_calls(server) - before
    # One per response, and a little room for anything else the process writes meanwhile;
    # head and body apart would be 2 * REQUESTS.
    assert REQUESTS <= written < REQUESTS * 1.2
