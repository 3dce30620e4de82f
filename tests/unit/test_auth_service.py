"""AuthService: registration, login, refresh rotation with reuse detection, logout, passwords."""

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

import pytest

from app.application.auth import (
    ActorCache,
    AuthService,
    revocations_in_force,
    token_digest,
)
from app.application.users import UserService
from app.domain.errors import (
    AccountDisabled,
    EmailTaken,
    InvalidCredentials,
    InvalidField,
    InvalidToken,
    TokenReused,
)
from app.domain.users import ROLE_PERMISSIONS, Actor, Permission, Role, User, UserChanges
from app.infrastructure.security import JwtTokenIssuer
from tests.fakes import (
    ACCESS_TTL,
    COMMON_PASSWORDS,
    PASSWORD,
    FakeClock,
    FakePasswordHasher,
    InMemoryRevocationList,
    InMemoryUnitOfWork,
    RecordingAuditTrail,
)
from tests.unit.conftest import revocation_list

EMAIL = "ada@example.io"
ADMIN = Actor(user_id=uuid4(), role=Role.ADMIN, permissions=ROLE_PERMISSIONS[Role.ADMIN])


async def _register(auth: AuthService, email: str = EMAIL) -> User:
    return await auth.register(email=email, password=PASSWORD, full_name="Ada")


async def _set_user(uow: InMemoryUnitOfWork, user: User) -> None:
    before = await uow.users.get(user.id)
    assert before is not None
    await uow.users.update(user, before=before)
    await uow.commit()


# Register


