"""Unit-test wiring: services built on the in-memory fakes of tests/fakes.py, fresh per test."""

from datetime import timedelta
from uuid import UUID

import pytest

from app.application.auth import ActorCache, AuthService, revocations_in_force
from app.application.pagination import CursorCodec
from app.application.todos import TodoService
from app.application.users import UserService
from app.infrastructure.security import JwtTokenIssuer
from tests.fakes import (
    COMMON_PASSWORDS,
    FakeClock,
    FakePasswordHasher,
    InMemoryRevocationList,
    InMemoryUnitOfWork,
    RecordingAuditTrail,
    make_cursor_codec,
    make_token_issuer,
)


@pytest.fixture
def uow() -> InMemoryUnitOfWork:
    return InMemoryUnitOfWork()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hasher() -> FakePasswordHasher:
    return FakePasswordHasher()


@pytest.fixture
def tokens() -> JwtTokenIssuer:
    return make_token_issuer()


@pytest.fixture
def revocations(
    uow: InMemoryUnitOfWork, tokens: JwtTokenIssuer, clock: FakeClock
) -> InMemoryRevocationList:
    return revocation_list(uow, tokens, clock)


def revocation_list(
    uow: InMemoryUnitOfWork, tokens: JwtTokenIssuer, clock: FakeClock
) -> InMemoryRevocationList:
    """A fresh in-process list over the same tables: what a restarted process starts with."""

    async def on_record(user_id: UUID) -> dict[UUID, timedelta]:
        return await revocations_in_force(
            uow, user_id, access_ttl=tokens.access_ttl, now=clock.now()
        )

    return InMemoryRevocationList(on_record)


@pytest.fixture
def audit() -> RecordingAuditTrail:
    return RecordingAuditTrail()


@pytest.fixture
def cursors() -> CursorCodec:
    return make_cursor_codec()


@pytest.fixture
def auth(
    uow: InMemoryUnitOfWork,
    hasher: FakePasswordHasher,
    tokens: JwtTokenIssuer,
    revocations: InMemoryRevocationList,
    clock: FakeClock,
    audit: RecordingAuditTrail,
) -> AuthService:
    return AuthService(
        uow,
        hasher=hasher,
        tokens=tokens,
        revocations=revocations,
        actors=ActorCache(),
        clock=clock,
        common_passwords=COMMON_PASSWORDS,
        audit=audit,
    )


@pytest.fixture
def users(
    uow: InMemoryUnitOfWork,
    hasher: FakePasswordHasher,
    revocations: InMemoryRevocationList,
    clock: FakeClock,
    cursors: CursorCodec,
    tokens: JwtTokenIssuer,
    audit: RecordingAuditTrail,
) -> UserService:
    return UserService(
        uow,
        hasher=hasher,
        revocations=revocations,
        clock=clock,
        cursors=cursors,
        common_passwords=COMMON_PASSWORDS,
        access_ttl=tokens.access_ttl,
        audit=audit,
    )


@pytest.fixture
def todos(
    uow: InMemoryUnitOfWork, clock: FakeClock, cursors: CursorCodec, audit: RecordingAuditTrail
) -> TodoService:
    return TodoService(uow, clock=clock, cursors=cursors, audit=audit)
