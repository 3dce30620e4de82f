"""Traced, a webhook's delivery job is a span of its own linked to the trace of the request
behind it: the change's, or the ping's."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.config import Settings
from app.main import create_app
from app.tracing.sdk import new_provider
from harness.receiver import receiver
from tests.conftest import empty_stores
from tests.support import API, PASSWORD


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def client(settings: Settings, exporter: InMemorySpanExporter) -> AsyncIterator[AsyncClient]:
    await empty_stores(settings)
    provider = new_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(
        settings.model_copy(update={"jobs_in_process": True}), tracer_provider=provider
    )
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


def trace_of(exporter: InMemorySpanExporter, name: str) -> int:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    assert span.context is not None
    trace_id: int = span.context.trace_id
    return trace_id


async def linked_delivery_spans(exporter: InMemorySpanExporter, count: int) -> list[Any]:
    async with asyncio.timeout(15):
        while True:
            spans = [s for s in exporter.get_finished_spans() if s.name == "job webhooks.deliver"]
            if len(spans) >= count:
                return spans
            await asyncio.sleep(0.1)


async def test_a_delivery_job_links_to_the_request_behind_it(
    client: AsyncClient, exporter: InMemorySpanExporter
) -> None:
    credentials = {"email": "jobs@example.com", "password": PASSWORD}
    assert (await client.post(f"{API}/auth/register", json=credentials)).status_code == 201
    token = (await client.post(f"{API}/auth/login", json=credentials)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    async with receiver() as target:
        body = {"url": target.url, "events": ["todo.created"]}
        hook = (await client.post(f"{API}/webhooks", json=body, headers=headers)).json()
        created = await client.post(f"{API}/todos", json={"title": "traced"}, headers=headers)
        assert created.status_code == 201
        (change,) = await linked_delivery_spans(exporter, 1)
        pinged = await client.post(f"{API}/webhooks/{hook['id']}/ping", headers=headers)
        assert pinged.status_code == 202
        spans = await linked_delivery_spans(exporter, 2)
        await target.until(2)
    ping = next(span for span in spans if span is not change)
    for span, request in (
        (change, f"POST {API}/todos"),
        (ping, f"POST {API}/webhooks/{{webhook_id}}/ping"),
    ):
        assert span.kind is SpanKind.CONSUMER
        assert [link.context.trace_id for link in span.links] == [trace_of(exporter, request)]
        assert span.context is not None
        assert span.context.trace_id != trace_of(exporter, request)  # a trace of its own
