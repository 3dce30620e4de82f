"""Users, roles and permissions. A role is nothing but a set of permissions."""

import unicodedata
from collections.abc import Container
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from app.domain.common import UNSET, Unset
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
    """The one spelling of an email that every comparison, store and rate-limit key uses, so
    addresses that look alike are one account (our rule, not RFC 5321's): NFKC (a fullwidth `a` is
    `a`, a decomposed accent is the composed one), case-folded (`A` and `ß` fold to `a` and `ss`),
    then NFKC again, since folding can decompose (`ǰ`), so the stored form is composed."""
    folded = unicodedata.normalize("NFKC", email).casefold()
    return unicodedata.normalize("NFKC", folded).strip()


def check_password(password: str, *, email: str, common: Container[str], field: str) -> None:
    """Reject passwords that are too short, too long, well known, or the email itself."""
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise InvalidField(
            field,
            f"Password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters.",
        )
    if password.lower() in common:
        raise InvalidField(field, "This password is too common; choose another.")
    if normalise_email(password) == normalise_email(email):
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
        return cls(
            id=id,
            email=email,
            password_hash=password_hash,
            full_name=full_name,
            role=role,
            is_active=True,
            created_at=now,
            updated_at=now,
        )

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self.role]

    @property
    def is_active_admin(self) -> bool:
        return self.is_active and self.role is Role.ADMIN

    def apply(self, changes: "UserChanges", now: datetime) -> "User":
        """A new version with the changes; the same user when they change nothing."""
        updated = replace(
            self,
            email=self.email if changes.email is None else normalise_email(changes.email),
            full_name=self.full_name if isinstance(changes.full_name, Unset) else changes.full_name,
            role=self.role if changes.role is None else changes.role,
            is_active=self.is_active if changes.is_active is None else changes.is_active,
        )
        return self._touched(updated, now)

    def with_password(self, password_hash: str, now: datetime) -> "User":
        return self._touched(replace(self, password_hash=password_hash), now)

    def _touched(self, updated: "User", now: datetime) -> "User":
        if updated == self:
            return self  # a no-op change writes nothing and keeps updated_at
        return replace(updated, updated_at=now)


@dataclass(frozen=True, slots=True)
class UserChanges:
    """A partial update: None leaves a field alone; UNSET leaves a nullable one alone."""

    email: str | None = None
    full_name: str | Unset | None = UNSET
    role: Role | None = None
    is_active: bool | None = None

    @property
    def changes_access(self) -> bool:
        """Whether the change touches what the account may do (its role or active flag)."""
        return self.role is not None or self.is_active is not None


@dataclass(frozen=True, slots=True)
class UserFilter:
    """A list query's filters; every field narrows the result (AND)."""

    role: Role | None = None
    is_active: bool | None = None
    text: str | None = None  # a substring of the email or the name

    @property
    def email_text(self) -> str | None:
        """The text as a substring of a stored (normalised) email: fullwidth `ADA` finds `ada@…`.
        White space alone, which normalising would empty, stays as it is and matches none."""
        if not self.text:
            return None
        return normalise_email(self.text) or self.text


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling: what every use case is given to decide what it may do."""

    user_id: UUID
    role: Role
    session_id: UUID | None = None
    permissions: frozenset[Permission] = field(default=frozenset())

    @classmethod
    def of(cls, user: User, *, session_id: UUID | None = None) -> "Actor":
        return cls(
            user_id=user.id, role=user.role, session_id=session_id, permissions=user.permissions
        )

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise PermissionDenied
