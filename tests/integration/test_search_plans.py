"""`q` on PostgreSQL is served by the trigram indexes (migration 0007; with the project first
since 0015): the plan of the very statement the repository issues for a search in one user's
many todos looks the text up in an index instead of reading every one of that user's todos."""

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.domain.projects import Project
from app.domain.todos import DEFAULT_SORT, TodoFilter
from app.domain.users import Role, User
from app.infrastructure.db import create_engine
from app.infrastructure.driver_reads import DriverReads
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from tests.conftest import empty_stores, on_postgres

pytestmark = on_postgres

NOW = datetime.now(UTC).replace(microsecond=0)
TODOS = 20_000
TRIGRAM_INDEXES = {"ix_todos_project_id_title_trgm", "ix_todos_project_id_description_trgm"}


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    await empty_stores(settings)
    engine = create_engine(settings.database_url, autocommit=True)
    yield engine
    await empty_stores(settings)
    await engine.dispose()


async def _user_with_many_todos(engine: AsyncEngine) -> uuid.UUID:
    """One user, TODOS todos in a few dozen distinct titles (like a real list: many alike), and
    four that mention a plumber."""
    user = User(
        id=uuid.uuid4(),
        email="many@x.io",
        password_hash="hash",
        full_name=None,
        role=Role.USER,
        is_active=True,
        created_at=NOW,
        updated_at=NOW,
    )
    inbox = Project.inbox(id=uuid.uuid4(), owner_id=user.id, now=NOW)
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await uow.users.add(user)
        await uow.projects.add(inbox)
        await uow.commit()
    async with engine.begin() as connection:
        await connection.execute(
            sa.text(
                "INSERT INTO todos (id, project_id, owner_id, created_by, title, description,"
                " priority, tags, completed, created_at, updated_at, version)"
                " SELECT gen_random_uuid(), :project, :owner, :owner, CASE WHEN n % 5000 = 0"
                " THEN 'Call the plumber ' || n ELSE 'Buy milk number ' || (n % 50) END,"
                " CASE WHEN n % 3 = 0 THEN 'Remember the shop first.' ELSE '' END, 1, '{}',"
                " false, :now - n * interval '1 minute', :now, 1"
                " FROM generate_series(1, :count) AS n"
            ),
            {"project": inbox.id, "owner": user.id, "now": NOW, "count": TODOS},
        )
    async with engine.connect() as connection:
        # What autovacuum does in time: statistics, and the GIN pending list merged into the
        # indexes (a bulk insert leaves its entries there, which the planner rightly prices).
        await connection.execute(sa.text("VACUUM ANALYZE todos"))
    return user.id


async def _plan(engine: AsyncEngine, query: TodoFilter) -> dict[str, Any]:
    """EXPLAIN (ANALYZE) of the SELECT the repository runs for this list, with its values."""
    captured: list[tuple[sa.Select[Any], dict[str, Any]]] = []

    def capture(
        _conn: object, clause: object, multiparams: Any, params: Any, _options: object
    ) -> None:
        if isinstance(clause, sa.Select):
            captured.append((clause, dict(multiparams[0] if multiparams else params)))

    # A unit of work that may write runs its reads through SQLAlchemy's Connection, whose
    # events show the statement and its parameters.
    event.listen(engine.sync_engine, "before_execute", capture)
    try:
        async with SqlAlchemyUnitOfWork(engine) as uow:
            await uow.todos.find(query, sort=DEFAULT_SORT, after=None, limit=21, now=NOW)
    finally:
        event.remove(engine.sync_engine, "before_execute", capture)
    ((statement, values),) = captured
    # Every value of the statement is a parameter (the app's reads take no other kind).
    sql = str(statement.compile(dialect=engine.dialect))
    async with engine.connect() as connection:
        result = await connection.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, values)
        plan = result.scalar_one()
    document = json.loads(plan) if isinstance(plan, str) else plan
    return dict(document[0]["Plan"])


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


