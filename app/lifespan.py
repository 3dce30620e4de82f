"""The API's start-up and shutdown: the adapters built, tracing instrumented, the first admin
made; at shutdown, the pools closed and the spans flushed."""

import asyncio
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from functools import cache
from types import FrameType
from typing import Any

from fastapi import FastAPI

from app import tracing
from app.application.users import AdminBootstrap
from app.bootstrap import Container
from app.domain.errors import EmailTaken
from app.infrastructure.jobs import opened
from app.jobs import register, run_in_process

log = logging.getLogger(__name__)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def lifespan(container: Container) -> Lifespan:
    @asynccontextmanager
    async def run(_: FastAPI) -> AsyncIterator[None]:
        settings = container.settings
        # Instrumented before the other adapters exist, so their clients are traced too.
        tracing.instrument(container.tracer_provider, container.engine)
        container.build()
        try:
            if settings.first_admin_email and settings.first_admin_password:
                await ensure_first_admin(
                    container,
                    email=settings.first_admin_email,
                    password=settings.first_admin_password.get_secret_value(),
                )
            elif settings.first_admin_email:
                log.warning("FIRST_ADMIN_EMAIL is set without FIRST_ADMIN_PASSWORD: ignored")
            redis = "Redis Cluster" if settings.redis_cluster else "Redis"
            log.info(
                "serving on %s with %s",
                "PostgreSQL" if not settings.is_sqlite else "SQLite",
                redis if container.redis else "in-process stores",
            )
            if settings.environment == "development" and settings.cors_origins is None:
                log.info(
                    "CORS: allowing the local frontend dev servers %s (set CORS_ORIGINS to change)",
                    ", ".join(settings.allowed_origins),
                )
            tune_garbage_collector()
            async with AsyncExitStack() as stack:
                # The job engine: the API defers jobs (a webhook ping); on the embedded
                # default it also runs them, since no worker process runs there.
                await stack.enter_async_context(opened(register(container), settings.database_url))
                if settings.runs_jobs_in_process:
                    await stack.enter_async_context(run_in_process(container))
                    log.info("jobs run in this process (no worker needed)")
                with streams_end_on_shutdown(container.live_feed.shut_down):
                    yield
        finally:  # after uvicorn's graceful shutdown: every request has finished or was cut
            await container.aclose()
            await tracing.shutdown(container.tracer_provider)

    return run


async def ensure_first_admin(container: Container, *, email: str, password: str) -> None:
    """FIRST_ADMIN_EMAIL at start-up: safe on every restart, and when several instances start
    at once. Logs what it did, never the password."""
    for _ in range(2):
        async with container.unit_of_work() as uow:
            try:
                outcome = await container.user_service(uow).bootstrap_admin(
                    email=email, password=password
                )
            except EmailTaken:  # another instance created it between our read and write
                continue
        level = logging.WARNING if outcome is AdminBootstrap.EMAIL_IN_USE else logging.INFO
        log.log(level, "FIRST_ADMIN_EMAIL %s: %s", email, outcome.value)
        return


@contextmanager
def streams_end_on_shutdown(shut_down: Callable[[], None]) -> Iterator[None]:
    """Open event streams never finish by themselves, and the server waits for every response
    to finish before it shuts the application down (the lifespan's end comes after them). So
    the streams learn of the shutdown from its signal: a handler for SIGTERM and SIGINT,
    installed with the standard `signal` API in front of the server's own, ends them (each
    sends `stream.end` "shutdown") and then hands the signal on to the handler it replaced,
    which begins the server's graceful shutdown as before. Restored when the app stops. Where
    signals cannot be handled (not the main thread), the lifespan's end still ends them."""
    loop = asyncio.get_running_loop()
    replaced: dict[signal.Signals, Any] = {}

    def handle(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(shut_down)
        previous = replaced.get(signal.Signals(signum))
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:  # no server handles it: the default action
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            replaced[signum] = signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, previous in replaced.items():
            if signal.getsignal(signum) is handle:
                signal.signal(signum, previous)
        shut_down()


@cache  # once per process: what is frozen is never collected
def tune_garbage_collector() -> None:
    """A request allocates thousands of objects: at Python's default threshold (700) the
    collector ran several times per request, and a full collection walked every module, model
    and compiled statement, a long pause on whichever request was unlucky. What exists at
    start-up lives as long as the process, so it is frozen out of the collector's sight, and
    young collections run less often (the gain, measured with bench/http, is in
    docs/performance.md)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
