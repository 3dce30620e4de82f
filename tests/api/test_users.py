"""/users/me and the admin /users routes, RBAC and the last-admin rule."""

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import pytest
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from app.bootstrap import Container
from app.config import Settings
from app.domain.users import Role
from app.main import create_app
from tests.conftest import empty_stores
from tests.support import API, PASSWORD, MakeUser, assert_problem, login


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
        f"{API}/users/me",
        json={"full_name": "Ada L", "email": "New@X.io", "current_password": PASSWORD},
        headers=ada.headers,
    )
    assert response.status_code == 200
    assert response.json()["email"] == "new@x.io"
    assert response.json()["full_name"] == "Ada L"
    taken = await client.patch(
        f"{API}/users/me",
        json={"email": "TAKEN@x.io", "current_password": PASSWORD},
        headers=ada.headers,
    )
    assert_problem(taken, 409, "email_taken")
    assert (await login(client, "new@x.io")).access_token


@pytest.mark.parametrize(
    "password", [{}, {"current_password": "not my password"}], ids=["missing", "wrong"]
)
async def test_an_email_change_without_the_current_password_is_422_naming_it(
    client: AsyncClient, make_user: MakeUser, password: dict[str, str]
) -> None:
    ada = await make_user("ada@x.io")
    await make_user("taken@x.io")
    # A taken email too: without the password, nobody learns that it is taken.
    for email in ("new@x.io", "taken@x.io"):
        response = await client.patch(
            f"{API}/users/me", json={"email": email, **password}, headers=ada.headers
        )
        body = assert_problem(response, 422, "validation_error")
        assert [e["field"] for e in body["errors"]] == ["body.current_password"]
    me = await client.get(f"{API}/users/me", headers=ada.headers)
    assert me.json()["email"] == "ada@x.io"


async def test_an_email_that_normalises_to_the_current_one_is_no_change(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    response = await client.patch(
        f"{API}/users/me", json={"email": "ADA@x.io"}, headers=ada.headers
    )
    assert response.status_code == 200
    assert response.json()["email"] == "ada@x.io"


async def test_an_email_change_signs_out_every_other_session(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    other = await login(client, "ada@x.io")
    response = await client.patch(
        f"{API}/users/me",
        json={"email": "new@x.io", "current_password": PASSWORD},
        headers=ada.headers,
    )
    assert response.status_code == 200
    assert (await client.get(f"{API}/users/me", headers=ada.headers)).status_code == 200
    me = await client.get(f"{API}/users/me", headers=other.headers)
    assert_problem(me, 401, "invalid_token")
    refreshed = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": other.refresh_token}
    )
    assert refreshed.status_code == 401
    assert (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token})
    ).status_code == 200


