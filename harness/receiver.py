"""A webhook receiver for tests and proofs: a real HTTP server (uvicorn) on a loopback port
that records every request and answers with the statuses it is told to, in order (then `status`)."""

import asyncio
import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/hook"
        self.received: list[Received] = []
        self.answers: deque[int] = deque()
        self.status = 204
        self.delay = 0.0
        self.overlaps = 0
        """Requests that arrived while another with the same `webhook-id` to the same path was
        in progress (two webhooks on one receiver: give each its own path)."""
        self._in_progress: set[str] = set()
        self._arrived = asyncio.Condition()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status = self.answers.popleft() if self.answers else self.status
        message_id = scope["path"] + " " + headers.get("webhook-id", "")
        if message_id in self._in_progress:
            self.overlaps += 1
        self._in_progress.add(message_id)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self._in_progress.discard(message_id)
        async with self._arrived:
            self.received.append(Received(scope["path"], headers, body, time.time()))
            self._arrived.notify_all()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"" if status == 204 else b"ok"})

    async def until(self, count: int, *, within: float = 15.0) -> list[Received]:
        """The first `count` requests, once they have all arrived."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)
        return self.received[:count]

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.received if r.json["type"] == event_type]


@asynccontextmanager
async def receiver(port: int = 0, target: Receiver | None = None) -> AsyncIterator[Receiver]:
    """Serving until the block ends; `port` and `target` start it again where it was."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    target = target or Receiver(sock.getsockname()[1])
    config = uvicorn.Config(target, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.01)
        yield target
    finally:
        server.should_exit = True
        await task
        sock.close()
