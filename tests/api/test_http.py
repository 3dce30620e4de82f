"""Cross-cutting HTTP behaviour: problem+json everywhere, request ids, headers, limits,
health, metrics, docs, faults."""

import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from app.config import Settings
from app.main import create_app
from tests.support import API, PASSWORD, MakeUser, assert_problem


@pytest.fixture
async def app_with(settings: Settings) -> AsyncIterator[Any]:
    """Build an app with some settings changed, run its lifespan, hand back a client."""
    async with AsyncExitStack() as running:

        async def build(**changes: Any) -> AsyncClient:
            app = create_app(settings.model_copy(update=changes))
            await running.enter_async_context(app.router.lifespan_context(app))
            transport = ASGITransport(app=app, raise_app_exceptions=False)
            return AsyncClient(transport=transport, base_url="http://test")

        yield build


async def test_unknown_route_and_wrong_method_are_problems(client: AsyncClient) -> None:
    assert_problem(await client.get(f"{API}/nothing-here"), 404, "not_found")
    response = await client.put(f"{API}/todos")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]
    assert "POST" in response.headers["allow"]


async def test_request_id_is_echoed_when_sane_and_replaced_when_not(client: AsyncClient) -> None:
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    replaced = await client.get("/health", headers={"X-Request-ID": "bad id\twith <junk>"})
    assert replaced.headers["x-request-id"] not in ("", "bad id\twith <junk>")
    fresh = await client.get("/health")
    assert len(fresh.headers["x-request-id"]) == 32


def assert_security_headers(response: Any) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_security_headers_are_on_every_response(client: AsyncClient) -> None:
    for path in ("/health", f"{API}/todos"):
        assert_security_headers(await client.get(path))


