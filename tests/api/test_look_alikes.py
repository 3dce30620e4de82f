"""Inputs that look alike are one: emails (NFKC, case-folded) name one account at
registration, login and every change; todo text is stored NFC without zero-width or
bidirectional controls, and the `q` and `tag` filters find it however they are spelled."""

from typing import Any

import pytest
from httpx import AsyncClient

from app.domain.users import Role
from tests.support import API, PASSWORD, MakeUser, Session, assert_problem, login

NFC_CAFE = "caf\u00e9"
NFD_CAFE = "cafe\u0301"


async def register(client: AsyncClient, email: str) -> Any:
    return await client.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD})


async def create(client: AsyncClient, who: Session, **fields: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/todos", json={"title": "t", **fields}, headers=who.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# Emails


@pytest.mark.parametrize(
    "look_alike", ["\uff46oo@example.com", "\uff26OO@example.com", "FOO@example.com"]
)
async def test_a_look_alike_email_is_the_same_account(client: AsyncClient, look_alike: str) -> None:
    assert (await register(client, "foo@example.com")).status_code == 201
    assert_problem(await register(client, look_alike), 409, "email_taken")
    assert (await login(client, look_alike)).access_token
    assert (await login(client, "foo@example.com")).access_token


async def test_a_fullwidth_registration_is_stored_plain_and_logs_in_either_way(
    client: AsyncClient,
) -> None:
    registered = await register(client, "\uff41\uff44\uff41\uff20x.io")  # fullwidth @ too
    assert registered.status_code == 201, registered.text
    assert registered.json()["email"] == "ada@x.io"
    assert_problem(await register(client, "ada@x.io"), 409, "email_taken")
    for email in ("ada@x.io", "\uff41da@x.io", "ADA@x.io"):
        assert (await login(client, email)).access_token
    token = await client.post(
        f"{API}/auth/token", data={"username": "\uff21DA@x.io", "password": PASSWORD}
    )
    assert token.status_code == 200, token.text


async def test_an_email_sent_decomposed_logs_in_to_the_account_registered_composed(
    client: AsyncClient,
) -> None:
    assert (await register(client, f"{NFC_CAFE}@x.io")).status_code == 201
    assert (await login(client, f"{NFD_CAFE}@x.io")).access_token
    assert (await login(client, f"{NFD_CAFE.upper()}@X.io")).access_token
    assert_problem(await register(client, f"{NFD_CAFE}@x.io"), 409, "email_taken")


async def test_an_email_registered_decomposed_logs_in_composed(client: AsyncClient) -> None:
    assert (await register(client, f"{NFD_CAFE}@x.io")).status_code == 201
    assert (await login(client, f"{NFC_CAFE}@x.io")).access_token


@pytest.mark.parametrize(
    "email",
    [
        "a\ufe6bb@x.io",  # a small commercial at: normalised, a second @
        "\u3300" * 64 + "@x.io",  # 64 characters, each four once normalised: too long
    ],
)
async def test_an_email_invalid_once_normalised_is_422_and_creates_nothing(
    client: AsyncClient, email: str
) -> None:
    response = await register(client, email)
    body = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["body.email"]


async def test_an_email_change_to_a_look_alike_of_another_account_is_409(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user("ada@x.io")
    await make_user("bob@x.io")
    # current_password: what an email change must carry (ignored where it is not yet asked for).
    change = {"email": "\uff42ob@x.io", "current_password": PASSWORD}
    taken = await client.patch(f"{API}/users/me", json=change, headers=ada.headers)
    assert_problem(taken, 409, "email_taken")
    change["email"] = "\uff23AROL@x.io"
    changed = await client.patch(f"{API}/users/me", json=change, headers=ada.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == "carol@x.io"
    assert (await login(client, "carol@x.io")).access_token


async def test_an_admin_finds_a_user_by_a_look_alike_of_their_email(
    client: AsyncClient, make_user: MakeUser
) -> None:
    admin = await make_user("admin@x.io", role=Role.ADMIN)
    await make_user("stra\u00dfe@x.io")  # stored case-folded: strasse@x.io
    for q in ("\uff33TRASSE", "stra\u00dfe@"):
        found = await client.get(f"{API}/users", params={"q": q}, headers=admin.headers)
        assert [u["email"] for u in found.json()["items"]] == ["strasse@x.io"], q


# Todo text


@pytest.mark.parametrize("title", ["\u200b", "\u200b\u200c\u200d\u2060\ufeff", " \u202e "])
async def test_a_title_of_invisible_characters_alone_is_422_naming_body_title(
    client: AsyncClient, make_user: MakeUser, title: str
) -> None:
    ada = await make_user()
    created = await client.post(f"{API}/todos", json={"title": title}, headers=ada.headers)
    body = assert_problem(created, 422, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["body.title"]
    todo = await create(client, ada, title="kept")
    path = f"{API}/todos/{todo['id']}"
    patched = await client.patch(path, json={"title": title}, headers=ada.headers)
    body = assert_problem(patched, 422, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["body.title"]
    assert (await client.get(path, headers=ada.headers)).json()["title"] == "kept"


async def test_a_tag_of_invisible_characters_alone_is_422_naming_it(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    response = await client.post(
        f"{API}/todos", json={"title": "t", "tags": ["home", "\u200b\u2066"]}, headers=ada.headers
    )
    body = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["body.tags.1"]


async def test_tags_alike_but_for_composition_or_invisible_characters_are_one(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    todo = await create(client, ada, tags=[NFC_CAFE, NFD_CAFE, "wo\u200brk", "work"])
    assert todo["tags"] == [NFC_CAFE, "work"]
    patched = await client.patch(
        f"{API}/todos/{todo['id']}",
        json={"tags": [NFD_CAFE.upper(), "\u2067work\u2069", "h\u00adome"]},
        headers=ada.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["tags"] == [NFC_CAFE, "home", "work"]


async def test_bidirectional_overrides_are_stripped_from_title_and_description(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    todo = await create(
        client, ada, title="Pay \u202eexe.txt\u202c now", description="a\u200fb \u2066c\u2069"
    )
    assert (todo["title"], todo["description"]) == ("Pay exe.txt now", "ab c")
    patched = await client.patch(
        f"{API}/todos/{todo['id']}",
        json={"title": "\u202dNew", "description": f"{NFD_CAFE}\u202e"},
        headers=ada.headers,
    )
    assert (patched.json()["title"], patched.json()["description"]) == ("New", NFC_CAFE)


async def test_q_and_tag_filters_find_what_was_stored_however_they_are_spelled(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    wanted = await create(client, ada, title=f"{NFD_CAFE} au lait", tags=[NFD_CAFE, "wo\u200brk"])
    await create(client, ada, title="tea", tags=["home"])

    async def found(**params: Any) -> list[str]:
        response = await client.get(f"{API}/todos", params=params, headers=ada.headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    for q in (NFC_CAFE, NFD_CAFE, "caf\u200b\u00e9", "Cafe\u0301 AU"):
        assert await found(q=q) == [wanted["id"]], ascii(q)
    for tag in (NFC_CAFE, NFD_CAFE, "work", "w\u2060ork"):
        assert await found(tag=tag) == [wanted["id"]], ascii(tag)
    assert await found(tag=[NFD_CAFE, NFC_CAFE, "work"]) == [wanted["id"]]


async def test_a_search_of_invisible_characters_alone_is_422_naming_q(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    response = await client.get(f"{API}/todos", params={"q": "\u200b"}, headers=ada.headers)
    body = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["query.q"]
