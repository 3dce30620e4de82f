"""Activity: who changed what, one entry per object a successful write changed.

An entry is written in the transaction of the change it records, so it exists exactly when
the change does. `changes` maps each changed field to `{"from": …, "to": …}` in JSON terms;
`{}` where nothing was edited (a creation, a deletion, a restore).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any
from uuid import UUID

from app.domain.projects import ProjectRole

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]
Changes = dict[str, dict[str, JsonValue]]


class ActivityType(StrEnum):
    PROJECT_CREATED = "project.created"
    PROJECT_UPDATED = "project.updated"
    PROJECT_DELETED = "project.deleted"
    MEMBER_ADDED = "member.added"
    MEMBER_UPDATED = "member.updated"
    MEMBER_REMOVED = "member.removed"
    TODO_CREATED = "todo.created"
    TODO_UPDATED = "todo.updated"
    TODO_DELETED = "todo.deleted"
    TODO_RESTORED = "todo.restored"
    TODO_PURGED = "todo.purged"
    TODO_DUE = "todo.due"


def json_value(value: object) -> JsonValue:
    """A field's value as the API shows it: times in ISO 8601, ids and enums as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return json_value(value.value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, tuple | list):
        return [json_value(item) for item in value]
    raise TypeError(f"no JSON form for {type(value).__name__}")


def changes_between(before: object, after: object, fields: Iterable[str]) -> Changes:
    """`{field: {from, to}}` for each of `fields` whose value differs."""
    return {
        name: {"from": json_value(old), "to": json_value(new)}
        for name in fields
        if (old := getattr(before, name)) != (new := getattr(after, name))
    }


Position = tuple[int, int]
"""Where an entry sits in commit order: its transaction's position, then its order within the
transaction (see infrastructure/repositories/activity.py for how each database assigns it)."""


@dataclass(frozen=True, slots=True)
class Activity:
    id: UUID
    at: datetime
    actor_id: UUID | None
    type: ActivityType
    project_id: UUID
    todo_id: UUID | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    member_id: UUID | None = None
    """member.*: whose membership changed."""
    previous_project_id: UUID | None = None
    """A move (todo.updated with changes.project_id): the project the todo left."""
    audience: tuple[UUID, ...] = ()
    """project.deleted: the members it had, who receive the entry though no membership
    names them any more (sync and live events read it; the API does not show it)."""
    member_role: ProjectRole | None = None
    member_added_at: datetime | None = None
    """member.removed: the membership as it was (the role they had, since when), which its
    live event's Member shows once the membership is gone (the API does not show it)."""
    trace: str | None = None
    """The W3C `traceparent` of the request that made the change, when it was traced: the
    jobs that deliver it link their spans to that trace."""
    txid: int | None = None
    """Set once stored: the position in commit order of the transaction that wrote it."""
    n: int | None = None
    """Set once stored: its order among its transaction's entries."""

    @property
    def position(self) -> Position | None:
        """Where it sits in commit order: what a page of entries resumes after."""
        if self.txid is None or self.n is None:
            return None
        return self.txid, self.n
