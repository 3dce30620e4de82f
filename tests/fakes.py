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
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from app.application.pagination import CursorCodec
from app.application.ports import (
    ActivityRepository,
    AuditTrail,
    IdempotencyKeyRepository,
    IdempotencyRecord,
    InvitationRepository,
    MembershipRepository,
    PasswordHasher,
    ProjectRepository,
    RefreshTokenRepository,
    SortValues,
    TodoRepository,
    TodoStats,
    UnitOfWork,
    UserRepository,
)
from app.domain.activity import Activity, ActivityType, Position
from app.domain.errors import EmailTaken, IdempotencyKeyInFlight
from app.domain.projects import (
    Invitation,
    InvitationPreview,
    Member,
    Membership,
    Project,
    ProjectRole,
    ProjectView,
)
from app.domain.sessions import RefreshToken
from app.domain.todos import Priority, SortField, SortKey, Todo, TodoDraft, TodoFilter
from app.domain.users import Role, User, UserFilter
from app.domain.webhooks import Delivery, Webhook
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
    "InMemoryActivityRepository",
    "InMemoryIdempotencyKeyRepository",
    "InMemoryInvitationRepository",
    "InMemoryMembershipRepository",
    "InMemoryProjectRepository",
    "InMemoryRefreshTokenRepository",
    "InMemoryRevocationList",
    "InMemoryState",
    "InMemoryTodoRepository",
    "InMemoryUnitOfWork",
    "InMemoryUserRepository",
    "a_todo",
    "a_user",
    "give_inbox",
    "inbox_id",
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
    projects: dict[UUID, Project] = field(default_factory=dict)
    memberships: dict[tuple[UUID, UUID], Membership] = field(default_factory=dict)
    invitations: dict[UUID, Invitation] = field(default_factory=dict)
    activity: dict[Position, Activity] = field(default_factory=dict)
    webhooks: dict[UUID, Webhook] = field(default_factory=dict)
    deliveries: dict[UUID, Delivery] = field(default_factory=dict)
    dispatched: dict[int, Position] = field(default_factory=lambda: {1: (0, 0)})
    leases: dict[UUID, datetime] = field(default_factory=dict)
    # todos.due_announced_for: the due_at each todo was announced for (no field of Todo).
    due_announced: dict[UUID, datetime] = field(default_factory=dict)

    def snapshot(self) -> "InMemoryState":
        return InMemoryState(
            dict(self.users),
            dict(self.todos),
            dict(self.refresh_tokens),
            dict(self.idempotency_keys),
            dict(self.projects),
            dict(self.memberships),
            dict(self.invitations),
            dict(self.activity),
            dict(self.webhooks),
            dict(self.deliveries),
            dict(self.dispatched),
            dict(self.leases),
            dict(self.due_announced),
        )

    def restore(self, snapshot: "InMemoryState") -> None:
        """In place, so the repositories' references stay valid."""
        _replace_contents(self.users, snapshot.users)
        _replace_contents(self.todos, snapshot.todos)
        _replace_contents(self.refresh_tokens, snapshot.refresh_tokens)
        _replace_contents(self.idempotency_keys, snapshot.idempotency_keys)
        _replace_contents(self.projects, snapshot.projects)
        _replace_contents(self.memberships, snapshot.memberships)
        _replace_contents(self.invitations, snapshot.invitations)
        _replace_contents(self.activity, snapshot.activity)
        _replace_contents(self.webhooks, snapshot.webhooks)
        _replace_contents(self.deliveries, snapshot.deliveries)
        _replace_contents(self.dispatched, snapshot.dispatched)
        _replace_contents(self.leases, snapshot.leases)
        _replace_contents(self.due_announced, snapshot.due_announced)

    def role(self, project_id: UUID, user_id: UUID) -> ProjectRole | None:
        membership = self.memberships.get((project_id, user_id))
        return None if membership is None else membership.role

    def delete_project(self, project_id: UUID) -> None:
        """With its todos, memberships and invitations, as the foreign keys cascade."""
        self.projects.pop(project_id, None)
        for todo_id in [t.id for t in self.todos.values() if t.project_id == project_id]:
            del self.todos[todo_id]
            self.due_announced.pop(todo_id, None)
        for ident in [ident for ident in self.memberships if ident[0] == project_id]:
            del self.memberships[ident]
        for inv_id in [i.id for i in self.invitations.values() if i.project_id == project_id]:
            del self.invitations[inv_id]


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
        # The foreign keys cascade: the user's projects (with their todos), memberships,
        # todos, refresh tokens and keys go with them.
        self._state.users.pop(user_id, None)
        for project_id in [p.id for p in self._state.projects.values() if p.owner_id == user_id]:
            self._state.delete_project(project_id)
        for member in [ident for ident in self._state.memberships if ident[1] == user_id]:
            del self._state.memberships[member]
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

    async def get(
        self, todo_id: UUID, *, reader_id: UUID
    ) -> tuple[Todo, ProjectRole | None] | None:
        todo = self._state.todos.get(todo_id)
        if todo is None:
            return None
        return todo, self._state.role(todo.project_id, reader_id)

    def stored(self, todo_id: UUID) -> Todo | None:
        """The todo as stored (for a test to look at), whoever may read it."""
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
        self._state.due_announced.pop(todo_id, None)
        return True

    async def purge_trashed(self, *, trashed_before: datetime, limit: int) -> list[Todo]:
        trashed = sorted(
            (
                t
                for t in self._state.todos.values()
                if t.deleted_at is not None and t.deleted_at <= trashed_before
            ),
            key=lambda t: t.deleted_at or trashed_before,
        )[:limit]
        for todo in trashed:
            del self._state.todos[todo.id]
            self._state.due_announced.pop(todo.id, None)
        return trashed

    async def mark_due(self, *, now: datetime, limit: int) -> list[Todo]:
        announced = self._state.due_announced
        due = sorted(
            (
                t
                for t in self._state.todos.values()
                if not t.is_deleted
                and not t.completed
                and t.due_at is not None
                and t.due_at <= now
                and announced.get(t.id) != t.due_at
            ),
            key=lambda t: t.due_at or now,
        )[:limit]
        for todo in due:
            announced[todo.id] = todo.due_at or now
        return due

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

        scope = _scope(self._state, query)
        rows = [
            t
            for t in self._state.todos.values()
            if t.project_id in scope and _todo_matches(t, query, now)
        ]
        if after is not None:
            if len(after) != len(descending):
                raise ValueError("cursor does not match the sort")
            rows = [t for t in rows if _keyset_compare(values(t), after, descending) > 0]
        rows.sort(
            key=functools.cmp_to_key(lambda a, b: _keyset_compare(values(a), values(b), descending))
        )
        return rows[:limit]

    async def stats(self, query: TodoFilter, *, now: datetime) -> TodoStats:
        scope = _scope(self._state, query)
        todos = [
            t
            for t in self._state.todos.values()
            if t.project_id in scope
            and not t.is_deleted
            and (query.owner_id is None or t.owner_id == query.owner_id)
        ]
        return TodoStats(
            total=len(todos),
            completed=sum(t.completed for t in todos),
            overdue=sum(t.is_overdue(now) for t in todos),
            by_priority={p: sum(t.priority is p for t in todos) for p in Priority},
        )

    async def many(self, todo_ids: Sequence[UUID]) -> list[Todo]:
        return [self._state.todos[i] for i in todo_ids if i in self._state.todos]

    async def in_project(self, project_id: UUID, *, after: UUID | None, limit: int) -> list[Todo]:
        todos = sorted(
            (t for t in self._state.todos.values() if t.project_id == project_id),
            key=lambda t: t.id,
        )
        if after is not None:
            todos = [t for t in todos if t.id > after]
        return todos[:limit]


