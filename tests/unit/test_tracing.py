"""When tracing is on, and what the SDK's standard variables change (no collector is called:
a provider that exported nothing shuts down without a request)."""

import pytest
from opentelemetry.sdk.resources import SERVICE_NAME

from app import tracing

OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_off_without_an_endpoint() -> None:
    assert tracing.provider_from_environment() is None
    assert tracing.fastapi_telemetry(None) == {"tracing": False, "metrics": False, "logs": False}


@pytest.mark.parametrize(
    "name", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
def test_an_endpoint_turns_it_on_as_todo_api(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, "http://127.0.0.1:4318")

    provider = tracing.provider_from_environment()

    assert provider is not None
    assert provider.resource.attributes[SERVICE_NAME] == "todo-api"
    # The SDK's default sampler, behind the one that drops query strings.
    assert provider.sampler.get_description().startswith("WithoutQuery{ParentBased{root:AlwaysOn")
    assert tracing.fastapi_telemetry(provider)["tracer_provider"] is provider
    provider.shutdown()


def test_the_sdks_variables_name_the_service_and_choose_the_sampler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=todo-api-canary")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")

    provider = tracing.provider_from_environment()

    assert provider is not None
    assert provider.resource.attributes[SERVICE_NAME] == "todo-api-canary"
    assert provider.sampler.get_description() == "WithoutQuery{AlwaysOffSampler}"
    provider.shutdown()


def test_the_sdk_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")

    assert tracing.provider_from_environment() is None
