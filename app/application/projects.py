"""Projects and their members: create, read, rename, delete; roles changed, members removed,
a member leaving. Every use case decides access on the caller's membership as committed now
(read with the project, in the same statement), so a removal or a lowered role bites on the
caller's next request on every instance: there is no copy of a membership to go stale."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from app.application.activity import project_activity
from app.application.pagination import CursorCodec, Page, cursor_binding, paginate
from app.application.ports import Clock, UnitOfWork
from app.domain.activity import ActivityType, changes_between
from app.domain.errors import (
    InboxProtected,
    MemberNotFound,
    OwnerCannotLeave,
    OwnerRoleFixed,
    PreconditionFailed,
    ProjectNotFound,
)
from app.domain.projects import (
    Member,
    Project,
    ProjectChanges,
    ProjectDraft,
    ProjectRole,
    ProjectView,
    require_owner,
    require_read,
)
from app.domain.users import Actor, Permission

_RECORDED_FIELDS = ("name", "description", "color")
_PROJECT_CHANGED = "The project has changed since the version you last saw."


def version_tag(view: ProjectView) -> str:
    """What a project's ETag holds: its version and the caller's role, so that the tag changes
    whenever anything the caller sees of it changes, their role included."""
    return f"{view.project.version}-{view.role or 'none'}"


async def open_inbox(uow: UnitOfWork, *, owner_id: UUID, now: datetime) -> Project:
    """The Inbox of a new account, in the account's transaction (the caller commits)."""
    inbox = Project.inbox(id=uuid4(), owner_id=owner_id, now=now)
    await uow.projects.add(inbox)
    await uow.activity.add(
        project_activity(
            ActivityType.PROJECT_CREATED, actor_id=owner_id, project_id=inbox.id, at=now
        )
    )
    return inbox


async def close_account_projects(
    uow: UnitOfWork, *, actor_id: UUID, user_id: UUID, now: datetime
) -> None:
    """Before an account is deleted: each project it owns is recorded deleted, for every member
    it had, and each membership it holds elsewhere is recorded removed. The rows themselves go
    with the account (the foreign keys cascade); todos it created in others' projects stay."""
    entries = []
    for project_id in await uow.projects.owned(user_id):
        audience = tuple(await uow.memberships.user_ids(project_id))
        entries.append(
            project_activity(
                ActivityType.PROJECT_DELETED,
                actor_id=actor_id,
                project_id=project_id,
                at=now,
                audience=audience,
            )
        )
    for membership in await uow.memberships.of_user(user_id):
        if membership.role is not ProjectRole.OWNER:
            entries.append(
                project_activity(
                    ActivityType.MEMBER_REMOVED,
                    actor_id=actor_id,
                    project_id=membership.project_id,
                    at=now,
                    member_id=user_id,
                    removed=membership,
                )
            )
    if entries:
        await uow.activity.add(*entries)


def check_tag(view: ProjectView, expected: Collection[str] | None) -> None:
    """If-Match: the caller's tags must name the current one (None: no condition)."""
    if expected is not None and version_tag(view) not in expected:
        raise PreconditionFailed(_PROJECT_CHANGED)