def _scope(state: InMemoryState, query: TodoFilter) -> set[UUID]:
    """The projects a query looks in (see TodoFilter)."""
    if query.member_id is not None:
        scope = {pid for pid, uid in state.memberships if uid == query.member_id}
    elif query.owner_id is not None:
        scope = {p.id for p in state.projects.values() if p.owner_id == query.owner_id}
    elif query.project_ids:
        scope = set(state.projects)
    else:
        raise ValueError("a query names the projects it looks in")
    return scope & set(query.project_ids) if query.project_ids else scope


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

    async def delete_expired(self, *, now: datetime, limit: int) -> int:
        expired = sorted(
            (t for t in self._tokens.values() if t.expires_at <= now), key=lambda t: t.expires_at
        )[:limit]
        for token in expired:
            del self._tokens[token.id]
        return len(expired)

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


SWEEP_BATCH = 100  # as the SQL one's


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

    async def delete_expired(self, *, live_since: datetime) -> int:
        keys = self._state.idempotency_keys
        expired = [ident for ident, record in keys.items() if record.created_at <= live_since]
        for ident in expired[:SWEEP_BATCH]:
            del keys[ident]
        return len(expired[:SWEEP_BATCH])

    def release(self) -> None:
        """The transaction ended: every key it held is free."""
        self._holders.clear()


