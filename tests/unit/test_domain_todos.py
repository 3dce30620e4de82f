"""Todos: the rules in app/domain/todos.py, whoever changes a todo and however."""

from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest

from app.domain.common import UNSET
from app.domain.errors import InvalidField
from app.domain.todos import (
    DEFAULT_SORT,
    DESCRIPTION_MAX_LENGTH,
    MAX_TAGS,
    TAG_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Priority,
    SortField,
    SortKey,
    Todo,
    TodoChanges,
    TodoDraft,
    check_aware,
    normalise_tags,
    normalise_title,
    parse_sort,
)
from tests.fakes import a_todo as stored_todo

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def a_todo(
    *,
    description: str = "",
    priority: Priority = Priority.MEDIUM,
    due_at: datetime | None = None,
    tags: tuple[str, ...] = (),
    completed: bool = False,
) -> Todo:
    draft = TodoDraft(
        title="Buy milk",
        description=description,
        priority=priority,
        due_at=due_at,
        tags=tags,
        completed=completed,
    )
    return stored_todo(uuid4(), NOW, draft)


# Titles


def test_title_is_trimmed() -> None:
    assert normalise_title("  Buy milk \n") == "Buy milk"


@pytest.mark.parametrize("title", ["", "   ", "\t\n"])
def test_blank_title_is_refused(title: str) -> None:
    with pytest.raises(InvalidField) as raised:
        normalise_title(title)
    assert raised.value.field == "title"


def test_title_length_is_counted_after_trimming() -> None:
    longest = "x" * TITLE_MAX_LENGTH
    assert normalise_title(f"  {longest}  ") == longest
    with pytest.raises(InvalidField):
        normalise_title(longest + "x")


# Descriptions


def test_description_up_to_the_limit_is_kept_verbatim() -> None:
    description = " padded " * (DESCRIPTION_MAX_LENGTH // 8)
    assert len(description) <= DESCRIPTION_MAX_LENGTH
    assert TodoDraft(title="t", description=description).description == description


def test_description_over_the_limit_is_refused() -> None:
    with pytest.raises(InvalidField) as raised:
        TodoDraft(title="t", description="x" * (DESCRIPTION_MAX_LENGTH + 1))
    assert raised.value.field == "description"


# Tags


def test_tags_are_trimmed_lower_cased_deduplicated_and_sorted() -> None:
    assert normalise_tags([" Work", "home ", "WORK", "errands"]) == ("errands", "home", "work")


@pytest.mark.parametrize("tag", ["", "   ", "x" * (TAG_MAX_LENGTH + 1)])
def test_tag_outside_the_length_bounds_is_refused(tag: str) -> None:
    with pytest.raises(InvalidField) as raised:
        normalise_tags(["ok", tag])
    assert raised.value.field == "tags"


def test_tag_of_the_maximum_length_is_accepted() -> None:
    assert normalise_tags(["x" * TAG_MAX_LENGTH]) == ("x" * TAG_MAX_LENGTH,)


def test_more_than_the_maximum_number_of_tags_is_refused() -> None:
    with pytest.raises(InvalidField):
        normalise_tags(f"t{i}" for i in range(MAX_TAGS + 1))


def test_tag_limit_counts_tags_after_deduplication() -> None:
    tags = [f"t{i}" for i in range(MAX_TAGS)] + ["T0", " t1 "]
    assert len(normalise_tags(tags)) == MAX_TAGS


# Priority


def test_priority_ranks_by_urgency_not_by_name() -> None:
    by_rank = sorted(Priority, key=lambda p: p.rank)
    assert by_rank == [Priority.LOW, Priority.MEDIUM, Priority.HIGH, Priority.URGENT]
    assert sorted(Priority) != by_rank  # alphabetical order would be wrong


def test_priority_from_rank_inverts_rank() -> None:
    assert all(Priority.from_rank(p.rank) is p for p in Priority)


# Datetimes


def test_naive_datetime_is_refused_naming_its_field() -> None:
    with pytest.raises(InvalidField) as raised:
        check_aware(datetime(2025, 1, 1, 9, 0), "due_at")  # noqa: DTZ001
    assert raised.value.field == "due_at"


def test_aware_datetime_is_converted_to_utc_keeping_the_instant() -> None:
    paris = datetime(2025, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=2)))

    converted = check_aware(paris, "due_at")

    assert converted == paris
    assert converted is not None
    assert converted.tzinfo is UTC
    assert converted.hour == 7


