"""What the use cases need from the outside world, as Protocols; adapters live elsewhere."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from app.domain.activity import Activity, Position
from app.domain.projects import (
    Invitation,
    InvitationPreview,
    Member,
    Membership,
    Project,
    ProjectRole,
    ProjectView,
)
from app.domain.sessions import AccessClaims, RefreshClaims, RefreshToken
from app.domain.todos import Priority, SortKey, Todo, TodoFilter
from app.domain.users import User, UserFilter
from app.domain.webhooks import Delivery, Outcome, Webhook

SortValues = tuple[object, ...]
"""A row's sort-key values followed by its id: where a keyset page resumes."""


class ServiceUnavailable(Exception):
    """A store an adapter needs cannot answer now (Redis down, a revocation list refilling).
    Not a rule the caller broke, so no DomainError: the presentation answers 503, to retry."""


class StatementTimedOut(ServiceUnavailable):
    """The database cancelled a statement that ran past its time limit (DB_STATEMENT_TIMEOUT_MS):
    one request never holds a connection the others are waiting for."""


@dataclass(frozen=True, slots=True)
class TodoStats:
    total: int
    completed: int
    overdue: int
    by_priority: dict[Priority, int]

    @property
    def open(self) -> int:
        return self.total - self.completed


class Clock(Protocol):
    def now(self) -> datetime: ...


class AuditTrail(Protocol):
    """The record of who did what to which account or todo. A use case records an action once
    it is committed (a failed login once it has failed); the adapter adds the request's id and
    client address. `details` say what changed, and never hold a password, a hash or a token."""

    def record(
        self,
        action: str,
        *,
        actor_id: UUID | None,
        subject_id: UUID | None = None,
        **details: object,
    ) -> None: ...


class UserRepository(Protocol):
    async def get(self, user_id: UUID) -> User | None: ...
    async def get_by_email(self, email: str) -> User | None: ...
    async def add(self, user: User) -> None:
        """Raises EmailTaken when the email is in use, even under a race."""

    async def lock(self, user_id: UUID) -> User | None:
        """The user as committed now, locked until this unit of work ends. Every write to a
        user and every change to their sessions (login, refresh, revocation) takes it first, so
        they run one at a time per user, each seeing what the one before it committed."""

    async def update(self, user: User, *, before: User) -> None:
        """Writes only the columns in which `user` differs from `before`, the row as `lock`
        read it. Raises EmailTaken when the new email is in use."""

    async def delete(self, user_id: UUID) -> None: ...
    async def find(self, query: UserFilter, *, after: SortValues | None, limit: int) -> list[User]:
        """Newest first; `after` is (created_at, id) of the previous page's last user."""

    async def lock_active_admins(self) -> list[UUID]:
        """The active admins' ids, locked until commit so two demotions cannot race. Locked in
        id order; a use case that needs them takes them before the user it changes."""


class TodoRepository(Protocol):
    async def add(self, todo: Todo, *, max_owned: int | None = None) -> bool:
        """Inserts the todo, unless its owner (its project's) already owns `max_owned` todos
        (live and in the trash); False then. Concurrent adds for one owner are counted one
        after the other, so together they never pass the limit."""

    async def get(
        self, todo_id: UUID, *, reader_id: UUID
    ) -> tuple[Todo, ProjectRole | None] | None:
        """The todo (live or in the trash) and `reader_id`'s role in its project (None: not a
        member), read together: access is decided on what is committed now, never on a copy."""

    async def save(self, todo: Todo, *, expected_version: int) -> bool:
        """Compare-and-set: writes only if the stored version is still `expected_version`."""

    async def delete(self, todo_id: UUID, *, expected_version: int | None) -> bool: ...
    async def find(
        self,
        query: TodoFilter,
        *,
        sort: Sequence[SortKey],
        after: SortValues | None,
        limit: int,
        now: datetime,
    ) -> list[Todo]: ...
    async def stats(self, query: TodoFilter, *, now: datetime) -> TodoStats:
        """Counts over the live todos of the query's projects (its other filters unused)."""

    async def many(self, todo_ids: Sequence[UUID]) -> list[Todo]:
        """The todos among these ids that exist (live or in the trash), in any order."""

    async def in_project(self, project_id: UUID, *, after: UUID | None, limit: int) -> list[Todo]:
        """The project's todos, the trash included, by id, after `after`."""

    async def purge_trashed(self, *, trashed_before: datetime, limit: int) -> list[Todo]:
        """Deletes for good at most `limit` todos moved to the trash at or before
        `trashed_before`, the oldest first, and returns them as they were. A todo another
        transaction holds is skipped, not waited for: two purges at once never take the same
        todo, and a todo restored meanwhile is not taken."""

    async def mark_due(self, *, now: datetime, limit: int) -> list[Todo]:
        """At most `limit` live, open todos whose `due_at` is at or before `now` and which were
        not yet announced for that `due_at` value, the earliest due first: each is marked
        announced for its current `due_at` (neither its version nor `updated_at` change: no
        edit) and returned. A todo another transaction holds is skipped, not waited for: two
        runs at once never mark the same todo."""


