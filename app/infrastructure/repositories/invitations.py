"""Invitations in SQL: stored by the hash of their token, spent by one conditional UPDATE."""

from datetime import datetime
from typing import Any, cast
from uuid import UUID

import sqlalchemy as sa

from app.application.ports import SortValues
from app.domain.projects import Invitation, InvitationPreview, ProjectRole
from app.infrastructure.orm import InvitationRow, ProjectRow, UserRow
from app.infrastructure.repositories.base import SqlRepository, in_locked_batch
from app.infrastructure.repositories.rows import RowMapper

invitations = cast(sa.Table, InvitationRow.__table__)
projects = cast(sa.Table, ProjectRow.__table__)
users = cast(sa.Table, UserRow.__table__)

INVITATIONS = RowMapper(
    invitations,
    Invitation,
    stored={"role": lambda role: role.value},
    loaded={"role": ProjectRole},
)
_NOW = sa.bindparam("now", type_=invitations.c.expires_at.type)
_PENDING = sa.and_(invitations.c.accepted_at.is_(None), invitations.c.expires_at > _NOW)
_PAGE = (
    INVITATIONS.select()
    .where(invitations.c.project_id == sa.bindparam("project_id"), _PENDING)
    .order_by(invitations.c.created_at, invitations.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer()))
)
_PAGE_AFTER = _PAGE.where(
    sa.tuple_(invitations.c.created_at, invitations.c.id)
    > sa.tuple_(
        sa.bindparam("after_0", type_=invitations.c.created_at.type),
        sa.bindparam("after_1", type_=sa.Uuid()),
    )
)
_USABLE = (
    INVITATIONS.select()
    .add_columns(projects.c.name.label("project_name"), users.c.full_name.label("inviter_name"))
    .join(projects, projects.c.id == invitations.c.project_id)
    .join(users, users.c.id == invitations.c.created_by)
    .where(invitations.c.token_hash == sa.bindparam("token_hash"), _PENDING)
)
# Spent in the statement that finds it still pending: of two accepts, one matches.
_SPEND = (
    sa.update(invitations)
    .where(invitations.c.id == sa.bindparam("match_id"), _PENDING)
    .values(
        accepted_at=sa.bindparam("accepted_at", type_=invitations.c.accepted_at.type),
        accepted_by=sa.bindparam("accepted_by", type_=sa.Uuid()),
    )
)
# The clean-up (application/maintenance.py), oldest first through the expires_at index.
_DELETE_EXPIRED = {
    dialect: sa.delete(invitations).where(chosen)
    for dialect, chosen in in_locked_batch(
        invitations.c.id,
        sa.select(invitations.c.id)
        .where(invitations.c.expires_at <= _NOW)
        .order_by(invitations.c.expires_at)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        .with_for_update(skip_locked=True),
    ).items()
}


class SqlAlchemyInvitationRepository(SqlRepository):
    async def add(self, invitation: Invitation) -> None:
        await self._write(sa.insert(invitations), INVITATIONS.values(invitation))

    async def pending(
        self, project_id: UUID, *, now: datetime, after: SortValues | None, limit: int
    ) -> list[Invitation]:
        params: dict[str, Any] = {"project_id": project_id, "now": now, "limit": limit}
        if after is not None:
            params.update({f"after_{index}": value for index, value in enumerate(after)})
        rows = await self._rows(_PAGE if after is None else _PAGE_AFTER, params)
        return [INVITATIONS.load(row) for row in rows]

    async def revoke(self, project_id: UUID, invitation_id: UUID, *, now: datetime) -> bool:
        statement = sa.delete(invitations).where(
            invitations.c.id == invitation_id, invitations.c.project_id == project_id, _PENDING
        )
        return await self._write(statement, {"now": now}) == 1

    async def usable(self, token_hash: str, *, now: datetime) -> InvitationPreview | None:
        row = await self._first(_USABLE, {"token_hash": token_hash, "now": now})
        if row is None:
            return None
        project_name, inviter_name = row.pop("project_name"), row.pop("inviter_name")
        return InvitationPreview(INVITATIONS.load(row), project_name, inviter_name)

    async def spend(self, invitation_id: UUID, *, user_id: UUID, now: datetime) -> bool:
        params = {"match_id": invitation_id, "now": now, "accepted_at": now, "accepted_by": user_id}
        return await self._write(_SPEND, params) == 1

    async def delete_expired(self, *, now: datetime, limit: int) -> int:
        statement = _DELETE_EXPIRED[self._statements.dialect]
        return await self._write(statement, {"now": now, "limit": limit})
