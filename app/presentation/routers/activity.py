"""Activity: who changed what, per todo and per project, newest first, in keyset pages."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from app.application import pagination
from app.domain.activity import Activity
from app.presentation.deps import API_PREFIX, ActivityReaderDep, CurrentActor
from app.presentation.query import query_model, query_parameters
from app.presentation.schemas.activity import ActivityRead
from app.presentation.schemas.common import AUTHENTICATED, TOKEN_REQUIRED, Page, problems
from app.presentation.schemas.projects import PageParams

router = APIRouter(prefix=API_PREFIX, tags=["activity"])
Pages = Annotated[PageParams, Depends(query_model(PageParams))]
PAGE_PARAMETERS = {**query_parameters(PageParams), **TOKEN_REQUIRED}


@router.get(
    "/todos/{todo_id:uuid}/activity",
    operation_id="todo_activity",
    response_model=Page[ActivityRead],
    responses=problems(*AUTHENTICATED, 404),
    openapi_extra=PAGE_PARAMETERS,
)
async def todo_activity(
    todo_id: UUID, params: Pages, actor: CurrentActor, activity: ActivityReaderDep
) -> pagination.Page[Activity]:
    """The todo's history, newest first: the entries recorded while it was in a project you
    can read (it may be in the trash)."""
    return await activity.for_todo(actor, todo_id, limit=params.limit, cursor=params.cursor)


@router.get(
    "/projects/{project_id:uuid}/activity",
    operation_id="project_activity",
    response_model=Page[ActivityRead],
    responses=problems(*AUTHENTICATED, 404),
    openapi_extra=PAGE_PARAMETERS,
)
async def project_activity(
    project_id: UUID, params: Pages, actor: CurrentActor, activity: ActivityReaderDep
) -> pagination.Page[Activity]:
    """The project's history and its todos', newest first (a todo moved out of it included)."""
    return await activity.for_project(actor, project_id, limit=params.limit, cursor=params.cursor)