async def test_email_changes_are_limited_per_account_under_the_login_limit(
    settings: Settings, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    limited = create_app(
        settings.model_copy(update={"rate_limit_enabled": True, "rate_limit_login": "3/hour"})
    )
    async with limited.router.lifespan_context(limited):
        transport = ASGITransport(app=limited, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://limited") as http:
            statuses = []
            for n in range(4):
                response = await http.patch(
                    f"{API}/users/me",
                    json={"email": f"probe{n}@x.io", "current_password": "a guess"},
                    headers=ada.headers,
                )
                statuses.append(response.status_code)
            renamed = await http.patch(
                f"{API}/users/me", json={"full_name": "Ada"}, headers=ada.headers
            )
    assert statuses == [422, 422, 422, 429]
    assert_problem(response, 429, "rate_limited")
    assert renamed.status_code == 200  # a change that is not an email's is not counted


async def test_a_new_password_equal_to_the_current_one_is_422_naming_it(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    response = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": PASSWORD},
        headers=ada.headers,
    )
    body = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["body.new_password"]


async def test_a_reactivated_account_has_none_of_its_old_sessions(
    client: AsyncClient, make_user: MakeUser
) -> None:
    admin = await make_user("admin@x.io", role=Role.ADMIN)
    ada = await make_user("ada@x.io")
    ada_id = await _user_id(client, ada.headers)
    for active in (False, True):
        response = await client.patch(
            f"{API}/users/{ada_id}", json={"is_active": active}, headers=admin.headers
        )
        assert response.status_code == 200
    assert_problem(await client.get(f"{API}/users/me", headers=ada.headers), 401, "invalid_token")
    refreshed = await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert_problem(refreshed, 401, "invalid_token")
    assert (await login(client, "ada@x.io")).access_token  # a new login starts afresh


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
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada = await make_user("ada@x.io")
    todo = (await client.post(f"{API}/todos", json={"title": "t"}, headers=ada.headers)).json()
    assert (await client.delete(f"{API}/users/me", headers=ada.headers)).status_code == 204
    async with container.unit_of_work() as uow:
        assert await uow.users.get_by_email("ada@x.io") is None
        assert await uow.todos.get(UUID(todo["id"]), reader_id=UUID(todo["owner_id"])) is None


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
    assert_problem(tampered, 400, "invalid_cursor")


async def test_unknown_user_is_404_user_not_found(client: AsyncClient, make_user: MakeUser) -> None:
    admin = await make_user("admin@x.io", role=Role.ADMIN)
    response = await client.get(
        f"{API}/users/00000000-0000-0000-0000-000000000000", headers=admin.headers
    )
    assert_problem(response, 404, "user_not_found")


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
        assert_problem(response, 409, "last_admin")
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


@asynccontextmanager
async def started(settings: Settings, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Any]:
    """The app through its lifespan (a start-up), its log captured."""
    app = create_app(settings)
    logging.getLogger().addHandler(caplog.handler)  # create_app replaced the root's handlers
    caplog.set_level(logging.INFO, logger="app.lifespan")
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def with_first_admin(settings: Settings, email: str) -> Settings:
    return settings.model_copy(
        update={"first_admin_email": email, "first_admin_password": SecretStr(PASSWORD)}
    )


async def test_first_admin_is_created_at_start_up_idempotently(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await empty_stores(settings)
    configured = with_first_admin(settings, "Root@X.io")
    for logged in ("created it as an active admin", "it is already an active admin"):
        caplog.clear()
        async with started(configured, caplog) as client:  # a restart must not fail or duplicate
            root = await login(client, "root@x.io")
            me = await client.get(f"{API}/users/me", headers=root.headers)
            assert me.json()["role"] == "admin"
        assert f"FIRST_ADMIN_EMAIL Root@X.io: {logged}" in caplog.text
        assert PASSWORD not in caplog.text


async def test_a_restart_never_makes_whoever_took_the_first_admins_old_email_admin(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await empty_stores(settings)
    configured = with_first_admin(settings, "root@x.io")
    async with started(configured, caplog) as client:
        root = await login(client, "root@x.io")
        moved = await client.patch(
            f"{API}/users/me",
            json={"email": "boss@x.io", "current_password": PASSWORD},
            headers=root.headers,
        )
        assert moved.status_code == 200
        taken = await client.post(
            f"{API}/auth/register", json={"email": "root@x.io", "password": PASSWORD}
        )
        assert taken.status_code == 201
    caplog.clear()
    async with started(configured, caplog) as client:
        squatter = await login(client, "root@x.io")
        me = await client.get(f"{API}/users/me", headers=squatter.headers)
        assert me.json()["role"] == "user"
        boss = await login(client, "boss@x.io")
        assert (await client.get(f"{API}/users/me", headers=boss.headers)).json()["role"] == "admin"
    warning = "FIRST_ADMIN_EMAIL root@x.io: an account that is not an active admin holds it"
    assert warning in caplog.text


async def test_no_first_admin_is_created_beside_an_existing_admin(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await empty_stores(settings)
    async with started(with_first_admin(settings, "root@x.io"), caplog):
        pass
    async with started(with_first_admin(settings, "other@x.io"), caplog) as client:
        refused = await client.post(
            f"{API}/auth/login", json={"email": "other@x.io", "password": PASSWORD}
        )
        assert refused.status_code == 401
    assert "FIRST_ADMIN_EMAIL other@x.io: an active admin already exists" in caplog.text


async def test_a_first_admin_email_without_a_password_is_ignored_loudly(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await empty_stores(settings)
    async with started(settings.model_copy(update={"first_admin_email": "root@x.io"}), caplog):
        pass
    assert "FIRST_ADMIN_EMAIL is set without FIRST_ADMIN_PASSWORD: ignored" in caplog.text


async def run_cli(settings: Settings, email: str) -> tuple[int | None, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "create-admin",
        "--email",
        email,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin"},
    )
    out, err = await process.communicate(f"{PASSWORD}\n".encode())
    return process.returncode, out.decode(), err.decode()


async def test_cli_creates_an_admin(settings: Settings, client: AsyncClient) -> None:
    code, out, err = await run_cli(settings, "cli-admin@x.io")
    assert code == 0, err
    assert "Created the admin cli-admin@x.io" in out
    session = await login(client, "cli-admin@x.io")
    me = await client.get(f"{API}/users/me", headers=session.headers)
    assert me.json()["role"] == "admin"


async def test_cli_never_promotes_an_existing_account(
    settings: Settings, client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    code, _, err = await run_cli(settings, "ADA@x.io")
    assert code == 1
    assert "already exists" in err
    assert (await client.get(f"{API}/users/me", headers=ada.headers)).json()["role"] == "user"
