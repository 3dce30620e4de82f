from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.domain.users import FULL_NAME_MAX_LENGTH, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from app.presentation.schemas.common import NO_NUL, Email, RequestBody, read_only_of
from app.presentation.schemas.users import UserRead

Password = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)


class RegisterRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "password": "correct horse battery",
                    "full_name": "Ada",
                }
            ]
        }
    )

    email: Email
    password: str = Password
    full_name: str | None = Field(default=None, max_length=FULL_NAME_MAX_LENGTH, pattern=NO_NUL)


class LoginRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery"}]
        }
    )

    email: str = Field(max_length=320, pattern=NO_NUL)
    password: str = Field(max_length=PASSWORD_MAX_LENGTH)


_REFRESH_TOKEN_EXAMPLE: dict[str, JsonValue] = {
    "refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ…"
}


class RefreshRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [_REFRESH_TOKEN_EXAMPLE]})

    refresh_token: str = Field(max_length=4096)


class LogoutRequest(RequestBody):
    """Send the refresh token to end that login everywhere, not just this access token."""

    model_config = ConfigDict(json_schema_extra={"examples": [_REFRESH_TOKEN_EXAMPLE]})

    refresh_token: str | None = Field(default=None, max_length=4096)


class TokenPairRead(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds until the access token expires.")


# What a client read may be sent back: an account's fields at registration, a token pair's
# at login and refresh.
RegisterRequest.read_only = read_only_of(UserRead, RegisterRequest)
LoginRequest.read_only = read_only_of(TokenPairRead, LoginRequest)
RefreshRequest.read_only = read_only_of(TokenPairRead, RefreshRequest)
