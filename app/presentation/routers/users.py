"""The caller's account (/users/me) and admin management of all accounts (/users)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status

from app.application.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.application.ports import UserFilter
from app.domain.common import UNSET
from app.domain.users import Role, User
from app.presentation.deps import (
    AuthServiceDep,
    CurrentActor,
    JsonOnly,
    UserServiceDep,
)
from app.presentation.schemas.common import AUTHENTICATED, NO_NUL, Page, problems
from app.presentation.schemas.users import (
    MeRead,
    MeUpdate,
    PasswordChange,
    UserAdminUpdate,
    UserRead,
)

router = APIRouter(prefix="/users", tags=["users"], dependencies=[JsonOnly])


def _me(user: User) -> MeRead:
    return MeRead(
        **UserRead.model_validate(user).model_dump(), permissions=sorted(user.permissions)
    )


@router.get("/me", operation_id="get_me", responses=problems(*AUTHENTICATED))
async def get_me(actor: CurrentActor, users: UserServiceDep) -> MeRead:
    """Your account, with the permissions your role grants."""
    return _me(await users.me(actor))


@router.patch("/me", operation_id="update_me", responses=problems(*AUTHENTICATED, 409))
async def update_me(body: MeUpdate, actor: CurrentActor, users: UserServiceDep) -> MeRead:
    """Change your name or email."""
    full_name = body.full_name if "full_name" in body.model_fields_set else UNSET
    return _me(await users.update_me(actor, email=body.email, full_name=full_name))


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="change_password",
    responses=problems(*AUTHENTICATED),
)
async def change_password(body: PasswordChange, actor: CurrentActor, auth: AuthServiceDep) -> None:
    """Change your password; every other session of yours is signed out."""
    await auth.change_password(
        actor, current_password=body.current_password, new_password=body.new_password
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="delete_me",
    responses=problems(*AUTHENTICATED, 409),
)
async def delete_me(actor: CurrentActor, users: UserServiceDep) -> None:
    """Delete your account and all your todos."""
    await users.delete_me(actor)


@router.get("", operation_id="list_users", responses=problems(*AUTHENTICATED, 403))
async def list_users(
    actor: CurrentActor,
    users: UserServiceDep,
    role: Role | None = None,
    is_active: bool | None = None,
    q: Annotated[
        str | None,
        Query(max_length=200, pattern=NO_NUL, description="Substring of email or name."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> Page[UserRead]:
    """All accounts, newest first (admin)."""
    page = await users.list(
        actor, UserFilter(role=role, is_active=is_active, text=q), limit=limit, cursor=cursor
    )
    return Page(
        items=[UserRead.model_validate(u) for u in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/{user_id:uuid}", operation_id="get_user", responses=problems(*AUTHENTICATED, 403, 404)
)
async def get_user(user_id: UUID, actor: CurrentActor, users: UserServiceDep) -> UserRead:
    """One account (admin)."""
    return UserRead.model_validate(await users.get(actor, user_id))


@router.patch(
    "/{user_id:uuid}", operation_id="update_user", responses=problems(*AUTHENTICATED, 403, 404, 409)
)
async def update_user(
    user_id: UUID, body: UserAdminUpdate, actor: CurrentActor, users: UserServiceDep
) -> UserRead:
    """Change an account's role, active flag or name (admin); it bites on their next request."""
    full_name = body.full_name if "full_name" in body.model_fields_set else UNSET
    user = await users.update(
        actor, user_id, role=body.role, is_active=body.is_active, full_name=full_name
    )
    return UserRead.model_validate(user)


@router.delete(
    "/{user_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="delete_user",
    responses=problems(*AUTHENTICATED, 403, 404, 409),
)
async def delete_user(user_id: UUID, actor: CurrentActor, users: UserServiceDep) -> None:
    """Delete an account and all its todos (admin)."""
    await users.delete(actor, user_id)
