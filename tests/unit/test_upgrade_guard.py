"""The upgrade guard: each public feature of a library that the app relies on, checked on the
installed version, failing with a message that names the mechanism. pyproject.toml bounds
these libraries; when a bound is raised, this file says what to look at.

Behaviour the app's own tests already pin end to end (problem+json, rate limits, tracing
spans) is not repeated here: these are the library features those depend on, stated at the
library's surface, so a failure points at the library rather than at the app."""

import inspect
import logging
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from httpx import ASGITransport, AsyncClient
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.conftest import ROOT


class RecordRoute:
    """Outermost middleware: the `scope["route"]` each request left behind."""

    def __init__(self, app: ASGIApp, *, seen: list[Any]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.seen.append(scope.get("route"))


def _app_with_a_route() -> tuple[FastAPI, list[Any]]:
    """An app serving a router's route (built with its full prefix) from `app.routes`, as
    app/main.py does, and the `scope["route"]` each request saw."""
    router = APIRouter(prefix="/api/v1/things")

    @router.get("/{thing_id}", openapi_extra={"security": [{"HTTPBearer": []}]})
    async def get_thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    app = FastAPI()
    app.router.routes.extend(router.routes)
    seen: list[Any] = []
    app.add_middleware(RecordRoute, seen=seen)
    return app, seen


async def test_the_router_names_the_route_in_the_scope() -> None:
    """app/presentation/routes.py labels metrics, builds a 405's Allow and locates invalid
    fields from `scope["route"]`; app/main.py serves routes from `app.routes`."""
    app, seen = _app_with_a_route()
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/api/v1/things/7")).json() == {"id": 7}, (
            "FastAPI no longer serves a route appended to app.routes (app/main.py add_routes)"
        )
        assert (await client.put("/api/v1/things/7")).status_code == 405
    served, refused = seen
    for route in (served, refused):
        assert isinstance(route, APIRoute), (
            'Starlette/FastAPI no longer put the matched route in scope["route"] (for a full '
            "match and for a 405's partial one): metrics labels and Allow headers rely on it"
        )
        assert route.path_format == "/api/v1/things/{thing_id}", (
            "APIRoute.path_format is no longer the full template: metrics labels would change"
        )
        assert route.methods == {"GET"}, "APIRoute.methods changed: a 405's Allow header"
        assert route.include_in_schema, "APIRoute.include_in_schema is gone: metrics labels"


def test_openapi_extra_sets_an_operations_security() -> None:
    """schemas.common.TOKEN_REQUIRED declares each authenticated route's security this way."""
    app, _ = _app_with_a_route()
    operation = app.openapi()["paths"]["/api/v1/things/{thing_id}"]["get"]
    assert operation["security"] == [{"HTTPBearer": []}], (
        "FastAPI no longer merges a route's openapi_extra into its operation: the document "
        "would lose every route's security requirement"
    )
    assert [p["in"] for p in operation["parameters"]] == ["path"], (
        "the OpenAPI operation no longer lists parameters with their location: "
        "errors.py names an invalid field's location from it"
    )


def test_fastapi_takes_the_native_telemetry_configuration() -> None:
    """app/main.py turns FastAPI's OpenTelemetry on or off with `telemetry=` (app/tracing)."""
    from fastapi.telemetry import TelemetryConfig

    assert "telemetry" in inspect.signature(FastAPI).parameters, (
        "FastAPI(telemetry=...) is gone: app/tracing's server spans cannot be configured"
    )
    assert {"tracing", "metrics", "logs", "tracer_provider", "auto_configure"} <= set(
        TelemetryConfig.__annotations__
    ), "fastapi.telemetry.TelemetryConfig changed its keys (app/tracing/__init__.py)"


def test_uvicorn_takes_the_options_scripts_serve_passes() -> None:
    import uvicorn
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    options = inspect.signature(uvicorn.Config).parameters
    for name in ("factory", "access_log", "http", "ws", "proxy_headers"):
        assert name in options, f"uvicorn.Config has no {name!r}: scripts/serve passes it"
    assert "timeout_graceful_shutdown" in options, (
        "uvicorn.Config has no timeout_graceful_shutdown: graceful shutdown (scripts/serve)"
    )
    assert "trusted_hosts" in inspect.signature(ProxyHeadersMiddleware).parameters, (
        "uvicorn's ProxyHeadersMiddleware no longer takes trusted_hosts: TRUSTED_PROXIES"
    )


