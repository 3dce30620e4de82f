"""Login sessions: refresh tokens grouped in families, one family per login."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A refresh token as stored: only its hash, never the token itself."""

    id: UUID
    user_id: UUID
    family_id: UUID
    token_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def is_spent(self) -> bool:
        return self.used_at is not None


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says about its bearer."""

    user_id: UUID
    session_id: UUID
    token_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    user_id: UUID
    session_id: UUID
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
