from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from app.application.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.domain.projects import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH, ProjectRole
from app.domain.text import clean_text
from app.presentation.schemas.common import (
    NO_NUL,
    RequestBody,
    normalised_by,
    not_null,
    read_only_of,
)
from app.presentation.schemas.todos import NOT_BLANK

ProjectName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NOT_BLANK),
    normalised_by(lambda name: clean_text(name).strip()),
]
ProjectDescription = Annotated[
    str,
    StringConstraints(max_length=DESCRIPTION_MAX_LENGTH, pattern=NO_NUL),
    normalised_by(clean_text),
]
Color = Annotated[
    str,
    StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$"),
    Field(description="`#rrggbb`, returned lower-cased.", examples=["#3b82f6"]),
]


class ProjectCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Household", "color": "#3b82f6"}]}
    )

    name: ProjectName
    description: ProjectDescription = ""
    color: Color | None = None


class ProjectUpdate(RequestBody):
    """Only the fields sent change; `color: null` clears the colour."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Home"}]})

    name: ProjectName | SkipJsonSchema[None] = None
    description: ProjectDescription | SkipJsonSchema[None] = None
    color: Color | None = None

    _not_null = not_null("name", "description")


class ProjectRead(BaseModel):
    id: UUID
    name: str
    description: str
    color: str | None
    owner_id: UUID
    is_inbox: bool = Field(description="The account's Inbox: where todos go by default.")
    role: ProjectRole | None = Field(
        description="Your role here; null for an admin reading a project they are no member of."
    )
    created_at: datetime
    updated_at: datetime
    version: int


ProjectCreate.read_only = read_only_of(ProjectRead, ProjectCreate)
ProjectUpdate.read_only = read_only_of(ProjectRead, ProjectUpdate)


class InvitedRole(StrEnum):
    """A member's role other than the owner's (a project's owner never changes)."""

    EDITOR = "editor"
    VIEWER = "viewer"


class MemberRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: UUID
    email: str | None = Field(description="Shown to the project's owner and to the member only.")
    full_name: str | None
    role: ProjectRole
    added_at: datetime


class MemberUpdate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "viewer"}]})

    role: InvitedRole


MemberUpdate.read_only = read_only_of(MemberRead, MemberUpdate)


class PageParams(BaseModel):
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(default=None, max_length=1024)
