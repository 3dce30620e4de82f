"""Webhooks: a user's subscriptions (the API's use cases), dispatch of the activity log's events
to them, and the attempts that deliver each one.

The activity log is the outbox. Every change records its entries in its own transaction, so an
event exists exactly when its change committed. Dispatch (a job) reads the log from its own
position in commit order, as live events do, turns each event a webhook hears into one delivery
row — the body fixed then, the position moved in the same transaction — and queues an attempt
per delivery. Nothing is held in memory between those steps: a process killed anywhere leaves
either the log entry still to dispatch, or the delivery row still due, and the sweep (a job)
queues every due delivery again. Each attempt reads its delivery, checks the creator's access,
calls the receiver outside any transaction, records the outcome, and queues the next attempt
after the retry schedule's delay.
"""

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from app.application.events import Event, read_batch
from app.application.pagination import CursorCodec, Page, cursor_binding, paginate
from app.application.ports import Clock, JobQueue, UnitOfWork, WebhookTransport
from app.domain.activity import ActivityType
from app.domain.errors import InvalidField, ProjectNotFound, WebhookNotFound
from app.domain.users import Actor, Permission
from app.domain.webhooks import (
    DESCRIPTION_MAX_LENGTH,
    PING,
    TODO_MOVED,
    Delivery,
    DeliveryError,
    DeliveryStatus,
    Outcome,
    Webhook,
    after_attempt,
    event_filter,
    failed,
    new_secret,
    signature,
)

log = logging.getLogger(__name__)

SWEEP_GRACE = timedelta(seconds=30)
"""A due delivery this late has lost its queued attempt (a process killed between a commit and
the queueing): the sweep queues it again."""
# Events that are the last a member hears of a project: delivered though the creator can no
# longer read it (the dispatch decided they were in the audience).
_FAREWELLS = frozenset({ActivityType.PROJECT_DELETED.value, ActivityType.MEMBER_REMOVED.value})


@dataclass(frozen=True, slots=True)
class WebhookChanges:
    """A partial update: None leaves a field alone."""

    url: str | None = None
    events: list[str] | None = None
    active: bool | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class _Mine:
    user_id: UUID


@dataclass(frozen=True, slots=True)
class _Deliveries:
    webhook_id: UUID


def _description(text: str) -> str:
    text = text.strip()
    if len(text) > DESCRIPTION_MAX_LENGTH:
        raise InvalidField("description", f"At most {DESCRIPTION_MAX_LENGTH} characters.")
    return text


def _body(event_id: str, event_type: str, at: str, data: Mapping[str, Any]) -> str:
    payload = {"id": event_id, "type": event_type, "timestamp": at, "data": data}
    return json.dumps(payload, separators=(",", ":"))


