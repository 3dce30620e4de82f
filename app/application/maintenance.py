"""The scheduled jobs' work: the trash purge, due-date announcements, and the clean-up of what
has expired. The job engine runs these on a timer (Background jobs in the API contract); they
are plain use cases, with nothing of the engine in them.

Each job works in batches, each batch one unit of work (one short transaction) that commits
its changes with their activity entries, until a batch comes back short:

- Safe with two workers at once: a batch takes its rows with the ones another transaction
  holds skipped (PostgreSQL's SKIP LOCKED; SQLite has one writer), so no todo is purged or
  announced twice, and each gets exactly one entry.
- Idempotent: a worker killed mid-way loses only its open batch, which commits nothing; the
  next run finds those rows as they were and does the rest. What is done stays done: a purged
  todo is gone, an announced one is marked with the due date it was announced for.
"""

from collections.abc import Awaitable, Callable
from dataclasses import astuple, dataclass
from datetime import datetime, timedelta

from app.application.activity import todo_activity
from app.application.ports import Clock, UnitOfWork
from app.application.todos import IDEMPOTENCY_TTL
from app.domain.activity import ActivityType, Position
from app.domain.todos import Todo

BATCH_SIZE = 500
# Sync history is kept this long past SYNC_RETENTION_DAYS: an entry's time is taken when its
# transaction starts, a token's when it is issued, so an entry a token still needs may be
# stamped a moment before the token; an hour is far more than any transaction takes.
SYNC_HISTORY_GRACE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Removed:
    """What one clean-up run deleted, by kind."""

    refresh_tokens: int = 0
    idempotency_keys: int = 0
    invitations: int = 0
    activity: int = 0
    """Sync history: old entries about todos and projects that no longer exist."""
    deliveries: int = 0
    """Webhook deliveries settled long enough ago (WEBHOOK_DELIVERY_RETENTION_DAYS)."""

    @property
    def total(self) -> int:
        return sum(astuple(self))  # every kind, including one added later


class MaintenanceService:
    """The scheduled jobs. Each method returns how many objects it handled, and is safe to run
    again at any time, and by two workers at once (see the module's docstring)."""

    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        *,
        clock: Clock,
        trash_retention: timedelta,
        sync_retention: timedelta,
        delivery_retention: timedelta,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("a batch holds at least one row")
        self._unit_of_work = unit_of_work
        self._clock = clock
        self._trash_retention = trash_retention
        self._sync_retention = sync_retention
        self._delivery_retention = delivery_retention
        self._batch = batch_size

    async def purge_trash(self) -> int:
        """Deletes for good every todo in the trash for longer than TRASH_RETENTION_DAYS, each
        with its `todo.purged` entry (no actor) in the same transaction, as a permanent delete
        records it: sync lists it in `removed.todos`, live events and webhooks hear of it."""
        trashed_before = self._clock.now() - self._trash_retention

        async def take(uow: UnitOfWork) -> list[Todo]:
            return await uow.todos.purge_trashed(trashed_before=trashed_before, limit=self._batch)

        return await self._record_each(take, ActivityType.TODO_PURGED)

    async def announce_due(self) -> int:
        """Records one `todo.due` entry (no actor) for every live, open todo whose due date has
        come and was not announced yet: once per due_at value, so a todo given another due
        date is due again when that one comes. The todo itself is not edited (its version,
        `updated_at` and ETag stay); sync and live events hear of it through the entry."""
        now = self._clock.now()

        async def take(uow: UnitOfWork) -> list[Todo]:
            return await uow.todos.mark_due(now=now, limit=self._batch)

        return await self._record_each(take, ActivityType.TODO_DUE)

    async def _record_each(
        self, take: Callable[[UnitOfWork], Awaitable[list[Todo]]], kind: ActivityType
    ) -> int:
        """Batch after batch, each in a unit of work of its own: the todos `take` changed, and
        an entry of `kind` for each, committed together. Until a batch comes back short."""
        total = 0
        while True:
            async with self._unit_of_work() as uow:
                todos = await take(uow)
                if todos:
                    at = self._clock.now()
                    await uow.activity.add(
                        *(todo_activity(kind, actor=None, todo=todo, at=at) for todo in todos)
                    )
                    await uow.commit()
            total += len(todos)
            if len(todos) < self._batch:
                return total

    async def remove_expired(self) -> Removed:
        """Deletes what has expired: refresh tokens past their expiry, idempotency keys past
        their day, invitations past their expiry (accepted or not), sync history: entries
        older than SYNC_RETENTION_DAYS about todos and projects that no longer exist (a sync
        token that old is refused anyway; the entries of what exists are its history), and
        webhook deliveries settled (succeeded or failed) whose event is older than
        WEBHOOK_DELIVERY_RETENTION_DAYS; one still to be retried stays, however old."""
        now = self._clock.now()
        batch = self._batch

        async def tokens(uow: UnitOfWork) -> int:
            return await uow.refresh_tokens.delete_expired(now=now, limit=batch)

        async def keys(uow: UnitOfWork) -> int:
            return await uow.idempotency_keys.delete_expired(live_since=now - IDEMPOTENCY_TTL)

        async def invitations(uow: UnitOfWork) -> int:
            return await uow.invitations.delete_expired(now=now, limit=batch)

        async def deliveries(uow: UnitOfWork) -> int:
            created_before = now - self._delivery_retention
            return await uow.deliveries.delete_settled(created_before=created_before, limit=batch)

        return Removed(
            refresh_tokens=await self._repeat(tokens, full=batch),
            # The sweep's batch is the repository's own (it also runs on each keyed create).
            idempotency_keys=await self._repeat(keys, full=1),
            invitations=await self._repeat(invitations, full=batch),
            activity=await self._remove_sync_history(now),
            deliveries=await self._repeat(deliveries, full=batch),
        )

    async def _repeat(self, step: Callable[[UnitOfWork], Awaitable[int]], *, full: int) -> int:
        """Runs `step` in a unit of work of its own, again while it did at least `full`."""
        total = 0
        while True:
            async with self._unit_of_work() as uow:
                count = await step(uow)
                if count:
                    await uow.commit()
            total += count
            if count < full:
                return total

    async def _remove_sync_history(self, now: datetime) -> int:
        """The log is walked from its start, a window of entries per unit of work, up to the
        first entry recent enough to keep whatever it is about."""
        recorded_before = now - self._sync_retention - SYNC_HISTORY_GRACE
        after: Position | None = (0, 0)  # before every entry: positions start at (1, 1)
        removed = 0
        while after is not None:
            async with self._unit_of_work() as uow:
                count, after = await uow.activity.prune(
                    recorded_before=recorded_before, after=after, limit=self._batch
                )
                if count:
                    await uow.commit()
            removed += count
        return removed
