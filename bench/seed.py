"""Migrate the bench database to head and bulk-load todos: one user with 100 000 live todos
(plus some in the trash) and a few other users' todos as noise, then VACUUM ANALYZE.

    uv run python -m bench.seed [--todos 100000] [--noise-users 2] [--noise-todos 20000]

The database named by BENCH_DATABASE_URL is created if missing and emptied (schema dropped)
if present. Data is deterministic (fixed random seed) and loaded with COPY, in created_at
order across all users, as a live service would have written it.
"""

import argparse
import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import psycopg
from psycopg import sql

from app.domain.projects import Membership, Project, ProjectRole
from app.domain.todos import Priority, Todo
from app.domain.users import Role, User
from app.infrastructure.db import create_engine
from app.infrastructure.repositories.memberships import MEMBERSHIPS
from app.infrastructure.repositories.projects import PROJECTS
from app.infrastructure.repositories.todos import TODOS
from app.infrastructure.repositories.users import USERS
from app.infrastructure.security import Argon2PasswordHasher
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from bench.common import (
    BENCH_EMAIL,
    BENCH_PASSWORD,
    bench_settings,
    libpq_url,
)
from harness.migrations import create_database, upgrade

START = datetime(2023, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 3 * 365 * 24 * 3600  # three years of todos
END = START + timedelta(seconds=SPAN_SECONDS)
VERBS = ("Buy", "Call", "Email", "Fix", "Plan", "Review", "Write", "Book", "Clean", "Pay")
NOUNS = ("milk", "dentist", "report", "bike", "trip", "invoice", "garden", "slides", "car", "tax")
TAGS = ("work", "home", "errand", "urgent", "health", "money", "family", "later", "q3", "q4")
PRIORITIES = (Priority.LOW, Priority.MEDIUM, Priority.HIGH, Priority.URGENT)
PRIORITY_WEIGHTS = (25, 45, 20, 10)


@dataclass(frozen=True)
class Seeded:
    user_id: UUID
    todos: int
    trashed: int


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def inbox_id(owner_id: UUID) -> UUID:
    """The Inbox the seed gives an account: one id per owner, so todos can name it."""
    return uuid5(NAMESPACE_URL, f"bench-inbox:{owner_id}")


def _todo(
    rng: random.Random, owner_id: UUID, number: int, created_at: datetime, project_id: UUID
) -> Todo:
    updated_at = created_at
    version = 1
    if rng.random() < 0.5:
        updated_at = min(END, created_at + timedelta(seconds=rng.randrange(20 * 24 * 3600)))
        version = rng.randint(2, 6)
    completed = rng.random() < 0.35
    due_at = None
    if rng.random() < 0.55:
        # Quarter-hour due times: plenty of ties on due_at, which the id has to break.
        minutes = rng.randrange(-24 * 60, 45 * 24 * 60) // 15 * 15
        due_at = created_at.replace(second=0) + timedelta(minutes=minutes)
    tag_count = rng.choices((0, 1, 2, 3), weights=(30, 35, 25, 10))[0]
    return Todo(
        id=_uuid(rng),
        project_id=project_id,
        owner_id=owner_id,
        created_by=owner_id,
        title=f"{rng.choice(VERBS)} {rng.choice(NOUNS)} #{number}",
        description="" if rng.random() < 0.6 else f"Remember to {rng.choice(NOUNS)} first.",
        priority=rng.choices(PRIORITIES, weights=PRIORITY_WEIGHTS)[0],
        due_at=due_at,
        tags=tuple(sorted(rng.sample(TAGS, tag_count))),
        completed=completed,
        completed_at=updated_at if completed else None,
        created_at=created_at,
        updated_at=updated_at,
        deleted_at=None,
        version=version,
    )


def make_todos(
    rng: random.Random,
    owner_id: UUID,
    live: int,
    trashed: int,
    *,
    project_id: UUID | None = None,
) -> list[Todo]:
    """`live` todos in the list and `trashed` in the trash, created over three years, in
    `project_id` (owned by `owner_id`; by default the owner's Inbox)."""
    project_id = project_id or inbox_id(owner_id)
    seconds = sorted(rng.randrange(SPAN_SECONDS) for _ in range(live + trashed))
    todos: list[Todo] = []
    for number, second in enumerate(seconds):
        created_at = START + timedelta(seconds=second, microseconds=rng.randrange(1_000_000))
        if todos and rng.random() < 0.05:
            created_at = todos[-1].created_at  # created in one go: a tie the id must break
        todos.append(_todo(rng, owner_id, number, created_at, project_id))
    for index in rng.sample(range(len(todos)), trashed):
        todo = todos[index]
        deleted_at = min(END, todo.updated_at + timedelta(days=1))
        todos[index] = Todo(
            **{
                **{f: getattr(todo, f) for f in Todo.__dataclass_fields__},
                "deleted_at": deleted_at,
                "updated_at": deleted_at,
                "version": todo.version + 1,
            }
        )
    return todos


def reset_database(url: str) -> None:
    """Create the database if it is missing; empty it if it is there."""
    with contextlib.suppress(psycopg.errors.DuplicateDatabase):
        create_database(url)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
        connection.execute("CREATE SCHEMA public")


async def add_users(users: Sequence[User]) -> None:
    """Through the app's own repositories, each with their Inbox."""
    engine = create_engine(bench_settings().database_url)
    try:
        async with SqlAlchemyUnitOfWork(engine) as uow:
            for user in users:
                await uow.users.add(user)
                inbox = Project.inbox(id=inbox_id(user.id), owner_id=user.id, now=user.created_at)
                await uow.projects.add(inbox)
            await uow.commit()
    finally:
        await engine.dispose()


def make_user(rng: random.Random, email: str, password_hash: str, full_name: str | None) -> User:
    return User(
        id=_uuid(rng),
        email=email,
        password_hash=password_hash,
        full_name=full_name,
        role=Role.USER,
        is_active=True,
        created_at=START,
        updated_at=START,
    )


def make_users(rng: random.Random, count: int, password_hash: str) -> list[User]:
    return [
        make_user(rng, BENCH_EMAIL, password_hash, "Keyset Bench")
        if number == 0
        else make_user(rng, f"noise{number}@example.com", password_hash, None)
        for number in range(count)
    ]


def copy_rows(url: str, table: str, rows: Iterable[dict[str, Any]]) -> None:
    """COPY dicts (one layout, keys are the columns) into `table`, in one transaction."""
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(column) for column in first)
    )
    with psycopg.connect(url) as connection:
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in itertools.chain([first], iterator):
                copy.write_row(list(row.values()))
        connection.commit()


