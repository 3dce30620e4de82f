"""Sync over HTTP: a full sync, then what changed since, chained by `limit` and `has_more`,
with `removed` for what the caller can no longer hold; tokens bound to their user."""

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from httpx import AsyncClient

from app.application.sync import SyncPosition
from app.bootstrap import Container
from tests.api.test_projects import _me, accept, add_todo, invite, new_project, share
from tests.support import API, MakeUser, Session, assert_problem

HORIZON_PATIENCE_SECONDS = 15


async def sync(
    client: AsyncClient,
    who: Session,
    *,
    until: Callable[[dict[str, Any]], bool] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """One page. With `until`, the same call again until the page satisfies it: on
    PostgreSQL a sync reads only below the horizon, which any transaction of the server still
    running holds back (another test run's, on a shared server), so a change just committed
    may come a moment later, never skipped."""
    deadline = asyncio.get_running_loop().time() + HORIZON_PATIENCE_SECONDS
    while True:
        response = await client.get(f"{API}/sync", params=params, headers=who.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if until is None or until(body) or asyncio.get_running_loop().time() > deadline:
            return body
        await asyncio.sleep(0.05)


async def sync_all(
    client: AsyncClient, who: Session, token: str | None = None, **params: Any
) -> tuple[list[dict[str, Any]], str]:
    """Every page of a chain, from `token` (none: a full sync) until `has_more` is false."""
    pages = []
    while True:
        if token is not None:
            params["token"] = token
        page = await sync(client, who, **params)
        pages.append(page)
        token = page["sync_token"]
        if not page["has_more"]:
            return pages, token


async def sync_all_until(
    client: AsyncClient,
    who: Session,
    token: str,
    until: Callable[[list[dict[str, Any]]], bool],
    **params: Any,
) -> tuple[list[dict[str, Any]], str]:
    """Chains from `token` again and again until the pages so far satisfy `until` (see
    `sync` for why a change may come a moment late)."""
    deadline = asyncio.get_running_loop().time() + HORIZON_PATIENCE_SECONDS
    pages: list[dict[str, Any]] = []
    while True:
        more, token = await sync_all(client, who, token, **params)
        pages += more
        if until(pages) or asyncio.get_running_loop().time() > deadline:
            return pages, token
        await asyncio.sleep(0.05)


class Replica:
    """A client's local copy, kept as a sync client keeps it."""

    def __init__(self) -> None:
        self.projects: dict[str, dict[str, Any]] = {}
        self.todos: dict[str, dict[str, Any]] = {}

    def apply(self, page: dict[str, Any]) -> None:
        for project in page["projects"]:
            self.projects[project["id"]] = project
        for todo in page["todos"]:
            self.todos[todo["id"]] = todo
        for project_id in page["removed"]["projects"]:
            self.projects.pop(project_id, None)
            for todo_id in [
                t for t, todo in self.todos.items() if todo["project_id"] == project_id
            ]:
                del self.todos[todo_id]
        for todo_id in page["removed"]["todos"]:
            self.todos.pop(todo_id, None)


async def current_state(client: AsyncClient, who: Session) -> Replica:
    """What the caller can read now, through the ordinary list routes."""
    state = Replica()
    projects = await client.get(f"{API}/projects", params={"limit": 100}, headers=who.headers)
    for project in projects.json()["items"]:
        state.projects[project["id"]] = project
    for deleted in ("false", "true"):
        listed = await client.get(
            f"{API}/todos", params={"limit": 100, "deleted": deleted}, headers=who.headers
        )
        for todo in listed.json()["items"]:
            state.todos[todo["id"]] = todo
    return state


async def test_a_full_sync_has_every_project_and_todo_the_trash_included(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    home = await new_project(client, ada, "Home")
    kept = await add_todo(client, ada, home["id"], "kept")
    trashed = await add_todo(client, ada, None, "trashed")
    await client.delete(f"{API}/todos/{trashed['id']}", headers=ada.headers)
    page = await sync(client, ada)
    assert (page["full"], page["has_more"]) == (True, False)
    assert page["removed"] == {"projects": [], "todos": []}
    assert {p["name"] for p in page["projects"]} == {"Inbox", "Home"}
    assert all(p["role"] == "owner" for p in page["projects"])
    todos = {t["id"]: t for t in page["todos"]}
    assert set(todos) == {kept["id"], trashed["id"]}
    assert todos[trashed["id"]]["deleted_at"] is not None
    assert todos[kept["id"]]["deleted_at"] is None


async def test_an_incremental_sync_with_nothing_new_is_empty_and_keeps_working(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    await add_todo(client, ada)
    first = await sync(client, ada)
    again = await sync(client, ada, token=first["sync_token"])
    assert (again["full"], again["has_more"]) == (False, False)
    assert again["projects"] == again["todos"] == []
    assert again["removed"] == {"projects": [], "todos": []}
    later = await sync(client, ada, token=again["sync_token"])
    assert later["todos"] == []


async def test_an_incremental_sync_has_each_changed_todo_once_in_its_current_state(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    edited = await add_todo(client, ada, None, "edited")
    trashed = await add_todo(client, ada, None, "trashed")
    purged = await add_todo(client, ada, None, "purged")
    untouched = await add_todo(client, ada, None, "untouched")
    token = (await sync(client, ada))["sync_token"]
    url = f"{API}/todos/{edited['id']}"
    await client.patch(url, json={"title": "edited once"}, headers=ada.headers)
    await client.patch(url, json={"completed": True}, headers=ada.headers)
    await client.delete(f"{API}/todos/{trashed['id']}", headers=ada.headers)
    await client.delete(f"{API}/todos/{purged['id']}?permanent=true", headers=ada.headers)
    created = await add_todo(client, ada, None, "created")
    page = await sync(client, ada, token=token, until=lambda p: len(p["todos"]) == 3)
    todos = {t["id"]: t for t in page["todos"]}
    assert len(page["todos"]) == len(todos) == 3
    assert (todos[edited["id"]]["title"], todos[edited["id"]]["completed"]) == ("edited once", True)
    assert todos[trashed["id"]]["deleted_at"] is not None
    assert created["id"] in todos
    assert untouched["id"] not in todos
    assert page["removed"] == {"projects": [], "todos": [purged["id"]]}
    assert page["projects"] == []


async def test_limit_chains_pages_and_every_page_of_a_full_sync_says_full(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    home = await new_project(client, ada, "Home")
    for n in range(4):
        await add_todo(client, ada, home["id"], f"home {n}")
        await add_todo(client, ada, None, f"inbox {n}")
    pages, token = await sync_all(client, ada, limit=3)
    assert len(pages) >= 4
    assert all(page["full"] for page in pages)
    assert all(len(page["projects"]) + len(page["todos"]) <= 3 for page in pages)
    assert [page["has_more"] for page in pages] == [True] * (len(pages) - 1) + [False]
    replica = Replica()
    for page in pages:
        replica.apply(page)
    assert replica.todos == (await current_state(client, ada)).todos
    assert len(replica.projects) == 2
    after = await sync(client, ada, token=token)
    assert (after["full"], after["todos"]) == (False, [])


async def test_changes_chain_by_limit_and_each_is_seen_once(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    replica = Replica()
    pages, token = await sync_all(client, ada)
    for page in pages:
        replica.apply(page)
    for n in range(7):
        await add_todo(client, ada, None, f"new {n}")
    pages, token = await sync_all_until(
        client, ada, token, lambda pages: sum(len(p["todos"]) for p in pages) >= 7, limit=2
    )
    seen = [todo["id"] for page in pages for todo in page["todos"]]
    assert len(seen) == len(set(seen)) == 7
    assert not any(page["full"] for page in pages)
    for page in pages:
        replica.apply(page)
    assert replica.todos == (await current_state(client, ada)).todos


async def test_a_joined_project_comes_whole_with_its_todos_even_across_pages(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await new_project(client, ada, "Shared")
    for n in range(5):
        await add_todo(client, ada, project["id"], f"shared {n}")
    replica = Replica()
    pages, token = await sync_all(client, bob)
    for page in pages:
        replica.apply(page)
    joined = await accept(client, bob, (await invite(client, ada, project, "viewer"))["token"])
    assert joined.status_code == 200
    pages, token = await sync_all_until(
        client, bob, token, lambda pages: any(p["projects"] for p in pages), limit=2
    )
    pages = pages[next(n for n, p in enumerate(pages) if p["projects"]) :]
    assert len(pages) >= 3
    assert pages[0]["projects"][0]["id"] == project["id"]
    assert pages[0]["projects"][0]["role"] == "viewer"
    for page in pages:
        replica.apply(page)
    assert replica.todos == (await current_state(client, bob)).todos
    assert len([t for t in replica.todos.values() if t["project_id"] == project["id"]]) == 5


async def test_a_removed_member_and_the_members_of_a_deleted_project_get_it_in_removed(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob, cy = await make_user(), await make_user(), await make_user()
    left = await share(client, ada, bob, "editor", "Left")
    gone = await share(client, ada, cy, "editor", "Gone")
    await add_todo(client, ada, left["id"])
    bob_token = (await sync(client, bob))["sync_token"]
    cy_token = (await sync(client, cy))["sync_token"]
    bob_id = (await _me(client, bob))["id"]
    removal = await client.delete(
        f"{API}/projects/{left['id']}/members/{bob_id}", headers=ada.headers
    )
    assert removal.status_code == 204
    await add_todo(client, ada, left["id"], "after the removal")
    assert (
        await client.delete(f"{API}/projects/{gone['id']}", headers=ada.headers)
    ).status_code == 204
    bob_page = await sync(client, bob, token=bob_token, until=lambda p: p["removed"]["projects"])
    assert bob_page["removed"]["projects"] == [left["id"]]
    assert bob_page["todos"] == []
    assert bob_page["projects"] == []
    cy_page = await sync(client, cy, token=cy_token, until=lambda p: p["removed"]["projects"])
    assert cy_page["removed"]["projects"] == [gone["id"]]
    ada_page = await sync(client, ada, token=(await sync(client, ada))["sync_token"])
    assert ada_page["removed"] == {"projects": [], "todos": []}


async def test_a_todo_moved_where_the_caller_cannot_read_is_removed_for_them(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    shared = await share(client, ada, bob, "viewer", "Shared")
    private = await new_project(client, ada, "Private")
    todo = await add_todo(client, ada, shared["id"])
    token = (await sync(client, bob))["sync_token"]
    moved = await client.patch(
        f"{API}/todos/{todo['id']}", json={"project_id": private["id"]}, headers=ada.headers
    )
    assert moved.status_code == 200
    page = await sync(client, bob, token=token, until=lambda p: p["removed"]["todos"])
    assert page["removed"]["todos"] == [todo["id"]]
    assert page["todos"] == []


async def test_a_tampered_token_or_another_users_is_400_and_an_old_one_410(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada, bob = await make_user(), await make_user()
    token = (await sync(client, ada))["sync_token"]
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (tampered, "not-a-token", token + "x"):
        response = await client.get(f"{API}/sync", params={"token": bad}, headers=ada.headers)
        assert_problem(response, 400, "invalid_sync_token")
    others = await client.get(f"{API}/sync", params={"token": token}, headers=bob.headers)
    assert_problem(others, 400, "invalid_sync_token")
    ada_id = UUID((await _me(client, ada))["id"])
    old = container.clock.now() - timedelta(days=container.settings.sync_retention_days, hours=1)
    expired = container.sync_tokens.encode(ada_id, SyncPosition((1, 0), old))
    response = await client.get(f"{API}/sync", params={"token": expired}, headers=ada.headers)
    assert_problem(response, 410, "sync_token_expired")


async def test_limit_outside_1_to_1000_is_a_422_naming_it(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    for limit in (0, 1001, "x"):
        response = await client.get(f"{API}/sync", params={"limit": limit}, headers=ada.headers)
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["field"] == "query.limit"
    assert (await client.get(f"{API}/sync")).status_code == 401


async def test_an_admins_reach_adds_nothing_to_their_sync(
    client: AsyncClient, make_user: MakeUser
) -> None:
    from app.domain.users import Role

    ada = await make_user()
    await add_todo(client, ada, None, "ada's")
    admin = await make_user(role=Role.ADMIN)
    page = await sync(client, admin)
    assert [p["name"] for p in page["projects"]] == ["Inbox"]
    assert page["todos"] == []
