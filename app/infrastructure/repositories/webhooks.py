"""Webhooks, their deliveries, and how far dispatch has read the activity log, in SQL."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.application.ports import SortValues
from app.domain.activity import Position
from app.domain.webhooks import Delivery, DeliveryError, DeliveryStatus, Webhook
from app.infrastructure.orm import WebhookDeliveryRow, WebhookDispatchRow, WebhookRow
from app.infrastructure.repositories.base import SqlRepository, in_locked_batch
from app.infrastructure.repositories.rows import RowMapper
from app.infrastructure.trace_context import current_traceparent

webhooks = cast(sa.Table, WebhookRow.__table__)
deliveries = cast(sa.Table, WebhookDeliveryRow.__table__)
dispatch = cast(sa.Table, WebhookDispatchRow.__table__)

WEBHOOKS = RowMapper(webhooks, Webhook, stored={"events": list}, loaded={"events": tuple})
DELIVERIES = RowMapper(
    deliveries,
    Delivery,
    not_fields={"lease_until": "the attempt in progress's hold on it: claim() takes it"},
    stored={
        "status": lambda status: status.value,
        "error": lambda error: None if error is None else error.value,
    },
    loaded={
        "status": DeliveryStatus,
        "error": lambda error: None if error is None else DeliveryError(error),
    },
)
_LIMIT = sa.bindparam("limit", type_=sa.Integer())


@dataclass(frozen=True, slots=True)
class DispatchRow:
    """The one row of webhook_dispatch: where dispatch has read the log up to."""

    id: int
    txid: int
    n: int


DISPATCH = RowMapper(dispatch, DispatchRow)


def _after(table: sa.Table, *, descending: bool) -> sa.ColumnElement[bool]:
    key = sa.tuple_(table.c.created_at, table.c.id)
    bound = sa.tuple_(
        sa.bindparam("after_0", type_=table.c.created_at.type),
        sa.bindparam("after_1", type_=sa.Uuid()),
    )
    return key < bound if descending else key > bound


_BY_ID = WEBHOOKS.select().where(webhooks.c.id == sa.bindparam("webhook_id", type_=sa.Uuid()))
_OF_USER = (
    WEBHOOKS.select()
    .where(webhooks.c.user_id == sa.bindparam("user_id", type_=sa.Uuid()))
    .order_by(webhooks.c.created_at, webhooks.c.id)
    .limit(_LIMIT)
)
_OF_USER_AFTER = _OF_USER.where(_after(webhooks, descending=False))
_ACTIVE = WEBHOOKS.select().where(webhooks.c.active.is_(True))
_UPDATE = (
    sa.update(webhooks)
    .where(webhooks.c.id == sa.bindparam("match_id", type_=sa.Uuid()))
    .values(
        {
            name: sa.bindparam(name, type_=webhooks.c[name].type)
            for name in WEBHOOKS.names
            if name != "id"
        }
    )
)
_POSITION = DISPATCH.select().where(dispatch.c.id == 1).with_for_update()

_DELIVERY = DELIVERIES.select().where(
    deliveries.c.id == sa.bindparam("delivery_id", type_=sa.Uuid())
)
_OF_WEBHOOK = (
    DELIVERIES.select()
    .where(deliveries.c.webhook_id == sa.bindparam("webhook_id", type_=sa.Uuid()))
    .order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc())
    .limit(_LIMIT)
)
_OF_WEBHOOK_AFTER = _OF_WEBHOOK.where(_after(deliveries, descending=True))
_DUE = (
    DELIVERIES.select()
    .where(
        deliveries.c.next_attempt_at.is_not(None),
        deliveries.c.next_attempt_at
        < sa.bindparam("before", type_=deliveries.c.next_attempt_at.type),
    )
    .order_by(deliveries.c.next_attempt_at)
    .limit(_LIMIT)
)
_OUTCOME = ("status", "attempts", "response_status", "error", "duration_ms", "next_attempt_at")
_UPDATE_DELIVERY = (
    sa.update(deliveries)
    .where(deliveries.c.id == sa.bindparam("match_id", type_=sa.Uuid()))
    .values(
        {name: sa.bindparam(name, type_=deliveries.c[name].type) for name in _OUTCOME}
        | {"lease_until": None}
    )
)
_AT = deliveries.c.next_attempt_at.type
_CLAIM = (
    sa.update(deliveries)
    .where(
        deliveries.c.id == sa.bindparam("match_id", type_=sa.Uuid()),
        deliveries.c.next_attempt_at <= sa.bindparam("now", type_=_AT),
        sa.or_(
            deliveries.c.lease_until.is_(None),
            deliveries.c.lease_until < sa.bindparam("now_", type_=_AT),
        ),
    )
    .values(lease_until=sa.bindparam("until", type_=_AT))
    .returning(*DELIVERIES.columns)
)
_COUNTS = sa.select(deliveries.c.status, sa.func.count().label("count")).group_by(
    deliveries.c.status
)
_OLDEST_DUE = sa.select(sa.func.min(deliveries.c.next_attempt_at).label("oldest")).where(
    deliveries.c.next_attempt_at.is_not(None)
)
# Settled deliveries (succeeded or failed: the only ones without a next attempt), the oldest
# first, through the partial index of the settled ones by creation.
_DELETE_SETTLED = {
    dialect: sa.delete(deliveries).where(chosen)
    for dialect, chosen in in_locked_batch(
        deliveries.c.id,
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.next_attempt_at.is_(None),
            deliveries.c.created_at < sa.bindparam("created_before", type_=_AT),
        )
        .order_by(deliveries.c.created_at)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        .with_for_update(skip_locked=True),
    ).items()
}
_DIALECTS = {"postgresql": postgresql, "sqlite": sqlite}
_CHUNK = 200  # rows per INSERT: well under SQLite's 32 766 parameters (13 columns each)


class SqlAlchemyWebhookRepository(SqlRepository):
    async def add(self, webhook: Webhook) -> None:
        await self._write(sa.insert(webhooks), WEBHOOKS.values(webhook))

    async def get(self, webhook_id: UUID) -> Webhook | None:
        row = await self._first(_BY_ID, {"webhook_id": webhook_id})
        return None if row is None else WEBHOOKS.load(row)

    async def update(self, webhook: Webhook) -> None:
        values = WEBHOOKS.values(webhook)
        values["match_id"] = values.pop("id")
        await self._write(_UPDATE, values)

    async def delete(self, webhook_id: UUID) -> bool:
        statement = sa.delete(webhooks).where(webhooks.c.id == webhook_id)
        return await self._write(statement) == 1

    async def of_user(
        self, user_id: UUID, *, after: SortValues | None, limit: int
    ) -> list[Webhook]:
        params: dict[str, Any] = {"user_id": user_id, "limit": limit}
        if after is not None:
            params.update({f"after_{index}": value for index, value in enumerate(after)})
        rows = await self._rows(_OF_USER if after is None else _OF_USER_AFTER, params)
        return [WEBHOOKS.load(row) for row in rows]

    async def active(self) -> list[Webhook]:
        return [WEBHOOKS.load(row) for row in await self._rows(_ACTIVE)]

    async def dispatch_position(self) -> Position:
        row = await self._first(_POSITION)
        if row is None:
            raise LookupError("webhook_dispatch has no row: run the migrations")
        position = DISPATCH.load(row)
        return position.txid, position.n

    async def set_dispatch_position(self, position: Position) -> None:
        statement = sa.update(dispatch).where(dispatch.c.id == 1)
        await self._write(statement.values(txid=position[0], n=position[1]))


class SqlAlchemyDeliveryRepository(SqlRepository):
    async def add(self, items: Sequence[Delivery]) -> list[Delivery]:
        """A multi-row INSERT per chunk: a dispatch stores hundreds at once."""
        dialect = _DIALECTS[self._statements.dialect]
        stored: set[UUID] = set()
        for start in range(0, len(items), _CHUNK):
            rows = [DELIVERIES.values(item) for item in items[start : start + _CHUNK]]
            here = current_traceparent()  # a ping's: the request's (dispatch sets the change's)
            for row in rows:
                row["trace"] = row["trace"] or here
            insert = (
                dialect.insert(deliveries)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["webhook_id", "event_id"])
                .returning(deliveries.c.id)
            )
            stored.update(row["id"] for row in await self._rows(insert))
        return [item for item in items if item.id in stored]

    async def get(self, delivery_id: UUID) -> Delivery | None:
        row = await self._first(_DELIVERY, {"delivery_id": delivery_id})
        return None if row is None else DELIVERIES.load(row)

    async def claim(self, delivery_id: UUID, *, now: datetime, until: datetime) -> Delivery | None:
        params = {"match_id": delivery_id, "now": now, "now_": now, "until": until}
        row = await self._first(_CLAIM, params)
        return None if row is None else DELIVERIES.load(row)

    async def update(self, delivery: Delivery) -> None:
        values = DELIVERIES.values(delivery)
        params = {name: values[name] for name in _OUTCOME}
        await self._write(_UPDATE_DELIVERY, {"match_id": delivery.id, **params})

    async def of_webhook(
        self, webhook_id: UUID, *, after: SortValues | None, limit: int
    ) -> list[Delivery]:
        params: dict[str, Any] = {"webhook_id": webhook_id, "limit": limit}
        if after is not None:
            params.update({f"after_{index}": value for index, value in enumerate(after)})
        rows = await self._rows(_OF_WEBHOOK if after is None else _OF_WEBHOOK_AFTER, params)
        return [DELIVERIES.load(row) for row in rows]

    async def due(self, *, before: datetime, limit: int) -> list[Delivery]:
        rows = await self._rows(_DUE, {"before": before, "limit": limit})
        return [DELIVERIES.load(row) for row in rows]

    async def counts(self) -> dict[str, int]:
        return {row["status"]: int(row["count"]) for row in await self._rows(_COUNTS)}

    async def oldest_due(self) -> datetime | None:
        row = await self._first(_OLDEST_DUE)
        return None if row is None else row["oldest"]

    async def delete_settled(self, *, created_before: datetime, limit: int) -> int:
        statement = _DELETE_SETTLED[self._statements.dialect]
        return await self._write(statement, {"created_before": created_before, "limit": limit})