class ProjectRepository(Protocol):
    async def add(self, project: Project) -> None:
        """Inserts the project and its owner's membership (added when the project was made)."""

    async def get(self, project_id: UUID, *, reader_id: UUID) -> ProjectView | None:
        """The project with `reader_id`'s role in it, in one read."""

    async def inbox(self, owner_id: UUID) -> Project | None: ...
    async def save(self, project: Project, *, expected_version: int) -> bool:
        """Compare-and-set: writes only if the stored version is still `expected_version`."""

    async def delete(self, project_id: UUID) -> None:
        """The project with its todos, memberships and invitations."""

    async def find(
        self, member_id: UUID, *, after: SortValues | None, limit: int
    ) -> list[tuple[ProjectView, datetime]]:
        """The member's projects, each with when they got it: the Inbox first, then by when
        they got it (created or joined), ties by id. `after`: (not is_inbox, added_at, id)."""

    async def owned(self, owner_id: UUID) -> list[UUID]: ...
    async def member_of(
        self, member_id: UUID, *, after: UUID | None, limit: int
    ) -> list[ProjectView]:
        """The member's projects with their role, by project id, after `after`."""

    async def many(self, project_ids: Sequence[UUID]) -> list[Project]:
        """The projects among these ids that exist, in any order."""


class MembershipRepository(Protocol):
    async def add(self, membership: Membership) -> bool:
        """False when the user is a member already (even under a race)."""

    async def get(self, project_id: UUID, user_id: UUID) -> Member | None: ...
    async def set_role(self, project_id: UUID, user_id: UUID, role: ProjectRole) -> bool: ...
    async def remove(self, project_id: UUID, user_id: UUID) -> Membership | None:
        """The membership it deleted (None: there was none)."""

    async def find(self, project_id: UUID, *, after: SortValues | None, limit: int) -> list[Member]:
        """The owner first, then by added_at, ties by user id; emails included.
        `after`: (not owner, added_at, user_id)."""

    async def user_ids(self, project_id: UUID) -> list[UUID]: ...
    async def of_user(self, user_id: UUID) -> list[Membership]: ...
    async def of_projects(self, project_ids: Sequence[UUID]) -> list[Membership]:
        """Every membership of these projects."""


class InvitationRepository(Protocol):
    async def add(self, invitation: Invitation) -> None: ...
    async def pending(
        self, project_id: UUID, *, now: datetime, after: SortValues | None, limit: int
    ) -> list[Invitation]:
        """Neither accepted nor expired, oldest first; `after`: (created_at, id)."""

    async def revoke(self, project_id: UUID, invitation_id: UUID, *, now: datetime) -> bool:
        """Deletes a pending invitation; False when there is none to delete."""

    async def usable(self, token_hash: str, *, now: datetime) -> InvitationPreview | None:
        """The pending, unexpired invitation with this token hash, with what a preview shows."""

    async def spend(self, invitation_id: UUID, *, user_id: UUID, now: datetime) -> bool:
        """Marks it accepted, in one step that also finds it pending and unexpired: of two
        accepts of one token, exactly one spends it."""

    async def delete_expired(self, *, now: datetime, limit: int) -> int:
        """Deletes at most `limit` invitations that expired at or before `now` (accepted ones
        too), never waiting for one that another transaction holds; how many it deleted."""


class ActivityRepository(Protocol):
    async def add(self, *entries: Activity) -> None:
        """Records the entries in the unit of work's transaction, each given its position in
        commit order (see infrastructure/repositories/activity.py)."""

    async def for_todo(
        self, todo_id: UUID, *, reader_id: UUID | None, after: Position | None, limit: int
    ) -> list[Activity]:
        """Newest first: the todo's entries recorded in projects `reader_id` is a member of
        (None: in any project)."""

    async def for_project(
        self, project_id: UUID, *, after: Position | None, limit: int
    ) -> list[Activity]:
        """Newest first: the project's entries and its todos', moves out of it included."""

    async def horizon(self) -> int:
        """The transaction position below which every entry is committed and none can still
        appear: how far a reader that resumes from a position (sync, live events) may read."""

    async def since(
        self, after: Position, *, reader_id: UUID | None, limit: int
    ) -> tuple[list[Activity], Position]:
        """Oldest first, the entries after `after` and below the horizon (at most `limit` read):
        everyone's (`reader_id` None), or those a reader hears of: of the projects they are a
        member of now, of todos moved out of those, about them as a member, and addressed to
        them. With the position the read covers: the horizon's `(horizon, 0)` when it read
        everything there was, else the last entry read. Exactness rests on this: every entry
        at or before that position has been read, and none will appear there later."""

    async def prune(
        self, *, recorded_before: datetime, after: Position, limit: int
    ) -> tuple[int, Position | None]:
        """Looks at the next `limit` entries after `after`, in commit order, and deletes those
        recorded before `recorded_before` whose object is gone: the todo, for an entry about a
        todo; else the project. Returns how many it deleted, and the position to look on
        from: None once it met an entry recorded at or after `recorded_before`, or the end."""


