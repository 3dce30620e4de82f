"""The HTTP benchmark's data: many users with a realistic list each (bench/seed.py's
generators), loaded with COPY into a freshly migrated database; Redis emptied.

With `deep_todos`, one more user holds that many todos (what `q` searches; with --million a
page 50 000 rows deep exists too), and quiet users, who never log in, fill the table up to
`total_at_least` todos.

With `shared_todos`, one more user is an editor in SHARED_PROJECTS projects, each owned by
another (quiet) user, that hold that many todos between them: the list across shared projects
(its first page, a page 50 000 rows deep, a filtered page) and a create in one of them.
"""

import asyncio
import math
import os
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import psycopg
from redis import Redis

from app.domain.projects import Membership, Project, ProjectDraft, ProjectRole
from app.domain.todos import Todo
from app.domain.users import User
from app.infrastructure.security import Argon2PasswordHasher
from bench.common import BENCH_PASSWORD, app_url
from bench.seed import (
    copy_memberships,
    copy_projects,
    copy_todos,
    copy_users,
    make_todos,
    make_user,
    reset_database,
)
from harness.migrations import upgrade

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/todo_bench_http"
SMOKE_URL = "postgresql://postgres@127.0.0.1:5432/todo_bench_http_smoke"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
DEEP_EMAIL = "deep@bench.example.com"
SHARED_EMAIL = "shared@bench.example.com"
SHARED_PROJECTS = 20
SHARED_INBOX_TODOS = 20
"""The shared user's own todos (their Inbox): a get and a patch need one."""
CREATED_TITLE = "Bench todo"
"""What create.lua and mixed.lua post; no seeded todo has this title."""
SETTLE_SECONDS = 1.0
"""wrk stops with requests in flight; they commit within this long."""


def database_url(smoke: bool) -> str:
    return os.environ.get("BENCH_HTTP_DATABASE_URL", SMOKE_URL if smoke else DEFAULT_URL)


def redis_url() -> str:
    return os.environ.get("BENCH_HTTP_REDIS_URL", DEFAULT_REDIS_URL)


@dataclass(frozen=True)
class Plan:
    users: int
    todos: int
    """Live todos per user; a few more (one in 40, at least one) sit in the trash."""
    deep_todos: int = 0
    total_at_least: int = 0
    shared_todos: int = 0

    @property
    def trashed(self) -> int:
        return max(1, self.todos // 40)


@dataclass(frozen=True)
class Seeded:
    users: list[tuple[str, UUID]]
    """(email, id) of every user who logs in, in order."""
    deep: tuple[str, UUID] | None
    todos: int
    deep_todos: int = 0
    shared: tuple[str, UUID] | None = None
    """(email, id) of the member of the shared projects."""
    shared_projects: tuple[UUID, ...] = ()
    shared_todos_total: int = 0
    """Live todos in the shared projects."""


@dataclass
class _Data:
    users: list[User]
    todos: list[Todo]
    projects: list[Project]
    """Beside the Inboxes (which copy_users makes)."""
    memberships: list[Membership]
    """Beside the owners' (which copy_projects makes)."""


def _users_and_todos(plan: Plan, password_hash: str, seed: int) -> _Data:
    rng = random.Random(seed)
    projects: list[Project] = []
    memberships: list[Membership] = []
    users = [
        make_user(rng, f"user{n}@bench.example.com", password_hash, None) for n in range(plan.users)
    ]
    todos = [t for user in users for t in make_todos(rng, user.id, plan.todos, plan.trashed)]
    if plan.deep_todos:
        deep = make_user(rng, DEEP_EMAIL, password_hash, "Deep Bench")
        users.append(deep)
        todos += make_todos(rng, deep.id, plan.deep_todos, plan.deep_todos // 40)
    if plan.shared_todos:
        more_users, more_todos, (projects, memberships) = _shared(rng, plan, password_hash)
        users += more_users
        todos += more_todos
    missing = max(0, plan.total_at_least - len(todos))
    for n in range(math.ceil(missing / (plan.todos + plan.trashed))):
        quiet = make_user(rng, f"quiet{n}@bench.example.com", password_hash, None)
        users.append(quiet)
        todos += make_todos(rng, quiet.id, plan.todos, plan.trashed)
    # In created_at order across users, as a live service would have written them.
    todos.sort(key=lambda todo: (todo.created_at, todo.id))
    return _Data(users, todos, projects, memberships)


def _shared(
    rng: random.Random, plan: Plan, password_hash: str
) -> tuple[list[User], list[Todo], tuple[list[Project], list[Membership]]]:
    """The shared user, the owners of the shared projects, their todos; the projects and the
    shared user's memberships (as an editor, joined in turn after each project was made)."""
    member = make_user(rng, SHARED_EMAIL, password_hash, "Shared Bench")
    owners = [
        make_user(rng, f"owner{n}@bench.example.com", password_hash, None)
        for n in range(SHARED_PROJECTS)
    ]
    projects = [
        Project.new(
            ProjectDraft(name=f"Shared {n}"),
            id=UUID(int=rng.getrandbits(128), version=4),
            owner_id=owner.id,
            now=owner.created_at,
        )
        for n, owner in enumerate(owners)
    ]
    joined = [
        Membership(
            project.id, member.id, ProjectRole.EDITOR, project.created_at + timedelta(days=n)
        )
        for n, project in enumerate(projects)
    ]
    each = plan.shared_todos // SHARED_PROJECTS
    todos = make_todos(rng, member.id, SHARED_INBOX_TODOS, 1)
    for project in projects:
        todos += make_todos(rng, project.owner_id, each, each // 40, project_id=project.id)
    return [member, *owners], todos, (projects, joined)


def seed(url: str, plan: Plan, *, seed: int = 20_241_121) -> Seeded:
    """Create (or empty) the database, migrate it to head, COPY the users and todos in."""
    reset_database(url)
    upgrade(app_url(url))
    # One hash for everyone, at the app's production cost: what each login will verify.
    hasher = Argon2PasswordHasher(time_cost=2, memory_kib=19 * 1024)
    password_hash = asyncio.run(hasher.hash(BENCH_PASSWORD))
    data = _users_and_todos(plan, password_hash, seed)
    users, todos = data.users, data.todos
    copy_users(url, users)
    copy_projects(url, data.projects)
    copy_memberships(url, data.memberships)
    copy_todos(url, todos)
    by_email = {user.email: user.id for user in users}
    return Seeded(
        users=[(user.email, user.id) for user in users[: plan.users]],
        deep=(DEEP_EMAIL, by_email[DEEP_EMAIL]) if plan.deep_todos else None,
        todos=len(todos),
        deep_todos=plan.deep_todos,
        shared=(SHARED_EMAIL, by_email[SHARED_EMAIL]) if plan.shared_todos else None,
        shared_projects=tuple(project.id for project in data.projects),
        shared_todos_total=plan.shared_todos // SHARED_PROJECTS * SHARED_PROJECTS,
    )


def flush_redis(url: str) -> None:
    with Redis.from_url(url) as redis:
        redis.flushdb()


def delete_created(url: str) -> int:
    """Drop the todos a create run added, so later lists page over the seeded data."""
    time.sleep(SETTLE_SECONDS)  # or a create still in flight lands after the DELETE
    with psycopg.connect(url, autocommit=True) as connection:
        statement = "DELETE FROM todos WHERE title = %s"
        deleted = connection.execute(statement, (CREATED_TITLE,)).rowcount
        connection.execute("VACUUM (ANALYZE) todos")
    return deleted
