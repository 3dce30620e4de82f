"""Webhooks end to end: the API, the job engine running in the app's process (procrastinate on
PostgreSQL, in memory on SQLite), and a real receiver on a loopback port."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient
from standardwebhooks.webhooks import Webhook as StandardWebhook

from app.config import Settings
from app.domain.users import Role
from harness.receiver import Receiver, receiver
from tests.api.test_projects import add_todo, new_project, share
from tests.support import API, MakeUser, Session, assert_problem


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Jobs run in the app's process on both backends; retries come after a second.
    return settings.model_copy(update={"jobs_in_process": True, "webhook_retry_schedule": (1, 1)})


@pytest.fixture
async def hook_receiver() -> AsyncIterator[Receiver]:
    async with receiver() as target:
        yield target


async def subscribe(
    client: AsyncClient, who: Session, url: str, events: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    body = {"url": url, "events": events or ["*"], **extra}
    response = await client.post(f"{API}/webhooks", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliveries(client: AsyncClient, who: Session, webhook_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/webhooks/{webhook_id}/deliveries", headers=who.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def settled(
    client: AsyncClient, who: Session, webhook_id: str, count: int = 1
) -> list[dict[str, Any]]:
    """The delivery log once `count` deliveries have settled (succeeded or failed)."""
    async with asyncio.timeout(15):
        while True:
            items = await deliveries(client, who, webhook_id)
            done = [d for d in items if d["status"] in ("succeeded", "failed")]
            if len(done) >= count:
                return items
            await asyncio.sleep(0.1)


def verify(hook: dict[str, Any], request: Any) -> dict[str, Any]:
    """The body, once the Standard Webhooks library accepts its signature."""
    checked: dict[str, Any] = StandardWebhook(hook["secret"]).verify(request.body, request.headers)
    return checked


async def test_a_change_is_delivered_once_signed_with_the_standard_webhooks_scheme(
    client: AsyncClient, make_user: MakeUser, hook_receiver: Receiver
) -> None:
    ada = await make_user()
    hook = await subscribe(client, ada, hook_receiver.url)
    assert hook["secret"].startswith("whsec_")
    assert (hook["active"], hook["events"], hook["project_id"]) == (True, ["*"], None)
    todo = await add_todo(client, ada, title="ship it")
    (request,) = await hook_receiver.until(1)
    body = verify(hook, request)
    assert body["type"] == "todo.created"
    assert body["id"] == request.headers["webhook-id"]
    data = body["data"]
    assert (data["type"], data["todo_id"], data["todo"]["title"]) == (
        "todo.created",
        todo["id"],
        "ship it",
    )
    assert data["changes"] == {}
    assert abs(int(request.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 30
    (log,) = await settled(client, ada, hook["id"])
    assert (log["status"], log["attempts"], log["response_status"], log["error"]) == (
        "succeeded",
        1,
        204,
        None,
    )
    assert (log["event_id"], log["event_type"]) == (body["id"], "todo.created")
    await asyncio.sleep(1.5)  # a second dispatch tick adds nothing
    assert len(hook_receiver.received) == 1


async def test_a_failed_attempt_is_retried_with_the_same_event_id_then_succeeds(
    client: AsyncClient, make_user: MakeUser, hook_receiver: Receiver
) -> None:
    ada = await make_user()
    hook = await subscribe(client, ada, hook_receiver.url)
    hook_receiver.answers.extend([500, 503])
    await add_todo(client, ada)
    first, second, third = await hook_receiver.until(3)
    assert (
        first.headers["webhook-id"] == second.headers["webhook-id"] == third.headers["webhook-id"]
    )
    for request in (first, second, third):
        verify(hook, request)  # each attempt signed anew
    (log,) = await settled(client, ada, hook["id"])
    assert (log["status"], log["attempts"], log["response_status"]) == ("succeeded", 3, 204)


async def test_a_spent_schedule_is_failed_and_a_410_turns_the_webhook_off(
    client: AsyncClient, make_user: MakeUser, hook_receiver: Receiver
) -> None:
    ada = await make_user()
    hook = await subscribe(client, ada, hook_receiver.url)
    hook_receiver.status = 500
    await add_todo(client, ada)
    (log,) = await settled(client, ada, hook["id"])
    assert (log["status"], log["attempts"], log["error"], log["response_status"]) == (
        "failed",
        3,  # the first attempt and one per delay of the schedule (1,1)
        "http_status",
        500,
    )
    hook_receiver.status = 410
    await add_todo(client, ada)
    await settled(client, ada, hook["id"], 2)
    got = await client.get(f"{API}/webhooks/{hook['id']}", headers=ada.headers)
    assert got.json()["active"] is False


async def test_a_webhook_hears_only_its_event_types_and_its_project(
    client: AsyncClient, make_user: MakeUser, hook_receiver: Receiver
) -> None:
    ada = await make_user()
    project = await new_project(client, ada, "Work")
    hook = await subscribe(
        client, ada, hook_receiver.url, ["todo.updated"], project_id=project["id"]
    )
    assert hook["project_id"] == project["id"]
    elsewhere = await add_todo(client, ada)  # the Inbox
    here = await add_todo(client, ada, project["id"])
    for todo in (elsewhere, here):
        response = await client.patch(
            f"{API}/todos/{todo['id']}", json={"completed": True}, headers=ada.headers
        )
        assert response.status_code == 200, response.text
    (request,) = await hook_receiver.until(1)
    body = verify(hook, request)
    assert (body["type"], body["data"]["todo_id"]) == ("todo.updated", here["id"])
    assert body["data"]["changes"]["completed"] == {"from": False, "to": True}
    await asyncio.sleep(1.5)
    assert len(hook_receiver.received) == 1


async def test_a_refused_write_delivers_nothing(
    client: AsyncClient, make_user: MakeUser, hook_receiver: Receiver
) -> None:
    ada = await make_user()
    await subscribe(client, ada, hook_receiver.url)
    refused = await client.post(f"{API}/todos", json={"title": ""}, headers=ada.headers)
    assert refused.status_code == 422
    await add_todo(client, ada, title="the only one")
    (request,) = await hook_receiver.until(1)
    assert request.json["data"]["todo"]["title"] == "the only one"
    await asyncio.sleep(1.5)
    assert len(hook_receiver.received) == 1


async def test_a_member_removed_hears_of_it_then_nothing_and_the_webhook_turns_off(
    client: AsyncClient, make_user: MakeUser, hook_receiver: Receiver
) -> None:
    ada, bob = await make_user(), await make_user()
    project = await share(client, ada, bob, "editor")
    hook = await subscribe(client, bob, hook_receiver.url, project_id=project["id"])
    me = (await client.get(f"{API}/users/me", headers=bob.headers)).json()
    removed = await client.delete(
        f"{API}/projects/{project['id']}/members/{me['id']}", headers=ada.headers
    )
    assert removed.status_code == 204
    await add_todo(client, ada, project["id"], "after bob left")
    (request,) = await hook_receiver.until(1)
    assert request.json["type"] == "member.removed"
    await settled(client, bob, hook["id"])
    await asyncio.sleep(1.5)
    assert len(hook_receiver.received) == 1
    got = await client.get(f"{API}/webhooks/{hook['id']}", headers=bob.headers)
    assert got.json()["active"] is False


async def test_ping_and_a_rotated_secret_sign_with_both_secrets_for_a_day(
    client: AsyncClient, make_user: MakeUser, hook_receiver: Receiver
) -> None:
    ada = await make_user()
    hook = await subscribe(client, ada, hook_receiver.url, ["todo.deleted"])
    rotated = await client.post(f"{API}/webhooks/{hook['id']}/rotate-secret", headers=ada.headers)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != hook["secret"]
    ping = await client.post(f"{API}/webhooks/{hook['id']}/ping", headers=ada.headers)
    assert ping.status_code == 202, ping.text
    assert ping.json()["event_type"] == "webhook.ping"
    (request,) = await hook_receiver.until(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (hook["secret"], new_secret):
        body = verify({"secret": secret}, request)
    assert (body["type"], body["data"]) == ("webhook.ping", {"webhook_id": hook["id"]})


async def test_webhooks_are_personal_and_checked(
    client: AsyncClient, make_user: MakeUser, hook_receiver: Receiver
) -> None:
    ada, eve = await make_user(), await make_user()
    guest = await make_user(role=Role.GUEST)
    hook = await subscribe(client, ada, hook_receiver.url, description="CI")
    listed = (await client.get(f"{API}/webhooks", headers=ada.headers)).json()
    assert [w["id"] for w in listed["items"]] == [hook["id"]]
    assert "secret" not in listed["items"][0]
    for method, path in (
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("GET", "/deliveries"),
        ("POST", "/ping"),
        ("POST", "/rotate-secret"),
    ):
        body = {"active": False} if method == "PATCH" else None
        response = await client.request(
            method, f"{API}/webhooks/{hook['id']}{path}", json=body, headers=eve.headers
        )
        assert_problem(response, 404, "webhook_not_found")
    assert (await client.get(f"{API}/webhooks", headers=eve.headers)).json()["items"] == []
    refused = await client.post(
        f"{API}/webhooks", json={"url": hook_receiver.url, "events": ["*"]}, headers=guest.headers
    )
    assert_problem(refused, 403, "forbidden")
    project = await new_project(client, ada, "Private")
    not_member = await client.post(
        f"{API}/webhooks",
        json={"url": hook_receiver.url, "events": ["*"], "project_id": project["id"]},
        headers=eve.headers,
    )
    assert_problem(not_member, 404, "project_not_found")
    for url in ("ftp://example.com/x", "http://user:pw@example.com/", "not a url"):
        bad = await client.post(
            f"{API}/webhooks", json={"url": url, "events": ["*"]}, headers=ada.headers
        )
        assert assert_problem(bad, 422, "webhook_url_not_allowed")["errors"][0]["field"] == (
            "body.url"
        )
    unknown = await client.post(
        f"{API}/webhooks",
        json={"url": hook_receiver.url, "events": ["todo.eaten"]},
        headers=ada.headers,
    )
    assert assert_problem(unknown, 422, "validation_error")["errors"][0]["field"] == "body.events"
    patched = await client.patch(
        f"{API}/webhooks/{hook['id']}",
        json={"events": ["todo.created"], "active": False, "description": "off"},
        headers=ada.headers,
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["events"], patched.json()["active"]) == (["todo.created"], False)
    deleted = await client.delete(f"{API}/webhooks/{hook['id']}", headers=ada.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"{API}/webhooks/{hook['id']}", headers=ada.headers)
    assert_problem(gone, 404, "webhook_not_found")


async def test_metrics_show_jobs_deliveries_and_the_retry_lag(
    client: AsyncClient, make_user: MakeUser, hook_receiver: Receiver
) -> None:
    ada = await make_user()
    hook = await subscribe(client, ada, hook_receiver.url)
    await add_todo(client, ada)
    await settled(client, ada, hook["id"])
    text = (await client.get("/metrics")).text
    assert 'todo_webhook_deliveries{status="succeeded"} 1.0' in text
    assert 'todo_webhook_deliveries{status="failed"} 0.0' in text
    assert "todo_webhook_retry_lag_seconds 0.0" in text
    assert 'todo_jobs{status="todo"}' in text
