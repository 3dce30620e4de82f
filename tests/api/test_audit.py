"""The audit trail: one record per security-relevant action, naming who, from where, in which
request and what changed; and no secret in any line of the log."""

import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from httpx import AsyncClient

from app.application.auth import token_digest
from app.bootstrap import Container
from app.config import Settings
from app.domain.users import Role
from app.main import create_app
from tests.conftest import empty_stores
from tests.support import API, PASSWORD, MakeUser, Session, login, restored_logging

NEW_PASSWORD = "a different horse battery"


@pytest.fixture
async def app(settings: Settings, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Any]:
    """The app, logging JSON at DEBUG (everything but the test client's own lines)."""
    caplog.set_level(logging.WARNING, logger="httpx")
    await empty_stores(settings)
    with restored_logging():
        changes = {"log_level": "DEBUG", "log_format": "json"}
        application = create_app(settings.model_copy(update=changes))
        async with application.router.lifespan_context(application):
            yield application


class Log:
    """What the app's log handler writes, as the process would print it."""

    def __init__(self) -> None:
        self._stream = io.StringIO()
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(self._stream)
        self._read = 0

    @property
    def text(self) -> str:
        return self._stream.getvalue()

    def read(self) -> list[dict[str, Any]]:
        """Every line written since the last read, parsed."""
        out = self.text[self._read :]
        self._read += len(out)
        return [json.loads(line) for line in out.splitlines()]

    def audit(self) -> list[dict[str, Any]]:
        return [entry for entry in self.read() if entry["logger"] == "app.audit"]


@pytest.fixture
def log(app: Any) -> Log:
    return Log()


async def user_id(client: AsyncClient, session: Session) -> str:
    response = await client.get(f"{API}/users/me", headers=session.headers)
    return str(response.json()["id"])


def assert_record(
    entry: dict[str, Any], response: Any, action: str, *, actor: str | None, subject: str | None
) -> None:
    assert entry["action"] == action
    assert entry["message"] == action
    assert entry["actor_id"] == actor
    assert entry["subject_id"] == subject
    assert entry["client"] == "127.0.0.1"
    assert entry["request_id"] == response.headers["x-request-id"]


