"""Activity over HTTP: one entry per object a successful write changed, with `changes` as
{field: {from, to}}, none for a refused or no-op write; per todo and per project, newest
first, in keyset pages."""

from typing import Any

from httpx import AsyncClient

from tests.api.test_projects import _me, add_todo, invite, new_project, share
from tests.support import API, MakeUser, Session, assert_problem


async def history(
    client: AsyncClient, who: Session, path: str, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/{path}/activity", params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_each_todo_write_records_one_entry_with_what_changed(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    ada_id = (await _me(client, ada))["id"]
    todo = await add_todo(client, ada, title="Buy milk")
    url = f"{API}/todos/{todo['id']}"
    await client.patch(url, json={"title": "Buy oat milk", "priority": "high"}, headers=ada.headers)
    await client.patch(url, json={"title": "Buy oat milk"}, headers=ada.headers)  # no change
    await client.patch(url, json={"completed": True}, headers=ada.headers)
    await client.delete(url, headers=ada.headers)
    await client.post(f"{url}/restore", headers=ada.headers)
    await client.post(f"{url}/restore", headers=ada.headers)  # live already: no change
    entries = await history(client, ada, f"todos/{todo['id']}")
    assert [e["type"] for e in entries] == [
        "todo.restored",
        "todo.deleted",
        "todo.updated",
        "todo.updated",
        "todo.created",
    ]
    restored, deleted, completed, renamed, created = entries
    assert renamed["changes"] == {
        "title": {"from": "Buy milk", "to": "Buy oat milk"},
        "priority": {"from": "medium", "to": "high"},
    }
    assert set(completed["changes"]) == {"completed", "completed_at"}
    assert completed["changes"]["completed"] == {"from": False, "to": True}
    assert created["changes"] == deleted["changes"] == restored["changes"] == {}
    assert {(e["actor_id"], e["todo_id"], e["project_id"]) for e in entries} == {
        (ada_id, todo["id"], todo["project_id"])
    }
    assert set(created) == {
        "id",
        "at",
        "actor_id",
        "type",
        "project_id",
        "todo_id",
        "member_id",
        "changes",
    }
    await client.delete(f"{url}?permanent=true", headers=ada.headers)
    purged = await history(client, ada, f"projects/{todo['project_id']}", limit=1)
    assert (purged[0]["type"], purged[0]["todo_id"]) == ("todo.purged", todo["id"])


async def test_a_refused_write_records_nothing(client: AsyncClient, make_user: MakeUser) -> None:
    ada, vic = await make_user(), await make_user()
    project = await share(client, ada, vic, "viewer")
    todo = await add_todo(client, ada, project["id"])
    before = await history(client, ada, f"projects/{project['id']}")
    url = f"{API}/todos/{todo['id']}"
    stale = await client.patch(url, json={"title": "x"}, headers={**ada.headers, "If-Match": '"9"'})
    assert_problem(stale, 412, "precondition_failed")
    assert_problem(
        await client.patch(url, json={"title": "x"}, headers=vic.headers), 403, "forbidden"
    )
    invalid = await client.patch(url, json={"title": ""}, headers=ada.headers)
    assert invalid.status_code == 422
    assert await history(client, ada, f"projects/{project['id']}") == before


async def test_a_projects_history_has_its_members_and_its_todos_newest_first(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    bob_id = (await _me(client, bob))["id"]
    project = await share(client, ada, bob, "editor")
    members = f"{API}/projects/{project['id']}/members/{bob_id}"
    await client.patch(members, json={"role": "viewer"}, headers=ada.headers)
    await client.patch(
        f"{API}/projects/{project['id']}", json={"name": "House"}, headers=ada.headers
    )
    await add_todo(client, ada, project["id"])
    await client.delete(members, headers=ada.headers)
    entries = await history(client, ada, f"projects/{project['id']}")
    assert [e["type"] for e in entries] == [
        "member.removed",
        "todo.created",
        "project.updated",
        "member.updated",
        "member.added",
        "project.created",
    ]
    removed, _, renamed, lowered, added, _ = entries
    assert renamed["changes"] == {"name": {"from": "Home", "to": "House"}}
    assert lowered["changes"] == {"role": {"from": "editor", "to": "viewer"}}
    assert added["changes"] == {"role": {"from": None, "to": "editor"}}
    assert (added["actor_id"], added["member_id"]) == (bob_id, bob_id)
    assert removed["member_id"] == bob_id
    # Pages, newest first, neither skipping nor repeating.
    first = await client.get(
        f"{API}/projects/{project['id']}/activity", params={"limit": 4}, headers=ada.headers
    )
    rest = await client.get(
        f"{API}/projects/{project['id']}/activity",
        params={"cursor": first.json()["next_cursor"]},
        headers=ada.headers,
    )
    assert first.json()["items"] + rest.json()["items"] == entries
    other = await new_project(client, ada, "other")
    crossed = await client.get(
        f"{API}/projects/{other['id']}/activity",
        params={"cursor": first.json()["next_cursor"]},
        headers=ada.headers,
    )
    assert_problem(crossed, 400, "invalid_cursor")


async def test_a_move_is_a_project_id_change_seen_in_both_projects_histories(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    private = await new_project(client, ada, "private")
    shared = await share(client, ada, bob, "editor", name="shared")
    todo = await add_todo(client, ada, private["id"])
    moved = await client.patch(
        f"{API}/todos/{todo['id']}", json={"project_id": shared["id"]}, headers=ada.headers
    )
    assert moved.status_code == 200
    [entry, *_] = await history(client, ada, f"todos/{todo['id']}")
    assert entry["type"] == "todo.updated"
    assert entry["project_id"] == shared["id"]
    assert entry["changes"]["project_id"] == {"from": private["id"], "to": shared["id"]}
    for project in (private, shared):
        latest = (await history(client, ada, f"projects/{project['id']}"))[0]
        assert latest["id"] == entry["id"]
    # Bob reads the todo's history only while it was where he can read.
    bobs = await history(client, bob, f"todos/{todo['id']}")
    assert [e["id"] for e in bobs] == [entry["id"]]


async def test_a_projects_history_is_read_by_its_members_only(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, eve = await make_user(), await make_user()
    project = await new_project(client, ada)
    await invite(client, ada, project)  # invitations themselves record nothing
    assert [e["type"] for e in await history(client, ada, f"projects/{project['id']}")] == [
        "project.created"
    ]
    refused = await client.get(f"{API}/projects/{project['id']}/activity", headers=eve.headers)
    assert_problem(refused, 404, "project_not_found")
