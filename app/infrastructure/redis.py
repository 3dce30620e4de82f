"""The revocation list on Redis, with an in-process twin for the embedded default.

Redis errors become ServiceUnavailable (503): the list guards correctness, so it fails closed
rather than guess.
"""

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.application.ports import AccessCheck
from app.domain.errors import ServiceUnavailable

# A stamp lives this long unless the user changes first; its expiry only costs one re-read.
USER_STAMP_TTL = timedelta(minutes=10)


def _new_stamp() -> str:
    # Random, never a counter: an emptied Redis must not hand out a stamp seen before.
    return secrets.token_hex(8)


@asynccontextmanager
async def _redis_errors() -> AsyncIterator[None]:
    try:
        yield
    except RedisError as exc:
        raise ServiceUnavailable("Redis is unavailable; try again shortly.") from exc


def _ms(ttl: timedelta) -> int:
    return max(1, int(ttl.total_seconds() * 1000))


# One round trip, one command (a pipeline of two costs twice the client's time): whether any
# key is revoked, and the user's stamp, the one there or ours, claimed now.
_CHECK = """
local revoked = redis.call('EXISTS', unpack(KEYS, 2))
local stamp = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'PX', ARGV[2])
return {revoked, stamp or ARGV[1]}
"""


class RedisRevocationList:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._check = redis.register_script(_CHECK)

    async def revoke(self, *keys: str, ttl: timedelta) -> None:
        async with _redis_errors(), self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(f"revoked:{key}", 1, px=_ms(ttl))
            await pipe.execute()

    async def check(self, *keys: str, user_id: UUID) -> AccessCheck:
        names = [f"user-stamp:{user_id}", *(f"revoked:{key}" for key in keys)]
        stamp = _new_stamp()
        async with _redis_errors():
            revoked, current = await self._check(names, [stamp, _ms(USER_STAMP_TTL)])
        return AccessCheck(revoked=bool(revoked), user_stamp=current.decode())

    async def user_changed(self, user_id: UUID) -> None:
        async with _redis_errors():
            await self._redis.delete(f"user-stamp:{user_id}")


class _ExpiringDict:
    """A dict whose entries vanish after their TTL; one process, one event loop, no locks."""

    _SWEEP_EVERY = 1024

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, str]] = {}
        self._writes = 0

    def get(self, key: str) -> str | None:
        entry = self._items.get(key)
        if entry is None or entry[0] <= time.monotonic():
            self._items.pop(key, None)
            return None
        return entry[1]

    def set(self, key: str, value: str, ttl: timedelta) -> None:
        self._items[key] = (time.monotonic() + ttl.total_seconds(), value)
        self._writes += 1
        if self._writes % self._SWEEP_EVERY == 0:
            now = time.monotonic()
            self._items = {k: v for k, v in self._items.items() if v[0] > now}

    def pop(self, key: str) -> None:
        self._items.pop(key, None)


class InMemoryRevocationList:
    def __init__(self) -> None:
        self._revoked = _ExpiringDict()
        self._stamps = _ExpiringDict()

    async def revoke(self, *keys: str, ttl: timedelta) -> None:
        for key in keys:
            self._revoked.set(key, "1", ttl)

    async def check(self, *keys: str, user_id: UUID) -> AccessCheck:
        stamp = self._stamps.get(str(user_id))
        if stamp is None:
            stamp = _new_stamp()
            self._stamps.set(str(user_id), stamp, USER_STAMP_TTL)
        revoked = any(self._revoked.get(key) is not None for key in keys)
        return AccessCheck(revoked=revoked, user_stamp=stamp)

    async def user_changed(self, user_id: UUID) -> None:
        self._stamps.pop(str(user_id))
