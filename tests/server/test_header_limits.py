"""A request head is bounded in the deployment: nginx (deploy/nginx.conf) refuses a head past
its buffers with 431 before the service sees a byte of it, and the service refuses more than
MAX_HEADERS fields (at its default here) with 431. uvicorn itself bounds neither: the service
is exposed only through the proxy."""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.live_server import LiveServer
from tests.server.conftest import connect, exchange, proxied
from tests.serving import Serve
from tests.support import API

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(serve: Serve) -> Iterator[LiveServer]:
    with serve() as live:
        yield live


@pytest.fixture(scope="module")
def proxy(server: LiveServer) -> Iterator[LiveServer]:
    with proxied(server) as nginx:
        yield nginx


def group_pids(server: LiveServer) -> list[int]:
    """The server's process and every process in its group (nginx's master and workers)."""
    group = server.process.pid
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == group:  # pgrp
            pids.append(int(stat.parent.name))
    return pids


def reset_peak_memory(server: LiveServer) -> None:
    """Restart the kernel's peak-RSS count (VmHWM) from the current RSS (proc(5))."""
    for pid in group_pids(server):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_memory_kib(server: LiveServer) -> int:
    """The largest peak RSS among the server's processes."""
    peaks = [0]
    for pid in group_pids(server):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]))
    return max(peaks)


def head(*lines: str, path: str = "/health") -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: test", *lines, "", ""]).encode()


def refused_431(answer: bytes) -> dict[str, str]:
    """The 431 problem's headers (lower-cased names), asserting its status line and body."""
    status_line, _, rest = answer.partition(b"\r\n")
    # nginx writes no reason phrase for 431 (it has none for it); a client reads the code only.
    assert status_line.startswith(b"HTTP/1.1 431 "), answer[:200]
    head_lines, _, body = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in head_lines.decode().split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 431
    assert problem["code"] == "headers_too_large"
    return headers


def test_a_2_mb_header_is_431_from_the_proxy_and_closed(proxy: LiveServer) -> None:
    with connect(proxy) as connection:
        headers = refused_431(exchange(connection, head(f"Cookie: {'a' * 2 * MiB}")))
    assert headers["connection"] == "close"
    assert headers["server"] == "nginx"  # no version (server_tokens off)


def test_a_thousand_headers_are_431(proxy: LiveServer) -> None:
    lines = [f"X{n}: 1" for n in range(1000)]  # 9 KB: under the proxy's size bound
    with connect(proxy) as connection:
        refused_431(exchange(connection, head(*lines, "Connection: close")))


def test_a_huge_header_grows_neither_the_proxy_nor_the_service(
    server: LiveServer, proxy: LiveServer
) -> None:
    with httpx.Client(base_url=proxy.url) as http:  # warm: first-request allocations
        assert http.get("/health").status_code == 200
    for process in (server, proxy):
        reset_peak_memory(process)
    before = {process.name: peak_memory_kib(process) for process in (server, proxy)}
    with connect(proxy) as connection:
        answer = exchange(connection, head(f"Cookie: {'a' * 64 * MiB}"))
    refused_431(answer)
    for process in (server, proxy):
        grown_mib = (peak_memory_kib(process) - before[process.name]) / 1024
        assert grown_mib < 16, f"{process.name}: peak RSS grew {grown_mib:.0f} MiB for 64 MiB"


def test_ordinary_requests_pass_the_bounds(proxy: LiveServer) -> None:
    with httpx.Client(base_url=proxy.url) as http:
        big_but_fine = {"Cookie": "a" * 12_000, **{f"X-Filler-{n}": str(n) for n in range(60)}}
        assert http.get("/health", headers=big_but_fine).status_code == 200
        # A body larger than the head bound, sent in the same write as the head.
        body = {"email": "someone@example.com", "password": "p" * 100_000}
        assert http.post(f"{API}/auth/login", json=body).status_code == 422
        assert http.get("/health").status_code == 200  # the same connection, kept alive
