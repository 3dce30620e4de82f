"""Sync: a client's copy of its projects and todos, kept exact with one call."""

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from app.application.sync import SyncPage
from app.presentation.deps import API_PREFIX, CurrentActor, SyncReaderDep
from app.presentation.query import query_model, query_parameters
from app.presentation.routers.projects import project_read
from app.presentation.schemas.common import AUTHENTICATED, TOKEN_REQUIRED, problems
from app.presentation.schemas.sync import Removed, SyncParams, SyncRead
from app.presentation.schemas.todos import TodoRead

router = APIRouter(prefix=API_PREFIX, tags=["sync"])
Params = Annotated[SyncParams, Depends(query_model(SyncParams))]


@router.get(
    "/sync",
    operation_id="sync",
    response_model=SyncRead,
    responses=problems(*AUTHENTICATED, 410),
    openapi_extra={**query_parameters(SyncParams), **TOKEN_REQUIRED},
)
async def sync(params: Params, actor: CurrentActor, service: SyncReaderDep) -> Response:
    """Without `token`, a full sync: every project you are a member of and every todo in
    them, the trash included. With one, what changed since: changed projects and todos in
    their current state, and `removed` ones (deleted, no longer yours, or moved where you
    cannot read them); a project you joined comes whole. While `has_more`, call again with
    the new `sync_token`. A tampered token, or another user's, is a 400
    `invalid_sync_token`; one older than `SYNC_RETENTION_DAYS` a 410 `sync_token_expired`
    (start again without a token). Needs `todos:read`; an admin's reach adds nothing here."""
    page = await service.sync(actor, token=params.token, limit=params.limit)
    # Written here, through the model response_model documents, as GET of one todo is: an
    # incremental sync with nothing new is meant to cost about what that GET costs.
    return Response(sync_read(page).model_dump_json(), media_type="application/json")


def sync_read(page: SyncPage) -> SyncRead:
    return SyncRead(
        sync_token=page.sync_token,
        full=page.full,
        projects=[project_read(view) for view in page.projects],
        todos=[TodoRead.model_validate(todo) for todo in page.todos],
        removed=Removed(projects=page.removed_projects, todos=page.removed_todos),
        has_more=page.has_more,
    )
