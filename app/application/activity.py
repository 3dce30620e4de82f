"""Activity: the entries use cases record with their writes, and the history readers page.

A use case records an entry through `uow.activity` before it commits, so the entry and the
change commit together or not at all: a refused or failed request leaves none.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from app.application.pagination import CursorCodec, Page, cursor_binding, paginate
from app.application.ports import UnitOfWork
from app.domain.activity import Activity, ActivityType, Position
from app.domain.errors import InvalidCursor, ProjectNotFound, TodoNotFound
from app.domain.projects import Membership, require_read
from app.domain.todos import Todo
from app.domain.users import Actor, Permission


def todo_activity(
    type: ActivityType,
    *,
    actor: Actor | None,
    todo: Todo,
    at: datetime,
    changes: Mapping[str, Any] | None = None,
    previous_project_id: UUID | None = None,
) -> Activity:
    """An entry about a todo, in the project it is in after the change. `actor` None: the
    service's own doing (a scheduled job), no user's."""
    return Activity(
        id=uuid4(),
        at=at,
        actor_id=None if actor is None else actor.user_id,
        type=type,
        project_id=todo.project_id,
        todo_id=todo.id,
        changes=changes or {},
        previous_project_id=previous_project_id,
    )


def project_activity(
    type: ActivityType,
    *,
    actor_id: UUID,
    project_id: UUID,
    at: datetime,
    changes: Mapping[str, Any] | None = None,
    member_id: UUID | None = None,
    audience: tuple[UUID, ...] = (),
    removed: Membership | None = None,
) -> Activity:
    """An entry about a project or one of its members (`removed`: the membership that a
    member.removed ended)."""
    return Activity(
        id=uuid4(),
        at=at,
        actor_id=actor_id,
        type=type,
        project_id=project_id,
        changes=changes or {},
        member_id=member_id,
        audience=audience,
        member_role=None if removed is None else removed.role,
        member_added_at=None if removed is None else removed.added_at,
    )


@dataclass(frozen=True, slots=True)
class _History:
    """What an activity cursor is bound to: the one history it pages."""

    todo_id: UUID | None = None
    project_id: UUID | None = None


class ActivityService:
    """Reading history: a todo's, or a project's (with its todos'), newest first."""

    def __init__(self, uow: UnitOfWork, *, cursors: CursorCodec) -> None:
        self._uow = uow
        self._cursors = cursors

    async def for_todo(
        self, actor: Actor, todo_id: UUID, *, limit: int, cursor: str | None = None
    ) -> Page[Activity]:
        """The entries recorded while the todo was in a project the caller can read. The todo
        must be readable now (in the trash too)."""
        found = await self._uow.todos.get(todo_id, reader_id=actor.user_id)
        if found is None:
            raise TodoNotFound
        require_read(actor, found[1], missing=TodoNotFound)
        history = _History(todo_id=todo_id)
        reader = None if actor.can(Permission.TODOS_READ_ALL) else actor.user_id
        rows = await self._uow.activity.for_todo(
            todo_id, reader_id=reader, after=self._after(cursor, history), limit=limit + 1
        )
        return self._page(rows, history, limit)

    async def for_project(
        self, actor: Actor, project_id: UUID, *, limit: int, cursor: str | None = None
    ) -> Page[Activity]:
        view = await self._uow.projects.get(project_id, reader_id=actor.user_id)
        if view is None:
            raise ProjectNotFound
        require_read(actor, view.role, missing=ProjectNotFound)
        history = _History(project_id=project_id)
        rows = await self._uow.activity.for_project(
            project_id, after=self._after(cursor, history), limit=limit + 1
        )
        return self._page(rows, history, limit)

    def _after(self, cursor: str | None, history: _History) -> Position | None:
        if cursor is None:
            return None
        values = self._cursors.decode(cursor, binding=cursor_binding(history))
        match values:
            case (int() as transaction, int() as order):
                return transaction, order
        raise InvalidCursor

    def _page(self, rows: list[Activity], history: _History, limit: int) -> Page[Activity]:
        return paginate(
            rows,
            limit=limit,
            cursors=self._cursors,
            binding=cursor_binding(history),
            sort_values=_position,
        )


def _position(entry: Activity) -> tuple[object, ...]:
    if entry.position is None:
        raise ValueError("an entry read back has its position")
    return entry.position