class InMemoryProjectRepository:
    def __init__(self, state: InMemoryState | None = None) -> None:
        self._state = state or InMemoryState()

    async def add(self, project: Project) -> None:
        if project.id in self._state.projects:
            raise ValueError(f"project {project.id} already exists")
        if project.is_inbox and any(
            p.is_inbox and p.owner_id == project.owner_id for p in self._state.projects.values()
        ):
            raise ValueError("one Inbox per account")
        self._state.projects[project.id] = project
        owner = Membership(project.id, project.owner_id, ProjectRole.OWNER, project.created_at)
        self._state.memberships[project.id, project.owner_id] = owner

    async def get(self, project_id: UUID, *, reader_id: UUID) -> ProjectView | None:
        project = self._state.projects.get(project_id)
        if project is None:
            return None
        return ProjectView(project, self._state.role(project_id, reader_id))

    async def inbox(self, owner_id: UUID) -> Project | None:
        return next(
            (p for p in self._state.projects.values() if p.is_inbox and p.owner_id == owner_id),
            None,
        )

    async def save(self, project: Project, *, expected_version: int) -> bool:
        stored = self._state.projects.get(project.id)
        if stored is None or stored.version != expected_version:
            return False
        self._state.projects[project.id] = project
        return True

    async def delete(self, project_id: UUID) -> None:
        self._state.delete_project(project_id)

    async def find(
        self, member_id: UUID, *, after: SortValues | None, limit: int
    ) -> list[tuple[ProjectView, datetime]]:
        def key(membership: Membership) -> tuple[bool, datetime, UUID]:
            project = self._state.projects[membership.project_id]
            return (not project.is_inbox, membership.added_at, project.id)

        mine = sorted(
            (m for m in self._state.memberships.values() if m.user_id == member_id), key=key
        )
        if after is not None:
            bound = cast(tuple[bool, datetime, UUID], tuple(after))
            mine = [m for m in mine if key(m) > bound]
        return [
            (ProjectView(self._state.projects[m.project_id], m.role), m.added_at)
            for m in mine[:limit]
        ]

    async def owned(self, owner_id: UUID) -> list[UUID]:
        return [p.id for p in self._state.projects.values() if p.owner_id == owner_id]

    async def member_of(
        self, member_id: UUID, *, after: UUID | None, limit: int
    ) -> list[ProjectView]:
        mine = sorted(
            (m for m in self._state.memberships.values() if m.user_id == member_id),
            key=lambda m: m.project_id,
        )
        if after is not None:
            mine = [m for m in mine if m.project_id > after]
        return [ProjectView(self._state.projects[m.project_id], m.role) for m in mine[:limit]]

    async def many(self, project_ids: Sequence[UUID]) -> list[Project]:
        return [self._state.projects[i] for i in project_ids if i in self._state.projects]


class InMemoryMembershipRepository:
    def __init__(self, state: InMemoryState | None = None) -> None:
        self._state = state or InMemoryState()

    def _member(self, membership: Membership) -> Member:
        user = self._state.users.get(membership.user_id)
        return Member(
            membership.user_id,
            None if user is None else user.email,
            None if user is None else user.full_name,
            membership.role,
            membership.added_at,
        )

    async def add(self, membership: Membership) -> bool:
        ident = (membership.project_id, membership.user_id)
        if ident in self._state.memberships:
            return False
        self._state.memberships[ident] = membership
        return True

    async def get(self, project_id: UUID, user_id: UUID) -> Member | None:
        membership = self._state.memberships.get((project_id, user_id))
        return None if membership is None else self._member(membership)

    async def set_role(self, project_id: UUID, user_id: UUID, role: ProjectRole) -> bool:
        membership = self._state.memberships.get((project_id, user_id))
        if membership is None:
            return False
        self._state.memberships[project_id, user_id] = replace(membership, role=role)
        return True

    async def remove(self, project_id: UUID, user_id: UUID) -> Membership | None:
        return self._state.memberships.pop((project_id, user_id), None)

    async def find(self, project_id: UUID, *, after: SortValues | None, limit: int) -> list[Member]:
        def key(m: Membership) -> tuple[bool, datetime, UUID]:
            return (m.role is not ProjectRole.OWNER, m.added_at, m.user_id)

        rows = sorted(
            (m for m in self._state.memberships.values() if m.project_id == project_id), key=key
        )
        if after is not None:
            bound = cast(tuple[bool, datetime, UUID], tuple(after))
            rows = [m for m in rows if key(m) > bound]
        return [self._member(m) for m in rows[:limit]]

    async def user_ids(self, project_id: UUID) -> list[UUID]:
        return [uid for pid, uid in self._state.memberships if pid == project_id]

    async def of_user(self, user_id: UUID) -> list[Membership]:
        return [m for m in self._state.memberships.values() if m.user_id == user_id]

    async def of_projects(self, project_ids: Sequence[UUID]) -> list[Membership]:
        wanted = set(project_ids)
        return [m for m in self._state.memberships.values() if m.project_id in wanted]


