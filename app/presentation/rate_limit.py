"""Rate limits on the `limits` library's async storage, as FastAPI dependencies.

Limits are counted in Redis when REDIS_URL is set (shared by every instance), else in process.
If the store fails, requests are let through and a warning is logged: rate limiting degrades,
the API stays up.

Windows are fixed and aligned to the clock (a minute limit resets on the minute): one counter
increment per request, whose answer alone gives every header exactly. `limits`' own
strategies need a second round trip for the remaining count and reset time, on every request.
An authenticated request's hit is counted by the access check, in its one Redis round trip
(`hit_for` + `settle`); the other limits count here (`hit`).
"""

import logging
import math
import time
from dataclasses import dataclass

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import Storage

from app.application.ports import Hit
from app.presentation.errors import HTTPProblem

log = logging.getLogger(__name__)


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


class RateLimiter:
    def __init__(self, storage: Storage, *, enabled: bool, limits: dict[str, str]) -> None:
        self._storage = storage
        self.enabled = enabled
        self._limits: dict[str, RateLimitItem] = {
            name: parse(spec) for name, spec in limits.items()
        }

    def hit_for(self, name: str, *identity: str) -> Hit | None:
        """This request's hit on a limit, to count where it costs least (the access check
        counts it in its own round trip); None when limits are off."""
        if not self.enabled:
            return None
        item = self._limits[name]
        window = item.get_expiry()
        start = int(time.time() // window) * window
        # The key names its window, and outlives it by less than one more.
        return Hit(item.key_for(name, *identity, str(start)), window, resets_at=start + window)

    async def hit(self, name: str, *identity: str) -> RateLimitState | None:
        """Counts one request; raises a 429 problem when over the limit."""
        hit = self.hit_for(name, *identity)
        if hit is None:
            return None
        try:
            count = await self._storage.incr(hit.key, hit.window_seconds)
        except Exception:  # any storage fault: degrade to no limit rather than fail requests
            log.warning("rate-limit store unavailable; %s not enforced", name, exc_info=True)
            return None
        return self.settle(name, hit, count)

    def settle(self, name: str, hit: Hit, count: int) -> RateLimitState:
        """The state once `hit` was counted (`count`, the counter after it); raises a 429
        problem when over the limit."""
        amount = self._limits[name].amount
        state = RateLimitState(amount, max(0, amount - count), hit.resets_at)
        if count > amount:
            retry_after = max(1, math.ceil(hit.resets_at - time.time()))
            raise HTTPProblem(
                429,
                "rate_limited",
                f"Too many requests; retry in {retry_after} seconds.",
                headers={**state.headers(), "Retry-After": str(retry_after)},
            )
        return state


def client_ip(request: Request) -> str:
    # Behind a proxy named in TRUSTED_PROXIES, the client it forwarded for (app/main.py).
    return request.client.host if request.client else "unknown"
