"""Projects, their members and invitations, and who may do what in one.

Every todo lives in a project. A project has one owner, for good; others join it by
invitation, as an `editor` or a `viewer`. What a caller may do in a project is their member
role bounded by their global permissions: a guest is read-only whatever their role, and an
admin's `todos:read_all` / `todos:write_all` reach any project's todos but never an owner's
actions (renaming, deleting, managing members and invitations).
"""

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from app.domain.common import UNSET, Unset
from app.domain.errors import DomainError, InvalidField, PermissionDenied
from app.domain.text import clean_description, clean_text
from app.domain.users import Actor, Permission

NAME_MAX_LENGTH = 100
DESCRIPTION_MAX_LENGTH = 2_000
INBOX_NAME = "Inbox"
COLOR_PATTERN = re.compile(r"#[0-9a-fA-F]{6}")


class ProjectRole(StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"

    @property
    def edits_todos(self) -> bool:
        return self is not ProjectRole.VIEWER


INVITABLE_ROLES = frozenset({ProjectRole.EDITOR, ProjectRole.VIEWER})


def normalise_name(name: str) -> str:
    name = clean_text(name).strip()
    if not 1 <= len(name) <= NAME_MAX_LENGTH:
        raise InvalidField("name", f"Name must be 1 to {NAME_MAX_LENGTH} characters.")
    return name


def normalise_description(description: str) -> str:
    return clean_description(description, max_length=DESCRIPTION_MAX_LENGTH)


def normalise_color(color: str | None) -> str | None:
    """`#rrggbb`, stored lower-cased so that one colour has one spelling."""
    if color is None:
        return None
    if not COLOR_PATTERN.fullmatch(color):
        raise InvalidField("color", "Color must be #rrggbb (hexadecimal) or null.")
    return color.lower()


@dataclass(frozen=True, slots=True)
class ProjectDraft:
    name: str
    description: str = ""
    color: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalise_name(self.name))
        object.__setattr__(self, "description", normalise_description(self.description))
        object.__setattr__(self, "color", normalise_color(self.color))


@dataclass(frozen=True, slots=True)
class ProjectChanges:
    """A partial update: None leaves a field alone; UNSET leaves the nullable colour alone."""

    name: str | None = None
    description: str | None = None
    color: str | Unset | None = UNSET


@dataclass(frozen=True, slots=True)
class Project:
    id: UUID
    owner_id: UUID
    name: str
    description: str
    color: str | None
    is_inbox: bool
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def new(
        cls, draft: ProjectDraft, *, id: UUID, owner_id: UUID, now: datetime, is_inbox: bool = False
    ) -> "Project":
        return cls(
            id=id,
            owner_id=owner_id,
            name=draft.name,
            description=draft.description,
            color=draft.color,
            is_inbox=is_inbox,
            created_at=now,
            updated_at=now,
            version=1,
        )

    @classmethod
    def inbox(cls, *, id: UUID, owner_id: UUID, now: datetime) -> "Project":
        """The project every account gets with the account, where todos go by default."""
        return cls.new(
            ProjectDraft(name=INBOX_NAME), id=id, owner_id=owner_id, now=now, is_inbox=True
        )

    def apply(self, changes: ProjectChanges, now: datetime) -> "Project":
        """A new version with the changes; the same project when they change nothing."""
        updated = replace(
            self,
            name=self.name if changes.name is None else normalise_name(changes.name),
            description=(
                self.description
                if changes.description is None
                else normalise_description(changes.description)
            ),
            color=self.color
            if isinstance(changes.color, Unset)
            else normalise_color(changes.color),
        )
        if updated == self:
            return self
        return replace(updated, updated_at=now, version=self.version + 1)


@dataclass(frozen=True, slots=True)
class ProjectView:
    """A project as one caller sees it: with their role in it (None: not a member)."""

    project: Project
    role: ProjectRole | None


@dataclass(frozen=True, slots=True)
class Membership:
    project_id: UUID
    user_id: UUID
    role: ProjectRole
    added_at: datetime


@dataclass(frozen=True, slots=True)
class Member:
    """A membership with the member's name and email (None where the reader may not see it)."""

    user_id: UUID
    email: str | None
    full_name: str | None
    role: ProjectRole
    added_at: datetime


@dataclass(frozen=True, slots=True)
class Invitation:
    """A single-use link secret: only the hash of its token is kept."""

    id: UUID
    project_id: UUID
    role: ProjectRole
    email: str | None
    token_hash: str
    created_by: UUID
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None
    accepted_by: UUID | None = None

    def __post_init__(self) -> None:
        if self.role not in INVITABLE_ROLES:
            raise InvalidField("role", "An invitation's role is editor or viewer.")


@dataclass(frozen=True, slots=True)
class InvitationPreview:
    """What a token's holder learns before accepting: the project, the role and who invited."""

    invitation: Invitation
    project_name: str
    inviter_name: str | None


# Who may do what: a use case asks these with the caller's role in the project (None: not a
# member). A write first needs the global permission (a guest's write is a 403 wherever it
# aims); then what the caller cannot read is a 404 before what they may not do is a 403.


def require_read(actor: Actor, role: ProjectRole | None, *, missing: type[DomainError]) -> None:
    """Members read; so does `todos:read_all`. Anyone else learns nothing: `missing` (404)."""
    actor.require(Permission.TODOS_READ)
    if role is None and not actor.can(Permission.TODOS_READ_ALL):
        raise missing


def require_todo_write(
    actor: Actor, role: ProjectRole | None, *, missing: type[DomainError]
) -> None:
    """Owners and editors with `todos:write` change a project's todos; `todos:write_all` any."""
    actor.require(Permission.TODOS_WRITE)
    require_read(actor, role, missing=missing)
    if actor.can(Permission.TODOS_WRITE_ALL):
        return
    if role is None or not role.edits_todos:
        raise PermissionDenied


def require_owner(actor: Actor, role: ProjectRole | None, *, missing: type[DomainError]) -> None:
    """The owner's actions: never granted by a global permission, and never to a guest."""
    actor.require(Permission.TODOS_WRITE)
    require_read(actor, role, missing=missing)
    if role is not ProjectRole.OWNER:
        raise PermissionDenied
