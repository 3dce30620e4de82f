"""Committing a change to a user or to their sessions, and telling the revocation list.

The database is the record; the revocation list (Redis, or in process) is the fast copy that
every request checks. A change is told to it before the commit, so that with Redis down
nothing is committed that it would not know (503, nothing written), and again after, because
a list emptied and refilled in between read the record without this change. Once the commit
is done the change stands: the second telling is retried, and if Redis still fails the change
is answered as committed (the first telling holds unless Redis was also emptied meanwhile).
"""

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from app.application.ports import RevocationList, ServiceUnavailable, UnitOfWork

log = logging.getLogger(__name__)

AFTER_COMMIT_ATTEMPTS = 3
AFTER_COMMIT_BACKOFF = timedelta(milliseconds=50)  # doubled after each failed attempt


async def commit_change(
    uow: UnitOfWork,
    revocations: RevocationList,
    *,
    user_id: UUID,
    changed: bool,
    ended: Sequence[UUID] = (),
    access_ttl: timedelta,
) -> None:
    """Commits the unit of work. `changed`: the user changed, so every copy of them read
    before is stale (their stamp is retired); `ended`: sessions of theirs ended, whose access
    tokens are refused from now on."""
    sessions = list(dict.fromkeys(ended))

    async def tell() -> None:
        if sessions:
            await revocations.revoke(user_id, *sessions, ttl=access_ttl)
        if changed:
            await revocations.user_changed(user_id)

    await tell()
    await uow.commit()
    delay = AFTER_COMMIT_BACKOFF.total_seconds()
    for attempt in range(1, AFTER_COMMIT_ATTEMPTS + 1):
        try:
            await tell()
            return
        except ServiceUnavailable:
            if attempt == AFTER_COMMIT_ATTEMPTS:
                log.warning(
                    "committed a change to user %s, but the revocation list could not be told "
                    "again after the commit",
                    user_id,
                    exc_info=True,
                )
                return
            await asyncio.sleep(delay)
            delay *= 2
