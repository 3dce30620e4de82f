"""Todos in SQL: filters, multi-key keyset pagination, compare-and-set writes, stats."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.application.ports import SortValues, TodoStats
from app.domain.projects import ProjectRole
from app.domain.todos import Priority, SortField, SortKey, Todo, TodoFilter
from app.infrastructure.orm import DUE_PENDING, TAG_ARRAY, MembershipRow, ProjectRow, TodoRow
from app.infrastructure.repositories.base import (
    SqlRepository,
    in_locked_batch,
    like_escaped,
    planned_per_run,
)
from app.infrastructure.repositories.rows import RowMapper

todos = cast(sa.Table, TodoRow.__table__)
memberships = cast(sa.Table, MembershipRow.__table__)
projects = cast(sa.Table, ProjectRow.__table__)

# Each sort field is the column of its name (priority is stored as its rank, so it sorts by
# urgency), read from the todos table or from a subquery of its rows.
_NULLABLE = frozenset({SortField.DUE_AT})
_RANKS = postgresql.ARRAY(sa.SmallInteger())
_IDS = postgresql.ARRAY(sa.Uuid())
# On PostgreSQL a nullable key sorts as COALESCE(key, +infinity) ascending or
# COALESCE(key, -infinity) descending: nulls last either way, never null, and served by the
# expression indexes in orm.py. The literal must match the index expression (no parameter).
_NULLS_LAST: dict[bool, sa.ColumnElement[Any]] = {
    False: sa.literal_column("'infinity'::timestamptz"),
    True: sa.literal_column("'-infinity'::timestamptz"),
}


TODOS = RowMapper(
    todos,
    Todo,
    stored={"priority": lambda priority: priority.rank, "tags": list},
    loaded={"priority": Priority.from_rank, "tags": tuple},
    not_fields={
        "due_announced_for": "the due job's own record (mark_due): no edit reads or writes it",
    },
)


class _Keyset:
    """ORDER BY and "after this row" for a sort; the id breaks ties in the last key's direction.

    Nulls sort last in both directions (docs/http.md, Pagination). The cursor's values are bound
    parameters (`after_0`, `after_1`, …), so one statement serves every page of a query shape.
    """

    def __init__(
        self,
        sort: Sequence[SortKey],
        *,
        postgres: bool = False,
        columns: sa.ColumnCollection[str, Any] = todos.c,
    ) -> None:
        self.keys: list[tuple[sa.ColumnElement[Any], bool, bool]] = []
        self.null_as: list[sa.ColumnElement[Any] | None] = []
        for key in sort:
            column, nullable = columns[key.field.value], key.field in _NULLABLE
            if nullable and postgres:
                null_as = _NULLS_LAST[key.descending]
                self.keys.append((sa.func.coalesce(column, null_as), key.descending, False))
                self.null_as.append(null_as)
            else:
                self.keys.append((column, key.descending, nullable))
                self.null_as.append(None)
        self.keys.append((columns["id"], sort[-1].descending, False))
        self.null_as.append(None)

    def order_by(self) -> list[sa.ColumnElement[Any]]:
        clauses: list[sa.ColumnElement[Any]] = []
        for column, descending, nullable in self.keys:
            clause = column.desc() if descending else column.asc()
            clauses.append(clause.nulls_last() if nullable else clause)
        return clauses

    def after(self, nulls: Sequence[bool]) -> sa.ColumnElement[bool]:
        """Rows after the cursor's; `nulls` says which of its values are null."""
        values: list[sa.ColumnElement[Any] | None] = [
            (null_as if null_as is not None else None)
            if is_null
            else sa.bindparam(f"after_{index}", type_=column.type)
            for index, ((column, _, _), null_as, is_null) in enumerate(
                zip(self.keys, self.null_as, nulls, strict=True)
            )
        ]
        directions = {descending for _, descending, _ in self.keys}
        if len(directions) == 1 and not any(nullable for *_, nullable in self.keys):
            # One row-value comparison: PostgreSQL turns it into a single index range scan.
            columns = sa.tuple_(*(column for column, _, _ in self.keys))
            bound = sa.tuple_(*values)
            return columns < bound if directions == {True} else columns > bound
        branches = []
        for index, (column, descending, nullable) in enumerate(self.keys):
            equal_before = [
                _equal(c, v) for (c, _, _), v in zip(self.keys[:index], values, strict=False)
            ]
            branches.append(
                sa.and_(*equal_before, _beyond(column, values[index], descending, nullable))
            )
        return sa.or_(*branches)


