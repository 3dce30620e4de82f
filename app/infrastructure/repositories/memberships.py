"""Project memberships in SQL: who is in a project, and as what."""

from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.application.ports import SortValues
from app.domain.projects import Member, Membership, ProjectRole
from app.infrastructure.orm import MembershipRow, UserRow
from app.infrastructure.repositories.base import Row, SqlRepository
from app.infrastructure.repositories.rows import RowMapper

memberships = cast(sa.Table, MembershipRow.__table__)
users = cast(sa.Table, UserRow.__table__)

MEMBERSHIPS = RowMapper(
    memberships,
    Membership,
    stored={"role": lambda role: role.value},
    loaded={"role": ProjectRole},
)

# A literal, not a parameter: reads run statements whose every value the caller passes.
_NOT_OWNER = memberships.c.role != sa.literal_column(f"'{ProjectRole.OWNER.value}'")
_ORDER = (_NOT_OWNER, memberships.c.added_at, memberships.c.user_id)
_MEMBERS = (
    sa.select(
        memberships.c.user_id,
        users.c.email,
        users.c.full_name,
        memberships.c.role,
        memberships.c.added_at,
    )
    .join(users, users.c.id == memberships.c.user_id)
    .where(memberships.c.project_id == sa.bindparam("project_id"))
)
_MEMBER = _MEMBERS.where(memberships.c.user_id == sa.bindparam("user_id"))
_PAGE = _MEMBERS.order_by(*_ORDER).limit(sa.bindparam("limit", type_=sa.Integer()))
_PAGE_AFTER = _PAGE.where(
    sa.tuple_(*_ORDER)
    > sa.tuple_(
        sa.bindparam("after_0", type_=sa.Boolean()),
        sa.bindparam("after_1", type_=memberships.c.added_at.type),
        sa.bindparam("after_2", type_=sa.Uuid()),
    )
)
_USER_IDS = sa.select(memberships.c.user_id).where(
    memberships.c.project_id == sa.bindparam("project_id")
)
# Gone with what it was: a member.removed entry records the role and the join time.
_REMOVE = (
    sa.delete(memberships)
    .where(
        memberships.c.project_id == sa.bindparam("project_id", type_=sa.Uuid()),
        memberships.c.user_id == sa.bindparam("user_id", type_=sa.Uuid()),
    )
    .returning(*MEMBERSHIPS.columns)
)
_OF_USER = MEMBERSHIPS.select().where(memberships.c.user_id == sa.bindparam("user_id"))

_IDS = postgresql.ARRAY(sa.Uuid())
_OF_PROJECTS = {
    "postgresql": MEMBERSHIPS.select().where(
        memberships.c.project_id == sa.any_(sa.bindparam("ids", type_=_IDS))
    ),
    "sqlite": MEMBERSHIPS.select().where(
        memberships.c.project_id.in_(sa.bindparam("ids", expanding=True))
    ),
}

# Insert unless a member already: the primary key decides, even under a race.
_JOIN = {
    "postgresql": postgresql.insert(memberships)
    .on_conflict_do_nothing(index_elements=[memberships.c.project_id, memberships.c.user_id])
    .returning(memberships.c.user_id),
    "sqlite": sqlite.insert(memberships)
    .on_conflict_do_nothing(index_elements=[memberships.c.project_id, memberships.c.user_id])
    .returning(memberships.c.user_id),
}


def _to_member(row: Row) -> Member:
    return Member(**{**row, "role": ProjectRole(row["role"])})


def _this(project_id: UUID, user_id: UUID) -> sa.ColumnElement[bool]:
    return sa.and_(memberships.c.project_id == project_id, memberships.c.user_id == user_id)


class SqlAlchemyMembershipRepository(SqlRepository):
    async def add(self, membership: Membership) -> bool:
        values = MEMBERSHIPS.values(membership)
        return bool(await self._rows(_JOIN[self._statements.dialect], values))

    async def get(self, project_id: UUID, user_id: UUID) -> Member | None:
        row = await self._first(_MEMBER, {"project_id": project_id, "user_id": user_id})
        return None if row is None else _to_member(row)

    async def set_role(self, project_id: UUID, user_id: UUID, role: ProjectRole) -> bool:
        statement = sa.update(memberships).where(_this(project_id, user_id)).values(role=role.value)
        return await self._write(statement) == 1

    async def remove(self, project_id: UUID, user_id: UUID) -> Membership | None:
        row = await self._first(_REMOVE, {"project_id": project_id, "user_id": user_id})
        return None if row is None else MEMBERSHIPS.load(row)

    async def find(self, project_id: UUID, *, after: SortValues | None, limit: int) -> list[Member]:
        params: dict[str, Any] = {"project_id": project_id, "limit": limit}
        if after is not None:
            params.update({f"after_{index}": value for index, value in enumerate(after)})
        rows = await self._rows(_PAGE if after is None else _PAGE_AFTER, params)
        return [_to_member(row) for row in rows]

    async def user_ids(self, project_id: UUID) -> list[UUID]:
        return [row["user_id"] for row in await self._rows(_USER_IDS, {"project_id": project_id})]

    async def of_user(self, user_id: UUID) -> list[Membership]:
        return [MEMBERSHIPS.load(row) for row in await self._rows(_OF_USER, {"user_id": user_id})]

    async def of_projects(self, project_ids: Sequence[UUID]) -> list[Membership]:
        if not project_ids:
            return []
        rows = await self._rows(_OF_PROJECTS[self._statements.dialect], {"ids": list(project_ids)})
        return [MEMBERSHIPS.load(row) for row in rows]
