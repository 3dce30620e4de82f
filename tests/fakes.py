"""In-memory adapters for the ports in app/application/ports.py: the unit tests' world, no I/O.

The repositories mirror what the SQL ones promise (filters, keyset order with nulls last,
compare-and-set writes, cascades on user delete) so a use case behaves the same on both.
The revocation list and the JWT issuer are the real in-process ones: they do no I/O, and
faking them would only test the fake.
"""

import asyncio
import functools
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar, cast
from uuid import UUID, uuid4

from app.application.pagination import CursorCodec
from app.application.ports import (
    AuditTrail,
    IdempotencyKeyRepository,
    IdempotencyRecord,
    PasswordHasher,
    RefreshTokenRepository,
    SortValues,
    TodoRepository,
    TodoStats,
    UnitOfWork,
    UserRepository,
)
from app.domain.errors import EmailTaken, IdempotencyKeyInFlight
from app.domain.sessions import RefreshToken
from app.domain.todos import Priority, SortField, SortKey, Todo, TodoFilter
from app.domain.users import Role, User, UserFilter
from app.infrastructure.redis import InMemoryRevocationList
from app.infrastructure.security import JwtTokenIssuer
from tests.support import PASSWORD

__all__ = [
    "ACCESS_TTL",
    "COMMON_PASSWORDS",
    "PASSWORD",
    "REFRESH_TTL",
    "FakeClock",
    "FakePasswordHasher",
    "InMemoryIdempotencyKeyRepository",
    "InMemoryRefreshTokenRepository",
    "InMemoryRevocationList",
    "InMemoryState",
    "InMemoryTodoRepository",
    "InMemoryUnitOfWork",
    "InMemoryUserRepository",
    "a_user",
    "make_cursor_codec",
    "make_token_issuer",
]

COMMON_PASSWORDS = frozenset({"password", "password1", "12345678", "qwertyuiop", "iloveyou"})
"""A stand-in for the zxcvbn list: small, so tests say exactly which passwords are common."""

K = TypeVar("K")
V = TypeVar("V")

"""A password that passes every rule."""

ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=7)


def make_token_issuer() -> JwtTokenIssuer:
    return JwtTokenIssuer(
        secret="unit-test-secret-that-is-long-enough-0123456789",
        algorithm="HS256",
        issuer="todo-api-tests",
        audience="todo-api-tests",
        access_ttl=ACCESS_TTL,
        refresh_ttl=REFRESH_TTL,
    )


def make_cursor_codec(secret: bytes = b"unit-test-cursor-secret") -> CursorCodec:
    return CursorCodec(secret)


class FakeClock:
    """Stands still until told to move.

    It starts at the real current second, not a fixed date, because python-jose checks `exp`
    against the wall clock: tokens issued "now" by this clock must be valid for real.
    """

    def __init__(self, now: datetime | None = None) -> None:
        self._now = _aware(now or datetime.now(UTC).replace(microsecond=0))

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        self._now = _aware(now)

    def advance(self, delta: timedelta = timedelta(seconds=1)) -> datetime:
        self._now += delta
        return self._now


def _aware(value: datetime) -> datetime:
    if value.utcoffset() is None:
        raise ValueError("FakeClock needs an aware datetime")
    return value.astimezone(UTC)


class FakePasswordHasher:
    """Cheap and transparent, but `verify` really compares, so a wrong password fails."""

    PREFIX = "fake-hash$"

    def __init__(self) -> None:
        self.verify_calls = 0
        self.dummy_verify_calls = 0

    async def hash(self, password: str) -> str:
        return self.PREFIX + password

    async def verify(self, password: str, password_hash: str) -> bool:
        self.verify_calls += 1
        return hmac.compare_digest((self.PREFIX + password).encode(), password_hash.encode())

    async def dummy_verify(self) -> None:
        self.dummy_verify_calls += 1


@dataclass
class InMemoryState:
    """Every table, as dicts of frozen domain objects: a shallow copy is a full snapshot."""

    users: dict[UUID, User] = field(default_factory=dict)
    todos: dict[UUID, Todo] = field(default_factory=dict)
    refresh_tokens: dict[UUID, RefreshToken] = field(default_factory=dict)
    idempotency_keys: dict[tuple[UUID, str], IdempotencyRecord] = field(default_factory=dict)

    def snapshot(self) -> "InMemoryState":
        return InMemoryState(
            dict(self.users),
            dict(self.todos),
            dict(self.refresh_tokens),
            dict(self.idempotency_keys),
        )

    def restore(self, snapshot: "InMemoryState") -> None:
        """In place, so the repositories' references stay valid."""
        _replace_contents(self.users, snapshot.users)
        _replace_contents(self.todos, snapshot.todos)
        _replace_contents(self.refresh_tokens, snapshot.refresh_tokens)
        _replace_contents(self.idempotency_keys, snapshot.idempotency_keys)


