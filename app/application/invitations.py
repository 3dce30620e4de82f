"""Sharing by invitation: the owner makes a single-use, expiring link secret with a role and
hands its token out of band; whoever presents it joins. Nothing is sent and no account is
looked up, so inviting reveals nothing about who has an account.

Only a hash of the token is stored. An unknown, expired, used or revoked token is one answer
(InvitationNotFound), and only a successful accept uses a token up."""

import secrets
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID, uuid4

from app.application.activity import project_activity
from app.application.auth import token_digest
from app.application.pagination import CursorCodec, Page, cursor_binding, paginate
from app.application.ports import Clock, UnitOfWork
from app.domain.activity import ActivityType
from app.domain.errors import AlreadyMember, InboxProtected, InvitationNotFound, ProjectNotFound
from app.domain.projects import (
    Invitation,
    InvitationPreview,
    Membership,
    ProjectRole,
    ProjectView,
    require_owner,
)
from app.domain.users import Actor, Permission

DEFAULT_INVITATION_TTL = timedelta(days=7)
TOKEN_BYTES = 32  # 256 random bits; the contract asks for at least 128


@dataclass(frozen=True, slots=True)
class _Pending:
    """What an invitation-list cursor is bound to: the project's pending list."""

    project_id: UUID


class InvitationService:
    def __init__(
        self,
        uow: UnitOfWork,
        *,
        clock: Clock,
        cursors: CursorCodec,
        ttl: timedelta = DEFAULT_INVITATION_TTL,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._cursors = cursors
        self._ttl = ttl

    async def create(
        self, actor: Actor, project_id: UUID, *, role: ProjectRole, email: str | None
    ) -> tuple[Invitation, str]:
        """The invitation and its token, which is shown this once and never again."""
        view = await self._owned(actor, project_id)
        if view.project.is_inbox:
            raise InboxProtected
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock.now()
        invitation = Invitation(
            id=uuid4(),
            project_id=project_id,
            role=role,
            email=email,
            token_hash=token_digest(token),
            created_by=actor.user_id,
            created_at=now,
            expires_at=now + self._ttl,
        )
        await self._uow.invitations.add(invitation)
        await self._uow.commit()
        return invitation, token

    async def list(
        self, actor: Actor, project_id: UUID, *, limit: int, cursor: str | None = None
    ) -> Page[Invitation]:
        """Pending invitations (neither accepted nor expired), oldest first."""
        await self._owned(actor, project_id)
        binding = cursor_binding(_Pending(project_id))
        after = self._cursors.decode(cursor, binding=binding) if cursor else None
        rows = await self._uow.invitations.pending(
            project_id, now=self._clock.now(), after=after, limit=limit + 1
        )
        return paginate(
            rows,
            limit=limit,
            cursors=self._cursors,
            binding=binding,
            sort_values=lambda invitation: (invitation.created_at, invitation.id),
        )

    async def revoke(self, actor: Actor, project_id: UUID, invitation_id: UUID) -> None:
        await self._owned(actor, project_id)
        if not await self._uow.invitations.revoke(project_id, invitation_id, now=self._clock.now()):
            raise InvitationNotFound
        await self._uow.commit()

    async def preview(self, actor: Actor, token: str) -> InvitationPreview:
        """What the token invites to, for its holder to decide; uses nothing up."""
        actor.require(Permission.TODOS_READ)
        preview = await self._uow.invitations.usable(token_digest(token), now=self._clock.now())
        if preview is None:
            raise InvitationNotFound
        return preview

    async def accept(self, actor: Actor, token: str) -> ProjectView:
        """Joins the caller with the invitation's role and uses the token up. A member already
        is refused (AlreadyMember) and the token stays usable for someone else."""
        preview = await self.preview(actor, token)
        invitation = preview.invitation
        if await self._uow.memberships.get(invitation.project_id, actor.user_id) is not None:
            raise AlreadyMember
        now = self._clock.now()
        if not await self._uow.invitations.spend(invitation.id, user_id=actor.user_id, now=now):
            raise InvitationNotFound  # another accept spent it first
        membership = Membership(invitation.project_id, actor.user_id, invitation.role, now)
        if not await self._uow.memberships.add(membership):
            raise AlreadyMember  # joined meanwhile by another invitation: nothing spent
        await self._uow.activity.add(
            project_activity(
                ActivityType.MEMBER_ADDED,
                actor_id=actor.user_id,
                project_id=invitation.project_id,
                at=now,
                changes={"role": {"from": None, "to": invitation.role.value}},
                member_id=actor.user_id,
            )
        )
        view = await self._uow.projects.get(invitation.project_id, reader_id=actor.user_id)
        if view is None:
            raise InvitationNotFound  # the project was deleted meanwhile
        await self._uow.commit()
        return view

    async def _owned(self, actor: Actor, project_id: UUID) -> ProjectView:
        view = await self._uow.projects.get(project_id, reader_id=actor.user_id)
        if view is None:
            raise ProjectNotFound
        require_owner(actor, view.role, missing=ProjectNotFound)
        return view
