"""Reads run directly on the driver's cursor (app/infrastructure/direct_reads.py) return what
SQLAlchemy's Connection returns, and leave to it every statement and fault they cannot take."""

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from app.config import Settings
from app.domain.todos import DEFAULT_SORT, Priority, SortField, SortKey, Todo, TodoDraft, TodoFilter
from app.domain.users import Role, User
from app.infrastructure.db import create_engine
from app.infrastructure.direct_reads import DirectReads
from app.infrastructure.repositories import todos as todo_sql
from app.infrastructure.repositories import users as user_sql
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from tests.conftest import empty_stores, on_postgres

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    await empty_stores(settings)
    engine = create_engine(settings.database_url, autocommit=True)
    yield engine
    await engine.dispose()


async def _seed(engine: AsyncEngine) -> tuple[User, list[Todo]]:
    ada = User(
        id=uuid.uuid4(),
        email="ada@x.io",
        password_hash="hash",
        full_name=None,
        role=Role.USER,
        is_active=True,
        created_at=NOW,
        updated_at=NOW,
    )
    todos = [
        Todo.new(
            TodoDraft(
                title=f"todo {i}",
                priority=list(Priority)[i % 4],
                tags=("work", "home")[: i % 3],
                due_at=None if i % 2 else NOW + timedelta(days=i - 3),
                completed=i % 5 == 0,
            ),
            id=uuid.uuid4(),
            owner_id=ada.id,
            now=NOW + timedelta(seconds=i),
        )
        for i in range(12)
    ]
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await uow.users.add(ada)
        for todo in todos:
            await uow.todos.add(todo)
        await uow.commit()
    return ada, todos


async def _through_sqlalchemy(
    engine: AsyncEngine, statement: sa.Executable, parameters: dict[str, Any]
) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(statement, parameters)]


async def _direct(
    direct: DirectReads, statement: sa.Executable, parameters: dict[str, Any] | None
) -> Sequence[Sequence[Any]] | None:
    return await greenlet_spawn(direct.rows, statement, parameters)


def _find(
    sort: Sequence[SortKey], *, after_nulls: tuple[bool, ...] | None = None, **shape: Any
) -> Any:
    fields: dict[str, Any] = {
        "postgres": True,
        "deleted": False,
        "owner": True,
        "completed": False,
        "priorities": False,
        "tags": 0,
        "text": False,
        "due_before": False,
        "due_after": False,
        "overdue": None,
    }
    return todo_sql._find_statement(
        todo_sql._Shape(**{**fields, **shape}, sort=tuple(sort), after_nulls=after_nulls)
    )


@on_postgres
async def test_direct_reads_return_what_sqlalchemy_returns(engine: AsyncEngine) -> None:
    ada, todos = await _seed(engine)
    direct = DirectReads(engine)
    by_due = [
        SortKey(SortField.DUE_AT, descending=False),
        SortKey(SortField.PRIORITY, descending=True),
    ]
    base = {"owner_id": ada.id, "limit": 5, "now": NOW, "due_before": None, "due_after": None}
    cases: list[tuple[sa.Executable, dict[str, Any]]] = [
        (todo_sql._BY_ID, {"match_id": todos[4].id}),
        (todo_sql._BY_ID, {"match_id": uuid.uuid4()}),  # no row
        (user_sql._BY_ID, {"match_id": ada.id}),
        (_find(DEFAULT_SORT), {**base, "tags": []}),
        (_find(DEFAULT_SORT, tags=1), {**base, "tags": ["work"]}),  # an array parameter
        (_find(DEFAULT_SORT, text=True), {**base, "tags": [], "pattern": "%todo 1%"}),
        (_find(by_due, overdue=True), {**base, "tags": []}),
        (_find(by_due, priorities=True), {**base, "tags": [], "priorities": [0, 3]}),
        (
            _find(DEFAULT_SORT, after_nulls=(False, False)),
            {**base, "tags": [], "after_0": todos[6].created_at, "after_1": todos[6].id},
        ),
    ]
    for statement, parameters in cases:
        expected = await _through_sqlalchemy(engine, statement, parameters)
        got = await _direct(direct, statement, parameters)
        assert got is not None, statement
        assert [tuple(row) for row in got] == expected
    # The tags come back as lists, as SQLAlchemy's ARRAY type gives them.
    (row,) = await _direct(direct, todo_sql._BY_ID, {"match_id": todos[2].id}) or []
    assert row[6] == ["home", "work"]


@on_postgres
async def test_what_direct_reads_cannot_take_is_left_to_sqlalchemy(engine: AsyncEngine) -> None:
    ada, todos = await _seed(engine)
    direct = DirectReads(engine)
    base = {"owner_id": ada.id, "limit": 5, "now": NOW, "due_before": None, "due_after": None}
    # An IN list expands at execution; a statement that carries its values; no parameters.
    expanding = _find(DEFAULT_SORT, priorities=True, postgres=False)  # SQLite's IN list
    assert await _direct(direct, expanding, {**base, "tags": [], "priorities": [1, 2]}) is None
    inline = sa.select(todo_sql.todos).where(todo_sql.todos.c.id == todos[0].id)
    assert await _direct(direct, inline, {}) is None
    assert await _direct(direct, todo_sql._BY_ID, None) is None
    # A cursor-event listener (tracing's) sees every statement: none goes around it.
    seen: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    assert await _direct(direct, todo_sql._BY_ID, {"match_id": todos[0].id}) is None
    reads = SqlAlchemyUnitOfWork(engine, read_only=True, direct=direct)
    assert await reads.todos.get(todos[0].id) == todos[0]
    assert seen


async def test_on_sqlite_every_read_goes_through_sqlalchemy(settings: Settings) -> None:
    if settings.database_url.startswith("postgres"):
        pytest.skip("the SQLite side")
    engine = create_engine(settings.database_url, autocommit=True)
    try:
        assert (
            await _direct(DirectReads(engine), todo_sql._BY_ID, {"match_id": uuid.uuid4()}) is None
        )
    finally:
        await engine.dispose()


@on_postgres
async def test_a_dropped_connection_is_replaced_and_the_read_still_answers(
    engine: AsyncEngine, settings: Settings
) -> None:
    ada, todos = await _seed(engine)
    direct = DirectReads(engine)
    reads = SqlAlchemyUnitOfWork(engine, read_only=True, direct=direct)
    assert await reads.todos.get(todos[0].id) == todos[0]  # a pooled connection now exists
    admin = create_engine(settings.database_url, autocommit=True)  # not a pooled one of ours
    async with admin.connect() as connection:
        killed = await connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        assert killed.all()
    await admin.dispose()
    # The dead connection fails the direct attempt and is dropped; SQLAlchemy answers instead,
    # with a wrapped error (503 in the API) or, on a live connection, the row. Never a raw
    # driver error, and the next read is served.
    with suppress(sa.exc.DBAPIError):
        assert await reads.todos.get(todos[0].id) == todos[0]
    assert await reads.todos.get(todos[0].id) == todos[0]
    found = await reads.todos.find(
        TodoFilter(owner_id=ada.id), sort=DEFAULT_SORT, after=None, limit=3, now=NOW
    )
    assert [todo.id for todo in found] == [todo.id for todo in todos[::-1][:3]]
