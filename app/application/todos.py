"""Todo use cases: every read and write goes through the caller's permissions and ownership."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import timedelta
from uuid import UUID, uuid4

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
from app.domain.errors import (
    IdempotencyKeyReused,
    PermissionDenied,
    PreconditionFailed,
    TodoNotFound,
    TodoQuotaExceeded,
)
from app.domain.todos import SortField, SortKey, Todo, TodoChanges, TodoDraft, TodoFilter
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


def _fingerprint(draft: TodoDraft) -> str:
    return hashlib.sha256(json.dumps(asdict(draft), default=str).encode()).hexdigest()


class TodoService:
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
        self, actor: Actor, draft: TodoDraft, *, idempotency_key: str | None = None
    ) -> tuple[Todo, bool]:
        """The new todo, and whether it is a replay of an earlier request with the same key.

        The key is recorded in the transaction that inserts the todo: a request that dies
        before its commit leaves neither behind, so its retry simply creates the todo. A replay
        creates nothing, so it never counts against the quota; a create past the quota
        (todos owned, live and in the trash) records no key either.
        """
        actor.require(Permission.TODOS_WRITE)
        now = self._clock.now()
        todo = Todo.new(draft, id=uuid4(), owner_id=actor.user_id, now=now)
        if idempotency_key is not None:
            live_since = now - IDEMPOTENCY_TTL
            record = IdempotencyRecord(
                user_id=actor.user_id,
                key=idempotency_key,
                fingerprint=_fingerprint(draft),
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
                f"You own {self._max_todos} todos (the trash included), the most allowed; "
                "delete some for good to add more."
            )
        await self._uow.commit()
        return todo, False

    async def get(self, actor: Actor, todo_id: UUID) -> Todo:
        return await self._load(actor, todo_id)

    async def list(
        self,
        actor: Actor,
        query: TodoFilter,
        *,
        sort: Sequence[SortKey],
        limit: int,
        cursor: str | None = None,
    ) -> Page[Todo]:
        actor.require(Permission.TODOS_READ)
        if query.owner_id is not None and query.owner_id != actor.user_id:
            actor.require(Permission.TODOS_READ_ALL)
        if query.owner_id is None and not actor.can(Permission.TODOS_READ_ALL):
            query = replace(query, owner_id=actor.user_id)
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
        for _ in range(_SAVE_ATTEMPTS):
            todo = await self._load(actor, todo_id, write=True)
            _check_version(todo, expected_version)
            updated = todo.apply(changes, self._clock.now())
            if updated is todo or await self._uow.todos.save(
                updated, expected_version=todo.version
            ):
                await self._uow.commit()
                if updated is not todo:
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
        todo = await self._load(actor, todo_id, write=True, in_trash=None if permanent else False)
        _check_version(todo, expected_version)
        if permanent:
            done = await self._uow.todos.delete(todo.id, expected_version=expected_version)
        else:
            done = await self._uow.todos.save(
                todo.trashed(self._clock.now()), expected_version=todo.version
            )
        if not done:
            raise PreconditionFailed
        await self._uow.commit()
        record_todo_write(self._audit, actor, todo, "deleted" if permanent else "trashed")

    async def restore(self, actor: Actor, todo_id: UUID) -> Todo:
        """Idempotent: a todo that is not in the trash is returned as it is, unchanged."""
        todo = await self._load(actor, todo_id, write=True, in_trash=None)
        if not todo.is_deleted:
            return todo
        restored = todo.restored(self._clock.now())
        if not await self._uow.todos.save(restored, expected_version=todo.version):
            raise PreconditionFailed
        await self._uow.commit()
        record_todo_write(self._audit, actor, todo, "restored")
        return restored

    async def stats(self, actor: Actor) -> TodoStats:
        actor.require(Permission.TODOS_READ)
        return await self._uow.todos.stats(actor.user_id, now=self._clock.now())

    async def _replay(self, actor: Actor, earlier: IdempotencyRecord, fingerprint: str) -> Todo:
        if earlier.fingerprint != fingerprint:
            raise IdempotencyKeyReused
        todo = await self._uow.todos.get(earlier.todo_id)
        if todo is None or todo.owner_id != actor.user_id:
            raise TodoNotFound  # deleted for good since the first request
        return todo

    async def _load(
        self,
        actor: Actor,
        todo_id: UUID,
        *,
        write: bool = False,
        in_trash: bool | None = False,
    ) -> Todo:
        """The todo if the actor may see it; anyone else's is 'not found', never 'forbidden'.

        `in_trash`: False, only live todos; True, only trashed ones; None, either.
        """
        actor.require(Permission.TODOS_WRITE if write else Permission.TODOS_READ)
        todo = await self._uow.todos.get(todo_id)
        if todo is None:
            raise TodoNotFound
        if todo.owner_id != actor.user_id:
            if not actor.can(Permission.TODOS_READ_ALL):
                raise TodoNotFound
            if write and not actor.can(Permission.TODOS_WRITE_ALL):
                raise PermissionDenied
        if in_trash is not None and todo.is_deleted != in_trash:
            raise TodoNotFound
        return todo


def _check_version(todo: Todo, expected_version: int | None) -> None:
    if expected_version is not None and todo.version != expected_version:
        raise PreconditionFailed
