"""Webhooks: a user's subscription to the events of their projects, and its deliveries.

A webhook hears the events its creator could see on a stream (the same events, the same
shape), of one project or of every project the creator is a member of, filtered by type. Each
event becomes one delivery per webhook, attempted until the receiver answers 2xx or the retry
schedule is spent; the delivery keeps its body, so every attempt sends the same bytes.
"""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID, uuid4

from app.domain.activity import ActivityType
from app.domain.errors import InvalidField

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32
PREVIOUS_SECRET_GRACE = timedelta(hours=24)
ALL_EVENTS = "*"
PING = "webhook.ping"
TODO_MOVED = "todo.moved"
EVENT_TYPES = frozenset({kind.value for kind in ActivityType} | {TODO_MOVED})
URL_MAX_LENGTH = 2000
DESCRIPTION_MAX_LENGTH = 500


def new_secret() -> str:
    """`whsec_` and base64 of random bytes: the Standard Webhooks form receivers' libraries
    take as it is."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secrets_: list[str], *, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks `webhook-signature` value: `v1,<base64 HMAC-SHA256>` over
    `{id}.{timestamp}.{body}` keyed with each secret (the base64 after `whsec_`), one per
    secret, space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    signatures = []
    for secret in secrets_:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
        digest = hmac.new(key, signed, hashlib.sha256).digest()
        signatures.append("v1," + base64.b64encode(digest).decode())
    return " ".join(signatures)


def event_filter(events: list[str]) -> tuple[str, ...]:
    """The event types a webhook hears, checked: known types, or `*` alone."""
    chosen = tuple(dict.fromkeys(events))  # in order, once each
    if not chosen:
        raise InvalidField("events", 'List at least one event type, or "*" for every one.')
    if ALL_EVENTS in chosen:
        if len(chosen) > 1:
            raise InvalidField("events", '"*" already means every event type: list it alone.')
        return chosen
    unknown = [kind for kind in chosen if kind not in EVENT_TYPES]
    if unknown:
        raise InvalidField(
            "events", f'Unknown event type {unknown[0]!r}; one of {sorted(EVENT_TYPES)} or "*".'
        )
    return chosen


@dataclass(frozen=True, slots=True)
class Webhook:
    id: UUID
    user_id: UUID
    """Its creator: it hears what they may see, checked again at every delivery."""
    url: str
    events: tuple[str, ...]
    project_id: UUID | None
    description: str
    active: bool
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def hears(self, event_type: str, project_id: UUID) -> bool:
        if self.project_id is not None and project_id != self.project_id:
            return False
        return ALL_EVENTS in self.events or event_type in self.events

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secret, and for a day after a rotation the one before it too."""
        keys = [self.secret]
        if (
            self.previous_secret is not None
            and self.previous_secret_expires_at is not None
            and now < self.previous_secret_expires_at
        ):
            keys.append(self.previous_secret)
        return keys

    def rotated(self, now: datetime) -> "Webhook":
        return replace(
            self,
            secret=new_secret(),
            previous_secret=self.secret,
            previous_secret_expires_at=now + PREVIOUS_SECRET_GRACE,
            updated_at=now,
        )


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    FAILED = "failed"


class DeliveryError(StrEnum):
    ACCESS_LOST = "access_lost"
    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    TARGET_NOT_ALLOWED = "target_not_allowed"
    HTTP_STATUS = "http_status"
    WEBHOOK_INACTIVE = "webhook_inactive"


@dataclass(frozen=True, slots=True)
class Delivery:
    id: UUID
    webhook_id: UUID
    event_id: str
    """The Standard Webhooks `webhook-id`: the same on every attempt (receivers de-duplicate)."""
    event_type: str
    project_id: UUID | None
    """The event's project, whose access is checked at every attempt (none for a ping)."""
    body: str
    """The JSON sent, fixed when the event was dispatched."""
    status: DeliveryStatus
    attempts: int
    response_status: int | None
    error: DeliveryError | None
    duration_ms: int | None
    created_at: datetime
    next_attempt_at: datetime | None
    trace: str | None = None
    """The `traceparent` of the request behind it (the change's, or the ping's), if traced."""

    @classmethod
    def pending(
        cls,
        *,
        webhook_id: UUID,
        event_id: str,
        event_type: str,
        project_id: UUID | None,
        body: str,
        now: datetime,
        trace: str | None = None,
    ) -> "Delivery":
        """A new delivery, due at once."""
        return cls(
            id=uuid4(),
            webhook_id=webhook_id,
            event_id=event_id,
            event_type=event_type,
            project_id=project_id,
            body=body,
            status=DeliveryStatus.PENDING,
            attempts=0,
            response_status=None,
            error=None,
            duration_ms=None,
            created_at=now,
            next_attempt_at=now,
            trace=trace,
        )

    @property
    def settled(self) -> bool:
        return self.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt got: a status code, or an error and no status."""

    response_status: int | None
    error: DeliveryError | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return (
            self.error is None
            and self.response_status is not None
            and (200 <= self.response_status < 300)
        )

    @property
    def gone(self) -> bool:
        """410: the receiver asks for no more; the webhook turns off."""
        return self.response_status == 410


def after_attempt(
    delivery: Delivery, outcome: Outcome, *, now: datetime, schedule: tuple[int, ...]
) -> Delivery:
    """The delivery once an attempt is recorded: settled, or due again after the schedule's
    next delay (the n-th retry waits the n-th delay)."""
    attempts = delivery.attempts + 1
    status, next_at = DeliveryStatus.SUCCEEDED, None
    if not outcome.succeeded:
        retries_left = outcome.error is not DeliveryError.ACCESS_LOST and not outcome.gone
        if retries_left and attempts <= len(schedule):
            status = DeliveryStatus.RETRYING
            next_at = now + timedelta(seconds=schedule[attempts - 1])
        else:
            status = DeliveryStatus.FAILED
    return replace(
        delivery,
        status=status,
        attempts=attempts,
        response_status=outcome.response_status,
        error=None if outcome.succeeded else (outcome.error or DeliveryError.HTTP_STATUS),
        duration_ms=outcome.duration_ms,
        next_attempt_at=next_at,
    )


def failed(delivery: Delivery, error: DeliveryError) -> Delivery:
    """Settled without an attempt on the wire (the creator lost access, the webhook is off)."""
    return replace(
        delivery,
        status=DeliveryStatus.FAILED,
        attempts=delivery.attempts + 1,
        response_status=None,
        error=error,
        duration_ms=0,
        next_attempt_at=None,
    )
