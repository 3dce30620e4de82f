"""Reads through psycopg itself (app/infrastructure/driver_reads.py) return what SQLAlchemy's
Connection returns for the same statement, row for row and name for name; refuse what they
cannot run as SQLAlchemy would; and answer faults as the SQLAlchemy path does, without ever
sending a statement down another path."""

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application.ports import IdempotencyRecord, ServiceUnavailable
from app.bootstrap import Container
from app.config import Settings
from app.domain.projects import Project, ProjectRole
from app.domain.sessions import RefreshToken
from app.domain.todos import DEFAULT_SORT, Priority, SortField, SortKey, Todo, TodoDraft, TodoFilter
from app.domain.users import Role, User
from app.infrastructure.db import create_engine
from app.infrastructure.driver_reads import DriverReads
from app.infrastructure.repositories import activity as activity_sql
from app.infrastructure.repositories import idempotency_keys as key_sql
from app.infrastructure.repositories import memberships as membership_sql
from app.infrastructure.repositories import projects as project_sql
from app.infrastructure.repositories import todos as todo_sql
from app.infrastructure.repositories import tokens as token_sql
from app.infrastructure.repositories import users as user_sql
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from app.tracing.sdk import new_provider
from tests.conftest import empty_stores, on_postgres
from tests.fakes import inbox_id
from tests.support import terminate_other_backends

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    await empty_stores(settings)
    engine = create_engine(settings.database_url, autocommit=True, pool_size=3)
    yield engine
    await engine.dispose()


async def _seed(engine: AsyncEngine) -> tuple[User, list[Todo]]:
    ada = User(
        id=uuid.uuid4(),
        email="ada@x.io",
        password_hash="hash",
        full_name="Ada",
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
            project_id=inbox_id(ada.id),
            owner_id=ada.id,
            created_by=ada.id,
            now=NOW + timedelta(seconds=i),
        )
        for i in range(12)
    ]
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await uow.users.add(ada)
        await uow.projects.add(Project.inbox(id=inbox_id(ada.id), owner_id=ada.id, now=NOW))
        for todo in todos:
            await uow.todos.add(todo)
        await uow.refresh_tokens.add(
            RefreshToken(
                id=uuid.uuid4(),
                user_id=ada.id,
                family_id=uuid.uuid4(),
                token_hash="a" * 64,
                created_at=NOW,
                expires_at=NOW + timedelta(days=1),
                used_at=None,
                revoked_at=NOW,
            )
        )
        record = IdempotencyRecord(ada.id, "key-1", "f" * 64, todos[0].id, NOW)
        assert await uow.idempotency_keys.claim(record, live_since=NOW - timedelta(days=1)) is None
        await uow.commit()
    return ada, todos


async def _through_sqlalchemy(
    engine: AsyncEngine, statement: sa.Executable, parameters: dict[str, Any]
) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        return [dict(row) for row in (await connection.execute(statement, parameters)).mappings()]


