"""Test wiring. With TEST_DATABASE_URL / TEST_REDIS_URL the suite runs on PostgreSQL + Redis;
without them, on the embedded default (a SQLite file and in-process stores).

Each test starts from empty tables (and an empty Redis database): isolation by truncation,
because API tests commit like production does."""

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis, RedisCluster

from app.bootstrap import Container
from app.config import Settings
from app.domain.users import Role
from app.infrastructure.db import create_engine
from app.main import create_app
from harness import redis_cluster
from harness.migrations import upgrade
from tests.support import API, PASSWORD, MakeUser, Session, login

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL") or None
TABLES = (
    "webhook_deliveries",
    "webhooks",
    "activity",
    "invitations",
    "idempotency_keys",
    "todos",
    "memberships",
    "projects",
    "refresh_tokens",
    "users",
)
# The job engine's (procrastinate's, on PostgreSQL): no test inherits another's jobs.
JOB_TABLES = ("procrastinate_jobs", "procrastinate_periodic_defers", "procrastinate_events")
# The `serve` fixture: the deployed service, for the browser and server tests.
pytest_plugins = ["tests.serving"]

on_postgres = pytest.mark.skipif(
    not (TEST_DATABASE_URL or "").startswith("postgres"), reason="needs TEST_DATABASE_URL"
)


async def migrate(url: str, revision: str = "head") -> None:
    # Alembic's env.py runs its own event loop: give it a thread.
    await asyncio.to_thread(upgrade, url, revision)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if TEST_DATABASE_URL:
        return Settings(database_url=TEST_DATABASE_URL).database_url
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
async def migrated(database_url: str) -> str:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        # Start from nothing, whatever an earlier run left behind.
        if connection.dialect.name == "postgresql":
            await connection.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    await engine.dispose()
    await migrate(database_url)
    return database_url


@pytest.fixture
def settings(migrated: str) -> Settings:
    return Settings(
        environment="test",
        database_url=migrated,
        redis_url=TEST_REDIS_URL,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        rate_limit_enabled=False,
        # Cheap hashing keeps the suite fast; production cost is set by its own defaults.
        password_hash_time_cost=1,
        password_hash_memory_kib=1024,
        # The race tests queue dozens of requests on one row lock; on a loaded CI machine a
        # wait may pass production's few seconds, which is no failure of theirs. The timeout's
        # own tests set it.
        db_statement_timeout_ms=60_000,
        log_level="WARNING",
    )


async def empty_stores(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(sa.text(f"TRUNCATE {', '.join(TABLES + JOB_TABLES)} CASCADE"))
        else:
            for table in TABLES:
                await connection.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608
            # The log starts again at 1 there (its positions count its entries): so does dispatch.
            await connection.execute(sa.text("UPDATE webhook_dispatch SET txid = 0, n = 0"))
    await engine.dispose()
    if settings.redis_url:
        client = RedisCluster if settings.redis_cluster else Redis
        redis = client.from_url(settings.redis_url)
        await redis.flushdb()  # on a cluster, every primary's; never FLUSHALL
        await redis.aclose()


@pytest.fixture(scope="session")
def local_redis_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[redis_cluster.LocalCluster]:
    """A three-node Redis Cluster of this run's own, on loopback (harness/redis_cluster.py)."""
    if not redis_cluster.available():
        pytest.skip("needs redis-server and redis-cli")
    directory = tmp_path_factory.mktemp("redis-cluster")
    cluster = redis_cluster.start_cluster(directory, directory)
    yield cluster
    cluster.stop()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    await empty_stores(settings)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def container(app: Any) -> Container:
    """The app's adapters and services, as its lifespan built them."""
    result: Container = app.state.container
    return result


@pytest.fixture
async def client(app: Any) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def make_user(client: AsyncClient, container: Container) -> MakeUser:
    """Registers an account (optionally with another role) and returns its auth headers."""
    count = 0

    async def make(email: str | None = None, *, role: Role = Role.USER) -> Session:
        nonlocal count
        count += 1
        email = email or f"user{count}@example.com"
        response = await client.post(
            f"{API}/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        if role is not Role.USER:
            async with container.unit_of_work() as uow:
                user = await uow.users.get_by_email(email)
                assert user is not None
                await uow.users.update(replace(user, role=role), before=user)
                await uow.commit()
        return await login(client, email)

    return make
