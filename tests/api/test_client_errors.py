"""Errors a frontend can act on: unknown fields, malformed JSON and preconditions, RFC 6750
challenges, the trash time, and CORS preflights in every configuration."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient

from app.config import Settings
from app.main import create_app
from tests.api.test_todos import create
from tests.support import API, MakeUser, assert_problem

ORIGIN = "http://localhost:5173"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}


async def test_an_unknown_field_on_create_is_422_naming_it_and_creates_nothing(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    response = await client.post(
        f"{API}/todos", json={"title": "Buy milk", "colour": "red"}, headers=ada.headers
    )
    body = assert_problem(response, 422, "unknown_field")
    assert body["errors"] == [
        {
            "field": "body.colour",
            "message": "This field is not part of the request.",
            "type": "unknown_field",
        }
    ]
    listed = await client.get(f"{API}/todos", headers=ada.headers)
    assert listed.json()["items"] == []


async def test_a_typo_in_a_patch_is_422_not_a_silent_no_op(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    todo = await create(client, ada, title="Buy milk")
    response = await client.patch(
        f"{API}/todos/{todo['id']}", json={"done": True}, headers=ada.headers
    )
    assert assert_problem(response, 422, "unknown_field")["errors"][0]["field"] == "body.done"
    again = await client.get(f"{API}/todos/{todo['id']}", headers=ada.headers)
    assert again.json()["version"] == todo["version"]


async def test_unknown_and_invalid_fields_together_are_one_validation_error(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    response = await client.post(
        f"{API}/todos", json={"title": "", "colour": "red"}, headers=ada.headers
    )
    errors = assert_problem(response, 422, "validation_error")["errors"]
    assert {(e["field"], e["type"]) for e in errors} >= {("body.colour", "unknown_field")}
    assert "body.title" in {e["field"] for e in errors}


async def test_what_a_client_read_may_be_sent_back_and_is_ignored(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    todo = await create(client, ada, title="Buy milk")
    sent_back = {**todo, "title": "Buy oat milk", "id": "not-even-a-uuid", "version": 99}
    response = await client.patch(f"{API}/todos/{todo['id']}", json=sent_back, headers=ada.headers)
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Buy oat milk"
    assert response.json()["id"] == todo["id"]
    assert response.json()["version"] == todo["version"] + 1

    me = (await client.get(f"{API}/users/me", headers=ada.headers)).json()
    response = await client.patch(
        f"{API}/users/me", json={**me, "full_name": "Ada"}, headers=ada.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "user"


async def test_register_ignores_account_fields_but_refuses_unknown_ones(
    client: AsyncClient,
) -> None:
    body = {"email": "eve@x.io", "password": "correct horse battery", "role": "admin"}
    created = await client.post(f"{API}/auth/register", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "user"
    unknown = await client.post(f"{API}/auth/register", json={**body, "nickname": "eve"})
    assert_problem(unknown, 422, "unknown_field")


async def test_malformed_json_is_400_invalid_json_with_line_and_column(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    response = await client.post(
        f"{API}/todos",
        content=b'{\n  "title": "x",\n}',
        headers={**ada.headers, "Content-Type": "application/json"},
    )
    body = assert_problem(response, 400, "invalid_json")
    assert "line 3, column 1" in body["detail"]
    assert "errors" not in body


@pytest.mark.parametrize("header", ["2", "W/2", '"2', "abc, *"])
async def test_a_malformed_if_match_is_400_invalid_precondition_and_changes_nothing(
    client: AsyncClient, make_user: MakeUser, header: str
) -> None:
    ada = await make_user()
    todo = await create(client, ada, title="Buy milk")
    patched = await client.patch(
        f"{API}/todos/{todo['id']}",
        json={"title": "Changed"},
        headers={**ada.headers, "If-Match": header},
    )
    assert_problem(patched, 400, "invalid_precondition")
    deleted = await client.delete(
        f"{API}/todos/{todo['id']}", headers={**ada.headers, "If-Match": header}
    )
    assert_problem(deleted, 400, "invalid_precondition")
    again = await client.get(f"{API}/todos/{todo['id']}", headers=ada.headers)
    assert again.json()["title"] == "Buy milk"
    assert again.json()["deleted_at"] is None


async def test_a_malformed_if_match_on_an_unseen_todo_is_still_404(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    todo = await create(client, ada, title="Buy milk")
    response = await client.patch(
        f"{API}/todos/{todo['id']}", json={"title": "x"}, headers={**bob.headers, "If-Match": "1"}
    )
    assert_problem(response, 404, "todo_not_found")


async def test_well_formed_preconditions_still_work(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    todo = await create(client, ada, title="Buy milk")
    url = f"{API}/todos/{todo['id']}"
    stale = await client.patch(url, json={"title": "x"}, headers={**ada.headers, "If-Match": '"9"'})
    assert_problem(stale, 412, "precondition_failed")
    fresh = await client.patch(url, json={"title": "x"}, headers={**ada.headers, "If-Match": '"1"'})
    assert fresh.status_code == 200
    cached = await client.get(url, headers={**ada.headers, "If-None-Match": 'W/"2"'})
    assert cached.status_code == 304
    malformed = await client.get(url, headers={**ada.headers, "If-None-Match": "2"})
    assert_problem(malformed, 400, "invalid_precondition")


async def test_a_refused_bearer_token_is_challenged_with_invalid_token(
    client: AsyncClient,
) -> None:
    response = await client.get(f"{API}/todos", headers={"Authorization": "Bearer not-a-jwt"})
    assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_a_malformed_authorization_is_challenged_with_invalid_request(
    client: AsyncClient,
) -> None:
    response = await client.get(f"{API}/todos", headers={"Authorization": "Basic YWRhOng="})
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_request"'


async def test_a_trashed_todo_says_when_it_was_trashed(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    todo = await create(client, ada, title="Buy milk")
    assert todo["deleted_at"] is None
    assert (
        await client.delete(f"{API}/todos/{todo['id']}", headers=ada.headers)
    ).status_code == 204
    trash = (await client.get(f"{API}/todos?deleted=true", headers=ada.headers)).json()["items"]
    assert trash[0]["id"] == todo["id"]
    assert trash[0]["deleted_at"] is not None
    restored = await client.post(f"{API}/todos/{todo['id']}/restore", headers=ada.headers)
    assert restored.json()["deleted_at"] is None


@pytest.fixture
async def app_in(settings: Settings) -> AsyncIterator[Any]:
    """A client of an app built with other settings (its lifespan run)."""
    clients: list[AsyncClient] = []
    contexts: list[Any] = []

    async def build(**changes: Any) -> AsyncClient:
        app = create_app(settings.model_copy(update=changes))
        context = app.router.lifespan_context(app)
        await context.__aenter__()
        contexts.append(context)
        client = AsyncClient(
            transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://test"
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()
    for context in reversed(contexts):
        await context.__aexit__(None, None, None)


async def test_the_development_default_allows_a_local_frontend(app_in: Any) -> None:
    client = await app_in(environment="development", cors_origins=None)
    response = await client.options(f"{API}/todos", headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "last-event-id" in response.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize(
    "changes",
    [
        {"environment": "development", "cors_origins": None},
        {"environment": "production", "cors_origins": None},
        {"environment": "test", "cors_origins": None},
        {"environment": "development", "cors_origins": []},
        {"environment": "development", "cors_origins": ["https://app.example.com"]},
    ],
)
async def test_a_preflight_from_an_origin_not_allowed_is_400_cors_refused(
    app_in: Any, changes: dict[str, Any]
) -> None:
    client = await app_in(**changes)
    response = await client.options(
        f"{API}/todos", headers={**PREFLIGHT, "Origin": "https://evil.example"}
    )
    assert_problem(response, 400, "cors_refused")


async def test_production_allows_no_origin_unless_configured(app_in: Any) -> None:
    client = await app_in(environment="production", cors_origins=None)
    assert_problem(await client.options(f"{API}/todos", headers=PREFLIGHT), 400, "cors_refused")