class WebhookService:
    """A user's webhooks and their delivery logs. Another user's webhook is a 404, whoever
    asks: webhooks are personal, an admin's reach adds none."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        clock: Clock,
        cursors: CursorCodec,
        transport: WebhookTransport,
        jobs: JobQueue,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._cursors = cursors
        self._transport = transport
        self._jobs = jobs

    async def create(
        self,
        actor: Actor,
        *,
        url: str,
        events: list[str],
        project_id: UUID | None = None,
        description: str = "",
    ) -> Webhook:
        """Needs `todos:write`; with `project_id`, the caller must be a member (else 404)."""
        actor.require(Permission.TODOS_WRITE)
        chosen = event_filter(events)
        text = _description(description)
        if (
            project_id is not None
            and await self._uow.memberships.get(project_id, actor.user_id) is None
        ):
            raise ProjectNotFound
        await self._transport.check(url)
        now = self._clock.now()
        webhook = Webhook(
            id=uuid4(),
            user_id=actor.user_id,
            url=url,
            events=chosen,
            project_id=project_id,
            description=text,
            active=True,
            secret=new_secret(),
            previous_secret=None,
            previous_secret_expires_at=None,
            created_at=now,
            updated_at=now,
        )
        await self._uow.webhooks.add(webhook)
        await self._uow.commit()
        return webhook

    async def list(self, actor: Actor, *, limit: int, cursor: str | None = None) -> Page[Webhook]:
        actor.require(Permission.TODOS_READ)
        binding = cursor_binding(_Mine(actor.user_id))
        after = self._cursors.decode(cursor, binding=binding) if cursor else None
        rows = await self._uow.webhooks.of_user(actor.user_id, after=after, limit=limit + 1)
        return paginate(
            rows,
            limit=limit,
            cursors=self._cursors,
            binding=binding,
            sort_values=lambda hook: (hook.created_at, hook.id),
        )

    async def get(self, actor: Actor, webhook_id: UUID) -> Webhook:
        actor.require(Permission.TODOS_READ)
        webhook = await self._uow.webhooks.get(webhook_id)
        if webhook is None or webhook.user_id != actor.user_id:
            raise WebhookNotFound
        return webhook

    async def update(self, actor: Actor, webhook_id: UUID, changes: WebhookChanges) -> Webhook:
        webhook = await self.get(actor, webhook_id)
        actor.require(Permission.TODOS_WRITE)
        updated = webhook
        if changes.url is not None and changes.url != webhook.url:
            await self._transport.check(changes.url)
            updated = replace(updated, url=changes.url)
        if changes.events is not None:
            updated = replace(updated, events=event_filter(changes.events))
        if changes.description is not None:
            updated = replace(updated, description=_description(changes.description))
        if changes.active is not None:
            updated = replace(updated, active=changes.active)
        if updated != webhook:
            updated = replace(updated, updated_at=self._clock.now())
            await self._uow.webhooks.update(updated)
            await self._uow.commit()
        return updated

    async def delete(self, actor: Actor, webhook_id: UUID) -> None:
        """Its deliveries go with it; an attempt already queued finds nothing to do."""
        await self.get(actor, webhook_id)
        actor.require(Permission.TODOS_WRITE)
        await self._uow.webhooks.delete(webhook_id)
        await self._uow.commit()

    async def rotate_secret(self, actor: Actor, webhook_id: UUID) -> Webhook:
        webhook = await self.get(actor, webhook_id)
        actor.require(Permission.TODOS_WRITE)
        rotated = webhook.rotated(self._clock.now())
        await self._uow.webhooks.update(rotated)
        await self._uow.commit()
        return rotated

    async def deliveries(
        self, actor: Actor, webhook_id: UUID, *, limit: int, cursor: str | None = None
    ) -> Page[Delivery]:
        await self.get(actor, webhook_id)
        binding = cursor_binding(_Deliveries(webhook_id))
        after = self._cursors.decode(cursor, binding=binding) if cursor else None
        rows = await self._uow.deliveries.of_webhook(webhook_id, after=after, limit=limit + 1)
        return paginate(
            rows,
            limit=limit,
            cursors=self._cursors,
            binding=binding,
            sort_values=lambda delivery: (delivery.created_at, delivery.id),
        )

    async def ping(self, actor: Actor, webhook_id: UUID) -> Delivery:
        """A `webhook.ping` event, delivered like any other (even to an inactive webhook: it
        is how a receiver is tried before the webhook is turned on)."""
        webhook = await self.get(actor, webhook_id)
        actor.require(Permission.TODOS_WRITE)
        now = self._clock.now()
        event_id = str(uuid4())
        delivery = Delivery.pending(
            webhook_id=webhook.id,
            event_id=event_id,
            event_type=PING,
            project_id=None,
            body=_body(event_id, PING, now.isoformat(), {"webhook_id": str(webhook.id)}),
            now=now,
        )
        await self._uow.deliveries.add([delivery])
        await self._uow.commit()
        await self._jobs.deliver([delivery])
        return delivery


class WebhookDispatcher:
    """Turns the log's new events into deliveries (see the module's docstring). Two
    dispatchers at once take turns: the position's row is locked by the first."""

    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        *,
        clock: Clock,
        jobs: JobQueue,
        render: Callable[[Event], Mapping[str, Any]],
    ) -> None:
        self._unit_of_work = unit_of_work
        self._clock = clock
        self._jobs = jobs
        self._render = render

    async def dispatch(self) -> int:
        """Reads the log up to its horizon; how many deliveries it made."""
        made = 0
        while True:
            count, more = await self._dispatch_once()
            made += count
            if not more:
                return made

    async def _dispatch_once(self) -> tuple[int, bool]:
        async with self._unit_of_work() as uow:
            position = await uow.webhooks.dispatch_position()
            hooks = await uow.webhooks.active()
            if not hooks:  # nobody listens: skip to the horizon without reading a thing
                horizon = (await uow.activity.horizon(), 0)
                if horizon > position:
                    await uow.webhooks.set_dispatch_position(horizon)
                    await uow.commit()
                return 0, False
            batch = await read_batch(uow, position, user_id=None)
            by_user: dict[UUID, list[Webhook]] = defaultdict(list)
            for hook in hooks:
                by_user[hook.user_id].append(hook)
            now = self._clock.now()
            new: list[Delivery] = []
            # Entry by entry, each to the creators in its audience who have webhooks: the cost
            # follows the entries and their members, not entries times every webhook's owner.
            for entry in batch.entries:
                for user_id in batch.audience(entry) & by_user.keys():
                    event = batch.event(entry, user_id)
                    if event is None:
                        continue
                    new.extend(
                        self._delivery(hook, event, now)
                        for hook in by_user[user_id]
                        # From its creation on: an entry still undispatched then is older.
                        if entry.at >= hook.created_at
                        and hook.hears(event.type, _project_of(event))
                    )
            stored = await uow.deliveries.add(new) if new else []
            if batch.end != position:
                await uow.webhooks.set_dispatch_position(batch.end)
            await uow.commit()
        if stored:
            await self._jobs.deliver(stored)
        return len(stored), batch.end[1] != 0  # cut at the read limit: more to read

    def _delivery(self, hook: Webhook, event: Event, now: datetime) -> Delivery:
        entry = event.entry
        event_id = str(entry.id)
        body = _body(event_id, event.type, entry.at.isoformat(), self._render(event))
        return Delivery.pending(
            webhook_id=hook.id,
            event_id=event_id,
            event_type=event.type,
            project_id=_project_of(event),
            body=body,
            now=now,
            trace=entry.trace,
        )

    async def sweep(self) -> int:
        """Queues again every delivery overdue by more than SWEEP_GRACE (its queued attempt
        was lost); an attempt queued twice runs once, the second finds it done or not due."""
        queued = 0
        before = self._clock.now() - SWEEP_GRACE
        async with self._unit_of_work() as uow:
            overdue = await uow.deliveries.due(before=before, limit=1000)
        if overdue:
            await self._jobs.deliver(overdue)
            queued += len(overdue)
        return queued


