"""The in-process revocation list fills itself from the record at its first check, once,
and answers nothing until it has."""

import asyncio
from datetime import timedelta
from uuid import uuid4

import pytest
from limits.aio.storage import MemoryStorage

from app.application.ports import Hit
from tests.fakes import InMemoryRevocationList

ON_RECORD = {"sid:ended": timedelta(minutes=5)}


async def test_it_reads_the_record_once_however_many_checks_wait_for_it() -> None:
    reads = 0

    async def source() -> dict[str, timedelta]:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0)  # the other checks arrive while the record is read
        return ON_RECORD

    revocations = InMemoryRevocationList(source, counter=MemoryStorage())
    keys = ["sid:ended", "sid:live"] * 5

    answers = await asyncio.gather(*(revocations.check(key, user_id=uuid4()) for key in keys))

    assert [answer.revoked for answer in answers] == [True, False] * 5
    assert (await revocations.check("sid:ended", user_id=uuid4())).revoked
    assert reads == 1


async def test_a_record_it_cannot_read_refuses_the_check_and_is_read_again_next_time() -> None:
    reads = 0

    async def source() -> dict[str, timedelta]:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise ConnectionRefusedError("the database is down")
        return ON_RECORD

    revocations = InMemoryRevocationList(source, counter=MemoryStorage())

    with pytest.raises(ConnectionRefusedError):
        await revocations.check("sid:ended", user_id=uuid4())
    assert (await revocations.check("sid:ended", user_id=uuid4())).revoked
    assert reads == 2


async def test_a_hit_is_counted_in_the_rate_limiters_store_with_the_check() -> None:
    async def source() -> dict[str, timedelta]:
        return {}

    limits = MemoryStorage()
    revocations = InMemoryRevocationList(source, counter=limits)
    hit = Hit("default/user:ada/0", 60, resets_at=60)

    first = await revocations.check("sid:live", user_id=uuid4(), hit=hit)
    second = await revocations.check("sid:live", user_id=uuid4(), hit=hit)
    unhit = await revocations.check("sid:live", user_id=uuid4())

    assert (first.hits, second.hits, unhit.hits) == (1, 2, None)
    assert await limits.get(hit.key) == 2  # the limiter's own counter: one count per client
