"""The caller's own account, and admin management of everyone's, under the last-admin rule."""

from collections.abc import Container
from enum import Enum
from uuid import UUID, uuid4

from app.application.audit import record_user_change
from app.application.pagination import CursorCodec, Page, cursor_binding, paginate
from app.application.ports import AuditTrail, Clock, PasswordHasher, RevocationList, UnitOfWork
from app.domain.errors import LastAdmin, UserNotFound
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
    def __init__(
        self,
        uow: UnitOfWork,
        *,
        hasher: PasswordHasher,
        revocations: RevocationList,
        clock: Clock,
        cursors: CursorCodec,
        common_passwords: Container[str],
        audit: AuditTrail,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._revocations = revocations
        self._clock = clock
        self._cursors = cursors
        self._common_passwords = common_passwords
        self._audit = audit

    async def me(self, actor: Actor) -> User:
        return await self._load(actor.user_id)

    async def update_me(self, actor: Actor, changes: UserChanges) -> User:
        """Your own name and email; your role or active flag only with users:manage."""
        if changes.changes_access:
            actor.require(Permission.USERS_MANAGE)
        return await self._save(actor, await self._load(actor.user_id), changes)

    async def delete_me(self, actor: Actor) -> None:
        user = await self._load(actor.user_id)
        await self._guard_last_admin(user, after=None)
        await self._uow.users.delete(user.id)
        await self._commit_change(user.id)
        self._audit.record("user.deleted", actor_id=actor.user_id, subject_id=user.id)

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
        return await self._save(actor, await self._load(user_id), changes)

    async def delete(self, actor: Actor, user_id: UUID) -> None:
        actor.require(Permission.USERS_MANAGE)
        user = await self._load(user_id)
        await self._guard_last_admin(user, after=None)
        await self._uow.users.delete(user.id)
        await self._commit_change(user.id)
        self._audit.record("user.deleted", actor_id=actor.user_id, subject_id=user.id)

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

    async def _save(self, actor: Actor, user: User, changes: UserChanges) -> User:
        updated = user.apply(changes, self._clock.now())
        if updated is user:
            return user  # nothing changes: no write, no new updated_at
        await self._guard_last_admin(user, after=updated)
        await self._uow.users.update(updated)
        await self._commit_change(user.id)
        record_user_change(self._audit, actor, user, updated)
        return updated

    async def _commit_change(self, user_id: UUID) -> None:
        """Commits a change to a user and retires their stamp, so every instance re-reads them
        on their next request. Retired before the commit as well: with Redis down nothing is
        written (503) rather than a change that other instances would not see."""
        await self._revocations.user_changed(user_id)
        await self._uow.commit()
        await self._revocations.user_changed(user_id)

    async def _guard_last_admin(self, user: User, *, after: User | None) -> None:
        """No change may leave the service without an active admin."""
        if not user.is_active_admin or (after is not None and after.is_active_admin):
            return
        admins = await self._uow.users.lock_active_admins()
        if not set(admins) - {user.id}:
            raise LastAdmin