def _project_of(event: Event) -> UUID:
    entry = event.entry
    if event.type == TODO_MOVED and entry.previous_project_id is not None:
        return entry.previous_project_id
    return entry.project_id


class WebhookSender:
    """One attempt of one delivery (see the module's docstring)."""

    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        *,
        clock: Clock,
        transport: WebhookTransport,
        jobs: JobQueue,
        schedule: Sequence[int],
        per_webhook: int,
        lease: timedelta,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._lease = lease
        self._clock = clock
        self._transport = transport
        self._jobs = jobs
        self._schedule = tuple(schedule)
        self._per_webhook = per_webhook
        self._in_flight: dict[UUID, int] = defaultdict(int)

    async def attempt(self, delivery_id: UUID) -> DeliveryStatus | None:
        """Attempts it if it is due and no other attempt holds it; its status after, or None
        when there was nothing to do (settled, not due, held, or deleted)."""
        now = self._clock.now()
        async with self._unit_of_work() as uow:
            # The lease: of two attempts of one delivery (two workers, a job queued twice),
            # one gets it, the other finds nothing to do; a killed attempt's lapses.
            delivery = await uow.deliveries.claim(delivery_id, now=now, until=now + self._lease)
            if delivery is None:
                return None
            webhook = await uow.webhooks.get(delivery.webhook_id)
            if webhook is None:
                return None
            refusal = await self._refusal(uow, webhook, delivery)
            if refusal is not None:
                await self._settle(uow, webhook, failed(delivery, refusal))
                return DeliveryStatus.FAILED
            if self._in_flight[webhook.id] >= self._per_webhook:
                # One slow receiver holds at most this many of the worker's slots: the attempt
                # waits its turn in the queue, not in a slot the other webhooks need.
                later = replace(delivery, next_attempt_at=now + timedelta(seconds=1))
                await uow.deliveries.update(later)
                await uow.commit()
                await self._jobs.deliver([later], at=later.next_attempt_at)
                return None
            await uow.commit()
        self._in_flight[webhook.id] += 1
        try:
            outcome = await self._send(webhook, delivery)
        finally:
            self._in_flight[webhook.id] -= 1
            if not self._in_flight[webhook.id]:
                del self._in_flight[webhook.id]
        async with self._unit_of_work() as uow:
            current = await uow.deliveries.get(delivery_id)
            if current is None or current.attempts != delivery.attempts:
                return None  # deleted meanwhile, or recorded by another attempt
            recorded = after_attempt(
                current, outcome, now=self._clock.now(), schedule=self._schedule
            )
            webhook = await uow.webhooks.get(webhook.id) or webhook
            await self._settle(uow, webhook, recorded, gone=outcome.gone)
        if recorded.status is DeliveryStatus.RETRYING and recorded.next_attempt_at is not None:
            await self._jobs.deliver([recorded], at=recorded.next_attempt_at)
        return recorded.status

    async def _refusal(
        self, uow: UnitOfWork, webhook: Webhook, delivery: Delivery
    ) -> DeliveryError | None:
        """Why this attempt must not go out: the webhook is off (but a ping), or its creator
        is no longer active or can no longer read the event's project."""
        if not webhook.active and delivery.event_type != PING:
            return DeliveryError.WEBHOOK_INACTIVE
        creator = await uow.users.get(webhook.user_id)
        if creator is None or not creator.is_active:
            return DeliveryError.ACCESS_LOST
        if delivery.project_id is None or delivery.event_type in _FAREWELLS:
            return None
        if await uow.memberships.get(delivery.project_id, webhook.user_id) is None:
            return DeliveryError.ACCESS_LOST
        return None

    async def _settle(
        self, uow: UnitOfWork, webhook: Webhook, delivery: Delivery, *, gone: bool = False
    ) -> None:
        """Records the delivery; turns the webhook off after a 410, or once its project is out
        of the creator's reach for good (its last event settled, or access lost)."""
        await uow.deliveries.update(delivery)
        lost = (
            delivery.settled
            and webhook.project_id is not None
            and webhook.project_id == delivery.project_id
            and (delivery.error is DeliveryError.ACCESS_LOST or delivery.event_type in _FAREWELLS)
            and await uow.memberships.get(webhook.project_id, webhook.user_id) is None
        )
        if webhook.active and (gone or lost):
            await uow.webhooks.update(replace(webhook, active=False, updated_at=self._clock.now()))
            log.info("webhook %s turned off: %s", webhook.id, "410 Gone" if gone else "access lost")
        await uow.commit()

    async def _send(self, webhook: Webhook, delivery: Delivery) -> Outcome:
        now = self._clock.now()
        timestamp = int(now.timestamp())
        body = delivery.body.encode()
        headers = {
            "content-type": "application/json",
            "user-agent": "todo-api-webhooks/1",
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(
                webhook.signing_secrets(now),
                message_id=delivery.event_id,
                timestamp=timestamp,
                body=body,
            ),
        }
        try:
            return await self._transport.send(webhook.url, headers=headers, body=body)
        except asyncio.CancelledError:
            raise
        except Exception:  # a fault of ours, not the receiver's: recorded, retried
            log.exception("webhook delivery %s failed unexpectedly", delivery.id)
            return Outcome(None, DeliveryError.CONNECTION_REFUSED, 0)
