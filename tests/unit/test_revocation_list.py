"""The in-process revocation list fills a user's revocations from the record at their first
check, once, and answers nothing for them until it has; it keeps the per-user counters the
default rate limit counts in."""

import asyncio
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from tests.fakes import InMemoryRevocationList

ADA, BOB = uuid4(), uuid4()
ENDED, LIVE = uuid4(), uuid4()
ON_RECORD = {ADA: {ENDED: timedelta(minutes=5)}}


async def test_it_reads_each_users_record_once_however_many_checks_wait_for_it() -> None:
    reads: list[UUID] = []

    async def source(user_id: UUID) -> dict[UUID, timedelta]:
        reads.append(user_id)
        await asyncio.sleep(0)  # the other checks arrive while the record is read
        return ON_RECORD.get(user_id, {})

    revocations = InMemoryRevocationList(source)
    checks = [(ADA, ENDED), (ADA, LIVE), (BOB, ENDED)] * 5

    answers = await asyncio.gather(*(revocations.check(user, sid) for user, sid in checks))

    assert [answer.revoked for answer in answers] == [True, False, False] * 5
    assert (await revocations.check(ADA, ENDED)).revoked
    assert sorted(reads) == sorted([ADA, BOB])


async def test_a_record_it_cannot_read_refuses_the_check_and_is_read_again_next_time() -> None:
    reads = 0

    async def source(user_id: UUID) -> dict[UUID, timedelta]:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise ConnectionRefusedError("the database is down")
        return ON_RECORD[user_id]

    revocations = InMemoryRevocationList(source)

    with pytest.raises(ConnectionRefusedError):
        await revocations.check(ADA, ENDED)
    assert (await revocations.check(ADA, ENDED)).revoked
    assert reads == 2


async def test_a_revocation_ends_only_that_users_session() -> None:
    async def source(user_id: UUID) -> dict[UUID, timedelta]:
        return {}

    revocations = InMemoryRevocationList(source)
    await revocations.revoke(ADA, ENDED, ttl=timedelta(minutes=5))

    assert (await revocations.check(ADA, ENDED)).revoked
    assert not (await revocations.check(BOB, ENDED)).revoked


async def test_a_counted_check_counts_in_the_users_counter_with_the_plain_count() -> None:
    async def source(user_id: UUID) -> dict[UUID, timedelta]:
        return {}

    revocations = InMemoryRevocationList(source)

    _, first = await revocations.check_counting(ADA, LIVE, "default/0", window=60)
    second = await revocations.count(ADA, "default/0", window=60)
    check, third = await revocations.check_counting(ADA, LIVE, "default/0", window=60)
    _, bobs = await revocations.check_counting(BOB, LIVE, "default/0", window=60)
    _, other = await revocations.check_counting(ADA, LIVE, "default/60", window=60)

    assert (first, second, third, bobs, other) == (1, 2, 3, 1, 1)
    assert not check.revoked