def _equal(
    column: sa.ColumnElement[Any], value: sa.ColumnElement[Any] | None
) -> sa.ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def _beyond(
    column: sa.ColumnElement[Any],
    value: sa.ColumnElement[Any] | None,
    descending: bool,
    nullable: bool,
) -> sa.ColumnElement[bool]:
    if value is None:
        return sa.false()  # nulls come last: nothing sorts after a null in this key
    strictly = column < value if descending else column > value
    return sa.or_(strictly, column.is_(None)) if nullable else strictly


@dataclass(frozen=True, slots=True)
class _Shape:
    """What decides a list statement's SQL text; the values are its bound parameters."""

    postgres: bool
    deleted: bool
    member: bool
    owner: bool
    projects: bool
    completed: bool
    priorities: bool
    tags: int
    text: bool
    due_before: bool
    due_after: bool
    overdue: bool | None
    sort: tuple[SortKey, ...]
    after_nulls: tuple[bool, ...] | None  # None: the first page


def _scope(shape: _Shape) -> sa.Select[Any]:
    """The ids of the projects a list looks in: the member's (narrowed to the ones asked for),
    or the ones asked for outright (todos:read_all), or the owner's (an admin's owner_id=)."""
    if shape.member:
        column = memberships.c.project_id
        statement = sa.select(column).where(memberships.c.user_id == sa.bindparam("member_id"))
    else:
        column = projects.c.id
        statement = sa.select(column.label("project_id"))
        if shape.owner:
            statement = statement.where(projects.c.owner_id == sa.bindparam("owner_id"))
    if shape.projects:
        statement = statement.where(_any_id(column, postgres=shape.postgres))
    return statement


def _any_id(
    column: sa.ColumnElement[Any], *, postgres: bool, name: str = "project_ids"
) -> sa.ColumnElement[bool]:
    if postgres:
        return column == sa.any_(sa.bindparam(name, type_=_IDS))
    return column.in_(sa.bindparam(name, expanding=True))


def _split_by_priority(shape: _Shape) -> bool:
    """A sort that starts with priority is merged from one range per project and priority:
    within one priority the next key orders the range, which an index then serves (a range
    per project alone would read the whole priority, then sort it). PostgreSQL only."""
    return _merged(shape) and shape.sort[0].field is SortField.PRIORITY


def _merged(shape: _Shape) -> bool:
    """Whether a list is a merge of per-project keyset ranges (PostgreSQL, no `q`). A search
    is looked up in the trigram indexes of the projects in scope (project id and trigrams in
    one index, orm.py), then sorted: walking a project's range would test each of its rows
    against the text, and the planner, not knowing which project a range is, cannot tell a
    large project from a small one."""
    return shape.postgres and not shape.text


def _conditions(shape: _Shape) -> list[sa.ColumnElement[bool]]:
    """The filters, on the todos table (a split sort takes its priorities from its pairs)."""
    c = todos.c
    conditions: list[sa.ColumnElement[bool]] = [
        c.deleted_at.is_not(None) if shape.deleted else c.deleted_at.is_(None)
    ]
    if shape.owner:
        conditions.append(c.owner_id == sa.bindparam("owner_id"))
    if shape.completed:
        conditions.append(c.completed == sa.bindparam("completed"))
    if shape.priorities and not _split_by_priority(shape):
        conditions.append(_any_priority(postgres=shape.postgres))
    if shape.tags:
        conditions.append(_has_tags(shape.tags, postgres=shape.postgres))
    if shape.text:
        pattern = sa.bindparam("pattern", type_=sa.String())
        conditions.append(
            sa.or_(c.title.ilike(pattern, escape="/"), c.description.ilike(pattern, escape="/"))
        )
    if shape.due_before:
        conditions.append(c.due_at < sa.bindparam("due_before"))
    if shape.due_after:
        conditions.append(c.due_at > sa.bindparam("due_after"))
    if shape.overdue is not None:
        now = sa.bindparam("now", type_=c.due_at.type)
        if shape.overdue:
            conditions.append(sa.and_(c.completed.is_(False), c.due_at < now))
        else:  # spelled out: NOT over a null due_at would drop the row
            conditions.append(sa.or_(c.completed.is_(True), c.due_at.is_(None), c.due_at >= now))
    return conditions


