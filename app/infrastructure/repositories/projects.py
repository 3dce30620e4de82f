"""Projects in SQL, each read with the reader's membership in it."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.application.ports import SortValues
from app.domain.projects import Project, ProjectRole, ProjectView
from app.infrastructure.orm import MembershipRow, ProjectRow
from app.infrastructure.repositories.base import Row, SqlRepository
from app.infrastructure.repositories.rows import RowMapper

projects = cast(sa.Table, ProjectRow.__table__)
memberships = cast(sa.Table, MembershipRow.__table__)

PROJECTS = RowMapper(projects, Project)


def _view(row: Row) -> ProjectView:
    """A project read with the reader's role (`reader_role`, NULL: not a member)."""
    role = row.pop("reader_role")
    return ProjectView(PROJECTS.load(row), None if role is None else ProjectRole(role))


_INSERT = sa.insert(projects)
_ADD_OWNER = sa.insert(memberships)
_ROLE = memberships.c.role.label("reader_role")
# The project and the reader's role in it (NULL: not a member), in one read.
_BY_ID = (
    PROJECTS.select()
    .add_columns(_ROLE)
    .select_from(
        projects.outerjoin(
            memberships,
            sa.and_(
                memberships.c.project_id == projects.c.id,
                memberships.c.user_id == sa.bindparam("reader_id", type_=sa.Uuid()),
            ),
        )
    )
    .where(projects.c.id == sa.bindparam("match_id"))
)
_INBOX = PROJECTS.select().where(
    projects.c.owner_id == sa.bindparam("owner_id"), projects.c.is_inbox.is_(True)
)
_SAVE = sa.update(projects).where(
    projects.c.id == sa.bindparam("match_id"), projects.c.version == sa.bindparam("match_version")
)
_NOT_INBOX = sa.not_(projects.c.is_inbox)
_ORDER = (_NOT_INBOX, memberships.c.added_at, projects.c.id)
_MINE = (
    PROJECTS.select()
    .add_columns(_ROLE, memberships.c.added_at.label("added_at"))
    .join(memberships, memberships.c.project_id == projects.c.id)
    .where(memberships.c.user_id == sa.bindparam("member_id"))
    .order_by(*_ORDER)
    .limit(sa.bindparam("limit", type_=sa.Integer()))
)
_MINE_AFTER = _MINE.where(
    sa.tuple_(*_ORDER)
    > sa.tuple_(
        sa.bindparam("after_0", type_=sa.Boolean()),
        sa.bindparam("after_1", type_=memberships.c.added_at.type),
        sa.bindparam("after_2", type_=sa.Uuid()),
    )
)
# Sync: the member's projects by id; projects by id (live events read their members apart).
_BY_PROJECT_ID = (
    PROJECTS.select()
    .add_columns(_ROLE)
    .join(memberships, memberships.c.project_id == projects.c.id)
    .where(memberships.c.user_id == sa.bindparam("member_id"))
    .order_by(projects.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer()))
)
_BY_PROJECT_ID_AFTER = _BY_PROJECT_ID.where(
    projects.c.id > sa.bindparam("after_id", type_=sa.Uuid())
)
_IDS = postgresql.ARRAY(sa.Uuid())
_MANY = {
    "postgresql": PROJECTS.select().where(
        projects.c.id == sa.any_(sa.bindparam("ids", type_=_IDS))
    ),
    "sqlite": PROJECTS.select().where(projects.c.id.in_(sa.bindparam("ids", expanding=True))),
}
_OWNED = sa.select(projects.c.id).where(projects.c.owner_id == sa.bindparam("owner_id"))


class SqlAlchemyProjectRepository(SqlRepository):
    async def add(self, project: Project) -> None:
        await self._write(_INSERT, PROJECTS.values(project))
        await self._write(
            _ADD_OWNER,
            {
                "project_id": project.id,
                "user_id": project.owner_id,
                "role": ProjectRole.OWNER.value,
                "added_at": project.created_at,
            },
        )

    async def get(self, project_id: UUID, *, reader_id: UUID) -> ProjectView | None:
        row = await self._first(_BY_ID, {"match_id": project_id, "reader_id": reader_id})
        return None if row is None else _view(row)

    async def inbox(self, owner_id: UUID) -> Project | None:
        row = await self._first(_INBOX, {"owner_id": owner_id})
        return None if row is None else PROJECTS.load(row)

    async def save(self, project: Project, *, expected_version: int) -> bool:
        params = {
            **PROJECTS.values(project),
            "match_id": project.id,
            "match_version": expected_version,
        }
        return await self._write(_SAVE, params) == 1

    async def delete(self, project_id: UUID) -> None:
        # Its todos, memberships and invitations go with it (ON DELETE CASCADE).
        await self._write(sa.delete(projects).where(projects.c.id == project_id))

    async def find(
        self, member_id: UUID, *, after: SortValues | None, limit: int
    ) -> list[tuple[ProjectView, datetime]]:
        params: dict[str, Any] = {"member_id": member_id, "limit": limit}
        if after is not None:
            params.update({f"after_{index}": value for index, value in enumerate(after)})
        rows = await self._rows(_MINE if after is None else _MINE_AFTER, params)
        return [(_view(row), added_at) for row in rows for added_at in (row.pop("added_at"),)]

    async def owned(self, owner_id: UUID) -> list[UUID]:
        return [row["id"] for row in await self._rows(_OWNED, {"owner_id": owner_id})]

    async def member_of(
        self, member_id: UUID, *, after: UUID | None, limit: int
    ) -> list[ProjectView]:
        params: dict[str, Any] = {"member_id": member_id, "limit": limit}
        if after is not None:
            params["after_id"] = after
        rows = await self._rows(_BY_PROJECT_ID if after is None else _BY_PROJECT_ID_AFTER, params)
        return [_view(row) for row in rows]

    async def many(self, project_ids: Sequence[UUID]) -> list[Project]:
        if not project_ids:
            return []
        rows = await self._rows(_MANY[self._statements.dialect], {"ids": list(project_ids)})
        return [PROJECTS.load(row) for row in rows]
