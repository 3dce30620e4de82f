"""A request head is bounded (MAX_HEADER_BYTES, MAX_HEADERS, at their defaults here): past
the bounds it is a 431 and the connection closes, before the server buffers the rest."""

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.server.conftest import LiveServer, Serve, exchange

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(serve: Serve) -> Iterator[LiveServer]:
    with serve() as live:
        yield live


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
    with server.connect() as connection:
        assert_refused_431(exchange(connection, head(f"Cookie: {'a' * 2 * MiB}")))


def test_a_thousand_headers_are_431(server: LiveServer) -> None:
    lines = [f"X{n}: 1" for n in range(1000)]  # 9 KB: under the size bound
    with server.connect() as connection:
        assert_refused_431(exchange(connection, head(*lines)))


def test_a_huge_header_does_not_grow_the_server(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url) as http:  # warm: first-request allocations
        assert http.get("/health").status_code == 200
    server.reset_peak_memory()
    before = server.peak_memory_kib()
    with server.connect() as connection:
        answer = exchange(connection, head(f"Cookie: {'a' * 64 * MiB}"))
    grown_mib = (server.peak_memory_kib() - before) / 1024
    assert grown_mib < 16, f"peak RSS grew {grown_mib:.0f} MiB for one 64 MiB header"
    assert_refused_431(answer)


def test_ordinary_requests_pass_the_bounds(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url) as http:
        big_but_fine = {"Cookie": "a" * 12_000, **{f"X-Filler-{n}": str(n) for n in range(60)}}
        assert http.get("/health", headers=big_but_fine).status_code == 200
        # A body larger than the head bound, sent in the same write as the head.
        body = {"email": "someone@example.com", "password": "p" * 100_000}
        assert http.post("/api/v1/auth/login", json=body).status_code == 422
        assert http.get("/health").status_code == 200  # the same connection, kept alive
