"""Activity entries in SQL, each at a position in commit order.

Positions. An entry's position is `(txid, n)`: the position of the transaction that wrote
it, then its order among that transaction's entries (`n` counts the entries this unit of
work has written). What `txid` is depends on the database:

- PostgreSQL: the writing transaction's id, `pg_current_xact_id()` (64 bits, never wraps).
  Transaction ids are handed out when a transaction first writes, not when it commits, so
  a transaction that began earlier may commit later: entries appear out of `txid` order, and
  a reader that remembered "everything up to txid T" could skip one committed late below T.
  So a reader that resumes from a position (sync, live events, webhook deliveries) reads only
  below its snapshot's horizon, `pg_snapshot_xmin(pg_current_snapshot())`: the oldest
  transaction still running when the snapshot was taken. Every transaction below it has
  ended, committed or not, so nothing can later appear below it; entries at or above it
  wait for a later read. The next read resumes from the horizon, and each committed entry
  is read exactly once, in `txid` order (`horizon()` below). A sequence value would not do:
  sequences are handed out at the insert, not at the commit, with the same gap. The horizon
  is the whole server's: any long transaction, in any database, holds it back, which delays
  readers (never skips an entry); keep transactions short.
- SQLite: one writer at a time (the engine's single connection, held by a unit of work to
  its end), so insertion order is commit order: `txid` is one more than the largest stored,
  and every stored entry is committed or belongs to the one transaction running. The
  horizon is then simply past the last entry.

A page of a history (newest first) needs no horizon: it shows what is committed now.
"""

import json
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import sqlalchemy as sa

from app.domain.activity import Activity, ActivityType, Position
from app.domain.projects import ProjectRole
from app.infrastructure.orm import ActivityRow, MembershipRow, ProjectRow, TodoRow
from app.infrastructure.repositories.base import Rows, SqlRepository
from app.infrastructure.repositories.rows import RowMapper
from app.infrastructure.trace_context import current_traceparent

activity = cast(sa.Table, ActivityRow.__table__)
memberships = cast(sa.Table, MembershipRow.__table__)
todos = cast(sa.Table, TodoRow.__table__)
projects = cast(sa.Table, ProjectRow.__table__)


def _changes(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


ACTIVITY = RowMapper(
    activity,
    Activity,
    stored={
        "type": lambda kind: kind.value,
        "changes": dict,
        "audience": lambda users: [str(user_id) for user_id in users] or None,
        "member_role": lambda role: None if role is None else role.value,
    },
    loaded={
        "type": ActivityType,
        "changes": _changes,
        "audience": lambda users: tuple(UUID(user_id) for user_id in users or ()),
        "member_role": lambda role: None if role is None else ProjectRole(role),
    },
)

_TXID = {
    "postgresql": sa.cast(sa.cast(sa.func.pg_current_xact_id(), sa.Text), sa.BigInteger),
    "sqlite": sa.select(sa.func.coalesce(sa.func.max(activity.c.txid), 0) + 1).scalar_subquery(),
}
_HORIZON = {
    "postgresql": sa.select(
        sa.cast(
            sa.cast(sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot()), sa.Text),
            sa.BigInteger,
        ).label("horizon")
    ),
    "sqlite": sa.select((sa.func.coalesce(sa.func.max(activity.c.txid), 0) + 1).label("horizon")),
}
_COLUMNS = [column for column in activity.columns if column.name != "txid"]
_INSERT = {
    dialect: sa.insert(activity)
    .values(txid=txid, **{c.name: sa.bindparam(c.name, type_=c.type) for c in _COLUMNS})
    .returning(activity.c.txid)
    for dialect, txid in _TXID.items()
}
_NEWEST_FIRST = (activity.c.txid.desc(), activity.c.n.desc())
_BEFORE = sa.tuple_(activity.c.txid, activity.c.n) < sa.tuple_(
    sa.bindparam("before_txid", type_=sa.BigInteger()),
    sa.bindparam("before_n", type_=sa.Integer()),
)
_LIMIT = sa.bindparam("limit", type_=sa.Integer())


def _history(*conditions: sa.ColumnElement[bool], after: bool) -> sa.Select[Any]:
    statement = ACTIVITY.select().where(*conditions)
    if after:
        statement = statement.where(_BEFORE)
    return statement.order_by(*_NEWEST_FIRST).limit(_LIMIT)


_READABLE = activity.c.project_id.in_(
    sa.select(memberships.c.project_id).where(memberships.c.user_id == sa.bindparam("reader_id"))
)
_TODO = activity.c.todo_id == sa.bindparam("todo_id")
_FOR_TODO = {
    (reader, after): _history(_TODO, *([_READABLE] if reader else []), after=after)
    for reader in (False, True)
    for after in (False, True)
}