def copy_users(url: str, users: Iterable[User]) -> None:
    """COPY in the row layout the user repository itself writes (its column list), each user
    with their Inbox, as registration makes it."""
    users = list(users)
    copy_rows(url, "users", (USERS.values(user) for user in users))
    inboxes = [Project.inbox(id=inbox_id(u.id), owner_id=u.id, now=u.created_at) for u in users]
    copy_projects(url, inboxes)


def copy_projects(url: str, projects: Iterable[Project]) -> None:
    """COPY projects in the repository's row layout, each with its owner's membership."""
    projects = list(projects)
    copy_rows(url, "projects", (PROJECTS.values(project) for project in projects))
    owners = [Membership(p.id, p.owner_id, ProjectRole.OWNER, p.created_at) for p in projects]
    copy_memberships(url, owners)


def copy_memberships(url: str, memberships: Iterable[Membership]) -> None:
    copy_rows(url, "memberships", (MEMBERSHIPS.values(m) for m in memberships))


def copy_todos(url: str, todos: Iterable[Todo]) -> None:
    """COPY in the row layout the repository itself writes (its column list), then analyse.
    The seed's due dates are long past: as migration 0012 does for the todos it finds, they
    count as announced already (the job worker would otherwise announce them all)."""
    now = datetime.now(UTC)
    copy_rows(
        url,
        "todos",
        (
            TODOS.values(todo)
            | {"due_announced_for": todo.due_at if todo.due_at and todo.due_at <= now else None}
            for todo in todos
        ),
    )
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) todos")
        for table in ("users", "projects", "memberships"):
            connection.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def report(url: str) -> None:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT u.email, count(*) FILTER (WHERE t.deleted_at IS NULL),"
            " count(*) FILTER (WHERE t.deleted_at IS NOT NULL)"
            " FROM users u JOIN todos t ON t.owner_id = u.id GROUP BY u.email ORDER BY 2 DESC"
        ).fetchall()
        for email, live, trashed in rows:
            print(f"  {email}: {live} live todos, {trashed} in the trash")
        sizes = connection.execute(
            "SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid)) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relname LIKE %s ORDER BY c.relname",
            ("%todos%",),
        ).fetchall()
        for name, size in sizes:
            print(f"  {name}: {size}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--todos", type=int, default=100_000, help="the bench user's live todos")
    parser.add_argument("--trashed", type=int, default=2_500, help="the bench user's trash")
    parser.add_argument("--noise-users", type=int, default=2)
    parser.add_argument("--noise-todos", type=int, default=20_000, help="per noise user")
    parser.add_argument("--seed", type=int, default=20_241_121)
    args = parser.parse_args(argv)

    url = libpq_url()
    started = time.perf_counter()
    reset_database(url)
    upgrade(bench_settings().database_url)
    print(f"migrated to head in {time.perf_counter() - started:.1f} s")

    rng = random.Random(args.seed)
    hasher = Argon2PasswordHasher(time_cost=2, memory_kib=19 * 1024)  # the app's defaults
    password_hash = asyncio.run(hasher.hash(BENCH_PASSWORD))
    users = make_users(rng, 1 + args.noise_users, password_hash)
    asyncio.run(add_users(users))

    todos = make_todos(rng, users[0].id, args.todos, args.trashed)
    for user in users[1:]:
        todos += make_todos(rng, user.id, args.noise_todos, args.noise_todos // 40)
    todos.sort(key=lambda todo: (todo.created_at, todo.id))
    loading = time.perf_counter()
    copy_todos(url, todos)
    print(f"copied {len(todos)} todos and analysed in {time.perf_counter() - loading:.1f} s")
    report(url)
    print(f"log in as {BENCH_EMAIL} / {BENCH_PASSWORD}")


if __name__ == "__main__":
    main()