def test_none_datetime_stays_none() -> None:
    assert check_aware(None, "due_at") is None


# Drafts and new todos


def test_draft_normalises_every_field() -> None:
    due = datetime(2025, 6, 1, 18, 0, tzinfo=timezone(timedelta(hours=-5)))

    draft = TodoDraft(title="  Plan trip ", tags=("Travel", "travel ", "Home"), due_at=due)

    assert draft.title == "Plan trip"
    assert draft.tags == ("home", "travel")
    assert draft.due_at == due
    assert draft.due_at is not None
    assert draft.due_at.tzinfo is UTC


def test_draft_defaults() -> None:
    draft = TodoDraft(title="t")
    assert (draft.description, draft.priority, draft.due_at, draft.tags, draft.completed) == (
        "",
        Priority.MEDIUM,
        None,
        (),
        False,
    )


def test_draft_with_naive_due_at_is_refused() -> None:
    with pytest.raises(InvalidField):
        TodoDraft(title="t", due_at=datetime(2025, 1, 1))  # noqa: DTZ001


def test_new_todo_starts_at_version_one_open_and_live() -> None:
    todo = a_todo()

    assert todo.version == 1
    assert not todo.completed
    assert todo.completed_at is None
    assert todo.created_at == todo.updated_at == NOW
    assert not todo.is_deleted


def test_new_completed_todo_is_stamped_completed_now() -> None:
    assert a_todo(completed=True).completed_at == NOW


# apply()


def test_completing_sets_completed_at_and_bumps_the_version() -> None:
    todo = a_todo()

    done = todo.apply(TodoChanges(completed=True), LATER)

    assert done.completed
    assert done.completed_at == LATER
    assert done.updated_at == LATER
    assert done.version == todo.version + 1


def test_reopening_clears_completed_at() -> None:
    done = a_todo(completed=True)

    reopened = done.apply(TodoChanges(completed=False), LATER)

    assert not reopened.completed
    assert reopened.completed_at is None
    assert reopened.version == done.version + 1


def test_completing_a_completed_todo_keeps_its_first_completed_at() -> None:
    done = a_todo(completed=True)

    again = done.apply(TodoChanges(completed=True), LATER)

    assert again.completed_at == NOW
    assert again.version == done.version


def test_no_op_change_keeps_the_version_and_updated_at() -> None:
    todo = a_todo(tags=("home",), priority=Priority.HIGH)

    same = todo.apply(
        TodoChanges(title=" Buy milk ", tags=("HOME",), priority=Priority.HIGH), LATER
    )

    assert same is todo
    assert same.version == 1
    assert same.updated_at == NOW


def test_empty_changes_are_a_no_op() -> None:
    todo = a_todo()
    assert todo.apply(TodoChanges(), LATER) is todo


def test_each_real_change_bumps_the_version_by_exactly_one() -> None:
    todo = a_todo()

    changed = todo.apply(
        TodoChanges(title="Buy oat milk", description="2 l", priority=Priority.URGENT), LATER
    )

    assert changed.version == 2
    assert (changed.title, changed.description, changed.priority) == (
        "Buy oat milk",
        "2 l",
        Priority.URGENT,
    )
    assert changed.created_at == NOW
    assert changed.updated_at == LATER


def test_changes_are_normalised_like_a_draft() -> None:
    changed = a_todo().apply(TodoChanges(title="  New  ", tags=(" B", "a", "b")), LATER)
    assert changed.title == "New"
    assert changed.tags == ("a", "b")


def test_invalid_change_is_refused() -> None:
    with pytest.raises(InvalidField):
        a_todo().apply(TodoChanges(title="   "), LATER)


def test_description_can_be_cleared() -> None:
    todo = a_todo(description="details")
    assert todo.apply(TodoChanges(description=""), LATER).description == ""


def test_unset_due_at_keeps_it_and_none_clears_it() -> None:
    due = NOW + timedelta(days=1)
    todo = a_todo(due_at=due)

    assert todo.apply(TodoChanges(due_at=UNSET), LATER).due_at == due
    assert todo.apply(TodoChanges(due_at=None), LATER).due_at is None


def test_changed_due_at_is_converted_to_utc() -> None:
    due = datetime(2025, 4, 1, 8, 0, tzinfo=timezone(timedelta(hours=9)))

    changed = a_todo().apply(TodoChanges(due_at=due), LATER)

    assert changed.due_at == due
    assert changed.due_at is not None
    assert changed.due_at.tzinfo is UTC