@lru_cache(maxsize=1024)
def _find_statement(shape: _Shape) -> sa.Select[Any]:
    """Built once per shape: constructing a statement (and its cache key) costs more than
    running it.

    On PostgreSQL a list across several projects is a merge of one keyset range per project:
    for each project in scope (LATERAL), the page's worth of its rows in the sort order, read
    from that project's keyset index (orm.py) from the cursor on; then the best of those. A
    page costs (projects in scope) short index ranges, however deep it is, and never "every
    visible todo, then sort". A sort that starts with priority merges one range per project and
    priority (_split_by_priority). A search (`q`) is not merged (_merged). SQLite has no
    LATERAL: there the rows of the projects in scope are filtered and sorted (the embedded
    default holds few)."""
    limit = sa.bindparam("limit", type_=sa.Integer())
    conditions = _conditions(shape)
    keyset = _Keyset(shape.sort, postgres=shape.postgres)
    if shape.after_nulls is not None:
        conditions.append(keyset.after(shape.after_nulls))
    scope = _scope(shape)
    if not _merged(shape):
        scoped = (
            # ANY(ARRAY(...)): the ids as one value, a key of the (project_id, trigrams)
            # indexes: each project in scope is looked up there with the text.
            todos.c.project_id == sa.any_(sa.func.array(scope.scalar_subquery()))
            if shape.postgres
            else todos.c.project_id.in_(scope)
        )
        return planned_per_run(
            TODOS.select().where(scoped, *conditions).order_by(*keyset.order_by()).limit(limit)
        )
    in_scope = scope.subquery("scope")
    if _split_by_priority(shape):
        # The priorities asked for, else all of them (a parameter: see _find_parameters).
        ranks = (
            sa.func.unnest(sa.bindparam("ranks", type_=_RANKS))
            .table_valued("rank")
            .render_derived(name="ranks")
        )
        in_scope = (
            sa.select(in_scope.c.project_id, ranks.c.rank)
            .select_from(in_scope)
            .join(ranks, sa.true())
            .subquery("pairs")
        )
        conditions.append(todos.c.priority == in_scope.c.rank)
    page = (
        TODOS.select()
        .where(todos.c.project_id == in_scope.c.project_id, *conditions)
        .order_by(*keyset.order_by())
        .limit(limit)
        .lateral("page")
    )
    merged = _Keyset(shape.sort, postgres=True, columns=page.c)
    return planned_per_run(
        sa.select(*page.c)
        .select_from(in_scope)
        .join(page, sa.true())
        .order_by(*merged.order_by())
        .limit(limit)
    )


def _any_priority(*, postgres: bool) -> sa.ColumnElement[bool]:
    if postgres:
        # `priority = ANY(:priorities)`: one array parameter (what PostgreSQL makes of an IN
        # list anyway), so the statement's text does not depend on how many are asked for.
        return todos.c.priority == sa.any_(sa.bindparam("priorities", type_=_RANKS))
    return todos.c.priority.in_(sa.bindparam("priorities", expanding=True))


