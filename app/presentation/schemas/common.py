"""Shapes shared by every feature: the problem document and the page envelope."""

from http import HTTPStatus
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

T = TypeVar("T")

# Text without NUL (U+0000), which PostgreSQL text cannot hold: refused at the edge, with a 422
# naming the field, so both backends answer alike and the schema says so.
NO_NUL = r"^[^\x00]*$"


class FieldError(BaseModel):
    field: str = Field(examples=["body.title"])
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable `code` to switch on."""

    model_config = ConfigDict(title="Problem")

    type: str = Field(default="about:blank")
    title: str
    status: int
    detail: str
    instance: str
    code: str = Field(examples=["todo_not_found"])
    request_id: str | None
    errors: list[FieldError] | None = None


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass back as `cursor`, with the same filters and sort, for the next page; "
        "null on the last page."
    )


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting error statuses as problem+json."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }


# Errors any authenticated /api/v1 route can answer.
AUTHENTICATED = (401, 415, 422, 429, 503)


def _refuse_null(value: object) -> object:
    if value is None:
        raise ValueError("may not be null")
    return value


def not_null(*fields: str) -> Any:
    """For partial updates: these fields may be left out, but not sent as null.

    Pair with `X | SkipJsonSchema[None] = None` so the schema shows them as non-nullable.
    """
    return field_validator(*fields, mode="before")(_refuse_null)
