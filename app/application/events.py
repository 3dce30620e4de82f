"""Live events: every change a member may see, pushed to their open streams within a second.

The activity log is the only source of events. A stream starts from a sync token (the client's
`Last-Event-ID`, or now), replays what it missed from the log, then takes live batches. Live
batches come from one feed per process (LiveFeed): it reads everyone's new entries once, with
the state they show, and hands that batch to each of the process's streams, which keeps the
events its user may see. The feed reads when told that entries were committed (a wake-up
over Redis pub/sub across instances, in process otherwise: ActivitySignal) and on a timer
besides, always from its own position in the log: a lost or late wake-up costs delay, never
an event. Positions in the log are in commit order and read only below the horizon (see
infrastructure/repositories/activity.py), so a stream delivers each event exactly once, in
order, whichever instance committed it.

Access is decided per event, on memberships as committed when the batch was read: a member
removed hears that (`member.removed`), then nothing more of the project. A stream ends when its
access token expires, is revoked, or its user is deactivated (checked before each delivery
and at each ping), and when the process shuts down.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID, uuid4

from app.application.ports import ActivitySignal, ServiceUnavailable, StreamSlots, UnitOfWork
from app.application.sync import SyncPosition, SyncTokens
from app.domain.activity import Activity, ActivityType, Position
from app.domain.errors import InvalidToken, TooManyStreams
from app.domain.projects import Member, Project, ProjectRole, ProjectView
from app.domain.todos import Todo
from app.domain.users import Actor, Permission

log = logging.getLogger(__name__)

TODO_MOVED = "todo.moved"
PING_SECONDS = 10.0  # under the 15 s the contract promises
POLL_SECONDS = 1.0  # the feed reads the log this often even without a wake-up
READ_LIMIT = 500
_PROJECT_STATE = frozenset({ActivityType.PROJECT_CREATED, ActivityType.PROJECT_UPDATED})
_MEMBER_STATE = frozenset({ActivityType.MEMBER_ADDED, ActivityType.MEMBER_UPDATED})


@dataclass(frozen=True, slots=True)
class Event:
    """One event as one member sees it: the entry, with the state of its object after the
    change (as committed when read) where the member may see it."""

    entry: Activity
    type: str
    todo: Todo | None = None
    project: ProjectView | None = None
    member: Member | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries read from the log in one go (after `start`, up to `end`), with what their
    events show and who may see them, as committed at the read."""

    start: Position
    end: Position
    entries: list[Activity]
    roles: dict[UUID, dict[UUID, ProjectRole]] = field(default_factory=dict)
    """Project → member → role."""
    todos: dict[UUID, Todo] = field(default_factory=dict)
    projects: dict[UUID, Project] = field(default_factory=dict)
    members: dict[tuple[UUID, UUID], Member] = field(default_factory=dict)
    removed: dict[UUID, Member] = field(default_factory=dict)
    """member.removed entry → the Member as the removal left it (the role they had)."""

    def events_for(self, user_id: UUID, *, after: Position) -> list[Event]:
        """The events of this batch that `user_id` may see, past `after`."""
        events = []
        for entry in self.entries:
            if entry.position is None or entry.position <= after:
                continue
            event = self.event(entry, user_id)
            if event is not None:
                events.append(event)
        return events

    def audience(self, entry: Activity) -> set[UUID]:
        """Everyone who may hear of the entry: its project's members (and the project's a
        todo moved out of), those a deletion names, the member it is about. `event` decides."""
        users = set(self.roles.get(entry.project_id, {})) | set(entry.audience)
        if entry.previous_project_id is not None:
            users |= set(self.roles.get(entry.previous_project_id, {}))
        if entry.member_id is not None:
            users.add(entry.member_id)
        return users

    def event(self, entry: Activity, user_id: UUID) -> Event | None:
        """The entry's event as `user_id` sees it, or None if they may not."""
        kind = entry.type
        if kind is ActivityType.PROJECT_DELETED:
            return Event(entry, kind.value) if user_id in entry.audience else None
        role = self.roles.get(entry.project_id, {}).get(user_id)
        if role is None:
            if kind is ActivityType.MEMBER_REMOVED and entry.member_id == user_id:
                # Their own removal: the last they hear of it.
                return Event(entry, kind.value, member=self.removed.get(entry.id))
            moved_from = entry.previous_project_id
            if moved_from is not None and user_id in self.roles.get(moved_from, {}):
                return Event(entry, TODO_MOVED)  # it left for a project they cannot read
            return None
        todo = project = member = None
        if entry.todo_id is not None:
            found = self.todos.get(entry.todo_id)
            if found is not None and user_id in self.roles.get(found.project_id, {}):
                todo = found
        if kind in _PROJECT_STATE and entry.project_id in self.projects:
            project = ProjectView(self.projects[entry.project_id], role)
        if kind in _MEMBER_STATE and entry.member_id is not None:
            found_member = self.members.get((entry.project_id, entry.member_id))
            if found_member is not None:
                member = _visible(found_member, user_id, role)
        if kind is ActivityType.MEMBER_REMOVED and entry.id in self.removed:
            member = _visible(self.removed[entry.id], user_id, role)
        return Event(entry, kind.value, todo=todo, project=project, member=member)


