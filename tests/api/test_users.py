"""/users/me and the admin /users routes, RBAC and the last-admin rule."""

import asyncio
import sys
from typing import Any
from uuid import UUID

from httpx import AsyncClient
from pydantic import SecretStr

from app.config import Settings
from app.domain.users import Role
from app.main import create_app
from app.presentation.deps import Adapters
from tests.conftest import PASSWORD, MakeUser, login

API = "/api/v1"


async def test_me_shows_the_account_and_its_permissions(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    body = (await client.get(f"{API}/users/me", headers=ada.headers)).json()
    assert body["email"] == "ada@x.io"
    assert body["role"] == "user"
    assert sorted(body["permissions"]) == ["todos:read", "todos:write"]
    assert not {"password", "password_hash"} & body.keys()


async def test_update_me_changes_name_and_email(client: AsyncClient, make_user: MakeUser) -> None:
    ada = await make_user("ada@x.io")
    await make_user("taken@x.io")
    response = await client.patch(
        f"{API}/users/me", json={"full_name": "Ada L", "email": "New@X.io"}, headers=ada.headers
    )
    assert response.status_code == 200
    assert response.json()["email"] == "new@x.io"
    assert response.json()["full_name"] == "Ada L"
    taken = await client.patch(f"{API}/users/me", json={"email": "TAKEN@x.io"}, headers=ada.headers)
    assert taken.status_code == 409
    assert taken.json()["code"] == "email_taken"
    assert (await login(client, "new@x.io")).access_token


async def test_password_change_signs_out_every_other_session(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    other = await login(client, "ada@x.io")
    response = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=ada.headers,
    )
    assert response.status_code == 204
    assert (await client.get(f"{API}/users/me", headers=ada.headers)).status_code == 200
    assert (await client.get(f"{API}/users/me", headers=other.headers)).status_code == 401
    other_refresh = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": other.refresh_token}
    )
    assert other_refresh.status_code == 401
    assert (await login(client, "ada@x.io", "a brand new secret")).access_token


async def test_password_change_with_a_wrong_current_password_changes_nothing(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    response = await client.post(
        f"{API}/users/me/password",
        json={"current_password": "not my password", "new_password": "a brand new secret"},
        headers=ada.headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.current_password"
    weak = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": "password1"},
        headers=ada.headers,
    )
    assert weak.status_code == 422
    assert weak.json()["errors"][0]["field"] == "body.new_password"
    assert (await login(client, "ada@x.io")).access_token


async def test_delete_me_removes_the_account_and_its_todos(
    client: AsyncClient, make_user: MakeUser, adapters: Adapters
) -> None:
    ada = await make_user("ada@x.io")
    todo = (await client.post(f"{API}/todos", json={"title": "t"}, headers=ada.headers)).json()
    assert (await client.delete(f"{API}/users/me", headers=ada.headers)).status_code == 204
    async with adapters.uow_factory() as uow:
        assert await uow.users.get_by_email("ada@x.io") is None
        assert await uow.todos.get(UUID(todo["id"])) is None


async def test_admin_routes_are_403_for_users(client: AsyncClient, make_user: MakeUser) -> None:
    ada = await make_user("ada@x.io")
    for method, path in [
        ("GET", "/users"),
        ("GET", "/users/00000000-0000-0000-0000-000000000000"),
        ("PATCH", "/users/00000000-0000-0000-0000-000000000000"),
        ("DELETE", "/users/00000000-0000-0000-0000-000000000000"),
    ]:
        response = await client.request(
            method, f"{API}{path}", headers=ada.headers, json={} if method == "PATCH" else None
        )
        assert response.status_code == 403, path
        assert response.json()["code"] == "forbidden"


async def test_admin_lists_filters_and_pages_users(
    client: AsyncClient, make_user: MakeUser
) -> None:
    admin = await make_user("admin@x.io", role=Role.ADMIN)
    for n in range(5):
        await make_user(f"user{n}@x.io")
    await make_user("guest@x.io", role=Role.GUEST)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "role": "user"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(f"{API}/users", params=params, headers=admin.headers)).json()
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"user{n}@x.io" for n in reversed(range(5))]
    guests = await client.get(f"{API}/users", params={"q": "GUEST"}, headers=admin.headers)
    assert [u["email"] for u in guests.json()["items"]] == ["guest@x.io"]
    tampered = await client.get(
        f"{API}/users", params={"cursor": "abc", "role": "user"}, headers=admin.headers
    )
    assert tampered.status_code == 400
    assert tampered.json()["code"] == "invalid_cursor"