def _has_tags(count: int, *, postgres: bool) -> sa.ColumnElement[bool]:
    if postgres:
        # `tags @> ARRAY[...]`: with a range's project, a key of the (project_id, tags) GIN
        # index, which finds the project's tagged rows alone.
        tags = sa.bindparam("tags", type_=TAG_ARRAY)
        return sa.type_coerce(todos.c.tags, TAG_ARRAY).contains(tags)
    each = sa.func.json_each(todos.c.tags).table_valued("value")
    return sa.and_(
        *(
            sa.exists(
                sa.select(1).select_from(each).where(each.c.value == sa.bindparam(f"tag_{i}"))
            )
            for i in range(count)
        )
    )


def _like_pattern(text: str) -> str:
    """A case-insensitive substring, with LIKE's wildcards taken literally (escape `/`)."""
    return f"%{like_escaped(text)}%"


def _find_parameters(
    query: TodoFilter, *, after: SortValues | None, limit: int, now: datetime, postgres: bool
) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit, "now": now}
    if query.member_id is not None:
        params["member_id"] = query.member_id
    if query.owner_id is not None:
        params["owner_id"] = query.owner_id
    if query.project_ids:
        params["project_ids"] = sorted(query.project_ids)
    if query.completed is not None:
        params["completed"] = query.completed
    if query.priorities:
        params["priorities"] = sorted(p.rank for p in query.priorities)
    params["ranks"] = params.get("priorities") or [p.rank for p in Priority]
    if postgres:
        params["tags"] = list(query.tags)
    else:
        params.update({f"tag_{i}": tag for i, tag in enumerate(query.tags)})
    if query.text:
        params["pattern"] = _like_pattern(query.text)
    params["due_before"], params["due_after"] = query.due_before, query.due_after
    for index, value in enumerate(after or ()):
        params[f"after_{index}"] = value
    return params


# The hot statements, built once (see _find_statement for why).
_INSERT = TODOS.insert()
# The insert, only while the owner owns fewer than `max_owned` todos: one statement, so the
# count costs no round trip of its own (an index-only count over the owner's todos).
_OWNED = (
    sa.select(sa.func.count())
    .select_from(todos)
    .where(todos.c.owner_id == sa.bindparam("owner_id", type_=todos.c.owner_id.type))
    .scalar_subquery()
)
# RETURNING says whether it inserted (an INSERT ... SELECT's rowcount is not reported).
_INSERT_WITHIN_QUOTA = (
    sa.insert(todos)
    .from_select(
        TODOS.names,
        sa.select(
            *(sa.bindparam(column.name, type_=column.type) for column in TODOS.columns)
        ).where(sa.bindparam("max_owned", type_=sa.Integer()) > _OWNED),
    )
    .returning(todos.c.id)
)
# Adds for one owner take turns on PostgreSQL: a transaction-scoped advisory lock, taken in a
# statement of its own, so the count that follows sees every add committed before the turn
# came (a statement sees what was committed when it began). SQLite's one connection already
# runs a unit of work at a time.
_LOCK_OWNER = sa.select(
    sa.func.pg_advisory_xact_lock(sa.bindparam("lock", type_=sa.BigInteger)).label("locked")
)
# A todo with the reader's role in its project (NULL: not a member), in one read.
_BY_ID = (
    TODOS.select()
    .add_columns(memberships.c.role.label("reader_role"))
    .select_from(
        todos.outerjoin(
            memberships,
            sa.and_(
                memberships.c.project_id == todos.c.project_id,
                memberships.c.user_id == sa.bindparam("reader_id", type_=sa.Uuid()),
            ),
        )
    )
    .where(todos.c.id == sa.bindparam("match_id"))
)
# Sync and live events: todos by id (their current state, whatever project they are in), and
# every todo of one project, the trash included, by id.
_MANY = {
    "postgresql": TODOS.select().where(_any_id(todos.c.id, postgres=True, name="ids")),
    "sqlite": TODOS.select().where(_any_id(todos.c.id, postgres=False, name="ids")),
}
_IN_PROJECT = (
    TODOS.select()
    .where(todos.c.project_id == sa.bindparam("project_id", type_=sa.Uuid()))
    .order_by(todos.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer()))
)
_IN_PROJECT_AFTER = _IN_PROJECT.where(todos.c.id > sa.bindparam("after_id", type_=sa.Uuid()))
_SAVE = TODOS.update().where(
    todos.c.id == sa.bindparam("match_id"), todos.c.version == sa.bindparam("match_version")
)


