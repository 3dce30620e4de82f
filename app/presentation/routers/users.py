"""The caller's account (/users/me) and admin management of all accounts (/users)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, status

from app.application import pagination
from app.domain.users import User, UserChanges, UserFilter
from app.presentation.deps import (
    API_PREFIX,
    AuthServiceDep,
    CurrentActor,
    JsonOnly,
    MeUpdateBody,
    UserReaderDep,
    UserServiceDep,
)
from app.presentation.query import query_model, query_parameters
from app.presentation.schemas.common import AUTHENTICATED, TOKEN_REQUIRED, Page, if_sent, problems
from app.presentation.schemas.users import (
    MeRead,
    PasswordChange,
    UserAdminUpdate,
    UserListParams,
    UserRead,
)

router = APIRouter(prefix=f"{API_PREFIX}/users", tags=["users"])


def _me(user: User) -> MeRead:
    return MeRead(
        **UserRead.model_validate(user).model_dump(), permissions=sorted(user.permissions)
    )


@router.get(
    "/me", operation_id="get_me", responses=problems(*AUTHENTICATED), openapi_extra=TOKEN_REQUIRED
)
async def get_me(actor: CurrentActor, users: UserReaderDep) -> MeRead:
    """Your account, with the permissions your role grants."""
    return _me(await users.me(actor))


@router.patch(
    "/me",
    operation_id="update_me",
    dependencies=[JsonOnly],
    responses=problems(*AUTHENTICATED, 409),
    openapi_extra=TOKEN_REQUIRED,
)
async def update_me(body: MeUpdateBody, actor: CurrentActor, users: UserServiceDep) -> MeRead:
    """Change your name or email. An email change needs `current_password` (missing or wrong:
    422 naming it, checked before anything else; counted under RATE_LIMIT_LOGIN per account,
    429 when over) and signs out every other session of yours; an email that normalises to
    your current one is no change."""
    changes = UserChanges(email=body.email, full_name=if_sent(body, "full_name", body.full_name))
    return _me(await users.update_me(actor, changes, current_password=body.current_password))


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="change_password",
    dependencies=[JsonOnly],
    responses=problems(*AUTHENTICATED),
    openapi_extra=TOKEN_REQUIRED,
)
async def change_password(body: PasswordChange, actor: CurrentActor, auth: AuthServiceDep) -> None:
    """Change your password; every other session of yours is signed out. A new password equal
    to the current one is a 422 naming `new_password`."""
    await auth.change_password(
        actor, current_password=body.current_password, new_password=body.new_password
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="delete_me",
    responses=problems(*AUTHENTICATED, 409),
    openapi_extra=TOKEN_REQUIRED,
)
async def delete_me(actor: CurrentActor, users: UserServiceDep) -> None:
    """Delete your account and all your todos."""
    await users.delete_me(actor)


@router.get(
    "",
    operation_id="list_users",
    response_model=Page[UserRead],
    responses=problems(*AUTHENTICATED, 403),
    openapi_extra={**query_parameters(UserListParams), **TOKEN_REQUIRED},
)
async def list_users(
    params: Annotated[UserListParams, Depends(query_model(UserListParams))],
    actor: CurrentActor,
    users: UserReaderDep,
) -> pagination.Page[User]:
    """All accounts, newest first (admin)."""
    query = UserFilter(role=params.role, is_active=params.is_active, text=params.q)
    return await users.list(actor, query, limit=params.limit, cursor=params.cursor)


@router.get(
    "/{user_id:uuid}",
    operation_id="get_user",
    responses=problems(*AUTHENTICATED, 403, 404),
    openapi_extra=TOKEN_REQUIRED,
)
async def get_user(user_id: UUID, actor: CurrentActor, users: UserReaderDep) -> UserRead:
    """One account (admin)."""
    return UserRead.model_validate(await users.get(actor, user_id))


@router.patch(
    "/{user_id:uuid}",
    operation_id="update_user",
    dependencies=[JsonOnly],
    responses=problems(*AUTHENTICATED, 403, 404, 409),
    openapi_extra=TOKEN_REQUIRED,
)
async def update_user(
    user_id: UUID, body: UserAdminUpdate, actor: CurrentActor, users: UserServiceDep
) -> UserRead:
    """Change an account's role, active flag or name (admin); it bites on their next request.
    Deactivating an account ends every session it has, for good: reactivation revives none."""
    changes = UserChanges(
        role=body.role,
        is_active=body.is_active,
        full_name=if_sent(body, "full_name", body.full_name),
    )
    return UserRead.model_validate(await users.update(actor, user_id, changes))


@router.delete(
    "/{user_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="delete_user",
    responses=problems(*AUTHENTICATED, 403, 404, 409),
    openapi_extra=TOKEN_REQUIRED,
)
async def delete_user(user_id: UUID, actor: CurrentActor, users: UserServiceDep) -> None:
    """Delete an account and all its todos (admin)."""
    await users.delete(actor, user_id)
