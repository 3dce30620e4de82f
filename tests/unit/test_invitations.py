"""InvitationService on the fakes: a single-use, expiring link secret stored only as a hash."""

import hashlib
from datetime import timedelta

import pytest

from app.application.invitations import InvitationService
from app.application.pagination import CursorCodec
from app.application.projects import ProjectService
from app.domain.activity import ActivityType
from app.domain.errors import AlreadyMember, InboxProtected, InvitationNotFound
from app.domain.projects import ProjectDraft, ProjectRole
from app.domain.users import Actor, Role
from tests.fakes import FakeClock, InMemoryUnitOfWork, a_user, give_inbox

OWNER = Actor.of(a_user(email="owner@x.io"))
SAM = Actor.of(a_user(email="sam@x.io"))
KIM = Actor.of(a_user(email="kim@x.io", role=Role.GUEST))


@pytest.fixture
def invitations(
    uow: InMemoryUnitOfWork, clock: FakeClock, cursors: CursorCodec
) -> InvitationService:
    return InvitationService(uow, clock=clock, cursors=cursors, ttl=timedelta(days=7))


@pytest.fixture
def projects(uow: InMemoryUnitOfWork, clock: FakeClock, cursors: CursorCodec) -> ProjectService:
    return ProjectService(uow, clock=clock, cursors=cursors)


async def test_only_a_hash_of_the_token_is_stored(
    invitations: InvitationService, projects: ProjectService, uow: InMemoryUnitOfWork
) -> None:
    project = (await projects.create(OWNER, ProjectDraft(name="Home"))).project
    _, token = await invitations.create(
        OWNER, project.id, role=ProjectRole.EDITOR, email="sam@x.io"
    )
    [stored] = uow.state.invitations.values()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(stored)
    assert len(token) >= 22  # 128 bits and more, base64url


async def test_a_token_joins_once_and_expires(
    invitations: InvitationService,
    projects: ProjectService,
    uow: InMemoryUnitOfWork,
    clock: FakeClock,
) -> None:
    project = (await projects.create(OWNER, ProjectDraft(name="Home"))).project
    _, once = await invitations.create(OWNER, project.id, role=ProjectRole.VIEWER, email=None)
    _, later = await invitations.create(OWNER, project.id, role=ProjectRole.EDITOR, email=None)

    joined = await invitations.accept(SAM, once)
    assert (joined.project.id, joined.role) == (project.id, ProjectRole.VIEWER)
    with pytest.raises(InvitationNotFound):
        await invitations.accept(KIM, once)
    with pytest.raises(AlreadyMember):
        await invitations.accept(SAM, later)
    clock.advance(timedelta(days=7))
    with pytest.raises(InvitationNotFound):
        await invitations.preview(KIM, later)
    added = [e for e in uow.activity.entries() if e.type is ActivityType.MEMBER_ADDED]
    assert [(e.member_id, e.project_id) for e in added] == [(SAM.user_id, project.id)]


async def test_the_inbox_is_not_shared(
    invitations: InvitationService, uow: InMemoryUnitOfWork
) -> None:
    inbox = give_inbox(uow.state, OWNER.user_id)
    with pytest.raises(InboxProtected):
        await invitations.create(OWNER, inbox.id, role=ProjectRole.VIEWER, email=None)
    assert uow.state.invitations == {}
