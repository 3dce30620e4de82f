"""Opaque, tamper-evident keyset cursors, bound to the filters and sort they were made for."""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from uuid import UUID

from app.application.ports import SortValues
from app.domain.errors import InvalidCursor


class DataclassInstance(Protocol):
    """Any dataclass instance, as `dataclasses.fields` takes it."""

    __dataclass_fields__: ClassVar[dict[str, Any]]


T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_MAC_BYTES = 16


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


def _pack(value: object) -> list[object]:
    if value is None:
        return ["n"]
    if isinstance(value, datetime):
        return ["d", value.isoformat()]
    if isinstance(value, UUID):
        return ["u", str(value)]
    if isinstance(value, bool | int | str):
        return ["v", value]
    raise TypeError(f"cannot put {type(value).__name__} in a cursor")


def _unpack(item: object) -> object:
    match item:
        case ["n"]:
            return None
        case ["d", str(text)]:
            return datetime.fromisoformat(text)
        case ["u", str(text)]:
            return UUID(text)
        case ["v", bool() | int() | str() as value]:
            return value
    raise ValueError("bad cursor value")


class CursorCodec:
    """Signs cursors with HMAC-SHA256 so a client can neither forge nor edit one."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"todo-api cursor\x00" + secret).digest()

    def _mac(self, payload: bytes, binding: str) -> bytes:
        message = binding.encode() + b"\x00" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, values: SortValues, *, binding: str) -> str:
        payload = json.dumps([_pack(v) for v in values], separators=(",", ":")).encode()
        token = payload + self._mac(payload, binding)
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def decode(self, cursor: str, *, binding: str) -> SortValues:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise InvalidCursor from None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload, binding)):
            raise InvalidCursor
        try:
            items = json.loads(payload)
            return tuple(_unpack(item) for item in items)
        except (ValueError, TypeError):
            raise InvalidCursor from None


@cache
def _field_names(kind: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(field.name for field in fields(kind))


def cursor_binding(query: DataclassInstance, *, sort: Sequence[str] = ()) -> str:
    """A canonical text of a list query, its filters and its sort, that a cursor is signed
    with: it resumes only the query that made it. Sets bind sorted, so equal queries alike."""
    filters = {
        name: sorted(value) if isinstance(value, frozenset) else value
        for name in _field_names(type(query))
        for value in (getattr(query, name),)  # not asdict(): it deep-copies every value
    }
    return json.dumps({"filters": filters, "sort": list(sort)}, sort_keys=True, default=str)


def paginate(
    rows: Sequence[T],
    *,
    limit: int,
    cursors: CursorCodec,
    binding: str,
    sort_values: Callable[[T], SortValues],
) -> Page[T]:
    """Rows were fetched with limit + 1: the extra one only says another page exists."""
    if len(rows) <= limit:
        return Page(items=rows, next_cursor=None)
    items = rows[:limit]
    return Page(items=items, next_cursor=cursors.encode(sort_values(items[-1]), binding=binding))
