"""OpenTelemetry tracing, on only when the environment names an OTLP collector
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).

On, each request is a server span (FastAPI's own, named by route template) carrying the
request id, with a child span for every SQL statement and Redis command it makes; spans leave
in batches over OTLP/HTTP, configured by the SDK's standard OTEL_* variables. Off, nothing is
installed and the SDK is never imported: this module needs only the OpenTelemetry API, which
FastAPI imports anyway; `sdk.py` is loaded when tracing is on."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy.ext.asyncio import AsyncEngine

REQUEST_ID = "request.id"
OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def provider_from_environment() -> "TracerProvider | None":
    """The provider exporting to the configured collector; None when tracing is off."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return None
    from app.tracing.sdk import exporting_provider

    return exporting_provider()


def fastapi_telemetry(provider: "TracerProvider | None") -> TelemetryConfig:
    """FastAPI's native telemetry: off, or its server spans (and its dependency, endpoint and
    serialization spans) on the given provider, which it then needs no look-up per request
    to find. Its metrics and logs stay off: Prometheus and the access log have them."""
    if provider is None:
        return OFF
    return {**OFF, "tracing": True, "tracer_provider": provider, "auto_configure": False}


def instrument(provider: "TracerProvider | None", engine: "AsyncEngine") -> None:
    """At start-up: spans for the engine's SQL and for Redis commands (nothing when off)."""
    if provider is not None:
        from app.tracing import sdk

        sdk.instrument(provider, engine)


async def shutdown(provider: "TracerProvider | None") -> None:
    """At shutdown: the instrumentation removed, the spans still queued flushed."""
    if provider is not None:
        from app.tracing import sdk

        await sdk.shutdown(provider)


class RequestIdAttribute:
    """Puts the request id on the request's server span. FastAPI opens that span before any
    middleware runs, so this one sits inside the edge, which makes the id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            trace.get_current_span().set_attribute(REQUEST_ID, scope["state"]["request_id"])
        await self.app(scope, receive, send)


@contextmanager
def job_span(
    provider: "TracerProvider | None", name: str, *, linked_to: str | None = None
) -> Iterator[None]:
    """A job's span (nothing when tracing is off), linked to the trace of the request behind
    it (`linked_to`: its W3C traceparent) when there is one: a job runs later, in another
    process, so it is a trace of its own that points back, not a child."""
    if provider is None:
        yield
        return
    links = []
    if linked_to:
        context = TraceContextTextMapPropagator().extract({"traceparent": linked_to})
        behind = trace.get_current_span(context).get_span_context()
        if behind.is_valid:
            links.append(trace.Link(behind))
    tracer = provider.get_tracer("app.jobs")
    with tracer.start_as_current_span(
        f"job {name}", kind=trace.SpanKind.CONSUMER, links=links, attributes={"job.name": name}
    ):
        yield
