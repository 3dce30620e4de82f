"""Tracing through the whole app, on the real stores, into an in-memory exporter (no collector):
one trace per request, its server span named by route template and carrying the request id,
child spans for its SQL and Redis calls; and, without a collector configured, nothing at all."""

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from httpx import ASGITransport, AsyncClient
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app import tracing
from app.bootstrap import Container
from app.config import Settings
from app.main import create_app
from app.tracing.sdk import new_provider
from tests.conftest import ROOT, empty_stores
from tests.support import API, PASSWORD

NEEDLE = "needle-in-the-query"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced(settings: Settings, exporter: InMemorySpanExporter) -> AsyncIterator[Any]:
    """The app tracing into the exporter, its lifespan running (rate limits on, so the
    limiter's store is called too)."""
    await empty_stores(settings)
    provider = new_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(
        settings.model_copy(update={"rate_limit_enabled": True}), tracer_provider=provider
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(traced: Any) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=traced, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def bearer(client: AsyncClient) -> str:
    credentials = {"email": "traced@example.com", "password": PASSWORD}
    assert (await client.post(f"{API}/auth/register", json=credentials)).status_code == 201
    response = await client.post(f"{API}/auth/login", json=credentials)
    token: str = response.json()["access_token"]
    return token


def request_trace(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The one server span exported, and every other span of its trace."""
    spans = exporter.get_finished_spans()
    servers = [span for span in spans if span.kind is SpanKind.SERVER]
    assert len(servers) == 1, [span.name for span in spans]
    (server,) = servers
    rest = [s for s in spans if s is not server and s.context.trace_id == server.context.trace_id]
    return server, rest


def descends_from(span: ReadableSpan, ancestor: ReadableSpan, spans: list[ReadableSpan]) -> bool:
    by_id = {s.context.span_id: s for s in spans}
    while span.parent is not None:
        if span.parent.span_id == ancestor.context.span_id:
            return True
        if span.parent.span_id not in by_id:
            return False
        span = by_id[span.parent.span_id]
    return False


def every_value(spans: list[ReadableSpan]) -> str:
    return " ".join(f"{span.name} {dict(span.attributes or {})}" for span in spans)


async def test_a_request_is_one_trace_with_its_route_request_id_sql_and_redis(
    client: AsyncClient, exporter: InMemorySpanExporter, settings: Settings
) -> None:
    token = await bearer(client)
    exporter.clear()

    response = await client.get(
        f"{API}/todos", params={"q": NEEDLE}, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200
    server, children = request_trace(exporter)
    assert server.name == "GET /api/v1/todos"
    attributes = server.attributes or {}
    assert attributes["http.route"] == "/api/v1/todos"
    assert attributes["http.response.status_code"] == 200
    assert attributes[tracing.REQUEST_ID] == response.headers["x-request-id"]
    statements = {
        str(a["db.statement"]): a["db.system"]
        for a in (span.attributes or {} for span in children)
        if "db.statement" in a
    }
    assert any("FROM todos" in sql for sql in statements), statements
    assert set(statements.values()) >= {"redis" if settings.redis_url else "sqlite"}
    if settings.database_url.startswith("postgresql"):
        assert "postgresql" in statements.values()
    assert all(descends_from(span, server, children) for span in children)
    # No query string, token or header anywhere: only the route, and SQL with placeholders.
    recorded = every_value([server, *children])
    assert "url.query" not in recorded
    assert NEEDLE not in recorded
    assert token not in recorded
    assert "Bearer" not in recorded


async def test_a_span_is_named_by_the_route_template_and_continues_the_callers_trace(
    client: AsyncClient, exporter: InMemorySpanExporter
) -> None:
    token = await bearer(client)
    exporter.clear()
    todo_id = str(uuid4())

    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"

    response = await client.get(
        f"{API}/todos/{todo_id}",
        headers={
            "Authorization": f"Bearer {token}",
            "X-Request-ID": "trace-me-1",
            "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01",
        },
    )

    assert response.status_code == 404
    server, _ = request_trace(exporter)
    assert server.name == "GET /api/v1/todos/{todo_id}"
    assert (server.attributes or {})[tracing.REQUEST_ID] == "trace-me-1"
    assert f"{server.context.trace_id:032x}" == caller_trace  # the caller's trace, continued


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="needs TEST_REDIS_URL")
async def test_the_rate_limiters_own_redis_client_is_traced(
    traced: Any, exporter: InMemorySpanExporter
) -> None:
    container: Container = traced.state.container
    exporter.clear()

    await container.rate_limiter.hit("default", "203.0.113.7")

    spans = exporter.get_finished_spans()
    assert [(s.attributes or {}).get("db.system") for s in spans] == ["redis"]


async def test_without_a_collector_nothing_is_installed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def middleware(app: Any) -> list[object]:
        return [m.cls for m in app.user_middleware]

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(settings)
    traced = create_app(settings, tracer_provider=new_provider())

    assert tracing.RequestIdAttribute in middleware(traced)
    assert middleware(app) == [m for m in middleware(traced) if m is not tracing.RequestIdAttribute]
    async with app.router.lifespan_context(app):
        assert not SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry
        assert not RedisInstrumentor().is_instrumented_by_opentelemetry


def test_without_a_collector_the_sdk_is_not_even_imported() -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    script = (
        "import sys; from app.main import create_app; create_app(); "
        "print(sorted(m for m in sys.modules if m.startswith(("
        "'opentelemetry.sdk.trace', 'opentelemetry.instrumentation', 'opentelemetry.exporter',"
        "'app.tracing.sdk'))))"
    )
    # A fresh interpreter: this one imported them for the other tests.
    result = subprocess.run(  # noqa: S603 (this interpreter, a fixed script)
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**environment, "SECRET_KEY": "x" * 40, "DATABASE_URL": "sqlite:///:memory:"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"
