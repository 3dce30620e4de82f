"""Users, roles and permissions: the rules in app/domain/users.py."""

import unicodedata
from datetime import timedelta
from uuid import uuid4

import pytest

from app.domain.errors import InvalidField, PermissionDenied
from app.domain.users import (
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    ROLE_PERMISSIONS,
    Actor,
    Permission,
    Role,
    UserChanges,
    UserFilter,
    check_password,
    normalise_email,
)
from tests.fakes import COMMON_PASSWORDS, a_user


def test_email_is_trimmed_and_lower_cased() -> None:
    assert normalise_email("  Ada.Lovelace@Example.IO ") == "ada.lovelace@example.io"


@pytest.mark.parametrize("length", [PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH])
def test_password_at_either_length_bound_is_accepted(length: int) -> None:
    check_password("x" * length, email="a@x.io", common=COMMON_PASSWORDS, field="password")


@pytest.mark.parametrize("length", [0, PASSWORD_MIN_LENGTH - 1, PASSWORD_MAX_LENGTH + 1])
def test_password_outside_the_length_bounds_is_refused(length: int) -> None:
    with pytest.raises(InvalidField) as raised:
        check_password("x" * length, email="a@x.io", common=COMMON_PASSWORDS, field="password")
    assert raised.value.field == "password"


def test_common_password_is_refused_whatever_its_case() -> None:
    with pytest.raises(InvalidField, match="common"):
        check_password("PassWord1", email="a@x.io", common=COMMON_PASSWORDS, field="password")


def test_password_equal_to_the_email_is_refused_whatever_its_case() -> None:
    with pytest.raises(InvalidField, match="email") as raised:
        check_password(
            " Ada@Example.io ", email="ada@example.io", common=COMMON_PASSWORDS, field="new"
        )
    assert raised.value.field == "new"


def test_password_error_names_the_field_it_was_given() -> None:
    with pytest.raises(InvalidField) as raised:
        check_password("short", email="a@x.io", common=(), field="new_password")
    assert raised.value.field == "new_password"


def test_admin_holds_every_permission() -> None:
    assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(Permission)


def test_user_reads_and_writes_only_their_own_todos() -> None:
    assert ROLE_PERMISSIONS[Role.USER] == {Permission.TODOS_READ, Permission.TODOS_WRITE}


def test_guest_only_reads() -> None:
    assert ROLE_PERMISSIONS[Role.GUEST] == {Permission.TODOS_READ}


def test_user_permissions_follow_the_role() -> None:
    assert a_user(role=Role.GUEST).permissions == ROLE_PERMISSIONS[Role.GUEST]
    assert a_user(role=Role.ADMIN).permissions == ROLE_PERMISSIONS[Role.ADMIN]


@pytest.mark.parametrize(
    ("role", "is_active", "expected"),
    [
        (Role.ADMIN, True, True),
        (Role.ADMIN, False, False),
        (Role.USER, True, False),
        (Role.GUEST, True, False),
    ],
)
def test_only_an_active_admin_counts_as_active_admin(
    role: Role, is_active: bool, expected: bool
) -> None:
    assert a_user(role=role, is_active=is_active).is_active_admin is expected


def test_apply_sets_fields_and_updated_at_only() -> None:
    user = a_user(full_name="Ada")
    later = user.updated_at + timedelta(minutes=5)

    changed = user.apply(UserChanges(full_name="Ada Lovelace"), later)

    assert changed.full_name == "Ada Lovelace"
    assert changed.updated_at == later
    assert (changed.id, changed.email, changed.created_at) == (
        user.id,
        user.email,
        user.created_at,
    )


def test_actor_of_a_user_carries_id_role_session_and_permissions() -> None:
    user = a_user(role=Role.USER)
    session_id = uuid4()

    actor = Actor.of(user, session_id=session_id)

    assert (actor.user_id, actor.role, actor.session_id) == (user.id, Role.USER, session_id)
    assert actor.permissions == user.permissions
    assert actor.can(Permission.TODOS_WRITE)
    assert not actor.can(Permission.USERS_MANAGE)


def test_actor_require_raises_permission_denied_without_the_permission() -> None:
    actor = Actor.of(a_user(role=Role.GUEST))

    actor.require(Permission.TODOS_READ)
    with pytest.raises(PermissionDenied):
        actor.require(Permission.TODOS_WRITE)


def test_actor_permissions_are_explicit_never_inferred_from_the_role_name() -> None:
    actor = Actor(user_id=uuid4(), role=Role.ADMIN)

    assert not actor.can(Permission.TODOS_READ)


# Look-alike emails are one account: NFKC and case folding


@pytest.mark.parametrize(
    "email",
    [
        "a@x.io",
        "A@X.IO",
        "\uff41@x.io",  # fullwidth a
        "\uff21\uff20x.io",  # fullwidth A and fullwidth @
        " a@x.io\u3000",  # ideographic space around it
    ],
)
def test_look_alike_emails_normalise_to_one(email: str) -> None:
    assert normalise_email(email) == "a@x.io"


def test_a_decomposed_email_normalises_to_the_composed_one() -> None:
    composed = "caf\u00e9@x.io"
    assert normalise_email("cafe\u0301@x.io") == normalise_email("CAF\u00c9@x.io") == composed


def test_case_folding_goes_beyond_lower_casing() -> None:
    assert normalise_email("Stra\u00dfe@x.io") == normalise_email("STRASSE@x.io") == "strasse@x.io"
    assert normalise_email("\u212a@x.io") == "k@x.io"  # the Kelvin sign


def test_the_normalised_email_is_composed_and_normalises_to_itself() -> None:
    for email in ("\u01f0@x.io", "\u0390@x.io", "\ufb01@x.io", "cafe\u0301@X.io"):
        once = normalise_email(email)
        assert normalise_email(once) == once
        assert unicodedata.is_normalized("NFKC", once)


def test_password_equal_to_a_look_alike_of_the_email_is_refused() -> None:
    with pytest.raises(InvalidField, match="email"):
        check_password("\uff41da@example.io", email="ada@example.io", common=(), field="password")


def test_a_user_search_matches_stored_emails_in_their_normal_form() -> None:
    assert UserFilter(text="\uff21DA").email_text == "ada"
    assert UserFilter(text=" ").email_text == " "  # nothing to normalise to: matches no email
    assert UserFilter().email_text is None


def test_an_email_change_is_stored_normalised() -> None:
    user = a_user(email="ada@x.io")
    changed = user.apply(UserChanges(email="\uff22OB@x.io"), user.updated_at + timedelta(1))
    assert changed.email == "bob@x.io"
    assert user.apply(UserChanges(email="\uff21DA@X.io"), user.updated_at) is user  # no change