def _replace_contents(target: dict[K, V], source: dict[K, V]) -> None:
    target.clear()
    target.update(source)


class InMemoryUserRepository:
    def __init__(self, state: InMemoryState | None = None) -> None:
        self._state = state or InMemoryState()

    async def get(self, user_id: UUID) -> User | None:
        return self._state.users.get(user_id)

    async def get_by_email(self, email: str) -> User | None:
        return next((u for u in self._state.users.values() if u.email == email), None)

    async def add(self, user: User) -> None:
        if user.id in self._state.users:
            raise ValueError(f"user {user.id} already exists")
        self._check_email_free(user)
        self._state.users[user.id] = user

    async def lock(self, user_id: UUID) -> User | None:
        # One task at a time runs between awaits: the fake's writes need no lock.
        return self._state.users.get(user_id)

    async def update(self, user: User, *, before: User) -> None:
        stored = self._state.users.get(user.id)
        if stored is None:
            return  # like an UPDATE that matches no row
        # Only the fields that changed, as the SQL one writes only the changed columns.
        changed = {
            name: getattr(user, name)
            for name in User.__dataclass_fields__
            if getattr(user, name) != getattr(before, name)
        }
        updated = replace(stored, **changed)
        self._check_email_free(updated)
        self._state.users[user.id] = updated

    def _check_email_free(self, user: User) -> None:
        if any(u.email == user.email and u.id != user.id for u in self._state.users.values()):
            raise EmailTaken

    async def delete(self, user_id: UUID) -> None:
        # The foreign keys cascade: the user's todos, refresh tokens and keys go with them.
        self._state.users.pop(user_id, None)
        for todo_id in [t.id for t in self._state.todos.values() if t.owner_id == user_id]:
            del self._state.todos[todo_id]
        tokens = self._state.refresh_tokens
        for token_id in [t.id for t in tokens.values() if t.user_id == user_id]:
            del tokens[token_id]
        keys = self._state.idempotency_keys
        for ident in [ident for ident in keys if ident[0] == user_id]:
            del keys[ident]

    async def find(self, query: UserFilter, *, after: SortValues | None, limit: int) -> list[User]:
        def key(user: User) -> tuple[datetime, UUID]:
            return (user.created_at, user.id)

        rows = [u for u in self._state.users.values() if _user_matches(u, query)]
        if after is not None:
            bound = cast(tuple[datetime, UUID], tuple(after))
            rows = [u for u in rows if key(u) < bound]
        rows.sort(key=key, reverse=True)
        return rows[:limit]

    async def lock_active_admins(self) -> list[UUID]:
        return [u.id for u in self._state.users.values() if u.is_active_admin]


def _user_matches(user: User, query: UserFilter) -> bool:
    if query.role is not None and user.role is not query.role:
        return False
    if query.is_active is not None and user.is_active != query.is_active:
        return False
    if query.text:
        in_email = (query.email_text or query.text) in user.email
        return in_email or query.text.lower() in (user.full_name or "").lower()
    return True


_SORT_VALUE: dict[SortField, Callable[[Todo], object]] = {
    SortField.CREATED_AT: lambda todo: todo.created_at,
    SortField.UPDATED_AT: lambda todo: todo.updated_at,
    SortField.DUE_AT: lambda todo: todo.due_at,
    SortField.PRIORITY: lambda todo: todo.priority.rank,
    SortField.TITLE: lambda todo: todo.title,
}


def _keyset_compare(a: Sequence[Any], b: Sequence[Any], descending: Sequence[bool]) -> int:
    """-1, 0 or 1: where `a` sorts against `b`; nulls last in either direction."""
    for x, y, desc in zip(a, b, descending, strict=True):
        if x == y:
            continue
        if x is None:
            return 1
        if y is None:
            return -1
        order = -1 if x < y else 1
        return -order if desc else order
    return 0


