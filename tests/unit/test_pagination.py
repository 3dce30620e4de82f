"""Keyset cursors: opaque, signed, and bound to the query that made them."""

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest

from app.application.pagination import CursorCodec, paginate
from app.domain.errors import InvalidCursor
from tests.fakes import make_cursor_codec

BINDING = "filters=a|sort=-created_at"


@pytest.fixture
def codec() -> CursorCodec:
    return make_cursor_codec()


def _raw(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_cursor_round_trips_every_kind_of_sort_value(codec: CursorCodec) -> None:
    values = (
        datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
        datetime(2025, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=-4))),
        None,
        3,
        True,
        "Buy milk — ünïcödé",
        uuid4(),
    )

    decoded = codec.decode(codec.encode(values, binding=BINDING), binding=BINDING)

    assert decoded == values
    assert [type(v) for v in decoded] == [type(v) for v in values]


def test_cursor_is_url_safe_text_without_padding(codec: CursorCodec) -> None:
    cursor = codec.encode(("a/b+c?", uuid4()), binding=BINDING)
    assert cursor.isascii()
    assert not set(cursor) & set("+/=")


def test_tampered_payload_is_invalid_cursor(codec: CursorCodec) -> None:
    raw = _raw(codec.encode((1, "x"), binding=BINDING))
    payload, mac = raw[:-16], raw[-16:]
    assert json.loads(payload) == [["v", 1], ["v", "x"]]
    forged = json.dumps([["v", 2], ["v", "x"]], separators=(",", ":")).encode()

    with pytest.raises(InvalidCursor):
        codec.decode(_text(forged + mac), binding=BINDING)


def test_flipped_signature_byte_is_invalid_cursor(codec: CursorCodec) -> None:
    raw = bytearray(_raw(codec.encode((1,), binding=BINDING)))
    raw[-1] ^= 0x01

    with pytest.raises(InvalidCursor):
        codec.decode(_text(bytes(raw)), binding=BINDING)


def test_cursor_bound_to_other_filters_is_invalid_cursor(codec: CursorCodec) -> None:
    cursor = codec.encode((1, uuid4()), binding=BINDING)

    with pytest.raises(InvalidCursor):
        codec.decode(cursor, binding="filters=b|sort=-created_at")


def test_cursor_signed_with_another_secret_is_invalid_cursor(codec: CursorCodec) -> None:
    cursor = make_cursor_codec(b"another secret").encode((1,), binding=BINDING)

    with pytest.raises(InvalidCursor):
        codec.decode(cursor, binding=BINDING)


@pytest.mark.parametrize(
    "garbage",
    ["", "x", "not a cursor", "!!!!", "====", "é", "AAAA", "A" * 40, "null", "W10"],
)
def test_garbage_is_invalid_cursor(codec: CursorCodec, garbage: str) -> None:
    with pytest.raises(InvalidCursor):
        codec.decode(garbage, binding=BINDING)


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"a": 1}', b'[["x", 1]]', b'[["d", "not a date"]]', b'[["u", "nope"]]'],
)
def test_correctly_signed_but_malformed_payload_is_invalid_cursor(
    codec: CursorCodec, payload: bytes
) -> None:
    # Only the server can sign; this pins that a bad payload still ends as InvalidCursor.
    cursor = _text(payload + codec._mac(payload, BINDING))

    with pytest.raises(InvalidCursor):
        codec.decode(cursor, binding=BINDING)


def test_value_of_an_unsupported_type_cannot_be_encoded(codec: CursorCodec) -> None:
    with pytest.raises(TypeError):
        codec.encode((1.5,), binding=BINDING)


def test_short_page_has_no_next_cursor(codec: CursorCodec) -> None:
    page = paginate([1, 2, 3], limit=3, cursors=codec, binding=BINDING, sort_values=lambda n: (n,))

    assert list(page.items) == [1, 2, 3]
    assert page.next_cursor is None


def test_extra_row_means_a_next_cursor_resuming_after_the_last_item(codec: CursorCodec) -> None:
    page = paginate(
        [1, 2, 3, 4], limit=3, cursors=codec, binding=BINDING, sort_values=lambda n: (n, "id")
    )

    assert list(page.items) == [1, 2, 3]
    assert page.next_cursor is not None
    assert codec.decode(page.next_cursor, binding=BINDING) == (3, "id")
