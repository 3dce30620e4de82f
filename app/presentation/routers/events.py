"""Live events: server-sent events of every change the caller may see."""

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.sse import format_sse_event
from starlette.responses import StreamingResponse

from app.application.events import Delivery, End, Event, EventStream, Ping, StreamItem
from app.domain.activity import json_value
from app.presentation.deps import API_PREFIX, EventStreamDep
from app.presentation.routers.projects import project_read
from app.presentation.schemas.common import AUTHENTICATED, TOKEN_REQUIRED, problems
from app.presentation.schemas.projects import MemberRead
from app.presentation.schemas.sync import StreamEnd
from app.presentation.schemas.todos import TodoRead

router = APIRouter(prefix=API_PREFIX, tags=["sync"])

_EVENT_STREAM = {
    "description": "A stream of server-sent events (`text/event-stream`). Each change: `id:` a "
    "sync token (the resume point), `event:` its type, `data:` an EventData object. Also "
    "`event: ping` (empty data) at least every 15 s, and `event: stream.end` with a StreamEnd "
    "object before the server closes the stream.",
    "content": {
        "text/event-stream": {
            "schema": {"type": "string"},
            "itemSchema": {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "id": {"type": "string", "description": "A sync token: the resume point."},
                    "event": {"type": "string"},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/EventData"},
                                {"$ref": "#/components/schemas/StreamEnd"},
                            ]
                        },
                    },
                    # Declared as FastAPI's own event schema declares it (the document as it was).
                    "retry": {"type": "integer", "minimum": 0},
                },
            },
            "example": 'id: eyJ…\nevent: todo.updated\ndata: {"type": "todo.updated", …}\n\n',
        }
    },
}
_PARAMETERS = {
    "parameters": [
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "The id of the last event received: resume after it.",
            "schema": {"type": "string", "maxLength": 1024},
        },
        {
            "name": "token",
            "in": "query",
            "required": False,
            "description": "A sync token to resume after, for clients that cannot set "
            "`Last-Event-ID`.",
            "schema": {"type": "string", "maxLength": 1024},
        },
    ],
    **TOKEN_REQUIRED,
}


class EventStreamResponse(StreamingResponse):
    """`text/event-stream` over bytes the handler encodes. Not FastAPI's EventSourceResponse:
    a route declaring that one is run as a generator endpoint, with a producer task and a
    keep-alive task and two memory streams between them on top of Starlette's task for the
    response, held by every open stream, mostly idle, for as long as its client stays. The
    keep-alive is EventStream's ping already."""

    media_type = "text/event-stream"


# What FastAPI's generator endpoints send with a stream: no caching, no buffering by Nginx.
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get(
    "/events",
    operation_id="events",
    response_class=EventStreamResponse,
    responses={200: _EVENT_STREAM, **problems(*AUTHENTICATED, 410)},
    openapi_extra=_PARAMETERS,
)
async def events(stream: EventStreamDep) -> EventStreamResponse:
    """Server-sent events of every change in your projects, whichever instance made it:
    missed ones first (from `Last-Event-ID` or `?token=`), then live ones, each within a
    second. Access is checked per event: a member removed hears `member.removed`, then nothing
    more of that project. The stream ends with `event: stream.end` when your access token
    expires or is revoked (`token_expired`, `revoked`) or the server shuts down (`shutdown`):
    reconnect with the last id. A token that cannot be resumed is a 400 / 410 as for `/sync`;
    more than `SSE_MAX_STREAMS_PER_USER` open streams a 429. `HEAD` answers what this GET
    would start with (its status, 400 / 410 / 429 / 503 included, and its headers) without a
    body, and holds no stream. Needs `todos:read`."""
    return EventStreamResponse(_wire(stream), headers=_STREAM_HEADERS)


async def _wire(stream: EventStream | None) -> AsyncIterator[bytes]:
    if stream is None:  # a HEAD: the headers only
        return
    async for item in stream.items():
        yield server_sent(item)


def server_sent(item: StreamItem) -> bytes:
    match item:
        case Delivery(id=event_id, event=event):
            return format_sse_event(event=event.type, id=event_id, data_str=event_json(event))
        case Ping():
            return format_sse_event(event="ping", data_str="{}")
        case End(reason=reason):
            return format_sse_event(
                event="stream.end", data_str=StreamEnd(reason=reason).model_dump_json()
            )
    raise TypeError(f"not a stream item: {item!r}")


def event_json(event: Event) -> str:
    return json.dumps(event_data(event), separators=(",", ":"))


def event_data(event: Event) -> dict[str, Any]:
    """An event as streams send it and webhooks deliver it (their `data`)."""
    entry = event.entry
    data: dict[str, Any] = {
        "type": event.type,
        "at": json_value(entry.at),
        "actor_id": json_value(entry.actor_id),
        "project_id": json_value(
            entry.previous_project_id if event.type == "todo.moved" else entry.project_id
        ),
    }
    if entry.todo_id is not None:
        data["todo_id"] = str(entry.todo_id)
    if event.todo is not None:
        data["todo"] = TodoRead.model_validate(event.todo).model_dump(mode="json")
    if event.project is not None:
        data["project"] = project_read(event.project).model_dump(mode="json")
    if entry.member_id is not None:
        data["member_id"] = str(entry.member_id)
    if event.member is not None:
        data["member"] = MemberRead.model_validate(event.member).model_dump(mode="json")
    data["changes"] = {} if event.type == "todo.moved" else entry.changes
    return data
