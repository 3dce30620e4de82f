"""Shapes shared by every feature: the problem document, the page envelope, and the types
every request validates alike (text without NUL, datetimes)."""

import re
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    field_validator,
    model_validator,
)

from app.domain.common import UNSET, Unset
from app.domain.users import normalise_email

T = TypeVar("T")
V = TypeVar("V")

# Text without NUL (U+0000), which PostgreSQL text cannot hold: refused at the edge, with a 422
# naming the field, so both backends answer alike and the schema says so.
NO_NUL = r"^[^\x00]*$"

_ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")


def _iso_8601_text(value: object) -> object:
    """Pydantic would also read a number as Unix time; docs/http.md promises ISO 8601 text."""
    if not (isinstance(value, str) and _ISO_8601.match(value)):
        raise ValueError("Input should be an ISO 8601 datetime with an offset")
    return value


def _in_utc(value: datetime) -> datetime:
    """Times are stored and compared in UTC. `0001-01-01T00:00:00+14:00` has no UTC form
    (it is in year 0): refused here, naming the field, rather than overflowing in the driver."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("Input should be a datetime within years 1 to 9999 in UTC") from None


# Every datetime a request sends: ISO 8601 text with an offset (a naive one is a 422), in UTC.
RequestDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_8601_text), AfterValidator(_in_utc)]


class RequestBody(BaseModel):
    """A JSON request body. A field it does not declare is refused (`unknown_field`), so a typo
    is never a silent no-op; the fields of the resource's response shape that the body does not
    take (`read_only`) are dropped instead, so a client may send back what it read."""

    model_config = ConfigDict(extra="forbid")
    read_only: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.read_only:
            return {name: value for name, value in data.items() if name not in cls.read_only}
        return data


def read_only_of(response: type[BaseModel], body: type[BaseModel]) -> frozenset[str]:
    """The response shape's fields that the request body does not take."""
    return frozenset(response.model_fields) - frozenset(body.model_fields)


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


def normalised_by(rule: Callable[[str], str]) -> BeforeValidator:
    """Runs the domain's normalisation of a text before the field's constraints see it, so the
    rule is written once; other input passes untouched, for pydantic to refuse."""
    return BeforeValidator(lambda value: rule(value) if isinstance(value, str) else value)


# An email as the service compares it (normalise_email) before it is validated, so what is
# validated is what is stored: a fullwidth `a@x.io` is `a@x.io`, and a form that only becomes an
# invalid or overlong address once normalised is a 422, not a row no login can name.
Email = Annotated[EmailStr, normalised_by(normalise_email)]


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


# Errors any authenticated /api/v1 route can answer (400: two Authorization headers).
AUTHENTICATED = (400, 401, 415, 422, 429, 503)
# The security schemes app/presentation/docs.py publishes: the two ways /docs and generated
# clients may send the one token deps.bearer_token reads.
BEARER_SCHEMES = ("OAuth2PasswordBearer", "HTTPBearer")
# `openapi_extra=` of every route that reads the caller's token (CurrentActor, BearerToken):
# either scheme will do. Declared on the route, as its `responses=` are;
# tests/contract/test_openapi_document.py checks each declaration against the route's answer.
TOKEN_REQUIRED: dict[str, Any] = {"security": [{name: []} for name in BEARER_SCHEMES]}


def _refuse_null(value: object) -> object:
    if value is None:
        raise ValueError("may not be null")
    return value


def not_null(*fields: str) -> Any:
    """For partial updates: these fields may be left out, but not sent as null.

    Pair with `X | SkipJsonSchema[None] = None` so the schema shows them as non-nullable.
    """
    return field_validator(*fields, mode="before")(_refuse_null)


def if_sent(body: BaseModel, name: str, value: V) -> V | Unset:
    """`value` if the request sent field `name`, else UNSET: a partial update changes only
    what was sent, and for a nullable field an explicit null is a change."""
    return value if name in body.model_fields_set else UNSET