async def test_bodies_over_one_mebibyte_are_413_before_parsing(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    big = b'{"title": "' + b"x" * (1024 * 1024) + b'"}'
    declared = await client.post(
        f"{API}/todos", content=big, headers={**ada.headers, "Content-Type": "application/json"}
    )
    assert_problem(declared, 413, "payload_too_large")
    assert_security_headers(declared)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 65536

    streamed = await client.post(
        f"{API}/todos",
        content=chunks(),
        headers={**ada.headers, "Content-Type": "application/json"},
    )
    assert_problem(streamed, 413, "payload_too_large")
    assert_security_headers(streamed)
    assert (await client.get(f"{API}/todos", headers=ada.headers)).json()["items"] == []


async def test_malformed_json_is_400_invalid_json(client: AsyncClient, make_user: MakeUser) -> None:
    ada = await make_user()
    response = await client.post(
        f"{API}/todos",
        content=b'{"title": ',
        headers={**ada.headers, "Content-Type": "application/json"},
    )
    assert "line 1, column 11" in assert_problem(response, 400, "invalid_json")["detail"]


async def test_unexpected_errors_are_500_without_internals(
    app: FastAPI, client: AsyncClient
) -> None:
    async def boom() -> None:
        raise RuntimeError("SELECT secret FROM internals")

    app.add_api_route("/boom", boom)
    response = await client.get("/boom")
    body = assert_problem(response, 500, "internal_error")
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert body["detail"] == "An unexpected error occurred."
    # Answered inside the edge middleware, not by Starlette's last resort outside it.
    assert_security_headers(response)


async def test_two_authorization_headers_are_a_400_not_first_one_wins(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    twice = [("Authorization", ada.headers["Authorization"])] * 2
    both = [("Authorization", ada.headers["Authorization"]), ("Authorization", "Bearer x")]
    for headers in (twice, both, list(reversed(both))):
        for method, path in [("GET", f"{API}/todos"), ("GET", f"{API}/users/me")]:
            response = await client.request(method, path, headers=headers)
            body = assert_problem(response, 400, "invalid_request")
            assert "one Authorization header" in body["detail"]
    logout = await client.post(
        f"{API}/auth/logout",
        headers=[("Authorization", bob.headers["Authorization"]), ("Authorization", "Bearer x")],
    )
    assert_problem(logout, 400, "invalid_request")
    # Nothing happened: Bob's token still works.
    assert (await client.get(f"{API}/users/me", headers=bob.headers)).status_code == 200


async def test_token_responses_are_never_stored_by_any_cache(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    responses = [
        await client.post(f"{API}/auth/login", json={"email": "ada@x.io", "password": PASSWORD}),
        await client.post(f"{API}/auth/token", data={"username": "ada@x.io", "password": PASSWORD}),
        await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token}),
        await client.post(f"{API}/auth/login", json={"email": "ada@x.io", "password": "wrong!!"}),
    ]
    assert [response.status_code for response in responses] == [200, 200, 200, 401]
    for response in responses:
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"


async def test_authenticated_responses_are_private_and_revalidated_by_etag(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    created = await client.post(f"{API}/todos", json={"title": "t"}, headers=ada.headers)
    path = f"{API}/todos/{created.json()['id']}"
    fetched = await client.get(path, headers=ada.headers)
    unchanged = await client.get(
        path, headers={**ada.headers, "If-None-Match": fetched.headers["etag"]}
    )
    assert unchanged.status_code == 304
    listed = await client.get(f"{API}/todos", headers=ada.headers)
    me = await client.get(f"{API}/users/me", headers=ada.headers)
    for response in (created, fetched, unchanged, listed, me):
        assert response.headers["cache-control"] == "private, no-cache"
        assert "Authorization" in response.headers["vary"].split(", ")
    assert "cache-control" not in (await client.get("/health")).headers


async def test_health_ready_and_metrics(client: AsyncClient, settings: Settings) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    expected = {"database": "ok", **({"redis": "ok"} if settings.redis_url else {})}
    assert ready.json() == {"status": "ok", "checks": expected}
    await client.get(f"{API}/todos/00000000-0000-0000-0000-000000000000")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'route="/api/v1/todos/{todo_id}"' in metrics.text
    assert "http_request_duration_seconds_bucket" in metrics.text
    assert "00000000-0000" not in metrics.text


async def test_liveness_keeps_what_every_route_has(client: AsyncClient) -> None:
    """`/health` is served by a plain route ahead of FastAPI's: it is still documented (once),
    counted under its own label, and a wrong method is a 405 problem naming what it allows."""
    document = (await client.get("/openapi.json")).json()
    assert document["paths"]["/health"]["get"]["operationId"] == "health"
    assert list(document["paths"]["/health"]) == ["get"]
    await client.get("/health")
    refused = await client.post("/health")
    assert_problem(refused, 405, "method_not_allowed")
    assert set(refused.headers["allow"].split(", ")) == {"GET", "HEAD"}
    metrics = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/health",status="200"}' in metrics
    assert 'http_requests_total{method="POST",route="/health",status="405"}' in metrics


METRICS_TOKEN = "scrape-me-0123456789"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


async def test_metrics_need_the_metrics_token_when_one_is_set(app_with: Any) -> None:
    client = await app_with(metrics_token=SecretStr(METRICS_TOKEN))
    assert_problem(await client.get("/metrics"), 401, "not_authenticated")
    wrong = {"Authorization": f"Bearer {METRICS_TOKEN[:-1]}"}
    assert_problem(await client.get("/metrics", headers=wrong), 401, "invalid_token")
    right = await client.get("/metrics", headers=SCRAPER)
    assert right.status_code == 200
    assert "http_requests_total" in right.text


async def test_production_serves_metrics_only_to_the_token(app_with: Any) -> None:
    closed = await app_with(environment="production")
    assert_problem(await closed.get("/metrics", headers=SCRAPER), 404, "not_found")
    scraped = await app_with(environment="production", metrics_token=SecretStr(METRICS_TOKEN))
    assert (await scraped.get("/metrics", headers=SCRAPER)).status_code == 200


async def test_database_down_is_503_and_readiness_names_it(app_with: Any) -> None:
    client = await app_with(database_url="postgresql://nobody@127.0.0.1:1/none")
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "unavailable"
    response = await client.post(
        f"{API}/auth/login", json={"email": "a@x.io", "password": PASSWORD}
    )
    assert_problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"]
    assert "127.0.0.1" not in response.text


async def test_redis_down_is_503_for_token_checks_and_readiness_names_it(
    app_with: Any, make_user: MakeUser, client: AsyncClient
) -> None:
    ada = await make_user()
    broken = await app_with(redis_url="redis://127.0.0.1:1/0")
    ready = await broken.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] == "unavailable"
    assert ready.json()["checks"]["database"] == "ok"
    # Revocation cannot be checked, so the token is not trusted: fail closed.
    response = await broken.get(f"{API}/users/me", headers=ada.headers)
    assert_problem(response, 503, "service_unavailable")


@pytest.mark.parametrize(
    "asset", ["/docs-assets/swagger-ui-bundle.js", "/docs-assets/redoc.standalone.js"]
)
async def test_docs_assets_are_compressed_and_kept_by_browsers(
    client: AsyncClient, asset: str
) -> None:
    plain = await client.get(asset, headers={"Accept-Encoding": "identity"})
    zipped = await client.get(asset, headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == zipped.status_code == 200
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # decompressed by the client
    assert zipped.num_bytes_downloaded < len(plain.content) // 2
    for response in (plain, zipped):
        assert response.headers["cache-control"] == "public, max-age=604800"


async def test_metrics_label_the_docs_by_their_route(client: AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/docs-assets/swagger-ui.css", "/docs-assets/favicon.png"):
        assert (await client.get(path)).status_code == 200
    metrics = (await client.get("/metrics")).text
    for route, count in (("/docs", 1), ("/redoc", 1), ("/docs-assets/{path}", 2)):
        line = f'http_requests_total{{method="GET",route="{route}",status="200"}} {count}.0'
        assert line in metrics, metrics
    assert 'route="unmatched",status="200"' not in metrics


async def test_docs_and_openapi_are_served_offline(client: AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    bundle = await client.get("/docs-assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    redoc = await client.get("/redoc")
    assert "/docs-assets/redoc.standalone.js" in redoc.text
    assert (await client.get("/docs-assets/redoc.standalone.js")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    operations = [op for path in spec["paths"].values() for op in path.values()]
    assert len(operations) >= 21
    assert len({op["operationId"] for op in operations}) == len(operations)


# Hour-long windows: a sliding window crossing its boundary mid-test would forgive a hit.
async def test_rate_limited_login_is_429_with_retry_after(
    app_with: Any, make_user: MakeUser
) -> None:
    client = await app_with(rate_limit_enabled=True, rate_limit_login="3/hour")
    statuses = []
    for _ in range(4):
        response = await client.post(
            f"{API}/auth/login", json={"email": "who@x.io", "password": "wrong password"}
        )
        statuses.append(response.status_code)
        assert response.headers["x-ratelimit-limit"] == "3"
    assert statuses == [401, 401, 401, 429]
    body = assert_problem(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert body["detail"]
    # Another email from the same client has its own budget.
    other = await client.post(
        f"{API}/auth/login", json={"email": "else@x.io", "password": "wrong password"}
    )
    assert other.status_code == 401


async def test_default_limit_headers_and_switch_off(app_with: Any) -> None:
    limited = await app_with(rate_limit_enabled=True, rate_limit_default="2/hour")
    first = await limited.get(f"{API}/todos")
    assert first.headers["x-ratelimit-limit"] == "2"
    assert first.headers["x-ratelimit-remaining"] == "1"
    await limited.get(f"{API}/todos")
    assert_problem(await limited.get(f"{API}/todos"), 429, "rate_limited")
    off = await app_with(rate_limit_enabled=False, rate_limit_default="1/hour")
    for _ in range(3):
        response = await off.get(f"{API}/todos")
        assert response.status_code == 401
        assert "x-ratelimit-limit" not in response.headers


def app_of(client: AsyncClient) -> Any:
    transport = client._transport
    assert isinstance(transport, ASGITransport)
    return transport.app


def from_address(client: AsyncClient, host: str) -> AsyncClient:
    """Another client of the same app, calling from another address (limits count per IP)."""
    transport = ASGITransport(app=app_of(client), raise_app_exceptions=False, client=(host, 50000))
    return AsyncClient(transport=transport, base_url="http://test")


def api_operations(app: Any) -> list[tuple[str, str]]:
    """Every documented /api/v1 operation, path parameters filled in."""
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(API)
        for method in operations
    ]


# Each test below asks for `client`, which empties Redis, so counters start at zero. Every
# window is an hour long: a window that closed mid-test would forgive hits.


async def test_every_api_route_counts_the_default_limit(app_with: Any, client: AsyncClient) -> None:
    limited = await app_with(rate_limit_enabled=True, rate_limit_default="1/hour")
    operations = api_operations(app_of(limited))
    assert len(operations) >= 20
    unlimited = []
    for number, (method, path) in enumerate(operations):
        caller = from_address(limited, f"10.0.0.{number}")  # a budget of its own
        body: dict[str, Any] | None = {} if method in {"POST", "PATCH"} else None
        first = await caller.request(method, path, json=body)
        second = await caller.request(method, path, json=body)
        if first.headers.get("x-ratelimit-limit") != "1" or second.status_code != 429:
            unlimited.append(f"{method} {path}: {first.status_code}, {second.status_code}")
    assert unlimited == []


async def test_the_default_limit_counts_per_user_with_a_valid_token(
    app_with: Any, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    limited = await app_with(rate_limit_enabled=True, rate_limit_default="2/hour")
    for _ in range(2):
        assert (await limited.get(f"{API}/users/me", headers=ada.headers)).status_code == 200
    assert_problem(await limited.get(f"{API}/todos", headers=ada.headers), 429, "rate_limited")
    # Bob calls from the same address, and has his own budget.
    assert (await limited.get(f"{API}/users/me", headers=bob.headers)).status_code == 200
    elsewhere = from_address(limited, "10.0.0.1")
    assert_problem(await elsewhere.get(f"{API}/todos", headers=ada.headers), 429, "rate_limited")


def log_in(client: AsyncClient, route: str, email: str, password: str) -> Any:
    """The JSON login, or the OAuth2 password form: both count the same limits."""
    if route == "login":
        return client.post(f"{API}/auth/login", json={"email": email, "password": password})
    return client.post(f"{API}/auth/token", data={"username": email, "password": password})


@pytest.mark.parametrize("route", ["login", "token"])
async def test_the_login_limit_counts_per_address_and_email_on_login_and_token(
    app_with: Any, make_user: MakeUser, route: str
) -> None:
    await make_user("ada@x.io")
    limited = await app_with(rate_limit_enabled=True, rate_limit_login="2/hour")
    for _ in range(2):
        assert (await log_in(limited, route, "ada@x.io", "wrong password")).status_code == 401
    refused = await log_in(limited, route, "ADA@x.io", PASSWORD)  # the right one, too late
    assert_problem(refused, 429, "rate_limited")
    assert refused.headers["x-ratelimit-limit"] == "2"
    assert (await log_in(limited, route, "bob@x.io", "wrong password")).status_code == 401
    elsewhere = from_address(limited, "10.0.0.1")
    assert (await log_in(elsewhere, route, "ada@x.io", PASSWORD)).status_code == 200


@pytest.mark.parametrize("route", ["login", "token"])
async def test_the_login_limit_counts_look_alike_emails_as_one(
    app_with: Any, make_user: MakeUser, route: str
) -> None:
    await make_user("caf\u00e9@x.io")
    limited = await app_with(rate_limit_enabled=True, rate_limit_login="2/hour")
    for look_alike in ("\uff43af\u00e9@x.io", "CAFE\u0301@x.io"):  # fullwidth c; decomposed
        assert (await log_in(limited, route, look_alike, "wrong password")).status_code == 401
    refused = await log_in(limited, route, "caf\u00e9@x.io", PASSWORD)
    assert_problem(refused, 429, "rate_limited")


@pytest.mark.parametrize("route", ["login", "token"])
async def test_the_login_ip_limit_counts_every_email_on_login_and_token(
    app_with: Any, client: AsyncClient, route: str
) -> None:
    limited = await app_with(rate_limit_enabled=True, rate_limit_login_ip="3/hour")
    other = "token" if route == "login" else "login"
    # One budget for both routes: spending it on the other one counts here too.
    for number, where in enumerate([other, other, route]):
        response = await log_in(limited, where, f"user{number}@x.io", "wrong password")
        assert response.status_code == 401
    refused = await log_in(limited, route, "someone-else@x.io", "wrong password")
    assert_problem(refused, 429, "rate_limited")
    assert refused.headers["x-ratelimit-limit"] == "3"
    elsewhere = from_address(limited, "10.0.0.1")
    assert (await log_in(elsewhere, route, "someone-else@x.io", "x")).status_code == 401


@pytest.mark.parametrize(
    "content_type",
    ["Application/JSON", "APPLICATION/json; charset=utf-8", "application/vnd.todo+json"],
)
async def test_the_login_limit_sees_the_email_whatever_the_json_media_type(
    app_with: Any, make_user: MakeUser, content_type: str
) -> None:
    await make_user("ada@x.io")
    limited = await app_with(rate_limit_enabled=True, rate_limit_login="2/hour")
    for _ in range(2):
        assert (await log_in(limited, "login", "ada@x.io", "wrong password")).status_code == 401
    body = json.dumps({"email": "ada@x.io", "password": PASSWORD})
    refused = await limited.post(
        f"{API}/auth/login", content=body, headers={"Content-Type": content_type}
    )
    assert_problem(refused, 429, "rate_limited")


async def test_the_register_limit_counts_per_address(app_with: Any, client: AsyncClient) -> None:
    limited = await app_with(rate_limit_enabled=True, rate_limit_register="2/hour")

    def register(caller: AsyncClient, email: str) -> Any:
        return caller.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD})

    for number in range(2):
        assert (await register(limited, f"user{number}@x.io")).status_code == 201
    refused = await register(limited, "late@x.io")
    assert_problem(refused, 429, "rate_limited")
    assert refused.headers["x-ratelimit-limit"] == "2"
    assert (await register(from_address(limited, "10.0.0.1"), "late@x.io")).status_code == 201


async def test_the_refresh_limit_counts_per_address(app_with: Any, make_user: MakeUser) -> None:
    ada = await make_user()
    limited = await app_with(rate_limit_enabled=True, rate_limit_refresh="2/hour")

    def refresh(caller: AsyncClient, token: str) -> Any:
        return caller.post(f"{API}/auth/refresh", json={"refresh_token": token})

    for _ in range(2):
        assert (await refresh(limited, "not-a-token")).status_code == 401
    refused = await refresh(limited, ada.refresh_token)
    assert_problem(refused, 429, "rate_limited")
    assert refused.headers["x-ratelimit-limit"] == "2"
    assert (await refresh(from_address(limited, "10.0.0.1"), ada.refresh_token)).status_code == 200


async def test_cors_allows_configured_origins_only(app_with: Any) -> None:
    client = await app_with(cors_origins=["https://app.example.com"])
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = await client.options(
        f"{API}/todos", headers={"Origin": "https://app.example.com", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    refused = await client.options(
        f"{API}/todos", headers={"Origin": "https://evil.example.com", **preflight}
    )
    assert "access-control-allow-origin" not in refused.headers
    simple = await client.get("/health", headers={"Origin": "https://app.example.com"})
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    listed = await client.get(f"{API}/todos", headers={"Origin": "https://app.example.com"})
    assert listed.headers["vary"] == "Origin, Authorization"


@pytest.mark.parametrize(
    ("origin", "method", "headers", "refused"),
    [
        ("https://evil.example.com", "POST", "content-type", "origin"),
        ("https://app.example.com", "PUT", "content-type", "method"),
        ("https://app.example.com", "POST", "x-evil", "headers"),
    ],
)
async def test_a_refused_cors_preflight_is_a_problem_with_the_usual_headers(
    app_with: Any, origin: str, method: str, headers: str, refused: str
) -> None:
    client = await app_with(cors_origins=["https://app.example.com"])
    response = await client.options(
        f"{API}/todos",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )
    body = assert_problem(response, 400, "cors_refused")
    assert body["detail"] == f"Cross-origin request refused: {refused} not allowed."
    assert body["instance"] == f"{API}/todos"
    assert_security_headers(response)