def _for_project(after: bool) -> sa.Select[Any]:
    """Its entries, and its todos' moves out of it (recorded in the project they moved to):
    two index ranges, each a page long, merged."""
    project_id = sa.bindparam("project_id", type_=sa.Uuid())
    here = _history(activity.c.project_id == project_id, after=after).subquery("here")
    left = _history(activity.c.previous_project_id == project_id, after=after).subquery("left")
    both = sa.union_all(sa.select(here), sa.select(left)).subquery("entries")
    return sa.select(both).order_by(both.c.txid.desc(), both.c.n.desc()).limit(_LIMIT)


_FOR_PROJECT = {after: _for_project(after) for after in (False, True)}

# Reading forward from a position (sync, live events): the entries after it and below the
# horizon, oldest first, with the horizon itself on every row (and on one row of NULL entry
# columns when there is none), so that "nothing new" is one statement.
_AFTER = sa.tuple_(activity.c.txid, activity.c.n) > sa.tuple_(
    sa.bindparam("after_txid", type_=sa.BigInteger()),
    sa.bindparam("after_n", type_=sa.Integer()),
)
_OLDEST_FIRST = (activity.c.txid, activity.c.n)
# A literal, not a parameter: reads run statements whose every value the caller passes.
_PROJECT_DELETED: sa.ColumnElement[str] = sa.literal_column(
    f"'{ActivityType.PROJECT_DELETED.value}'"
)
_DELETED = activity.c.type == _PROJECT_DELETED  # the partial index's very predicate


