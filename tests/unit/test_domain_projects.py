"""Projects' rules: names, colours, versions, and who may do what with which role."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from app.domain.activity import changes_between, json_value
from app.domain.common import UNSET
from app.domain.errors import InvalidField, PermissionDenied, ProjectNotFound
from app.domain.projects import (
    Invitation,
    Project,
    ProjectChanges,
    ProjectDraft,
    ProjectRole,
    require_owner,
    require_read,
    require_todo_write,
)
from app.domain.todos import Priority
from app.domain.users import ROLE_PERMISSIONS, Actor, Permission, Role

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _actor(role: Role, *extra: Permission) -> Actor:
    return Actor(uuid4(), role, permissions=ROLE_PERMISSIONS[role] | set(extra))


def test_a_name_is_cleaned_and_trimmed_and_must_keep_a_character() -> None:
    assert ProjectDraft(name="  Ho\u200bme ").name == "Home"
    with pytest.raises(InvalidField, match="Name"):
        ProjectDraft(name=" \u200b ")
    with pytest.raises(InvalidField):
        ProjectDraft(name="x" * 101)


def test_a_colour_is_hex_rgb_stored_lower_case() -> None:
    assert ProjectDraft(name="p", color="#A0B1C2").color == "#a0b1c2"
    for bad in ("red", "#abc", "#abcdeg", "a0b1c2"):
        with pytest.raises(InvalidField, match="Color"):
            ProjectDraft(name="p", color=bad)


def test_a_change_bumps_the_version_and_a_no_op_keeps_it() -> None:
    project = Project.new(ProjectDraft(name="Home"), id=uuid4(), owner_id=uuid4(), now=NOW)
    later = NOW + timedelta(minutes=1)
    assert project.apply(ProjectChanges(name=" Home "), later) is project
    assert project.apply(ProjectChanges(color=UNSET), later) is project
    renamed = project.apply(ProjectChanges(name="House", color="#FFFFFF"), later)
    assert (renamed.version, renamed.updated_at, renamed.color) == (2, later, "#ffffff")
    assert changes_between(project, renamed, ("name", "description", "color")) == {
        "name": {"from": "Home", "to": "House"},
        "color": {"from": None, "to": "#ffffff"},
    }


def test_the_inbox_is_marked_and_named() -> None:
    inbox = Project.inbox(id=uuid4(), owner_id=uuid4(), now=NOW)
    assert (inbox.name, inbox.is_inbox, inbox.version) == ("Inbox", True, 1)


def test_an_invitation_never_makes_an_owner() -> None:
    with pytest.raises(InvalidField, match="role"):
        Invitation(uuid4(), uuid4(), ProjectRole.OWNER, None, "h", uuid4(), NOW, NOW)


def test_values_in_changes_are_what_the_api_shows() -> None:
    project_id = uuid4()
    assert json_value(NOW) == "2026-01-01T00:00:00+00:00"
    assert json_value(Priority.HIGH) == "high"
    assert json_value(project_id) == str(project_id)
    assert json_value(("a", "b")) == ["a", "b"]


USER, GUEST = _actor(Role.USER), _actor(Role.GUEST)
ADMIN = _actor(Role.ADMIN)
READER = _actor(Role.USER, Permission.TODOS_READ_ALL)


@pytest.mark.parametrize("actor", [USER, GUEST, ADMIN, READER])
def test_a_member_reads_whatever_their_global_role(actor: Actor) -> None:
    for role in ProjectRole:
        require_read(actor, role, missing=ProjectNotFound)


def test_a_non_member_learns_nothing_unless_they_read_all() -> None:
    for actor in (USER, GUEST):
        with pytest.raises(ProjectNotFound):
            require_read(actor, None, missing=ProjectNotFound)
    require_read(READER, None, missing=ProjectNotFound)
    require_read(ADMIN, None, missing=ProjectNotFound)


def test_todos_are_written_by_owners_and_editors_with_todos_write() -> None:
    require_todo_write(USER, ProjectRole.OWNER, missing=ProjectNotFound)
    require_todo_write(USER, ProjectRole.EDITOR, missing=ProjectNotFound)
    with pytest.raises(PermissionDenied):
        require_todo_write(USER, ProjectRole.VIEWER, missing=ProjectNotFound)
    with pytest.raises(PermissionDenied):  # a guest is read-only whatever their role
        require_todo_write(GUEST, ProjectRole.EDITOR, missing=ProjectNotFound)
    with pytest.raises(ProjectNotFound):
        require_todo_write(USER, None, missing=ProjectNotFound)
    with pytest.raises(PermissionDenied):  # reads everyone's, writes only as a member
        require_todo_write(READER, None, missing=ProjectNotFound)
    require_todo_write(ADMIN, None, missing=ProjectNotFound)  # todos:write_all


def test_an_owners_actions_are_the_owners_alone() -> None:
    require_owner(USER, ProjectRole.OWNER, missing=ProjectNotFound)
    for role in (ProjectRole.EDITOR, ProjectRole.VIEWER):
        with pytest.raises(PermissionDenied):
            require_owner(USER, role, missing=ProjectNotFound)
    with pytest.raises(PermissionDenied):  # todos:write_all grants no owner's action
        require_owner(ADMIN, None, missing=ProjectNotFound)
    with pytest.raises(PermissionDenied):
        require_owner(GUEST, ProjectRole.OWNER, missing=ProjectNotFound)
    with pytest.raises(ProjectNotFound):
        require_owner(USER, None, missing=ProjectNotFound)
