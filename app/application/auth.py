"""Registration, login, refresh-token rotation with reuse detection, logout."""

import hashlib
from collections.abc import Container, Sequence
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from app.application.audit import record_failed_login
from app.application.ports import (
    AuditTrail,
    Clock,
    PasswordHasher,
    RevocationList,
    TokenIssuer,
    UnitOfWork,
)
from app.application.projects import open_inbox
from app.application.sessions import commit_change
from app.domain.errors import (
    AccountDisabled,
    AccountGone,
    InvalidCredentials,
    InvalidField,
    InvalidToken,
    TokenReused,
)
from app.domain.sessions import AccessClaims, RefreshToken, TokenPair
from app.domain.users import Actor, Role, User, check_password, normalise_email


def token_digest(token: str) -> str:
    """Refresh tokens are stored hashed; they are random enough that SHA-256 suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


async def revocations_in_force(
    uow: UnitOfWork, user_id: UUID, *, access_ttl: timedelta, now: datetime
) -> dict[UUID, timedelta]:
    """The user's entries in the revocation list, from the record: their refresh-token
    families. Every access token is issued with a refresh token of its session, before that
    session ends, so a session matters for `access_ttl` after it ended and no longer; a logout
    ends its token's session."""
    families = await uow.refresh_tokens.revoked_families(user_id, since=now - access_ttl)
    return {family: ended + access_ttl - now for family, ended in families.items()}


