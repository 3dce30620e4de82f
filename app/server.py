"""The HTTP protocol the service is served with (`scripts/serve` passes it to uvicorn's
`--http`): uvicorn's httptools protocol, bounded in what a client may make it hold.

As uvicorn drives it, httptools buffers a request head of any size and waits for a request
for ever: four 64 MB headers grew a worker by 285 MiB, and a stalled upload held its
connection open for good (uvicorn bounds heads only with h11, by its buffer size). Here:

- the request line and headers are at most MAX_HEADER_BYTES, in at most MAX_HEADERS fields:
  past either, a 431 and the connection closes, without buffering the rest;
- a request must arrive whole, head and body, within REQUEST_READ_TIMEOUT_SECONDS of its
  first byte (or of the connection's opening): a stalled head is answered 408, a stalled body
  or a silent connection is closed. Time the application spends once the request has arrived,
  or while the server itself holds reading back (flow control), does not count.

On the happy path this costs a few attribute updates per read and per request.

A response leaves in one write: uvicorn writes its head and its body apart (two system calls
and two TCP segments, each also running the loopback's receive path on this side), here
whatever the connection writes in one turn of the event loop is sent together at its end.
"""

import asyncio
import json
import logging
import uuid
from http import HTTPStatus
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app.config import get_settings

log = logging.getLogger(__name__)

REFUSALS = {
    431: ("headers_too_large", "The request line and headers are too large, or too many."),
    408: ("request_timeout", "The request did not arrive in time."),
}


class TurnCoalescingTransport:
    """A connection's transport whose writes within one turn of the event loop go out as one,
    at the turn's end (or at close()). Everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():  # the peer went: nothing to send it
                self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.max_head_bytes = settings.max_header_bytes
        self.max_headers = settings.max_headers
        self.read_timeout = settings.request_read_timeout_seconds
        self._in_head = True  # reading a head, or between requests: not a body
        self._head_bytes = 0  # bytes read since the current head began, an upper bound
        self._last_read = 0
        self._refused = False
        # When the request being read must have arrived (None: no request is being read).
        # One timer per connection checks it, re-armed only when it fires: a timer per
        # request would cost more than the rest of this class together (~5 us with uvloop).
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's signature; uvicorn's narrows it, and a stream server hands it a Transport.
        super().connection_made(cast(asyncio.Transport, transport))
        self.transport = cast(asyncio.Transport, TurnCoalescingTransport(self.transport, self.loop))
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:
            self._start_deadline()
        self._last_read = len(data)
        self._head_bytes += self._last_read
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._refuse(431)  # still no end of head: httptools would buffer it all

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._last_read  # of what was read, at most this read is the head's
        if self._deadline is None:  # pipelined: read together with the request before it
            self._start_deadline()

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        too_large = self._head_bytes > self.max_head_bytes and (
            # The reads could hold a head too large, or a small head and the start of a body:
            # only then is the head measured exactly.
            self._exact_head_bytes() > self.max_head_bytes
        )
        if too_large or len(self.headers) > self.max_headers:
            self._refuse(431)
            return
        self._in_head = False
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._in_head, self._head_bytes = True, 0
        self._deadline = None  # arrived: from here the application's time is its own
        super().on_message_complete()

    # Bounds

    def _exact_head_bytes(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _start_deadline(self) -> None:
        self._deadline = self.loop.time() + self.read_timeout
        if self._timer is None:
            self._timer = self.loop.call_later(self.read_timeout, self._check_deadline)

    def _stop_deadline(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline is None:
            return  # nothing being read: the next read starts a deadline
        if self.flow.read_paused or (self._in_head and self._response_pending):
            # The server holds reading back, or the next request waits its turn behind a
            # response still being made: the client is not the one late.
            self._start_deadline()
            return
        left = self._deadline - self.loop.time()
        if left > 0:  # a later request's deadline, set after this timer was armed
            self._timer = self.loop.call_later(left, self._check_deadline)
            return
        # A silent connection, or one mid-body (whose request is the application's: it sees a
        # disconnect), is closed without an answer.
        self._refuse(408 if self._in_head and self._head_bytes else None)

    @property
    def _response_pending(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _refuse(self, status: int | None) -> None:
        """Answer `status` (only where no other response may be on the wire) and close."""
        self._refused = True
        self._stop_deadline()
        if self.transport.is_closing():
            return
        if status is not None and self._in_head and not self._response_pending:
            self.transport.write(self._problem(status))
        self.transport.close()

    def _problem(self, status: int) -> bytes:
        code, detail = REFUSALS[status]
        request_id = uuid.uuid4().hex
        client = self.client[0] if self.client else "-"
        log.warning("refused %s with %d %s (request id %s)", client, status, code, request_id)
        body = json.dumps(
            {
                "type": "about:blank",
                "title": HTTPStatus(status).phrase,
                "status": status,
                "detail": detail,
                "code": code,
                "request_id": request_id,
            }
        ).encode()
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            (b"connection", b"close"),
        ]
        lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        return STATUS_LINE[status] + lines + b"\r\n" + body