async def test_a_login_is_audited_with_who_and_from_where(
    client: AsyncClient, make_user: MakeUser, log: Log
) -> None:
    ada_id = await user_id(client, await make_user("ada@example.com"))
    log.read()

    response = await client.post(
        f"{API}/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )

    [entry] = log.audit()
    assert_record(entry, response, "login.succeeded", actor=ada_id, subject=None)


async def test_failed_logins_are_audited_with_the_normalised_email_and_why(
    client: AsyncClient, make_user: MakeUser, container: Container, log: Log
) -> None:
    ada_id = await user_id(client, await make_user("ada@example.com"))
    bob = await make_user("bob@example.com")
    admin = await make_user("admin@example.com", role=Role.ADMIN)
    bob_id = await user_id(client, bob)
    await client.patch(f"{API}/users/{bob_id}", json={"is_active": False}, headers=admin.headers)
    log.read()

    attempts = [
        ("  Nobody@Example.COM ", PASSWORD, "nobody@example.com", "unknown_email", None),
        ("ADA@example.com", "wrong password!", "ada@example.com", "wrong_password", ada_id),
        ("bob@example.com", PASSWORD, "bob@example.com", "account_disabled", bob_id),
    ]
    for email, password, normalised, reason, subject in attempts:
        response = await client.post(
            f"{API}/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code in (401, 403)
        [entry] = log.audit()
        assert_record(entry, response, "login.failed", actor=None, subject=subject)
        assert (entry["email"], entry["reason"]) == (normalised, reason)


async def test_a_password_change_is_audited(
    client: AsyncClient, make_user: MakeUser, log: Log
) -> None:
    ada = await make_user()
    ada_id = await user_id(client, ada)
    log.read()

    response = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=ada.headers,
    )

    assert response.status_code == 204
    [entry] = log.audit()
    assert_record(entry, response, "password.changed", actor=ada_id, subject=ada_id)


async def test_an_email_change_is_audited_with_both_addresses(
    client: AsyncClient, make_user: MakeUser, log: Log
) -> None:
    ada = await make_user("ada@example.com")
    ada_id = await user_id(client, ada)
    log.read()

    response = await client.patch(
        f"{API}/users/me",
        json={"email": "ada@new.example", "current_password": PASSWORD},
        headers=ada.headers,
    )

    assert response.status_code == 200
    [entry] = log.audit()
    assert_record(entry, response, "user.updated", actor=ada_id, subject=ada_id)
    assert entry["changes"] == {"email": {"from": "ada@example.com", "to": "ada@new.example"}}


async def test_a_name_change_is_not_an_audited_decision(
    client: AsyncClient, make_user: MakeUser, log: Log
) -> None:
    ada = await make_user()
    log.read()
    response = await client.patch(f"{API}/users/me", json={"full_name": "Ada"}, headers=ada.headers)
    assert response.status_code == 200
    assert log.audit() == []


async def test_an_admins_role_and_active_changes_are_audited(
    client: AsyncClient, make_user: MakeUser, log: Log
) -> None:
    admin = await make_user(role=Role.ADMIN)
    admin_id = await user_id(client, admin)
    bob_id = await user_id(client, await make_user())
    log.read()

    response = await client.patch(
        f"{API}/users/{bob_id}", json={"role": "admin", "is_active": False}, headers=admin.headers
    )

    assert response.status_code == 200
    [entry] = log.audit()
    assert_record(entry, response, "user.updated", actor=admin_id, subject=bob_id)
    assert entry["changes"] == {
        "role": {"from": "user", "to": "admin"},
        "is_active": {"from": True, "to": False},
    }


async def test_account_deletions_are_audited(
    client: AsyncClient, make_user: MakeUser, log: Log
) -> None:
    admin = await make_user(role=Role.ADMIN)
    admin_id = await user_id(client, admin)
    ada = await make_user()
    ada_id = await user_id(client, ada)
    bob_id = await user_id(client, await make_user())
    log.read()

    by_admin = await client.delete(f"{API}/users/{bob_id}", headers=admin.headers)
    assert by_admin.status_code == 204
    [entry] = log.audit()
    assert_record(entry, by_admin, "user.deleted", actor=admin_id, subject=bob_id)

    by_herself = await client.delete(f"{API}/users/me", headers=ada.headers)
    assert by_herself.status_code == 204
    [entry] = log.audit()
    assert_record(entry, by_herself, "user.deleted", actor=ada_id, subject=ada_id)


async def test_an_admins_writes_to_someone_elses_todo_are_audited(
    client: AsyncClient, make_user: MakeUser, log: Log
) -> None:
    admin = await make_user(role=Role.ADMIN)
    admin_id = await user_id(client, admin)
    ada = await make_user()
    ada_id = await user_id(client, ada)
    created = await client.post(f"{API}/todos", json={"title": "mine"}, headers=ada.headers)
    todo = f"{API}/todos/{created.json()['id']}"
    todo_id = created.json()["id"]
    log.read()

    writes = [
        (
            client.patch(
                todo, json={"title": "changed", "priority": "high"}, headers=admin.headers
            ),
            "todo.updated",
        ),
        (client.delete(todo, headers=admin.headers), "todo.trashed"),
        (client.post(f"{todo}/restore", headers=admin.headers), "todo.restored"),
        (client.delete(f"{todo}?permanent=true", headers=admin.headers), "todo.deleted"),
    ]
    for request, action in writes:
        response = await request
        assert response.status_code in (200, 204), response.text
        [entry] = log.audit()
        assert_record(entry, response, action, actor=admin_id, subject=todo_id)
        assert entry["owner_id"] == ada_id
        if action == "todo.updated":
            assert entry["fields"] == ["title", "priority"]


async def test_writes_to_ones_own_todo_are_not_audited(
    client: AsyncClient, make_user: MakeUser, log: Log
) -> None:
    admin = await make_user(role=Role.ADMIN)
    created = await client.post(f"{API}/todos", json={"title": "mine"}, headers=admin.headers)
    todo = f"{API}/todos/{created.json()['id']}"
    log.read()
    await client.patch(todo, json={"title": "changed"}, headers=admin.headers)
    await client.delete(todo, headers=admin.headers)
    assert log.audit() == []


async def test_access_lines_name_the_client_and_the_authenticated_actor(
    client: AsyncClient, make_user: MakeUser, log: Log
) -> None:
    ada = await make_user()
    ada_id = await user_id(client, ada)
    log.read()

    await client.get(f"{API}/todos", headers=ada.headers)
    await client.get("/health")

    todos, health = [entry for entry in log.read() if entry["logger"] == "app.access"]
    assert (todos["actor_id"], todos["client"]) == (ada_id, "127.0.0.1")
    assert (health["actor_id"], health["client"]) == (None, "127.0.0.1")


async def test_no_password_hash_or_token_reaches_the_log_across_an_auth_flow(
    client: AsyncClient, container: Container, log: Log
) -> None:
    email = "ada@example.com"
    registered = await client.post(
        f"{API}/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201
    failed = await client.post(f"{API}/auth/login", json={"email": email, "password": "Wr0ng pass"})
    assert failed.status_code == 401
    first = await login(client, email)
    refreshed = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": first.refresh_token}
    )
    second = Session.from_login(email, refreshed)
    changed = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=second.headers,
    )
    assert changed.status_code == 204
    logged_out = await client.post(
        f"{API}/auth/logout", json={"refresh_token": second.refresh_token}, headers=second.headers
    )
    assert logged_out.status_code == 204
    async with container.unit_of_work(read_only=True) as uow:
        user = await uow.users.get_by_email(email)
    assert user is not None

    log.read()
    assert {"login.failed", "login.succeeded", "password.changed"} <= {
        entry.get("action") for entry in map(json.loads, log.text.splitlines())
    }
    secrets = [PASSWORD, "Wr0ng pass", NEW_PASSWORD, user.password_hash]
    for session in (first, second):
        secrets += [session.access_token, session.refresh_token]
        secrets += [token_digest(session.refresh_token)]
    # Each secret whole, and its part after the last `$` or `.` (a hash's digest, a JWT's
    # signature), in case a line printed only that.
    for secret in secrets:
        for part in {secret, secret.rsplit("$", 1)[-1], secret.rsplit(".", 1)[-1]}:
            assert part not in log.text
    assert isinstance(UUID(str(user.id)), UUID)