async def test_register_normalises_the_email_and_creates_an_active_user(
    auth: AuthService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    user = await auth.register(email="  Ada@Example.IO ", password=PASSWORD, full_name=None)

    assert user.email == EMAIL
    assert user.role is Role.USER
    assert user.is_active
    assert user.created_at == user.updated_at == clock.now()
    assert await uow.users.get_by_email(EMAIL) == user
    assert uow.commits == 1


async def test_register_stores_only_a_hash_of_the_password(
    auth: AuthService, hasher: FakePasswordHasher
) -> None:
    user = await _register(auth)

    assert user.password_hash != PASSWORD
    assert await hasher.verify(PASSWORD, user.password_hash)


@pytest.mark.parametrize(
    "password",
    ["short", "Password1", EMAIL, "ADA@example.io", "x" * 129],
    ids=["too-short", "common", "the-email", "the-email-other-case", "too-long"],
)
async def test_register_refuses_a_weak_password_and_stores_nothing(
    auth: AuthService, uow: InMemoryUnitOfWork, password: str
) -> None:
    with pytest.raises(InvalidField) as raised:
        await auth.register(email=EMAIL, password=password, full_name=None)

    assert raised.value.field == "password"
    assert await uow.users.get_by_email(EMAIL) is None


async def test_register_refuses_an_email_taken_in_another_case(auth: AuthService) -> None:
    await _register(auth)

    with pytest.raises(EmailTaken):
        await _register(auth, email="ADA@EXAMPLE.IO")


# Login


async def test_login_with_the_right_password_returns_a_working_token_pair(
    auth: AuthService, tokens: JwtTokenIssuer
) -> None:
    user = await _register(auth)

    pair = await auth.login(email=" ADA@example.io", password=PASSWORD)

    assert pair.expires_in == int(ACCESS_TTL.total_seconds())
    actor = await auth.authenticate(pair.access_token)
    assert actor.user_id == user.id
    assert actor.session_id == tokens.decode_refresh(pair.refresh_token).session_id


async def test_login_with_an_unknown_email_spends_a_dummy_verify_and_is_invalid_credentials(
    auth: AuthService, hasher: FakePasswordHasher
) -> None:
    with pytest.raises(InvalidCredentials):
        await auth.login(email="nobody@example.io", password=PASSWORD)

    assert hasher.dummy_verify_calls == 1


async def test_login_with_a_wrong_password_is_invalid_credentials(
    auth: AuthService, hasher: FakePasswordHasher
) -> None:
    await _register(auth)

    with pytest.raises(InvalidCredentials):
        await auth.login(email=EMAIL, password=PASSWORD + "!")

    assert hasher.verify_calls == 1
    assert hasher.dummy_verify_calls == 0


async def test_login_to_a_disabled_account_is_account_disabled(
    auth: AuthService, uow: InMemoryUnitOfWork
) -> None:
    user = await _register(auth)
    await _set_user(uow, replace(user, is_active=False))

    with pytest.raises(AccountDisabled):
        await auth.login(email=EMAIL, password=PASSWORD)


async def test_wrong_password_on_a_disabled_account_does_not_reveal_it_is_disabled(
    auth: AuthService, uow: InMemoryUnitOfWork
) -> None:
    user = await _register(auth)
    await _set_user(uow, replace(user, is_active=False))

    with pytest.raises(InvalidCredentials):
        await auth.login(email=EMAIL, password="wrong password")


async def test_each_login_is_its_own_session(auth: AuthService) -> None:
    await _register(auth)

    first = await auth.authenticate((await auth.login(email=EMAIL, password=PASSWORD)).access_token)
    second = await auth.authenticate(
        (await auth.login(email=EMAIL, password=PASSWORD)).access_token
    )

    assert first.session_id != second.session_id


# Refresh


async def test_refresh_rotates_the_token_and_keeps_the_session(
    auth: AuthService, uow: InMemoryUnitOfWork, tokens: JwtTokenIssuer
) -> None:
    await _register(auth)
    first = await auth.login(email=EMAIL, password=PASSWORD)

    second = await auth.refresh(first.refresh_token)

    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    old = await uow.refresh_tokens.get_by_hash(token_digest(first.refresh_token))
    new = await uow.refresh_tokens.get_by_hash(token_digest(second.refresh_token))
    assert old is not None
    assert old.is_spent
    assert new is not None
    assert not new.is_spent
    assert new.family_id == old.family_id
    assert (await auth.authenticate(second.access_token)).session_id == old.family_id
    assert tokens.decode_refresh(second.refresh_token).session_id == old.family_id


async def test_replayed_refresh_token_is_token_reused_and_revokes_the_whole_family(
    auth: AuthService,
) -> None:
    await _register(auth)
    first = await auth.login(email=EMAIL, password=PASSWORD)
    second = await auth.refresh(first.refresh_token)

    with pytest.raises(TokenReused):
        await auth.refresh(first.refresh_token)

    # The thief's or the owner's, no one can tell: the sibling issued by rotation dies too,
    with pytest.raises(InvalidToken):
        await auth.refresh(second.refresh_token)
    # and so do the session's access tokens, old and new.
    for access_token in (first.access_token, second.access_token):
        with pytest.raises(InvalidToken):
            await auth.authenticate(access_token)


async def test_reuse_detection_spares_the_users_other_logins(auth: AuthService) -> None:
    await _register(auth)
    stolen = await auth.login(email=EMAIL, password=PASSWORD)
    other = await auth.login(email=EMAIL, password=PASSWORD)
    await auth.refresh(stolen.refresh_token)

    with pytest.raises(TokenReused):
        await auth.refresh(stolen.refresh_token)

    await auth.authenticate(other.access_token)
    await auth.refresh(other.refresh_token)


async def test_revocation_on_reuse_is_committed(auth: AuthService, uow: InMemoryUnitOfWork) -> None:
    await _register(auth)
    first = await auth.login(email=EMAIL, password=PASSWORD)
    second = await auth.refresh(first.refresh_token)

    async with uow:
        with pytest.raises(TokenReused):
            await auth.refresh(first.refresh_token)

    stored = await uow.refresh_tokens.get_by_hash(token_digest(second.refresh_token))
    assert stored is not None
    assert stored.revoked_at is not None


async def test_refresh_with_an_access_token_is_invalid_token(auth: AuthService) -> None:
    await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)

    with pytest.raises(InvalidToken):
        await auth.refresh(pair.access_token)


async def test_refresh_token_never_stored_is_invalid_token(
    auth: AuthService, tokens: JwtTokenIssuer, clock: FakeClock
) -> None:
    user = await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)
    session_id = tokens.decode_refresh(pair.refresh_token).session_id
    unknown = tokens.issue_refresh(user.id, session_id, now=clock.now())

    with pytest.raises(InvalidToken):
        await auth.refresh(unknown)


