"""The published OpenAPI document is fit for people and for generated clients: named and
tagged operations, examples, the security schemes, and every error as problem+json. Swagger UI
and ReDoc load everything from the service itself."""

import re
from typing import Any

import pytest
from httpx import AsyncClient

from tests.contract.conftest import Operations
from tests.support import API

PUBLIC_OPERATIONS = {"register", "login", "token", "refresh", "health", "ready", "metrics"}
PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _schema_of(document: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_operation_ids_are_unique_snake_case_names(operations: Operations) -> None:
    ids = [operation["operationId"] for _, _, operation in operations]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", operation_id) for operation_id in ids), ids


def test_every_operation_has_a_summary_a_description_and_a_described_tag(
    operations: Operations, document: dict[str, Any]
) -> None:
    described = {tag["name"] for tag in document["tags"] if tag.get("description")}
    for method, path, operation in operations:
        assert operation.get("summary"), (method, path)
        assert operation.get("description"), (method, path)
        assert operation.get("tags"), (method, path)
        assert set(operation["tags"]) <= described, (method, path)


def test_every_request_body_has_an_example(
    operations: Operations, document: dict[str, Any]
) -> None:
    for method, path, operation in operations:
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            schema = content["schema"]
            # An optional body is `anyOf: [{$ref}, {type: null}]`.
            schema = next((s for s in schema.get("anyOf", []) if "$ref" in s), schema)
            if "$ref" in schema:
                schema = _schema_of(document, schema)
            has_example = "examples" in schema or any(
                "examples" in field for field in schema.get("properties", {}).values()
            )
            assert has_example, (method, path, media_type)


def test_optional_parameters_read_as_plain_types(
    operations: Operations, document: dict[str, Any]
) -> None:
    """Swagger UI draws `X | None` as `string | (string | null)`; a parameter is only ever
    left out, never sent as null."""
    for method, path, operation in operations:
        for parameter in operation.get("parameters", ()):
            assert {"type": "null"} not in parameter["schema"].get("anyOf", ()), (
                method,
                path,
                parameter["name"],
            )
    (q,) = (p for p in document["paths"][f"{API}/todos"]["get"]["parameters"] if p["name"] == "q")
    assert q["schema"]["type"] == "string"
    assert q["required"] is False


def test_bearer_and_password_flow_security_schemes(
    operations: Operations, document: dict[str, Any]
) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["HTTPBearer"]["description"],
    }
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == (f"{API}/auth/token")
    for method, path, operation in operations:
        if operation["operationId"] in PUBLIC_OPERATIONS:
            assert "security" not in operation, (method, path)
        else:
            assert {"HTTPBearer": []} in operation["security"], (method, path)
            assert {"OAuth2PasswordBearer": []} in operation["security"], (method, path)


def test_every_error_response_is_problem_json(
    operations: Operations, document: dict[str, Any]
) -> None:
    for method, path, operation in operations:
        assert "500" in operation["responses"], (method, path)
        if "requestBody" in operation:
            assert "413" in operation["responses"], (method, path)
        for status, response in operation["responses"].items():
            if not status.startswith(("4", "5")) or operation["operationId"] == "ready":
                continue  # readiness answers 503 with its own body, naming the failed check
            assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}, (
                method,
                path,
                status,
            )
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_problem_schema_matches_rfc_9457_with_code(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "code", "errors"} <= set(
        problem["properties"]
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_every_asset_from_the_service(client: AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", response.text)
    assert assets
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        loaded = await client.get(asset)
        assert loaded.status_code == 200, asset
        # Script bundles may name other sites in links and messages, not as things to load.
        assert "cdn.redoc.ly" not in loaded.text, asset
    assert "cdn" not in response.text.lower()
    assert "fonts.googleapis" not in response.text


async def test_openapi_json_is_served(client: AsyncClient, document: dict[str, Any]) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["paths"].keys() == document["paths"].keys()
