from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.presentation.schemas.common import Email, RequestBody, read_only_of
from app.presentation.schemas.projects import InvitedRole


class InvitationCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"role": "editor", "email": "sam@example.com"}]}
    )

    role: InvitedRole
    email: Email | None = Field(
        default=None,
        description="A label for you (who the link is for). Nothing is sent to it and no "
        "account is looked up.",
    )


class InvitationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    role: InvitedRole
    email: str | None
    created_at: datetime
    expires_at: datetime


class InvitationCreated(InvitationRead):
    token: str = Field(
        description="The link secret, shown this once: hand it to the invitee out of band. "
        "Whoever presents it joins the project with this role."
    )


InvitationCreate.read_only = read_only_of(InvitationCreated, InvitationCreate)

InvitationToken = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class TokenBody(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"token": "Q2xh…"}]})

    token: InvitationToken


class ProjectSummary(BaseModel):
    id: UUID
    name: str


class Inviter(BaseModel):
    id: UUID
    full_name: str | None


class InvitationPreviewRead(BaseModel):
    project: ProjectSummary
    role: InvitedRole
    invited_by: Inviter
    expires_at: datetime
