"""Todos: the rules every todo obeys, whoever changes it and however."""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

from app.domain.common import UNSET, Unset
from app.domain.errors import InvalidField
from app.domain.projects import Project
from app.domain.text import clean_description, clean_text

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 10_000
TAG_MAX_LENGTH = 32
MAX_TAGS = 20


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        """Priorities sort by urgency, not by name."""
        return _PRIORITY_RANK[self]

    @classmethod
    def from_rank(cls, rank: int) -> "Priority":
        return _PRIORITY_BY_RANK[rank]


_PRIORITY_RANK = {priority: rank for rank, priority in enumerate(Priority)}
_PRIORITY_BY_RANK = {rank: priority for priority, rank in _PRIORITY_RANK.items()}


def clean_title(title: str) -> str:
    """A title as stored: clean text (see clean_text) without the white space around it."""
    return clean_text(title).strip()


def clean_tag(tag: str) -> str:
    """A tag as stored and matched: clean text, trimmed and lower-cased, so `Work ` is `work`
    and `café` is one tag however its accent was sent."""
    return clean_text(tag.lower()).strip()


def normalise_title(title: str) -> str:
    title = clean_title(title)
    if not 1 <= len(title) <= TITLE_MAX_LENGTH:
        raise InvalidField("title", f"Title must be 1 to {TITLE_MAX_LENGTH} characters.")
    return title


def normalise_description(description: str) -> str:
    return clean_description(description, max_length=DESCRIPTION_MAX_LENGTH)


def normalise_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Cleaned, de-duplicated and sorted, so equal sets compare equal."""
    cleaned = {clean_tag(tag) for tag in tags}
    if any(not 1 <= len(tag) <= TAG_MAX_LENGTH for tag in cleaned):
        raise InvalidField("tags", f"Each tag must be 1 to {TAG_MAX_LENGTH} characters.")
    if len(cleaned) > MAX_TAGS:
        raise InvalidField("tags", f"At most {MAX_TAGS} tags.")
    return tuple(sorted(cleaned))


def check_aware(value: datetime | None, field: str) -> datetime | None:
    """Datetimes must say their offset; they are kept, and returned, in UTC."""
    if value is None:
        return None
    if value.utcoffset() is None:
        raise InvalidField(field, "Datetimes must carry a UTC offset.")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class TodoDraft:
    """What a caller may set on a new todo; everything else is the server's."""

    title: str
    description: str = ""
    priority: Priority = Priority.MEDIUM
    due_at: datetime | None = None
    tags: tuple[str, ...] = ()
    completed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", normalise_title(self.title))
        object.__setattr__(self, "description", normalise_description(self.description))
        object.__setattr__(self, "tags", normalise_tags(self.tags))
        object.__setattr__(self, "due_at", check_aware(self.due_at, "due_at"))


