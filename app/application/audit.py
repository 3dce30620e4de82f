"""What the audit trail records of a change: the use cases call these once it is committed."""

from dataclasses import fields
from uuid import UUID

from app.application.ports import AuditTrail
from app.domain.todos import Todo
from app.domain.users import Actor, User, normalise_email

# The account fields whose change is a security decision: who can log in, as whom, with what.
AUDITED_USER_FIELDS = ("email", "role", "is_active")


def record_user_change(audit: AuditTrail, actor: Actor, before: User, after: User) -> None:
    """`user.updated`, naming each audited field's old and new value; nothing when only other
    fields (the name) changed."""
    changes = {
        field: {"from": getattr(before, field), "to": getattr(after, field)}
        for field in AUDITED_USER_FIELDS
        if getattr(before, field) != getattr(after, field)
    }
    if changes:
        audit.record("user.updated", actor_id=actor.user_id, subject_id=before.id, changes=changes)


def record_todo_write(
    audit: AuditTrail, actor: Actor, todo: Todo, action: str, after: Todo | None = None
) -> None:
    """`todo.<action>` when the actor wrote someone else's todo (todos:write_all), naming the
    fields an update changed (not their content, which is the owner's); a write to one's own
    todo is the everyday case, not an audited one."""
    if todo.owner_id == actor.user_id:
        return
    details: dict[str, object] = {"owner_id": todo.owner_id}
    if after is not None:
        details["fields"] = [
            field.name
            for field in fields(Todo)
            if field.name not in _BOOKKEEPING
            and getattr(todo, field.name) != getattr(after, field.name)
        ]
    audit.record(f"todo.{action}", actor_id=actor.user_id, subject_id=todo.id, **details)


_BOOKKEEPING = frozenset({"updated_at", "version"})


def record_failed_login(
    audit: AuditTrail, email: str, reason: str, user_id: UUID | None = None
) -> None:
    """`login.failed`, with the email as the account is looked up (normalised), the account
    when there is one, and why: `unknown_email`, `wrong_password` or `account_disabled`."""
    audit.record(
        "login.failed",
        actor_id=None,
        subject_id=user_id,
        email=normalise_email(email),
        reason=reason,
    )