class RefreshTokenRepository(Protocol):
    async def add(self, token: RefreshToken) -> None: ...
    async def get_by_hash(self, token_hash: str) -> RefreshToken | None: ...
    async def spend(self, token: RefreshToken, *, now: datetime) -> bool:
        """Marks the token used, in one step that also finds it unspent, not revoked and of a
        family none of whose tokens is revoked; False otherwise (a reuse, or an ended login)."""

    async def revoke_family(self, family_id: UUID, *, now: datetime) -> None: ...
    async def revoke_user_families(
        self, user_id: UUID, *, now: datetime, keep: UUID | None = None
    ) -> list[UUID]:
        """Revokes every live family of the user but `keep`; returns the revoked ids."""

    async def revoked_families(self, user_id: UUID, *, since: datetime) -> dict[UUID, datetime]:
        """The user's families revoked after `since`, each with the time it was revoked."""

    async def delete_expired(self, *, now: datetime, limit: int) -> int:
        """Deletes at most `limit` tokens that expired at or before `now`, never waiting for
        one that another transaction holds; how many it deleted."""


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """An Idempotency-Key and the todo its first request created, written in that request's
    transaction: the key and the todo commit together, or neither does."""

    user_id: UUID
    key: str
    fingerprint: str  # of the request body: the same key with another body is refused
    todo_id: UUID
    created_at: datetime


class IdempotencyKeyRepository(Protocol):
    async def claim(
        self, record: IdempotencyRecord, *, live_since: datetime
    ) -> IdempotencyRecord | None:
        """Records the key for this transaction, unless a record of it created after
        `live_since` exists: returns that one instead (an older one is replaced). Raises
        IdempotencyKeyInFlight while another transaction holds the key."""

    async def delete_expired(self, *, live_since: datetime) -> int:
        """Deletes a bounded batch of records created at `live_since` or earlier, never
        waiting for one that another transaction holds; how many it deleted."""


class WebhookRepository(Protocol):
    async def add(self, webhook: Webhook) -> None: ...
    async def get(self, webhook_id: UUID) -> Webhook | None: ...
    async def update(self, webhook: Webhook) -> None: ...
    async def delete(self, webhook_id: UUID) -> bool: ...
    async def of_user(
        self, user_id: UUID, *, after: SortValues | None, limit: int
    ) -> list[Webhook]:
        """Oldest first; `after`: (created_at, id)."""

    async def active(self) -> list[Webhook]:
        """Every active webhook: what dispatch matches events against."""

    async def dispatch_position(self) -> Position:
        """How far dispatch has read the log, the row locked to the end of the transaction:
        of two dispatchers, the second waits and reads on from where the first ended."""

    async def set_dispatch_position(self, position: Position) -> None: ...