class InMemoryTodoRepository:
    def __init__(self, state: InMemoryState | None = None) -> None:
        self._state = state or InMemoryState()

    async def add(self, todo: Todo, *, max_owned: int | None = None) -> bool:
        if todo.id in self._state.todos:
            raise ValueError(f"todo {todo.id} already exists")
        owned = sum(1 for t in self._state.todos.values() if t.owner_id == todo.owner_id)
        if max_owned is not None and owned >= max_owned:
            return False
        self._state.todos[todo.id] = todo
        return True

    async def get(self, todo_id: UUID) -> Todo | None:
        return self._state.todos.get(todo_id)

    async def save(self, todo: Todo, *, expected_version: int) -> bool:
        stored = self._state.todos.get(todo.id)
        if stored is None or stored.version != expected_version:
            return False
        self._state.todos[todo.id] = todo
        return True

    async def delete(self, todo_id: UUID, *, expected_version: int | None) -> bool:
        stored = self._state.todos.get(todo_id)
        if stored is None or (expected_version is not None and stored.version != expected_version):
            return False
        del self._state.todos[todo_id]
        return True

    async def find(
        self,
        query: TodoFilter,
        *,
        sort: Sequence[SortKey],
        after: SortValues | None,
        limit: int,
        now: datetime,
    ) -> list[Todo]:
        # The id breaks ties, in the direction of the last sort key (as the SQL keyset does).
        descending = [key.descending for key in sort] + [sort[-1].descending]

        def values(todo: Todo) -> SortValues:
            return (*(_SORT_VALUE[key.field](todo) for key in sort), todo.id)

        rows = [t for t in self._state.todos.values() if _todo_matches(t, query, now)]
        if after is not None:
            if len(after) != len(descending):
                raise ValueError("cursor does not match the sort")
            rows = [t for t in rows if _keyset_compare(values(t), after, descending) > 0]
        rows.sort(
            key=functools.cmp_to_key(lambda a, b: _keyset_compare(values(a), values(b), descending))
        )
        return rows[:limit]

    async def stats(self, owner_id: UUID, *, now: datetime) -> TodoStats:
        todos = [
            t for t in self._state.todos.values() if t.owner_id == owner_id and not t.is_deleted
        ]
        return TodoStats(
            total=len(todos),
            completed=sum(t.completed for t in todos),
            overdue=sum(t.is_overdue(now) for t in todos),
            by_priority={p: sum(t.priority is p for t in todos) for p in Priority},
        )


def _todo_matches(todo: Todo, query: TodoFilter, now: datetime) -> bool:
    if todo.is_deleted != query.deleted:
        return False
    if query.owner_id is not None and todo.owner_id != query.owner_id:
        return False
    if query.completed is not None and todo.completed != query.completed:
        return False
    if query.priorities and todo.priority not in query.priorities:
        return False
    if not set(query.tags) <= set(todo.tags):
        return False
    if query.text:
        text = query.text.lower()
        if text not in todo.title.lower() and text not in todo.description.lower():
            return False
    if query.due_before is not None and not (
        todo.due_at is not None and todo.due_at < query.due_before
    ):
        return False
    if query.due_after is not None and not (
        todo.due_at is not None and todo.due_at > query.due_after
    ):
        return False
    return query.overdue is None or todo.is_overdue(now) == query.overdue


class InMemoryRefreshTokenRepository:
    def __init__(self, state: InMemoryState | None = None) -> None:
        self._state = state or InMemoryState()

    @property
    def _tokens(self) -> dict[UUID, RefreshToken]:
        return self._state.refresh_tokens

    async def add(self, token: RefreshToken) -> None:
        if token.id in self._tokens or any(
            t.token_hash == token.token_hash for t in self._tokens.values()
        ):
            raise ValueError("refresh token already stored")
        self._tokens[token.id] = token

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        return next((t for t in self._tokens.values() if t.token_hash == token_hash), None)

    async def spend(self, token: RefreshToken, *, now: datetime) -> bool:
        stored = self._tokens.get(token.id)
        if stored is None or stored.used_at is not None or stored.revoked_at is not None:
            return False
        if any(
            t.family_id == stored.family_id and t.revoked_at is not None
            for t in self._tokens.values()
        ):
            return False
        self._tokens[token.id] = replace(stored, used_at=now)
        return True

    async def revoke_family(self, family_id: UUID, *, now: datetime) -> None:
        for token in list(self._tokens.values()):
            if token.family_id == family_id and token.revoked_at is None:
                self._tokens[token.id] = replace(token, revoked_at=now)

    async def revoke_user_families(
        self, user_id: UUID, *, now: datetime, keep: UUID | None = None
    ) -> list[UUID]:
        live = [
            t
            for t in self._tokens.values()
            if t.user_id == user_id and t.revoked_at is None and t.family_id != keep
        ]
        for token in live:
            self._tokens[token.id] = replace(token, revoked_at=now)
        return list(dict.fromkeys(t.family_id for t in live))

    async def revoked_families(self, user_id: UUID, *, since: datetime) -> dict[UUID, datetime]:
        families: dict[UUID, datetime] = {}
        for token in self._tokens.values():
            if token.user_id != user_id:
                continue
            if token.revoked_at is not None and token.revoked_at > since:
                families[token.family_id] = max(
                    token.revoked_at, families.get(token.family_id, since)
                )
        return families