class ProjectService:
    def __init__(self, uow: UnitOfWork, *, clock: Clock, cursors: CursorCodec) -> None:
        self._uow = uow
        self._clock = clock
        self._cursors = cursors

    async def create(self, actor: Actor, draft: ProjectDraft) -> ProjectView:
        actor.require(Permission.TODOS_WRITE)
        now = self._clock.now()
        project = Project.new(draft, id=uuid4(), owner_id=actor.user_id, now=now)
        await self._uow.projects.add(project)
        await self._uow.activity.add(
            project_activity(
                ActivityType.PROJECT_CREATED,
                actor_id=actor.user_id,
                project_id=project.id,
                at=now,
            )
        )
        await self._uow.commit()
        return ProjectView(project, ProjectRole.OWNER)

    async def get(self, actor: Actor, project_id: UUID) -> ProjectView:
        view = await self._uow.projects.get(project_id, reader_id=actor.user_id)
        if view is None:
            raise ProjectNotFound
        require_read(actor, view.role, missing=ProjectNotFound)
        return view

    async def list(
        self, actor: Actor, *, limit: int, cursor: str | None = None
    ) -> Page[ProjectView]:
        """The caller's projects, the Inbox first (an admin's reach adds none)."""
        actor.require(Permission.TODOS_READ)
        binding = cursor_binding(_Mine(actor.user_id))
        after = self._cursors.decode(cursor, binding=binding) if cursor else None
        rows = await self._uow.projects.find(actor.user_id, after=after, limit=limit + 1)
        added = {view.project.id: added_at for view, added_at in rows}
        return paginate(
            [view for view, _ in rows],
            limit=limit,
            cursors=self._cursors,
            binding=binding,
            sort_values=lambda view: (
                not view.project.is_inbox,
                added[view.project.id],
                view.project.id,
            ),
        )

    async def update(
        self,
        actor: Actor,
        project_id: UUID,
        changes: ProjectChanges,
        *,
        expected: Collection[str] | None = None,
    ) -> ProjectView:
        view = await self._owned(actor, project_id)
        check_tag(view, expected)
        project = view.project
        updated = project.apply(changes, self._clock.now())
        if updated is project:
            return view
        if not await self._uow.projects.save(updated, expected_version=project.version):
            raise PreconditionFailed(_PROJECT_CHANGED)
        await self._uow.activity.add(
            project_activity(
                ActivityType.PROJECT_UPDATED,
                actor_id=actor.user_id,
                project_id=project.id,
                at=updated.updated_at,
                changes=changes_between(project, updated, _RECORDED_FIELDS),
            )
        )
        await self._uow.commit()
        return ProjectView(updated, view.role)

    async def delete(
        self, actor: Actor, project_id: UUID, *, expected: Collection[str] | None = None
    ) -> None:
        """The project goes with its todos (for good), members and invitations; every member it
        had receives the one `project.deleted` entry."""
        view = await self._owned(actor, project_id)
        if view.project.is_inbox:
            raise InboxProtected
        check_tag(view, expected)
        audience = tuple(await self._uow.memberships.user_ids(project_id))
        await self._uow.activity.add(
            project_activity(
                ActivityType.PROJECT_DELETED,
                actor_id=actor.user_id,
                project_id=project_id,
                at=self._clock.now(),
                audience=audience,
            )
        )
        await self._uow.projects.delete(project_id)
        await self._uow.commit()

    async def members(
        self, actor: Actor, project_id: UUID, *, limit: int, cursor: str | None = None
    ) -> Page[Member]:
        """The owner first, then by when they joined. Emails only for the owner, and each
        member's own."""
        view = await self.get(actor, project_id)
        binding = cursor_binding(_Members(project_id))
        after = self._cursors.decode(cursor, binding=binding) if cursor else None
        rows = await self._uow.memberships.find(project_id, after=after, limit=limit + 1)
        shown = [_visible(member, actor, view.role) for member in rows]
        return paginate(
            shown,
            limit=limit,
            cursors=self._cursors,
            binding=binding,
            sort_values=lambda m: (m.role is not ProjectRole.OWNER, m.added_at, m.user_id),
        )

    async def update_member(
        self, actor: Actor, project_id: UUID, user_id: UUID, role: ProjectRole
    ) -> Member:
        view = await self._owned(actor, project_id)
        membership = await self._uow.memberships.get(project_id, user_id)
        if membership is None:
            raise MemberNotFound
        if membership.role is ProjectRole.OWNER or role is ProjectRole.OWNER:
            raise OwnerRoleFixed
        if membership.role is not role:
            if not await self._uow.memberships.set_role(project_id, user_id, role):
                raise MemberNotFound  # removed meanwhile
            await self._uow.activity.add(
                project_activity(
                    ActivityType.MEMBER_UPDATED,
                    actor_id=actor.user_id,
                    project_id=project_id,
                    at=self._clock.now(),
                    changes={"role": {"from": membership.role.value, "to": role.value}},
                    member_id=user_id,
                )
            )
            await self._uow.commit()
        member = await self._uow.memberships.get(project_id, user_id)
        if member is None:
            raise MemberNotFound
        return _visible(member, actor, view.role)

    async def remove_member(self, actor: Actor, project_id: UUID, user_id: UUID) -> None:
        """The owner removes anyone but themself; any member may leave (a guest too: leaving
        writes nothing in the project)."""
        if user_id == actor.user_id:
            view = await self.get(actor, project_id)
            if view.role is ProjectRole.OWNER:
                raise OwnerCannotLeave
            if view.role is None:
                raise MemberNotFound
        else:
            view = await self._owned(actor, project_id)
            if user_id == view.project.owner_id:
                raise OwnerCannotLeave
        removed = await self._uow.memberships.remove(project_id, user_id)
        if removed is None:
            raise MemberNotFound
        await self._uow.activity.add(
            project_activity(
                ActivityType.MEMBER_REMOVED,
                actor_id=actor.user_id,
                project_id=project_id,
                at=self._clock.now(),
                member_id=user_id,
                removed=removed,
            )
        )
        await self._uow.commit()

    async def _owned(self, actor: Actor, project_id: UUID) -> ProjectView:
        view = await self._uow.projects.get(project_id, reader_id=actor.user_id)
        if view is None:
            raise ProjectNotFound
        require_owner(actor, view.role, missing=ProjectNotFound)
        return view


def _visible(member: Member, actor: Actor, role: ProjectRole | None) -> Member:
    if role is ProjectRole.OWNER or member.user_id == actor.user_id:
        return member
    return Member(member.user_id, None, member.full_name, member.role, member.added_at)


@dataclass(frozen=True, slots=True)
class _Mine:
    """What a project-list cursor is bound to: the caller's list."""

    member_id: UUID


@dataclass(frozen=True, slots=True)
class _Members:
    """What a member-list cursor is bound to: the project's list."""

    project_id: UUID