def _visible(member: Member, user_id: UUID, role: ProjectRole) -> Member:
    """The email only for the owner and the member themself (as in the members list)."""
    if role is ProjectRole.OWNER or member.user_id == user_id:
        return member
    return Member(member.user_id, None, member.full_name, member.role, member.added_at)


async def read_batch(
    uow: UnitOfWork, after: Position, *, user_id: UUID | None, limit: int = READ_LIMIT
) -> Batch:
    """The entries after `after` (everyone's, or the ones `user_id` hears of), with the state
    and the memberships their events need."""
    entries, end = await uow.activity.since(after, reader_id=user_id, limit=limit)
    if not entries:
        return Batch(after, end, [])
    todos = {todo.id: todo for todo in await uow.todos.many(_ids(e.todo_id for e in entries))}
    if user_id is not None:
        mine = await uow.memberships.of_user(user_id)
        roles = {m.project_id: {user_id: m.role} for m in mine}
    else:
        project_ids = {e.project_id for e in entries}
        project_ids |= {e.previous_project_id for e in entries if e.previous_project_id}
        project_ids |= {todo.project_id for todo in todos.values()}
        roles = {}
        for membership in await uow.memberships.of_projects(sorted(project_ids)):
            roles.setdefault(membership.project_id, {})[membership.user_id] = membership.role
    shown = _ids(e.project_id for e in entries if e.type in _PROJECT_STATE)
    projects = {project.id: project for project in await uow.projects.many(shown)}
    members = {}
    for entry in entries:
        if entry.type in _MEMBER_STATE and entry.member_id is not None:
            member = await uow.memberships.get(entry.project_id, entry.member_id)
            if member is not None:
                members[entry.project_id, entry.member_id] = member
    removed = {}
    for entry in entries:
        if entry.type is ActivityType.MEMBER_REMOVED:
            gone = await _removed_member(uow, entry)
            if gone is not None:
                removed[entry.id] = gone
    return Batch(after, end, entries, roles, todos, projects, members, removed)


async def _removed_member(uow: UnitOfWork, entry: Activity) -> Member | None:
    """The Member a removal ended: its role and join time as the entry recorded them, the
    name and email as they are now (None once the account is deleted). None for an entry
    written before removals were recorded so (alembic 0014)."""
    if entry.member_id is None or entry.member_role is None or entry.member_added_at is None:
        return None
    user = await uow.users.get(entry.member_id)
    return Member(
        entry.member_id,
        None if user is None else user.email,
        None if user is None else user.full_name,
        entry.member_role,
        entry.member_added_at,
    )


def _ids(ids: Iterable[UUID | None]) -> list[UUID]:
    return sorted({i for i in ids if i is not None})


class _Subscription:
    """A stream's share of the feed: the batches not yet taken, and its wake-up."""

    __slots__ = ("batches", "ready")

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.ready = asyncio.Event()


