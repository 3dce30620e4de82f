"""What the use cases give the audit trail: one record per audited action, after its commit,
and nothing for what is not audited."""

import pytest

from app.application.auth import AuthService
from app.application.todos import TodoService
from app.application.users import UserService
from app.domain.errors import InvalidCredentials, PreconditionFailed
from app.domain.todos import TodoChanges, TodoDraft
from app.domain.users import Actor, Role, UserChanges
from tests.fakes import PASSWORD, InMemoryUnitOfWork, RecordingAuditTrail, a_user, give_inbox


async def test_logins_are_recorded_with_the_normalised_email_when_they_fail(
    auth: AuthService, uow: InMemoryUnitOfWork, audit: RecordingAuditTrail
) -> None:
    ada = a_user(email="ada@example.io")
    await uow.users.add(ada)
    await uow.commit()

    await auth.login(email="ada@example.io", password=PASSWORD)
    for email, password in (("Nobody@Example.io", PASSWORD), ("ADA@example.io", "not it!")):
        with pytest.raises(InvalidCredentials):
            await auth.login(email=email, password=password)

    succeeded, unknown, wrong = audit.records
    assert (succeeded.action, succeeded.actor_id) == ("login.succeeded", ada.id)
    assert unknown.details == {"email": "nobody@example.io", "reason": "unknown_email"}
    assert (wrong.subject_id, wrong.details["reason"]) == (ada.id, "wrong_password")
    assert unknown.actor_id is None


async def test_only_email_role_and_active_changes_are_recorded(
    users: UserService, uow: InMemoryUnitOfWork, audit: RecordingAuditTrail
) -> None:
    admin, bob = a_user(email="admin@x.io", role=Role.ADMIN), a_user(email="bob@x.io")
    for user in (admin, bob):
        await uow.users.add(user)
    await uow.commit()

    await users.update(Actor.of(admin), bob.id, UserChanges(full_name="Bob"))
    assert audit.records == []
    await users.update(Actor.of(admin), bob.id, UserChanges(role=Role.GUEST, full_name="B"))

    [record] = audit.records
    assert (record.action, record.actor_id, record.subject_id) == (
        "user.updated",
        admin.id,
        bob.id,
    )
    assert record.details == {"changes": {"role": {"from": Role.USER, "to": Role.GUEST}}}


async def test_an_admins_write_to_another_users_todo_is_recorded_after_its_commit(
    todos: TodoService, uow: InMemoryUnitOfWork, audit: RecordingAuditTrail
) -> None:
    admin, ada = a_user(email="admin@x.io", role=Role.ADMIN), a_user(email="ada@x.io")
    give_inbox(uow.state, ada.id)
    todo, _ = await todos.create(Actor.of(ada), TodoDraft(title="hers"))
    commits = uow.commits

    with pytest.raises(PreconditionFailed):  # refused: nothing committed, nothing recorded
        await todos.update(Actor.of(admin), todo.id, TodoChanges(title="x"), expected_version=9)
    assert audit.records == []
    await todos.update(Actor.of(admin), todo.id, TodoChanges(title="mine now"))

    [record] = audit.records
    assert uow.commits == commits + 1
    assert (record.action, record.subject_id) == ("todo.updated", todo.id)
    assert record.details == {"owner_id": ada.id, "fields": ["title"]}


async def test_a_write_to_ones_own_todo_is_not_recorded(
    todos: TodoService, uow: InMemoryUnitOfWork, audit: RecordingAuditTrail
) -> None:
    ada = Actor.of(a_user(email="ada@x.io"))
    give_inbox(uow.state, ada.user_id)
    todo, _ = await todos.create(ada, TodoDraft(title="mine"))
    await todos.update(ada, todo.id, TodoChanges(title="still mine"))
    await todos.delete(ada, todo.id)
    assert audit.records == []
