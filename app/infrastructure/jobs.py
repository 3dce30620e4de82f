"""The job engine: procrastinate, on the service's PostgreSQL, or in memory on the embedded
default (SQLite, where procrastinate has no connector; its jobs there run in the API's process
and die with it, which loses nothing: the work they do is recorded in the database, and the
sweep queues again whatever is still due — application/webhooks.py).

Why procrastinate (docs/jobs.md has the measurements): its job table lives in the database
the changes are committed to, so a job survives any crash of the API or the worker and needs
no second store to keep (Redis losing its data loses no job); a job a killed worker held is
found through the workers' heartbeats and run again; periodic jobs are deferred once per
tick whichever worker defers them.

A delivery's attempts carry a queueing lock (at most one waiting) but no job `lock`:
procrastinate's fetch checks a locked job against every other waiting job with the same lock,
which made every fetch slow once thousands of deliveries were queued (docs/performance.md,
Webhooks and jobs). Two workers never make one attempt at once because an attempt first takes the
delivery's lease in its own row (repositories/webhooks.py, `claim`).
"""

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from uuid import UUID

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import Job
from procrastinate.testing import InMemoryConnector
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from app.domain.webhooks import Delivery
from app.infrastructure.trace_context import current_traceparent

DELIVER = "webhooks.deliver"
WEBHOOKS_QUEUE = "webhooks"
MAINTENANCE_QUEUE = "maintenance"


POOL_SIZE = 4


def job_app(database_url: str) -> procrastinate.App:
    """A procrastinate App on the service's database (PostgreSQL: its pool is given at
    `opened`), else in memory."""
    if make_url(database_url).get_backend_name() != "postgresql":
        return procrastinate.App(connector=InMemoryConnector())
    return procrastinate.App(connector=procrastinate.PsycopgConnector())


@contextlib.asynccontextmanager
async def opened(app: procrastinate.App, database_url: str) -> AsyncIterator[procrastinate.App]:
    """The engine, open for as long as the block lasts. Its PostgreSQL pool is opened without
    waiting for a connection, as the service's own is: a process started while the database
    is down comes up, answers 503 where it needs it, and recovers when it is back."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        async with app.open_async():
            yield app
        return
    pool = AsyncConnectionPool(
        url.set(drivername="postgresql").render_as_string(hide_password=False),
        min_size=1,
        max_size=POOL_SIZE,
        open=False,
        check=AsyncConnectionPool.check_connection,  # a connection the server closed is replaced
    )
    await pool.open(wait=False)
    try:
        async with app.open_async(pool):
            yield app
    finally:
        await pool.close()


def delivery_lock(delivery_id: UUID) -> str:
    return f"webhook-delivery:{delivery_id}"


class ProcrastinateJobQueue:
    """The JobQueue port on a procrastinate App: each delivery's attempts carry its queueing
    lock (at most one waiting)."""

    def __init__(self, app: procrastinate.App) -> None:
        self._app = app

    async def deliver(self, deliveries: Sequence[Delivery], *, at: datetime | None = None) -> None:
        here = current_traceparent()  # a ping's request, when traced
        jobs = [self._attempt(d.id, d.trace or here, at) for d in deliveries]
        manager = self._app.job_manager
        try:  # one statement for a dispatch's many (new: none can be waiting already)
            await manager.batch_defer_jobs_async(jobs)
        except AlreadyEnqueued:
            for job in jobs:  # one is waiting already: it makes the attempt (due, or not yet)
                with contextlib.suppress(AlreadyEnqueued):
                    await manager.defer_job_async(job)

    @staticmethod
    def _attempt(delivery_id: UUID, trace: str | None, at: datetime | None) -> Job:
        key = delivery_lock(delivery_id)
        return Job(
            queue=WEBHOOKS_QUEUE,
            lock=None,  # see the module's docstring: the delivery's lease serialises attempts
            queueing_lock=key,
            task_name=DELIVER,
            task_kwargs={"delivery_id": str(delivery_id), "trace": trace},
            scheduled_at=at,
        )

    async def counts(self) -> dict[str, int]:
        """Jobs by status across every queue: todo, doing, succeeded, failed, …"""
        totals: dict[str, int] = {}
        for queue in await self._app.job_manager.list_queues_async():
            for status in ("todo", "doing", "succeeded", "failed", "cancelled", "aborted"):
                totals[status] = totals.get(status, 0) + int(queue[status])
        return totals