# The scheduled jobs (application/maintenance.py): a batch is chosen and locked in one
# subquery that skips the rows another transaction holds (PostgreSQL; SQLite has one writer
# and no FOR UPDATE), so two workers at once never take the same todo, nor wait for each
# other. A locked row is checked against the condition as it is now (READ COMMITTED), and
# the write checks it once more: a todo restored, completed or given another due date
# meanwhile is taken only if it still qualifies.
def _batch_of(
    statement: sa.Update | sa.Delete,
    *conditions: sa.ColumnElement[bool] | sa.TextClause,
    first: sa.ColumnElement[Any],
) -> dict[str, sa.Update | sa.Delete]:
    """`statement` on at most `limit` rows meeting `conditions`, `first` first, by dialect."""
    batch = (
        sa.select(todos.c.id)
        .where(*conditions)
        .order_by(first)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        .with_for_update(skip_locked=True)
    )
    return {
        dialect: statement.where(chosen, *conditions).returning(*TODOS.columns)
        for dialect, chosen in in_locked_batch(todos.c.id, batch).items()
    }


_TRASHED_BEFORE = sa.bindparam("trashed_before", type_=todos.c.deleted_at.type)
_PURGE = _batch_of(
    sa.delete(todos),
    todos.c.deleted_at.is_not(None),
    todos.c.deleted_at <= _TRASHED_BEFORE,
    first=todos.c.deleted_at,
)
# A todo is marked with the due_at it is announced for; nothing else of the row changes.
_MARK_DUE = _batch_of(
    sa.update(todos).values(due_announced_for=todos.c.due_at),
    DUE_PENDING,
    todos.c.due_at <= sa.bindparam("now", type_=todos.c.due_at.type),
    first=todos.c.due_at,
)

_COUNTS = (
    sa.func.count().label("total"),
    sa.func.count().filter(todos.c.completed.is_(True)).label("completed"),
    sa.func.count()
    .filter(
        todos.c.completed.is_(False),
        todos.c.due_at < sa.bindparam("now", type_=todos.c.due_at.type),
    )
    .label("overdue"),
    *(
        sa.func.count().filter(todos.c.priority == sa.literal_column(str(p.rank))).label(p.value)
        for p in Priority
    ),
)


@lru_cache(maxsize=64)
def _stats_statement(shape: _Shape) -> sa.Select[Any]:
    """Counts over the live todos of the projects in scope (and the owner's, if named)."""
    conditions: list[sa.ColumnElement[bool]] = [
        todos.c.project_id.in_(_scope(shape)),
        todos.c.deleted_at.is_(None),
    ]
    if shape.owner:
        conditions.append(todos.c.owner_id == sa.bindparam("owner_id"))
    return planned_per_run(cast(sa.Select[Any], sa.select(*_COUNTS).where(*conditions)))


def _stats_shape(query: TodoFilter, *, postgres: bool) -> _Shape:
    return _Shape(
        postgres=postgres,
        deleted=False,
        member=query.member_id is not None,
        owner=query.owner_id is not None,
        projects=bool(query.project_ids),
        completed=False,
        priorities=False,
        tags=0,
        text=False,
        due_before=False,
        due_after=False,
        overdue=None,
        sort=(),
        after_nulls=None,
    )


