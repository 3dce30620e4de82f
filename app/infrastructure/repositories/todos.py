"""Todos in SQL: filters, multi-key keyset pagination, compare-and-set writes, stats."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from app.application.ports import SortValues, TodoStats
from app.domain.todos import Priority, SortField, SortKey, Todo, TodoFilter
from app.infrastructure.orm import TAG_ARRAY, TodoRow

todos = cast(sa.Table, TodoRow.__table__)

_SORT_COLUMNS: dict[SortField, sa.ColumnElement[Any]] = {
    SortField.CREATED_AT: todos.c.created_at,
    SortField.UPDATED_AT: todos.c.updated_at,
    SortField.DUE_AT: todos.c.due_at,
    SortField.PRIORITY: todos.c.priority,  # stored as the rank, so it sorts by urgency
    SortField.TITLE: todos.c.title,
}
_NULLABLE = frozenset({SortField.DUE_AT})
# On PostgreSQL a nullable key sorts as COALESCE(key, +infinity) ascending or
# COALESCE(key, -infinity) descending: nulls last either way, never null, and served by the
# expression indexes in orm.py. The literal must match the index expression (no parameter).
_NULLS_LAST: dict[bool, sa.ColumnElement[Any]] = {
    False: sa.literal_column("'infinity'::timestamptz"),
    True: sa.literal_column("'-infinity'::timestamptz"),
}


def _to_todo(row: sa.RowMapping) -> Todo:
    return Todo(
        **{
            **row,
            "priority": Priority.from_rank(row["priority"]),
            "tags": tuple(row["tags"] or ()),
        }
    )


def _values(todo: Todo) -> dict[str, Any]:
    return {
        "id": todo.id,
        "owner_id": todo.owner_id,
        "title": todo.title,
        "description": todo.description,
        "priority": todo.priority.rank,
        "due_at": todo.due_at,
        "tags": list(todo.tags),
        "completed": todo.completed,
        "completed_at": todo.completed_at,
        "created_at": todo.created_at,
        "updated_at": todo.updated_at,
        "deleted_at": todo.deleted_at,
        "version": todo.version,
    }


class _Keyset:
    """ORDER BY and "after this row" for a sort; the id breaks ties in the last key's direction.

    Nulls sort last in both directions, as the contract says.
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

    def after(self, values: SortValues) -> sa.ColumnElement[bool]:
        if len(values) != len(self.keys):
            raise ValueError("cursor does not match the sort")
        values = tuple(
            null_as if value is None and null_as is not None else value
            for value, null_as in zip(values, self.null_as, strict=True)
        )
        directions = {descending for _, descending, _ in self.keys}
        if len(directions) == 1 and not any(nullable for *_, nullable in self.keys):
            # One row-value comparison: PostgreSQL turns it into a single index range scan.
            columns = sa.tuple_(*(column for column, _, _ in self.keys))
            bound = sa.tuple_(
                *(
                    v if isinstance(v, sa.ColumnElement) else sa.literal(v, c.type)
                    for (c, _, _), v in zip(self.keys, values, strict=True)
                )
            )
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


def _equal(column: sa.ColumnElement[Any], value: object) -> sa.ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def _beyond(
    column: sa.ColumnElement[Any], value: object, descending: bool, nullable: bool
) -> sa.ColumnElement[bool]:
    if value is None:
        return sa.false()  # nulls come last: nothing sorts after a null in this key
    strictly = column < value if descending else column > value
    return sa.or_(strictly, column.is_(None)) if nullable else strictly


class SqlAlchemyTodoRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, todo: Todo) -> None:
        await self._session.execute(sa.insert(todos).values(_values(todo)))

    async def get(self, todo_id: UUID) -> Todo | None:
        statement = sa.select(todos).where(todos.c.id == todo_id)
        row = (await self._session.execute(statement)).mappings().first()
        return _to_todo(row) if row else None

    async def save(self, todo: Todo, *, expected_version: int) -> bool:
        # The version check is part of the UPDATE itself: of two writers holding the same
        # version, the database lets exactly one match.
        statement = (
            sa.update(todos)
            .where(todos.c.id == todo.id, todos.c.version == expected_version)
            .values(_values(todo))
        )
        result = cast(CursorResult[Any], await self._session.execute(statement))
        return result.rowcount == 1

    async def delete(self, todo_id: UUID, *, expected_version: int | None) -> bool:
        statement = sa.delete(todos).where(todos.c.id == todo_id)
        if expected_version is not None:
            statement = statement.where(todos.c.version == expected_version)
        result = cast(CursorResult[Any], await self._session.execute(statement))
        return result.rowcount == 1

    async def find(
        self,
        query: TodoFilter,
        *,
        sort: Sequence[SortKey],
        after: SortValues | None,
        limit: int,
        now: datetime,
    ) -> list[Todo]:
        keyset = _Keyset(sort, postgres=self._session.get_bind().dialect.name == "postgresql")
        statement = sa.select(todos).where(*self._conditions(query, now))
        if after is not None:
            statement = statement.where(keyset.after(after))
        statement = statement.order_by(*keyset.order_by()).limit(limit)
        rows = (await self._session.execute(statement)).mappings()
        return [_to_todo(row) for row in rows]

    async def stats(self, owner_id: UUID, *, now: datetime) -> TodoStats:
        overdue = sa.and_(todos.c.completed.is_(False), todos.c.due_at < now)
        counts = [
            sa.func.count(),
            sa.func.count().filter(todos.c.completed.is_(True)),
            sa.func.count().filter(overdue),
            *(sa.func.count().filter(todos.c.priority == p.rank) for p in Priority),
        ]
        statement = sa.select(*counts).where(
            todos.c.owner_id == owner_id, todos.c.deleted_at.is_(None)
        )
        total, completed, overdue_count, *by_rank = (await self._session.execute(statement)).one()
        return TodoStats(
            total=total,
            completed=completed,
            overdue=overdue_count,
            by_priority=dict(zip(Priority, by_rank, strict=True)),
        )

    def _conditions(self, query: TodoFilter, now: datetime) -> list[sa.ColumnElement[bool]]:
        c = todos.c
        conditions: list[sa.ColumnElement[bool]] = [
            c.deleted_at.is_not(None) if query.deleted else c.deleted_at.is_(None)
        ]
        if query.owner_id is not None:
            conditions.append(c.owner_id == query.owner_id)
        if query.completed is not None:
            conditions.append(c.completed.is_(query.completed))
        if query.priorities:
            conditions.append(c.priority.in_(sorted(p.rank for p in query.priorities)))
        if query.tags:
            conditions.append(self._has_tags(query.tags))
        if query.text:
            conditions.append(
                sa.or_(
                    c.title.icontains(query.text, autoescape=True),
                    c.description.icontains(query.text, autoescape=True),
                )
            )
        if query.due_before is not None:
            conditions.append(c.due_at < query.due_before)
        if query.due_after is not None:
            conditions.append(c.due_at > query.due_after)
        if query.overdue is not None:
            if query.overdue:
                conditions.append(sa.and_(c.completed.is_(False), c.due_at < now))
            else:  # spelled out: NOT over a null due_at would drop the row
                conditions.append(
                    sa.or_(c.completed.is_(True), c.due_at.is_(None), c.due_at >= now)
                )
        return conditions

    def _has_tags(self, tags: Sequence[str]) -> sa.ColumnElement[bool]:
        if self._session.get_bind().dialect.name == "postgresql":
            # `tags @> ARRAY[...]`, served by the GIN index.
            return sa.type_coerce(todos.c.tags, TAG_ARRAY).contains(list(tags))
        each = sa.func.json_each(todos.c.tags).table_valued("value")
        return sa.and_(
            *(sa.exists(sa.select(1).select_from(each).where(each.c.value == tag)) for tag in tags)
        )
