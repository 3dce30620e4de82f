"""Projects and sharing over HTTP: the Inbox, project CRUD with ETags, invitations, members,
membership as the rule of access (404 for a non-member, 403 for a member without the right),
todos across projects, and a removal or a lowered role biting on the very next request."""

from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import pytest
import sqlalchemy as sa
from httpx import AsyncClient, Response

from app.bootstrap import Container
from app.domain.users import Role
from app.infrastructure.orm import InvitationRow
from tests.support import API, MakeUser, Session, assert_problem

NOBODY = "00000000-0000-0000-0000-000000000000"


async def inbox(client: AsyncClient, who: Session) -> dict[str, Any]:
    page = (await client.get(f"{API}/projects", headers=who.headers)).json()
    first: dict[str, Any] = page["items"][0]
    assert first["is_inbox"]
    return first


async def new_project(client: AsyncClient, owner: Session, name: str = "Home") -> dict[str, Any]:
    response = await client.post(f"{API}/projects", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def invite(
    client: AsyncClient, owner: Session, project: dict[str, Any], role: str = "editor"
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/projects/{project['id']}/invitations", json={"role": role}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def accept(client: AsyncClient, who: Session, token: str) -> Response:
    return await client.post(
        f"{API}/invitations/accept", json={"token": token}, headers=who.headers
    )


async def share(
    client: AsyncClient, owner: Session, member: Session, role: str = "editor", name: str = "Home"
) -> dict[str, Any]:
    """A project of `owner`'s that `member` joined with `role`."""
    project = await new_project(client, owner, name)
    joined = await accept(client, member, (await invite(client, owner, project, role))["token"])
    assert joined.status_code == 200, joined.text
    return project


async def add_todo(
    client: AsyncClient, who: Session, project_id: str | None = None, title: str = "t"
) -> dict[str, Any]:
    body: dict[str, Any] = {"title": title}
    if project_id is not None:
        body["project_id"] = project_id
    response = await client.post(f"{API}/todos", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# The Inbox


async def test_every_account_has_an_inbox_where_todos_go_by_default(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    box = await inbox(client, ada)
    assert (box["name"], box["role"], box["color"], box["version"]) == ("Inbox", "owner", None, 1)
    todo = await add_todo(client, ada)
    assert todo["project_id"] == box["id"]
    assert todo["owner_id"] == todo["created_by"] == box["owner_id"]


async def test_the_inbox_can_be_neither_deleted_nor_shared(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    box = await inbox(client, ada)
    deleted = await client.delete(f"{API}/projects/{box['id']}", headers=ada.headers)
    assert_problem(deleted, 409, "inbox_protected")
    invited = await client.post(
        f"{API}/projects/{box['id']}/invitations", json={"role": "viewer"}, headers=ada.headers
    )
    assert_problem(invited, 409, "inbox_protected")


# Project CRUD


async def test_projects_list_the_inbox_first_then_in_the_order_the_caller_got_them(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    first = await new_project(client, ada, "first")
    joined = await share(client, bob, ada, "viewer", name="bob's")
    last = await new_project(client, ada, "last")
    page = await client.get(f"{API}/projects", params={"limit": 2}, headers=ada.headers)
    rest = await client.get(
        f"{API}/projects", params={"cursor": page.json()["next_cursor"]}, headers=ada.headers
    )
    names = [p["name"] for p in page.json()["items"] + rest.json()["items"]]
    assert names == ["Inbox", "first", "bob's", "last"]
    assert [p["role"] for p in rest.json()["items"]] == ["viewer", "owner"]
    assert rest.json()["next_cursor"] is None
    assert {first["id"], joined["id"], last["id"]} <= {
        p["id"] for p in page.json()["items"] + rest.json()["items"]
    }


async def test_create_then_read_rename_and_delete_with_etags(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    created = await client.post(
        f"{API}/projects",
        json={"name": "  Home ", "color": "#AABBCC", "id": NOBODY, "role": "viewer"},
        headers=ada.headers,
    )
    assert created.status_code == 201
    project = created.json()
    assert (project["name"], project["color"], project["role"]) == ("Home", "#aabbcc", "owner")
    assert created.headers["location"] == f"{API}/projects/{project['id']}"
    tag = created.headers["etag"]
    url = f"{API}/projects/{project['id']}"
    read = await client.get(url, headers=ada.headers)
    assert read.headers["etag"] == tag
    assert (await client.get(url, headers={**ada.headers, "If-None-Match": tag})).status_code == 304
    renamed = await client.patch(
        url, json={"name": "House", "color": None}, headers={**ada.headers, "If-Match": tag}
    )
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["color"]) == ("House", None)
    assert renamed.headers["etag"] != tag
    stale = await client.patch(url, json={"name": "x"}, headers={**ada.headers, "If-Match": tag})
    assert_problem(stale, 412, "precondition_failed")
    gone = await client.delete(url, headers={**ada.headers, "If-Match": tag})
    assert_problem(gone, 412, "precondition_failed")
    deleted = await client.delete(url, headers={**ada.headers, "If-Match": renamed.headers["etag"]})
    assert deleted.status_code == 204
    assert_problem(await client.get(url, headers=ada.headers), 404, "project_not_found")


async def test_a_projects_etag_changes_with_the_callers_role(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await share(client, ada, bob, "editor")
    url = f"{API}/projects/{project['id']}"
    before = (await client.get(url, headers=bob.headers)).headers["etag"]
    lowered = await client.patch(
        f"{url}/members/{(await _me(client, bob))['id']}",
        json={"role": "viewer"},
        headers=ada.headers,
    )
    assert lowered.status_code == 200
    after = await client.get(url, headers={**bob.headers, "If-None-Match": before})
    assert after.status_code == 200
    assert after.json()["role"] == "viewer"


async def test_deleting_a_project_deletes_its_todos_members_and_invitations(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await share(client, ada, bob)
    pending = await invite(client, ada, project)
    todo = await add_todo(client, bob, project["id"])
    assert (
        await client.delete(f"{API}/projects/{project['id']}", headers=ada.headers)
    ).status_code == 204
    assert_problem(
        await client.get(f"{API}/todos/{todo['id']}", headers=bob.headers), 404, "todo_not_found"
    )
    assert [
        p["name"]
        for p in (await client.get(f"{API}/projects", headers=bob.headers)).json()["items"]
    ] == ["Inbox"]
    assert_problem(
        await accept(client, await make_user(), pending["token"]), 404, "invitation_not_found"
    )


async def _me(client: AsyncClient, who: Session) -> dict[str, Any]:
    me: dict[str, Any] = (await client.get(f"{API}/users/me", headers=who.headers)).json()
    return me


# Membership is the rule of access


def _project_paths(project_id: str, todo_id: str, member_id: str) -> list[tuple[str, str, Any]]:
    """Every path of a project and of a todo in it: (method, path, body)."""
    p, t = f"{API}/projects/{project_id}", f"{API}/todos/{todo_id}"
    return [
        ("GET", p, None),
        ("PATCH", p, {"name": "x"}),
        ("DELETE", p, None),
        ("GET", f"{p}/members", None),
        ("PATCH", f"{p}/members/{member_id}", {"role": "viewer"}),
        ("DELETE", f"{p}/members/{member_id}", None),
        ("POST", f"{p}/invitations", {"role": "viewer"}),
        ("GET", f"{p}/invitations", None),
        ("DELETE", f"{p}/invitations/{NOBODY}", None),
        ("GET", f"{p}/activity", None),
        ("GET", t, None),
        ("PATCH", t, {"title": "x"}),
        ("DELETE", t, None),
        ("DELETE", f"{t}?permanent=true", None),
        ("POST", f"{t}/restore", None),
        ("GET", f"{t}/activity", None),
    ]


async def test_a_non_member_gets_404_on_every_path_of_the_project_and_its_todos(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, eve = await make_user(), await make_user()
    project = await new_project(client, ada)
    todo = await add_todo(client, ada, project["id"])
    ada_id = (await _me(client, ada))["id"]
    for method, path, body in _project_paths(project["id"], todo["id"], ada_id):
        response = await client.request(method, path, json=body, headers=eve.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] in {"project_not_found", "todo_not_found"}
    creating = await client.post(
        f"{API}/todos", json={"title": "t", "project_id": project["id"]}, headers=eve.headers
    )
    assert_problem(creating, 404, "project_not_found")
    moving = await client.patch(
        f"{API}/todos/{(await add_todo(client, eve))['id']}",
        json={"project_id": project["id"]},
        headers=eve.headers,
    )
    assert_problem(moving, 404, "project_not_found")
    assert (await client.get(f"{API}/todos/{todo['id']}", headers=ada.headers)).json() == todo


async def test_a_viewer_gets_403_on_every_write_and_reads_everything(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, vic = await make_user(), await make_user()
    project = await share(client, ada, vic, "viewer")
    todo = await add_todo(client, ada, project["id"])
    trashed = await add_todo(client, ada, project["id"])
    await client.delete(f"{API}/todos/{trashed['id']}", headers=ada.headers)
    ada_id = (await _me(client, ada))["id"]
    p, t = f"{API}/projects/{project['id']}", f"{API}/todos/{todo['id']}"
    writes = [
        ("POST", f"{API}/todos", {"title": "t", "project_id": project["id"]}),
        ("PATCH", t, {"title": "x"}),
        (
            "PATCH",
            f"{API}/todos/{(await add_todo(client, vic))['id']}",
            {"project_id": project["id"]},
        ),
        ("DELETE", t, None),
        ("DELETE", f"{t}?permanent=true", None),
        ("POST", f"{API}/todos/{trashed['id']}/restore", None),
        ("PATCH", p, {"name": "x"}),
        ("DELETE", p, None),
        ("PATCH", f"{p}/members/{ada_id}", {"role": "viewer"}),
        ("DELETE", f"{p}/members/{ada_id}", None),
        ("POST", f"{p}/invitations", {"role": "viewer"}),
        ("GET", f"{p}/invitations", None),
        ("DELETE", f"{p}/invitations/{NOBODY}", None),
    ]
    for method, path, body in writes:
        response = await client.request(method, path, json=body, headers=vic.headers)
        assert_problem(response, 403, "forbidden")
    for path in (t, p, f"{p}/members", f"{p}/activity", f"{t}/activity"):
        assert (await client.get(path, headers=vic.headers)).status_code == 200, path
    listed = await client.get(f"{API}/todos", headers=vic.headers)
    assert todo["id"] in {item["id"] for item in listed.json()["items"]}
    assert (await client.get(t, headers=ada.headers)).json() == todo


async def test_a_guest_editor_is_still_read_only_and_cannot_create_projects(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, guest = await make_user(), await make_user(role=Role.GUEST)
    project = await share(client, ada, guest, "editor")
    todo = await add_todo(client, ada, project["id"])
    assert (await client.get(f"{API}/todos/{todo['id']}", headers=guest.headers)).status_code == 200
    for method, path, body in [
        ("POST", f"{API}/todos", {"title": "t", "project_id": project["id"]}),
        ("PATCH", f"{API}/todos/{todo['id']}", {"title": "x"}),
        ("POST", f"{API}/projects", {"name": "mine"}),
    ]:
        response = await client.request(method, path, json=body, headers=guest.headers)
        assert_problem(response, 403, "forbidden")


async def test_an_admin_reads_any_project_by_id_but_never_acts_as_its_owner(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, admin = await make_user(), await make_user(role=Role.ADMIN)
    project = await new_project(client, ada)
    url = f"{API}/projects/{project['id']}"
    read = await client.get(url, headers=admin.headers)
    assert read.status_code == 200
    assert read.json()["role"] is None
    assert_problem(
        await client.patch(url, json={"name": "x"}, headers=admin.headers), 403, "forbidden"
    )
    todo = await add_todo(client, admin, project["id"])  # todos:write_all
    assert todo["owner_id"] == project["owner_id"]
    assert project["id"] not in {
        p["id"]
        for p in (await client.get(f"{API}/projects", headers=admin.headers)).json()["items"]
    }


# Invitations


async def test_an_accepted_invitation_token_is_refused_the_second_time(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob, cat = await make_user(), await make_user(), await make_user()
    project = await new_project(client, ada)
    invitation = await invite(client, ada, project, "viewer")
    assert len(invitation["token"]) >= 22  # at least 128 random bits, url-safe base64
    assert set(invitation) == {"id", "role", "email", "created_at", "expires_at", "token"}
    joined = await accept(client, bob, invitation["token"])
    assert joined.status_code == 200
    assert (joined.json()["id"], joined.json()["role"]) == (project["id"], "viewer")
    assert_problem(await accept(client, cat, invitation["token"]), 404, "invitation_not_found")
    preview = await client.post(
        f"{API}/invitations/preview", json={"token": invitation["token"]}, headers=cat.headers
    )
    assert_problem(preview, 404, "invitation_not_found")


async def test_preview_shows_the_project_and_inviter_and_uses_nothing_up(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await new_project(client, ada, "Garden")
    invitation = await invite(client, ada, project, "editor")
    for _ in range(2):
        preview = await client.post(
            f"{API}/invitations/preview", json={"token": invitation["token"]}, headers=bob.headers
        )
        assert preview.status_code == 200
    body = preview.json()
    assert body["project"] == {"id": project["id"], "name": "Garden"}
    assert (body["role"], body["invited_by"]["id"]) == ("editor", project["owner_id"])
    assert (await accept(client, bob, invitation["token"])).status_code == 200


async def test_an_expired_invitation_token_is_refused(
    client: AsyncClient, make_user: MakeUser, container: Container
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await new_project(client, ada)
    invitation = await invite(client, ada, project)
    expires = datetime.fromisoformat(invitation["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    table = cast(sa.Table, InvitationRow.__table__)
    async with container.engine.begin() as connection:
        await connection.execute(
            sa.update(table)
            .where(table.c.id == UUID(invitation["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert_problem(await accept(client, bob, invitation["token"]), 404, "invitation_not_found")
    listed = await client.get(f"{API}/projects/{project['id']}/invitations", headers=ada.headers)
    assert listed.json()["items"] == []


async def test_a_revoked_invitation_token_is_refused(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await new_project(client, ada)
    kept, revoked = await invite(client, ada, project), await invite(client, ada, project)
    url = f"{API}/projects/{project['id']}/invitations"
    listed = (await client.get(url, headers=ada.headers)).json()["items"]
    assert [i["id"] for i in listed] == [kept["id"], revoked["id"]]
    assert all("token" not in i for i in listed)
    assert (await client.delete(f"{url}/{revoked['id']}", headers=ada.headers)).status_code == 204
    assert_problem(
        await client.delete(f"{url}/{revoked['id']}", headers=ada.headers),
        404,
        "invitation_not_found",
    )
    assert_problem(await accept(client, bob, revoked["token"]), 404, "invitation_not_found")
    assert (await accept(client, bob, kept["token"])).status_code == 200


async def test_a_member_accepting_again_is_409_and_the_token_stays_usable(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await share(client, ada, bob)
    invitation = await invite(client, ada, project)
    assert_problem(await accept(client, bob, invitation["token"]), 409, "already_member")
    assert_problem(await accept(client, ada, invitation["token"]), 409, "already_member")
    assert (await accept(client, await make_user(), invitation["token"])).status_code == 200


# Members


async def test_members_list_the_owner_first_and_show_emails_to_the_owner_only(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob, cat = (
        await make_user("ada@x.io"),
        await make_user("bob@x.io"),
        await make_user("cat@x.io"),
    )
    project = await share(client, ada, bob, "editor")
    await accept(client, cat, (await invite(client, ada, project, "viewer"))["token"])
    url = f"{API}/projects/{project['id']}/members"
    as_owner = (await client.get(url, headers=ada.headers)).json()["items"]
    assert [(m["email"], m["role"]) for m in as_owner] == [
        ("ada@x.io", "owner"),
        ("bob@x.io", "editor"),
        ("cat@x.io", "viewer"),
    ]
    as_bob = (await client.get(url, headers=bob.headers)).json()["items"]
    assert [m["email"] for m in as_bob] == [None, "bob@x.io", None]
    paged = await client.get(url, params={"limit": 2}, headers=bob.headers)
    rest = await client.get(
        url, params={"cursor": paged.json()["next_cursor"]}, headers=bob.headers
    )
    assert [m["user_id"] for m in paged.json()["items"] + rest.json()["items"]] == [
        m["user_id"] for m in as_bob
    ]


async def test_the_owner_role_is_fixed_and_the_owner_cannot_leave(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await share(client, ada, bob)
    owner_url = f"{API}/projects/{project['id']}/members/{project['owner_id']}"
    changed = await client.patch(owner_url, json={"role": "viewer"}, headers=ada.headers)
    assert_problem(changed, 409, "owner_role_fixed")
    assert_problem(await client.delete(owner_url, headers=ada.headers), 409, "owner_cannot_leave")
    unknown = await client.patch(
        f"{API}/projects/{project['id']}/members/{NOBODY}",
        json={"role": "viewer"},
        headers=ada.headers,
    )
    assert_problem(unknown, 404, "member_not_found")
    as_owner = await client.patch(
        f"{API}/projects/{project['id']}/members/{NOBODY}",
        json={"role": "owner"},
        headers=ada.headers,
    )
    assert_problem(as_owner, 422, "validation_error")


async def test_a_member_may_leave(client: AsyncClient, make_user: MakeUser) -> None:
    ada, bob = await make_user(), await make_user()
    project = await share(client, ada, bob, "viewer")
    bob_id = (await _me(client, bob))["id"]
    left = await client.delete(
        f"{API}/projects/{project['id']}/members/{bob_id}", headers=bob.headers
    )
    assert left.status_code == 204
    assert_problem(
        await client.get(f"{API}/projects/{project['id']}", headers=bob.headers),
        404,
        "project_not_found",
    )


async def test_a_removed_member_is_locked_out_on_the_next_request(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await share(client, ada, bob, "editor")
    todo = await add_todo(client, bob, project["id"])
    bob_id = (await _me(client, bob))["id"]
    assert (await client.get(f"{API}/todos/{todo['id']}", headers=bob.headers)).status_code == 200
    removed = await client.delete(
        f"{API}/projects/{project['id']}/members/{bob_id}", headers=ada.headers
    )
    assert removed.status_code == 204
    assert_problem(
        await client.get(f"{API}/todos/{todo['id']}", headers=bob.headers), 404, "todo_not_found"
    )
    assert todo["id"] not in {
        t["id"] for t in (await client.get(f"{API}/todos", headers=bob.headers)).json()["items"]
    }
    # The todo they created stays, in the project, made by them.
    kept = (await client.get(f"{API}/todos/{todo['id']}", headers=ada.headers)).json()
    assert kept["created_by"] == bob_id


async def test_a_lowered_role_bites_on_the_next_request(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await share(client, ada, bob, "editor")
    bob_id = (await _me(client, bob))["id"]
    await add_todo(client, bob, project["id"])
    lowered = await client.patch(
        f"{API}/projects/{project['id']}/members/{bob_id}",
        json={"role": "viewer"},
        headers=ada.headers,
    )
    assert (lowered.status_code, lowered.json()["role"]) == (200, "viewer")
    refused = await client.post(
        f"{API}/todos", json={"title": "t", "project_id": project["id"]}, headers=bob.headers
    )
    assert_problem(refused, 403, "forbidden")


# Todos across projects


async def test_the_list_and_stats_span_every_project_of_the_caller_and_narrow_by_project(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    shared = await share(client, bob, ada)
    own = await add_todo(client, ada, title="mine")
    theirs = await add_todo(client, bob, shared["id"], title="in shared")
    await add_todo(client, bob, title="bob's inbox")
    listed = await client.get(f"{API}/todos", headers=ada.headers)
    assert [t["title"] for t in listed.json()["items"]] == ["in shared", "mine"]
    narrowed = await client.get(
        f"{API}/todos", params={"project_id": shared["id"]}, headers=ada.headers
    )
    assert [t["id"] for t in narrowed.json()["items"]] == [theirs["id"]]
    stats = await client.get(f"{API}/todos/stats", headers=ada.headers)
    assert stats.json()["total"] == 2
    stats = await client.get(
        f"{API}/todos/stats", params={"project_id": own["project_id"]}, headers=ada.headers
    )
    assert stats.json()["total"] == 1
    foreign = await client.get(
        f"{API}/todos", params={"project_id": (await inbox(client, bob))["id"]}, headers=ada.headers
    )
    assert foreign.json()["items"] == []


async def test_the_list_pages_across_projects_without_skipping_or_repeating(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    projects = [await share(client, bob, ada, name=f"p{n}") for n in range(3)]
    made = set()
    for n in range(12):
        where = projects[n % 3]["id"] if n % 4 else None
        made.add((await add_todo(client, ada, where, title=f"t{n % 5}"))["id"])
    for sort in ("-created_at", "title", "-priority,due_at"):
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 5, "sort": sort, **({"cursor": cursor} if cursor else {})}
            page = (await client.get(f"{API}/todos", params=params, headers=ada.headers)).json()
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(made), sort


async def test_a_move_needs_an_editor_on_both_sides(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    editing = await share(client, bob, ada, "editor", name="editing")
    viewing = await share(client, bob, ada, "viewer", name="viewing")
    todo = await add_todo(client, ada)
    url = f"{API}/todos/{todo['id']}"
    moved = await client.patch(url, json={"project_id": editing["id"]}, headers=ada.headers)
    assert moved.status_code == 200
    assert (moved.json()["project_id"], moved.json()["owner_id"]) == (
        editing["id"],
        editing["owner_id"],
    )
    assert moved.json()["created_by"] == todo["created_by"]
    refused = await client.patch(url, json={"project_id": viewing["id"]}, headers=ada.headers)
    assert_problem(refused, 403, "forbidden")
    unknown = await client.patch(url, json={"project_id": NOBODY}, headers=ada.headers)
    assert_problem(unknown, 404, "project_not_found")


async def test_deleting_an_account_takes_its_projects_and_leaves_what_it_made_elsewhere(
    client: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    adas = await share(client, ada, bob, name="ada's")
    bobs = await share(client, bob, ada, name="bob's")
    made_in_bobs = await add_todo(client, ada, bobs["id"])
    in_adas = await add_todo(client, bob, adas["id"])
    assert (await client.delete(f"{API}/users/me", headers=ada.headers)).status_code == 204
    assert_problem(
        await client.get(f"{API}/todos/{in_adas['id']}", headers=bob.headers), 404, "todo_not_found"
    )
    kept = await client.get(f"{API}/todos/{made_in_bobs['id']}", headers=bob.headers)
    assert kept.status_code == 200
    members = await client.get(f"{API}/projects/{bobs['id']}/members", headers=bob.headers)
    assert [m["role"] for m in members.json()["items"]] == ["owner"]
    activity = await client.get(f"{API}/projects/{bobs['id']}/activity", headers=bob.headers)
    assert activity.json()["items"][0]["type"] == "member.removed"


@pytest.mark.parametrize("sort", ["-created_at", "due_at"])
async def test_the_trash_lists_across_projects(
    client: AsyncClient, make_user: MakeUser, sort: str
) -> None:
    ada, bob = await make_user(), await make_user()
    shared = await share(client, bob, ada)
    mine, theirs = await add_todo(client, ada), await add_todo(client, bob, shared["id"])
    for todo in (mine, theirs):
        await client.delete(f"{API}/todos/{todo['id']}", headers=ada.headers)
    trash = await client.get(
        f"{API}/todos", params={"deleted": "true", "sort": sort}, headers=ada.headers
    )
    assert {t["id"] for t in trash.json()["items"]} == {mine["id"], theirs["id"]}
