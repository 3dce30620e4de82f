"""UserService: the caller's own account, admin management, and the last-admin rule."""

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from app.application.users import AdminBootstrap, UserService
from app.domain.errors import (
    EmailTaken,
    InvalidCursor,
    InvalidField,
    LastAdmin,
    PermissionDenied,
    UserNotFound,
)
from app.domain.sessions import RefreshToken
from app.domain.todos import TodoDraft
from app.domain.users import Actor, Role, User, UserChanges, UserFilter
from tests.fakes import (
    PASSWORD,
    FakeClock,
    FakePasswordHasher,
    InMemoryUnitOfWork,
    a_todo,
    a_user,
    give_inbox,
)


async def _add(uow: InMemoryUnitOfWork, *users: User) -> None:
    for user in users:
        await uow.users.add(user)
    await uow.commit()


@pytest.fixture
async def admin(uow: InMemoryUnitOfWork) -> User:
    user = a_user(email="admin@example.io", role=Role.ADMIN)
    await _add(uow, user)
    return user


# The last-admin rule


async def test_last_admin_cannot_demote_themselves(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    with pytest.raises(LastAdmin):
        await users.update(Actor.of(admin), admin.id, UserChanges(role=Role.USER))

    assert await uow.users.get(admin.id) == admin


async def test_last_admin_cannot_deactivate_themselves(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    with pytest.raises(LastAdmin):
        await users.update(Actor.of(admin), admin.id, UserChanges(is_active=False))

    assert await uow.users.get(admin.id) == admin


async def test_last_admin_cannot_delete_themselves_through_admin_route(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    with pytest.raises(LastAdmin):
        await users.delete(Actor.of(admin), admin.id)

    assert await uow.users.get(admin.id) == admin


async def test_last_admin_cannot_delete_their_own_account(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    with pytest.raises(LastAdmin):
        await users.delete_me(Actor.of(admin))

    assert await uow.users.get(admin.id) == admin


async def test_an_inactive_admin_does_not_count_towards_the_last_admin_rule(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    await _add(uow, a_user(email="dormant@example.io", role=Role.ADMIN, is_active=False))

    with pytest.raises(LastAdmin):
        await users.update(Actor.of(admin), admin.id, UserChanges(role=Role.GUEST))


async def test_admin_can_step_down_while_another_active_admin_remains(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    other = a_user(email="other@example.io", role=Role.ADMIN)
    await _add(uow, other)

    demoted = await users.update(Actor.of(admin), admin.id, UserChanges(role=Role.USER))

    assert demoted.role is Role.USER
    assert await uow.users.lock_active_admins() == [other.id]
    # And now the other one is the last.
    with pytest.raises(LastAdmin):
        await users.delete(Actor.of(other), other.id)


async def test_admin_can_delete_another_admin_while_they_remain(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    other = a_user(email="other@example.io", role=Role.ADMIN)
    await _add(uow, other)

    await users.delete(Actor.of(admin), other.id)

    assert await uow.users.get(other.id) is None


async def test_last_admin_may_still_edit_their_name(
    users: UserService, admin: User, clock: FakeClock
) -> None:
    clock.advance(timedelta(minutes=1))

    updated = await users.update(Actor.of(admin), admin.id, UserChanges(full_name="The Admin"))

    assert updated.full_name == "The Admin"
    assert updated.updated_at == clock.now()


async def test_deactivating_an_ordinary_user_is_allowed(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    user = a_user()
    await _add(uow, user)

    updated = await users.update(Actor.of(admin), user.id, UserChanges(is_active=False))

    assert not updated.is_active
    assert await uow.users.get(user.id) == updated


# Admin management needs users:manage


async def test_non_admin_cannot_manage_users(users: UserService, uow: InMemoryUnitOfWork) -> None:
    user = a_user()
    await _add(uow, user)
    actor = Actor.of(user)

    with pytest.raises(PermissionDenied):
        await users.list(actor, UserFilter(), limit=10, cursor=None)
    with pytest.raises(PermissionDenied):
        await users.get(actor, user.id)
    with pytest.raises(PermissionDenied):
        await users.update(actor, user.id, UserChanges(role=Role.ADMIN))
    with pytest.raises(PermissionDenied):
        await users.delete(actor, user.id)
    assert await uow.users.get(user.id) == user


async def test_unknown_user_is_user_not_found(users: UserService, admin: User) -> None:
    with pytest.raises(UserNotFound):
        await users.get(Actor.of(admin), a_user().id)


# The first admin: bootstrap at start-up, and the CLI's create_admin


async def test_bootstrap_creates_the_first_admin(
    users: UserService, uow: InMemoryUnitOfWork, hasher: FakePasswordHasher
) -> None:
    outcome = await users.bootstrap_admin(email=" Root@Example.io", password=PASSWORD)

    assert outcome is AdminBootstrap.CREATED
    admin = await uow.users.get_by_email("root@example.io")
    assert admin is not None
    assert admin.is_active_admin
    assert await hasher.verify(PASSWORD, admin.password_hash)


async def test_bootstrap_is_idempotent(users: UserService, uow: InMemoryUnitOfWork) -> None:
    await users.bootstrap_admin(email="root@example.io", password=PASSWORD)
    commits = uow.commits

    outcome = await users.bootstrap_admin(email="ROOT@example.io", password=PASSWORD)

    assert outcome is AdminBootstrap.ALREADY_ADMIN
    assert uow.commits == commits
    assert len(uow.state.users) == 1


@pytest.mark.parametrize(
    ("role", "is_active"), [(Role.USER, True), (Role.GUEST, True), (Role.ADMIN, False)]
)
async def test_bootstrap_never_promotes_or_reactivates_an_existing_account(
    users: UserService, uow: InMemoryUnitOfWork, role: Role, is_active: bool
) -> None:
    existing = a_user(email="root@example.io", role=role, is_active=is_active)
    await _add(uow, existing)
    commits = uow.commits

    outcome = await users.bootstrap_admin(email="root@example.io", password=PASSWORD)

    assert outcome is AdminBootstrap.EMAIL_IN_USE
    assert await uow.users.get(existing.id) == existing
    assert uow.commits == commits


async def test_bootstrap_creates_nobody_while_an_admin_exists(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    outcome = await users.bootstrap_admin(email="root@example.io", password=PASSWORD)

    assert outcome is AdminBootstrap.ADMIN_EXISTS
    assert await uow.users.get_by_email("root@example.io") is None


async def test_bootstrap_refuses_a_weak_password(
    users: UserService, uow: InMemoryUnitOfWork
) -> None:
    with pytest.raises(InvalidField):
        await users.bootstrap_admin(email="root@example.io", password="short")

    assert not uow.state.users


async def test_create_admin_adds_an_admin_beside_others(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    created = await users.create_admin(email="Second@Example.io", password=PASSWORD)

    assert created.email == "second@example.io"
    assert created.is_active_admin
    assert await uow.users.get(created.id) == created


async def test_create_admin_never_changes_an_existing_account(
    users: UserService, uow: InMemoryUnitOfWork
) -> None:
    existing = a_user(email="root@example.io", role=Role.USER)
    await _add(uow, existing)

    with pytest.raises(EmailTaken):
        await users.create_admin(email="ROOT@example.io", password=PASSWORD)

    assert await uow.users.get(existing.id) == existing


# Me


async def test_me_is_the_callers_own_account(users: UserService, admin: User) -> None:
    assert await users.me(Actor.of(admin)) == admin


async def test_update_me_normalises_a_new_email(
    users: UserService, uow: InMemoryUnitOfWork
) -> None:
    user = a_user()
    await _add(uow, user)

    updated = await users.update_me(
        Actor.of(user), UserChanges(email=" New@Example.io "), current_password=PASSWORD
    )

    assert updated.email == "new@example.io"
    assert await uow.users.get(user.id) == updated


async def test_update_me_to_an_email_in_use_is_email_taken(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    user = a_user()
    await _add(uow, user)

    with pytest.raises(EmailTaken):
        await users.update_me(
            Actor.of(user), UserChanges(email="ADMIN@example.io"), current_password=PASSWORD
        )


@pytest.mark.parametrize("password", [None, "not my password"], ids=["missing", "wrong"])
async def test_an_email_change_without_the_current_password_is_refused_before_anything_else(
    users: UserService, uow: InMemoryUnitOfWork, admin: User, password: str | None
) -> None:
    user = a_user()
    await _add(uow, user)

    # Even for a taken email: the 409 must not answer someone without the password.
    for email in ("new@example.io", "admin@example.io"):
        with pytest.raises(InvalidField) as refused:
            await users.update_me(
                Actor.of(user), UserChanges(email=email), current_password=password
            )
        assert refused.value.field == "current_password"
    assert await uow.users.get(user.id) == user


async def test_an_email_that_normalises_to_the_current_one_needs_no_password(
    users: UserService, uow: InMemoryUnitOfWork
) -> None:
    user = a_user(email="ada@example.io")
    await _add(uow, user)

    same = await users.update_me(Actor.of(user), UserChanges(email=" ADA@example.io"))

    assert same == user


async def test_an_email_change_signs_out_every_other_session(
    users: UserService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    user = a_user()
    await _add(uow, user)
    mine, other = uuid4(), uuid4()
    for family in (mine, other):
        await uow.refresh_tokens.add(_token(user, family, clock))
    await uow.commit()

    actor = Actor.of(user, session_id=mine)
    await users.update_me(actor, UserChanges(email="new@example.io"), current_password=PASSWORD)

    revoked = await uow.refresh_tokens.revoked_families(
        user.id, since=clock.now() - timedelta(seconds=1)
    )
    assert set(revoked) == {other}


async def test_a_deactivation_ends_every_session_of_the_account(
    users: UserService, uow: InMemoryUnitOfWork, admin: User, clock: FakeClock
) -> None:
    user = a_user()
    await _add(uow, user)
    families = {uuid4(), uuid4()}
    for family in families:
        await uow.refresh_tokens.add(_token(user, family, clock))
    await uow.commit()

    await users.update(Actor.of(admin), user.id, UserChanges(is_active=False))
    await users.update(Actor.of(admin), user.id, UserChanges(is_active=True))

    revoked = await uow.refresh_tokens.revoked_families(
        user.id, since=clock.now() - timedelta(seconds=1)
    )
    assert set(revoked) == families


async def test_a_write_keeps_what_another_write_committed_meanwhile(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    user = a_user()
    await _add(uow, user)
    # The admin's deactivation lands between the rename's first read and its write.
    real_get = uow.users.get

    async def get_then_deactivate(user_id: UUID) -> User | None:
        read = await real_get(user_id)
        uow.users.get = real_get  # type: ignore[method-assign]
        await users.update(Actor.of(admin), user.id, UserChanges(is_active=False))
        return read

    uow.users.get = get_then_deactivate  # type: ignore[method-assign]
    renamed = await users.update_me(Actor.of(user), UserChanges(full_name="Ada"))

    assert not renamed.is_active
    stored = await uow.users.get(user.id)
    assert stored is not None
    assert (stored.full_name, stored.is_active) == ("Ada", False)


def _token(user: User, family: UUID, clock: FakeClock) -> RefreshToken:
    return RefreshToken(
        id=uuid4(),
        user_id=user.id,
        family_id=family,
        token_hash=uuid4().hex,
        created_at=clock.now(),
        expires_at=clock.now() + timedelta(days=1),
    )


async def test_update_me_can_clear_the_full_name(
    users: UserService, uow: InMemoryUnitOfWork
) -> None:
    user = a_user(full_name="Ada")
    await _add(uow, user)

    assert (await users.update_me(Actor.of(user), UserChanges(full_name=None))).full_name is None


async def test_update_me_cannot_change_ones_own_role_or_status_without_users_manage(
    users: UserService, uow: InMemoryUnitOfWork
) -> None:
    user = a_user(role=Role.USER)
    await _add(uow, user)

    for changes in (UserChanges(role=Role.ADMIN), UserChanges(is_active=False)):
        with pytest.raises(PermissionDenied):
            await users.update_me(Actor.of(user), changes)
    assert await uow.users.get(user.id) == user


async def test_delete_me_takes_the_users_todos_with_them(
    users: UserService, uow: InMemoryUnitOfWork, clock: FakeClock
) -> None:
    user, other = a_user(), a_user(email="other@example.io")
    await _add(uow, user, other)
    give_inbox(uow.state, user.id), give_inbox(uow.state, other.id)
    mine = a_todo(user.id, clock.now(), TodoDraft(title="mine"))
    theirs = a_todo(other.id, clock.now(), TodoDraft(title="theirs"))
    await uow.todos.add(mine)
    await uow.todos.add(theirs)
    await uow.commit()

    await users.delete_me(Actor.of(user))

    assert await uow.users.get(user.id) is None
    assert uow.todos.stored(mine.id) is None
    assert uow.todos.stored(theirs.id) == theirs


# List


async def test_list_walks_every_user_newest_first_without_skips_or_repeats(
    users: UserService, uow: InMemoryUnitOfWork, admin: User, clock: FakeClock
) -> None:
    base = admin.created_at
    # Some share a created_at, so the id must break the tie.
    others = [
        a_user(email=f"u{i}@example.io", created_at=base + timedelta(seconds=1 + i // 2))
        for i in range(7)
    ]
    await _add(uow, *others)
    actor = Actor.of(admin)

    seen: list[User] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await users.list(actor, UserFilter(), limit=3, cursor=cursor)
        seen.extend(page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    expected = sorted([admin, *others], key=lambda u: (u.created_at, u.id), reverse=True)
    assert seen == expected
    assert pages == 3


async def test_list_filters_by_role_activity_and_text(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    ada = a_user(email="ada@example.io", full_name="Ada Lovelace")
    bob = a_user(email="bob@example.io", role=Role.GUEST)
    gone = a_user(email="gone@example.io", is_active=False)
    await _add(uow, ada, bob, gone)
    actor = Actor.of(admin)

    async def emails(query: UserFilter) -> set[str]:
        page = await users.list(actor, query, limit=10, cursor=None)
        return {u.email for u in page.items}

    assert await emails(UserFilter(role=Role.GUEST)) == {"bob@example.io"}
    assert await emails(UserFilter(is_active=False)) == {"gone@example.io"}
    assert await emails(UserFilter(text="LOVELACE")) == {"ada@example.io"}
    assert await emails(UserFilter(role=Role.USER, is_active=True)) == {"ada@example.io"}


async def test_list_cursor_from_other_filters_is_invalid_cursor(
    users: UserService, uow: InMemoryUnitOfWork, admin: User
) -> None:
    await _add(uow, *(a_user(email=f"u{i}@example.io") for i in range(3)))
    actor = Actor.of(admin)
    page = await users.list(actor, UserFilter(), limit=1, cursor=None)
    assert page.next_cursor is not None

    with pytest.raises(InvalidCursor):
        await users.list(actor, UserFilter(role=Role.USER), limit=1, cursor=page.next_cursor)
