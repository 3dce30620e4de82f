"""Auth over HTTP: register, login, token (form), refresh rotation and reuse, logout."""

import asyncio
import time

import pytest
from httpx import AsyncClient
from jose import jwt

from app.bootstrap import Container
from app.domain.users import Role
from tests.support import API, PASSWORD, MakeUser, assert_problem, login


async def register(client: AsyncClient, email: str, password: str = PASSWORD, **extra: object):  # type: ignore[no-untyped-def]
    return await client.post(
        f"{API}/auth/register", json={"email": email, "password": password, **extra}
    )


async def test_register_normalises_email_and_ignores_privileged_fields(client: AsyncClient) -> None:
    response = await register(
        client, "  Ada@Example.COM ", role="admin", is_active=False, id="x", full_name="Ada"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ada@example.com"
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert body["full_name"] == "Ada"
    assert "password" not in response.text
    assert "hash" not in response.text


async def test_emails_differing_in_case_are_one_account(client: AsyncClient) -> None:
    assert (await register(client, "a@x.io")).status_code == 201
    second = await register(client, "A@X.io")
    assert_problem(second, 409, "email_taken")
    assert second.headers["content-type"] == "application/problem+json"


async def test_concurrent_registrations_of_one_email_end_in_one_201_and_409s(
    client: AsyncClient,
) -> None:
    responses = await asyncio.gather(*(register(client, "race@x.io") for _ in range(5)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409, 409]


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least 8"),
        ("x" * 129, "at most 128"),
        ("password123", "common"),
        ("ada@example.com", "email"),
    ],
)
async def test_weak_passwords_are_422_naming_the_field(
    client: AsyncClient, password: str, reason: str
) -> None:
    response = await register(client, "ada@example.com", password)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["field"] == "body.password"
    assert reason in body["errors"][0]["message"] or reason in response.text


