"""Todo CRUD over HTTP: validation, ownership, ETags, trash, stats, idempotent create."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis

from app.config import Settings
from app.domain.users import Role
from tests.conftest import TEST_REDIS_URL
from tests.support import API, MakeUser, Session, assert_problem


async def create(client: AsyncClient, who: Session, **fields: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/todos", json={"title": "t", **fields}, headers=who.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_normalises_and_sets_server_fields(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    response = await client.post(
        f"{API}/todos",
        json={
            "title": "  Buy milk  ",
            "tags": ["Home", " home", "Errands "],
            "priority": "high",
            "due_at": "2030-01-01T10:00:00+02:00",
            "owner_id": "00000000-0000-0000-0000-000000000000",
            "id": "00000000-0000-0000-0000-000000000000",
            "version": 99,
            "created_at": "2000-01-01T00:00:00Z",
        },
        headers=ada.headers,
    )
    assert response.status_code == 201
    todo = response.json()
    assert todo["title"] == "Buy milk"
    assert todo["tags"] == ["errands", "home"]
    assert todo["due_at"] == "2030-01-01T08:00:00Z"
    assert todo["description"] == ""
    assert todo["completed"] is False
    assert todo["completed_at"] is None
    assert todo["version"] == 1
    assert todo["id"] != "00000000-0000-0000-0000-000000000000"
    assert todo["owner_id"] != "00000000-0000-0000-0000-000000000000"
    assert not todo["created_at"].startswith("2000")
    assert response.headers["location"] == f"{API}/todos/{todo['id']}"
    assert response.headers["etag"] == '"1"'


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "   "}, "body.title"),
        ({"title": "x" * 201}, "body.title"),
        ({}, "body.title"),
        ({"title": "t", "description": "x" * 10_001}, "body.description"),
        ({"title": "t", "priority": "critical"}, "body.priority"),
        ({"title": "t", "due_at": "2030-01-01T10:00:00"}, "body.due_at"),
        ({"title": "t", "tags": [f"t{n}" for n in range(21)]}, "body.tags"),
        ({"title": "t", "tags": ["x" * 33]}, "body.tags.0"),
        ({"title": "t", "tags": ["  "]}, "body.tags.0"),
        ({"title": "t", "completed": "maybe"}, "body.completed"),
    ],
)
async def test_bad_todo_input_is_422_naming_the_field_and_creates_nothing(
    client: AsyncClient, make_user: MakeUser, body: dict[str, Any], field: str
) -> None:
    ada = await make_user()
    response = await client.post(f"{API}/todos", json=body, headers=ada.headers)
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["code"] == "validation_error"
    assert field in [error["field"] for error in problem["errors"]]
    listed = await client.get(f"{API}/todos", headers=ada.headers)
    assert listed.json()["items"] == []


# In UTC these fall in year 0 and year 10000, which no datetime (nor the driver) can hold.
PAST_THE_CALENDAR = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize("due_at", PAST_THE_CALENDAR)
async def test_a_due_date_past_the_calendar_in_utc_is_422_and_changes_nothing(
    client: AsyncClient, make_user: MakeUser, due_at: str
) -> None:
    ada = await make_user()
    created = await client.post(
        f"{API}/todos", json={"title": "t", "due_at": due_at}, headers=ada.headers
    )
    assert created.status_code == 422, created.text
    assert [error["field"] for error in created.json()["errors"]] == ["body.due_at"]
    todo = await create(client, ada)
    path = f"{API}/todos/{todo['id']}"
    patched = await client.patch(path, json={"due_at": due_at}, headers=ada.headers)
    assert patched.status_code == 422, patched.text
    assert [error["field"] for error in patched.json()["errors"]] == ["body.due_at"]
    assert (await client.get(path, headers=ada.headers)).json() == todo
    listed = await client.get(f"{API}/todos", headers=ada.headers)
    assert [item["id"] for item in listed.json()["items"]] == [todo["id"]]


async def test_due_dates_at_the_calendars_edge_in_utc_are_kept(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    first = await create(client, ada, due_at="0001-01-01T00:00:00-14:00")
    last = await create(client, ada, due_at="9999-12-31T23:59:59+00:00")
    assert first["due_at"] == "0001-01-01T14:00:00Z"
    assert last["due_at"] == "9999-12-31T23:59:59Z"
    page = await client.get(
        f"{API}/todos", params={"sort": "due_at", "limit": 1}, headers=ada.headers
    )
    assert [item["id"] for item in page.json()["items"]] == [first["id"]]
    cursor = page.json()["next_cursor"]
    rest = await client.get(
        f"{API}/todos", params={"sort": "due_at", "limit": 1, "cursor": cursor}, headers=ada.headers
    )
    assert [item["id"] for item in rest.json()["items"]] == [last["id"]]


async def test_twenty_tags_that_collapse_are_fine(client: AsyncClient, make_user: MakeUser) -> None:
    ada = await make_user()
    todo = await create(client, ada, tags=[f"Tag{n % 5}" for n in range(20)])
    assert todo["tags"] == [f"tag{n}" for n in range(5)]


async def test_someone_elses_todo_is_404_for_every_verb(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    todo = await create(client, ada)
    path = f"{API}/todos/{todo['id']}"
    for method, url, body in [
        ("GET", path, None),
        ("PATCH", path, {"title": "mine now"}),
        ("DELETE", path, None),
        ("DELETE", f"{path}?permanent=true", None),
        ("POST", f"{path}/restore", None),
    ]:
        response = await client.request(method, url, json=body, headers=bob.headers)
        assert response.status_code == 404, (method, url)
        assert response.json()["code"] == "todo_not_found"
    unchanged = await client.get(path, headers=ada.headers)
    assert unchanged.json()["title"] == "t"
    assert unchanged.json()["version"] == 1


async def test_a_missing_todo_and_someone_elses_look_the_same(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    todo = await create(client, ada)
    theirs = await client.get(f"{API}/todos/{todo['id']}", headers=bob.headers)
    missing = await client.get(
        f"{API}/todos/00000000-0000-0000-0000-000000000000", headers=bob.headers
    )
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"] == missing.json()["detail"]


async def test_guests_read_but_cannot_write(client: AsyncClient, make_user: MakeUser) -> None:
    guest = await make_user(role=Role.GUEST)
    assert (await client.get(f"{API}/todos", headers=guest.headers)).status_code == 200
    for method, path in [
        ("POST", "/todos"),
        ("PATCH", "/todos/00000000-0000-0000-0000-000000000000"),
        ("DELETE", "/todos/00000000-0000-0000-0000-000000000000"),
    ]:
        response = await client.request(
            method,
            f"{API}{path}",
            json={"title": "t"} if method != "DELETE" else None,
            headers=guest.headers,
        )
        assert response.status_code == 403, path
        assert response.json()["code"] == "forbidden"


async def test_admins_see_and_edit_everyones_todos_but_list_only_their_own_projects(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    admin = await make_user(role=Role.ADMIN)
    todo = await create(client, ada, title="ada's")
    listed = await client.get(f"{API}/todos", headers=admin.headers)
    assert listed.json()["items"] == []  # todos:read_all adds no project to the admin's list
    only_ada = await client.get(
        f"{API}/todos", params={"owner_id": todo["owner_id"]}, headers=admin.headers
    )
    assert len(only_ada.json()["items"]) == 1
    edited = await client.patch(
        f"{API}/todos/{todo['id']}", json={"completed": True}, headers=admin.headers
    )
    assert edited.status_code == 200
    assert edited.json()["owner_id"] == todo["owner_id"]


async def test_owner_id_filter_needs_read_all(client: AsyncClient, make_user: MakeUser) -> None:
    ada, bob = await make_user(), await make_user()
    todo = await create(client, ada)
    response = await client.get(
        f"{API}/todos", params={"owner_id": todo["owner_id"]}, headers=bob.headers
    )
    assert response.status_code == 403


async def test_patch_is_partial_and_completion_sets_completed_at(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    todo = await create(client, ada, description="keep me", due_at="2030-01-01T00:00:00Z")
    path = f"{API}/todos/{todo['id']}"
    done = (await client.patch(path, json={"completed": True}, headers=ada.headers)).json()
    assert done["completed"] is True
    assert done["completed_at"] is not None
    assert done["description"] == "keep me"
    assert done["version"] == 2
    cleared = (await client.patch(path, json={"due_at": None}, headers=ada.headers)).json()
    assert cleared["due_at"] is None
    reopened = (await client.patch(path, json={"completed": False}, headers=ada.headers)).json()
    assert reopened["completed_at"] is None
    assert reopened["version"] == 4
    same = await client.patch(path, json={"completed": False}, headers=ada.headers)
    assert same.json()["version"] == 4  # no change, no new version
    null_title = await client.patch(path, json={"title": None}, headers=ada.headers)
    assert null_title.status_code == 422
    assert null_title.json()["errors"][0]["field"] == "body.title"


async def test_etag_if_none_match_and_if_match(client: AsyncClient, make_user: MakeUser) -> None:
    ada = await make_user()
    todo = await create(client, ada)
    path = f"{API}/todos/{todo['id']}"
    got = await client.get(path, headers=ada.headers)
    assert got.headers["etag"] == '"1"'
    cached = await client.get(path, headers={**ada.headers, "If-None-Match": '"1"'})
    assert cached.status_code == 304
    assert cached.headers["etag"] == '"1"'
    assert cached.content == b""

    updated = await client.patch(
        path, json={"title": "new"}, headers={**ada.headers, "If-Match": '"1"'}
    )
    assert updated.status_code == 200
    assert updated.headers["etag"] == '"2"'

    stale = await client.patch(
        path, json={"title": "lost"}, headers={**ada.headers, "If-Match": '"1"'}
    )
    assert_problem(stale, 412, "precondition_failed")
    stale_delete = await client.delete(path, headers={**ada.headers, "If-Match": '"1"'})
    assert stale_delete.status_code == 412
    current = await client.get(path, headers={**ada.headers, "If-None-Match": '"1"'})
    assert current.status_code == 200
    assert current.json()["title"] == "new"
    assert current.json()["version"] == 2


async def test_weak_or_foreign_if_match_never_matches(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    todo = await create(client, ada)
    path = f"{API}/todos/{todo['id']}"
    for tag in ['W/"1"', '"abc"', '"1", "2"']:
        response = await client.patch(
            path, json={"title": "x"}, headers={**ada.headers, "If-Match": tag}
        )
        assert response.status_code == 412, tag
    star = await client.patch(path, json={"title": "x"}, headers={**ada.headers, "If-Match": "*"})
    assert star.status_code == 200


async def test_trash_restore_and_permanent_delete(client: AsyncClient, make_user: MakeUser) -> None:
    ada = await make_user()
    todo = await create(client, ada)
    path = f"{API}/todos/{todo['id']}"
    assert (await client.delete(path, headers=ada.headers)).status_code == 204
    assert (await client.get(path, headers=ada.headers)).status_code == 404
    live = await client.get(f"{API}/todos", headers=ada.headers)
    assert live.json()["items"] == []
    trash = await client.get(f"{API}/todos", params={"deleted": True}, headers=ada.headers)
    assert [t["id"] for t in trash.json()["items"]] == [todo["id"]]

    restored = await client.post(f"{path}/restore", headers=ada.headers)
    assert restored.status_code == 200
    assert restored.json()["version"] == 3
    assert (await client.get(path, headers=ada.headers)).status_code == 200
    again = await client.post(f"{path}/restore", headers=ada.headers)  # idempotent: as it is
    assert again.status_code == 200
    assert again.json() == restored.json()
    assert again.headers["etag"] == '"3"'

    await client.delete(path, headers=ada.headers)
    gone = await client.delete(f"{path}?permanent=true", headers=ada.headers)
    assert gone.status_code == 204
    trash = await client.get(f"{API}/todos", params={"deleted": True}, headers=ada.headers)
    assert trash.json()["items"] == []
    assert (await client.post(f"{path}/restore", headers=ada.headers)).status_code == 404


async def test_stats_count_own_live_todos_in_one_answer(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    await create(client, ada, priority="urgent", due_at=past)
    await create(client, ada, priority="urgent", due_at=past, completed=True)
    await create(client, ada, priority="low")
    trashed = await create(client, ada, priority="high")
    await client.delete(f"{API}/todos/{trashed['id']}", headers=ada.headers)
    await create(client, bob)
    stats = (await client.get(f"{API}/todos/stats", headers=ada.headers)).json()
    assert stats == {
        "total": 3,
        "completed": 1,
        "open": 2,
        "overdue": 1,
        "by_priority": {"low": 1, "medium": 0, "high": 0, "urgent": 2},
    }


async def test_idempotency_key_replays_the_first_response(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    headers = {**ada.headers, "Idempotency-Key": "order-42"}
    first = await client.post(f"{API}/todos", json={"title": "once"}, headers=headers)
    again = await client.post(f"{API}/todos", json={"title": "once"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    listed = await client.get(f"{API}/todos", headers=ada.headers)
    assert len(listed.json()["items"]) == 1

    reused = await client.post(f"{API}/todos", json={"title": "other"}, headers=headers)
    assert_problem(reused, 422, "idempotency_key_reused")

    # Keys are per user: Bob's identical key is his own.
    bobs = await client.post(
        f"{API}/todos",
        json={"title": "once"},
        headers={**bob.headers, "Idempotency-Key": "order-42"},
    )
    assert bobs.status_code == 201
    assert bobs.json()["id"] != first.json()["id"]


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs TEST_REDIS_URL")
async def test_idempotency_key_outlives_an_emptied_redis(
    client: AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    ada = await make_user()
    headers = {**ada.headers, "Idempotency-Key": "order-43"}
    first = await client.post(f"{API}/todos", json={"title": "once"}, headers=headers)
    assert first.status_code == 201
    redis = Redis.from_url(str(settings.redis_url))  # a restart without persistence, or a flush
    await redis.flushdb()
    await redis.aclose()

    again = await client.post(f"{API}/todos", json={"title": "once"}, headers=headers)

    assert again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    listed = await client.get(f"{API}/todos", headers=ada.headers)
    assert [t["id"] for t in listed.json()["items"]] == [first.json()["id"]]


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\tkey"])
async def test_bad_idempotency_keys_are_422(
    client: AsyncClient, make_user: MakeUser, key: str
) -> None:
    ada = await make_user()
    headers = [(b"authorization", ada.headers["Authorization"].encode())]
    headers.append((b"idempotency-key", key.encode()))
    response = await client.post(f"{API}/todos", json={"title": "t"}, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "header.Idempotency-Key"


async def test_every_operation_with_a_json_body_refuses_another_media_type_with_415(
    client: AsyncClient, app: Any
) -> None:
    operations = [
        (method, re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path))
        for path, methods in app.openapi()["paths"].items()
        for method, operation in methods.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert len(operations) >= 8
    answers = {
        f"{method.upper()} {path}": (
            await client.request(
                method,
                path,
                content=b"title=t",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        ).status_code
        for method, path in operations
    }
    assert answers == dict.fromkeys(answers, 415)


async def test_non_json_body_is_415(client: AsyncClient, make_user: MakeUser) -> None:
    ada = await make_user()
    response = await client.post(
        f"{API}/todos",
        content=b"title=t",
        headers={**ada.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415, "unsupported_media_type")


async def test_a_live_todo_can_be_deleted_for_good_and_trashing_twice_is_404(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    live, trashed = await create(client, ada), await create(client, ada)
    assert (
        await client.delete(f"{API}/todos/{trashed['id']}", headers=ada.headers)
    ).status_code == 204
    again = await client.delete(f"{API}/todos/{trashed['id']}", headers=ada.headers)
    assert again.status_code == 404
    gone = await client.delete(f"{API}/todos/{live['id']}?permanent=true", headers=ada.headers)
    assert gone.status_code == 204
    for deleted in (False, True):
        listed = await client.get(f"{API}/todos", params={"deleted": deleted}, headers=ada.headers)
        assert [t["id"] for t in listed.json()["items"]] == ([] if not deleted else [trashed["id"]])