def _find(
    sort: Sequence[SortKey], *, after_nulls: tuple[bool, ...] | None = None, **shape: Any
) -> Any:
    fields: dict[str, Any] = {
        "postgres": True,
        "deleted": False,
        "member": True,
        "owner": False,
        "projects": False,
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
async def test_reads_through_the_driver_return_what_sqlalchemy_returns(engine: AsyncEngine) -> None:
    ada, todos = await _seed(engine)
    reads = DriverReads(engine, pool_size=3)
    by_due = [
        SortKey(SortField.DUE_AT, descending=False),
        SortKey(SortField.PRIORITY, descending=True),
    ]
    base = {
        "member_id": ada.id,
        "ranks": [0, 1, 2, 3],
        "limit": 5,
        "now": NOW,
        "due_before": None,
        "due_after": None,
    }
    users_found = user_sql._find_statement(role=True, is_active=True, text=True, after=True)
    cases: list[tuple[sa.Executable, dict[str, Any]]] = [
        (todo_sql._BY_ID, {"match_id": todos[4].id, "reader_id": ada.id}),
        (todo_sql._BY_ID, {"match_id": uuid.uuid4(), "reader_id": ada.id}),  # no row
        (
            todo_sql._stats_statement(
                todo_sql._stats_shape(TodoFilter(member_id=ada.id), postgres=True)
            ),
            {"member_id": ada.id, "now": NOW},
        ),
        (project_sql._BY_ID, {"match_id": inbox_id(ada.id), "reader_id": ada.id}),
        (user_sql._BY_ID, {"match_id": ada.id}),
        (user_sql._BY_EMAIL, {"match_email": "ada@x.io"}),
        (
            users_found,
            {
                "role": "user",
                "is_active": True,
                "email_text": "ADA",
                "name_text": "ad",
                "after_created_at": NOW + timedelta(days=1),
                "after_id": uuid.uuid4(),
                "limit": 5,
            },
        ),
        (token_sql._BY_HASH, {"match_hash": "a" * 64}),
        (token_sql._REVOKED_SINCE, {"user_id": ada.id, "since": NOW - timedelta(hours=1)}),
        (key_sql._BY_KEY, {"match_user_id": ada.id, "match_key": "key-1"}),
        (_find(DEFAULT_SORT), {**base, "tags": []}),
        (_find(DEFAULT_SORT, tags=1), {**base, "tags": ["work"]}),  # an array parameter
        (_find(DEFAULT_SORT, text=True), {**base, "tags": [], "pattern": "%todo 1%"}),
        (_find(by_due, overdue=True), {**base, "tags": []}),
        (_find(by_due, priorities=True), {**base, "tags": [], "priorities": [0, 3]}),
        (
            _find(DEFAULT_SORT, after_nulls=(False, False)),
            {**base, "tags": [], "after_0": todos[6].created_at, "after_1": todos[6].id},
        ),
        # Sync and live events: objects by id (array parameters), a project's todos and a
        # member's projects by id.
        (todo_sql._MANY["postgresql"], {"ids": [todos[1].id, todos[2].id]}),
        (todo_sql._IN_PROJECT, {"project_id": inbox_id(ada.id), "limit": 3}),
        (
            todo_sql._IN_PROJECT_AFTER,
            {"project_id": inbox_id(ada.id), "limit": 3, "after_id": todos[1].id},
        ),
        (project_sql._MANY["postgresql"], {"ids": [inbox_id(ada.id)]}),
        (project_sql._BY_PROJECT_ID, {"member_id": ada.id, "limit": 3}),
        (membership_sql._OF_PROJECTS["postgresql"], {"ids": [inbox_id(ada.id)]}),
    ]
    for statement, parameters in cases:
        expected = await _through_sqlalchemy(engine, statement, parameters)
        got = await reads.rows(statement, parameters)
        assert got == expected, statement
        # Same names, same order of columns: rows are matched by name from here on.
        assert [list(row) for row in got] == [list(row) for row in expected]
    # The log after a position, a reader's and everyone's: taken by the driver path too (the
    # horizon each row carries moves with the server's transactions, so no comparison).
    log_reads: list[tuple[sa.Executable, dict[str, Any]]] = [
        (
            activity_sql._SINCE["postgresql", True],
            {"after_txid": 0, "after_n": 0, "limit": 5, "reader_id": ada.id},
        ),
        (activity_sql._SINCE["postgresql", False], {"after_txid": 0, "after_n": 0, "limit": 5}),
    ]
    for statement, parameters in log_reads:
        assert (await reads.rows(statement, parameters))[0]["horizon"] > 0
    by_id = {"match_id": todos[4].id, "reader_id": ada.id}
    assert len(await reads.rows(todo_sql._BY_ID, by_id)) == 1
    # The tags come back as lists, as SQLAlchemy's ARRAY type gives them.
    (row,) = await reads.rows(todo_sql._BY_ID, {**by_id, "match_id": todos[2].id})
    assert row["tags"] == ["home", "work"]


@on_postgres
async def test_a_statement_with_values_of_its_own_or_missing_parameters_is_refused(
    engine: AsyncEngine,
) -> None:
    """Built per call, such a statement belongs to SQLAlchemy's compiled cache; taking it here
    would skip the processing of its values. Refused loudly, never run another way."""
    reads = DriverReads(engine, pool_size=3)
    inline = sa.select(todo_sql.todos).where(todo_sql.todos.c.id == uuid.uuid4())
    with pytest.raises(ValueError, match="values carried"):
        await reads.rows(inline, {})
    with pytest.raises(ValueError, match=r"parameters missing \['match_id'"):
        await reads.rows(todo_sql._BY_ID, {})
    with pytest.raises(TypeError, match="SELECT"):
        await reads.rows(sa.text("SELECT 1"), {})


async def test_reads_through_the_driver_are_for_psycopg_only(settings: Settings) -> None:
    if settings.database_url.startswith("postgres"):
        pytest.skip("the SQLite side")
    engine = create_engine(settings.database_url, autocommit=True)
    try:
        with pytest.raises(ValueError, match="psycopg"):
            DriverReads(engine, pool_size=1)
        assert Container(settings).driver_reads is None
    finally:
        await engine.dispose()


@on_postgres
async def test_while_tracing_every_read_goes_through_sqlalchemys_execute_events(
    settings: Settings,
) -> None:
    await empty_stores(settings)
    assert Container(settings).driver_reads is not None
    container = Container(settings, tracer_provider=new_provider())
    try:
        assert container.driver_reads is None
        seen: list[str] = []
        event.listen(
            container.engine.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2])
        )
        async with container.unit_of_work(read_only=True) as uow:
            assert await uow.todos.get(uuid.uuid4(), reader_id=uuid.uuid4()) is None
        assert len(seen) == 1
        assert "FROM todos" in seen[0]
    finally:
        await container.aclose()


@on_postgres
async def test_a_database_that_cannot_be_reached_is_service_unavailable(
    settings: Settings,
) -> None:
    url = sa.make_url(settings.database_url).set(port=1).render_as_string(hide_password=False)
    engine = create_engine(url, autocommit=True)
    try:
        with pytest.raises(ServiceUnavailable):
            await DriverReads(engine, pool_size=1).rows(
                todo_sql._BY_ID, {"match_id": uuid.uuid4(), "reader_id": uuid.uuid4()}
            )
    finally:
        await engine.dispose()


@on_postgres
async def test_reads_answer_after_every_pooled_connection_was_closed_by_the_server(
    engine: AsyncEngine, settings: Settings
) -> None:
    ada, todos = await _seed(engine)
    reads = SqlAlchemyUnitOfWork(engine, read_only=True, reads=DriverReads(engine, pool_size=3))
    # Three connections in the pool, each held at once, then all closed by the server.
    async with engine.connect(), engine.connect(), engine.connect():
        pass
    assert await terminate_other_backends(settings.database_url) == 3
    # The first read is lent a dead connection, then the next: it reads again until a fresh
    # one answers. Never a fault, and the next reads too.
    assert await reads.todos.get(todos[0].id, reader_id=ada.id) == (todos[0], ProjectRole.OWNER)
    assert await reads.todos.get(todos[1].id, reader_id=ada.id) == (todos[1], ProjectRole.OWNER)
    found = await reads.todos.find(
        TodoFilter(member_id=ada.id), sort=DEFAULT_SORT, after=None, limit=3, now=NOW
    )
    assert [todo.id for todo in found] == [todo.id for todo in todos[::-1][:3]]
