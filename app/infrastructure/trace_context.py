"""The trace a write happens in, as W3C `traceparent` text stored with what it made (activity
entries, webhook deliveries), so the jobs that act on those later link their spans to it.
Without tracing there is no valid current span, and nothing is stored."""

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


def current_traceparent() -> str | None:
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")