class LiveFeed:
    """The process's one reader of everyone's new entries (see the module's docstring)."""

    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        signal: ActivitySignal,
        *,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._signal = signal
        self._poll = poll_seconds
        self._subscriptions: set[_Subscription] = set()
        self._wake = asyncio.Event()
        self._wanted = 0  # the highest transaction position announced
        self._task: asyncio.Task[None] | None = None
        self._handed_out: Position | None = None  # where the last batch handed out ended
        self._starting = asyncio.Lock()
        self._stop_listening: Callable[[], Awaitable[None]] | None = None
        self.closing = False

    async def subscribe(self) -> _Subscription:
        """A new share of the feed. The feed starts with its first subscriber, from the log's
        horizon as it is before that subscriber reads anything: no stream ever starts behind
        the feed's start."""
        async with self._starting:
            if self._task is None:
                async with self._unit_of_work() as uow:
                    start: Position = (await uow.activity.horizon(), 0)
                self._stop_listening = self._signal.listen(self.heard)
                self._task = asyncio.create_task(self._run(start), name="live-feed")
        subscription = _Subscription()
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: _Subscription) -> None:
        self._subscriptions.discard(subscription)

    def heard(self, txid: int | None) -> None:
        if txid is not None:
            self._wanted = max(self._wanted, txid)
        self._wake.set()

    def shut_down(self) -> None:
        """Every stream ends (with `stream.end` "shutdown"); new ones are refused."""
        self.closing = True
        for subscription in self._subscriptions:
            subscription.ready.set()

    async def aclose(self) -> None:
        self.shut_down()
        if self._stop_listening is not None:
            await self._stop_listening()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, position: Position) -> None:
        while not self.closing:
            try:
                position = await self._read(position)
            except Exception:  # a database fault: try again at the next wake-up or tick
                log.warning("the live-event feed could not read the log", exc_info=True)
            try:
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def _read(self, position: Position) -> Position:
        """Reads and hands out every entry committed after `position`; waits a little for an
        announced transaction still above the horizon (an older one has not ended yet)."""
        delay = 0.005
        if self._handed_out is None:
            self._handed_out = position
        while True:
            async with self._unit_of_work() as uow:
                batch = await read_batch(uow, position, user_id=None)
            position = batch.end
            if batch.entries:
                # Starts where the last batch handed out ended: everything read in between was
                # empty, so a stream's coverage stays contiguous from batch to batch.
                shared = replace(batch, start=self._handed_out)
                self._handed_out = batch.end
                for subscription in self._subscriptions:
                    subscription.batches.append(shared)
                    subscription.ready.set()
            if batch.end[1] != 0:
                continue  # cut at the limit: read on
            if self._wanted < position[0] or delay > 1.0:
                return position
            await asyncio.sleep(delay)
            delay *= 2


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event as a stream sends it: with its id, a sync token that resumes after it."""

    id: str
    event: Event


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class End:
    reason: str  # token_expired | revoked | shutdown


StreamItem = Delivery | Ping | End


class EventService:
    """Opening a member's event stream, and running it."""

    def __init__(
        self,
        *,
        unit_of_work: Callable[[], UnitOfWork],
        feed: LiveFeed,
        tokens: SyncTokens,
        slots: StreamSlots,
        authenticate: Callable[[str], Awaitable[Actor]],
        now: Callable[[], datetime],
        max_streams: int,
        ping_seconds: float = PING_SECONDS,
    ) -> None:
        self.unit_of_work = unit_of_work
        self.feed = feed
        self.tokens = tokens
        self.slots = slots
        self.authenticate = authenticate
        self.now = now
        self.max_streams = max_streams
        self.ping_seconds = ping_seconds

    def check(self, actor: Actor, *, token: str | None) -> Position | None:
        """Whether the caller may open a stream from this token (400 / 410): where it starts."""
        actor.require(Permission.TODOS_READ)
        return None if token is None else self.tokens.decode(actor.user_id, token).position

    async def probe(self, actor: Actor, *, token: str | None) -> None:
        """What opening a stream would answer before it starts, holding nothing (a HEAD):
        the token's 400 / 410, a 503 while shutting down, a 429 at the cap."""
        self.check(actor, token=token)
        self._refuse_if_closing()
        if await self.slots.count(actor.user_id) >= self.max_streams:
            raise TooManyStreams

    def _refuse_if_closing(self) -> None:
        if self.feed.closing:
            raise ServiceUnavailable("This instance is shutting down; reconnect.")

    async def open(
        self, actor: Actor, *, token: str | None, access_token: str, expires_at: datetime
    ) -> "EventStream":
        """Checks the token (400 / 410) and takes a place (429) before anything is sent."""
        start = self.check(actor, token=token)
        self._refuse_if_closing()
        stream_id = uuid4()
        if not await self.slots.acquire(actor.user_id, stream_id, limit=self.max_streams):
            raise TooManyStreams
        subscription = None
        try:
            # Subscribed, and its start fixed, before the response starts: a client that has
            # its 200 misses nothing committed after that.
            subscription = await self.feed.subscribe()
            if start is None:
                async with self.unit_of_work() as uow:
                    start = (await uow.activity.horizon(), 0)
        except BaseException:
            if subscription is not None:
                self.feed.unsubscribe(subscription)
            await self.slots.release(actor.user_id, stream_id)
            raise
        return EventStream(
            self, actor.user_id, stream_id, subscription, start, access_token, expires_at
        )


