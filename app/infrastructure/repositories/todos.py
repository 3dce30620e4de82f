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
from app.domain.todos import Priority, SortField, SortKey, Todo, TodoFilter
from app.infrastructure.orm import TAG_ARRAY, TodoRow
from app.infrastructure.repositories.base import SqlRepository, like_escaped
from app.infrastructure.repositories.rows import RowMapper

todos = cast(sa.Table, TodoRow.__table__)

_SORT_COLUMNS: dict[SortField, sa.ColumnElement[Any]] = {
    SortField.CREATED_AT: todos.c.created_at,
    SortField.UPDATED_AT: todos.c.updated_at,
    SortField.DUE_AT: todos.c.due_at,
    SortField.PRIORITY: todos.c.priority,  # stored as the rank, so it sorts by urgency
    SortField.TITLE: todos.c.title,
}
_NULLABLE = frozenset({SortField.DUE_AT})
_RANKS = postgresql.ARRAY(sa.SmallInteger())
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
)


class _Keyset:
    """ORDER BY and "after this row" for a sort; the id breaks ties in the last key's direction.

    Nulls sort last in both directions (docs/http.md, Pagination). The cursor's values are bound
    parameters (`after_0`, `after_1`, …), so one statement serves every page of a query shape.
    """

    def __init__(self, sort: Sequence[SortKey], *, postgres: bool = False) -> None:
        self.keys: list[tuple[sa.ColumnElement[Any], bool, bool]] = []
        self.null_as: list[sa.ColumnElement[Any] | None] = []
        for key in sort:
            column, nullable = _SORT_COLUMNS[key.field], key.field in _NULLABLE
            if nullable and postgres:
                null_as = _NULLS_LAST[key.descending]
                self.keys.append((sa.func.coalesce(column, null_as), key.descending, False))
                self.null_as.append(null_as)
            else:
                self.keys.append((column, key.descending, nullable))
                self.null_as.append(None)
        self.keys.append((todos.c.id, sort[-1].descending, False))
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
    owner: bool
    completed: bool
    priorities: bool
    tags: int
    text: bool
    due_before: bool
    due_after: bool
    overdue: bool | None
    sort: tuple[SortKey, ...]
    after_nulls: tuple[bool, ...] | None  # None: the first page


@lru_cache(maxsize=1024)
def _find_statement(shape: _Shape) -> sa.Select[Any]:
    """Built once per shape: constructing a statement (and its cache key) costs more than
    running it."""
    c = todos.c
    conditions: list[sa.ColumnElement[bool]] = [
        c.deleted_at.is_not(None) if shape.deleted else c.deleted_at.is_(None)
    ]
    if shape.owner:
        conditions.append(c.owner_id == sa.bindparam("owner_id"))
    if shape.completed:
        conditions.append(c.completed == sa.bindparam("completed"))
    if shape.priorities:
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
    keyset = _Keyset(shape.sort, postgres=shape.postgres)
    if shape.after_nulls is not None:
        conditions.append(keyset.after(shape.after_nulls))
    return (
        TODOS.select()
        .where(*conditions)
        .order_by(*keyset.order_by())
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )


def _any_priority(*, postgres: bool) -> sa.ColumnElement[bool]:
    if postgres:
        # `priority = ANY(:priorities)`: one array parameter (what PostgreSQL makes of an IN
        # list anyway), so the statement's text does not depend on how many are asked for.
        return todos.c.priority == sa.any_(sa.bindparam("priorities", type_=_RANKS))
    return todos.c.priority.in_(sa.bindparam("priorities", expanding=True))


def _has_tags(count: int, *, postgres: bool) -> sa.ColumnElement[bool]:
    if postgres:
        # `tags @> ARRAY[...]`, served by the GIN index.
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
    if query.owner_id is not None:
        params["owner_id"] = query.owner_id
    if query.completed is not None:
        params["completed"] = query.completed
    if query.priorities:
        params["priorities"] = sorted(p.rank for p in query.priorities)
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
_INSERT = sa.insert(todos)
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
_BY_ID = TODOS.select().where(todos.c.id == sa.bindparam("match_id"))
_SAVE = sa.update(todos).where(
    todos.c.id == sa.bindparam("match_id"), todos.c.version == sa.bindparam("match_version")
)

_STATS = sa.select(
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
).where(todos.c.owner_id == sa.bindparam("owner_id"), todos.c.deleted_at.is_(None))


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
            await self._rows(_LOCK_OWNER, {"lock": _quota_lock_id(todo.owner_id)})
        params = {**TODOS.values(todo), "max_owned": max_owned}
        return bool(await self._rows(_INSERT_WITHIN_QUOTA, params))

    async def get(self, todo_id: UUID) -> Todo | None:
        row = await self._first(_BY_ID, {"match_id": todo_id})
        return TODOS.load(row) if row else None

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
            owner=query.owner_id is not None,
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

    async def stats(self, owner_id: UUID, *, now: datetime) -> TodoStats:
        (row,) = await self._rows(_STATS, {"owner_id": owner_id, "now": now})
        return TodoStats(
            total=row["total"],
            completed=row["completed"],
            overdue=row["overdue"],
            by_priority={priority: row[priority.value] for priority in Priority},
        )