@dataclass(frozen=True, slots=True)
class Todo:
    id: UUID
    project_id: UUID
    owner_id: UUID
    """The owner of the todo's project."""
    created_by: UUID
    """Who made it; never changes."""
    title: str
    description: str
    priority: Priority
    due_at: datetime | None
    tags: tuple[str, ...]
    completed: bool
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int

    @classmethod
    def new(
        cls,
        draft: TodoDraft,
        *,
        id: UUID,
        project_id: UUID,
        owner_id: UUID,
        created_by: UUID,
        now: datetime,
    ) -> "Todo":
        """`owner_id`: the owner of project `project_id`."""
        return cls(
            id=id,
            project_id=project_id,
            owner_id=owner_id,
            created_by=created_by,
            title=draft.title,
            description=draft.description,
            priority=draft.priority,
            due_at=draft.due_at,
            tags=draft.tags,
            completed=draft.completed,
            completed_at=now if draft.completed else None,
            created_at=now,
            updated_at=now,
            deleted_at=None,
            version=1,
        )

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def is_overdue(self, now: datetime) -> bool:
        return not self.completed and self.due_at is not None and self.due_at < now

    def apply(
        self, changes: "TodoChanges", now: datetime, *, project: Project | None = None
    ) -> "Todo":
        """A new version with the changes; completed_at follows completed. `project`: where
        `changes.project_id` moves it (the owner is that project's)."""
        if (project is None) != (changes.project_id is None) or (
            project is not None and project.id != changes.project_id
        ):
            raise ValueError("a move needs the project it moves to")
        updated = replace(
            self,
            project_id=self.project_id if project is None else project.id,
            owner_id=self.owner_id if project is None else project.owner_id,
            title=self.title if changes.title is None else normalise_title(changes.title),
            description=(
                self.description
                if changes.description is None
                else normalise_description(changes.description)
            ),
            priority=changes.priority or self.priority,
            due_at=(
                self.due_at
                if isinstance(changes.due_at, Unset)
                else check_aware(changes.due_at, "due_at")
            ),
            tags=self.tags if changes.tags is None else normalise_tags(changes.tags),
        )
        if changes.completed is not None and changes.completed != self.completed:
            updated = replace(
                updated,
                completed=changes.completed,
                completed_at=now if changes.completed else None,
            )
        return self._bumped(updated, now)

    def trashed(self, now: datetime) -> "Todo":
        return self._bumped(replace(self, deleted_at=now), now)

    def restored(self, now: datetime) -> "Todo":
        return self._bumped(replace(self, deleted_at=None), now)

    def _bumped(self, updated: "Todo", now: datetime) -> "Todo":
        if updated == self:
            return self  # a no-op change is not a new version
        return replace(updated, updated_at=now, version=self.version + 1)


@dataclass(frozen=True, slots=True)
class TodoChanges:
    title: str | None = None
    description: str | None = None
    priority: Priority | None = None
    due_at: datetime | Unset | None = UNSET
    tags: tuple[str, ...] | None = None
    completed: bool | None = None
    project_id: UUID | None = None
    """A move to this project."""


# What `todo.updated` activity names when it changed: everything but bookkeeping.
RECORDED_FIELDS = (
    "project_id",
    "owner_id",
    "title",
    "description",
    "priority",
    "due_at",
    "tags",
    "completed",
    "completed_at",
)


class SortField(StrEnum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    DUE_AT = "due_at"
    PRIORITY = "priority"
    TITLE = "title"


@dataclass(frozen=True, slots=True)
class SortKey:
    field: SortField
    descending: bool

    def __str__(self) -> str:
        """As `sort=` spells it: `-priority`."""
        return f"{'-' if self.descending else ''}{self.field}"


DEFAULT_SORT = (SortKey(field=SortField.CREATED_AT, descending=True),)


def parse_sort(spec: str) -> tuple[SortKey, ...]:
    """'-priority,due_at' → keys; unknown or repeated fields are an error naming `sort`."""
    keys: list[SortKey] = []
    for part in (p.strip() for p in spec.split(",")):
        name = part.removeprefix("-")
        try:
            sort_field = SortField(name)
        except ValueError:
            allowed = ", ".join(f.value for f in SortField)
            raise InvalidField("sort", f"Unknown sort field {name!r}; use {allowed}.") from None
        if any(key.field is sort_field for key in keys):
            raise InvalidField("sort", f"Sort field {name!r} is given twice.")
        keys.append(SortKey(field=sort_field, descending=part.startswith("-")))
    return tuple(keys)


@dataclass(frozen=True, slots=True)
class TodoFilter:
    """A list query's filters; every field narrows the result (AND).

    Which projects it looks in: those `member_id` is a member of, or those `owner_id` owns
    (an admin's `owner_id=`), narrowed to `project_ids` when given; `project_ids` alone (an
    admin with `todos:read_all`) names them outright. A query names at least one of the three.
    """

    member_id: UUID | None = None
    owner_id: UUID | None = None
    project_ids: frozenset[UUID] = frozenset()
    completed: bool | None = None
    priorities: frozenset[Priority] = frozenset()
    tags: tuple[str, ...] = ()
    text: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    overdue: bool | None = None
    deleted: bool = False
