"""Users, roles and permissions. A role is nothing but a set of permissions."""

from collections.abc import Container
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from app.domain.errors import InvalidField, PermissionDenied

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
EMAIL_MAX_LENGTH = 254
FULL_NAME_MAX_LENGTH = 200


class Permission(StrEnum):
    TODOS_READ = "todos:read"
    TODOS_WRITE = "todos:write"
    TODOS_READ_ALL = "todos:read_all"
    TODOS_WRITE_ALL = "todos:write_all"
    USERS_MANAGE = "users:manage"


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"
    GUEST = "guest"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.USER: frozenset({Permission.TODOS_READ, Permission.TODOS_WRITE}),
    Role.GUEST: frozenset({Permission.TODOS_READ}),
}


def normalise_email(email: str) -> str:
    """Emails are one account whatever their case (our rule, not RFC 5321's)."""
    return email.strip().lower()


def check_password(password: str, *, email: str, common: Container[str], field: str) -> None:
    """Reject passwords that are too short, too long, well known, or the email itself."""
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise InvalidField(
            field,
            f"Password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters.",
        )
    if password.lower() in common:
        raise InvalidField(field, "This password is too common; choose another.")
    if password.strip().lower() == normalise_email(email):
        raise InvalidField(field, "The password must not be the email address.")


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    email: str
    password_hash: str
    full_name: str | None
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def new(
        cls,
        *,
        id: UUID,
        email: str,
        password_hash: str,
        full_name: str | None,
        role: Role,
        now: datetime,
    ) -> "User":
        """A new, active account."""
        return cls(id, email, password_hash, full_name, role, True, now, now)

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self.role]

    @property
    def is_active_admin(self) -> bool:
        return self.is_active and self.role is Role.ADMIN

    def changed(self, now: datetime, **changes: object) -> "User":
        return replace(self, updated_at=now, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling: what every use case is given to decide what it may do."""

    user_id: UUID
    role: Role
    session_id: UUID | None = None
    permissions: frozenset[Permission] = field(default=frozenset())

    @classmethod
    def of(cls, user: User, *, session_id: UUID | None = None) -> "Actor":
        return cls(user.id, user.role, session_id, user.permissions)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise PermissionDenied