class InMemoryInvitationRepository:
    def __init__(self, state: InMemoryState | None = None) -> None:
        self._state = state or InMemoryState()

    def _pending(self, invitation: Invitation, now: datetime) -> bool:
        return invitation.accepted_at is None and invitation.expires_at > now

    async def add(self, invitation: Invitation) -> None:
        self._state.invitations[invitation.id] = invitation

    async def pending(
        self, project_id: UUID, *, now: datetime, after: SortValues | None, limit: int
    ) -> list[Invitation]:
        rows = sorted(
            (
                i
                for i in self._state.invitations.values()
                if i.project_id == project_id and self._pending(i, now)
            ),
            key=lambda i: (i.created_at, i.id),
        )
        if after is not None:
            bound = cast(tuple[datetime, UUID], tuple(after))
            rows = [i for i in rows if (i.created_at, i.id) > bound]
        return rows[:limit]

    async def revoke(self, project_id: UUID, invitation_id: UUID, *, now: datetime) -> bool:
        invitation = self._state.invitations.get(invitation_id)
        if invitation is None or invitation.project_id != project_id:
            return False
        if not self._pending(invitation, now):
            return False
        del self._state.invitations[invitation_id]
        return True

    async def usable(self, token_hash: str, *, now: datetime) -> InvitationPreview | None:
        for invitation in self._state.invitations.values():
            if invitation.token_hash == token_hash and self._pending(invitation, now):
                project = self._state.projects[invitation.project_id]
                inviter = self._state.users.get(invitation.created_by)
                return InvitationPreview(
                    invitation, project.name, None if inviter is None else inviter.full_name
                )
        return None

    async def spend(self, invitation_id: UUID, *, user_id: UUID, now: datetime) -> bool:
        invitation = self._state.invitations.get(invitation_id)
        if invitation is None or not self._pending(invitation, now):
            return False
        self._state.invitations[invitation_id] = replace(
            invitation, accepted_at=now, accepted_by=user_id
        )
        return True

    async def delete_expired(self, *, now: datetime, limit: int) -> int:
        invitations = self._state.invitations
        expired = sorted(
            (i for i in invitations.values() if i.expires_at <= now), key=lambda i: i.expires_at
        )[:limit]
        for invitation in expired:
            del invitations[invitation.id]
        return len(expired)


