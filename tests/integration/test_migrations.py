"""Migrations on the real database: a full round trip, data carried across 0001 → 0002,
and no drift between the models and the migrations."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from alembic import command
from app.infrastructure.db import create_engine
from tests.conftest import alembic_config


@pytest.fixture
async def scratch_url(database_url: str, tmp_path: object) -> AsyncIterator[str]:
    """A database of its own, so migrating down does not pull tables from under other tests."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite+aiosqlite:///{tmp_path}/migrations.db"
        return
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
    )
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _alembic(url: str, verb: str, *args: str) -> None:
    await asyncio.to_thread(getattr(command, verb), alembic_config(url), *args)


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    await engine.dispose()
    return set(names) - {"alembic_version"}


async def test_upgrade_downgrade_upgrade_and_no_drift(scratch_url: str) -> None:
    await _alembic(scratch_url, "upgrade", "head")
    assert await _tables(scratch_url) == {"users", "todos", "refresh_tokens", "idempotency_keys"}
    await _alembic(scratch_url, "downgrade", "base")
    assert await _tables(scratch_url) == set()
    await _alembic(scratch_url, "upgrade", "head")
    await _alembic(scratch_url, "check")  # raises if autogenerate finds a difference


async def test_todos_written_before_0002_get_its_defaults(scratch_url: str) -> None:
    await _alembic(scratch_url, "upgrade", "0001")
    engine = create_engine(scratch_url)
    now = datetime.now(UTC)
    user_id, todo_id = uuid.uuid4(), uuid.uuid4()
    # The tables as revision 0001 left them (not the current models).
    metadata = sa.MetaData()
    users = sa.Table(
        "users",
        metadata,
        sa.Column("id", sa.Uuid()),
        sa.Column("email", sa.String()),
        sa.Column("password_hash", sa.String()),
        sa.Column("role", sa.String()),
        sa.Column("is_active", sa.Boolean()),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
    )
    todos = sa.Table(
        "todos",
        metadata,
        sa.Column("id", sa.Uuid()),
        sa.Column("owner_id", sa.Uuid()),
        sa.Column("title", sa.String()),
        sa.Column("completed", sa.Boolean()),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
    )
    async with engine.begin() as connection:
        await connection.execute(
            users.insert().values(
                id=user_id,
                email="old@x.io",
                password_hash="h",
                role="user",
                is_active=True,
                created_at=now,
                updated_at=now,
            )
        )
        await connection.execute(
            todos.insert().values(
                id=todo_id,
                owner_id=user_id,
                title="old todo",
                completed=False,
                created_at=now,
                updated_at=now,
            )
        )
    await _alembic(scratch_url, "upgrade", "head")
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.text("SELECT title, description, priority, version, tags FROM todos")
            )
        ).one()
    await engine.dispose()
    assert row.title == "old todo"
    assert row.description == ""
    assert row.priority == 1  # medium
    assert row.version == 1
    assert (
        list(row.tags if isinstance(row.tags, list) else __import__("json").loads(row.tags)) == []
    )
