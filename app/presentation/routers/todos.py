"""Todos: CRUD, list with filters and keyset pages, trash, stats, ETags, idempotent create."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from pydantic import TypeAdapter

from app.application import pagination
from app.application.todos import TodoService
from app.domain.todos import Todo, TodoChanges, TodoDraft, TodoFilter, normalise_tags
from app.domain.users import Actor
from app.presentation.deps import (
    API_PREFIX,
    CurrentActor,
    JsonOnly,
    TodoReaderDep,
    TodoServiceDep,
)
from app.presentation.errors import HTTPProblem
from app.presentation.preconditions import TAG_LIST_PATTERN, expected_version, none_match
from app.presentation.query import query_model, query_parameters
from app.presentation.schemas.common import AUTHENTICATED, TOKEN_REQUIRED, Page, if_sent, problems
from app.presentation.schemas.todos import (
    PriorityCounts,
    TodoCreate,
    TodoListParams,
    TodoRead,
    TodoStatsRead,
    TodoUpdate,
)

router = APIRouter(prefix=f"{API_PREFIX}/todos", tags=["todos"])
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=200,
        description='The ETag you last saw (`"3"`), or `*`; a stale one is refused with 412, '
        "an unquoted one with 400 `invalid_precondition`.",
        json_schema_extra={"pattern": TAG_LIST_PATTERN},
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$",
        description="Retry-safe create: the same key and body within 24 h returns the first "
        "todo (current state) with `Idempotent-Replayed: true`, and creates nothing.",
    ),
]
ETAG_HEADER = {
    "ETag": {"description": "The todo's version, as a strong tag.", "schema": {"type": "string"}}
}


def etag(todo: Todo) -> str:
    return f'"{todo.version}"'


async def _version_demanded(
    if_match: str | None, todos: TodoService, actor: Actor, todo_id: UUID
) -> int | None:
    """If-Match's version; a malformed header is a 400, but a todo the caller cannot see is
    still a 404 first (a 404 outranks a 400)."""
    try:
        return expected_version(if_match)
    except HTTPProblem:
        await todos.get(actor, todo_id)
        raise


# The routes return domain objects: FastAPI reads them into the declared response model in one
# validation from attributes (a page of todos is one call, not one a todo).
def _read(todo: Todo, response: Response) -> Todo:
    response.headers["ETag"] = etag(todo)
    return todo


# GET of one todo, the hottest read, writes its body itself, through the very model its
# response_model documents: FastAPI's way there (validation, serialisation, then a second
# response whose headers are merged in) was a large share of its CPU (docs/performance.md; a
# page of todos, whose items cost more than the way, gained nothing measurable: it keeps
# FastAPI's).
_TODO_JSON = TypeAdapter(TodoRead)


def _todo_json(todo: Todo) -> Response:
    body = _TODO_JSON.dump_json(_TODO_JSON.validate_python(todo, from_attributes=True))
    return Response(body, media_type="application/json", headers={"ETag": etag(todo)})


@router.get(
    "",
    operation_id="list_todos",
    response_model=Page[TodoRead],
    responses=problems(*AUTHENTICATED, 403),
    openapi_extra={**query_parameters(TodoListParams), **TOKEN_REQUIRED},
)
async def list_todos(
    params: Annotated[TodoListParams, Depends(query_model(TodoListParams))],
    actor: CurrentActor,
    todos: TodoReaderDep,
) -> pagination.Page[Todo]:
    """Todos across every project you are a member of (`project_id=` narrows), newest first
    unless `sort` says otherwise. Another user's `owner_id=` needs `todos:read_all`."""
    query = TodoFilter(
        owner_id=params.owner_id,
        project_ids=frozenset(params.project_id),
        completed=params.completed,
        priorities=frozenset(params.priority),
        tags=normalise_tags(params.tag),
        text=params.q,
        due_before=params.due_before,
        due_after=params.due_after,
        overdue=params.overdue,
        deleted=params.deleted,
    )
    return await todos.list(
        actor, query, sort=params.sort_keys, limit=params.limit, cursor=params.cursor
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="create_todo",
    response_model=TodoRead,
    dependencies=[JsonOnly],
    responses={
        201: {"headers": {**ETAG_HEADER, "Location": {"schema": {"type": "string"}}}},
        **problems(*AUTHENTICATED, 403, 404, 409),
        403: {
            **problems(403)[403],
            "description": "`forbidden` (a guest, or a viewer of the project), or "
            "`todo_quota_exceeded`: the project's owner already owns `MAX_TODOS_PER_USER` "
            "todos, the trash included.",
        },
        404: {
            **problems(404)[404],
            "description": "`project_not_found`: no such project among yours.",
        },
    },
    openapi_extra=TOKEN_REQUIRED,
)
async def create_todo(
    body: TodoCreate,
    actor: CurrentActor,
    todos: TodoServiceDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Todo:
    """Create a todo in `project_id` (owner or editor there; by default your Inbox); send an
    `Idempotency-Key` to make retries safe. Todos a project's owner owns, live and in the
    trash, are limited to `MAX_TODOS_PER_USER` (403 `todo_quota_exceeded`). Needs
    `todos:write`."""
    draft = TodoDraft(
        title=body.title,
        description=body.description,
        priority=body.priority,
        due_at=body.due_at,
        tags=tuple(body.tags),
        completed=body.completed,
    )
    todo, replayed = await todos.create(
        actor, draft, project_id=body.project_id, idempotency_key=idempotency_key
    )
    response.headers["Location"] = f"{API_PREFIX}/todos/{todo.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _read(todo, response)


@router.get(
    "/stats",
    operation_id="todo_stats",
    responses=problems(*AUTHENTICATED, 403),
    openapi_extra=TOKEN_REQUIRED,
)
async def todo_stats(
    actor: CurrentActor,
    todos: TodoReaderDep,
    project_id: Annotated[
        list[UUID],
        Query(max_length=100, description="Only these projects (any of)."),
    ] = [],  # noqa: B006 (FastAPI copies a default list per request)
) -> TodoStatsRead:
    """Counts over the live todos of every project you are a member of (`project_id=`
    narrows), in one query."""
    stats = await todos.stats(actor, project_ids=frozenset(project_id))
    return TodoStatsRead(
        total=stats.total,
        completed=stats.completed,
        open=stats.open,
        overdue=stats.overdue,
        by_priority=PriorityCounts(**{p.value: n for p, n in stats.by_priority.items()}),
    )


@router.get(
    "/{todo_id:uuid}",
    operation_id="get_todo",
    response_model=TodoRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not Modified: your copy (If-None-Match) is current."},
        **problems(*AUTHENTICATED, 404),
    },
    openapi_extra=TOKEN_REQUIRED,
)
async def get_todo(
    todo_id: UUID,
    actor: CurrentActor,
    todos: TodoReaderDep,
    request: Request,
) -> Response:
    """One todo, with its ETag; answers 304 when `If-None-Match` holds the current tag."""
    todo = await todos.get(actor, todo_id)
    if none_match(request.headers.get("if-none-match"), etag(todo)):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag(todo)})
    return _todo_json(todo)


