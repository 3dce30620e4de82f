"""Concurrent requests never undo a security decision: a password change, a deactivation or a
role change that answered success stays in force whatever the user's other requests did
meanwhile; a session signed out stays signed out whatever refresh raced it; and a user who
disappears mid-request is answered as a gone user, never with a 500.

The races run real concurrent requests on two instances (two connection pools, as two
processes would be) against PostgreSQL, for enough rounds to catch a lost update."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient, Response

from app.config import Settings
from app.domain.users import Role
from tests.api.test_concurrency import instance
from tests.conftest import on_postgres
from tests.support import API, PASSWORD, MakeUser, Session, assert_problem, login

NEW_PASSWORD = "a brand new passphrase"
ROUNDS = 10


@pytest.fixture
async def second_client(settings: Settings) -> AsyncIterator[AsyncClient]:
    async with instance(settings) as http:
        yield http


async def _user_id(client: AsyncClient, session: Session) -> str:
    response = await client.get(f"{API}/users/me", headers=session.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _renames(http: AsyncClient, session: Session, count: int) -> list[Any]:
    return [
        http.patch(f"{API}/users/me", json={"full_name": f"name {n}"}, headers=session.headers)
        for n in range(count)
    ]


def _no_server_errors(responses: list[Response]) -> None:
    assert not [r.text for r in responses if r.status_code >= 500]


@on_postgres
async def test_password_change_survives_concurrent_profile_updates(
    client: AsyncClient, second_client: AsyncClient, make_user: MakeUser
) -> None:
    for _ in range(ROUNDS):
        ada = await make_user()
        thief = await login(second_client, ada.email)
        change = client.post(
            f"{API}/users/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=ada.headers,
        )
        changed, *renamed = await asyncio.gather(change, *_renames(second_client, thief, 40))
        assert changed.status_code == 204, changed.text
        _no_server_errors(renamed)

        old = await client.post(
            f"{API}/auth/login", json={"email": ada.email, "password": PASSWORD}
        )
        assert_problem(old, 401, "invalid_credentials")
        assert (await login(client, ada.email, NEW_PASSWORD)).access_token


@on_postgres
@pytest.mark.parametrize(
    ("change", "field", "decided"),
    [({"is_active": False}, "is_active", False), ({"role": "guest"}, "role", "guest")],
    ids=["deactivation", "role-change"],
)
async def test_an_admin_decision_survives_the_targets_concurrent_self_updates(
    client: AsyncClient,
    second_client: AsyncClient,
    make_user: MakeUser,
    change: dict[str, Any],
    field: str,
    decided: Any,
) -> None:
    admin = await make_user(role=Role.ADMIN)
    for _ in range(ROUNDS):
        ada = await make_user()
        ada_id = await _user_id(client, ada)
        decision = client.patch(f"{API}/users/{ada_id}", json=change, headers=admin.headers)
        decided_response, *renamed = await asyncio.gather(
            decision, *_renames(second_client, ada, 40)
        )
        assert decided_response.status_code == 200, decided_response.text
        _no_server_errors(renamed)

        stored = await client.get(f"{API}/users/{ada_id}", headers=admin.headers)
        assert stored.json()[field] == decided


@on_postgres
async def test_a_refresh_racing_logout_leaves_no_live_session(
    client: AsyncClient, second_client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    for _ in range(3 * ROUNDS):
        session = await login(client, ada.email)
        logout = client.post(
            f"{API}/auth/logout",
            json={"refresh_token": session.refresh_token},
            headers=session.headers,
        )
        refresh = second_client.post(
            f"{API}/auth/refresh", json={"refresh_token": session.refresh_token}
        )
        logged_out, refreshed = await asyncio.gather(logout, refresh)
        assert logged_out.status_code == 204, logged_out.text
        assert refreshed.status_code in (200, 401), refreshed.text
        if refreshed.status_code != 200:
            continue
        pair = refreshed.json()
        again = await client.post(
            f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert again.status_code == 401, "a refresh token outlived its session's logout"
        me = await client.get(
            f"{API}/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        )
        assert_problem(me, 401, "invalid_token")


@on_postgres
async def test_a_refresh_racing_a_password_change_leaves_no_live_session(
    client: AsyncClient, second_client: AsyncClient, make_user: MakeUser
) -> None:
    for _ in range(ROUNDS):
        ada = await make_user()
        other = await login(client, ada.email)
        change = client.post(
            f"{API}/users/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=ada.headers,
        )
        refreshes = [
            second_client.post(f"{API}/auth/refresh", json={"refresh_token": other.refresh_token})
        ]
        changed, refreshed = await asyncio.gather(change, *refreshes)
        assert changed.status_code == 204, changed.text
        if refreshed.status_code == 200:
            again = await client.post(
                f"{API}/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]}
            )
            assert again.status_code == 401, "a session outlived the password change"


async def test_twenty_parallel_reuses_of_one_refresh_token_end_in_one_pair(
    client: AsyncClient, second_client: AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    clients = [client] if settings.is_sqlite else [client, second_client]
    for _ in range(3):
        ada = await make_user()
        responses = await asyncio.gather(
            *(
                clients[n % len(clients)].post(
                    f"{API}/auth/refresh", json={"refresh_token": ada.refresh_token}
                )
                for n in range(20)
            )
        )
        _no_server_errors(responses)
        statuses = Counter(r.status_code for r in responses)
        assert statuses[200] <= 1
        assert statuses[200] + statuses[401] == 20
        # Whichever got the pair, the family ended with the first reuse.
        for response in responses:
            if response.status_code == 200:
                again = await client.post(
                    f"{API}/auth/refresh",
                    json={"refresh_token": response.json()["refresh_token"]},
                )
                assert again.status_code == 401


async def test_creating_todos_while_the_account_is_deleted_is_never_a_500(
    client: AsyncClient, second_client: AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    other = client if settings.is_sqlite else second_client
    for _ in range(5):
        ada = await make_user()
        posts = [
            other.post(f"{API}/todos", json={"title": f"t{n}"}, headers=ada.headers)
            for n in range(20)
        ]
        deleted, *created = await asyncio.gather(
            client.delete(f"{API}/users/me", headers=ada.headers), *posts
        )
        assert deleted.status_code == 204, deleted.text
        _no_server_errors(created)
        for response in created:
            if response.status_code != 201:
                assert_problem(response, 401, "invalid_token")
