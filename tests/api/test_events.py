"""Live events over HTTP (the app itself, streamed): a change reaches every member's open
stream, replay from Last-Event-ID then live, access per event, the stream's end, the cap."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from httpx import AsyncClient

from app.bootstrap import Container
from app.config import Settings
from app.main import create_app
from tests.api.test_projects import _me, accept, add_todo, invite, share
from tests.api.test_sync import sync
from tests.sse import AsgiStream
from tests.support import API, MakeUser, Session, assert_problem, login

OpenStream = Callable[..., Any]


@pytest.fixture
async def open_stream(app: Any) -> AsyncIterator[OpenStream]:
    streams: list[AsgiStream] = []

    async def open_(who: Session, **kwargs: Any) -> AsgiStream:
        stream = AsgiStream(app, who.headers, **kwargs)
        streams.append(stream)
        return stream

    yield open_
    for stream in streams:
        await stream.close()


async def test_a_change_reaches_the_open_streams_of_every_member(
    client: AsyncClient, make_user: MakeUser, open_stream: OpenStream
) -> None:
    ada, bob, eve = await make_user(), await make_user(), await make_user()
    project = await share(client, ada, bob, "viewer")
    streams = [await open_stream(who) for who in (ada, bob, eve)]
    for stream in streams:
        assert await stream.started() == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
    todo = await add_todo(client, ada, project["id"], "shared news")
    for stream in streams[:2]:
        event = await stream.until("todo.created")
        data = event.json
        assert (data["type"], data["todo_id"], data["project_id"]) == (
            "todo.created",
            todo["id"],
            project["id"],
        )
        assert data["todo"]["title"] == "shared news"
        assert data["actor_id"] == (await _me(client, ada))["id"]
        assert event.id
    await streams[2].nothing_within(0.5)


async def test_an_event_id_is_a_sync_token_that_resumes_after_it(
    client: AsyncClient, make_user: MakeUser, open_stream: OpenStream
) -> None:
    ada = await make_user()
    stream = await open_stream(ada)
    await stream.started()
    first = await add_todo(client, ada, None, "first")
    event = await stream.until("todo.created")
    await stream.close()
    second = await add_todo(client, ada, None, "second")
    await client.patch(f"{API}/todos/{first['id']}", json={"completed": True}, headers=ada.headers)
    resumed = await open_stream(ada, last_event_id=event.id)
    assert await resumed.started() == 200
    replayed = [await resumed.next(), await resumed.next()]
    assert [(e.event, e.json["todo_id"]) for e in replayed] == [
        ("todo.created", second["id"]),
        ("todo.updated", first["id"]),
    ]
    third = await add_todo(client, ada, None, "third")
    live = await resumed.until("todo.created")
    assert live.json["todo_id"] == third["id"]
    page = await sync(client, ada, token=event.id)
    assert {t["id"] for t in page["todos"]} == {first["id"], second["id"], third["id"]}
    by_query = await open_stream(ada, token=event.id)
    assert (await by_query.next()).json["todo_id"] == second["id"]


async def test_an_unusable_token_is_answered_before_the_stream_starts(
    client: AsyncClient, make_user: MakeUser, open_stream: OpenStream
) -> None:
    ada, bob = await make_user(), await make_user()
    token = (await sync(client, ada))["sync_token"]
    for who, resume in ((ada, "garbage"), (bob, token)):
        stream = await open_stream(who, last_event_id=resume)
        assert await stream.started() == 400
        assert await stream.next() is None
        assert b'"invalid_sync_token"' in stream.body
        assert stream.headers["content-type"] == "application/problem+json"
    response = await client.get(f"{API}/events")
    assert_problem(response, 401, "not_authenticated")


async def test_a_removed_member_hears_of_it_then_nothing_more_of_the_project(
    client: AsyncClient, make_user: MakeUser, open_stream: OpenStream
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await share(client, ada, bob, "editor")
    stream = await open_stream(bob)
    await stream.started()
    bob_id = (await _me(client, bob))["id"]
    removed = await client.delete(
        f"{API}/projects/{project['id']}/members/{bob_id}", headers=ada.headers
    )
    assert removed.status_code == 204
    event = await stream.until("member.removed")
    assert (event.json["project_id"], event.json["member_id"]) == (project["id"], bob_id)
    await add_todo(client, ada, project["id"], "secret")
    await stream.nothing_within(0.5)


async def test_member_removed_carries_the_member_it_was_email_for_owner_and_themself(
    client: AsyncClient, make_user: MakeUser, open_stream: OpenStream
) -> None:
    ada, bob, cy = await make_user(), await make_user(), await make_user()
    renamed = await client.patch(f"{API}/users/me", json={"full_name": "Bob"}, headers=bob.headers)
    assert renamed.status_code == 200, renamed.text
    project = await share(client, ada, bob, "editor")
    joined = await accept(client, cy, (await invite(client, ada, project, "viewer"))["token"])
    assert joined.status_code == 200, joined.text
    members = await client.get(f"{API}/projects/{project['id']}/members", headers=ada.headers)
    bob_then = next(m for m in members.json()["items"] if m["full_name"] == "Bob")
    before = (await sync(client, ada))["sync_token"]
    sessions = {"ada": ada, "bob": bob, "cy": cy}
    streams = {who: await open_stream(session) for who, session in sessions.items()}
    for stream in streams.values():
        assert await stream.started() == 200
    removed = await client.delete(
        f"{API}/projects/{project['id']}/members/{bob_then['user_id']}", headers=ada.headers
    )
    assert removed.status_code == 204
    seen = {who: (await stream.until("member.removed")).json for who, stream in streams.items()}
    assert seen["ada"]["member"] == bob_then  # the owner: the Member as it was, email and all
    assert seen["ada"]["member"]["role"] == "editor"
    assert seen["ada"]["member"]["email"] == bob.email
    assert seen["bob"]["member"] == bob_then  # themself: their own email too
    assert seen["cy"]["member"] == {**bob_then, "email": None}  # another member: no email
    for data in seen.values():
        assert data["member_id"] == bob_then["user_id"]
        assert data["changes"] == {}
    # Replayed from the log (a stream resuming from before the removal): the same Member.
    resumed = await open_stream(ada, last_event_id=before)
    assert (await resumed.until("member.removed")).json["member"] == bob_then


async def test_a_project_deleted_reaches_every_member_it_had(
    client: AsyncClient, make_user: MakeUser, open_stream: OpenStream
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await share(client, ada, bob, "viewer")
    stream = await open_stream(bob)
    await stream.started()
    assert (
        await client.delete(f"{API}/projects/{project['id']}", headers=ada.headers)
    ).status_code == 204
    event = await stream.until("project.deleted")
    assert event.json["project_id"] == project["id"]
    assert "project" not in event.json


async def test_a_todo_moved_away_is_todo_moved_with_only_its_id_and_the_old_project(
    client: AsyncClient, make_user: MakeUser, open_stream: OpenStream
) -> None:
    ada, bob = await make_user(), await make_user()
    shared = await share(client, ada, bob, "viewer", "Shared")
    todo = await add_todo(client, ada, shared["id"])
    inbox_stream, bob_stream = await open_stream(ada), await open_stream(bob)
    await inbox_stream.started()
    await bob_stream.started()
    inbox_id = next(p["id"] for p in (await sync(client, ada))["projects"] if p["is_inbox"])
    moved = await client.patch(
        f"{API}/todos/{todo['id']}", json={"project_id": inbox_id}, headers=ada.headers
    )
    assert moved.status_code == 200, moved.text
    event = await bob_stream.until("todo.moved")
    assert event.json["todo_id"] == todo["id"]
    assert event.json["project_id"] == shared["id"]
    assert "todo" not in event.json
    assert event.json["changes"] == {}
    owner_view = await inbox_stream.until("todo.updated")
    assert "project_id" in owner_view.json["changes"]


async def test_the_stream_ends_with_stream_end_when_its_token_is_revoked(
    client: AsyncClient, make_user: MakeUser, open_stream: OpenStream
) -> None:
    ada = await make_user()
    stream = await open_stream(ada)
    await stream.started()
    logout = await client.post(f"{API}/auth/logout", json={}, headers=ada.headers)
    assert logout.status_code == 204
    # An event for the stream: its token is checked before anything is sent.
    await add_todo(client, await login(client, ada.email))
    end = await stream.until("stream.end")
    assert end.json == {"reason": "revoked"}
    assert await stream.next() is None


async def test_shutdown_ends_every_stream_with_stream_end(
    make_user: MakeUser, open_stream: OpenStream, container: Container
) -> None:
    ada = await make_user()
    stream = await open_stream(ada)
    await stream.started()
    container.live_feed.shut_down()
    end = await stream.until("stream.end")
    assert end.json == {"reason": "shutdown"}
    assert await stream.next() is None


async def test_one_stream_more_than_the_cap_is_a_429(
    make_user: MakeUser, open_stream: OpenStream, container: Container
) -> None:
    ada = await make_user()
    cap = container.settings.sse_max_streams_per_user
    streams = [await open_stream(ada) for _ in range(cap)]
    for stream in streams:
        assert await stream.started() == 200
    refused = await open_stream(ada)
    assert await refused.started() == 429
    assert b'"rate_limited"' in refused.body
    assert "retry-after" in refused.headers
    await streams[0].close()
    again = await open_stream(ada)
    assert await again.started() == 200


async def test_head_answers_what_the_get_would_start_with_and_holds_no_stream(
    client: AsyncClient, make_user: MakeUser, open_stream: OpenStream, container: Container
) -> None:
    ada = await make_user()
    cap = container.settings.sse_max_streams_per_user
    streams = [await open_stream(ada) for _ in range(cap - 1)]
    for stream in streams:
        assert await stream.started() == 200
    for _ in range(3):  # a HEAD takes no place: the last place stays free
        head = await client.head(f"{API}/events", headers=ada.headers)
        assert head.status_code == 200
        assert head.content == b""
    last = await open_stream(ada)
    assert await last.started() == 200
    same = ("content-type", "cache-control", "x-accel-buffering", "vary")
    assert {name: head.headers.get(name) for name in same} == {
        name: last.headers.get(name) for name in same
    }
    assert head.headers["content-type"].startswith("text/event-stream")
    # At the cap, as the GET: 429 with Retry-After, and no body.
    full = await client.head(f"{API}/events", headers=ada.headers)
    assert (full.status_code, full.content) == (429, b"")
    assert "retry-after" in full.headers
    assert full.headers["content-type"] == "application/problem+json"
    # An unusable token, no token at all, an instance shutting down: the GET's statuses.
    garbage = {**ada.headers, "Last-Event-ID": "garbage"}
    assert (await client.head(f"{API}/events", headers=garbage)).status_code == 400
    assert (await client.head(f"{API}/events")).status_code == 401
    await last.close()
    container.live_feed.shut_down()
    closing = await client.head(f"{API}/events", headers=ada.headers)
    assert (closing.status_code, closing.content) == (503, b"")


async def test_the_stream_is_documented_as_text_event_stream(client: AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"][f"{API}/events"]["get"]
    content = operation["responses"]["200"]["content"]
    assert "text/event-stream" in content
    assert "EventData" in document["components"]["schemas"]
    assert "410" in operation["responses"]
    assert "429" in operation["responses"]
    assert "SyncRead" in str(document["paths"][f"{API}/sync"]["get"]["responses"]["200"])
    assert "`HEAD` answers what this GET" in operation["description"]


async def test_many_streams_closing_at_once_give_back_every_place(
    app: Any, settings: Settings, make_user: MakeUser
) -> None:
    """50 streams on an instance whose Redis pool holds 4 connections close in the same
    moment: every place is given back at once (not left to lapse), so as many open again."""
    many = 50
    changes: dict[str, Any] = {"sse_max_streams_per_user": many}
    if settings.redis_url:
        changes["redis_url"] = f"{settings.redis_url}?max_connections=4"
    small = create_app(settings.model_copy(update=changes))
    ada = await make_user()
    async with small.router.lifespan_context(small):
        streams = [AsgiStream(small, ada.headers) for _ in range(many)]
        try:
            assert [await stream.started() for stream in streams] == [200] * many
            await asyncio.gather(*(stream.close() for stream in streams))
            streams = [AsgiStream(small, ada.headers) for _ in range(many)]
            assert [await stream.started() for stream in streams] == [200] * many
            refused = AsgiStream(small, ada.headers)
            streams.append(refused)
            assert await refused.started() == 429
        finally:
            await asyncio.gather(*(stream.close() for stream in streams))
