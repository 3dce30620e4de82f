"""Users in SQL."""

from functools import lru_cache
from typing import Any, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.application.ports import SortValues
from app.domain.errors import EmailTaken
from app.domain.users import Role, User, UserFilter
from app.infrastructure.orm import UserRow
from app.infrastructure.repositories.base import SqlRepository, like_escaped, planned_per_run
from app.infrastructure.repositories.rows import RowMapper

users = cast(sa.Table, UserRow.__table__)


USERS = RowMapper(users, User, stored={"role": lambda role: role.value}, loaded={"role": Role})


# Read on every request that misses the actor cache: built once.
_BY_ID = USERS.select().where(users.c.id == sa.bindparam("match_id"))
_BY_EMAIL = USERS.select().where(users.c.email == sa.bindparam("match_email"))
# FOR NO KEY UPDATE on PostgreSQL: it queues the user's writes and session changes, but not
# the foreign-key checks of rows inserted for the user (todos), which take KEY SHARE.
# SQLite has no row locks; its one connection runs one transaction at a time (db.py).
_LOCK = _BY_ID.with_for_update(key_share=True)


@lru_cache(maxsize=16)
def _find_statement(*, role: bool, is_active: bool, text: bool, after: bool) -> sa.Select[Any]:
    """Built once per combination of filters; newest first, the id breaking ties."""
    c = users.c
    statement = USERS.select()
    if role:
        statement = statement.where(c.role == sa.bindparam("role"))
    if is_active:
        statement = statement.where(c.is_active == sa.bindparam("is_active"))
    if text:
        statement = statement.where(
            sa.or_(
                c.email.icontains(sa.bindparam("email_text", type_=sa.String()), escape="/"),
                c.full_name.icontains(sa.bindparam("name_text", type_=sa.String()), escape="/"),
            )
        )
    if after:
        statement = statement.where(
            sa.tuple_(c.created_at, c.id)
            < sa.tuple_(
                sa.bindparam("after_created_at", type_=c.created_at.type),
                sa.bindparam("after_id", type_=c.id.type),
            )
        )
    return planned_per_run(
        statement.order_by(c.created_at.desc(), c.id.desc()).limit(
            sa.bindparam("limit", type_=sa.Integer())
        )
    )


class SqlAlchemyUserRepository(SqlRepository):
    async def _one(
        self, statement: sa.Select[Any], parameters: dict[str, Any] | None = None
    ) -> User | None:
        row = await self._first(statement, parameters)
        return USERS.load(row) if row else None

    async def get(self, user_id: UUID) -> User | None:
        return await self._one(_BY_ID, {"match_id": user_id})

    async def get_by_email(self, email: str) -> User | None:
        return await self._one(_BY_EMAIL, {"match_email": email})

    async def add(self, user: User) -> None:
        await self._write_unique(sa.insert(users).values(USERS.values(user)))

    async def lock(self, user_id: UUID) -> User | None:
        return await self._one(_LOCK, {"match_id": user_id})

    async def update(self, user: User, *, before: User) -> None:
        # Only what changed: a column this write did not mean to touch is never written back.
        old = USERS.values(before)
        changed = {name: value for name, value in USERS.values(user).items() if value != old[name]}
        if changed:
            await self._write_unique(sa.update(users).where(users.c.id == user.id).values(changed))

    async def _write_unique(self, statement: sa.Executable) -> None:
        try:
            await self._write(statement)
        except IntegrityError:
            # The unique index decides, so two registrations racing for one email end in 409.
            raise EmailTaken from None

    async def delete(self, user_id: UUID) -> None:
        await self._write(sa.delete(users).where(users.c.id == user_id))

    async def find(self, query: UserFilter, *, after: SortValues | None, limit: int) -> list[User]:
        parameters: dict[str, Any] = {"limit": limit}
        if query.role is not None:
            parameters["role"] = query.role.value
        if query.is_active is not None:
            parameters["is_active"] = query.is_active
        if query.text:
            parameters["email_text"] = like_escaped(query.email_text or query.text)
            parameters["name_text"] = like_escaped(query.text)
        if after is not None:
            parameters["after_created_at"], parameters["after_id"] = after
        statement = _find_statement(
            role=query.role is not None,
            is_active=query.is_active is not None,
            text=bool(query.text),
            after=after is not None,
        )
        return [USERS.load(row) for row in await self._rows(statement, parameters)]

    async def lock_active_admins(self) -> list[UUID]:
        statement = (
            sa.select(users.c.id)
            .where(users.c.role == Role.ADMIN.value, users.c.is_active.is_(True))
            .order_by(users.c.id)  # one order for every locker: no deadlock between two
            .with_for_update()
        )
        return [row["id"] for row in await self._rows(statement)]
