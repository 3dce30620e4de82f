"""The well-known common-password list: zxcvbn's 30 000 most used passwords (from leaks)."""

from functools import cache

from zxcvbn.frequency_lists import FREQUENCY_LISTS


@cache
def common_passwords() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])