@pytest.mark.parametrize("garbage", ["", "not.a.jwt", "a" * 200])
async def test_refresh_with_garbage_is_invalid_token(auth: AuthService, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        await auth.refresh(garbage)


async def test_refresh_for_a_deactivated_user_is_invalid_token(
    auth: AuthService, uow: InMemoryUnitOfWork
) -> None:
    user = await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)
    await _set_user(uow, replace(user, is_active=False))

    with pytest.raises(InvalidToken):
        await auth.refresh(pair.refresh_token)


# Logout


async def test_logout_revokes_the_access_token_at_once(auth: AuthService) -> None:
    await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)
    await auth.authenticate(pair.access_token)

    await auth.logout(pair.access_token, refresh_token=None)

    with pytest.raises(InvalidToken):
        await auth.authenticate(pair.access_token)


async def test_logout_ends_the_session_so_its_refresh_token_is_refused(
    auth: AuthService,
) -> None:
    await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)

    await auth.logout(pair.access_token, refresh_token=pair.refresh_token)

    with pytest.raises(InvalidToken):
        await auth.refresh(pair.refresh_token)


async def test_logout_leaves_the_users_other_sessions_alone(auth: AuthService) -> None:
    await _register(auth)
    leaving = await auth.login(email=EMAIL, password=PASSWORD)
    staying = await auth.login(email=EMAIL, password=PASSWORD)

    await auth.logout(leaving.access_token, refresh_token=None)

    await auth.authenticate(staying.access_token)
    await auth.refresh(staying.refresh_token)


async def test_logout_ignores_a_refresh_token_of_another_user(auth: AuthService) -> None:
    await _register(auth)
    await _register(auth, email="bob@example.io")
    ada = await auth.login(email=EMAIL, password=PASSWORD)
    bob = await auth.login(email="bob@example.io", password=PASSWORD)

    await auth.logout(ada.access_token, refresh_token=bob.refresh_token)

    await auth.authenticate(bob.access_token)
    await auth.refresh(bob.refresh_token)


async def test_logout_with_a_logged_out_token_is_invalid_token(auth: AuthService) -> None:
    await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)
    await auth.logout(pair.access_token, refresh_token=None)

    with pytest.raises(InvalidToken):
        await auth.logout(pair.access_token, refresh_token=pair.refresh_token)


# Revocations outlive the revocation list: the refresh-token families are the record


# Each ends a session and returns its access token, and one of a session still live.
EndSession = Callable[[AuthService], Awaitable[tuple[str, str]]]


async def _logged_out(auth: AuthService) -> tuple[str, str]:
    leaving = await auth.login(email=EMAIL, password=PASSWORD)
    staying = await auth.login(email=EMAIL, password=PASSWORD)
    await auth.logout(leaving.access_token, refresh_token=None)
    return leaving.access_token, staying.access_token


async def _signed_out_by_a_password_change(auth: AuthService) -> tuple[str, str]:
    current = await auth.login(email=EMAIL, password=PASSWORD)
    other = await auth.login(email=EMAIL, password=PASSWORD)
    actor = await auth.authenticate(current.access_token)
    await auth.change_password(
        actor, current_password=PASSWORD, new_password="a brand new passphrase"
    )
    return other.access_token, current.access_token


async def _ended_by_refresh_reuse(auth: AuthService) -> tuple[str, str]:
    stolen = await auth.login(email=EMAIL, password=PASSWORD)
    other = await auth.login(email=EMAIL, password=PASSWORD)
    rotated = await auth.refresh(stolen.refresh_token)
    with pytest.raises(TokenReused):
        await auth.refresh(stolen.refresh_token)
    return rotated.access_token, other.access_token


@pytest.fixture
def restart(
    uow: InMemoryUnitOfWork, hasher: FakePasswordHasher, tokens: JwtTokenIssuer, clock: FakeClock
) -> Callable[[], AuthService]:
    """The service as a new process builds it: a fresh revocation list and actor cache, over
    the same database."""

    def restarted() -> AuthService:
        return AuthService(
            uow,
            hasher=hasher,
            tokens=tokens,
            revocations=revocation_list(uow, tokens, clock),
            actors=ActorCache(),
            clock=clock,
            common_passwords=COMMON_PASSWORDS,
            audit=RecordingAuditTrail(),
        )

    return restarted


