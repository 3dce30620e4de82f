"""The revocation list on Redis, with an in-process twin for the embedded default.

The list guards correctness: Redis errors become ServiceUnavailable (503), so it fails closed
rather than guess. The revocation lists are fast copies of the database's record: each fills
itself from it when it finds itself empty, and answers nothing until it has.
"""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.application.ports import (
    AccessCheck,
    Hit,
    HitCounter,
    RevocationSource,
    ServiceUnavailable,
)

# A stamp lives this long unless the user changes first; its expiry only costs one re-read.
USER_STAMP_TTL = timedelta(minutes=10)
# Written by a refill with the revocations: no marker, no revocations (a restart, a flush).
LOADED = "revocations:loaded"
REFILL_TIMEOUT = timedelta(minutes=1)  # a refill slower than this starts again


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


# The key prefix of the rate limiter's RedisStorage (`limits`): a Hit counted by the check
# lands in the very counter the limiter counts in, so every route shares one count per client.
RATE_LIMIT_PREFIX = "LIMITS"

# The access checks that arrive in one turn of the event loop go to Redis as one script call,
# so that under load the client's work (packing, a round trip, parsing) is shared among them
# (docs/performance.md). Each check still runs in Redis, atomically, when its batch does: no
# answer is older than the request.
# KEYS: the marker, then per check its stamp key, its revoked keys and, given a window, the
# rate-limit key it counts in (as `limits` counts it: INCR, and the expiry set by the first).
# ARGV: the stamps' TTL, then per check the number of its revoked keys, the window (0: no hit)
# and the stamp it claims if the user has none. Nil if Redis holds no revocations at all, else
# per check: whether any of its keys is revoked, the user's stamp (the one there or its own)
# and the hit count (0: none counted).
_CHECK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local answers, k = {}, 2
for i = 2, #ARGV, 3 do
  local revoked_keys, window = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local stamp = redis.call('SET', KEYS[k], ARGV[i + 2], 'NX', 'GET', 'PX', ARGV[1])
  local revoked = 0
  if revoked_keys > 0 then revoked = redis.call('EXISTS', unpack(KEYS, k + 1, k + revoked_keys)) end
  k = k + revoked_keys + 1
  local hits = 0
  if window > 0 then
    hits = redis.call('INCR', KEYS[k])
    if hits == 1 then redis.call('EXPIRE', KEYS[k], window) end
    k = k + 1
  end
  answers[#answers + 1] = revoked
  answers[#answers + 1] = stamp or ARGV[i + 2]
  answers[#answers + 1] = hits
end
return answers
"""
MAX_BATCH = 64  # checks per script call: a script holds Redis for its whole run


@dataclass(slots=True)
class _PendingCheck:
    keys: tuple[str, ...]
    user_id: UUID
    hit: Hit | None
    answer: "asyncio.Future[AccessCheck | None]"


# The revocations a refill read, and the marker; only if the note the refill left when it
# began is still there: a flush since then may have taken revocations the read missed.
_REFILL = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
for i = 3, #KEYS do redis.call('SET', KEYS[i], 1, 'PX', ARGV[i - 2]) end
redis.call('SET', KEYS[2], 1)
return 1
"""


def _access(answers: list[Any], index: int) -> AccessCheck:
    revoked, stamp, hits = answers[3 * index : 3 * index + 3]
    return AccessCheck(revoked=bool(revoked), user_stamp=stamp.decode(), hits=hits or None)


class RedisRevocationList:
    """A check that finds Redis empty (no marker) refills it from the database first, one
    refill at a time per process (the other requests wait for it; each instance refills once).
    A check that still finds it empty after that is a 503, never a pass."""

    def __init__(self, redis: Redis, source: RevocationSource) -> None:
        self._redis = redis
        self._source = source
        self._check = redis.register_script(_CHECK)
        self._mark = redis.register_script(_REFILL)
        self._refilling = asyncio.Lock()
        self._pending: list[_PendingCheck] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    async def revoke(self, *keys: str, ttl: timedelta) -> None:
        async with _redis_errors(), self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(f"revoked:{key}", 1, px=_ms(ttl))
            await pipe.execute()

    async def check(self, *keys: str, user_id: UUID, hit: Hit | None = None) -> AccessCheck:
        for _ in range(3):  # a refill that another flush overtook is tried once more
            answer = await self._batched(keys, user_id, hit)
            if answer is not None:
                return answer
            await self._refill()
        raise ServiceUnavailable("The revocation list is being restored; try again shortly.")

    def _batched(
        self, keys: tuple[str, ...], user_id: UUID, hit: Hit | None
    ) -> "asyncio.Future[AccessCheck | None]":
        """The check's answer (None: Redis holds no revocations), from the batch it joins."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._send_pending)
        answer: asyncio.Future[AccessCheck | None] = loop.create_future()
        self._pending.append(_PendingCheck(keys, user_id, hit, answer))
        return answer

    def _send_pending(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), MAX_BATCH):
            task = asyncio.ensure_future(self._send(pending[start : start + MAX_BATCH]))
            self._in_flight.add(task)  # a task nothing holds may be collected mid-run
            task.add_done_callback(self._in_flight.discard)

    async def _send(self, batch: list[_PendingCheck]) -> None:
        names, args = [LOADED], [str(_ms(USER_STAMP_TTL))]
        for check in batch:
            names.append(f"user-stamp:{check.user_id}")
            names.extend(f"revoked:{key}" for key in check.keys)
            window = 0 if check.hit is None else check.hit.window_seconds
            args += [str(len(check.keys)), str(window), _new_stamp()]
            if check.hit is not None:
                names.append(f"{RATE_LIMIT_PREFIX}:{check.hit.key}")
        try:
            async with _redis_errors():
                answers = await self._check(names, args)
            for index, check in enumerate(batch):
                if not check.answer.done():  # its request may have gone
                    check.answer.set_result(None if answers is None else _access(answers, index))
        except Exception as exc:
            for check in batch:
                if not check.answer.done():
                    check.answer.set_exception(exc)
        finally:  # cancelled (the loop is closing): no request waits for ever
            for check in batch:
                check.answer.cancel()

    async def _refill(self) -> None:
        async with self._refilling, _redis_errors():
            if await self._redis.exists(LOADED):
                return  # refilled while this request waited
            # A note that this refill began: a flush from now on takes it, and the marker is
            # then not written (the read may miss revocations that the flush took).
            began = f"revocations:refill:{_new_stamp()}"
            await self._redis.set(began, 1, px=_ms(REFILL_TIMEOUT))
            revocations = await self._source()
            names = [began, LOADED, *(f"revoked:{key}" for key in revocations)]
            await self._mark(names, [_ms(ttl) for ttl in revocations.values()])

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
    """Filled from the database at its first check, so a restart forgets nothing. Hits are
    counted in `counter`, the rate limiter's in-process store."""

    def __init__(self, source: RevocationSource, *, counter: HitCounter) -> None:
        self._source = source
        self._counter = counter
        self._loaded = False
        self._loading = asyncio.Lock()
        self._revoked = _ExpiringDict()
        self._stamps = _ExpiringDict()

    async def revoke(self, *keys: str, ttl: timedelta) -> None:
        for key in keys:
            self._revoked.set(key, "1", ttl)

    async def check(self, *keys: str, user_id: UUID, hit: Hit | None = None) -> AccessCheck:
        if not self._loaded:
            await self._load()
        stamp = self._stamps.get(str(user_id))
        if stamp is None:
            stamp = _new_stamp()
            self._stamps.set(str(user_id), stamp, USER_STAMP_TTL)
        revoked = any(self._revoked.get(key) is not None for key in keys)
        hits = None if hit is None else await self._counter.incr(hit.key, hit.window_seconds)
        return AccessCheck(revoked=revoked, user_stamp=stamp, hits=hits)

    async def user_changed(self, user_id: UUID) -> None:
        self._stamps.pop(str(user_id))

    async def _load(self) -> None:
        async with self._loading:
            if not self._loaded:  # loaded while this request waited
                for key, ttl in (await self._source()).items():
                    self._revoked.set(key, "1", ttl)
                self._loaded = True
