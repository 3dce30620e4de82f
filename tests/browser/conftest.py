"""A real server (scripts/serve, as deployed: tests/serving.py) on a free port, a page of
another origin, and headless Chromium (Debian's package) driven by Playwright.

Without /usr/bin/chromium these tests skip, except in CI (CI=true), where they fail."""

import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from tests.conftest import ROOT
from tests.serving import Serve
from tests.support import Session, sign_up

# CHROMIUM_PATH: another Chromium build (a distribution that installs it elsewhere).
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "artifacts"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# As the machine's notes say: without the background-networking flags Chromium keeps trying
# to reach Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module", autouse=True)
def chromium_present() -> None:
    if CHROMIUM.exists():
        return
    if IN_CI:
        pytest.fail(f"CI=true but {CHROMIUM} is missing: apt-get install -y chromium")
    pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install -y chromium); CI installs it")


@dataclass(frozen=True)
class Origin:
    """The same page, served at an origin the API allows and at one it does not."""

    allowed: str
    refused: str


@pytest.fixture(scope="module")
def other_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    site = tmp_path_factory.mktemp("other-origin")
    (site / "index.html").write_text("<!doctype html><title>Another origin</title><p>Hello")
    handler = partial(SimpleHTTPRequestHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # 127.0.0.1 and localhost are different origins for the browser, on one server.
    yield Origin(allowed=f"http://127.0.0.1:{port}", refused=f"http://localhost:{port}")
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def live_server(serve: Serve, other_origin: Origin) -> Iterator[str]:
    """scripts/serve on the test database, allowing CORS from one of the two origins; its URL."""
    with serve(CORS_ORIGINS=other_origin.allowed) as server:
        yield server.url


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    # The async API, on pytest-asyncio's loop: the sync one keeps an event loop running in
    # this thread, which breaks every asyncio.run() and async fixture after it.
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest.fixture
def account(live_server: str) -> Session:
    """A user registered, and logged in, through the live server."""
    with httpx.Client(base_url=live_server) as http:
        return sign_up(http, f"browser-{time.time_ns()}@example.com")