async def test_unknown_user_is_404_user_not_found(client: AsyncClient, make_user: MakeUser) -> None:
    admin = await make_user("admin@x.io", role=Role.ADMIN)
    response = await client.get(
        f"{API}/users/00000000-0000-0000-0000-000000000000", headers=admin.headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"


async def _user_id(client: AsyncClient, headers: dict[str, str]) -> str:
    return str((await client.get(f"{API}/users/me", headers=headers)).json()["id"])


async def test_role_change_bites_on_the_very_next_request(
    client: AsyncClient, make_user: MakeUser
) -> None:
    admin = await make_user("admin@x.io", role=Role.ADMIN)
    ada = await make_user("ada@x.io")
    ada_id = await _user_id(client, ada.headers)
    assert (
        await client.post(f"{API}/todos", json={"title": "t"}, headers=ada.headers)
    ).status_code == 201
    demoted = await client.patch(
        f"{API}/users/{ada_id}", json={"role": "guest"}, headers=admin.headers
    )
    assert demoted.json()["role"] == "guest"
    refused = await client.post(f"{API}/todos", json={"title": "t"}, headers=ada.headers)
    assert refused.status_code == 403
    assert (await client.get(f"{API}/todos", headers=ada.headers)).status_code == 200


async def test_deactivation_bites_on_the_very_next_request(
    client: AsyncClient, make_user: MakeUser
) -> None:
    admin = await make_user("admin@x.io", role=Role.ADMIN)
    ada = await make_user("ada@x.io")
    ada_id = await _user_id(client, ada.headers)
    await client.patch(f"{API}/users/{ada_id}", json={"is_active": False}, headers=admin.headers)
    response = await client.get(f"{API}/users/me", headers=ada.headers)
    assert response.status_code == 401
    refresh = await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert refresh.status_code == 401


async def test_the_last_admin_cannot_demote_deactivate_or_delete_themselves(
    client: AsyncClient, make_user: MakeUser
) -> None:
    admin = await make_user("admin@x.io", role=Role.ADMIN)
    admin_id = await _user_id(client, admin.headers)
    attempts = [
        client.patch(f"{API}/users/{admin_id}", json={"role": "user"}, headers=admin.headers),
        client.patch(f"{API}/users/{admin_id}", json={"is_active": False}, headers=admin.headers),
        client.delete(f"{API}/users/{admin_id}", headers=admin.headers),
        client.delete(f"{API}/users/me", headers=admin.headers),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 409
        assert response.json()["code"] == "last_admin"
    me = (await client.get(f"{API}/users/me", headers=admin.headers)).json()
    assert me["role"] == "admin"
    assert me["is_active"] is True


async def test_with_a_second_admin_an_admin_may_step_down(
    client: AsyncClient, make_user: MakeUser
) -> None:
    first = await make_user("first@x.io", role=Role.ADMIN)
    await make_user("second@x.io", role=Role.ADMIN)
    first_id = await _user_id(client, first.headers)
    response = await client.patch(
        f"{API}/users/{first_id}", json={"role": "user"}, headers=first.headers
    )
    assert response.status_code == 200
    assert (await client.get(f"{API}/users", headers=first.headers)).status_code == 403


async def test_null_role_is_refused_naming_the_field(
    client: AsyncClient, make_user: MakeUser
) -> None:
    admin = await make_user("admin@x.io", role=Role.ADMIN)
    admin_id = await _user_id(client, admin.headers)
    response = await client.patch(
        f"{API}/users/{admin_id}", json={"role": None}, headers=admin.headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.role"


async def test_first_admin_is_created_at_start_up_idempotently(settings: Settings) -> None:
    configured = settings.model_copy(
        update={"first_admin_email": "Root@X.io", "first_admin_password": SecretStr(PASSWORD)}
    )
    for _ in range(2):  # a restart must not fail or duplicate
        app = create_app(configured)
        async with app.router.lifespan_context(app):
            adapters: Adapters = app.state.adapters
            async with adapters.uow_factory() as uow:
                root = await uow.users.get_by_email("root@x.io")
                assert root is not None
                assert root.role is Role.ADMIN


async def test_cli_creates_an_admin(settings: Settings, client: AsyncClient) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "create-admin",
        "--email",
        "cli-admin@x.io",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin"},
    )
    out, err = await process.communicate(f"{PASSWORD}\n".encode())
    assert process.returncode == 0, err.decode()
    assert b"cli-admin@x.io is an active admin" in out
    session = await login(client, "cli-admin@x.io")
    me = await client.get(f"{API}/users/me", headers=session.headers)
    assert me.json()["role"] == "admin"
