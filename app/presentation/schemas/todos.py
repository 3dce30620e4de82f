from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from app.application.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.domain.text import clean_text
from app.domain.todos import (
    DESCRIPTION_MAX_LENGTH,
    MAX_TAGS,
    TAG_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Priority,
    SortField,
    SortKey,
    clean_tag,
    clean_title,
    parse_sort,
)
from app.presentation.schemas.common import (
    NO_NUL,
    RequestBody,
    RequestDatetime,
    normalised_by,
    not_null,
    read_only_of,
)

# White space as Python's str.strip() (which the domain trims with) sees it: Unicode's, and
# \x1c-\x1f. A title or tag needs something else, and no NUL (see NO_NUL), so the schema, and
# clients generated from it, know that "  " is no title. The domain cleans the text (NFC, no
# zero-width or bidirectional controls) and trims it (and lower-cases a tag) before the lengths
# and the pattern are checked, so a title of zero-width spaces alone is no title either.
_WHITE_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = rf"^[^\x00]*[^\x00{_WHITE_SPACE}][^\x00]*$"
Title = Annotated[
    str,
    StringConstraints(min_length=1, max_length=TITLE_MAX_LENGTH, pattern=NOT_BLANK),
    normalised_by(clean_title),
]
Description = Annotated[
    str,
    StringConstraints(max_length=DESCRIPTION_MAX_LENGTH, pattern=NO_NUL),
    normalised_by(clean_text),
]
Tag = Annotated[
    str,
    StringConstraints(min_length=1, max_length=TAG_MAX_LENGTH, pattern=NOT_BLANK),
    normalised_by(clean_tag),
]
# A `q` search, cleaned like the text it searches so that it finds what was stored.
SearchText = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL), normalised_by(clean_text)
]
Tags = Annotated[
    list[Tag],
    Field(
        max_length=MAX_TAGS,
        description="NFC, without zero-width or bidirectional controls, trimmed, lower-cased, "
        "de-duplicated; sorted.",
    ),
]

# Only the known fields, so the schema itself tells a client (and a generator) what may be sent.
_SORT_FIELD = "-?(" + "|".join(field.value for field in SortField) + ")"
SORT_PATTERN = f"^{_SORT_FIELD}(,{_SORT_FIELD})*$"

_EXAMPLE: dict[str, JsonValue] = {
    "title": "Buy milk",
    "description": "Oat, two litres",
    "priority": "high",
    "due_at": "2030-01-31T17:00:00Z",
    "tags": ["errands", "home"],
}


class TodoCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    title: Title
    description: Description = ""
    priority: Priority = Priority.MEDIUM
    due_at: RequestDatetime | None = None
    tags: Tags = Field(default=[])
    completed: StrictBool = False
    project_id: UUID | None = Field(
        default=None,
        description="The project to create it in (you must be its owner or an editor); "
        "by default, your Inbox.",
    )


class TodoUpdate(RequestBody):
    """Only the fields sent change; `due_at: null` clears the due date."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"completed": True}]})

    # SkipJsonSchema: None only stands for "not sent"; an explicit null is refused below.
    title: Title | SkipJsonSchema[None] = None
    description: Description | SkipJsonSchema[None] = None
    priority: Priority | SkipJsonSchema[None] = None
    due_at: RequestDatetime | None = None
    tags: Tags | SkipJsonSchema[None] = None
    completed: StrictBool | SkipJsonSchema[None] = None
    project_id: UUID | SkipJsonSchema[None] = Field(
        default=None,
        description="Moves the todo to this project: you must be its owner or an editor here "
        "and there.",
    )

    _not_null = not_null("title", "description", "priority", "tags", "completed", "project_id")


class TodoRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    project_id: UUID
    owner_id: UUID = Field(description="The owner of the todo's project.")
    created_by: UUID = Field(description="Who made it; never changes.")
    title: str
    description: str
    completed: bool
    completed_at: datetime | None
    priority: Priority
    due_at: datetime | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = Field(description="When it went to the trash; null if live.")
    version: int


TodoCreate.read_only = read_only_of(TodoRead, TodoCreate)
TodoUpdate.read_only = read_only_of(TodoRead, TodoUpdate)


class PriorityCounts(BaseModel):
    low: int
    medium: int
    high: int
    urgent: int


class TodoStatsRead(BaseModel):
    total: int
    completed: int
    open: int
    overdue: int
    by_priority: PriorityCounts


class TodoListParams(BaseModel):
    """Filters combine with AND; `priority` matches any of, `tag` all of."""

    completed: bool | None = None
    priority: list[Priority] = Field(default=[], description="Any of these priorities.")
    tag: list[Tag] = Field(default=[], max_length=MAX_TAGS, description="Has all of these tags.")
    q: SearchText | None = Field(
        default=None,
        description="Case-insensitive substring, cleaned like the text it searches (NFC, "
        "without zero-width or bidirectional controls); nothing left is a 422.",
    )
    due_before: RequestDatetime | None = Field(default=None, description="Due strictly before.")
    due_after: RequestDatetime | None = Field(default=None, description="Due strictly after.")
    overdue: bool | None = Field(default=None, description="Due in the past and not completed.")
    deleted: bool = Field(default=False, description="List the trash instead.")
    project_id: list[UUID] = Field(
        default=[],
        max_length=MAX_PAGE_SIZE,
        description="Only these projects (any of); a project you are not a member of matches "
        "nothing (with `todos:read_all`, any project).",
    )
    owner_id: UUID | None = Field(
        default=None,
        description="Only todos in projects this user owns; another user needs `todos:read_all`.",
    )
    sort: str = Field(
        default="-created_at",
        max_length=200,
        pattern=SORT_PATTERN,
        description="Comma-separated fields of created_at, updated_at, due_at, priority, title; "
        "`-` for descending. Ties are broken by id; nulls sort last.",
        examples=["-priority,due_at"],
    )
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(default=None, max_length=1024)

    @field_validator("sort")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        parse_sort(value)  # raises InvalidField, a ValueError: a 422 naming `sort`
        return value

    @property
    def sort_keys(self) -> tuple[SortKey, ...]:
        return parse_sort(self.sort)
