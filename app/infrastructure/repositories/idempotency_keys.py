"""Idempotency keys in SQL, claimed in the transaction of the create they guard."""

import hashlib
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.application.ports import IdempotencyRecord
from app.domain.errors import IdempotencyKeyInFlight
from app.infrastructure.orm import IdempotencyKeyRow
from app.infrastructure.repositories.base import SqlRepository
from app.infrastructure.repositories.rows import RowMapper

keys = cast(sa.Table, IdempotencyKeyRow.__table__)
KEYS = RowMapper(keys, IdempotencyRecord)
_SWEEP_BATCH = 100


def _claim(statement: postgresql.Insert | sqlite.Insert) -> sa.Executable:
    """Insert the record, or take over an expired one; RETURNING says whether it was ours."""
    return statement.on_conflict_do_update(
        index_elements=[keys.c.user_id, keys.c.key],
        set_={name: statement.excluded[name] for name in ("fingerprint", "todo_id", "created_at")},
        where=keys.c.created_at <= sa.bindparam("live_since", type_=keys.c.created_at.type),
    ).returning(keys.c.user_id)


_CLAIM = {"postgresql": _claim(postgresql.insert(keys)), "sqlite": _claim(sqlite.insert(keys))}
_BY_KEY = KEYS.select().where(
    keys.c.user_id == sa.bindparam("match_user_id"), keys.c.key == sa.bindparam("match_key")
)
# Oldest first through the created_at index; SKIP LOCKED: a sweep never waits for another.
_EXPIRED = (
    sa.select(keys.c.user_id, keys.c.key)
    .where(keys.c.created_at <= sa.bindparam("live_since", type_=keys.c.created_at.type))
    .order_by(keys.c.created_at)
    .limit(_SWEEP_BATCH)
    .with_for_update(skip_locked=True)
)
_SWEEP = sa.delete(keys).where(sa.tuple_(keys.c.user_id, keys.c.key).in_(_EXPIRED))
# Who holds a key on PostgreSQL: a transaction-scoped advisory lock, tried without waiting.
# A duplicate then answers 409 at once instead of queueing behind the first request on the
# unique index, and the lock ends with the transaction, or with its connection when the
# process holding it dies, so nothing a crashed request held can block its retry.
_TRY_LOCK = sa.select(
    sa.func.pg_try_advisory_xact_lock(sa.bindparam("lock", type_=sa.BigInteger)).label("locked")
)


def _lock_id(record: IdempotencyRecord) -> int:
    """The key as a 64-bit lock id; a collision costs at most a needless 409."""
    digest = hashlib.blake2b(f"{record.user_id}:{record.key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SqlAlchemyIdempotencyKeyRepository(SqlRepository):
    async def claim(
        self, record: IdempotencyRecord, *, live_since: datetime
    ) -> IdempotencyRecord | None:
        dialect = self._statements.dialect
        # SQLite needs no lock: its engine has one connection, held by a unit of work to its
        # end, so a duplicate waits its turn and then sees the first one's commit, or nothing.
        if dialect == "postgresql":
            (row,) = await self._rows(_TRY_LOCK, {"lock": _lock_id(record)})
            if not row["locked"]:
                # The holder may be another replay of a finished request: that one is
                # committed, and answers this retry too. Only an unfinished one is in flight.
                earlier = await self._committed(record, live_since=live_since)
                if earlier is None:
                    raise IdempotencyKeyInFlight
                return earlier
        values = {**KEYS.values(record), "live_since": live_since}
        if await self._first(_CLAIM[dialect], values) is not None:
            return None
        return await self._committed(record, live_since=None)

    async def _committed(
        self, record: IdempotencyRecord, *, live_since: datetime | None
    ) -> IdempotencyRecord | None:
        params = {"match_user_id": record.user_id, "match_key": record.key}
        row = await self._first(_BY_KEY, params)
        if row is None:
            return None
        record = KEYS.load(row)
        return None if live_since is not None and record.created_at <= live_since else record

    async def delete_expired(self, *, live_since: datetime) -> int:
        return await self._write(_SWEEP, {"live_since": live_since})
