"""Webhooks: a user's subscriptions to their projects' events, delivered with Standard
Webhooks signatures, and each webhook's delivery log. Who may do what is the service's to
decide (application/webhooks.py)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Response, status

from app.application.webhooks import WebhookChanges
from app.domain.webhooks import Delivery, Webhook
from app.presentation.deps import (
    API_PREFIX,
    CurrentActor,
    JsonOnly,
    WebhookReaderDep,
    WebhookServiceDep,
)
from app.presentation.query import query_model, query_parameters
from app.presentation.schemas.common import AUTHENTICATED, TOKEN_REQUIRED, Page, problems
from app.presentation.schemas.projects import PageParams
from app.presentation.schemas.webhooks import (
    DeliveryRead,
    SecretRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)

router = APIRouter(prefix=f"{API_PREFIX}/webhooks", tags=["webhooks"])
Pages = Annotated[PageParams, Depends(query_model(PageParams))]
PAGE_PARAMETERS = {**query_parameters(PageParams), **TOKEN_REQUIRED}


def webhook_read(webhook: Webhook) -> WebhookRead:
    return WebhookRead(
        id=webhook.id,
        url=webhook.url,
        events=list(webhook.events),
        project_id=webhook.project_id,
        description=webhook.description,
        active=webhook.active,
        created_at=webhook.created_at,
        updated_at=webhook.updated_at,
    )


def delivery_read(delivery: Delivery) -> DeliveryRead:
    return DeliveryRead(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        status=delivery.status,
        attempts=delivery.attempts,
        response_status=delivery.response_status,
        error=delivery.error,
        duration_ms=delivery.duration_ms,
        created_at=delivery.created_at,
        next_attempt_at=delivery.next_attempt_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="create_webhook",
    dependencies=[JsonOnly],
    responses={
        201: {"headers": {"Location": {"schema": {"type": "string"}}}},
        **problems(*AUTHENTICATED, 403, 404, 422),
    },
    openapi_extra=TOKEN_REQUIRED,
)
async def create_webhook(
    body: WebhookCreate, actor: CurrentActor, webhooks: WebhookServiceDep, response: Response
) -> WebhookCreated:
    """Subscribe a URL to the events of one project (`project_id`, which you must be a member
    of: else 404 `project_not_found`) or of every project you are a member of. Each event is
    POSTed as JSON `{id, type, timestamp, data}` (`data` as in a live event) with Standard
    Webhooks headers `webhook-id`, `webhook-timestamp`, `webhook-signature`; a non-2xx answer,
    a timeout or a refused connection is retried after each delay of `WEBHOOK_RETRY_SCHEDULE`;
    a 410 turns the webhook off. The `secret` is shown this once. A URL that is not http(s),
    or resolves to a private, loopback or otherwise internal address, is a 422
    `webhook_url_not_allowed`. Needs `todos:write` (a guest: 403)."""
    webhook = await webhooks.create(
        actor,
        url=body.url,
        events=body.events,
        project_id=body.project_id,
        description=body.description,
    )
    response.headers["Location"] = f"{API_PREFIX}/webhooks/{webhook.id}"
    return WebhookCreated(**webhook_read(webhook).model_dump(), secret=webhook.secret)


@router.get(
    "",
    operation_id="list_webhooks",
    response_model=Page[WebhookRead],
    responses=problems(*AUTHENTICATED),
    openapi_extra=PAGE_PARAMETERS,
)
async def list_webhooks(
    params: Pages, actor: CurrentActor, webhooks: WebhookReaderDep
) -> Page[WebhookRead]:
    """Your webhooks, oldest first (secrets are never shown again)."""
    page = await webhooks.list(actor, limit=params.limit, cursor=params.cursor)
    return Page(items=[webhook_read(w) for w in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{webhook_id:uuid}",
    operation_id="get_webhook",
    responses=problems(*AUTHENTICATED, 404),
    openapi_extra=TOKEN_REQUIRED,
)
async def get_webhook(
    webhook_id: UUID, actor: CurrentActor, webhooks: WebhookReaderDep
) -> WebhookRead:
    """One of your webhooks; anyone else's is a 404 `webhook_not_found`."""
    return webhook_read(await webhooks.get(actor, webhook_id))


@router.patch(
    "/{webhook_id:uuid}",
    operation_id="update_webhook",
    dependencies=[JsonOnly],
    responses=problems(*AUTHENTICATED, 403, 404, 422),
    openapi_extra=TOKEN_REQUIRED,
)
async def update_webhook(
    webhook_id: UUID, body: WebhookUpdate, actor: CurrentActor, webhooks: WebhookServiceDep
) -> WebhookRead:
    """Change its URL (checked as at creation), events, description, or turn it on or off."""
    changes = WebhookChanges(
        url=body.url, events=body.events, active=body.active, description=body.description
    )
    return webhook_read(await webhooks.update(actor, webhook_id, changes))


@router.delete(
    "/{webhook_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="delete_webhook",
    responses=problems(*AUTHENTICATED, 403, 404),
    openapi_extra=TOKEN_REQUIRED,
)
async def delete_webhook(
    webhook_id: UUID, actor: CurrentActor, webhooks: WebhookServiceDep
) -> None:
    """Delete it with its delivery log; nothing more is delivered."""
    await webhooks.delete(actor, webhook_id)


@router.get(
    "/{webhook_id:uuid}/deliveries",
    operation_id="list_webhook_deliveries",
    response_model=Page[DeliveryRead],
    responses=problems(*AUTHENTICATED, 404),
    openapi_extra=PAGE_PARAMETERS,
)
async def list_deliveries(
    webhook_id: UUID, params: Pages, actor: CurrentActor, webhooks: WebhookReaderDep
) -> Page[DeliveryRead]:
    """Its deliveries, newest first: status (`pending`, `succeeded`, `retrying`, `failed`),
    attempts, the last answer's status or error, and when the next attempt is due. A settled
    delivery (`succeeded` or `failed`) is kept for `WEBHOOK_DELIVERY_RETENTION_DAYS` (30 by
    default) after its event."""
    page = await webhooks.deliveries(actor, webhook_id, limit=params.limit, cursor=params.cursor)
    return Page(items=[delivery_read(d) for d in page.items], next_cursor=page.next_cursor)


@router.post(
    "/{webhook_id:uuid}/ping",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="ping_webhook",
    responses=problems(*AUTHENTICATED, 403, 404),
    openapi_extra=TOKEN_REQUIRED,
)
async def ping_webhook(
    webhook_id: UUID, actor: CurrentActor, webhooks: WebhookServiceDep
) -> DeliveryRead:
    """Queue a `webhook.ping` event to it (to this webhook only, active or not); follow it in
    the delivery log."""
    return delivery_read(await webhooks.ping(actor, webhook_id))


@router.post(
    "/{webhook_id:uuid}/rotate-secret",
    operation_id="rotate_webhook_secret",
    responses=problems(*AUTHENTICATED, 403, 404),
    openapi_extra=TOKEN_REQUIRED,
)
async def rotate_secret(
    webhook_id: UUID, actor: CurrentActor, webhooks: WebhookServiceDep
) -> SecretRead:
    """A new secret, shown this once. For 24 hours deliveries are signed with the old secret
    as well (two signatures in `webhook-signature`), so a receiver can switch without a gap."""
    return SecretRead(secret=(await webhooks.rotate_secret(actor, webhook_id)).secret)