class EventStream:
    """One open stream: replay from its start, then live batches (see the module's docstring).
    Its position is how far in the log it has covered: every event of its user at or before
    it has been sent."""

    def __init__(
        self,
        service: EventService,
        user_id: UUID,
        stream_id: UUID,
        subscription: "_Subscription",
        start: Position,
        access_token: str,
        expires_at: datetime,
    ) -> None:
        self._service = service
        self._user_id = user_id
        self._stream_id = stream_id
        self._subscription = subscription
        self._start = start
        self._access_token = access_token
        self._expires_at = expires_at

    async def close(self) -> None:
        self._service.feed.unsubscribe(self._subscription)
        await self._service.slots.release(self._user_id, self._stream_id)

    async def items(self) -> AsyncGenerator[StreamItem, None]:
        service, user_id = self._service, self._user_id
        feed = service.feed
        loop = asyncio.get_running_loop()
        subscription = self._subscription
        try:
            position = self._start
            from_log = True  # replay first: the feed's batches take over once caught up
            next_ping = loop.time() + service.ping_seconds
            while True:
                if feed.closing:
                    yield End("shutdown")
                    return
                if service.now() >= self._expires_at:
                    yield End("token_expired")
                    return
                batches: list[Batch]
                if from_log:
                    async with service.unit_of_work() as uow:
                        batch = await read_batch(uow, position, user_id=user_id)
                    from_log = batch.end[1] != 0  # cut at the limit: more to replay
                    batches = [batch]
                else:
                    batches, subscription.batches = subscription.batches, []
                    subscription.ready.clear()
                for batch in batches:
                    if batch.end <= position:
                        continue
                    if batch.start > position:
                        from_log = True  # a gap (the feed ran ahead): read it from the log
                        break
                    events = batch.events_for(user_id, after=position)
                    if events:
                        ended = await self._ended()
                        if ended is not None:
                            yield End(ended)
                            return
                    for event in events:
                        yield self._delivery(event)
                    position = batch.end
                if from_log:
                    continue
                if loop.time() >= next_ping:
                    ended = await self._ended()
                    if ended is not None:
                        yield End(ended)
                        return
                    await service.slots.renew(user_id, self._stream_id)
                    next_ping = loop.time() + service.ping_seconds
                    yield Ping()
                    continue
                until_expiry = (self._expires_at - service.now()).total_seconds()
                try:
                    async with asyncio.timeout(
                        max(0.0, min(next_ping - loop.time(), until_expiry))
                    ):
                        await subscription.ready.wait()
                except TimeoutError:
                    pass
        finally:
            feed.unsubscribe(subscription)

    def _delivery(self, event: Event) -> Delivery:
        state = SyncPosition(_position_of(event.entry), self._service.now())
        return Delivery(self._service.tokens.encode(self._user_id, state), event)

    async def _ended(self) -> str | None:
        """Why the stream must end now, if it must: its token expired, or was revoked, or its
        user deactivated (as the edge checks a request's token). A check that cannot be made
        now (Redis down) ends nothing: the next one decides."""
        if self._service.now() >= self._expires_at:
            return "token_expired"
        try:
            await self._service.authenticate(self._access_token)
        except InvalidToken:
            return "revoked"
        except ServiceUnavailable:
            log.warning("a stream's token could not be checked now", exc_info=True)
        return None


def _position_of(entry: Activity) -> Position:
    if entry.position is None:
        raise ValueError("an entry read back has its position")
    return entry.position