# Matching nothing (the search that read every todo), a few, and LIKE's wildcards taken
# literally (the escaped pattern is still an index lookup).
@pytest.mark.parametrize("text", ["zzyzx", "PLUMBER", "50%_off"])
async def test_a_search_in_many_todos_is_looked_up_in_the_trigram_indexes(
    engine: AsyncEngine, text: str
) -> None:
    owner = await _user_with_many_todos(engine)
    plan = await _plan(engine, TodoFilter(member_id=owner, text=text))
    nodes = list(_nodes(plan))
    used = {node["Index Name"] for node in nodes if "Index Name" in node}
    assert used >= TRIGRAM_INDEXES, json.dumps(plan, indent=1)
    assert not any(node["Node Type"] == "Seq Scan" for node in nodes)
    # Nothing near the user's todos was read and thrown away one by one.
    discarded = sum(node.get("Rows Removed by Filter", 0) for node in nodes)
    assert discarded < TODOS // 10, json.dumps(plan, indent=1)


async def test_a_search_run_again_and_again_is_still_planned_for_its_own_text(
    settings: Settings,
) -> None:
    """The driver prepares a statement it runs often, and PostgreSQL may then keep one plan
    for any values: for a search, the large owner's todos walked in order, every one of them
    read for a text that matches nothing. On the app's connections, which let other
    statements reuse plans, a list is never prepared: each run is planned for its values."""
    await empty_stores(settings)
    engine = create_engine(settings.database_url, autocommit=True, pool_size=1, reused_plans=True)
    try:
        # Many other owners, as in any real table: a plan made for any owner then expects a
        # handful of rows per owner, which is what made the one plan walk them in order.
        async with engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO users (id, email, password_hash, role, is_active, created_at,"
                    " updated_at) SELECT gen_random_uuid(), 'other' || n || '@x.io', 'hash',"
                    " 'user', true, :now, :now FROM generate_series(1, 500) AS n"
                ),
                {"now": NOW},
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO projects (id, owner_id, name, description, is_inbox, created_at,"
                    " updated_at, version) SELECT gen_random_uuid(), id, 'Inbox', '', true,"
                    " :now, :now, 1 FROM users"
                ),
                {"now": NOW},
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO memberships (project_id, user_id, role, added_at)"
                    " SELECT id, owner_id, 'owner', created_at FROM projects"
                )
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO todos (id, project_id, owner_id, created_by, title, description,"
                    " priority, tags, completed, created_at, updated_at, version) SELECT"
                    " gen_random_uuid(), projects.id, projects.owner_id, projects.owner_id,"
                    " 'Other ' || n, '', 1, '{}', false, :now, :now, 1"
                    " FROM projects CROSS JOIN generate_series(1, 20) AS n"
                ),
                {"now": NOW},
            )
        owner = await _user_with_many_todos(engine)
        reads = DriverReads(engine, pool_size=1)
        for _ in range(12):  # past the driver's threshold and PostgreSQL's five custom plans
            # As the app reads: a read-only unit of work, through the driver.
            async with SqlAlchemyUnitOfWork(engine, read_only=True, reads=reads) as uow:
                await uow.todos.find(
                    TodoFilter(member_id=owner, text="zzyzx"),
                    sort=DEFAULT_SORT,
                    after=None,
                    limit=21,
                    now=NOW,
                )
                await uow.projects.inbox(owner)  # a statement that may be prepared
        async with engine.connect() as connection:
            prepared = (
                await connection.execute(
                    sa.text("SELECT statement, generic_plans FROM pg_prepared_statements")
                )
            ).all()
        assert any("is_inbox" in statement for statement, _ in prepared), (
            "nothing was prepared: the test no longer tests anything"
        )
        assert not [statement for statement, _ in prepared if "ILIKE" in statement.upper()]
    finally:
        await engine.dispose()
        await empty_stores(settings)
