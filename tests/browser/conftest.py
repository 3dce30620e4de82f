"""A real server (scripts/serve, as deployed) on a free port, a page of another origin, and
headless Chromium (Debian's package) driven by Playwright.

Without /usr/bin/chromium these tests skip, except in CI (CI=true), where they fail."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
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

from app.config import Settings
from tests.conftest import ROOT, TEST_REDIS_URL, empty_stores
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
SECRET_KEY = "browser-test-secret-key-that-is-long-enough-0123"
STARTUP_SECONDS = 60


@pytest.fixture(scope="module", autouse=True)
def chromium_present() -> None:
    if CHROMIUM.exists():
        return
    if IN_CI:
        pytest.fail(f"CI=true but {CHROMIUM} is missing: apt-get install -y chromium")
    pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install -y chromium); CI installs it")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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


def _serve_command() -> list[str]:
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv:
        return [uv, "run", "--frozen", "scripts/serve"]
    return [str(ROOT / "scripts" / "serve")]  # already inside the project's environment


@pytest.fixture(scope="module")
def live_server(migrated: str, other_origin: Origin) -> Iterator[str]:
    """`uv run scripts/serve` (migrate, then uvicorn) on the test database, on a free port."""
    settings = Settings(database_url=migrated, redis_url=TEST_REDIS_URL, secret_key=SECRET_KEY)
    asyncio.run(empty_stores(settings))
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "ENVIRONMENT": "test",
        "DATABASE_URL": migrated,
        "REDIS_URL": TEST_REDIS_URL or "",
        "SECRET_KEY": SECRET_KEY,
        "CORS_ORIGINS": other_origin.allowed,
        "RATE_LIMIT_ENABLED": "false",
        "FIRST_ADMIN_EMAIL": "",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "LOG_LEVEL": "WARNING",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    ARTIFACTS.mkdir(exist_ok=True)
    base_url = f"http://127.0.0.1:{port}"
    with (ARTIFACTS / "browser-server.log").open("w") as log:
        server = subprocess.Popen(  # noqa: S603 - our own script, no shell
            _serve_command(),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so uv and uvicorn stop together
        )
        try:
            _wait_until_healthy(server, base_url)
            yield base_url
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _wait_until_healthy(server: "subprocess.Popen[bytes]", base_url: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"scripts/serve exited with {server.returncode}; see artifacts/")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"scripts/serve did not answer /health within {STARTUP_SECONDS} s")


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
