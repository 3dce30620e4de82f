"""Live events' shared parts: the wake-up that entries were committed, and the per-user count
of open streams; on Redis across instances, in process for the embedded default.

The wake-up is a hint (application/events.py): Redis pub/sub delivers at most once, and
nothing at all while a subscriber is disconnected, so after every reconnection the listener
says "some may have been missed" and the feed reads the log at once. Redis emptied
(FLUSHALL) keeps subscriptions; Redis restarted drops them, and they are made again.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from uuid import UUID

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from app.application.ports import ServiceUnavailable
from app.infrastructure.redis import Pipelined

log = logging.getLogger(__name__)

CHANNEL = "todo-api:activity"
STREAM_LEASE_SECONDS = 30  # a stream renews its place at each ping, well within this
_RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0)

RedisClient = Redis | RedisCluster
Heard = Callable[[int | None], None]


class InProcessActivitySignal:
    """One process: an announcement reaches this process's listeners directly."""

    def __init__(self) -> None:
        self._listeners: list[Heard] = []

    async def announce(self, txid: int) -> None:
        for heard in self._listeners:
            heard(txid)

    def listen(self, heard: Heard) -> Callable[[], Awaitable[None]]:
        self._listeners.append(heard)

        async def stop() -> None:
            self._listeners.remove(heard)

        return stop


class RedisActivitySignal:
    """PUBLISH on one channel; one subscription per process (LiveFeed listens once)."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._latest = 0  # the newest position committed here and not announced yet
        self._sending: asyncio.Task[None] | None = None

    async def announce(self, txid: int) -> None:
        """Announced by one publishing task per process, not by the committing request: the
        request does not wait on Redis, and commits that land while a PUBLISH is under way
        share the next one (its position, the newest, has listeners read up to it)."""
        self._latest = max(self._latest, txid)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send(), name="activity-announce")

    async def _send(self) -> None:
        while self._latest:
            txid, self._latest = self._latest, 0
            try:
                await self._redis.publish(CHANNEL, str(txid))
            except (RedisError, RedisClusterException):
                # The change is committed; streams read it at their feed's next tick instead.
                log.warning("could not announce committed activity on Redis", exc_info=True)

    def listen(self, heard: Heard) -> Callable[[], Awaitable[None]]:
        task = asyncio.create_task(self._listen(heard), name="activity-signal")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        return stop

    async def _listen(self, heard: Heard) -> None:
        failures = 0
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                heard(None)  # (re)subscribed: whatever was said meanwhile, read the log now
                failures = 0
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                    if message is not None:
                        heard(_txid(message.get("data")))
            except (RedisError, RedisClusterException, OSError):
                delay = _RECONNECT_DELAYS[min(failures, len(_RECONNECT_DELAYS) - 1)]
                failures += 1
                log.warning("activity wake-ups lost their Redis subscription; again in %ss", delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(RedisError, RedisClusterException, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]


def _txid(data: object) -> int | None:
    """The announced position (None: not one, then the feed reads anyway)."""
    if isinstance(data, bytes):
        data = data.decode(errors="replace")
    return int(data) if isinstance(data, str) and data.isdigit() else None


class InMemoryStreamSlots:
    """One process: its open streams per user."""

    def __init__(self) -> None:
        self._open: dict[UUID, set[UUID]] = {}

    async def acquire(self, user_id: UUID, stream_id: UUID, *, limit: int) -> bool:
        streams = self._open.setdefault(user_id, set())
        if len(streams) >= limit:
            return False
        streams.add(stream_id)
        return True

    async def renew(self, user_id: UUID, stream_id: UUID) -> None:
        return None

    async def count(self, user_id: UUID) -> int:
        return len(self._open.get(user_id, ()))

    async def release(self, user_id: UUID, stream_id: UUID) -> None:
        streams = self._open.get(user_id)
        if streams is not None:
            streams.discard(stream_id)
            if not streams:
                del self._open[user_id]


# KEYS: the user's sorted set of streams (score: when the place lapses, in ms). ARGV: now, the
# new lapse time, the limit, the stream. Places past their time are dropped first, so a killed
# instance's streams stop counting once their lease runs out.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
"""
_RENEW = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
"""
_RELEASE = "return redis.call('ZREM', KEYS[1], ARGV[1])"
_COUNT = "return redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')"  # not lapsed by now


def _key(user_id: UUID) -> str:
    return f"sse-streams:{{{user_id}}}"


class RedisStreamSlots:
    """Across instances: each stream holds a leased place in its user's sorted set.

    Taking, renewing and giving back places go to Redis one pipeline at a time (Pipelined,
    one_at_a_time): a thousand streams closing at once, or reconnecting at once after an
    instance stopped, share one connection rather than ask redis-py's pool for a thousand,
    where all but the pool's size failed (MaxConnectionsError) and their places were left to
    lapse."""

    def __init__(self, redis: RedisClient) -> None:
        self._pipelined = Pipelined(redis, one_at_a_time=True)

    async def acquire(self, user_id: UUID, stream_id: UUID, *, limit: int) -> bool:
        now = int(time.time() * 1000)
        lapse = now + STREAM_LEASE_SECONDS * 1000
        try:
            taken = await self._pipelined(
                _ACQUIRE, [_key(user_id)], [now, lapse, limit, str(stream_id)]
            )
        except (RedisError, RedisClusterException) as error:
            raise ServiceUnavailable("Redis is unavailable; try again shortly.") from error
        return bool(taken)

    async def renew(self, user_id: UUID, stream_id: UUID) -> None:
        lapse = int(time.time() * 1000) + STREAM_LEASE_SECONDS * 1000
        try:
            # ZADD, not ZADD XX: after Redis was emptied, open streams take their places back.
            await self._pipelined(_RENEW, [_key(user_id)], [lapse, str(stream_id)])
        except (RedisError, RedisClusterException):
            log.warning("could not renew a stream's place on Redis", exc_info=True)

    async def release(self, user_id: UUID, stream_id: UUID) -> None:
        try:
            await self._pipelined(_RELEASE, [_key(user_id)], [str(stream_id)])
        except (RedisError, RedisClusterException):
            log.warning("could not release a stream's place on Redis (it lapses)", exc_info=True)

    async def count(self, user_id: UUID) -> int:
        now = int(time.time() * 1000)
        try:
            return int(await self._pipelined(_COUNT, [_key(user_id)], [now]))
        except (RedisError, RedisClusterException) as error:
            raise ServiceUnavailable("Redis is unavailable; try again shortly.") from error
