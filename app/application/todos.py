"""Todo use cases: every read and write goes through the caller's permissions and ownership."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import timedelta
from uuid import UUID, uuid4

from app.application.activity import todo_activity
from app.application.audit import record_todo_write
from app.application.pagination import CursorCodec, Page, cursor_binding, paginate
from app.application.ports import (
    AuditTrail,
    Clock,
    IdempotencyRecord,
    SortValues,
    TodoStats,
    UnitOfWork,
)
from app.domain.activity import ActivityType, changes_between
from app.domain.errors import (
    AccountGone,
    IdempotencyKeyReused,
    PreconditionFailed,
    ProjectNotFound,
    TodoNotFound,
    TodoQuotaExceeded,
)
from app.domain.projects import ProjectRole, ProjectView, require_read, require_todo_write
from app.domain.todos import (
    RECORDED_FIELDS,
    SortField,
    SortKey,
    Todo,
    TodoChanges,
    TodoDraft,
    TodoFilter,
)
from app.domain.users import Actor, Permission

IDEMPOTENCY_TTL = timedelta(hours=24)
DEFAULT_MAX_TODOS_PER_USER = 10_000
_SAVE_ATTEMPTS = 3


def sort_values(todo: Todo, sort: Sequence[SortKey]) -> SortValues:
    """The values a keyset page resumes after: each sort key's, then the id."""
    by_field: dict[SortField, object] = {
        SortField.CREATED_AT: todo.created_at,
        SortField.UPDATED_AT: todo.updated_at,
        SortField.DUE_AT: todo.due_at,
        SortField.PRIORITY: todo.priority.rank,
        SortField.TITLE: todo.title,
    }
    return (*(by_field[key.field] for key in sort), todo.id)


def _fingerprint(draft: TodoDraft, project_id: UUID | None) -> str:
    request = {**asdict(draft), "project_id": project_id}
    return hashlib.sha256(json.dumps(request, default=str).encode()).hexdigest()


def _by_membership(actor: Actor, role: ProjectRole | None) -> bool:
    """Whether the actor may write there as a member (else only by `todos:write_all`, which
    the audit trail records)."""
    return role is not None and role.edits_todos and actor.can(Permission.TODOS_WRITE)


