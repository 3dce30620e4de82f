"""The floor: the service's routes on the bare stack (Starlette, a psycopg pool, orjson) with
no auth, validation, ORM or middleware. What it serves per second is what this machine and
PostgreSQL allow; bench/http compares the service against it.

    FLOOR_DATABASE_URL=postgresql://... uvicorn bench.floor:app --loop uvloop --http httptools

The owner is whoever the X-User-Id header names (bench/wrk's scripts send it next to the
token, which the floor ignores). FLOOR_POOL_SIZE sets the pool (default 20).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

FIELDS = (
    "id",
    "owner_id",
    "title",
    "description",
    "priority",
    "due_at",
    "tags",
    "completed",
    "completed_at",
    "created_at",
    "updated_at",
    "version",
)
# The service's first page of one project (the user's Inbox, where the seeded todos are):
# live todos, newest first, one more row than the page says.
LIST = (
    "SELECT id, owner_id, title, description, priority, due_at, tags, completed, completed_at,"
    " created_at, updated_at, version FROM todos WHERE deleted_at IS NULL AND project_id ="
    " (SELECT id FROM projects WHERE owner_id = %s AND is_inbox)"
    " ORDER BY created_at DESC, id DESC LIMIT %s"
)
GET = (
    "SELECT id, owner_id, title, description, priority, due_at, tags, completed, completed_at,"
    " created_at, updated_at, version FROM todos WHERE id = %s AND owner_id = %s"
)
INSERT = (
    "INSERT INTO todos (id, owner_id, title, description, priority, due_at, tags, completed,"
    " completed_at, created_at, updated_at, version, project_id, created_by)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
    " (SELECT id FROM projects WHERE owner_id = %s AND is_inbox), %s)"
    " RETURNING id, owner_id, title, description, priority, due_at, tags, completed,"
    " completed_at, created_at, updated_at, version"
)
PRIORITIES = ("low", "medium", "high", "urgent")  # the stored rank is the index
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/todo_bench_http"


def json(content: object, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def todo(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row as the service's TodoRead spells it (orjson writes UUIDs and ISO 8601 itself)."""
    item = dict(zip(FIELDS, row, strict=True))
    item["priority"] = PRIORITIES[item["priority"]]
    return item


def owner(request: Request) -> UUID:
    return UUID(request.headers["x-user-id"])


def create_app(conninfo: str, pool_size: int) -> Starlette:
    # Autocommit: each route is one statement, so no BEGIN/COMMIT round trips.
    pool = AsyncConnectionPool(
        conninfo,
        min_size=pool_size,
        max_size=pool_size,
        kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
        open=False,
    )

    async def health(request: Request) -> Response:
        return json({"status": "ok"})

    async def list_todos(request: Request) -> Response:
        limit = min(100, max(1, int(request.query_params.get("limit", "20"))))
        async with pool.connection() as connection:
            cursor = await connection.execute(LIST, (owner(request), limit + 1))
            rows = await cursor.fetchall()
        items = [todo(row) for row in rows[:limit]]
        # Any string will do: the floor only has to say that a next page exists.
        last = items[-1] if len(rows) > limit else None
        cursor_text = f"{last['created_at'].isoformat()}|{last['id']}" if last else None
        return json({"items": items, "next_cursor": cursor_text})

    async def get_todo(request: Request) -> Response:
        async with pool.connection() as connection:
            cursor = await connection.execute(GET, (request.path_params["todo_id"], owner(request)))
            row = await cursor.fetchone()
        return json(todo(row)) if row else json({"detail": "Not found"}, 404)

    async def create_todo(request: Request) -> Response:
        body = orjson.loads(await request.body())
        now = datetime.now(UTC)
        due_at = body.get("due_at")
        completed = bool(body.get("completed", False))
        values = (
            uuid4(),
            owner(request),
            body["title"],
            body.get("description", ""),
            PRIORITIES.index(body.get("priority", "medium")),
            datetime.fromisoformat(due_at) if due_at else None,
            sorted(set(body.get("tags", []))),
            completed,
            now if completed else None,
            now,
            now,
            1,
            owner(request),  # the Inbox's owner
            owner(request),  # created_by
        )
        async with pool.connection() as connection:
            cursor = await connection.execute(INSERT, values)
            row = await cursor.fetchone()
        assert row is not None  # INSERT ... RETURNING always returns the row
        return json(todo(row), 201)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    routes = [
        Route("/health", health),
        Route("/api/v1/todos", list_todos),
        Route("/api/v1/todos", create_todo, methods=["POST"]),
        Route("/api/v1/todos/{todo_id:uuid}", get_todo),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


app = create_app(
    os.environ.get("FLOOR_DATABASE_URL", DEFAULT_URL), int(os.environ.get("FLOOR_POOL_SIZE", "20"))
)
