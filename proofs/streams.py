"""A live-event client for the proofs: follows GET /api/v1/events as a browser's EventSource
does, reconnecting with Last-Event-ID whenever its stream ends or breaks, to the next of its
instances once the current one stops answering; keeps every event it was sent."""

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from proofs.api import API, bearer

RECONNECT_DELAY = 0.2


@dataclass
class Follower:
    urls: list[str]
    token: str
    events: list[tuple[str, str | None]] = field(default_factory=list)  # (type, todo id)
    arrived: dict[str, float] = field(default_factory=dict)  # todo id -> when it came
    last_id: str | None = None
    opened: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    ends: Counter[str] = field(default_factory=Counter)
    at: int = 0  # which of `urls` it follows now
    news: asyncio.Event = field(default_factory=asyncio.Event)  # set at each event

    async def has(self, todo_id: str, seconds: float) -> float | None:
        """When the todo's `todo.created` came (monotonic time), waiting up to `seconds`."""
        deadline = time.monotonic() + seconds
        while todo_id not in self.arrived:
            self.news.clear()
            try:
                await asyncio.wait_for(self.news.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        return self.arrived.get(todo_id)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._follow(stop)
            except (httpx.HTTPError, OSError) as error:
                self.refused[type(error).__name__] += 1
                self.at = min(self.at + 1, len(self.urls) - 1)  # that one is gone: the next
            await asyncio.sleep(RECONNECT_DELAY)

    async def _follow(self, stop: asyncio.Event) -> None:
        headers = bearer(self.token) | ({"Last-Event-ID": self.last_id} if self.last_id else {})
        timeout = httpx.Timeout(5, read=20)  # pings come every 10 s or sooner
        async with (
            httpx.AsyncClient(base_url=self.urls[self.at], timeout=timeout) as http,
            http.stream("GET", f"{API}/events", headers=headers) as response,
        ):
            if response.status_code != 200:
                self.refused[str(response.status_code)] += 1
                await response.aread()
                return
            self.opened += 1
            event, data, event_id = "message", "", None
            async for line in response.aiter_lines():
                if stop.is_set():
                    return
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line == "":
                    self._dispatch(event, data, event_id)
                    if event == "stream.end":
                        self.ends[json.loads(data).get("reason", "?")] += 1
                        return
                    event, data, event_id = "message", "", None

    def _dispatch(self, event: str, data: str, event_id: str | None) -> None:
        if event_id is not None:
            self.last_id = event_id
        if event in ("ping", "stream.end", "message"):
            return
        todo_id = json.loads(data).get("todo_id") if data else None
        self.events.append((event, todo_id))
        if todo_id is not None and event == "todo.created":
            self.arrived.setdefault(todo_id, time.monotonic())
        self.news.set()

    def created(self) -> list[str]:
        return [todo for event, todo in self.events if event == "todo.created" and todo]


def lost_and_twice(followers: list[Follower], acknowledged: set[str]) -> tuple[int, int]:
    """Todos acknowledged 201 that a follower never got, and todo.created events a follower
    got twice, summed over the followers."""
    lost = twice = 0
    for follower in followers:
        got = follower.created()
        lost += len(acknowledged - set(got))
        twice += len(got) - len(set(got))
    return lost, twice
