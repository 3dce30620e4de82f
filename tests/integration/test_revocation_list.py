"""The Redis revocation list against a real Redis: an emptied Redis is refilled from the
record once, a refill that another flush overtook does not vouch for itself, and a refill
that cannot read the record leaves the check refused."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import uuid4

import pytest
from limits.aio.storage import RedisStorage
from redis.asyncio import Redis
from sqlalchemy import exc as sa_exc

from app.application.auth import revocations_in_force
from app.application.ports import Hit, ServiceUnavailable
from app.infrastructure.clock import SystemClock
from app.infrastructure.db import create_engine
from app.infrastructure.redis import LOADED, RATE_LIMIT_PREFIX, RedisRevocationList
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from tests.conftest import TEST_REDIS_URL

pytestmark = pytest.mark.skipif(not TEST_REDIS_URL, reason="needs TEST_REDIS_URL")

TTL = timedelta(minutes=5)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(str(TEST_REDIS_URL))
    await client.flushdb()  # this suite's own database only
    yield client
    await client.flushdb()
    await client.aclose()


async def test_an_emptied_redis_is_refilled_once_for_all_the_checks_waiting(
    redis: Redis,
) -> None:
    reads = 0

    async def source() -> dict[str, timedelta]:
        nonlocal reads
        reads += 1
        return {"sid:ended": TTL}

    revocations = RedisRevocationList(redis, source)  # on an empty Redis, as after a restart
    keys = ["sid:ended", "sid:live"] * 5

    answers = await asyncio.gather(*(revocations.check(key, user_id=uuid4()) for key in keys))

    assert [answer.revoked for answer in answers] == [True, False] * 5
    assert reads == 1
    assert (await revocations.check("sid:ended", user_id=uuid4())).revoked
    assert reads == 1


async def test_a_refill_overtaken_by_another_flush_is_done_again(redis: Redis) -> None:
    record: dict[str, timedelta] = {}
    reads = 0

    async def source() -> dict[str, timedelta]:
        nonlocal reads
        reads += 1
        read = dict(record)
        if reads == 1:
            # While the record is read, a session ends (in Redis, then committed) and Redis
            # loses everything again: this read missed the session, and Redis no longer has it.
            await revocations.revoke("sid:ended", ttl=TTL)
            record["sid:ended"] = TTL
            await redis.flushdb()
        return read

    revocations = RedisRevocationList(redis, source)

    assert (await revocations.check("sid:ended", user_id=uuid4())).revoked
    assert reads == 2


async def test_a_refill_that_cannot_read_the_record_leaves_the_check_refused(
    redis: Redis,
) -> None:
    unreachable = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing-listens")

    async def source() -> dict[str, timedelta]:
        async with SqlAlchemyUnitOfWork(unreachable, read_only=True) as uow:
            return await revocations_in_force(uow, access_ttl=TTL, now=SystemClock().now())

    revocations = RedisRevocationList(redis, source)

    with pytest.raises(sa_exc.OperationalError):  # a 503, by the app's handler for it
        await revocations.check("sid:ended", user_id=uuid4())
    assert not await redis.exists(LOADED)
    await unreachable.dispose()


async def test_a_hit_counts_in_the_limiters_own_counter_once_the_list_answers(
    redis: Redis,
) -> None:
    storage = RedisStorage(
        "async+" + str(TEST_REDIS_URL), implementation="redispy", key_prefix=RATE_LIMIT_PREFIX
    )
    revocations = RedisRevocationList(redis, _no_revocations)
    hit = Hit("default/user:ada/0", 60, resets_at=60)

    first = await revocations.check("sid:live", user_id=uuid4(), hit=hit)  # refills first
    by_limiter = await storage.incr(hit.key, hit.window_seconds)  # a route the limiter counts
    third = await revocations.check("sid:live", user_id=uuid4(), hit=hit)
    unhit = await revocations.check("sid:live", user_id=uuid4())

    assert (first.hits, by_limiter, third.hits, unhit.hits) == (1, 2, 3, None)
    assert 0 < await redis.ttl(f"{RATE_LIMIT_PREFIX}:{hit.key}") <= 60  # the window expires


async def test_checks_sent_together_go_as_one_call_and_each_gets_its_own_answer(
    redis: Redis,
) -> None:
    revocations = RedisRevocationList(redis, _no_revocations)
    await revocations.check("sid:warm", user_id=uuid4())  # refilled, and the script loaded
    await revocations.revoke("sid:ended", ttl=TTL)
    ada, bob = uuid4(), uuid4()
    await redis.set(f"user-stamp:{ada}", "ada's stamp")
    for_ada, for_bob = (Hit(f"default/user:{name}/0", 60, resets_at=60) for name in "ab")
    calls_before = await _script_calls(redis)

    answers = await asyncio.gather(
        revocations.check("sid:ended", user_id=ada, hit=for_ada),
        revocations.check("sid:live", user_id=ada, hit=for_ada),
        revocations.check("sid:live", user_id=bob, hit=for_bob),
        revocations.check("sid:live", "sid:ended", user_id=bob),
    )

    assert await _script_calls(redis) == calls_before + 1
    assert [answer.revoked for answer in answers] == [True, False, False, True]
    assert [answer.hits for answer in answers] == [1, 2, 1, None]
    assert [answer.user_stamp for answer in answers[:2]] == ["ada's stamp"] * 2
    # Bob had no stamp: the first of his checks claimed one, and the second found it.
    assert answers[2].user_stamp == answers[3].user_stamp != "ada's stamp"


async def test_a_batch_that_cannot_reach_redis_refuses_every_check_in_it() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=1)
    revocations = RedisRevocationList(unreachable, _no_revocations)

    answers = await asyncio.gather(
        *(revocations.check("sid:live", user_id=uuid4()) for _ in range(3)),
        return_exceptions=True,
    )

    assert all(isinstance(answer, ServiceUnavailable) for answer in answers)
    await unreachable.aclose()


async def _no_revocations() -> dict[str, timedelta]:
    return {}


async def _script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