@router.patch(
    "/{todo_id:uuid}",
    operation_id="update_todo",
    response_model=TodoRead,
    dependencies=[JsonOnly],
    responses={
        200: {"headers": ETAG_HEADER},
        **problems(*AUTHENTICATED, 403, 404, 412),
        404: {
            **problems(404)[404],
            "description": "`todo_not_found`, or `project_not_found`: the `project_id` to move "
            "it to is not among your projects.",
        },
    },
    openapi_extra=TOKEN_REQUIRED,
)
async def update_todo(
    todo_id: UUID,
    body: TodoUpdate,
    actor: CurrentActor,
    todos: TodoServiceDep,
    response: Response,
    if_match: IfMatch = None,
) -> Todo:
    """Change some fields; `completed` sets or clears `completed_at`; `project_id` moves it
    (owner or editor on both projects)."""
    changes = TodoChanges(
        project_id=body.project_id,
        title=body.title,
        description=body.description,
        priority=body.priority,
        due_at=if_sent(body, "due_at", body.due_at),
        tags=None if body.tags is None else tuple(body.tags),
        completed=body.completed,
    )
    expected = await _version_demanded(if_match, todos, actor, todo_id)
    todo = await todos.update(actor, todo_id, changes, expected_version=expected)
    return _read(todo, response)


@router.delete(
    "/{todo_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="delete_todo",
    responses=problems(*AUTHENTICATED, 403, 404, 412),
    openapi_extra=TOKEN_REQUIRED,
)
async def delete_todo(
    todo_id: UUID,
    actor: CurrentActor,
    todos: TodoServiceDep,
    permanent: Annotated[
        bool, Query(description="Delete for good (also from the trash) instead of trashing.")
    ] = False,
    if_match: IfMatch = None,
) -> None:
    """Move a todo to the trash, or delete it for good with `permanent=true`."""
    expected = await _version_demanded(if_match, todos, actor, todo_id)
    await todos.delete(actor, todo_id, permanent=permanent, expected_version=expected)


@router.post(
    "/{todo_id:uuid}/restore",
    operation_id="restore_todo",
    response_model=TodoRead,
    responses={200: {"headers": ETAG_HEADER}, **problems(*AUTHENTICATED, 403, 404)},
    openapi_extra=TOKEN_REQUIRED,
)
async def restore_todo(
    todo_id: UUID, actor: CurrentActor, todos: TodoServiceDep, response: Response
) -> Todo:
    """Bring a todo back from the trash. Idempotent: a todo that is not in the trash is
    answered as it is (200, unchanged), so a retried restore succeeds."""
    return _read(await todos.restore(actor, todo_id), response)
