"""The Redis revocation list against a real Redis, and against a real three-node Redis
Cluster: a user's revocations emptied from Redis are refilled from the record once, a refill
that another emptying overtook does not vouch for itself, a refill that cannot read the record
leaves the check refused, and every key of a call names one user (so, on a cluster, one slot).
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis, RedisCluster
from sqlalchemy import exc as sa_exc

from app.application.auth import revocations_in_force
from app.application.ports import ServiceUnavailable
from app.infrastructure.clock import SystemClock
from app.infrastructure.db import create_engine
from app.infrastructure.redis import LOADED_TTL, RedisRevocationList, UserKeys
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from harness.redis_cluster import LocalCluster
from tests.conftest import TEST_REDIS_URL

TTL = timedelta(minutes=5)
ADA, BOB = uuid4(), uuid4()
ENDED, LIVE = uuid4(), uuid4()


@pytest.fixture(params=["redis", "cluster"])
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis | RedisCluster]:
    client: Redis | RedisCluster
    if request.param == "redis":
        if not TEST_REDIS_URL:
            pytest.skip("needs TEST_REDIS_URL")
        client = Redis.from_url(TEST_REDIS_URL)
    else:
        cluster: LocalCluster = request.getfixturevalue("local_redis_cluster")
        client = RedisCluster.from_url(cluster.url)
    await client.flushdb()  # this suite's own database (every primary's, on the cluster)
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def cluster_client(local_redis_cluster: LocalCluster) -> RedisCluster:
    return RedisCluster.from_url(local_redis_cluster.url)


class Record:
    """The database's record of ended sessions, per user, counting its reads."""

    def __init__(self, ended: dict[UUID, dict[UUID, timedelta]] | None = None) -> None:
        self.ended = ended or {}
        self.reads: list[UUID] = []

    async def __call__(self, user_id: UUID) -> dict[UUID, timedelta]:
        self.reads.append(user_id)
        await asyncio.sleep(0)  # other checks arrive while the record is read
        return dict(self.ended.get(user_id, {}))


async def test_an_emptied_users_revocations_are_refilled_once_for_all_the_checks_waiting(
    redis: Redis | RedisCluster,
) -> None:
    record = Record({ADA: {ENDED: TTL}})
    revocations = RedisRevocationList(redis, record)  # on an empty Redis, as after a restart
    checks = [(ADA, ENDED), (ADA, LIVE), (BOB, ENDED)] * 5

    answers = await asyncio.gather(*(revocations.check(user, sid) for user, sid in checks))

    assert [answer.revoked for answer in answers] == [True, False, False] * 5
    assert sorted(record.reads) == sorted([ADA, BOB])  # once per user
    assert (await revocations.check(ADA, ENDED)).revoked
    assert len(record.reads) == 2
    loaded_for = await redis.pttl(UserKeys(ADA).loaded)
    assert 0 < loaded_for <= LOADED_TTL.total_seconds() * 1000  # then read again


async def test_a_refill_overtaken_by_another_emptying_is_done_again(
    redis: Redis | RedisCluster,
) -> None:
    record = Record()

    async def source(user_id: UUID) -> dict[UUID, timedelta]:
        read = await record(user_id)
        if len(record.reads) == 1:
            # While the record is read, a session ends (in Redis, then committed) and Redis
            # loses everything again: this read missed the session, and Redis no longer has it.
            await revocations.revoke(ADA, ENDED, ttl=TTL)
            record.ended[ADA] = {ENDED: TTL}
            await redis.flushdb()
        return read

    revocations = RedisRevocationList(redis, source)

    assert (await revocations.check(ADA, ENDED)).revoked
    assert len(record.reads) == 2


async def test_a_refill_that_cannot_read_the_record_leaves_the_check_refused(
    redis: Redis | RedisCluster,
) -> None:
    unreachable = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing-listens")

    async def source(user_id: UUID) -> dict[UUID, timedelta]:
        async with SqlAlchemyUnitOfWork(unreachable, read_only=True) as uow:
            return await revocations_in_force(uow, user_id, access_ttl=TTL, now=SystemClock().now())

    revocations = RedisRevocationList(redis, source)

    with pytest.raises(sa_exc.OperationalError):  # a 503, by the app's handler for it
        await revocations.check(ADA, ENDED)
    assert not await redis.exists(UserKeys(ADA).loaded)
    await unreachable.dispose()


