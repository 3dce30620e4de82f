"""Reading server-sent events in tests: a parser of the wire format, and a stream opened on
the ASGI app itself (httpx's ASGI transport waits for a response's end, which a stream never
reaches by itself)."""

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from tests.support import API


@dataclass(frozen=True)
class Sse:
    event: str
    data: str
    id: str | None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


class SseParser:
    """Feed it bytes; it gives back the complete events (comments dropped)."""

    def __init__(self) -> None:
        self._buffer = ""
        self._fields: dict[str, list[str]] = {}

    def feed(self, chunk: bytes) -> list[Sse]:
        self._buffer += chunk.decode()
        events = []
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            line = line.rstrip("\r")
            if not line:
                if self._fields:
                    fields, self._fields = self._fields, {}
                    events.append(
                        Sse(
                            event=(fields.get("event") or ["message"])[-1],
                            data="\n".join(fields.get("data", [])),
                            id=fields["id"][-1] if "id" in fields else None,
                        )
                    )
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            self._fields.setdefault(name, []).append(value.removeprefix(" "))
        return events


class AsgiStream:
    """GET /events on the app, read as it streams."""

    def __init__(
        self,
        app: Any,
        headers: dict[str, str],
        *,
        last_event_id: str | None = None,
        token: str | None = None,
    ) -> None:
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = b""
        self._events: asyncio.Queue[Sse | None] = asyncio.Queue()
        self._started = asyncio.Event()
        self._parser = SseParser()
        self._disconnect = asyncio.Event()
        sent = [(b"host", b"test")]
        sent += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        if last_event_id is not None:
            sent.append((b"last-event-id", last_event_id.encode()))
        query = urlencode({"token": token}) if token is not None else ""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},  # as uvicorn says
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"{API}/events",
            "raw_path": f"{API}/events".encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": sent,
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
        }
        self._task = asyncio.create_task(app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        await self._disconnect.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
            self._started.set()
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            self.body += chunk
            for event in self._parser.feed(chunk):
                await self._events.put(event)
            if not message.get("more_body", False):
                await self._events.put(None)

    async def started(self, seconds: float = 5) -> int:
        await asyncio.wait_for(self._started.wait(), seconds)
        assert self.status is not None
        return self.status

    async def next(self, seconds: float = 15, *, skip_pings: bool = True) -> Sse | None:
        """The next event (None: the stream ended)."""
        while True:
            event = await asyncio.wait_for(self._events.get(), seconds)
            if event is None or not (skip_pings and event.event == "ping"):
                return event

    async def until(self, event_type: str, seconds: float = 15) -> Sse:
        while True:
            event = await self.next(seconds)
            assert event is not None, f"the stream ended before {event_type}"
            if event.event == event_type:
                return event

    async def nothing_within(self, seconds: float) -> None:
        try:
            event = await self.next(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event {event}")

    async def close(self) -> None:
        """The client goes away: the server hears `http.disconnect` and ends the stream."""
        self._disconnect.set()
        try:
            await asyncio.wait_for(self._task, 5)
        except (TimeoutError, asyncio.CancelledError, Exception):
            self._task.cancel()