class InMemoryActivityRepository:
    """Entries in insertion order: one writer at a time, as on SQLite."""

    def __init__(self, state: InMemoryState | None = None) -> None:
        self._state = state or InMemoryState()

    async def add(self, *entries: Activity) -> None:
        for entry in entries:
            last = max(self._state.activity, default=(0, 0))
            position = (last[0] + 1, 1)
            self._state.activity[position] = replace(entry, txid=position[0], n=position[1])

    def entries(self) -> list[Activity]:
        """Every entry, oldest first (for a test to look at)."""
        return [self._state.activity[p] for p in sorted(self._state.activity)]

    async def for_todo(
        self, todo_id: UUID, *, reader_id: UUID | None, after: Position | None, limit: int
    ) -> list[Activity]:
        def readable(entry: Activity) -> bool:
            return reader_id is None or (entry.project_id, reader_id) in self._state.memberships

        return self._newest(lambda e: e.todo_id == todo_id and readable(e), after, limit)

    async def for_project(
        self, project_id: UUID, *, after: Position | None, limit: int
    ) -> list[Activity]:
        return self._newest(
            lambda e: project_id in (e.project_id, e.previous_project_id), after, limit
        )

    async def horizon(self) -> int:
        return max(self._state.activity, default=(0, 0))[0] + 1

    async def since(
        self, after: Position, *, reader_id: UUID | None, limit: int
    ) -> tuple[list[Activity], Position]:
        def heard(entry: Activity) -> bool:
            if reader_id is None:
                return True
            mine = {pid for pid, uid in self._state.memberships if uid == reader_id}
            return (
                entry.project_id in mine
                or entry.previous_project_id in mine
                or entry.member_id == reader_id
                or entry.type is ActivityType.PROJECT_DELETED
            )

        positions = sorted(p for p, e in self._state.activity.items() if p > after and heard(e))
        read = positions[:limit]
        covered = read[-1] if len(read) == limit else (await self.horizon(), 0)
        entries = [self._state.activity[p] for p in read]
        if reader_id is not None:
            entries = [
                e
                for e in entries
                if e.type is not ActivityType.PROJECT_DELETED or reader_id in e.audience
            ]
        return entries, covered

    async def prune(
        self, *, recorded_before: datetime, after: Position, limit: int
    ) -> tuple[int, Position | None]:
        window = sorted(p for p in self._state.activity if p > after)[:limit]
        if not window:
            return 0, None
        state = self._state
        gone = [
            p
            for p in window
            if (entry := state.activity[p]).at < recorded_before
            and (
                entry.todo_id not in state.todos
                if entry.todo_id is not None
                else entry.project_id not in state.projects
            )
        ]
        reached = any(state.activity[p].at >= recorded_before for p in window)
        for position in gone:
            del state.activity[position]
        return len(gone), None if reached or len(window) < limit else window[-1]

    def _newest(
        self, matches: Callable[[Activity], bool], after: Position | None, limit: int
    ) -> list[Activity]:
        positions = sorted((p for p, e in self._state.activity.items() if matches(e)), reverse=True)
        if after is not None:
            positions = [p for p in positions if p < after]
        return [self._state.activity[p] for p in positions[:limit]]


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


class InMemoryWebhookRepository:
    def __init__(self, state: InMemoryState) -> None:
        self._state = state

    async def add(self, webhook: Webhook) -> None:
        self._state.webhooks[webhook.id] = webhook

    async def get(self, webhook_id: UUID) -> Webhook | None:
        return self._state.webhooks.get(webhook_id)

    async def update(self, webhook: Webhook) -> None:
        if webhook.id in self._state.webhooks:
            self._state.webhooks[webhook.id] = webhook

    async def delete(self, webhook_id: UUID) -> bool:
        for delivery_id in [
            d.id for d in self._state.deliveries.values() if d.webhook_id == webhook_id
        ]:
            del self._state.deliveries[delivery_id]
        return self._state.webhooks.pop(webhook_id, None) is not None

    async def of_user(
        self, user_id: UUID, *, after: SortValues | None, limit: int
    ) -> list[Webhook]:
        rows = sorted(
            (w for w in self._state.webhooks.values() if w.user_id == user_id),
            key=lambda w: (w.created_at, w.id),
        )
        if after is not None:
            rows = [w for w in rows if (w.created_at, w.id) > cast(tuple[datetime, UUID], after)]
        return rows[:limit]

    async def active(self) -> list[Webhook]:
        return [w for w in self._state.webhooks.values() if w.active]

    async def dispatch_position(self) -> Position:
        return self._state.dispatched[1]

    async def set_dispatch_position(self, position: Position) -> None:
        self._state.dispatched[1] = position


