"""The service as deployed (scripts/serve, started by harness.live_server) for the tests that
talk to it over real sockets: on the test database and Redis, over a baseline of test settings
(rate limits off, cheap hashing) in which every variable the service reads is set here and
nowhere else, its processes measured when the run measures coverage."""

import asyncio
import copy
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial

import coverage
import pytest

from app.config import Settings
from harness import live_server
from harness.live_server import LiveServer
from tests.conftest import ROOT, TEST_REDIS_URL, empty_stores

ARTIFACTS = ROOT / "artifacts"
SECRET_KEY = "live-server-test-secret-key-long-enough-0123456"

Serve = Callable[..., AbstractContextManager[LiveServer]]
# Read by scripts/serve or uvicorn itself rather than by the settings.
SERVE_VARIABLES = {
    "FORWARDED_ALLOW_IPS",
    "MAX_CONNECTIONS",
    "GRACEFUL_SHUTDOWN_SECONDS",
    "WEB_CONCURRENCY",
}


@pytest.fixture(scope="module")
def serve(migrated: str) -> Serve:
    """`serve(NAME=value, …)`: `serving` on the test database."""
    return partial(serving, migrated)


@contextmanager
def serving(
    database_url: str,
    *,
    fresh: bool = True,
    startup_seconds: float = live_server.STARTUP_SECONDS,
    **variables: str,
) -> Iterator[LiveServer]:
    """scripts/serve with `variables` over the test baseline, on emptied stores (`fresh=False`:
    on what the last server left), stopped when the block ends."""
    if fresh:
        settings = Settings(
            database_url=database_url, redis_url=TEST_REDIS_URL, secret_key=SECRET_KEY
        )
        asyncio.run(empty_stores(settings))
    env = {**worker_environment(database_url), "LOG_LEVEL": "WARNING", **variables}
    port = live_server.free_port()
    log = ARTIFACTS / f"server-{port}.log"
    server = live_server.start(
        "scripts/serve",
        env=env,
        port=port,
        log=log,
        baseline=_baseline(),
        startup_seconds=startup_seconds,
    )
    try:
        yield server
    finally:
        server.stop()


def worker_environment(database_url: str) -> dict[str, str]:
    """The test baseline every process of the service (server or worker) runs with."""
    return {
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": TEST_REDIS_URL or "",
        "SECRET_KEY": SECRET_KEY,
        "RATE_LIMIT_ENABLED": "false",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "LOG_LEVEL": "INFO",
        **_measured(),
    }


def _baseline() -> dict[str, str]:
    """This process's environment without uvicorn's own variable or any the service reads."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in SERVE_VARIABLES and name.lower() not in Settings.model_fields
    }


def _measured() -> dict[str, str]:
    """When this run measures coverage (scripts/test), the server's processes are measured
    too, into data files this run combines: the code only a live server runs counts."""
    current = coverage.Coverage.current()
    if current is None:
        return {}
    config = copy.copy(current.config)
    config.parallel = True  # a data file per process
    config.sigterm = True  # uvicorn ends by re-raising the SIGTERM it was stopped with
    return {"COVERAGE_PROCESS_CONFIG": config.serialize()}
