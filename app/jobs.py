"""The service's jobs, on the job engine (infrastructure/jobs.py): webhook dispatch and
attempts, the sweep that re-queues what a crash left due, the retry of jobs a killed worker
held, and the scheduled clean-ups. The worker process (app/worker.py, `scripts/worker`) runs
them; on the embedded default the API's own process does (`run_in_process`).

Periodic jobs are deferred by every worker, once per tick between them (procrastinate records
each tick's defer), and each carries a lock: two workers never run one at the same time.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from uuid import UUID

import procrastinate

from app import tracing
from app.bootstrap import Container
from app.infrastructure.jobs import DELIVER, MAINTENANCE_QUEUE, WEBHOOKS_QUEUE

log = logging.getLogger(__name__)

DISPATCH_CRON = "* * * * * *"  # every second: an event reaches its webhooks within about one
EVERY_MINUTE = "* * * * *"
EVERY_TEN_SECONDS = "*/10 * * * * *"
EVERY_TEN_MINUTES = "*/10 * * * *"
HOURLY = "17 * * * *"  # not on the hour, when every other cron job on the host runs


def register(container: Container) -> procrastinate.App:
    """Registers the jobs on the container's engine; the same App then defers and runs them."""
    jobs = container.jobs
    if DELIVER in jobs.tasks:
        return jobs

    provider = container.tracer_provider

    @jobs.task(name=DELIVER, queue=WEBHOOKS_QUEUE)
    async def deliver(delivery_id: str, trace: str | None = None) -> None:
        with tracing.job_span(provider, DELIVER, linked_to=trace):
            await container.webhook_sender.attempt(UUID(delivery_id))

    @jobs.periodic(cron=DISPATCH_CRON)
    @jobs.task(
        name="webhooks.dispatch",
        queue=WEBHOOKS_QUEUE,
        lock="webhooks.dispatch",
        queueing_lock="webhooks.dispatch",
    )
    async def dispatch(timestamp: int) -> None:
        with tracing.job_span(provider, "webhooks.dispatch"):
            await container.webhook_dispatcher.dispatch()

    @jobs.periodic(cron=EVERY_MINUTE)
    @jobs.task(
        name="webhooks.sweep",
        queue=MAINTENANCE_QUEUE,
        lock="webhooks.sweep",
        queueing_lock="webhooks.sweep",
    )
    async def sweep(timestamp: int) -> None:
        with tracing.job_span(provider, "webhooks.sweep"):
            queued = await container.webhook_dispatcher.sweep()
        if queued:
            log.warning("re-queued %d overdue webhook deliveries", queued)

    @jobs.periodic(cron=EVERY_TEN_SECONDS)
    @jobs.task(
        name="jobs.retry_stalled",
        queue=MAINTENANCE_QUEUE,
        lock="jobs.retry_stalled",
        queueing_lock="jobs.retry_stalled",
    )
    async def retry_stalled(timestamp: int) -> None:
        """Jobs held by a worker that stopped sending heartbeats (killed) run again."""
        for job in await jobs.job_manager.get_stalled_jobs():
            log.warning(
                "job %s (%s) was held by a stopped worker: run again", job.id, job.task_name
            )
            await jobs.job_manager.retry_job(job)

    maintenance = container.maintenance_service

    @jobs.periodic(cron=EVERY_MINUTE)  # the contract: within a minute of the due time
    @jobs.task(
        name="todos.announce_due",
        queue=MAINTENANCE_QUEUE,
        lock="todos.announce_due",
        queueing_lock="todos.announce_due",
    )
    async def announce_due(timestamp: int) -> None:
        with tracing.job_span(provider, "todos.announce_due"):
            await maintenance.announce_due()

    @jobs.periodic(cron=EVERY_TEN_MINUTES)
    @jobs.task(
        name="todos.purge_trash",
        queue=MAINTENANCE_QUEUE,
        lock="todos.purge_trash",
        queueing_lock="todos.purge_trash",
    )
    async def purge_trash(timestamp: int) -> None:
        with tracing.job_span(provider, "todos.purge_trash"):
            purged = await maintenance.purge_trash()
        if purged:
            log.info("purged %d todos from the trash (TRASH_RETENTION_DAYS)", purged)

    @jobs.periodic(cron=HOURLY)
    @jobs.task(
        name="maintenance.remove_expired",
        queue=MAINTENANCE_QUEUE,
        lock="maintenance.remove_expired",
        queueing_lock="maintenance.remove_expired",
    )
    async def remove_expired(timestamp: int) -> None:
        with tracing.job_span(provider, "maintenance.remove_expired"):
            removed = await maintenance.remove_expired()
        if removed.total:
            log.info("removed what expired: %s", removed)

    return jobs


async def run_worker(container: Container, *, in_process: bool) -> None:
    """Runs the jobs until stopped: by SIGTERM/SIGINT in the worker process, by cancellation
    in the API's (whose server owns the signals)."""
    settings = container.settings
    await register(container).run_worker_async(
        concurrency=settings.worker_concurrency,
        delete_jobs="successful",  # the delivery log keeps what users read
        install_signal_handlers=not in_process,
        # On a stop, attempts in flight finish (each is bounded by the webhook timeout).
        shutdown_graceful_timeout=settings.webhook_timeout_seconds + 5,
        name="in-process" if in_process else "worker",
    )


@contextlib.asynccontextmanager
async def run_in_process(container: Container) -> AsyncIterator[None]:
    """The worker as a task of the API's process, for as long as the context lasts."""
    task = asyncio.create_task(run_worker(container, in_process=True), name="jobs")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
