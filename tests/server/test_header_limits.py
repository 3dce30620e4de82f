"""A request head is bounded (MAX_HEADER_BYTES, MAX_HEADERS, at their defaults here): past
the bounds it is a 431 and the connection closes, before the server buffers the rest."""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.live_server import LiveServer
from tests.server.conftest import connect, exchange
from tests.serving import Serve
from tests.support import API

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(serve: Serve) -> Iterator[LiveServer]:
    with serve() as live:
        yield live


def reset_peak_memory(server: LiveServer) -> None:
    """Restart the kernel's peak-RSS count (VmHWM) from the current RSS (proc(5))."""
    Path(f"/proc/{server.process.pid}/clear_refs").write_text("5")


def peak_memory_kib(server: LiveServer) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def head(*lines: str, path: str = "/health") -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: test", *lines, "", ""]).encode()


def assert_refused_431(answer: bytes) -> None:
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large", answer[:200]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in headers
    assert b"connection: close" in headers
    problem = json.loads(body)
    assert problem["status"] == 431
    assert problem["code"] == "headers_too_large"


def test_a_2_mb_header_is_431(server: LiveServer) -> None:
    with connect(server) as connection:
        assert_refused_431(exchange(connection, head(f"Cookie: {'a' * 2 * MiB}")))


def test_a_thousand_headers_are_431(server: LiveServer) -> None:
    lines = [f"X{n}: 1" for n in range(1000)]  # 9 KB: under the size bound
    with connect(server) as connection:
        assert_refused_431(exchange(connection, head(*lines)))


def test_a_huge_header_does_not_grow_the_server(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as http:  # warm: first-request allocations
        assert http.get("/health").status_code == 200
    reset_peak_memory(server)
    before = peak_memory_kib(server)
    with connect(server) as connection:
        answer = exchange(connection, head(f"Cookie: {'a' * 64 * MiB}"))
    grown_mib = (peak_memory_kib(server) - before) / 1024
    assert grown_mib < 16, f"peak RSS grew {grown_mib:.0f} MiB for one 64 MiB header"
    assert_refused_431(answer)


def test_ordinary_requests_pass_the_bounds(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        big_but_fine = {"Cookie": "a" * 12_000, **{f"X-Filler-{n}": str(n) for n in range(60)}}
        assert http.get("/health", headers=big_but_fine).status_code == 200
        # A body larger than the head bound, sent in the same write as the head.
        body = {"email": "someone@example.com", "password": "p" * 100_000}
        assert http.post(f"{API}/auth/login", json=body).status_code == 422
        assert http.get("/health").status_code == 200  # the same connection, kept alive
