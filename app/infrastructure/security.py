"""JWT issue and verification (python-jose), Argon2id password hashing (passlib API, libpass)."""

import asyncio
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from jose import JWTError, jwt
from passlib.context import CryptContext

from app.domain.errors import InvalidToken
from app.domain.sessions import AccessClaims, RefreshClaims

_REQUIRED_CLAIMS = ("sub", "exp", "iat", "jti", "iss", "aud")
_VERIFIED_CAPACITY = 10_000
_T = TypeVar("_T")
HASHING_NICENESS = 10


class JwtTokenIssuer:
    def __init__(
        self,
        *,
        secret: str,
        algorithm: str,
        issuer: str,
        audience: str,
        access_ttl: timedelta,
        refresh_ttl: timedelta,
    ) -> None:
        self._secret = secret
        self._algorithm = algorithm
        self._issuer = issuer
        self._audience = audience
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        # Access tokens already verified, with their expiry: a client sends the same token on
        # every request, and its claims cannot change. Bounded; the oldest entry makes room.
        self._verified: dict[str, tuple[float, AccessClaims]] = {}

    def issue_access(self, user_id: UUID, session_id: UUID, *, now: datetime) -> str:
        return self._encode("access", user_id, session_id, now, now + self.access_ttl)

    def issue_refresh(self, user_id: UUID, session_id: UUID, *, now: datetime) -> str:
        return self._encode("refresh", user_id, session_id, now, now + self.refresh_ttl)

    def decode_access(self, token: str) -> AccessClaims:
        seen = self._verified.get(token)
        if seen is not None:
            if time.time() < seen[0]:
                return seen[1]
            del self._verified[token]
        claims = self._decode(token, "access")
        access = AccessClaims(
            user_id=_uuid(claims["sub"]),
            session_id=_uuid(claims.get("sid")),
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
        if len(self._verified) >= _VERIFIED_CAPACITY:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (float(claims["exp"]), access)
        return access

    def decode_refresh(self, token: str) -> RefreshClaims:
        claims = self._decode(token, "refresh")
        return RefreshClaims(
            user_id=_uuid(claims["sub"]),
            session_id=_uuid(claims.get("sid")),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )

    def _encode(
        self, kind: str, user_id: UUID, session_id: UUID, now: datetime, expires: datetime
    ) -> str:
        claims = {
            "sub": str(user_id),
            "sid": str(session_id),
            "type": kind,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": secrets.token_urlsafe(16),
            "iss": self._issuer,
            "aud": self._audience,
        }
        return jwt.encode(claims, self._secret, algorithm=self._algorithm)

    def _decode(self, token: str, kind: str) -> dict[str, Any]:
        try:
            # The header's alg is checked against ours before anything else is trusted:
            # "none" and algorithm confusion end here.
            if jwt.get_unverified_header(token).get("alg") != self._algorithm:
                raise InvalidToken
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={f"require_{claim}": True for claim in _REQUIRED_CLAIMS},
            )
        except (JWTError, AttributeError, TypeError, ValueError):
            raise InvalidToken from None
        if claims.get("type") != kind:
            raise InvalidToken
        return claims


def _uuid(value: object) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidToken from None


def _yield_to_serving() -> None:
    """Hashing threads run at a lower CPU priority (Linux sets it per thread): on a busy
    machine the event loop, and the database beside it, go first; on an idle one a hash
    takes what it always takes."""
    with suppress(AttributeError, OSError):  # no per-thread priority on this platform
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


class Argon2PasswordHasher:
    """Argon2id through passlib's CryptContext. Hashing runs on threads of its own (argon2-cffi
    releases the GIL), at most `concurrency` at once and at a lower priority: a burst of
    logins queues for those threads and leaves the event loop to everyone else."""

    def __init__(
        self, *, time_cost: int, memory_kib: int, parallelism: int = 1, concurrency: int = 1
    ) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__time_cost=time_cost,
            argon2__memory_cost=memory_kib,
            argon2__parallelism=parallelism,
        )
        self._threads = ThreadPoolExecutor(
            concurrency, thread_name_prefix="argon2", initializer=_yield_to_serving
        )

    async def _run(self, function: Callable[..., _T], *args: str) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, function, *args)

    async def hash(self, password: str) -> str:
        return await self._run(self._context.hash, password)

    async def verify(self, password: str, password_hash: str) -> bool:
        try:
            return await self._run(self._context.verify, password, password_hash)
        except ValueError:  # a malformed stored hash never logs anyone in
            return False

    async def dummy_verify(self) -> None:
        await self._run(self._context.dummy_verify)