class TodoService:
    """Todos live in projects: every use case reads the todo (or the project) together with
    the caller's role in it, as committed now, and decides there (domain/projects.py): not a
    member, a 404; a member without the right, a 403. Each write records its activity entry
    in its own transaction."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        clock: Clock,
        cursors: CursorCodec,
        audit: AuditTrail,
        max_todos_per_user: int = DEFAULT_MAX_TODOS_PER_USER,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._cursors = cursors
        self._max_todos = max_todos_per_user
        self._audit = audit

    async def create(
        self,
        actor: Actor,
        draft: TodoDraft,
        *,
        project_id: UUID | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[Todo, bool]:
        """The new todo (in `project_id`, by default the caller's Inbox), and whether it is a
        replay of an earlier request with the same key.

        The key is recorded in the transaction that inserts the todo: a request that dies
        before its commit leaves neither behind, so its retry simply creates the todo. A replay
        creates nothing, so it never counts against the quota; a create past the quota
        (todos the project's owner owns, live and in the trash) records no key either.
        """
        view = await self._target(actor, project_id)
        now = self._clock.now()
        project = view.project
        todo = Todo.new(
            draft,
            id=uuid4(),
            project_id=project.id,
            owner_id=project.owner_id,
            created_by=actor.user_id,
            now=now,
        )
        if idempotency_key is not None:
            live_since = now - IDEMPOTENCY_TTL
            record = IdempotencyRecord(
                user_id=actor.user_id,
                key=idempotency_key,
                fingerprint=_fingerprint(draft, project_id),
                todo_id=todo.id,
                created_at=now,
            )
            earlier = await self._uow.idempotency_keys.claim(record, live_since=live_since)
            if earlier is not None:
                return await self._replay(actor, earlier, record.fingerprint), True
            # Each new key sweeps a batch of expired ones: the table never outgrows a day.
            await self._uow.idempotency_keys.delete_expired(live_since=live_since)
        if not await self._uow.todos.add(todo, max_owned=self._max_todos):
            raise TodoQuotaExceeded(
                f"The project's owner owns {self._max_todos} todos (the trash included), the "
                "most allowed; delete some for good to add more."
            )
        await self._uow.activity.add(
            todo_activity(ActivityType.TODO_CREATED, actor=actor, todo=todo, at=now)
        )
        await self._uow.commit()
        if not _by_membership(actor, view.role):
            record_todo_write(self._audit, actor, todo, "created")
        return todo, False

    async def get(self, actor: Actor, todo_id: UUID) -> Todo:
        todo, _ = await self._load(actor, todo_id)
        return todo

    async def list(
        self,
        actor: Actor,
        query: TodoFilter,
        *,
        sort: Sequence[SortKey],
        limit: int,
        cursor: str | None = None,
    ) -> Page[Todo]:
        """Todos across every project the caller is a member of (`project_ids` narrows)."""
        query = self._scoped(actor, query)
        binding = cursor_binding(query, sort=[str(key) for key in sort])
        after = self._cursors.decode(cursor, binding=binding) if cursor else None
        rows = await self._uow.todos.find(
            query, sort=sort, after=after, limit=limit + 1, now=self._clock.now()
        )
        return paginate(
            rows,
            limit=limit,
            cursors=self._cursors,
            binding=binding,
            sort_values=lambda todo: sort_values(todo, sort),
        )

    async def update(
        self,
        actor: Actor,
        todo_id: UUID,
        changes: TodoChanges,
        *,
        expected_version: int | None = None,
    ) -> Todo:
        """A `project_id` moves the todo: the caller must be an owner or editor on both sides
        (a target they cannot read is ProjectNotFound)."""
        for _ in range(_SAVE_ATTEMPTS):
            todo, role = await self._load(actor, todo_id, write=True)
            _check_version(todo, expected_version)
            target = None
            if changes.project_id is not None and changes.project_id != todo.project_id:
                target = await self._target(actor, changes.project_id)
            elif changes.project_id is not None:
                changes = replace(changes, project_id=None)  # already there: no move
            now = self._clock.now()
            updated = todo.apply(changes, now, project=target.project if target else None)
            if updated is todo:
                return todo
            if await self._uow.todos.save(updated, expected_version=todo.version):
                await self._uow.activity.add(
                    todo_activity(
                        ActivityType.TODO_UPDATED,
                        actor=actor,
                        todo=updated,
                        at=now,
                        changes=changes_between(todo, updated, RECORDED_FIELDS),
                        previous_project_id=todo.project_id if target else None,
                    )
                )
                await self._uow.commit()
                if not _by_membership(actor, role):
                    record_todo_write(self._audit, actor, todo, "updated", updated)
                return updated
            # Someone else wrote between our read and our write.
            if expected_version is not None:
                raise PreconditionFailed
            await self._uow.rollback()
        raise PreconditionFailed

    async def delete(
        self,
        actor: Actor,
        todo_id: UUID,
        *,
        permanent: bool = False,
        expected_version: int | None = None,
    ) -> None:
        """Moves the todo to the trash, or with `permanent` (also from the trash) deletes it."""
        todo, role = await self._load(
            actor, todo_id, write=True, in_trash=None if permanent else False
        )
        _check_version(todo, expected_version)
        now = self._clock.now()
        if permanent:
            done = await self._uow.todos.delete(todo.id, expected_version=expected_version)
            kind = ActivityType.TODO_PURGED
        else:
            done = await self._uow.todos.save(todo.trashed(now), expected_version=todo.version)
            kind = ActivityType.TODO_DELETED
        if not done:
            raise PreconditionFailed
        await self._uow.activity.add(todo_activity(kind, actor=actor, todo=todo, at=now))
        await self._uow.commit()
        if not _by_membership(actor, role):
            record_todo_write(self._audit, actor, todo, "deleted" if permanent else "trashed")

    async def restore(self, actor: Actor, todo_id: UUID) -> Todo:
        """Idempotent: a todo that is not in the trash is returned as it is, unchanged."""
        todo, role = await self._load(actor, todo_id, write=True, in_trash=None)
        if not todo.is_deleted:
            return todo
        now = self._clock.now()
        restored = todo.restored(now)
        if not await self._uow.todos.save(restored, expected_version=todo.version):
            raise PreconditionFailed
        await self._uow.activity.add(
            todo_activity(ActivityType.TODO_RESTORED, actor=actor, todo=restored, at=now)
        )
        await self._uow.commit()
        if not _by_membership(actor, role):
            record_todo_write(self._audit, actor, todo, "restored")
        return restored

    async def stats(self, actor: Actor, *, project_ids: frozenset[UUID] = frozenset()) -> TodoStats:
        """Over the live todos of every project the caller is a member of (`project_ids`
        narrows)."""
        query = self._scoped(actor, TodoFilter(project_ids=project_ids))
        return await self._uow.todos.stats(query, now=self._clock.now())

    def _scoped(self, actor: Actor, query: TodoFilter) -> TodoFilter:
        """The projects a list looks in: the caller's, narrowed by `project_ids` and by an
        `owner_id` that is the caller's own. Another user's `owner_id`, or projects named by id
        that the caller is no member of, need `todos:read_all`, which never adds projects to
        the caller's own list."""
        actor.require(Permission.TODOS_READ)
        if query.owner_id is not None and query.owner_id != actor.user_id:
            actor.require(Permission.TODOS_READ_ALL)
            return replace(query, member_id=None)
        if query.project_ids and actor.can(Permission.TODOS_READ_ALL):
            return replace(query, member_id=None)
        return replace(query, member_id=actor.user_id)

    async def _target(self, actor: Actor, project_id: UUID | None) -> ProjectView:
        """A project the caller may add todos to: `project_id`, or their Inbox."""
        actor.require(Permission.TODOS_WRITE)
        if project_id is None:
            inbox = await self._uow.projects.inbox(actor.user_id)
            if inbox is None:
                raise AccountGone
            view = ProjectView(inbox, ProjectRole.OWNER)
        else:
            found = await self._uow.projects.get(project_id, reader_id=actor.user_id)
            if found is None:
                raise ProjectNotFound
            view = found
        require_todo_write(actor, view.role, missing=ProjectNotFound)
        return view

    async def _replay(self, actor: Actor, earlier: IdempotencyRecord, fingerprint: str) -> Todo:
        if earlier.fingerprint != fingerprint:
            raise IdempotencyKeyReused
        found = await self._uow.todos.get(earlier.todo_id, reader_id=actor.user_id)
        if found is None:
            raise TodoNotFound  # deleted for good since the first request
        require_read(actor, found[1], missing=TodoNotFound)
        return found[0]

    async def _load(
        self,
        actor: Actor,
        todo_id: UUID,
        *,
        write: bool = False,
        in_trash: bool | None = False,
    ) -> tuple[Todo, ProjectRole | None]:
        """The todo and the caller's role in its project, if the caller may see it; a todo in
        a project they cannot read is 'not found', never 'forbidden'.

        `in_trash`: False, only live todos; True, only trashed ones; None, either.
        """
        actor.require(Permission.TODOS_WRITE if write else Permission.TODOS_READ)
        found = await self._uow.todos.get(todo_id, reader_id=actor.user_id)
        if found is None:
            raise TodoNotFound
        todo, role = found
        require_read(actor, role, missing=TodoNotFound)
        if in_trash is not None and todo.is_deleted != in_trash:
            raise TodoNotFound
        if write:
            require_todo_write(actor, role, missing=TodoNotFound)
        return todo, role


def _check_version(todo: Todo, expected_version: int | None) -> None:
    if expected_version is not None and todo.version != expected_version:
        raise PreconditionFailed
