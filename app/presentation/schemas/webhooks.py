from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from app.domain.webhooks import (
    ALL_EVENTS,
    DESCRIPTION_MAX_LENGTH,
    EVENT_TYPES,
    URL_MAX_LENGTH,
    DeliveryError,
    DeliveryStatus,
)
from app.presentation.schemas.common import NO_NUL, RequestBody, not_null, read_only_of

WebhookUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=URL_MAX_LENGTH, strip_whitespace=True),
    Field(
        description="An http(s) URL whose host resolves to public addresses only (checked "
        "again at every delivery): `webhook_url_not_allowed` otherwise.",
        examples=["https://example.com/hooks/todo"],
    ),
]
# Checked by the domain (application/webhooks.py → domain/webhooks.py), shown here as an enum.
EventType = Annotated[
    str,
    StringConstraints(max_length=40),
    Field(json_schema_extra={"enum": sorted(EVENT_TYPES | {ALL_EVENTS})}),
]
EventTypes = Annotated[
    list[EventType],
    Field(
        min_length=1,
        max_length=len(EVENT_TYPES),
        description='The event types to deliver (as in live events), or `["*"]` for all.',
        examples=[["todo.created", "todo.updated"]],
    ),
]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH, pattern=NO_NUL)]


class WebhookRead(BaseModel):
    id: UUID
    url: str
    events: list[str]
    project_id: UUID | None = Field(
        description="The project it hears; null: every project you are a member of."
    )
    description: str
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(
        description="`whsec_…`: the key of the `webhook-signature` header (Standard "
        "Webhooks). Shown this once; rotate it to get a new one."
    )


class WebhookCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"url": "https://example.com/hooks/todo", "events": ["*"]}]}
    )

    url: WebhookUrl
    events: EventTypes
    project_id: UUID | None = None
    description: Description = ""


class WebhookUpdate(RequestBody):
    """Only the fields sent change."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"active": False}]})

    url: WebhookUrl | SkipJsonSchema[None] = None
    events: EventTypes | SkipJsonSchema[None] = None
    active: bool | SkipJsonSchema[None] = None
    description: Description | SkipJsonSchema[None] = None

    _not_null = not_null("url", "events", "active", "description")


WebhookCreate.read_only = read_only_of(WebhookCreated, WebhookCreate)
WebhookUpdate.read_only = read_only_of(WebhookCreated, WebhookUpdate)


class SecretRead(BaseModel):
    secret: str = Field(
        description="The new secret. For 24 hours deliveries carry a signature with the old "
        "secret as well."
    )


class DeliveryRead(BaseModel):
    id: UUID
    event_id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    event_type: str
    status: DeliveryStatus
    attempts: int
    response_status: int | None
    error: DeliveryError | None = Field(
        description="Why the last attempt failed: `access_lost`, `timeout`, "
        "`connection_refused`, `target_not_allowed`, `http_status`, `webhook_inactive`."
    )
    duration_ms: int | None
    created_at: datetime
    next_attempt_at: datetime | None
