"""Users in SQL."""

from typing import Any, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.application.ports import SortValues
from app.domain.errors import EmailTaken
from app.domain.users import Role, User, UserFilter
from app.infrastructure.orm import UserRow
from app.infrastructure.repositories.base import AnyRow, SqlRepository, mapped

users = cast(sa.Table, UserRow.__table__)


def _to_user(row: AnyRow) -> User:
    values = mapped(_BY_ID, row)  # every query here selects the whole row, as _BY_ID does
    return User(**{**values, "role": Role(values["role"])})


def _values(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "password_hash": user.password_hash,
        "full_name": user.full_name,
        "role": user.role.value,
        "is_active": user.is_active,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


# Read on every request that misses the actor cache: built once.
_BY_ID = sa.select(users).where(users.c.id == sa.bindparam("match_id"))
# FOR NO KEY UPDATE on PostgreSQL: it queues the user's writes and session changes, but not
# the foreign-key checks of rows inserted for the user (todos), which take KEY SHARE.
# SQLite has no row locks; its one connection runs one transaction at a time (db.py).
_LOCK = _BY_ID.with_for_update(key_share=True)


class SqlAlchemyUserRepository(SqlRepository):
    async def _one(
        self, statement: sa.Select[Any], parameters: dict[str, Any] | None = None
    ) -> User | None:
        row = await self._first(statement, parameters)
        return _to_user(row) if row else None

    async def get(self, user_id: UUID) -> User | None:
        row = await self._first(_BY_ID, {"match_id": user_id})
        return _to_user(row) if row else None

    async def get_by_email(self, email: str) -> User | None:
        return await self._one(sa.select(users).where(users.c.email == email))

    async def add(self, user: User) -> None:
        await self._write_unique(sa.insert(users).values(_values(user)))

    async def lock(self, user_id: UUID) -> User | None:
        return await self._one(_LOCK, {"match_id": user_id})

    async def update(self, user: User, *, before: User) -> None:
        # Only what changed: a column this write did not mean to touch is never written back.
        old = _values(before)
        changed = {name: value for name, value in _values(user).items() if value != old[name]}
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
        statement = sa.select(users)
        if query.role is not None:
            statement = statement.where(users.c.role == query.role.value)
        if query.is_active is not None:
            statement = statement.where(users.c.is_active == query.is_active)
        if query.text:
            statement = statement.where(
                sa.or_(
                    users.c.email.icontains(query.email_text, autoescape=True),
                    users.c.full_name.icontains(query.text, autoescape=True),
                )
            )
        if after is not None:
            statement = statement.where(
                sa.tuple_(users.c.created_at, users.c.id) < sa.tuple_(*after)
            )
        statement = statement.order_by(users.c.created_at.desc(), users.c.id.desc()).limit(limit)
        return [_to_user(row) for row in await self._rows(statement)]

    async def lock_active_admins(self) -> list[UUID]:
        statement = (
            sa.select(users.c.id)
            .where(users.c.role == Role.ADMIN.value, users.c.is_active.is_(True))
            .order_by(users.c.id)  # one order for every locker: no deadlock between two
            .with_for_update()
        )
        return [user_id for (user_id,) in await self._rows(statement)]