def _since(dialect: str, *, reader: bool) -> sa.Select[Any]:
    """Everyone's entries (a process's live-event feed), or one reader's: those of the projects
    they are a member of now, of todos that moved out of those, about them as a member, and
    the project deletions (the caller keeps those whose audience names the reader). On
    PostgreSQL each of a reader's projects is one short range of the (project_id, txid, n)
    index (LATERAL), so a reader with nothing new costs a probe per project, whatever everyone
    else wrote."""
    horizon = _HORIZON[dialect].cte("horizon")
    below = activity.c.txid < sa.select(horizon.c.horizon).scalar_subquery()
    limit = _LIMIT

    def ranged(*conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
        return (
            ACTIVITY.select()
            .where(_AFTER, below, *conditions)
            .order_by(*_OLDEST_FIRST)
            .limit(limit)
        )

    if not reader:
        entries = ranged().subquery("entries")
    else:
        reader_id = sa.bindparam("reader_id", type_=sa.Uuid())
        mine = sa.select(memberships.c.project_id).where(memberships.c.user_id == reader_id)
        # About the reader as a member, and every project deletion (two partial indexes).
        addressed = ranged(sa.or_(activity.c.member_id == reader_id, _DELETED))
        if dialect == "postgresql":
            # Per project of the reader, its entries and its todos' moves out of it (two
            # indexes). Two branches, not four: planning grows with the branches, and a
            # statement is planned anew until the driver has prepared it (db.py).
            scope = mine.subquery("mine")
            here = activity.c.project_id == scope.c.project_id
            left = activity.c.previous_project_id == scope.c.project_id
            lateral = ranged(sa.or_(here, left)).lateral()
            parts = [sa.select(*lateral.c).select_from(scope).join(lateral, sa.true())]
        else:
            in_mine = sa.or_(
                activity.c.project_id.in_(mine), activity.c.previous_project_id.in_(mine)
            )
            parts = [ranged(in_mine)]
        union = sa.union_all(*(sa.select(part.subquery()) for part in [*parts, addressed]))
        entries = union.subquery("entries")
    return (
        sa.select(horizon.c.horizon, *entries.c)
        .select_from(horizon.outerjoin(entries, sa.true()))
        .order_by(entries.c.txid, entries.c.n)
        .limit(limit)
    )


_SINCE = {
    (dialect, reader): _since(dialect, reader=reader)
    for dialect in _HORIZON
    for reader in (False, True)
}

# The sync history's clean-up (application/maintenance.py) walks the log in commit order, a
# window of entries at a time (a primary-key range), and deletes the window's old entries
# whose object is gone: the todo for an entry about a todo (it was purged, or went with its
# project), else the project. Entries of objects that still exist are their history: kept.
_WINDOW = (
    sa.select(activity.c.txid, activity.c.n, activity.c.at)
    .where(_AFTER)
    .order_by(*_OLDEST_FIRST)
    .limit(_LIMIT)
)
_GONE = sa.or_(
    sa.and_(
        activity.c.todo_id.is_not(None),
        ~sa.exists().where(todos.c.id == activity.c.todo_id),
    ),
    sa.and_(
        activity.c.todo_id.is_(None),
        ~sa.exists().where(projects.c.id == activity.c.project_id),
    ),
)
_PRUNE = sa.delete(activity).where(
    _AFTER,
    sa.tuple_(activity.c.txid, activity.c.n)
    <= sa.tuple_(
        sa.bindparam("last_txid", type_=sa.BigInteger()),
        sa.bindparam("last_n", type_=sa.Integer()),
    ),
    activity.c.at < sa.bindparam("recorded_before", type_=activity.c.at.type),
    _GONE,
)


class SqlAlchemyActivityRepository(SqlRepository):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._written = 0  # `n`: this unit of work's entries so far
        self._txid: int | None = None  # the transaction's position, once it wrote an entry

    async def add(self, *entries: Activity) -> None:
        # Nothing waits on an entry: it goes to the database with the next statement.
        insert = _INSERT[self._statements.dialect]
        for entry in entries:
            await self._statements.later(insert, self._values(entry), returned=self._note_txid)

    def _note_txid(self, rows: Rows) -> None:
        (row,) = rows
        self._txid = int(row["txid"])

    def take_written(self) -> int | None:
        """The position of the transaction's entries, if it wrote any since the last call:
        what the unit of work announces once it has committed (live events)."""
        txid, self._txid = self._txid, None
        return txid

    def _values(self, entry: Activity) -> dict[str, Any]:
        self._written += 1
        values = ACTIVITY.values(entry)
        del values["txid"]  # the database's: see _TXID
        if values["trace"] is None:
            values["trace"] = current_traceparent()
        values["n"] = self._written
        return values

    async def for_todo(
        self, todo_id: UUID, *, reader_id: UUID | None, after: Position | None, limit: int
    ) -> list[Activity]:
        params: dict[str, Any] = {"todo_id": todo_id, "reader_id": reader_id, "limit": limit}
        statement = _FOR_TODO[reader_id is not None, after is not None]
        return await self._page(statement, params, after)

    async def for_project(
        self, project_id: UUID, *, after: Position | None, limit: int
    ) -> list[Activity]:
        params: dict[str, Any] = {"project_id": project_id, "limit": limit}
        return await self._page(_FOR_PROJECT[after is not None], params, after)

    async def since(
        self, after: Position, *, reader_id: UUID | None, limit: int
    ) -> tuple[list[Activity], Position]:
        params: dict[str, Any] = {"after_txid": after[0], "after_n": after[1], "limit": limit}
        if reader_id is not None:
            params["reader_id"] = reader_id
        rows = await self._rows(_SINCE[self._statements.dialect, reader_id is not None], params)
        horizon = int(rows[0]["horizon"])
        covered: Position = (horizon, 0)  # all read: up to the horizon
        entries = []
        seen: set[Position] = set()
        for row in rows:
            del row["horizon"]
            position = (row["txid"], row["n"])
            if position[0] is None or position in seen:
                continue  # the one row that only carries the horizon; or found by two ranges
            seen.add(position)
            if len(rows) == limit:
                covered = position  # cut at the limit: up to the last row read
            entry = ACTIVITY.load(row)
            if (
                reader_id is not None
                and entry.type is ActivityType.PROJECT_DELETED
                and reader_id not in entry.audience
            ):
                continue  # a project.deleted addressed to others
            entries.append(entry)
        return entries, covered

    async def horizon(self) -> int:
        """The transaction position below which every entry is committed and none can still
        appear (see the module's docstring): where a reader that resumes may read up to."""
        (row,) = await self._rows(_HORIZON[self._statements.dialect])
        return int(row["horizon"])

    async def prune(
        self, *, recorded_before: datetime, after: Position, limit: int
    ) -> tuple[int, Position | None]:
        window = {"after_txid": after[0], "after_n": after[1], "limit": limit}
        rows = await self._rows(_WINDOW, window)
        if not rows:
            return 0, None
        last: Position = (int(rows[-1]["txid"]), int(rows[-1]["n"]))
        params = {
            **window,
            "last_txid": last[0],
            "last_n": last[1],
            "recorded_before": recorded_before,
        }
        deleted = await self._write(_PRUNE, params)
        # Positions follow commit order and `at` the clock closely: from the first entry that
        # is recent enough, the rest are too (a straggler a moment older waits for next time).
        reached = any(row["at"] >= recorded_before for row in rows)
        return deleted, None if reached or len(rows) < limit else last

    async def _page(
        self, statement: sa.Select[Any], params: dict[str, Any], after: Position | None
    ) -> list[Activity]:
        if after is not None:
            params["before_txid"], params["before_n"] = after
        return [ACTIVITY.load(row) for row in await self._rows(statement, params)]
