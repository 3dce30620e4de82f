"""Rate limits on the `limits` library's async storage, as FastAPI dependencies.

Limits are counted in Redis when REDIS_URL is set (shared by every instance), else in process.
If the store fails, requests are let through and a warning is logged: rate limiting degrades,
the API stays up.

Windows are fixed and aligned to the clock (a minute limit resets on the minute): one counter
increment per request, whose answer alone gives every header exactly. `limits`' own
strategies need a second round trip for the remaining count and reset time, on every request.

The default limit of a caller with a valid token is counted per user, in the revocation
list's store, beside the user's access state: a request that authenticates counts it in its
access check's own script call (`counted_access`), one round trip for both; the others count
it there too (`hit_user`). Every other limit counts in `limits`' storage (`hit`).
"""

import logging
import math
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol
from uuid import UUID

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import Storage

from app.application.ports import AccessCheck, RevocationList
from app.presentation.errors import HTTPProblem

log = logging.getLogger(__name__)


class CountingRevocationList(RevocationList, Protocol):
    """A revocation list that also keeps counters per user (app/infrastructure/redis.py)."""

    async def check_counting(
        self, user_id: UUID, session_id: UUID, counter: str, *, window: int
    ) -> tuple[AccessCheck, int]:
        """`check`, and one count on the user's `counter` in the same call: the count."""

    async def count(self, user_id: UUID, counter: str, *, window: int) -> int: ...


@dataclass(frozen=True, slots=True)
class RateLimitState:
    limit: int
    remaining: int
    reset_at: int  # Unix time, seconds

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """As ASGI header pairs (lower-case names), for the edge middleware."""
        return [(name.lower().encode(), value.encode()) for name, value in self.headers().items()]


@dataclass(frozen=True, slots=True)
class _Window:
    """The current window of a limit for some identity: the counter to count in."""

    item: RateLimitItem
    key: str
    seconds: int
    resets_at: int  # Unix time, seconds

    def settle(self, count: int) -> RateLimitState:
        """The state once counted (`count`, the counter after it); raises a 429 problem
        when over the limit."""
        state = RateLimitState(self.item.amount, max(0, self.item.amount - count), self.resets_at)
        if count > self.item.amount:
            retry_after = max(1, math.ceil(self.resets_at - time.time()))
            raise HTTPProblem(
                429,
                "rate_limited",
                f"Too many requests; retry in {retry_after} seconds.",
                headers={**state.headers(), "Retry-After": str(retry_after)},
            )
        return state


class CountedAccess:
    """The revocation list as one request's AuthService sees it: its access check counts the
    request on the user's default limit in the same call. `settle()` afterwards."""

    def __init__(self, users: CountingRevocationList, window: _Window) -> None:
        self._users = users
        self._window = window
        self._count: int | None = None

    async def check(self, user_id: UUID, session_id: UUID) -> AccessCheck:
        window = self._window
        check, self._count = await self._users.check_counting(
            user_id, session_id, window.key, window=window.seconds
        )
        return check

    async def revoke(self, user_id: UUID, *session_ids: UUID, ttl: timedelta) -> None:
        await self._users.revoke(user_id, *session_ids, ttl=ttl)

    async def user_changed(self, user_id: UUID) -> None:
        await self._users.user_changed(user_id)

    def settle(self) -> RateLimitState | None:
        """The default limit's state after the check counted it (None if no check ran);
        raises a 429 problem when over it."""
        return None if self._count is None else self._window.settle(self._count)


class RateLimiter:
    def __init__(
        self,
        storage: Storage,
        users: CountingRevocationList,
        *,
        enabled: bool,
        limits: dict[str, str],
    ) -> None:
        self._storage = storage
        self._users = users
        self.enabled = enabled
        self._limits: dict[str, RateLimitItem] = {
            name: parse(spec) for name, spec in limits.items()
        }

    def _window(self, name: str, *identity: str) -> _Window:
        item = self._limits[name]
        seconds = item.get_expiry()
        start = int(time.time() // seconds) * seconds
        # The key names its window, and outlives it by less than one more.
        key = item.key_for(name, *identity, str(start))
        return _Window(item, key, seconds, resets_at=start + seconds)

    async def hit(self, name: str, *identity: str) -> RateLimitState | None:
        """Counts one request in `limits`' storage; raises a 429 problem when over the limit."""
        if not self.enabled:
            return None
        window = self._window(name, *identity)
        try:
            count = await self._storage.incr(window.key, window.seconds)
        except Exception:  # any storage fault: degrade to no limit rather than fail requests
            log.warning("rate-limit store unavailable; %s not enforced", name, exc_info=True)
            return None
        return window.settle(count)

    async def hit_user(self, name: str, user_id: UUID) -> RateLimitState | None:
        """Counts one request of the user on a per-user limit, in the counter `counted_access`
        counts in; raises a 429 problem when over the limit."""
        if not self.enabled:
            return None
        window = self._window(name)
        try:
            count = await self._users.count(user_id, window.key, window=window.seconds)
        except Exception:  # as in `hit`: degrade rather than fail requests
            log.warning("rate-limit store unavailable; %s not enforced", name, exc_info=True)
            return None
        return window.settle(count)

    def counted_access(self, name: str) -> CountedAccess | None:
        """A revocation list for one request whose access check also counts it on the caller's
        per-user limit `name`; None when limits are off."""
        if not self.enabled:
            return None
        return CountedAccess(self._users, self._window(name))


def client_ip(request: Request) -> str:
    # Behind a proxy named in TRUSTED_PROXIES, the client it forwarded for (app/main.py).
    return request.client.host if request.client else "unknown"
