from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from pydantic.json_schema import SkipJsonSchema

from app.application.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.domain.users import (
    FULL_NAME_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    Permission,
    Role,
)
from app.presentation.schemas.common import NO_NUL, Email, RequestBody, not_null, read_only_of


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    email: str
    full_name: str | None
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime


class MeRead(UserRead):
    permissions: list[Permission]


class MeUpdate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"full_name": "Ada Lovelace"},
                {"email": "ada@example.com", "current_password": "correct horse battery"},
            ]
        }
    )

    email: Email | SkipJsonSchema[None] = None
    full_name: str | None = Field(default=None, max_length=FULL_NAME_MAX_LENGTH, pattern=NO_NUL)
    current_password: str | SkipJsonSchema[None] = Field(
        default=None,
        max_length=PASSWORD_MAX_LENGTH,
        description="Your current password: required to change the email.",
    )

    _not_null = not_null("email", "current_password")


class PasswordChange(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "current_password": "correct horse battery",
                    "new_password": "tr0ub4dor and three more words",
                }
            ]
        }
    )

    current_password: str = Field(max_length=PASSWORD_MAX_LENGTH)
    new_password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)


class UserAdminUpdate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "guest"}]})

    role: Role | SkipJsonSchema[None] = None
    is_active: StrictBool | SkipJsonSchema[None] = None
    full_name: str | None = Field(default=None, max_length=FULL_NAME_MAX_LENGTH, pattern=NO_NUL)

    _not_null = not_null("role", "is_active")


MeUpdate.read_only = read_only_of(MeRead, MeUpdate)
UserAdminUpdate.read_only = read_only_of(UserRead, UserAdminUpdate)


class UserListParams(BaseModel):
    """Filters combine with AND; newest accounts first."""

    role: Role | None = Field(default=None, title="Role")  # a $ref gets no title by itself
    is_active: bool | None = None
    q: str | None = Field(
        default=None, max_length=200, pattern=NO_NUL, description="Substring of email or name."
    )
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(default=None, max_length=1024)
