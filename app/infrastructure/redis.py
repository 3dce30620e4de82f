"""The revocation list on Redis, with an in-process twin for the embedded default; both also
keep counters per user, which the edge counts in the access check's own round trip.

The list guards correctness: Redis errors become ServiceUnavailable (503), so it fails closed
rather than guess. The revocation lists are fast copies of the database's record, per user:
a check that finds none of a user's revocations fills them from the record first, and
answers nothing until it has.

Every key names its user as a hash tag, `{<user id>}`, and every command or script touches
one user's keys only: each runs on one node of a Redis Cluster, and a node that restarts
empty loses whole users, whose next checks refill them.
"""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar
from uuid import UUID

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from app.application.ports import AccessCheck, RevocationSource, ServiceUnavailable

# A stamp lives this long unless the user changes first; its expiry only costs one re-read.
USER_STAMP_TTL = timedelta(minutes=10)
# A user's revocations are vouched for this long after a refill, then read again: a user
# seen no more leaves nothing behind but revocations still in force.
LOADED_TTL = timedelta(hours=1)
REFILL_TIMEOUT = timedelta(minutes=1)  # a refill slower than this starts again

RedisClient = Redis | RedisCluster
V = TypeVar("V")


def _new_stamp() -> str:
    # Random, never a counter: an emptied Redis must not hand out a stamp seen before.
    return secrets.token_hex(8)


@asynccontextmanager
async def _redis_errors() -> AsyncIterator[None]:
    try:
        yield
    except (RedisError, RedisClusterException) as exc:  # the cluster's own are no RedisError
        raise ServiceUnavailable("Redis is unavailable; try again shortly.") from exc


def _ms(ttl: timedelta) -> int:
    return max(1, int(ttl.total_seconds() * 1000))


class UserKeys:
    """One user's key names, each with the user's hash tag: they share a Redis Cluster slot."""

    __slots__ = ("counter_prefix", "loaded", "refill_prefix", "revoked_prefix", "stamp")

    def __init__(self, user_id: UUID) -> None:
        tag = f"{{{user_id}}}"
        self.loaded = f"revocations:{tag}:loaded"  # written by a refill with the revocations
        self.refill_prefix = f"revocations:{tag}:refill:"
        self.revoked_prefix = f"revoked:{tag}:"
        self.stamp = f"user-stamp:{tag}"
        self.counter_prefix = f"count:{tag}:"

    def revoked(self, session_id: UUID) -> str:
        return f"{self.revoked_prefix}{session_id}"

    def counter(self, name: str) -> str:
        return f"{self.counter_prefix}{name}"


# KEYS: the user's loaded marker, their stamp, the session's revoked key and, to count, the
# counter (as `limits` counts: INCR, and the expiry set by the first). ARGV: the stamp's TTL,
# the stamp to claim if the user has none, and the counter's window in seconds. Nil if Redis
# holds none of the user's revocations, else whether the session is ended, the user's stamp
# (the one there or the one claimed) and the count (0: nothing counted).
_CHECK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local stamp = redis.call('SET', KEYS[2], ARGV[2], 'NX', 'GET', 'PX', ARGV[1])
local count = 0
if #KEYS > 3 then
  count = redis.call('INCR', KEYS[4])
  if count == 1 then redis.call('EXPIRE', KEYS[4], ARGV[3]) end
end
return {redis.call('EXISTS', KEYS[3]), stamp or ARGV[2], count}
"""

# KEYS: a counter; ARGV: its window in seconds. The count after this one.
_COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""

# The revocations a refill read, and the marker; only if the note the refill left when it
# began is still there: an emptying since then may have taken revocations the read missed.
# KEYS: the note, the marker, the revoked keys; ARGV: the marker's TTL, each key's TTL (ms).
_REFILL = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
for i = 3, #KEYS do redis.call('SET', KEYS[i], 1, 'PX', ARGV[i - 1]) end
redis.call('SET', KEYS[2], 1, 'PX', ARGV[1])
return 1
"""


class _OneRunPerUser:
    """Concurrent calls for one user share one run (the checks that find a user's revocations
    missing wait for the one refill); calls for other users run alongside."""

    def __init__(self, run: Callable[[UUID], Awaitable[None]]) -> None:
        self._run = run
        self._running: dict[UUID, asyncio.Task[None]] = {}

    async def __call__(self, user_id: UUID) -> None:
        task = self._running.get(user_id)
        if task is None:
            task = asyncio.ensure_future(self._run_once(user_id))
            self._running[user_id] = task
        await asyncio.shield(task)  # a caller that goes away leaves the run to the others

    async def _run_once(self, user_id: UUID) -> None:
        try:
            await self._run(user_id)
        finally:
            del self._running[user_id]


