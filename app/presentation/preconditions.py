"""Conditional request headers (RFC 9110 §13): `If-Match` and `If-None-Match` parsed strictly,
so that a malformed one (an unquoted `2`) is a 400 the client can act on, never a silent 412
or a needless full response."""

import re

from app.presentation.errors import HTTPProblem

# An entity tag (RFC 9110 §8.8.3): optionally weak, then opaque characters in double quotes;
# a header holds `*` or a comma-separated list of them (a comma may sit inside a tag).
_ENTITY_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
_TAG_LIST = re.compile(rf"[ \t]*{_ENTITY_TAG}(?:[ \t]*,[ \t]*{_ENTITY_TAG})*[ \t]*")
# For the OpenAPI document, so that generated clients and fuzzers send well-formed headers
# (ASCII only, as header values should be).
_ASCII_TAG = r'(W/)?"[\x21\x23-\x7e]*"'
TAG_LIST_PATTERN = rf"^(\*|{_ASCII_TAG}(, ?{_ASCII_TAG})*)$"


def entity_tags(header: str, *, name: str) -> list[str] | None:
    """The header's tags, weak ones as `W/"…"`; None for `*` (any); a 400 `invalid_precondition`
    when it is neither `*` nor a comma-separated list of entity tags."""
    value = header.strip()
    if value == "*":
        return None
    if not _TAG_LIST.fullmatch(value):
        raise HTTPProblem(
            400,
            "invalid_precondition",
            f'Malformed {name}: send "*" or entity tags in double quotes, e.g. {name}: "3".',
        )
    return re.findall(_ENTITY_TAG, value)


def expected_version(if_match: str | None) -> int | None:
    """The version If-Match demands; None for no header or `*`; -1 (never matches) for a tag
    we did not issue, a weak one (If-Match compares strongly, RFC 9110 §13.1.1) or a list."""
    if if_match is None:
        return None
    tags = entity_tags(if_match, name="If-Match")
    if tags is None:
        return None
    if len(tags) == 1 and tags[0][1:-1].isdigit():
        return int(tags[0][1:-1])
    return -1


def none_match(if_none_match: str | None, current: str) -> bool:
    """Whether If-None-Match names the current tag (compared weakly, RFC 9110 §13.1.2) or `*`."""
    if if_none_match is None:
        return False
    tags = entity_tags(if_none_match, name="If-None-Match")
    return tags is None or current in {tag.removeprefix("W/") for tag in tags}
