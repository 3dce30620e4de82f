"""Sync and live events: what `GET /sync` answers and what an event's `data:` holds."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from app.application.sync import DEFAULT_SYNC_LIMIT, MAX_SYNC_LIMIT
from app.presentation.schemas.activity import FieldChange
from app.presentation.schemas.projects import MemberRead, ProjectRead
from app.presentation.schemas.todos import TodoRead

TOKEN_MAX_LENGTH = 1024


class SyncParams(BaseModel):
    token: str | None = Field(
        default=None,
        max_length=TOKEN_MAX_LENGTH,
        description="The `sync_token` of your last sync (or a live event's id); none: a full sync.",
    )
    limit: int = Field(
        default=DEFAULT_SYNC_LIMIT,
        ge=1,
        le=MAX_SYNC_LIMIT,
        description="At most this many projects and todos in one answer; call again while "
        "`has_more`.",
    )


class Removed(BaseModel):
    projects: list[UUID] = Field(
        description="Projects deleted or no longer yours: drop them with their todos."
    )
    todos: list[UUID] = Field(
        description="Todos deleted for good, or moved to a project you cannot read."
    )


class SyncRead(BaseModel):
    sync_token: str = Field(description="Opaque: send it back as `token` for what changed since.")
    full: bool = Field(description="A page of a full sync's chain: replace your copy with it.")
    projects: list[ProjectRead] = Field(description="Projects in their current state.")
    todos: list[TodoRead] = Field(
        description="Todos in their current state, trashed ones with `deleted_at`."
    )
    removed: Removed
    has_more: bool = Field(
        description="More to come: call again with the new token before trusting the state."
    )


class EventData(BaseModel):
    """The JSON in a live event's `data:` line."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "todo.updated",
                    "at": "2030-01-31T17:00:00Z",
                    "actor_id": "0b7e7d7c-6f55-4c38-9c1e-2f2b8d4b9f10",
                    "project_id": "5a0c1f3e-8d2b-4e43-a3f1-6c1c9d0e2b77",
                    "todo_id": "9f1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
                    "todo": {"id": "9f1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d", "completed": True},
                    "changes": {"completed": {"from": False, "to": True}},
                }
            ]
        }
    )

    type: str = Field(
        description="The activity type (`todo.created`, `member.removed`, …) or `todo.moved`."
    )
    at: datetime
    actor_id: UUID | None
    project_id: UUID = Field(description="The project it happened in (`todo.moved`: the one left).")
    todo_id: UUID | None = Field(default=None, description="`todo.*`: the todo.")
    todo: TodoRead | None = Field(
        default=None, description="The todo after the change (none for purged and moved)."
    )
    project: ProjectRead | None = Field(
        default=None, description="`project.created` / `project.updated`: the project after it."
    )
    member: MemberRead | None = Field(
        default=None,
        description="`member.*`: the membership after the change; `member.removed`: the one it "
        "ended, with the role they had (`email` for the owner and the member themself).",
    )
    member_id: UUID | None = Field(default=None, description="`member.*`: whose membership.")
    changes: dict[str, FieldChange] = Field(
        description="Each changed field's value before and after; `{}` where nothing was edited."
    )


class StreamEnd(BaseModel):
    """The `data:` of `event: stream.end`, the last event the server sends before it closes."""

    reason: str = Field(
        description="`token_expired`, `revoked` or `shutdown`: reconnect and resume."
    )
