"""The OpenAPI document the service publishes, from an app built as uvicorn's factory builds
it. The document depends on no setting (nor on a database), so any settings do."""

from functools import cache
from typing import Any

import pytest

from app.config import Settings
from app.main import create_app

Operations = list[tuple[str, str, dict[str, Any]]]


@cache
def published_document() -> dict[str, Any]:
    settings = Settings(
        environment="test",
        secret_key="contract-secret-key-that-is-long-enough-0123456789",
        log_level="WARNING",
    )
    document: dict[str, Any] = create_app(settings).openapi()
    return document


@pytest.fixture(scope="session")
def document() -> dict[str, Any]:
    return published_document()


@pytest.fixture(scope="session")
def operations(document: dict[str, Any]) -> Operations:
    """(METHOD, path, operation) for every operation in the document."""
    return [
        (method.upper(), path, operation)
        for path, by_method in document["paths"].items()
        for method, operation in by_method.items()
    ]
