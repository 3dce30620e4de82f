"""The caller's own account, and admin management of everyone's, under the last-admin rule."""

from collections.abc import Container, Sequence
from datetime import timedelta
from enum import Enum
from uuid import UUID, uuid4

from app.application.audit import record_user_change
from app.application.pagination import CursorCodec, Page, cursor_binding, paginate
from app.application.ports import AuditTrail, Clock, PasswordHasher, RevocationList, UnitOfWork
from app.application.projects import close_account_projects, open_inbox
from app.application.sessions import commit_change
from app.domain.errors import AccountGone, DomainError, InvalidField, LastAdmin, UserNotFound
from app.domain.users import (
    Actor,
    Permission,
    Role,
    User,
    UserChanges,
    UserFilter,
    check_password,
    normalise_email,
)


class AdminBootstrap(Enum):
    """What start-up did with the configured first admin's email."""

    CREATED = "created it as an active admin"
    ALREADY_ADMIN = "it is already an active admin; nothing to do"
    EMAIL_IN_USE = "an account that is not an active admin holds it; left unchanged"
    ADMIN_EXISTS = "an active admin already exists; no account created"


class UserService:
    """Every write to a user runs under the user's row lock (`UserRepository.lock`), reads the
    row there and writes back only what changed, so no write restores a value another
    committed write replaced. A change that must end sessions ends them in its transaction:
    an email change the caller's other sessions, a deactivation every session, for good."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        hasher: PasswordHasher,
        revocations: RevocationList,
        clock: Clock,
        cursors: CursorCodec,
        common_passwords: Container[str],
        access_ttl: timedelta,
        audit: AuditTrail,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._revocations = revocations
        self._clock = clock
        self._cursors = cursors
        self._common_passwords = common_passwords
        self._access_ttl = access_ttl
        self._audit = audit

    async def me(self, actor: Actor) -> User:
        user = await self._uow.users.get(actor.user_id)
        if user is None:
            raise AccountGone
        return user

    async def update_me(
        self, actor: Actor, changes: UserChanges, *, current_password: str | None = None
    ) -> User:
        """Your own name and email; your role or active flag only with users:manage. An email
        change needs your current password, checked before anything else, and signs out your
        other sessions."""
        if changes.changes_access:
            actor.require(Permission.USERS_MANAGE)
        user = await self.me(actor)
        verified = None
        if _changes_email(user, changes):
            verified = await self._check_password(user, current_password, verified=None)
        return await self._save(
            actor,
            user,
            changes,
            gone=AccountGone,
            keep=actor.session_id,
            password=(current_password, verified),
        )

    async def delete_me(self, actor: Actor) -> None:
        await self._delete(actor, await self.me(actor), gone=AccountGone)

    async def list(
        self, actor: Actor, query: UserFilter, *, limit: int, cursor: str | None
    ) -> Page[User]:
        actor.require(Permission.USERS_MANAGE)
        binding = cursor_binding(query)
        after = self._cursors.decode(cursor, binding=binding) if cursor else None
        rows = await self._uow.users.find(query, after=after, limit=limit + 1)
        return paginate(
            rows,
            limit=limit,
            cursors=self._cursors,
            binding=binding,
            sort_values=lambda user: (user.created_at, user.id),
        )

    async def get(self, actor: Actor, user_id: UUID) -> User:
        actor.require(Permission.USERS_MANAGE)
        return await self._load(user_id)

    async def update(self, actor: Actor, user_id: UUID, changes: UserChanges) -> User:
        actor.require(Permission.USERS_MANAGE)
        return await self._save(
            actor, await self._load(user_id), changes, gone=UserNotFound, keep=None
        )

    async def delete(self, actor: Actor, user_id: UUID) -> None:
        actor.require(Permission.USERS_MANAGE)
        await self._delete(actor, await self._load(user_id), gone=UserNotFound)

    async def create_admin(self, *, email: str, password: str) -> User:
        """A new, active admin account. Never changes an existing one: EmailTaken if the email
        is in use (an operator promotes an account through the API, as an admin)."""
        email = normalise_email(email)
        check_password(password, email=email, common=self._common_passwords, field="password")
        admin = User.new(
            id=uuid4(),
            email=email,
            password_hash=await self._hasher.hash(password),
            full_name=None,
            role=Role.ADMIN,
            now=self._clock.now(),
        )
        await self._uow.users.add(admin)
        await open_inbox(self._uow, owner_id=admin.id, now=admin.created_at)
        await self._uow.commit()
        return admin

    async def bootstrap_admin(self, *, email: str, password: str) -> AdminBootstrap:
        """The first admin, created only while the service has no active admin and nobody
        holds the email. It never promotes an account it did not create: an address freed by
        an admin's email change and registered by someone else must not make them admin."""
        existing = await self._uow.users.get_by_email(normalise_email(email))
        if existing is not None:
            if existing.is_active_admin:
                return AdminBootstrap.ALREADY_ADMIN
            return AdminBootstrap.EMAIL_IN_USE
        if await self._uow.users.lock_active_admins():
            return AdminBootstrap.ADMIN_EXISTS
        await self.create_admin(email=email, password=password)
        return AdminBootstrap.CREATED

    async def _load(self, user_id: UUID) -> User:
        user = await self._uow.users.get(user_id)
        if user is None:
            raise UserNotFound
        return user

    async def _lock(self, user: User, *, demotes: bool, gone: type[DomainError]) -> User:
        """The user as committed now, locked for this change. A change that may leave no
        active admin locks the active admins first, in id order, then the user (already among
        them): two such changes lock in one order and never deadlock."""
        if demotes:
            await self._uow.users.lock_active_admins()
        locked = await self._uow.users.lock(user.id)
        if locked is None:
            raise gone
        return locked

    async def _save(
        self,
        actor: Actor,
        user: User,
        changes: UserChanges,
        *,
        gone: type[DomainError],
        keep: UUID | None,
        password: tuple[str | None, str | None] = (None, None),
    ) -> User:
        """`user`, read before the lock, only chooses what to lock; the change applies to the
        row as the lock reads it. `password`: the current password the caller sent, and the
        hash it was verified against (None: not verified)."""
        now = self._clock.now()
        demotes = user.is_active_admin and not user.apply(changes, now).is_active_admin
        locked = await self._lock(user, demotes=demotes, gone=gone)
        updated = locked.apply(changes, now)
        if updated is locked:
            return locked  # nothing changes: no write, no new updated_at
        if updated.email != locked.email:
            current_password, verified = password
            await self._check_password(locked, current_password, verified=verified)
        await self._guard_last_admin(locked, after=updated)
        await self._uow.users.update(updated, before=locked)
        ended: list[UUID] = []
        if locked.is_active and not updated.is_active:
            ended += await self._uow.refresh_tokens.revoke_user_families(locked.id, now=now)
        elif updated.email != locked.email:
            ended += await self._uow.refresh_tokens.revoke_user_families(
                locked.id, now=now, keep=keep
            )
        await self._commit_change(locked.id, ended=ended)
        record_user_change(self._audit, actor, locked, updated)
        return updated

    async def _delete(self, actor: Actor, user: User, *, gone: type[DomainError]) -> None:
        locked = await self._lock(user, demotes=user.is_active_admin, gone=gone)
        await self._guard_last_admin(locked, after=None)
        await close_account_projects(
            self._uow, actor_id=actor.user_id, user_id=locked.id, now=self._clock.now()
        )
        await self._uow.users.delete(locked.id)
        await self._commit_change(locked.id)
        self._audit.record("user.deleted", actor_id=actor.user_id, subject_id=locked.id)

    async def _check_password(
        self, user: User, password: str | None, *, verified: str | None
    ) -> str:
        """Raises unless `password` is the user's; the hash it matched. `verified`: a hash it
        already matched, which needs no second (slow) verification."""
        if password is None:
            raise InvalidField("current_password", "Send your current password to change this.")
        if user.password_hash != verified and not await self._hasher.verify(
            password, user.password_hash
        ):
            raise InvalidField("current_password", "The current password is incorrect.")
        return user.password_hash

    async def _commit_change(self, user_id: UUID, *, ended: Sequence[UUID] = ()) -> None:
        """Commits a change to a user and retires their stamp, so every instance re-reads them
        on their next request (see sessions.commit_change)."""
        await commit_change(
            self._uow,
            self._revocations,
            user_id=user_id,
            changed=True,
            ended=ended,
            access_ttl=self._access_ttl,
        )

    async def _guard_last_admin(self, user: User, *, after: User | None) -> None:
        """No change may leave the service without an active admin."""
        if not user.is_active_admin or (after is not None and after.is_active_admin):
            return
        admins = await self._uow.users.lock_active_admins()
        if not set(admins) - {user.id}:
            raise LastAdmin


def _changes_email(user: User, changes: UserChanges) -> bool:
    return changes.email is not None and normalise_email(changes.email) != user.email
