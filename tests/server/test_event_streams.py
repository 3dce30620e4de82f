"""Live-event streams on the real server: a write reaches an open stream over the socket, a
client that goes away frees its place at once, and SIGTERM ends every stream with
`stream.end` "shutdown" before the server stops."""

import json
import signal
import time
from collections.abc import Iterator

import httpx

from tests.server.conftest import PATIENCE_SECONDS
from tests.serving import Serve
from tests.sse import Sse, SseParser
from tests.support import API, sign_up

CAP = 2


def events(response: httpx.Response) -> Iterator[Sse]:
    parser = SseParser()
    for chunk in response.iter_bytes():
        yield from parser.feed(chunk)


def test_a_write_reaches_an_open_stream_and_a_closed_one_frees_its_place(serve: Serve) -> None:
    with serve(SSE_MAX_STREAMS_PER_USER=str(CAP)) as server:
        timeout = httpx.Timeout(PATIENCE_SECONDS)
        with httpx.Client(base_url=server.url, timeout=timeout) as http:
            ada = sign_up(http, "streams-ada@example.com")
            url = f"{API}/events"
            with http.stream("GET", url, headers=ada.headers) as first:
                assert first.status_code == 200
                assert first.headers["content-type"].startswith("text/event-stream")
                with http.stream("GET", url, headers=ada.headers) as second:
                    assert second.status_code == 200
                    refused = http.get(url, headers=ada.headers)
                    assert refused.status_code == 429
                    assert refused.json()["code"] == "rate_limited"
                created = http.post(f"{API}/todos", json={"title": "live"}, headers=ada.headers)
                assert created.status_code == 201
                event = next(e for e in events(first) if e.event == "todo.created")
                assert event.json["todo_id"] == created.json()["id"]
                # The second stream's client went away: its place is free again (once the
                # server has heard the disconnect).
                assert _opens_within(http, url, ada.headers)


def _opens_within(http: httpx.Client, url: str, headers: dict[str, str]) -> bool:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        with http.stream("GET", url, headers=headers) as again:
            if again.status_code == 200:
                return True
        time.sleep(0.1)
    return False


def test_sigterm_ends_every_open_stream_with_stream_end_shutdown(serve: Serve) -> None:
    with serve() as server:
        with httpx.Client(base_url=server.url, timeout=httpx.Timeout(PATIENCE_SECONDS)) as http:
            ada = sign_up(http, "streams-shutdown@example.com")
            with http.stream("GET", f"{API}/events", headers=ada.headers) as response:
                assert response.status_code == 200
                server.process.send_signal(signal.SIGTERM)
                received = list(events(response))  # until the server closes the stream
        assert received[-1].event == "stream.end"
        assert json.loads(received[-1].data) == {"reason": "shutdown"}
        assert server.process.wait(PATIENCE_SECONDS) in (0, -signal.SIGTERM)
        assert "Traceback" not in server.log_text()
