"""Sharing by invitation: the owner's invitations of a project, and the invitee's preview and
accept. The token is a link secret shown once; only its hash is kept."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, status

from app.application import pagination
from app.domain.projects import Invitation, ProjectRole
from app.presentation.deps import (
    API_PREFIX,
    CurrentActor,
    InvitationReaderDep,
    InvitationServiceDep,
    JsonOnly,
)
from app.presentation.query import query_model, query_parameters
from app.presentation.routers.projects import project_read
from app.presentation.schemas.common import AUTHENTICATED, TOKEN_REQUIRED, Page, problems
from app.presentation.schemas.invitations import (
    InvitationCreate,
    InvitationCreated,
    InvitationPreviewRead,
    InvitationRead,
    Inviter,
    ProjectSummary,
    TokenBody,
)
from app.presentation.schemas.projects import InvitedRole, PageParams, ProjectRead

router = APIRouter(prefix=API_PREFIX, tags=["invitations"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        **problems(404)[404],
        "description": "`invitation_not_found`: unknown, expired, used or revoked (one answer).",
    }
}


@router.post(
    "/projects/{project_id:uuid}/invitations",
    status_code=status.HTTP_201_CREATED,
    operation_id="create_invitation",
    dependencies=[JsonOnly],
    responses={
        **problems(*AUTHENTICATED, 403, 404, 409),
        409: {**problems(409)[409], "description": "`inbox_protected`: the Inbox is not shared."},
    },
    openapi_extra=TOKEN_REQUIRED,
)
async def create_invitation(
    project_id: UUID, body: InvitationCreate, actor: CurrentActor, invitations: InvitationServiceDep
) -> InvitationCreated:
    """Invite someone (the owner only): single-use, expiring after `INVITATION_EXPIRE_DAYS`;
    its `token`, shown this once, is for you to hand over out of band."""
    invitation, token = await invitations.create(
        actor, project_id, role=ProjectRole(body.role), email=body.email
    )
    return InvitationCreated(**InvitationRead.model_validate(invitation).model_dump(), token=token)


@router.get(
    "/projects/{project_id:uuid}/invitations",
    operation_id="list_invitations",
    response_model=Page[InvitationRead],
    responses=problems(*AUTHENTICATED, 403, 404),
    openapi_extra={**query_parameters(PageParams), **TOKEN_REQUIRED},
)
async def list_invitations(
    project_id: UUID,
    params: Annotated[PageParams, Depends(query_model(PageParams))],
    actor: CurrentActor,
    invitations: InvitationReaderDep,
) -> pagination.Page[Invitation]:
    """Pending invitations (neither accepted nor expired), oldest first, without tokens (the
    owner only)."""
    return await invitations.list(actor, project_id, limit=params.limit, cursor=params.cursor)


@router.delete(
    "/projects/{project_id:uuid}/invitations/{invitation_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="revoke_invitation",
    responses={
        **problems(*AUTHENTICATED, 403, 404),
        404: {**problems(404)[404], "description": "`project_not_found`, `invitation_not_found`."},
    },
    openapi_extra=TOKEN_REQUIRED,
)
async def revoke_invitation(
    project_id: UUID, invitation_id: UUID, actor: CurrentActor, invitations: InvitationServiceDep
) -> None:
    """Revoke a pending invitation (the owner only): its token is refused from now on."""
    await invitations.revoke(actor, project_id, invitation_id)


@router.post(
    "/invitations/preview",
    operation_id="preview_invitation",
    dependencies=[JsonOnly],
    responses={**problems(*AUTHENTICATED, 404), **NOT_FOUND},
    openapi_extra=TOKEN_REQUIRED,
)
async def preview_invitation(
    body: TokenBody, actor: CurrentActor, invitations: InvitationReaderDep
) -> InvitationPreviewRead:
    """What a token invites you to, before you accept; uses nothing up."""
    preview = await invitations.preview(actor, body.token)
    invitation = preview.invitation
    return InvitationPreviewRead(
        project=ProjectSummary(id=invitation.project_id, name=preview.project_name),
        role=InvitedRole(invitation.role.value),
        invited_by=Inviter(id=invitation.created_by, full_name=preview.inviter_name),
        expires_at=invitation.expires_at,
    )


@router.post(
    "/invitations/accept",
    operation_id="accept_invitation",
    dependencies=[JsonOnly],
    responses={
        **problems(*AUTHENTICATED, 404, 409),
        **NOT_FOUND,
        409: {
            **problems(409)[409],
            "description": "`already_member`: the token stays usable for someone else.",
        },
    },
    openapi_extra=TOKEN_REQUIRED,
)
async def accept_invitation(
    body: TokenBody, actor: CurrentActor, invitations: InvitationServiceDep
) -> ProjectRead:
    """Join the project with the invitation's role; the token is used up."""
    return project_read(await invitations.accept(actor, body.token))