@pytest.mark.parametrize(
    "end_session",
    [_logged_out, _signed_out_by_a_password_change, _ended_by_refresh_reuse],
    ids=["logout", "password-change", "refresh-reuse"],
)
async def test_an_ended_session_stays_ended_after_a_restart(
    auth: AuthService, restart: Callable[[], AuthService], end_session: EndSession
) -> None:
    await _register(auth)
    ended, live = await end_session(auth)

    restarted = restart()

    with pytest.raises(InvalidToken):
        await restarted.authenticate(ended)
    await restarted.authenticate(live)


async def test_the_record_holds_a_session_as_long_as_its_tokens_can_live(
    auth: AuthService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    user = await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)
    session_id = (await auth.authenticate(pair.access_token)).session_id
    assert session_id is not None
    await auth.logout(pair.access_token, refresh_token=None)

    clock.advance(timedelta(minutes=5))
    in_force = await revocations_in_force(uow, user.id, access_ttl=ACCESS_TTL, now=clock.now())
    assert in_force == {session_id: ACCESS_TTL - timedelta(minutes=5)}
    assert await revocations_in_force(uow, uuid4(), access_ttl=ACCESS_TTL, now=clock.now()) == {}

    clock.advance(ACCESS_TTL - timedelta(minutes=5))  # every token of the session has expired
    assert await revocations_in_force(uow, user.id, access_ttl=ACCESS_TTL, now=clock.now()) == {}


# Authenticate


async def test_a_role_change_bites_on_the_next_request(
    auth: AuthService, users: UserService
) -> None:
    user = await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)
    assert (await auth.authenticate(pair.access_token)).can(Permission.TODOS_WRITE)

    await users.update(ADMIN, user.id, UserChanges(role=Role.GUEST))

    actor = await auth.authenticate(pair.access_token)
    assert actor.role is Role.GUEST
    assert not actor.can(Permission.TODOS_WRITE)


async def test_a_deactivation_bites_on_the_next_request_even_when_the_user_was_cached(
    auth: AuthService, users: UserService
) -> None:
    user = await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)
    await auth.authenticate(pair.access_token)

    await users.update(ADMIN, user.id, UserChanges(is_active=False))

    with pytest.raises(InvalidToken):
        await auth.authenticate(pair.access_token)


async def test_the_user_is_read_once_and_again_only_when_their_stamp_is_retired(
    auth: AuthService, uow: InMemoryUnitOfWork, revocations: InMemoryRevocationList
) -> None:
    user = await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)
    await auth.authenticate(pair.access_token)

    # Written behind the services' back: the copy read above still stands...
    await _set_user(uow, replace(user, role=Role.GUEST))
    assert (await auth.authenticate(pair.access_token)).role is Role.USER

    # ...until the stamp goes, as it does on every change and when the store is emptied.
    await revocations.user_changed(user.id)
    assert (await auth.authenticate(pair.access_token)).role is Role.GUEST


async def test_deactivated_user_is_refused_on_the_next_request(
    auth: AuthService, uow: InMemoryUnitOfWork
) -> None:
    user = await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)

    await _set_user(uow, replace(user, is_active=False))

    with pytest.raises(InvalidToken):
        await auth.authenticate(pair.access_token)


async def test_deleted_user_is_refused_on_the_next_request(
    auth: AuthService, uow: InMemoryUnitOfWork
) -> None:
    user = await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)

    await uow.users.delete(user.id)
    await uow.commit()

    with pytest.raises(InvalidToken):
        await auth.authenticate(pair.access_token)


async def test_refresh_token_is_not_an_access_token(auth: AuthService) -> None:
    await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)

    with pytest.raises(InvalidToken):
        await auth.authenticate(pair.refresh_token)


async def test_token_from_another_issuer_secret_is_invalid_token(
    auth: AuthService, clock: FakeClock
) -> None:
    user = await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)
    forged = JwtTokenIssuer(
        secret="another-secret-that-is-long-enough-0123456789",
        algorithm="HS256",
        issuer="todo-api-tests",
        audience="todo-api-tests",
        access_ttl=ACCESS_TTL,
        refresh_ttl=ACCESS_TTL,
    ).issue_access(user.id, user.id, now=clock.now())

    with pytest.raises(InvalidToken):
        await auth.authenticate(forged)
    await auth.authenticate(pair.access_token)


