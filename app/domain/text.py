"""The one rule for text people type into the service and others read back (titles,
descriptions, tags, and the searches for them): one spelling for what looks alike."""

import unicodedata

from app.domain.errors import InvalidField

# Invisible characters that make two texts look the same while comparing different
# (`wo\u200brk` beside `work`) or show one text as another (a right-to-left override).
ZERO_WIDTH = (
    "\u00ad"  # soft hyphen: invisible unless a line breaks at it, so it only disguises
    "\u180e"  # Mongolian vowel separator (zero-width since Unicode 6.3)
    "\u200b\u200c\u200d"  # zero-width space, non-joiner, joiner
    "\u2060\u2061\u2062\u2063\u2064"  # word joiner and the invisible operators
    "\ufeff"  # zero-width no-break space (a byte-order mark)
)
BIDI_CONTROLS = (
    "\u061c"  # Arabic letter mark
    "\u200e\u200f"  # left-to-right and right-to-left marks
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings, pop, overrides
    "\u2066\u2067\u2068\u2069"  # isolates
)
_REMOVED = dict.fromkeys(map(ord, ZERO_WIDTH + BIDI_CONTROLS))


def clean_text(text: str) -> str:
    """`text` NFC-normalised, without zero-width or bidirectional control characters.

    They are removed first: one between a letter and its combining accent would keep the
    two from composing. Idempotent, so a stored text cleans to itself."""
    return unicodedata.normalize("NFC", text.translate(_REMOVED))


def clean_description(description: str, *, max_length: int) -> str:
    """A description (a todo's, a project's) cleaned, and at most `max_length` characters."""
    description = clean_text(description)
    if len(description) > max_length:
        raise InvalidField("description", f"Description must be at most {max_length} characters.")
    return description