class InMemoryDeliveryRepository:
    def __init__(self, state: InMemoryState) -> None:
        self._state = state

    async def add(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        stored = []
        seen = {(d.webhook_id, d.event_id) for d in self._state.deliveries.values()}
        for delivery in deliveries:
            if (delivery.webhook_id, delivery.event_id) not in seen:
                self._state.deliveries[delivery.id] = delivery
                seen.add((delivery.webhook_id, delivery.event_id))
                stored.append(delivery)
        return stored

    async def get(self, delivery_id: UUID) -> Delivery | None:
        return self._state.deliveries.get(delivery_id)

    async def claim(self, delivery_id: UUID, *, now: datetime, until: datetime) -> Delivery | None:
        delivery = self._state.deliveries.get(delivery_id)
        lease = self._state.leases.get(delivery_id)
        due = delivery is not None and delivery.next_attempt_at is not None
        if not due or delivery.next_attempt_at > now or (lease is not None and lease >= now):  # type: ignore[union-attr,operator]
            return None
        self._state.leases[delivery_id] = until
        return delivery

    async def update(self, delivery: Delivery) -> None:
        if delivery.id in self._state.deliveries:
            self._state.deliveries[delivery.id] = delivery
            self._state.leases.pop(delivery.id, None)

    async def of_webhook(
        self, webhook_id: UUID, *, after: SortValues | None, limit: int
    ) -> list[Delivery]:
        rows = sorted(
            (d for d in self._state.deliveries.values() if d.webhook_id == webhook_id),
            key=lambda d: (d.created_at, d.id),
            reverse=True,
        )
        if after is not None:
            bound = cast(tuple[datetime, UUID], after)
            rows = [d for d in rows if (d.created_at, d.id) < bound]
        return rows[:limit]

    async def due(self, *, before: datetime, limit: int) -> list[Delivery]:
        rows = [
            d
            for d in self._state.deliveries.values()
            if d.next_attempt_at is not None and d.next_attempt_at < before
        ]
        return sorted(rows, key=lambda d: cast(datetime, d.next_attempt_at))[:limit]

    async def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for delivery in self._state.deliveries.values():
            totals[delivery.status.value] = totals.get(delivery.status.value, 0) + 1
        return totals

    async def oldest_due(self) -> datetime | None:
        due = [d.next_attempt_at for d in self._state.deliveries.values() if d.next_attempt_at]
        return min(due, default=None)

    async def delete_settled(self, *, created_before: datetime, limit: int) -> int:
        settled = sorted(
            (
                d
                for d in self._state.deliveries.values()
                if d.next_attempt_at is None and d.created_at < created_before
            ),
            key=lambda d: d.created_at,
        )[:limit]
        for delivery in settled:
            del self._state.deliveries[delivery.id]
        return len(settled)


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
        self.projects = InMemoryProjectRepository(self.state)
        self.memberships = InMemoryMembershipRepository(self.state)
        self.invitations = InMemoryInvitationRepository(self.state)
        self.activity = InMemoryActivityRepository(self.state)
        self.webhooks = InMemoryWebhookRepository(self.state)
        self.deliveries = InMemoryDeliveryRepository(self.state)
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


def inbox_id(owner_id: UUID) -> UUID:
    """The Inbox the fakes give an account: one id per owner, so a test can name it."""
    return uuid5(NAMESPACE_URL, f"inbox:{owner_id}")


def give_inbox(state: InMemoryState, owner_id: UUID, now: datetime | None = None) -> Project:
    """The account's Inbox (and owner membership), made if it has none yet."""
    project_id = inbox_id(owner_id)
    if project_id not in state.projects:
        made = now or datetime.now(UTC)
        state.projects[project_id] = Project.inbox(id=project_id, owner_id=owner_id, now=made)
        owner = Membership(project_id, owner_id, ProjectRole.OWNER, made)
        state.memberships[project_id, owner_id] = owner
    return state.projects[project_id]


def a_todo(
    owner_id: UUID,
    now: datetime,
    draft: TodoDraft | None = None,
    *,
    project_id: UUID | None = None,
    created_by: UUID | None = None,
) -> Todo:
    """A new todo in `project_id` (by default its owner's Inbox, see inbox_id)."""
    return Todo.new(
        draft or TodoDraft(title="Buy milk"),
        id=uuid4(),
        project_id=project_id or inbox_id(owner_id),
        owner_id=owner_id,
        created_by=created_by or owner_id,
        now=now,
    )


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
    type[ProjectRepository],
    type[MembershipRepository],
    type[InvitationRepository],
    type[ActivityRepository],
    type[PasswordHasher],
    type[AuditTrail],
] = (
    InMemoryUnitOfWork,
    InMemoryUserRepository,
    InMemoryTodoRepository,
    InMemoryRefreshTokenRepository,
    InMemoryIdempotencyKeyRepository,
    InMemoryProjectRepository,
    InMemoryMembershipRepository,
    InMemoryInvitationRepository,
    InMemoryActivityRepository,
    FakePasswordHasher,
    RecordingAuditTrail,
)