# Change password


async def test_change_password_ends_other_sessions_but_keeps_the_current_one(
    auth: AuthService, hasher: FakePasswordHasher, uow: InMemoryUnitOfWork
) -> None:
    await _register(auth)
    current = await auth.login(email=EMAIL, password=PASSWORD)
    other = await auth.login(email=EMAIL, password=PASSWORD)
    actor = await auth.authenticate(current.access_token)

    await auth.change_password(
        actor, current_password=PASSWORD, new_password="a brand new passphrase"
    )

    await auth.authenticate(current.access_token)
    await auth.refresh(current.refresh_token)
    with pytest.raises(InvalidToken):
        await auth.authenticate(other.access_token)
    with pytest.raises(InvalidToken):
        await auth.refresh(other.refresh_token)
    user = await uow.users.get(actor.user_id)
    assert user is not None
    assert await hasher.verify("a brand new passphrase", user.password_hash)


async def test_after_change_password_only_the_new_password_logs_in(auth: AuthService) -> None:
    await _register(auth)
    actor = await auth.authenticate((await auth.login(email=EMAIL, password=PASSWORD)).access_token)

    await auth.change_password(
        actor, current_password=PASSWORD, new_password="a brand new passphrase"
    )

    with pytest.raises(InvalidCredentials):
        await auth.login(email=EMAIL, password=PASSWORD)
    await auth.login(email=EMAIL, password="a brand new passphrase")


async def test_change_password_with_a_wrong_current_password_changes_nothing(
    auth: AuthService, uow: InMemoryUnitOfWork
) -> None:
    user = await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)
    actor = await auth.authenticate(pair.access_token)

    with pytest.raises(InvalidField) as raised:
        await auth.change_password(
            actor, current_password="not it at all", new_password="a brand new passphrase"
        )

    assert raised.value.field == "current_password"
    assert await uow.users.get(user.id) == user


@pytest.mark.parametrize("new_password", ["short", "iloveyou", EMAIL])
async def test_change_password_applies_the_password_rules_to_the_new_one(
    auth: AuthService, new_password: str
) -> None:
    await _register(auth)
    actor = await auth.authenticate((await auth.login(email=EMAIL, password=PASSWORD)).access_token)

    with pytest.raises(InvalidField) as raised:
        await auth.change_password(actor, current_password=PASSWORD, new_password=new_password)

    assert raised.value.field == "new_password"


async def test_a_new_password_equal_to_the_current_one_is_refused_naming_new_password(
    auth: AuthService, uow: InMemoryUnitOfWork
) -> None:
    user = await _register(auth)
    actor = await auth.authenticate((await auth.login(email=EMAIL, password=PASSWORD)).access_token)

    with pytest.raises(InvalidField) as raised:
        await auth.change_password(actor, current_password=PASSWORD, new_password=PASSWORD)

    assert raised.value.field == "new_password"
    assert await uow.users.get(user.id) == user


async def test_a_deactivation_ends_sessions_for_good_a_reactivation_revives_none(
    auth: AuthService, users: UserService
) -> None:
    user = await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)

    await users.update(ADMIN, user.id, UserChanges(is_active=False))
    await users.update(ADMIN, user.id, UserChanges(is_active=True))

    with pytest.raises(InvalidToken):
        await auth.authenticate(pair.access_token)
    with pytest.raises(InvalidToken):
        await auth.refresh(pair.refresh_token)
    await auth.login(email=EMAIL, password=PASSWORD)  # a new login starts afresh


async def test_a_token_of_an_ended_family_is_not_spent_even_if_itself_unrevoked(
    auth: AuthService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    await _register(auth)
    pair = await auth.login(email=EMAIL, password=PASSWORD)
    stored = await uow.refresh_tokens.get_by_hash(token_digest(pair.refresh_token))
    assert stored is not None
    # Another token of the family is revoked: the family has ended, whatever this row says.
    sibling = replace(stored, id=uuid4(), token_hash="sibling", revoked_at=clock.now())
    await uow.refresh_tokens.add(sibling)
    await uow.commit()

    with pytest.raises(InvalidToken):
        await auth.refresh(pair.refresh_token)