def test_the_tracing_sdk_reads_its_sampler_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """app/tracing/sdk.py wraps the sampler of a provider given none: the SDK's own reading of
    OTEL_TRACES_SAMPLER, through its public `TracerProvider.sampler`."""
    from opentelemetry.sdk.trace import TracerProvider, sampling

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    provider = TracerProvider(shutdown_on_exit=False)
    assert provider.sampler is sampling.ALWAYS_OFF, (
        "TracerProvider given no sampler no longer reads OTEL_TRACES_SAMPLER into .sampler"
    )
    assert {"decision", "attributes", "trace_state"} <= set(
        inspect.signature(sampling.SamplingResult).parameters
    ), "opentelemetry's SamplingResult changed: WithoutQuery (app/tracing/sdk.py) builds one"
    from opentelemetry.semconv.attributes.url_attributes import URL_QUERY

    assert URL_QUERY == "url.query", "the query attribute WithoutQuery drops was renamed"


def test_the_offline_docs_assets_are_where_docs_py_looks() -> None:
    from app.presentation.docs import ASSETS, REDOC_CDN_LOGO

    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png", "redoc.standalone.js"):
        assert (Path(ASSETS) / name).is_file(), f"fastapi-offline no longer ships static/{name}"
    assert REDOC_CDN_LOGO in (Path(ASSETS) / "redoc.standalone.js").read_text("utf-8"), (
        "ReDoc's CDN logo address changed: docs.py's offline copy would fetch it again"
    )


def test_pydantic_core_writes_json_with_a_fallback() -> None:
    from pydantic_core import to_json

    assert to_json({"x": object()}, fallback=lambda _: "y") == b'{"x":"y"}', (
        "pydantic_core.to_json(fallback=) changed: app/logs.py writes every log line with it"
    )


def test_the_rate_limiters_storage_api() -> None:
    from limits import RateLimitItem, parse
    from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage

    assert isinstance(parse("5/minute"), RateLimitItem), "limits.parse changed"
    for storage in (MemoryStorage, RedisStorage, RedisClusterStorage):
        assert inspect.iscoroutinefunction(storage.incr), (
            f"limits' async {storage.__name__}.incr is no longer a coroutine (rate_limit.py)"
        )


def test_redis_cluster_pipelines_take_eval() -> None:
    from redis.asyncio import RedisCluster

    pipe = RedisCluster(host="127.0.0.1", port=1).pipeline(transaction=False)  # no connection yet
    pipe.eval("return 1", 1, "{user}:key")  # raises if redis-py blocks EVAL in cluster pipelines
    assert len(pipe) == 1, (
        "redis-py's cluster pipeline no longer queues EVAL: app/infrastructure/redis.py sends "
        "the access checks made together as one pipeline of EVALs"
    )


def test_logging_has_the_switches_logs_py_turns_off() -> None:
    for name in ("logThreads", "logProcesses", "logMultiprocessing"):
        assert hasattr(logging, name), f"logging.{name} is gone (app/logs.py)"


def test_the_libraries_the_app_binds_to_have_upper_bounds() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"][
        "dependencies"
    ]
    bounds = {re.split(r"[\[<>=!~]", spec, maxsplit=1)[0]: spec for spec in dependencies}
    for name in ("fastapi", "starlette", "uvicorn", "sqlalchemy", "redis", "limits"):
        assert "<" in bounds.get(name, ""), f"{name} has no upper bound in pyproject.toml"


def test_fastapi_formats_a_server_sent_event() -> None:
    """app/presentation/routers/events.py writes each event with FastAPI's own encoder (a
    route declared with EventSourceResponse would cost every open stream two tasks more)."""
    from fastapi.sse import format_sse_event

    assert format_sse_event(event="todo.created", id="p1", data_str='{"a":1}') == (
        b'event: todo.created\ndata: {"a":1}\nid: p1\n\n'
    ), "fastapi.sse.format_sse_event changed: the event stream's wire format (events.py)"


def test_psycopg_pipelines_and_unprepared_statements() -> None:
    """uow.py sends a write's statements and its transaction's BEGIN and COMMIT in one round
    trip (pipeline mode); driver_reads.py keeps a list from being prepared (prepare=False)."""
    import psycopg

    assert hasattr(psycopg.AsyncConnection, "pipeline"), (
        "psycopg's AsyncConnection.pipeline is gone (uow.py)"
    )
    assert psycopg.Pipeline.is_supported(), (
        "this psycopg's libpq has no pipeline mode: uow.py's round trips (libpq 14 or later)"
    )
    assert "prepare" in inspect.signature(psycopg.AsyncCursor.execute).parameters, (
        "psycopg's AsyncCursor.execute takes no `prepare`: lists would be prepared and may "
        "get a generic plan (driver_reads.py, repositories/base.py planned_per_run)"
    )
