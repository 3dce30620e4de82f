"""The job worker: `scripts/worker` (or `python -m app.worker`), with the API's environment.
It runs the jobs of app/jobs.py until SIGTERM or SIGINT, then lets the jobs in flight finish."""

import asyncio
import logging

from app import tracing
from app.bootstrap import Container
from app.config import load_settings
from app.infrastructure.jobs import opened
from app.jobs import register, run_worker
from app.logs import configure_logging

log = logging.getLogger("app.worker")


async def run() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.is_sqlite:
        log.error(
            "the worker needs PostgreSQL (DATABASE_URL): on the embedded default (SQLite) the "
            "API runs its jobs in its own process, and no worker is needed"
        )
        raise SystemExit(2)
    provider = tracing.provider_from_environment()
    container = Container(settings, tracer_provider=provider)
    tracing.instrument(provider, container.engine)  # its SQL spans, as the API's
    jobs = register(container)
    try:
        async with opened(jobs, settings.database_url):
            log.info("worker started: concurrency %d", settings.worker_concurrency)
            await run_worker(container, in_process=False)
    finally:
        await container.aclose()
        await tracing.shutdown(provider)
    log.info("worker stopped")


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
