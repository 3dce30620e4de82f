"""Projects and their members: CRUD with ETags, the member list, role changes, removal and
leaving. Who may do what is the service's to decide (application/projects.py)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response, status

from app.application import pagination
from app.application.projects import ProjectService, version_tag
from app.domain.projects import Member, ProjectChanges, ProjectDraft, ProjectRole, ProjectView
from app.domain.users import Actor
from app.presentation.deps import (
    API_PREFIX,
    CurrentActor,
    JsonOnly,
    ProjectReaderDep,
    ProjectServiceDep,
)
from app.presentation.errors import HTTPProblem
from app.presentation.preconditions import TAG_LIST_PATTERN, entity_tags, none_match
from app.presentation.query import query_model, query_parameters
from app.presentation.schemas.common import AUTHENTICATED, TOKEN_REQUIRED, Page, if_sent, problems
from app.presentation.schemas.projects import (
    MemberRead,
    MemberUpdate,
    PageParams,
    ProjectCreate,
    ProjectRead,
    ProjectUpdate,
)

router = APIRouter(prefix=f"{API_PREFIX}/projects", tags=["projects"])
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=200,
        description="The ETag you last saw, or `*`; a stale one is refused with 412, an "
        "unquoted one with 400 `invalid_precondition`.",
        json_schema_extra={"pattern": TAG_LIST_PATTERN},
    ),
]
ETAG_HEADER = {
    "ETag": {
        "description": "Changes whenever anything of the project you see changes, your role "
        "included.",
        "schema": {"type": "string"},
    }
}
Pages = Annotated[PageParams, Depends(query_model(PageParams))]
PAGE_PARAMETERS = {**query_parameters(PageParams), **TOKEN_REQUIRED}


def etag(view: ProjectView) -> str:
    return f'"{version_tag(view)}"'


def project_read(view: ProjectView) -> ProjectRead:
    project = view.project
    return ProjectRead(
        id=project.id,
        name=project.name,
        description=project.description,
        color=project.color,
        owner_id=project.owner_id,
        is_inbox=project.is_inbox,
        role=view.role,
        created_at=project.created_at,
        updated_at=project.updated_at,
        version=project.version,
    )


def _with_etag(view: ProjectView, response: Response) -> ProjectRead:
    response.headers["ETag"] = etag(view)
    return project_read(view)


async def _expected(
    if_match: str | None, projects: ProjectService, actor: Actor, project_id: UUID
) -> frozenset[str] | None:
    """If-Match's tags, compared strongly (a weak one never matches); None for none or `*`.
    A malformed header is a 400, but a project the caller cannot see is a 404 first."""
    if if_match is None:
        return None
    try:
        tags = entity_tags(if_match, name="If-Match")
    except HTTPProblem:
        await projects.get(actor, project_id)
        raise
    if tags is None:
        return None
    return frozenset(tag[1:-1] for tag in tags if not tag.startswith("W/"))


@router.get(
    "",
    operation_id="list_projects",
    response_model=Page[ProjectRead],
    responses=problems(*AUTHENTICATED),
    openapi_extra=PAGE_PARAMETERS,
)
async def list_projects(
    params: Pages, actor: CurrentActor, projects: ProjectReaderDep
) -> Page[ProjectRead]:
    """Your projects: the Inbox first, then own and shared ones in the order you got them
    (created or joined), ties by id."""
    page = await projects.list(actor, limit=params.limit, cursor=params.cursor)
    return Page(items=[project_read(v) for v in page.items], next_cursor=page.next_cursor)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="create_project",
    dependencies=[JsonOnly],
    responses={
        201: {"headers": {**ETAG_HEADER, "Location": {"schema": {"type": "string"}}}},
        **problems(*AUTHENTICATED, 403),
    },
    openapi_extra=TOKEN_REQUIRED,
)
async def create_project(
    body: ProjectCreate, actor: CurrentActor, projects: ProjectServiceDep, response: Response
) -> ProjectRead:
    """Create a project; you are its owner, for good. Needs `todos:write` (a guest: 403)."""
    draft = ProjectDraft(name=body.name, description=body.description, color=body.color)
    view = await projects.create(actor, draft)
    response.headers["Location"] = f"{API_PREFIX}/projects/{view.project.id}"
    return _with_etag(view, response)


@router.get(
    "/{project_id:uuid}",
    operation_id="get_project",
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not Modified: your copy (If-None-Match) is current."},
        **problems(*AUTHENTICATED, 404),
    },
    openapi_extra=TOKEN_REQUIRED,
)
async def get_project(
    project_id: UUID, actor: CurrentActor, projects: ProjectReaderDep, request: Request
) -> Response:
    """One project you are a member of (any, with `todos:read_all`), with its ETag; 304 when
    `If-None-Match` holds the current tag. Anyone else: 404 `project_not_found`."""
    view = await projects.get(actor, project_id)
    headers = {"ETag": etag(view)}
    if none_match(request.headers.get("if-none-match"), etag(view)):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    body = project_read(view).model_dump_json()
    return Response(body, media_type="application/json", headers=headers)


@router.patch(
    "/{project_id:uuid}",
    operation_id="update_project",
    dependencies=[JsonOnly],
    responses={200: {"headers": ETAG_HEADER}, **problems(*AUTHENTICATED, 403, 404, 412)},
    openapi_extra=TOKEN_REQUIRED,
)
async def update_project(
    project_id: UUID,
    body: ProjectUpdate,
    actor: CurrentActor,
    projects: ProjectServiceDep,
    response: Response,
    if_match: IfMatch = None,
) -> ProjectRead:
    """Rename it, or change its description or colour (the owner only)."""
    changes = ProjectChanges(
        name=body.name, description=body.description, color=if_sent(body, "color", body.color)
    )
    expected = await _expected(if_match, projects, actor, project_id)
    view = await projects.update(actor, project_id, changes, expected=expected)
    return _with_etag(view, response)


@router.delete(
    "/{project_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="delete_project",
    responses={
        **problems(*AUTHENTICATED, 403, 404, 409, 412),
        409: {**problems(409)[409], "description": "`inbox_protected`: the Inbox stays."},
    },
    openapi_extra=TOKEN_REQUIRED,
)
async def delete_project(
    project_id: UUID, actor: CurrentActor, projects: ProjectServiceDep, if_match: IfMatch = None
) -> None:
    """Delete the project with its todos (for good), members and invitations (the owner only;
    never the Inbox)."""
    expected = await _expected(if_match, projects, actor, project_id)
    await projects.delete(actor, project_id, expected=expected)


@router.get(
    "/{project_id:uuid}/members",
    operation_id="list_members",
    response_model=Page[MemberRead],
    responses=problems(*AUTHENTICATED, 404),
    openapi_extra=PAGE_PARAMETERS,
)
async def list_members(
    project_id: UUID, params: Pages, actor: CurrentActor, projects: ProjectReaderDep
) -> pagination.Page[Member]:
    """The project's members: the owner first, then by when they joined. Emails are shown to
    the owner, and to each member their own."""
    return await projects.members(actor, project_id, limit=params.limit, cursor=params.cursor)


@router.patch(
    "/{project_id:uuid}/members/{user_id:uuid}",
    operation_id="update_member",
    response_model=MemberRead,
    dependencies=[JsonOnly],
    responses={
        **problems(*AUTHENTICATED, 403, 404, 409),
        404: {**problems(404)[404], "description": "`project_not_found`, `member_not_found`."},
        409: {**problems(409)[409], "description": "`owner_role_fixed`: the owner stays owner."},
    },
    openapi_extra=TOKEN_REQUIRED,
)
async def update_member(
    project_id: UUID,
    user_id: UUID,
    body: MemberUpdate,
    actor: CurrentActor,
    projects: ProjectServiceDep,
) -> Member:
    """Change a member's role (the owner only); it bites on their very next request."""
    return await projects.update_member(actor, project_id, user_id, ProjectRole(body.role))


@router.delete(
    "/{project_id:uuid}/members/{user_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="remove_member",
    responses={
        **problems(*AUTHENTICATED, 403, 404, 409),
        404: {**problems(404)[404], "description": "`project_not_found`, `member_not_found`."},
        409: {
            **problems(409)[409],
            "description": "`owner_cannot_leave`: the owner deletes the project instead.",
        },
    },
    openapi_extra=TOKEN_REQUIRED,
)
async def remove_member(
    project_id: UUID, user_id: UUID, actor: CurrentActor, projects: ProjectServiceDep
) -> None:
    """Remove a member (the owner), or leave (your own user id; any member, a guest too). The
    removed member is locked out from their very next request."""
    await projects.remove_member(actor, project_id, user_id)
