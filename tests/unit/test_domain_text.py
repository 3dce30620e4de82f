"""The text rule in app/domain/text.py: NFC, without zero-width or bidirectional controls."""

import unicodedata

import pytest

from app.domain.text import BIDI_CONTROLS, ZERO_WIDTH, clean_text

NFC_CAFE = "caf\u00e9"
NFD_CAFE = "cafe\u0301"


def test_a_decomposed_accent_is_composed() -> None:
    assert clean_text(NFD_CAFE) == NFC_CAFE


@pytest.mark.parametrize("character", list(ZERO_WIDTH))
def test_every_zero_width_character_is_removed(character: str) -> None:
    assert clean_text(f"wo{character}rk") == "work"


@pytest.mark.parametrize("character", list(BIDI_CONTROLS))
def test_every_bidirectional_control_is_removed(character: str) -> None:
    assert clean_text(f"invoice{character}fdp.exe") == "invoicefdp.exe"


def test_the_rule_covers_the_listed_code_points() -> None:
    listed = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD}
    listed |= {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
    assert {ord(c) for c in ZERO_WIDTH + BIDI_CONTROLS} >= listed


def test_a_removed_character_does_not_keep_an_accent_from_composing() -> None:
    assert clean_text("cafe\u200b\u0301") == NFC_CAFE


def test_other_text_is_kept_as_it_is() -> None:
    text = "Buy milk, 2 \u00d7 oat \u2014 \u00ff \u65e5\u672c \U0001f600 \uff41"  # NFC keeps \uff41
    assert clean_text(text) == text


def test_clean_text_is_idempotent_and_its_result_is_nfc() -> None:
    for text in (NFD_CAFE, "e\u200b\u0301\u202e", "\u1100\u200d\u1161", "a\u0328\u0301"):
        once = clean_text(text)
        assert clean_text(once) == once
        assert unicodedata.is_normalized("NFC", once)