class ActorCache:
    """Callers already read, each under the user stamp it was read with, so that a request
    whose stamp still matches needs no database read. Bounded: the oldest entry makes room."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._entries: dict[UUID, tuple[str, Actor]] = {}

    def get(self, user_id: UUID, stamp: str) -> Actor | None:
        entry = self._entries.get(user_id)
        return entry[1] if entry is not None and entry[0] == stamp else None

    def put(self, stamp: str, actor: Actor) -> None:
        if len(self._entries) >= self._capacity and actor.user_id not in self._entries:
            del self._entries[next(iter(self._entries))]
        self._entries[actor.user_id] = (stamp, actor)


class AuthService:
    def __init__(
        self,
        uow: UnitOfWork,
        *,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        revocations: RevocationList,
        actors: ActorCache,
        clock: Clock,
        common_passwords: Container[str],
        audit: AuditTrail,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._tokens = tokens
        self._revocations = revocations
        self._actors = actors
        self._clock = clock
        self._common_passwords = common_passwords
        self._audit = audit

    async def register(self, *, email: str, password: str, full_name: str | None) -> User:
        """A new account, active, role `user`, with its Inbox (in the same transaction)."""
        email = normalise_email(email)
        check_password(password, email=email, common=self._common_passwords, field="password")
        user = User.new(
            id=uuid4(),
            email=email,
            password_hash=await self._hasher.hash(password),
            full_name=full_name,
            role=Role.USER,
            now=self._clock.now(),
        )
        await self._uow.users.add(user)
        await open_inbox(self._uow, owner_id=user.id, now=user.created_at)
        await self._uow.commit()
        return user

    async def login(self, *, email: str, password: str) -> TokenPair:
        user = await self._uow.users.get_by_email(normalise_email(email))
        if user is None:
            await self._hasher.dummy_verify()
            record_failed_login(self._audit, email, "unknown_email")
            raise InvalidCredentials
        if not await self._hasher.verify(password, user.password_hash):
            record_failed_login(self._audit, email, "wrong_password", user.id)
            raise InvalidCredentials
        if not user.is_active:
            record_failed_login(self._audit, email, "account_disabled", user.id)
            raise AccountDisabled
        # The new session starts under the user's lock, as every change to their sessions: a
        # password change, email change or deactivation committed since the read above is
        # seen here, and one that comes later sees (and ends) this session.
        locked = await self._uow.users.lock(user.id)
        if locked is None or locked.email != user.email:
            raise InvalidCredentials
        if locked.password_hash != user.password_hash and not await self._hasher.verify(
            password, locked.password_hash
        ):
            raise InvalidCredentials
        if not locked.is_active:
            raise AccountDisabled
        pair = await self._issue_pair(user.id, session_id=uuid4())
        self._audit.record("login.succeeded", actor_id=user.id)
        return pair

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Spends the token for a new pair. Runs under the user's lock, as every revocation of
        their sessions does: a revocation committed first is seen by the spend, which checks
        the token and its family in the same statement; one that comes later waits for this
        refresh to commit and then ends the token it issued as well."""
        claims = self._tokens.decode_refresh(refresh_token)
        digest = token_digest(refresh_token)
        stored = await self._uow.refresh_tokens.get_by_hash(digest)
        if stored is None or stored.user_id != claims.user_id:
            raise InvalidToken
        user = await self._uow.users.lock(stored.user_id)
        if user is None or not user.is_active:
            raise InvalidToken
        if await self._uow.refresh_tokens.spend(stored, now=self._clock.now()):
            return await self._issue_pair(user.id, session_id=stored.family_id)
        current = await self._uow.refresh_tokens.get_by_hash(digest)  # as committed now
        if current is None:
            raise InvalidToken
        if current.is_spent:
            # A spent token presented again means it leaked: end the whole login.
            await self._end_sessions(user.id, [current.family_id])
            raise TokenReused
        raise InvalidToken  # its login was ended

    async def logout(self, access_token: str, *, refresh_token: str | None) -> None:
        """Ends the access token's login, so the token is refused at once (plus the refresh
        token's login, if another of the caller's). A token that no request would accept is
        refused here too: a second logout is a 401."""
        claims = self._tokens.decode_access(access_token)
        await self._actor(claims)
        families = [claims.session_id]
        if refresh_token:
            stored = await self._uow.refresh_tokens.get_by_hash(token_digest(refresh_token))
            if stored is not None and stored.user_id == claims.user_id:
                families.append(stored.family_id)
        await self._end_sessions(claims.user_id, families)

    async def authenticate(self, access_token: str) -> Actor:
        """The caller behind a bearer token. One look-up answers both "revoked?" and "has the
        user changed since we read them?", so a role change bites on the very next request."""
        return await self._actor(self._tokens.decode_access(access_token))

    async def _actor(self, claims: AccessClaims) -> Actor:
        check = await self._revocations.check(claims.user_id, claims.session_id)
        if check.revoked:
            raise InvalidToken
        actor = self._actors.get(claims.user_id, check.user_stamp)
        if actor is None:
            # Read after the stamp was taken: a change committed later retires that stamp.
            user = await self._uow.users.get(claims.user_id)
            if user is None or not user.is_active:
                raise InvalidToken
            actor = Actor.of(user)
            self._actors.put(check.user_stamp, actor)
        return Actor(
            user_id=actor.user_id,
            role=actor.role,
            session_id=claims.session_id,
            permissions=actor.permissions,
        )

    async def change_password(
        self, actor: Actor, *, current_password: str, new_password: str
    ) -> None:
        """Sets a new password; every other login of the user ends at once, in the same
        transaction. The slow hashing runs before the user's lock is taken."""
        user = await self._uow.users.get(actor.user_id)
        if user is None:
            raise AccountGone
        if not await self._hasher.verify(current_password, user.password_hash):
            raise _wrong_current_password()
        if new_password == current_password:
            raise InvalidField("new_password", "The new password must differ from the current one.")
        check_password(
            new_password, email=user.email, common=self._common_passwords, field="new_password"
        )
        new_hash = await self._hasher.hash(new_password)
        locked = await self._uow.users.lock(actor.user_id)
        if locked is None:
            raise AccountGone
        if locked.password_hash != user.password_hash and not await self._hasher.verify(
            current_password, locked.password_hash
        ):
            raise _wrong_current_password()  # changed meanwhile, by another session
        now = self._clock.now()
        await self._uow.users.update(locked.with_password(new_hash, now), before=locked)
        families = await self._uow.refresh_tokens.revoke_user_families(
            actor.user_id, now=now, keep=actor.session_id
        )
        await self._commit(actor.user_id, changed=True, ended=families)
        self._audit.record("password.changed", actor_id=actor.user_id, subject_id=user.id)

    async def _end_sessions(self, user_id: UUID, families: Sequence[UUID]) -> None:
        # Under the user's lock, so that no refresh of these sessions commits in between.
        await self._uow.users.lock(user_id)
        now = self._clock.now()
        for family_id in families:
            await self._uow.refresh_tokens.revoke_family(family_id, now=now)
        await self._commit(user_id, changed=False, ended=families)

    async def _commit(self, user_id: UUID, *, changed: bool, ended: Sequence[UUID]) -> None:
        await commit_change(
            self._uow,
            self._revocations,
            user_id=user_id,
            changed=changed,
            ended=ended,
            access_ttl=self._tokens.access_ttl,
        )

    async def _issue_pair(self, user_id: UUID, *, session_id: UUID) -> TokenPair:
        now = self._clock.now()
        refresh_token = self._tokens.issue_refresh(user_id, session_id, now=now)
        await self._uow.refresh_tokens.add(
            RefreshToken(
                id=uuid4(),
                user_id=user_id,
                family_id=session_id,
                token_hash=token_digest(refresh_token),
                created_at=now,
                expires_at=now + self._tokens.refresh_ttl,
            )
        )
        await self._uow.commit()
        return TokenPair(
            access_token=self._tokens.issue_access(user_id, session_id, now=now),
            refresh_token=refresh_token,
            expires_in=int(self._tokens.access_ttl.total_seconds()),
        )


def _wrong_current_password() -> InvalidField:
    return InvalidField("current_password", "The current password is incorrect.")
