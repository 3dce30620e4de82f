"""What the edge does before any route: the Host header (never trusted to build a URL, refused
when missing or doubled), the number of header fields bounded, HEAD answered wherever GET is,
and no redirect on a trailing slash."""

from typing import Any

import pytest
from httpx import AsyncClient

from tests.support import API, MakeUser, assert_problem

Headers = list[tuple[bytes, bytes]]


async def asgi_request(
    app: Any, method: str, path: str, headers: Headers, *, http_version: str = "1.1"
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request through the ASGI app with exactly these headers (an HTTP client would add
    or merge a Host header of its own): its status, headers and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": http_version,
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return start["status"], dict(start["headers"]), body


async def test_an_http_1_1_request_without_host_is_a_400(app: Any) -> None:
    status, headers, body = await asgi_request(app, "GET", "/health", [])
    assert status == 400
    assert headers[b"content-type"] == b"application/problem+json"
    assert b'"invalid_request"' in body
    assert b"x-request-id" in headers


async def test_an_http_1_0_request_without_host_is_served(app: Any) -> None:
    status, _, body = await asgi_request(app, "GET", "/health", [], http_version="1.0")
    assert (status, body) == (200, b'{"status":"ok"}')


@pytest.mark.parametrize("http_version", ["1.1", "1.0"])
async def test_two_host_headers_are_a_400(app: Any, http_version: str) -> None:
    hosts = [(b"host", b"api.example"), (b"host", b"evil.example")]
    status, _, body = await asgi_request(app, "GET", "/health", hosts, http_version=http_version)
    assert status == 400
    assert b'"invalid_request"' in body


def fields(count: int) -> Headers:
    """A Host header and filler fields: `count` in all."""
    return [(b"host", b"test"), *((f"x-{n}".encode(), b"1") for n in range(count - 1))]


async def test_more_header_fields_than_max_headers_are_a_431(app: Any) -> None:
    status, headers, body = await asgi_request(app, "GET", "/health", fields(101))  # default 100
    assert status == 431
    assert headers[b"content-type"] == b"application/problem+json"
    assert b'"headers_too_large"' in body
    assert b"x-request-id" in headers


async def test_max_headers_fields_are_served(app: Any) -> None:
    status, _, body = await asgi_request(app, "GET", "/health", fields(100))
    assert (status, body) == (200, b'{"status":"ok"}')


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", f"{API}/todos/"), ("POST", f"{API}/auth/login/"), ("GET", "/health/")],
)
async def test_a_trailing_slash_is_a_404_never_a_redirect_built_from_host(
    client: AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, headers={"Host": "evil.example"})
    body = assert_problem(response, 404, "not_found")
    assert "location" not in response.headers
    assert "evil.example" not in response.text
    assert path.rstrip("/") in body["detail"]  # the path that is served, as a path


async def test_a_created_todo_is_located_by_path_whatever_the_host(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    response = await client.post(
        f"{API}/todos", json={"title": "x"}, headers={**ada.headers, "Host": "evil.example"}
    )
    assert response.status_code == 201
    assert response.headers["location"] == f"{API}/todos/{response.json()['id']}"


# Headers a second request may answer differently: when it was made, and which one it was.
PER_REQUEST = {"date", "x-request-id"}


@pytest.mark.parametrize("path", ["/health", "/health/ready", f"{API}/todos", f"{API}/users/me"])
async def test_head_is_answered_like_get_without_a_body(
    client: AsyncClient, make_user: MakeUser, path: str
) -> None:
    ada = await make_user()
    got = await client.get(path, headers=ada.headers)
    head = await client.head(path, headers=ada.headers)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    per_get = {k: v for k, v in got.headers.items() if k not in PER_REQUEST}
    assert {k: v for k, v in head.headers.items() if k not in PER_REQUEST} == per_get
    assert head.headers["content-length"] == str(len(got.content))


async def test_head_of_a_missing_todo_is_the_same_404_without_a_body(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    path = f"{API}/todos/00000000-0000-0000-0000-000000000000"
    head = await client.head(path, headers=ada.headers)
    assert head.status_code == 404
    assert head.headers["content-type"] == "application/problem+json"
    assert head.content == b""


async def test_head_where_there_is_no_get_is_405_and_allow_names_head_beside_get(
    client: AsyncClient,
) -> None:
    refused = await client.head(f"{API}/auth/login")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"
    wrong_method = await client.put(f"{API}/todos")
    assert wrong_method.headers["allow"] == "GET, HEAD, POST"