def _quota_lock_id(owner_id: UUID) -> int:
    """The owner as a 64-bit lock id; a collision only makes two owners' adds take turns."""
    digest = hashlib.blake2b(f"todo-quota:{owner_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SqlAlchemyTodoRepository(SqlRepository):
    async def add(self, todo: Todo, *, max_owned: int | None = None) -> bool:
        if max_owned is None:
            await self._write(_INSERT, TODOS.values(todo))
            return True
        if self._statements.dialect == "postgresql":
            await self._statements.later(_LOCK_OWNER, {"lock": _quota_lock_id(todo.owner_id)})
        params = {**TODOS.values(todo), "max_owned": max_owned}
        return bool(await self._rows(_INSERT_WITHIN_QUOTA, params))

    async def get(
        self, todo_id: UUID, *, reader_id: UUID
    ) -> tuple[Todo, ProjectRole | None] | None:
        row = await self._first(_BY_ID, {"match_id": todo_id, "reader_id": reader_id})
        if row is None:
            return None
        role = row.pop("reader_role")
        return TODOS.load(row), None if role is None else ProjectRole(role)

    async def save(self, todo: Todo, *, expected_version: int) -> bool:
        # The version check is part of the UPDATE itself: of two writers holding the same
        # version, the database lets exactly one match.
        params = {**TODOS.values(todo), "match_id": todo.id, "match_version": expected_version}
        return await self._write(_SAVE, params) == 1

    async def delete(self, todo_id: UUID, *, expected_version: int | None) -> bool:
        statement = sa.delete(todos).where(todos.c.id == todo_id)
        if expected_version is not None:
            statement = statement.where(todos.c.version == expected_version)
        return await self._write(statement) == 1

    async def find(
        self,
        query: TodoFilter,
        *,
        sort: Sequence[SortKey],
        after: SortValues | None,
        limit: int,
        now: datetime,
    ) -> list[Todo]:
        if after is not None and len(after) != len(sort) + 1:
            raise ValueError("cursor does not match the sort")
        postgres = self._statements.dialect == "postgresql"
        shape = _Shape(
            postgres=postgres,
            deleted=query.deleted,
            member=query.member_id is not None,
            owner=query.owner_id is not None,
            projects=bool(query.project_ids),
            completed=query.completed is not None,
            priorities=bool(query.priorities),
            tags=len(query.tags),
            text=bool(query.text),
            due_before=query.due_before is not None,
            due_after=query.due_after is not None,
            overdue=query.overdue,
            sort=tuple(sort),
            after_nulls=None if after is None else tuple(value is None for value in after),
        )
        params = _find_parameters(query, after=after, limit=limit, now=now, postgres=postgres)
        rows = await self._rows(_find_statement(shape), params)
        return [TODOS.load(row) for row in rows]

    async def stats(self, query: TodoFilter, *, now: datetime) -> TodoStats:
        if query.member_id is None and query.owner_id is None and not query.project_ids:
            raise ValueError("a query names the projects it looks in")
        postgres = self._statements.dialect == "postgresql"
        params = _find_parameters(query, after=None, limit=0, now=now, postgres=postgres)
        (row,) = await self._rows(_stats_statement(_stats_shape(query, postgres=postgres)), params)
        return TodoStats(
            total=row["total"],
            completed=row["completed"],
            overdue=row["overdue"],
            by_priority={priority: row[priority.value] for priority in Priority},
        )

    async def many(self, todo_ids: Sequence[UUID]) -> list[Todo]:
        if not todo_ids:
            return []
        rows = await self._rows(_MANY[self._statements.dialect], {"ids": list(todo_ids)})
        return [TODOS.load(row) for row in rows]

    async def in_project(self, project_id: UUID, *, after: UUID | None, limit: int) -> list[Todo]:
        params: dict[str, Any] = {"project_id": project_id, "limit": limit}
        if after is not None:
            params["after_id"] = after
        rows = await self._rows(_IN_PROJECT if after is None else _IN_PROJECT_AFTER, params)
        return [TODOS.load(row) for row in rows]

    async def purge_trashed(self, *, trashed_before: datetime, limit: int) -> list[Todo]:
        params = {"trashed_before": trashed_before, "limit": limit}
        rows = await self._rows(_PURGE[self._statements.dialect], params)
        return [TODOS.load(row) for row in rows]

    async def mark_due(self, *, now: datetime, limit: int) -> list[Todo]:
        rows = await self._rows(_MARK_DUE[self._statements.dialect], {"now": now, "limit": limit})
        return [TODOS.load(row) for row in rows]