async def test_a_counted_check_and_a_count_share_the_users_counter(
    redis: Redis | RedisCluster,
) -> None:
    revocations = RedisRevocationList(redis, Record())

    first_check, first = await revocations.check_counting(ADA, LIVE, "default/0", window=60)
    second = await revocations.count(ADA, "default/0", window=60)
    _, third = await revocations.check_counting(ADA, LIVE, "default/0", window=60)
    _, bobs = await revocations.check_counting(BOB, LIVE, "default/0", window=60)
    plain = await revocations.check(ADA, LIVE)

    assert (first, second, third, bobs) == (1, 2, 3, 1)
    assert not first_check.revoked
    assert plain.user_stamp == first_check.user_stamp
    assert 0 < await redis.ttl(UserKeys(ADA).counter("default/0")) <= 60  # the window expires


async def test_every_key_written_for_a_user_names_that_user_as_its_hash_tag(
    redis: Redis | RedisCluster,
) -> None:
    revocations = RedisRevocationList(redis, Record({ADA: {ENDED: TTL}}))

    await revocations.check_counting(ADA, LIVE, "default/0", window=60)
    await revocations.revoke(ADA, LIVE, uuid4(), ttl=TTL)
    await revocations.count(ADA, "login/0", window=60)

    keys = [key.decode() async for key in redis.scan_iter("*")]
    assert len(keys) == 7  # marker, stamp, the one on record, two revoked, two counters
    assert all(f"{{{ADA}}}" in key for key in keys), keys


@pytest.mark.parametrize("client", [Redis, RedisCluster])
async def test_a_check_that_cannot_reach_redis_is_refused(
    client: type[Redis] | type[RedisCluster],
) -> None:
    unreachable = client.from_url("redis://127.0.0.1:1", socket_connect_timeout=1)
    revocations = RedisRevocationList(unreachable, Record())

    answers = await asyncio.gather(
        *(revocations.check(uuid4(), LIVE) for _ in range(3)),
        revocations.count(ADA, "default/0", window=60),
        return_exceptions=True,
    )

    assert all(isinstance(answer, ServiceUnavailable) for answer in answers), answers
    await unreachable.aclose()


async def test_a_cluster_node_emptied_costs_a_refill_of_its_own_users_only(
    local_redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    users = [uuid4() for _ in range(30)]  # enough that every node holds some
    record = Record({user: {ENDED: TTL} for user in users})
    revocations = RedisRevocationList(cluster_client, record)
    await cluster_client.flushdb()
    for user in users:
        assert (await revocations.check(user, ENDED)).revoked
    emptied = local_redis_cluster.node_holding(UserKeys(users[0]).loaded)
    on_emptied = [
        u for u in users if local_redis_cluster.node_holding(UserKeys(u).loaded) is emptied
    ]
    record.reads.clear()

    with emptied.client() as node:
        node.flushdb()  # as a node restarted without its data

    answers = [await revocations.check(user, ENDED) for user in users]
    assert all(answer.revoked for answer in answers)
    assert sorted(record.reads) == sorted(on_emptied)
    assert 0 < len(on_emptied) < len(users)
    await cluster_client.flushdb()
    await cluster_client.aclose()


async def test_checks_made_together_go_as_one_pipeline_and_each_gets_its_own_answer(
    redis: Redis | RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    revocations = RedisRevocationList(redis, Record({BOB: {ENDED: TTL}}))
    for user in (ADA, BOB):
        await revocations.check(user, LIVE)  # each user's revocations refilled first
    await redis.set(UserKeys(ADA).stamp, "ada's stamp")
    opened = 0
    pipeline = redis.pipeline

    def counted(*args: Any, **kwargs: Any) -> Any:  # the real pipeline, counted
        nonlocal opened
        opened += 1
        return pipeline(*args, **kwargs)

    monkeypatch.setattr(redis, "pipeline", counted)

    answers = await asyncio.gather(
        revocations.check_counting(ADA, LIVE, "default/0", window=60),
        revocations.check(BOB, ENDED),
        revocations.count(ADA, "default/0", window=60),
        revocations.check_counting(BOB, LIVE, "default/0", window=60),
    )

    assert opened == 1
    (ada, ada_count), bob_ended, ada_again, (bob, bob_count) = answers
    assert (ada.user_stamp, ada.revoked, ada_count, ada_again) == ("ada's stamp", False, 1, 2)
    assert (bob_ended.revoked, bob.revoked, bob_count) == (True, False, 1)


async def test_a_call_that_fails_in_a_pipeline_fails_alone(redis: Redis | RedisCluster) -> None:
    revocations = RedisRevocationList(redis, Record())
    for user in (ADA, BOB):
        await revocations.check(user, LIVE)
    await redis.delete(UserKeys(ADA).stamp)
    await redis.lpush(UserKeys(ADA).stamp, "not a stamp")  # the script's SET fails on it

    ada, bob = await asyncio.gather(
        revocations.check(ADA, LIVE), revocations.check(BOB, LIVE), return_exceptions=True
    )

    assert isinstance(ada, ServiceUnavailable)
    assert not isinstance(bob, BaseException)
    assert not bob.revoked
