"""The served edge over real sockets: no response names the server software, Host is required
(once) in HTTP/1.1, HEAD is answered, and no redirect is built from Host."""

from collections.abc import Iterator

import httpx
import pytest

from harness.live_server import LiveServer
from tests.server.conftest import connect, exchange
from tests.serving import Serve
from tests.support import API


@pytest.fixture(scope="module")
def server(serve: Serve) -> Iterator[LiveServer]:
    with serve() as live:
        yield live


def raw(server: LiveServer, *lines: str, method: str = "GET", path: str = "/health") -> bytes:
    """One request with exactly these header lines, answered and closed."""
    version = "HTTP/1.0" if "HTTP/1.0" in lines else "HTTP/1.1"
    headers = [line for line in lines if line != "HTTP/1.0"]
    request = "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close", "", ""])
    with connect(server) as connection:
        return exchange(connection, request.encode())


def status_and_headers(answer: bytes) -> tuple[bytes, bytes, bytes]:
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    return status_line, headers.lower(), body


def test_no_response_names_the_server_software(server: LiveServer) -> None:
    for path in ("/health", f"{API}/todos", "/nothing-here"):
        response = httpx.get(server.url + path)
        assert "server" not in response.headers, (path, response.headers["server"])
    # Nor an answer uvicorn gives before the application sees the request.
    malformed = raw(server, "Host: test", "Bad Header Line")
    assert malformed.startswith(b"HTTP/1.1 400")
    assert b"\r\nserver:" not in status_and_headers(malformed)[1]


def test_a_request_without_host_or_with_two_is_400(server: LiveServer) -> None:
    for lines in ([], ["Host: test", "Host: evil.example"]):
        status_line, headers, body = status_and_headers(raw(server, *lines))
        assert status_line == b"HTTP/1.1 400 Bad Request", lines
        assert b"content-type: application/problem+json" in headers
        assert b'"invalid_request"' in body


def test_an_http_1_0_request_without_host_is_served(server: LiveServer) -> None:
    status_line, _, body = status_and_headers(raw(server, "HTTP/1.0"))
    assert status_line == b"HTTP/1.1 200 OK"
    assert body == b'{"status":"ok"}'


def test_head_is_answered_with_gets_headers_and_no_body(server: LiveServer) -> None:
    status_line, headers, body = status_and_headers(raw(server, "Host: test", method="HEAD"))
    assert status_line == b"HTTP/1.1 200 OK"
    assert b"content-length: 15" in headers  # GET's body, {"status":"ok"}
    assert body == b""


def test_a_trailing_slash_is_never_redirected_to_the_host(server: LiveServer) -> None:
    answer = raw(server, "Host: evil.example", path=f"{API}/todos/")
    status_line, headers, _ = status_and_headers(answer)
    assert status_line == b"HTTP/1.1 404 Not Found"
    assert b"evil.example" not in answer
    assert b"location:" not in headers