class InMemoryIdempotencyKeyRepository:
    """Keys as the SQL one keeps them; a key is held by the task (the "connection") that
    claimed it until its unit of work commits or rolls back, as PostgreSQL's lock is."""

    def __init__(self, state: InMemoryState | None = None) -> None:
        self._state = state or InMemoryState()
        self._holders: dict[tuple[UUID, str], asyncio.Task[Any] | None] = {}

    async def claim(
        self, record: IdempotencyRecord, *, live_since: datetime
    ) -> IdempotencyRecord | None:
        ident = (record.user_id, record.key)
        me = asyncio.current_task()
        if self._holders.get(ident, me) is not me:
            raise IdempotencyKeyInFlight
        self._holders[ident] = me
        stored = self._state.idempotency_keys.get(ident)
        if stored is not None and stored.created_at > live_since:
            return stored
        self._state.idempotency_keys[ident] = record
        return None

    async def delete_expired(self, *, live_since: datetime) -> None:
        keys = self._state.idempotency_keys
        for ident in [ident for ident, record in keys.items() if record.created_at <= live_since]:
            del keys[ident]

    def release(self) -> None:
        """The transaction ended: every key it held is free."""
        self._holders.clear()


@dataclass(frozen=True)
class AuditRecord:
    action: str
    actor_id: UUID | None
    subject_id: UUID | None
    details: dict[str, object]


class RecordingAuditTrail:
    """The audit records a use case made, in order, for the test to read."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def record(
        self,
        action: str,
        *,
        actor_id: UUID | None,
        subject_id: UUID | None = None,
        **details: object,
    ) -> None:
        self.records.append(AuditRecord(action, actor_id, subject_id, details))

    def actions(self) -> list[str]:
        return [record.action for record in self.records]


class InMemoryUnitOfWork:
    """One transaction over in-memory tables.

    `commit` makes the writes so far durable; `rollback` (and leaving `async with`) puts the
    tables back as they were at the last commit, as the SQL unit of work does.
    """

    def __init__(self) -> None:
        self.state = InMemoryState()
        self.users = InMemoryUserRepository(self.state)
        self.todos = InMemoryTodoRepository(self.state)
        self.refresh_tokens = InMemoryRefreshTokenRepository(self.state)
        self.idempotency_keys = InMemoryIdempotencyKeyRepository(self.state)
        self.commits = 0
        self.rollbacks = 0
        self._committed = self.state.snapshot()

    async def commit(self) -> None:
        self._committed = self.state.snapshot()
        self.idempotency_keys.release()
        self.commits += 1

    async def rollback(self) -> None:
        self.state.restore(self._committed)
        self.idempotency_keys.release()
        self.rollbacks += 1

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever was not committed is discarded, like the SQL session closing.
        self.state.restore(self._committed)
        self.idempotency_keys.release()


def a_user(
    *,
    email: str = "user@example.com",
    password: str = PASSWORD,
    role: Role = Role.USER,
    is_active: bool = True,
    full_name: str | None = None,
    created_at: datetime | None = None,
    id: UUID | None = None,
) -> User:
    """A user as stored, with a FakePasswordHasher hash of `password`."""
    created = created_at or datetime.now(UTC)
    return User(
        id=id or uuid4(),
        email=email,
        password_hash=FakePasswordHasher.PREFIX + password,
        full_name=full_name,
        role=role,
        is_active=is_active,
        created_at=created,
        updated_at=created,
    )


# Each fake keeps its port's promises or the unit tests mean nothing: mypy checks every pair
# here, so a fake that drifts from its port fails the type check (no test could fail instead).
_KEEP_THEIR_PORTS: tuple[
    type[UnitOfWork],
    type[UserRepository],
    type[TodoRepository],
    type[RefreshTokenRepository],
    type[IdempotencyKeyRepository],
    type[PasswordHasher],
    type[AuditTrail],
] = (
    InMemoryUnitOfWork,
    InMemoryUserRepository,
    InMemoryTodoRepository,
    InMemoryRefreshTokenRepository,
    InMemoryIdempotencyKeyRepository,
    FakePasswordHasher,
    RecordingAuditTrail,
)