@dataclass(slots=True)
class _Call:
    script: str
    keys: list[str]
    args: list[Any]
    answer: "asyncio.Future[Any]"


class Pipelined:
    """The script calls made in one turn of the event loop go to Redis as one pipeline, so
    that under load the client's work (a round trip, a connection from the pool, the socket's
    waits) is shared among them (docs/performance.md). Each call is still a script of its own
    on one user's keys, run atomically when its pipeline arrives: a cluster's pipeline sends
    each to the node of its slot. EVAL, not EVALSHA: redis-py's cluster pipelines refuse
    EVALSHA, and Redis keeps a script it was sent compiled, by its digest.

    `one_at_a_time`: a pipeline waits until the one before it has answered, and takes every
    call made meanwhile, so one connection serves them all however they arrive. For bursts
    spread over many turns (a thousand streams closing, or reconnecting, at once), which
    otherwise take a connection each and exhaust redis-py's pool (MaxConnectionsError). The
    access check keeps several pipelines in flight: it does not wait on another's answer."""

    def __init__(self, redis: RedisClient, *, one_at_a_time: bool = False) -> None:
        self._redis = redis
        self._one_at_a_time = one_at_a_time
        self._pending: list[_Call] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    def __call__(self, script: str, keys: list[str], args: list[Any]) -> "asyncio.Future[Any]":
        """The script's answer, once the pipeline it joins has run."""
        loop = asyncio.get_running_loop()
        if not self._pending and not (self._one_at_a_time and self._in_flight):
            loop.call_soon(self._send_pending)
        answer: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Call(script, keys, args, answer))
        return answer

    def _send_pending(self) -> None:
        pending, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(pending))
        self._in_flight.add(task)  # a task nothing holds may be collected mid-run
        task.add_done_callback(self._sent)

    def _sent(self, task: "asyncio.Task[None]") -> None:
        self._in_flight.discard(task)
        if self._one_at_a_time and self._pending:
            self._send_pending()  # the calls made while it was in flight

    async def _send(self, calls: list[_Call]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for call in calls:
                    pipe.eval(call.script, len(call.keys), *call.keys, *call.args)
                answers = await pipe.execute(raise_on_error=False)
            for call, answer in zip(calls, answers, strict=True):
                if call.answer.done():  # its request has gone
                    continue
                if isinstance(answer, Exception):  # this call's own error
                    call.answer.set_exception(answer)
                else:
                    call.answer.set_result(answer)
        except Exception as exc:  # the pipeline's: every call in it failed
            for call in calls:
                if not call.answer.done():
                    call.answer.set_exception(exc)
        finally:  # cancelled (the loop is closing): no request waits for ever
            for call in calls:
                call.answer.cancel()


class RedisRevocationList:
    """A check that finds none of a user's revocations (no marker) refills them from the
    database first, one refill per user at a time in a process (that user's other checks
    wait for it). A check that still finds none after that is a 503, never a pass."""

    def __init__(self, redis: RedisClient, source: RevocationSource) -> None:
        self._redis = redis
        self._source = source
        self._refill = _OneRunPerUser(self._refill_user)
        self._pipelined = Pipelined(redis)

    async def revoke(self, user_id: UUID, *session_ids: UUID, ttl: timedelta) -> None:
        keys = UserKeys(user_id)
        async with _redis_errors(), self._redis.pipeline(transaction=False) as pipe:
            for session_id in session_ids:
                pipe.set(keys.revoked(session_id), 1, px=_ms(ttl))
            await pipe.execute()

    async def check(self, user_id: UUID, session_id: UUID) -> AccessCheck:
        check, _ = await self._checked(user_id, session_id, None, 0)
        return check

    async def check_counting(
        self, user_id: UUID, session_id: UUID, counter: str, *, window: int
    ) -> tuple[AccessCheck, int]:
        """As `check`, and the user's `counter` counted in the same script call (a counter
        that starts at its first count and expires `window` seconds later): the count."""
        return await self._checked(user_id, session_id, counter, window)

    async def count(self, user_id: UUID, counter: str, *, window: int) -> int:
        """Counts once on the user's `counter` (as `check_counting` does); the count."""
        async with _redis_errors():
            return int(
                await self._pipelined(_COUNT, [UserKeys(user_id).counter(counter)], [window])
            )

    async def _checked(
        self, user_id: UUID, session_id: UUID, counter: str | None, window: int
    ) -> tuple[AccessCheck, int]:
        keys = UserKeys(user_id)
        names = [keys.loaded, keys.stamp, keys.revoked(session_id)]
        if counter is not None:
            names.append(keys.counter(counter))
        for _ in range(3):  # a refill that an emptying overtook is tried once more
            async with _redis_errors():
                args = [_ms(USER_STAMP_TTL), _new_stamp(), window]
                answer = await self._pipelined(_CHECK, names, args)
            if answer is not None:
                revoked, stamp, count = answer
                return AccessCheck(revoked=bool(revoked), user_stamp=stamp.decode()), count
            await self._refill(user_id)
        raise ServiceUnavailable("The revocation list is being restored; try again shortly.")

    async def _refill_user(self, user_id: UUID) -> None:
        keys = UserKeys(user_id)
        async with _redis_errors():
            if await self._redis.exists(keys.loaded):
                return  # refilled while this check waited
            # A note that this refill began: an emptying from now on takes it, and the marker
            # is then not written (the read may miss revocations that the emptying took).
            began = f"{keys.refill_prefix}{_new_stamp()}"
            await self._redis.set(began, 1, px=_ms(REFILL_TIMEOUT))
            revocations = await self._source(user_id)
            names = [began, keys.loaded, *(keys.revoked(sid) for sid in revocations)]
            ttls = [_ms(LOADED_TTL), *(_ms(ttl) for ttl in revocations.values())]
            await self._redis.eval(_REFILL, len(names), *names, *ttls)

    async def user_changed(self, user_id: UUID) -> None:
        async with _redis_errors():
            await self._redis.delete(UserKeys(user_id).stamp)


class _ExpiringDict(Generic[V]):
    """A dict whose entries vanish after their TTL; one process, one event loop, no locks."""

    _SWEEP_EVERY = 1024

    def __init__(self) -> None:
        self._items: dict[Any, tuple[float, V]] = {}
        self._writes = 0

    def get(self, key: Any) -> V | None:
        entry = self._items.get(key)
        if entry is None or entry[0] <= time.monotonic():
            self._items.pop(key, None)
            return None
        return entry[1]

    def set(self, key: Any, value: V, ttl: timedelta) -> None:
        self._set(key, value, time.monotonic() + ttl.total_seconds())

    def pop(self, key: Any) -> None:
        self._items.pop(key, None)

    def _set(self, key: Any, value: V, expires_at: float) -> None:
        self._items[key] = (expires_at, value)
        self._writes += 1
        if self._writes % self._SWEEP_EVERY == 0:
            now = time.monotonic()
            self._items = {k: v for k, v in self._items.items() if v[0] > now}


class _Counters(_ExpiringDict[int]):
    def incr(self, key: Any, window: int) -> int:
        """One more on `key`, a counter that starts at its first count and expires `window`
        seconds later; the count."""
        entry = self._items.get(key)
        if entry is None or entry[0] <= time.monotonic():
            self._set(key, 1, time.monotonic() + window)
            return 1
        self._set(key, entry[1] + 1, entry[0])
        return entry[1] + 1


class InMemoryRevocationList:
    """Fills a user's revocations from the database at their first check, so a restart
    forgets nothing; keeps the per-user counters too."""

    def __init__(self, source: RevocationSource) -> None:
        self._source = source
        self._loaded = _ExpiringDict[bool]()
        self._revoked = _ExpiringDict[bool]()
        self._stamps = _ExpiringDict[str]()
        self._counters = _Counters()
        self._refill = _OneRunPerUser(self._load)

    async def revoke(self, user_id: UUID, *session_ids: UUID, ttl: timedelta) -> None:
        for session_id in session_ids:
            self._revoked.set((user_id, session_id), True, ttl)

    async def check(self, user_id: UUID, session_id: UUID) -> AccessCheck:
        if self._loaded.get(user_id) is None:
            await self._refill(user_id)
        stamp = self._stamps.get(user_id)
        if stamp is None:
            stamp = _new_stamp()
            self._stamps.set(user_id, stamp, USER_STAMP_TTL)
        revoked = self._revoked.get((user_id, session_id)) is not None
        return AccessCheck(revoked=revoked, user_stamp=stamp)

    async def check_counting(
        self, user_id: UUID, session_id: UUID, counter: str, *, window: int
    ) -> tuple[AccessCheck, int]:
        check = await self.check(user_id, session_id)
        return check, self._counters.incr((user_id, counter), window)

    async def count(self, user_id: UUID, counter: str, *, window: int) -> int:
        return self._counters.incr((user_id, counter), window)

    async def user_changed(self, user_id: UUID) -> None:
        self._stamps.pop(user_id)

    async def _load(self, user_id: UUID) -> None:
        if self._loaded.get(user_id) is not None:
            return  # loaded while this check waited
        for session_id, ttl in (await self._source(user_id)).items():
            self._revoked.set((user_id, session_id), True, ttl)
        self._loaded.set(user_id, True, LOADED_TTL)
