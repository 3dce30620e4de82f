"""Refresh tokens in SQL, stored as hashes and grouped in families (one per login)."""

from datetime import datetime
from typing import cast
from uuid import UUID

import sqlalchemy as sa

from app.domain.sessions import RefreshToken
from app.infrastructure.orm import RefreshTokenRow
from app.infrastructure.repositories.base import SqlRepository, in_locked_batch
from app.infrastructure.repositories.rows import RowMapper

tokens = cast(sa.Table, RefreshTokenRow.__table__)
TOKENS = RowMapper(tokens, RefreshToken)


_revoked = tokens.alias("revoked")
# One statement checks and spends: the token unspent and not revoked, and no token of its
# family revoked (a family ends as a whole).
_SPEND = (
    sa.update(tokens)
    .where(
        tokens.c.id == sa.bindparam("token_id"),
        tokens.c.used_at.is_(None),
        tokens.c.revoked_at.is_(None),
        ~sa.exists().where(
            _revoked.c.family_id == sa.bindparam("family"), _revoked.c.revoked_at.is_not(None)
        ),
    )
    .values(used_at=sa.bindparam("now", type_=tokens.c.used_at.type))
)
_INSERT = sa.insert(tokens)
_REVOKE_FAMILY = (
    sa.update(tokens)
    .where(tokens.c.family_id == sa.bindparam("family"), tokens.c.revoked_at.is_(None))
    .values(revoked_at=sa.bindparam("now", type_=tokens.c.revoked_at.type))
)
_BY_HASH = TOKENS.select().where(tokens.c.token_hash == sa.bindparam("match_hash"))
# One user's tokens, by the index on user_id: as cheap as they are few.
_REVOKED_SINCE = (
    sa.select(tokens.c.family_id, sa.func.max(tokens.c.revoked_at).label("revoked_at"))
    .where(
        tokens.c.user_id == sa.bindparam("user_id", type_=tokens.c.user_id.type),
        tokens.c.revoked_at > sa.bindparam("since", type_=tokens.c.revoked_at.type),
    )
    .group_by(tokens.c.family_id)
)
# The clean-up (application/maintenance.py), oldest first through the expires_at index.
# Deleting an expired token never loses a revocation still in force: each access token of a
# session was issued with one of its refresh tokens and expires no later, so while a session
# has an access token alive, it has an unexpired refresh token that keeps its revocation.
_DELETE_EXPIRED = {
    dialect: sa.delete(tokens).where(chosen)
    for dialect, chosen in in_locked_batch(
        tokens.c.id,
        sa.select(tokens.c.id)
        .where(tokens.c.expires_at <= sa.bindparam("now", type_=tokens.c.expires_at.type))
        .order_by(tokens.c.expires_at)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        .with_for_update(skip_locked=True),
    ).items()
}


class SqlAlchemyRefreshTokenRepository(SqlRepository):
    async def add(self, token: RefreshToken) -> None:
        # Built once, as every hot statement: one built per call would be compiled per call.
        await self._write(_INSERT, TOKENS.values(token))

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        row = await self._first(_BY_HASH, {"match_hash": token_hash})
        return TOKENS.load(row) if row else None

    async def spend(self, token: RefreshToken, *, now: datetime) -> bool:
        parameters = {"token_id": token.id, "family": token.family_id, "now": now}
        return await self._write(_SPEND, parameters) == 1

    async def revoke_family(self, family_id: UUID, *, now: datetime) -> None:
        await self._write(_REVOKE_FAMILY, {"family": family_id, "now": now})

    async def revoke_user_families(
        self, user_id: UUID, *, now: datetime, keep: UUID | None = None
    ) -> list[UUID]:
        live = sa.and_(tokens.c.user_id == user_id, tokens.c.revoked_at.is_(None))
        if keep is not None:
            live = sa.and_(live, tokens.c.family_id != keep)
        statement = sa.select(tokens.c.family_id).where(live).distinct()
        families = [row["family_id"] for row in await self._rows(statement)]
        await self._write(sa.update(tokens).where(live).values(revoked_at=now))
        return families

    async def revoked_families(self, user_id: UUID, *, since: datetime) -> dict[UUID, datetime]:
        rows = await self._rows(_REVOKED_SINCE, {"user_id": user_id, "since": since})
        return {row["family_id"]: row["revoked_at"] for row in rows}

    async def delete_expired(self, *, now: datetime, limit: int) -> int:
        statement = _DELETE_EXPIRED[self._statements.dialect]
        return await self._write(statement, {"now": now, "limit": limit})