class DeliveryRepository(Protocol):
    async def add(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Stores those not stored yet (one per event per webhook); returns those it stored."""

    async def get(self, delivery_id: UUID) -> Delivery | None: ...
    async def claim(self, delivery_id: UUID, *, now: datetime, until: datetime) -> Delivery | None:
        """The delivery, held for an attempt until `until`, if it is due and no other attempt
        holds it (in one statement: of two attempts, one gets it); None otherwise."""

    async def update(self, delivery: Delivery) -> None:
        """Records an attempt's outcome, and lets go of the delivery's hold."""

    async def of_webhook(
        self, webhook_id: UUID, *, after: SortValues | None, limit: int
    ) -> list[Delivery]:
        """Newest first; `after`: (created_at, id)."""

    async def due(self, *, before: datetime, limit: int) -> list[Delivery]:
        """Unsettled deliveries due before `before`, the most overdue first."""

    async def counts(self) -> dict[str, int]:
        """How many deliveries are in each status."""

    async def oldest_due(self) -> datetime | None:
        """When the most overdue unsettled delivery fell due (the retry lag's measure)."""

    async def delete_settled(self, *, created_before: datetime, limit: int) -> int:
        """Deletes up to `limit` settled deliveries (succeeded or failed) created before
        `created_before`, the oldest first, skipping any another transaction holds; returns
        how many it deleted."""


class UnitOfWork(Protocol):
    @property
    def users(self) -> UserRepository: ...
    @property
    def todos(self) -> TodoRepository: ...
    @property
    def refresh_tokens(self) -> RefreshTokenRepository: ...
    @property
    def idempotency_keys(self) -> IdempotencyKeyRepository: ...
    @property
    def projects(self) -> ProjectRepository: ...
    @property
    def memberships(self) -> MembershipRepository: ...
    @property
    def invitations(self) -> InvitationRepository: ...
    @property
    def activity(self) -> ActivityRepository: ...
    @property
    def webhooks(self) -> WebhookRepository: ...
    @property
    def deliveries(self) -> DeliveryRepository: ...

    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...
    async def verify(self, password: str, password_hash: str) -> bool: ...
    async def dummy_verify(self) -> None:
        """Spends the time of a real verify, so unknown emails answer as slowly."""


class TokenIssuer(Protocol):
    access_ttl: timedelta
    refresh_ttl: timedelta

    def issue_access(self, user_id: UUID, session_id: UUID, *, now: datetime) -> str: ...
    def issue_refresh(self, user_id: UUID, session_id: UUID, *, now: datetime) -> str: ...
    def decode_access(self, token: str) -> AccessClaims:
        """Raises InvalidToken on any defect."""

    def decode_refresh(self, token: str) -> RefreshClaims:
        """Raises InvalidToken on any defect."""


@dataclass(frozen=True, slots=True)
class AccessCheck:
    revoked: bool
    user_stamp: str
    """Changes whenever the user's role, status or existence may have changed."""


RevocationSource = Callable[[UUID], Awaitable[Mapping[UUID, timedelta]]]
"""The user's ended sessions still in force, with the time each has left, read from the
database: the record a revocation list fills itself from when it has none of theirs (a new
process, an emptied Redis)."""


class RevocationList(Protocol):
    """Ended sessions, kept only as long as a token could live; and a stamp per user, so
    that one look-up tells whether a token may pass and whether a copy of its user read
    earlier is still current. A fast copy: the database keeps the record (RevocationSource),
    and a list that has none of a user's revocations refills them before it answers, or fails.
    Everything is kept per user: no call touches two users' entries."""

    async def revoke(self, user_id: UUID, *session_ids: UUID, ttl: timedelta) -> None:
        """Ends the user's sessions: their access tokens are refused from now on."""

    async def check(self, user_id: UUID, session_id: UUID) -> AccessCheck:
        """Whether the session is ended, and the user's stamp: the current one, or a new one
        claimed now (read the user after this call, never before, and the stamp covers it)."""

    async def user_changed(self, user_id: UUID) -> None:
        """Retires the user's stamp: every copy read before now is stale."""


class ActivitySignal(Protocol):
    """Wake-ups that entries were committed, across instances (or within one process): a
    hint only, which may be lost; the log says what happened."""

    async def announce(self, txid: int) -> None:
        """Entries at this transaction position are committed."""

    def listen(self, heard: Callable[[int | None], None]) -> Callable[[], Awaitable[None]]:
        """Calls `heard` with each position announced anywhere (None: some may have been
        missed, read now); returns what stops listening."""


class StreamSlots(Protocol):
    """How many streams each user has open, across instances."""

    async def acquire(self, user_id: UUID, stream_id: UUID, *, limit: int) -> bool:
        """Takes a place unless the user has `limit` streams open already."""

    async def renew(self, user_id: UUID, stream_id: UUID) -> None:
        """Keeps the place (a place not renewed lapses: an instance killed frees its own)."""

    async def release(self, user_id: UUID, stream_id: UUID) -> None: ...
    async def count(self, user_id: UUID) -> int:
        """The user's places taken (and not lapsed) now."""


class WebhookTransport(Protocol):
    """Calls a webhook's URL, and only where the service may call."""

    async def check(self, url: str) -> None:
        """Raises WebhookUrlNotAllowed for a URL that is not http(s) or whose host resolves
        to an address the service must not call."""

    async def send(self, url: str, *, headers: Mapping[str, str], body: bytes) -> Outcome:
        """POSTs once, to the very address checked (no second lookup), following no
        redirect: the status, or why there is none."""


class JobQueue(Protocol):
    """The job engine, as the use cases ask it for work."""

    async def deliver(self, deliveries: Sequence[Delivery], *, at: datetime | None = None) -> None:
        """Queues an attempt of each delivery (at `at`, else now), at most one waiting per
        delivery; the attempt's span links to the delivery's trace."""