async def test_a_password_error_names_the_body_even_with_a_query_parameter_of_its_name(
    client: AsyncClient,
) -> None:
    # Where the field is comes from what the route declares, not from what the client sent.
    response = await client.post(
        f"{API}/auth/register",
        params={"password": "x"},
        json={"email": "ada@example.com", "password": "password123"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.password"


async def test_login_returns_a_token_pair(client: AsyncClient, make_user: MakeUser) -> None:
    await make_user("ada@example.com")
    response = await client.post(
        f"{API}/auth/login", json={"email": "ADA@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    pair = response.json()
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 15 * 60
    claims = jwt.get_unverified_claims(pair["access_token"])
    assert {"sub", "exp", "iat", "jti", "type", "iss", "aud"} <= claims.keys()
    assert claims["type"] == "access"


async def test_unknown_email_and_wrong_password_answer_alike(
    client: AsyncClient, make_user: MakeUser
) -> None:
    await make_user("ada@example.com")
    unknown = await client.post(
        f"{API}/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    wrong = await client.post(
        f"{API}/auth/login", json={"email": "ada@example.com", "password": "wrong password"}
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["code"] == wrong.json()["code"] == "invalid_credentials"
    assert unknown.json()["detail"] == wrong.json()["detail"]
    assert unknown.headers["www-authenticate"] == "Bearer"


async def test_unknown_email_still_spends_a_password_verification(
    client: AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = container.hasher.dummy_verify

    async def counting_dummy_verify() -> None:
        calls.append("dummy")
        await original()

    monkeypatch.setattr(container.hasher, "dummy_verify", counting_dummy_verify)
    await client.post(f"{API}/auth/login", json={"email": "no@x.io", "password": PASSWORD})
    assert calls == ["dummy"]


async def test_token_endpoint_takes_the_oauth2_form(
    client: AsyncClient, make_user: MakeUser
) -> None:
    await make_user("ada@example.com")
    response = await client.post(
        f"{API}/auth/token", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    me = await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["email"] == "ada@example.com"


async def test_disabled_account_cannot_log_in(client: AsyncClient, make_user: MakeUser) -> None:
    admin = await make_user("admin@x.io", role=Role.ADMIN)
    await make_user("ada@x.io")
    users = (await client.get(f"{API}/users?q=ada", headers=admin.headers)).json()["items"]
    await client.patch(
        f"{API}/users/{users[0]['id']}", json={"is_active": False}, headers=admin.headers
    )
    response = await client.post(
        f"{API}/auth/login", json={"email": "ada@x.io", "password": PASSWORD}
    )
    assert_problem(response, 403, "account_disabled")


async def test_refresh_rotates_and_a_replayed_token_revokes_the_family(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    first = await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != ada.refresh_token

    replay = await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert_problem(replay, 401, "token_reused")

    # The whole family is gone: the rotated refresh token and its access token too.
    descendant = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert descendant.status_code == 401
    me = await client.get(
        f"{API}/users/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}
    )
    assert me.status_code == 401


async def test_other_logins_survive_a_reuse_in_one_family(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    other = await login(client, "ada@x.io")
    await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token})
    await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert (await client.get(f"{API}/users/me", headers=other.headers)).status_code == 200


async def test_an_access_token_is_not_a_refresh_token(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    response = await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.access_token})
    assert_problem(response, 401, "invalid_token")


async def test_a_refresh_token_is_not_an_access_token(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    response = await client.get(
        f"{API}/users/me", headers={"Authorization": f"Bearer {ada.refresh_token}"}
    )
    assert_problem(response, 401, "invalid_token")


async def test_logout_refuses_the_access_token_at_once_and_ends_the_login(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    response = await client.post(
        f"{API}/auth/logout", json={"refresh_token": ada.refresh_token}, headers=ada.headers
    )
    assert response.status_code == 204
    me = await client.get(f"{API}/users/me", headers=ada.headers)
    assert_problem(me, 401, "invalid_token")
    refresh = await client.post(f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert refresh.status_code == 401


async def test_logout_without_a_body_works(client: AsyncClient, make_user: MakeUser) -> None:
    ada = await make_user("ada@x.io")
    assert (await client.post(f"{API}/auth/logout", headers=ada.headers)).status_code == 204
    assert (await client.get(f"{API}/users/me", headers=ada.headers)).status_code == 401


async def test_no_credentials_is_401_not_authenticated(client: AsyncClient) -> None:
    response = await client.get(f"{API}/todos")
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def _forge(claims: dict[str, object], key: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


async def test_tampered_expired_foreign_and_unsigned_tokens_are_refused(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    claims = jwt.get_unverified_claims(ada.access_token)
    secret = "test-secret-key-that-is-long-enough-0123456789"
    now = int(time.time())
    payload = ada.access_token.split(".")[1]
    bad_tokens = {
        "bad signature": _forge(claims, "another-secret-key-that-is-long-enough-xx"),
        "expired": _forge({**claims, "exp": now - 10, "iat": now - 100}, secret),
        "wrong issuer": _forge({**claims, "iss": "someone-else"}, secret),
        "wrong audience": _forge({**claims, "aud": "someone-else"}, secret),
        "other algorithm": _forge(claims, secret, "HS512"),
        "alg none": "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + ".",
        "garbage": "not-a-token",
        "no exp": _forge({k: v for k, v in claims.items() if k != "exp"}, secret),
        "refresh type": _forge({**claims, "type": "refresh"}, secret),
    }
    for name, token in bad_tokens.items():
        response = await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.json()["code"] == "invalid_token", name
    # The genuine token still works.
    assert (await client.get(f"{API}/users/me", headers=ada.headers)).status_code == 200


async def test_a_deleted_users_token_is_refused(client: AsyncClient, make_user: MakeUser) -> None:
    ada = await make_user("ada@x.io")
    assert (await client.delete(f"{API}/users/me", headers=ada.headers)).status_code == 204
    response = await client.get(f"{API}/users/me", headers=ada.headers)
    assert_problem(response, 401, "invalid_token")


async def test_logout_with_a_revoked_token_is_401(client: AsyncClient, make_user: MakeUser) -> None:
    ada = await make_user("ada@x.io")
    assert (await client.post(f"{API}/auth/logout", headers=ada.headers)).status_code == 204

    again = await client.post(f"{API}/auth/logout", headers=ada.headers)

    assert_problem(again, 401, "invalid_token")
    assert again.headers["www-authenticate"] == 'Bearer error="invalid_token"'
