"""Defects the schemathesis run found, pinned as plain examples so they stay fixed whatever
the fuzzer happens to draw."""

from typing import Any

import pytest
from httpx import AsyncClient

from tests.support import API, MakeUser, assert_problem


def fields(response: Any) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


async def test_a_body_that_is_not_utf8_is_a_documented_400_invalid_json(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    response = await client.post(
        f"{API}/todos",
        content=b'{"title": "\xff\xfe"}',
        headers={**ada.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "invalid_json")
    openapi = (await client.get("/openapi.json")).json()
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert "400" in operation["responses"], f"{method.upper()} {path}"


@pytest.mark.parametrize(
    "path", [f"{API}/users/me", f"{API}/todos/0b6f5e5e-0000-4000-8000-000000000000"]
)
async def test_a_405_allows_every_method_of_the_path(
    client: AsyncClient, make_user: MakeUser, path: str
) -> None:
    ada = await make_user()
    response = await client.put(path, headers=ada.headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH"


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_stats_is_no_todo_id(client: AsyncClient, make_user: MakeUser, method: str) -> None:
    ada = await make_user()
    response = await client.request(method, f"{API}/todos/stats", headers=ada.headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


async def test_a_malformed_todo_id_is_no_route(client: AsyncClient, make_user: MakeUser) -> None:
    ada = await make_user()
    response = await client.get(f"{API}/todos/not-a-uuid", headers=ada.headers)
    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "t", "completed": 0}, "body.completed"),
        ({"title": "t", "completed": "true"}, "body.completed"),
        ({"title": "t", "due_at": 0}, "body.due_at"),
        ({"title": "t", "due_at": "1700000000"}, "body.due_at"),
        ({"title": "\x00"}, "body.title"),
        ({"title": "t", "description": "a\x00b"}, "body.description"),
        ({"title": "t", "tags": ["a\x00"]}, "body.tags.0"),
        ({"title": "\x1c"}, "body.title"),
    ],
)
async def test_json_types_and_text_the_schema_forbids_are_422(
    client: AsyncClient, make_user: MakeUser, body: dict[str, Any], field: str
) -> None:
    """Numbers as booleans or Unix times, NUL (PostgreSQL text cannot hold it: it was a 500)
    and blank text: refused alike on both backends, naming the field."""
    ada = await make_user()
    response = await client.post(f"{API}/todos", json=body, headers=ada.headers)
    assert response.status_code == 422, response.text
    assert fields(response) == [field]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"due_before": "0.5"}, "query.due_before"),
        ({"q": "milk\x00"}, "query.q"),
        ({"sort": "-colour"}, "query.sort"),
    ],
)
async def test_query_values_the_schema_forbids_are_422(
    client: AsyncClient, make_user: MakeUser, params: dict[str, str], field: str
) -> None:
    ada = await make_user()
    response = await client.get(f"{API}/todos", params=params, headers=ada.headers)
    assert response.status_code == 422, response.text
    assert fields(response) == [field]


async def test_nul_in_a_login_email_is_a_422_not_a_500(client: AsyncClient) -> None:
    response = await client.post(
        f"{API}/auth/login", json={"email": "a\x00@example.com", "password": "whatever"}
    )
    assert response.status_code == 422
    assert fields(response) == ["body.email"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "body.title"),
        ({"completed": 3}, "body.completed"),
        ({"tags": ["x" * 40]}, "body.tags.0"),
    ],
)
async def test_partial_update_errors_name_the_field_once(
    client: AsyncClient, make_user: MakeUser, body: dict[str, Any], field: str
) -> None:
    """Not `body.title.constrained-str` plus `body.title.none: Input should be None`."""
    ada = await make_user()
    created = await client.post(f"{API}/todos", json={"title": "t"}, headers=ada.headers)
    todo_id = created.json()["id"]
    response = await client.patch(f"{API}/todos/{todo_id}", json=body, headers=ada.headers)
    assert response.status_code == 422
    assert fields(response) == [field]
