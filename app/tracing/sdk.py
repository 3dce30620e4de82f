"""The OpenTelemetry SDK side of tracing: the provider, and the SQL and Redis instrumentation.
Imported only when tracing is on."""

import asyncio
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.semconv.attributes.url_attributes import URL_QUERY
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes
from sqlalchemy.ext.asyncio import AsyncEngine

DEFAULT_SERVICE_NAME = "todo-api"


def exporting_provider() -> TracerProvider:
    provider = new_provider()
    # Both read their settings (OTEL_EXPORTER_OTLP_*, OTEL_BSP_*) from the environment.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def new_provider() -> TracerProvider:
    """A provider without processors, for this service, sampling as OTEL_TRACES_SAMPLER says."""
    # OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES may name the service; else it is ours.
    named = SERVICE_NAME in OTELResourceDetector().detect().attributes
    resource = Resource.create({} if named else {SERVICE_NAME: DEFAULT_SERVICE_NAME})
    # The SDK's own reading of OTEL_TRACES_SAMPLER: the sampler of a provider given none.
    configured = TracerProvider(resource=resource, shutdown_on_exit=False).sampler
    return TracerProvider(resource=resource, sampler=WithoutQuery(configured))


class WithoutQuery(sampling.Sampler):
    """Another sampler's decision, with the query string dropped from the span's attributes
    (the SDK builds a sampled span from the attributes its sampler returns): FastAPI records
    it as url.query, and ours carry search text and cursors."""

    def __init__(self, sampler: sampling.Sampler) -> None:
        self.sampler = sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> sampling.SamplingResult:
        result = self.sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if URL_QUERY not in result.attributes:
            return result
        kept = {key: value for key, value in result.attributes.items() if key != URL_QUERY}
        return sampling.SamplingResult(result.decision, kept, result.trace_state)

    def get_description(self) -> str:
        return f"WithoutQuery{{{self.sampler.get_description()}}}"


def instrument(provider: TracerProvider, engine: AsyncEngine) -> None:
    """Child spans for the engine's SQL statements (with placeholders, never the values) and
    for Redis commands (their names, never their arguments), the rate limiter's client
    included: redis-py is instrumented class-wide. Instrumentors are process-wide, so one app
    per process is traced."""
    # It declares SQLAlchemy < 2.1, yet only listens to engine events that 2.1 keeps: without
    # the override it refuses to run. tests/api/test_tracing.py pins that its spans arrive.
    SQLAlchemyInstrumentor().instrument(
        engine=engine.sync_engine, tracer_provider=provider, skip_dep_check=True
    )
    RedisInstrumentor().instrument(tracer_provider=provider)


async def shutdown(provider: TracerProvider) -> None:
    """Removes the instrumentation, then flushes the spans still queued (in a thread: the
    export is a blocking network call)."""
    SQLAlchemyInstrumentor().uninstrument()
    RedisInstrumentor().uninstrument()
    await asyncio.to_thread(provider.shutdown)
