"""Sync: a client's copy of its projects and todos kept exact with one call.

Without a token, a full sync: every project the caller is a member of, then their todos (the
trash included), in pages; then, in the same chain, what changed while those pages were read.
With a token, what changed since: read from the activity log, which records every change at
its position in commit order (infrastructure/repositories/activity.py), and collapsed to the
current state of each object it names. A reader never reads past the log's horizon, below
which nothing can still appear, so a change that commits late is read on a later call, never
skipped; and a token resumes strictly after what it covered, so none is read twice.

A sync token is opaque to the client: the position in the log it resumes from, when the state
it stands for was complete (for its expiry), and, mid-chain, where a walk through whole
projects stopped. It is signed (CursorCodec) and bound to its user, so a tampered token, or
another user's, is refused.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from app.application.pagination import CursorCodec
from app.application.ports import Clock, UnitOfWork
from app.domain.activity import Activity, ActivityType, Position
from app.domain.errors import InvalidCursor, InvalidSyncToken, SyncTokenExpired
from app.domain.projects import ProjectRole, ProjectView
from app.domain.todos import Todo
from app.domain.users import Actor, Permission

DEFAULT_SYNC_LIMIT = 500
MAX_SYNC_LIMIT = 1000
DEFAULT_RETENTION = timedelta(days=30)
_VERSION = "s1"


class Phase:
    """Where a token stands in a chain: in the log, or in a walk through whole projects."""

    LOG = "log"
    PROJECTS = "projects"  # a full sync's projects, by id
    TODOS = "todos"  # a full sync's todos, project by project, each by id
    JOINED = "joined"  # a project just joined: its todos, by id


@dataclass(frozen=True, slots=True)
class SyncPosition:
    """What a sync token (and a live event's id) says, once verified."""

    position: Position
    """The log is read after this position."""
    since: datetime
    """When the state the token stands for was complete: a token older than the retention is
    refused."""
    full: bool = False
    phase: str = Phase.LOG
    project_id: UUID | None = None
    todo_id: UUID | None = None


class SyncTokens:
    """Sync tokens: opaque, tamper-evident, bound to their user, expiring after `retention`."""

    def __init__(self, codec: CursorCodec, *, clock: Clock, retention: timedelta) -> None:
        self._codec = codec
        self._clock = clock
        self._retention = retention

    def encode(self, user_id: UUID, state: SyncPosition) -> str:
        values = (
            _VERSION,
            state.full,
            state.position[0],
            state.position[1],
            int(state.since.timestamp()),
            state.phase,
            state.project_id,
            state.todo_id,
        )
        return self._codec.encode(values, binding=_binding(user_id))

    def decode(self, user_id: UUID, token: str) -> SyncPosition:
        """Raises InvalidSyncToken (tampered, malformed, another user's), then
        SyncTokenExpired (older than the retention)."""
        try:
            values = self._codec.decode(token, binding=_binding(user_id))
        except InvalidCursor:
            raise InvalidSyncToken from None
        match values:
            case (
                "s1",
                bool() as full,
                int() as txid,
                int() as n,
                int() as since,
                str() as phase,
                UUID() | None as project_id,
                UUID() | None as todo_id,
            ):
                state = SyncPosition(
                    (txid, n),
                    datetime.fromtimestamp(since, UTC),
                    full=full,
                    phase=phase,
                    project_id=project_id,
                    todo_id=todo_id,
                )
            case _:
                raise InvalidSyncToken
        if self._clock.now() - state.since > self._retention:
            raise SyncTokenExpired
        return state


def _binding(user_id: UUID) -> str:
    return f"sync:{user_id}"


@dataclass(frozen=True, slots=True)
class SyncPage:
    sync_token: str
    full: bool
    projects: list[ProjectView]
    todos: list[Todo]
    removed_projects: list[UUID]
    removed_todos: list[UUID]
    has_more: bool


@dataclass(slots=True)
class _Collected:
    """A page being filled: objects named so far, at most `limit` of them."""

    limit: int
    projects: dict[UUID, ProjectView] = field(default_factory=dict)
    todos: dict[UUID, Todo] = field(default_factory=dict)
    named_projects: set[UUID] = field(default_factory=set)
    named_todos: set[UUID] = field(default_factory=set)

    @property
    def count(self) -> int:
        return len(self.named_projects) + len(self.named_todos)

    @property
    def room(self) -> int:
        return self.limit - self.count

    def fits(self, projects: Iterable[UUID] = (), todos: Iterable[UUID] = ()) -> bool:
        new = len(set(projects) - self.named_projects) + len(set(todos) - self.named_todos)
        return new == 0 or self.count + new <= self.limit

    def add_project(self, view: ProjectView) -> None:
        self.named_projects.add(view.project.id)
        self.projects[view.project.id] = view

    def add_todo(self, todo: Todo) -> None:
        self.named_todos.add(todo.id)
        self.todos[todo.id] = todo


def _named(entry: Activity, user_id: UUID) -> tuple[set[UUID], set[UUID]]:
    """The projects and todos an entry tells this reader to look at again."""
    if entry.todo_id is not None:
        return set(), {entry.todo_id}
    if entry.type in _MEMBER_TYPES and entry.member_id != user_id:
        return set(), set()  # another member's change: nothing the reader holds changed
    return {entry.project_id}, set()


_MEMBER_TYPES = frozenset(
    {ActivityType.MEMBER_ADDED, ActivityType.MEMBER_UPDATED, ActivityType.MEMBER_REMOVED}
)


class SyncService:
    def __init__(self, uow: UnitOfWork, *, clock: Clock, tokens: SyncTokens) -> None:
        self._uow = uow
        self._clock = clock
        self._tokens = tokens

    async def sync(self, actor: Actor, *, token: str | None, limit: int) -> SyncPage:
        """One page of a sync chain (see the module's docstring). Only memberships count:
        `todos:read_all` adds nothing to a sync."""
        actor.require(Permission.TODOS_READ)
        user_id = actor.user_id
        if token is None:
            horizon = await self._uow.activity.horizon()
            state = SyncPosition((horizon, 0), self._clock.now(), full=True, phase=Phase.PROJECTS)
        else:
            state = self._tokens.decode(user_id, token)
        full = state.full
        page = _Collected(limit)
        memberships = _Memberships(self._uow, user_id)
        state, has_more = await self._fill(user_id, state, page, memberships)
        await self._current_state(page, memberships)
        if not has_more:
            state = replace(state, full=False)
        return SyncPage(
            sync_token=self._tokens.encode(user_id, state),
            full=full,
            projects=list(page.projects.values()),
            todos=list(page.todos.values()),
            removed_projects=sorted(page.named_projects - page.projects.keys()),
            removed_todos=sorted(page.named_todos - page.todos.keys()),
            has_more=has_more,
        )

    async def _fill(
        self, user_id: UUID, state: SyncPosition, page: _Collected, memberships: "_Memberships"
    ) -> tuple[SyncPosition, bool]:
        """Fills the page from where `state` stands; the state to resume from, and whether
        there is more."""
        while True:
            if state.phase == Phase.PROJECTS:
                room = page.room
                views = await self._uow.projects.member_of(
                    user_id, after=state.project_id, limit=room + 1
                )
                for view in views[:room]:
                    page.add_project(view)
                if len(views) > room:
                    last = views[room - 1].project.id if room else state.project_id
                    return replace(state, project_id=last), True
                state = replace(state, phase=Phase.TODOS, project_id=None, todo_id=None)
            if state.phase in (Phase.TODOS, Phase.JOINED):
                mine = sorted((await memberships.roles()).keys())
                if state.phase == Phase.JOINED:
                    walk = [state.project_id] if state.project_id in mine else []
                else:
                    start = state.project_id
                    walk = [pid for pid in mine if start is None or pid >= start]
                for project_id in walk:
                    if project_id is None:
                        continue
                    after = state.todo_id if project_id == state.project_id else None
                    room = page.room
                    if room == 0:
                        return replace(state, project_id=project_id, todo_id=after), True
                    todos = await self._uow.todos.in_project(
                        project_id, after=after, limit=room + 1
                    )
                    for todo in todos[:room]:
                        page.add_todo(todo)
                    if len(todos) > room:
                        return replace(
                            state, project_id=project_id, todo_id=todos[room - 1].id
                        ), True
                state = replace(state, phase=Phase.LOG, project_id=None, todo_id=None)
            room = page.room
            if room == 0:
                return state, True
            entries, covered = await self._uow.activity.since(
                state.position, reader_id=user_id, limit=room + 1
            )
            joined = False
            for entry in entries:
                named_projects, named_todos = _named(entry, user_id)
                if not page.fits(named_projects, named_todos):
                    return state, True
                state = replace(state, position=_position(entry))
                if _is_join(entry, user_id) and entry.project_id in await memberships.roles():
                    found = await self._uow.projects.get(entry.project_id, reader_id=user_id)
                    if found is not None and found.role is not None:
                        page.add_project(found)
                        state = replace(
                            state, phase=Phase.JOINED, project_id=entry.project_id, todo_id=None
                        )
                        joined = True
                        break
                page.named_projects.update(named_projects)
                page.named_todos.update(named_todos)
            if joined:
                continue
            state = replace(state, position=covered)
            if covered[1] == 0:  # read up to the horizon: nothing more for now
                return state, False

    async def _current_state(self, page: _Collected, memberships: "_Memberships") -> None:
        """The current state of every object the log named, as the caller may see it now: a
        todo or project they cannot read (any more) stays named only, so it is `removed`."""
        todo_ids = sorted(page.named_todos - page.todos.keys())
        project_ids = sorted(page.named_projects - page.projects.keys())
        if not todo_ids and not project_ids:
            return
        roles = await memberships.roles()
        for todo in await self._uow.todos.many(todo_ids):
            if todo.project_id in roles:
                page.todos[todo.id] = todo
        for project in await self._uow.projects.many(project_ids):
            role = roles.get(project.id)
            if role is not None:
                page.projects[project.id] = ProjectView(project, role)


class _Memberships:
    """The caller's memberships as committed now, read once per page, when first needed."""

    def __init__(self, uow: UnitOfWork, user_id: UUID) -> None:
        self._uow = uow
        self._user_id = user_id
        self._roles: dict[UUID, ProjectRole] | None = None

    async def roles(self) -> dict[UUID, ProjectRole]:
        if self._roles is None:
            rows = await self._uow.memberships.of_user(self._user_id)
            self._roles = {membership.project_id: membership.role for membership in rows}
        return self._roles


def _is_join(entry: Activity, user_id: UUID) -> bool:
    return entry.type is ActivityType.MEMBER_ADDED and entry.member_id == user_id


def _position(entry: Activity) -> Position:
    if entry.position is None:
        raise ValueError("an entry read back has its position")
    return entry.position
