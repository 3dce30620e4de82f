"""Opaque, tamper-evident keyset cursors, bound to the filters and sort they were made for."""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

from app.application.ports import SortValues
from app.domain.errors import InvalidCursor

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
        return Page(rows, None)
    items = rows[:limit]
    return Page(items, cursors.encode(sort_values(items[-1]), binding=binding))