def test_naive_due_at_change_is_refused() -> None:
    with pytest.raises(InvalidField):
        a_todo().apply(TodoChanges(due_at=datetime(2025, 4, 1)), LATER)  # noqa: DTZ001


# Trash


def test_trashing_and_restoring_each_bump_the_version() -> None:
    todo = a_todo()

    trashed = todo.trashed(LATER)
    restored = trashed.restored(LATER + timedelta(minutes=1))

    assert trashed.is_deleted
    assert trashed.deleted_at == LATER
    assert trashed.version == 2
    assert not restored.is_deleted
    assert restored.version == 3


def test_restoring_a_live_todo_is_a_no_op() -> None:
    todo = a_todo()
    assert todo.restored(LATER) is todo


# Overdue


def test_overdue_means_due_in_the_past_and_not_completed() -> None:
    past, future = NOW - timedelta(hours=1), NOW + timedelta(hours=1)

    assert a_todo(due_at=past).is_overdue(NOW)
    assert not a_todo(due_at=future).is_overdue(NOW)
    assert not a_todo(due_at=past, completed=True).is_overdue(NOW)
    assert not a_todo().is_overdue(NOW)


# Sort


def test_parse_sort_reads_fields_and_directions_in_order() -> None:
    assert parse_sort("-priority, due_at") == (
        SortKey(field=SortField.PRIORITY, descending=True),
        SortKey(field=SortField.DUE_AT, descending=False),
    )


def test_default_sort_is_newest_first() -> None:
    assert (SortKey(field=SortField.CREATED_AT, descending=True),) == DEFAULT_SORT


@pytest.mark.parametrize("spec", ["colour", "-owner_id", "title,bogus", "Title"])
def test_unknown_sort_field_is_refused_naming_sort(spec: str) -> None:
    with pytest.raises(InvalidField) as raised:
        parse_sort(spec)
    assert raised.value.field == "sort"


@pytest.mark.parametrize("spec", ["title,title", "title,-title", "-due_at,priority,due_at"])
def test_repeated_sort_field_is_refused(spec: str) -> None:
    with pytest.raises(InvalidField, match="twice"):
        parse_sort(spec)


# Look-alike text: NFC, zero-width and bidirectional controls removed


@pytest.mark.parametrize("title", ["\u200b", "\u200b\u200d\ufeff", " \u2060 ", "\u202e\u202c"])
def test_a_title_of_invisible_characters_alone_is_refused_naming_title(title: str) -> None:
    with pytest.raises(InvalidField) as raised:
        TodoDraft(title=title)
    assert raised.value.field == "title"
    with pytest.raises(InvalidField) as raised:
        a_todo().apply(TodoChanges(title=title), LATER)
    assert raised.value.field == "title"


def test_bidirectional_overrides_are_stripped_from_title_and_description() -> None:
    draft = TodoDraft(title="Pay \u202einvoice\u202c", description="\u2067see\u2069 \u200fthis")
    assert (draft.title, draft.description) == ("Pay invoice", "see this")
    changed = a_todo().apply(TodoChanges(title="\u202dNew", description="a\u202eb"), LATER)
    assert (changed.title, changed.description) == ("New", "ab")


def test_title_and_description_are_stored_composed() -> None:
    draft = TodoDraft(title="Cafe\u0301", description="cre\u0300me bru\u0302le\u0301e")
    assert draft.title == "Caf\u00e9"
    assert draft.description == "cr\u00e8me br\u00fbl\u00e9e"


def test_tags_that_differ_only_in_composition_or_invisible_characters_are_one() -> None:
    tags = ("caf\u00e9", "cafe\u0301", "CAFE\u0301", "wo\u200brk", "work", "\u2066work\u2069")
    assert normalise_tags(tags) == ("caf\u00e9", "work")


def test_a_tag_of_invisible_characters_alone_is_refused_naming_tags() -> None:
    with pytest.raises(InvalidField) as raised:
        normalise_tags(("home", "\u200b\u00ad"))
    assert raised.value.field == "tags"


def test_the_length_limits_count_the_cleaned_text() -> None:
    title = "x" * TITLE_MAX_LENGTH + "\u200b" * 10
    assert normalise_title(title) == "x" * TITLE_MAX_LENGTH
    assert normalise_tags(["t" * TAG_MAX_LENGTH + "\u200b"]) == ("t" * TAG_MAX_LENGTH,)
