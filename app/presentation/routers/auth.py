"""Register, log in (JSON or OAuth2 form), refresh, log out."""

from typing import Annotated

from fastapi import APIRouter, Body, status

from app.domain.sessions import TokenPair
from app.presentation.deps import (
    API_PREFIX,
    AuthServiceDep,
    BearerToken,
    DefaultRateLimit,
    FormLogin,
    JsonLogin,
    JsonOnly,
    rate_limit,
)
from app.presentation.schemas.auth import (
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    TokenPairRead,
)
from app.presentation.schemas.common import AUTHENTICATED, TOKEN_REQUIRED, problems
from app.presentation.schemas.users import UserRead

# Every route here counts the default limit too; the others count it as they authenticate.
router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"], dependencies=[DefaultRateLimit])
# The answers that carry tokens, which no cache may store.
TOKEN_PATHS = ("/auth/login", "/auth/token", "/auth/refresh")


def _pair(pair: TokenPair) -> TokenPairRead:
    return TokenPairRead(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    operation_id="register",
    dependencies=[rate_limit("register"), JsonOnly],
    responses=problems(400, 409, 415, 422, 429, 503),
)
async def register(body: RegisterRequest, auth: AuthServiceDep) -> UserRead:
    """Create an account with role `user`."""
    user = await auth.register(email=body.email, password=body.password, full_name=body.full_name)
    return UserRead.model_validate(user)


@router.post(
    "/login",
    operation_id="login",
    dependencies=[JsonOnly],
    responses=problems(400, 401, 403, 415, 422, 429, 503),
)
async def login(credentials: JsonLogin, auth: AuthServiceDep) -> TokenPairRead:
    """Exchange email and password for an access and a refresh token."""
    return _pair(await auth.login(email=credentials.email, password=credentials.password))


@router.post(
    "/token",
    operation_id="token",
    responses=problems(400, 401, 403, 422, 429, 503),
)
async def token(credentials: FormLogin, auth: AuthServiceDep) -> TokenPairRead:
    """OAuth2 password grant (form-encoded), for Swagger UI's Authorize button."""
    return _pair(await auth.login(email=credentials.email, password=credentials.password))


@router.post(
    "/refresh",
    operation_id="refresh",
    dependencies=[rate_limit("refresh"), JsonOnly],
    responses=problems(400, 401, 415, 422, 429, 503),
)
async def refresh(body: RefreshRequest, auth: AuthServiceDep) -> TokenPairRead:
    """Spend a refresh token for a new pair; a spent token presented again ends its login."""
    return _pair(await auth.refresh(body.refresh_token))


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="logout",
    dependencies=[JsonOnly],
    responses=problems(*AUTHENTICATED),
    openapi_extra=TOKEN_REQUIRED,
)
async def logout(
    token: BearerToken,
    auth: AuthServiceDep,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> None:
    """Revoke this access token at once, and its login's refresh tokens."""
    await auth.logout(token, refresh_token=body.refresh_token if body else None)
