"""Repositories and the unit of work against the real database."""

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.pool import QueuePool

from app.application.ports import IdempotencyRecord, UnitOfWork
from app.config import Settings
from app.domain.errors import EmailTaken, IdempotencyKeyInFlight
from app.domain.projects import Project, ProjectRole
from app.domain.sessions import RefreshToken
from app.domain.todos import DEFAULT_SORT, Priority, Todo, TodoChanges, TodoDraft, TodoFilter
from app.domain.users import Role, User
from app.infrastructure.db import create_engine
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from tests.conftest import empty_stores, on_postgres
from tests.fakes import a_todo, inbox_id

NOW = datetime.now(UTC)
UowFactory = Callable[[], SqlAlchemyUnitOfWork]


@pytest.fixture
async def uow_factory(settings: Settings) -> AsyncIterator[UowFactory]:
    await empty_stores(settings)
    engine = create_engine(settings.database_url, autocommit=True)
    yield lambda: SqlAlchemyUnitOfWork(engine)
    await engine.dispose()


def _user(email: str, role: Role = Role.USER) -> User:
    return User(
        id=uuid.uuid4(),
        email=email,
        password_hash="hash",
        full_name=None,
        role=role,
        is_active=True,
        created_at=NOW,
        updated_at=NOW,
    )


def _todo(owner: User, **fields: object) -> Todo:
    """A todo in the owner's Inbox (which `_add_user` makes)."""
    draft = TodoDraft(**{"title": "t", **fields})  # type: ignore[arg-type]
    return a_todo(owner.id, NOW, draft)


async def _add_user(uow: UnitOfWork, user: User) -> None:
    await uow.users.add(user)
    await uow.projects.add(Project.inbox(id=inbox_id(user.id), owner_id=user.id, now=NOW))


async def test_uncommitted_work_is_rolled_back(uow_factory: UowFactory) -> None:
    ada = _user("ada@x.io")
    async with uow_factory() as uow:
        await uow.users.add(ada)
    async with uow_factory() as uow:
        assert await uow.users.get(ada.id) is None


async def test_a_read_only_unit_of_work_reads_the_committed_rows_and_refuses_writes(
    settings: Settings, uow_factory: UowFactory
) -> None:
    ada = _user("ada@x.io")
    async with uow_factory() as uow:
        await uow.users.add(ada)
        await uow.commit()
    engine = create_engine(settings.database_url, autocommit=True)
    reads = SqlAlchemyUnitOfWork(engine, read_only=True)  # never entered: nothing to close

    assert await reads.users.get(ada.id) == ada
    with pytest.raises(RuntimeError, match="read-only"):
        await reads.users.add(_user("bob@x.io"))
    with pytest.raises(RuntimeError, match="read-only"):
        await reads.commit()
    # A write that returns rows (INSERT ... RETURNING) is refused too, not run in autocommit.
    with pytest.raises(RuntimeError, match="read-only"):
        await reads.idempotency_keys.claim(_key(ada), live_since=NOW - DAY)
    assert await reads.users.get_by_email("bob@x.io") is None
    async with uow_factory() as uow:  # the key was never stored: claiming it now is a first
        assert await uow.idempotency_keys.claim(_key(ada), live_since=NOW - DAY) is None
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.checkedout() == 0  # each read gave its connection back
    await engine.dispose()


async def test_duplicate_email_is_email_taken(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        await uow.users.add(_user("ada@x.io"))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(EmailTaken):
            await uow.users.add(_user("ada@x.io"))


async def test_save_is_compare_and_set_on_version(uow_factory: UowFactory) -> None:
    ada = _user("ada@x.io")
    todo = _todo(ada)
    async with uow_factory() as uow:
        await _add_user(uow, ada)
        await uow.todos.add(todo)
        await uow.commit()
    newer = todo.apply(TodoChanges(title="new"), NOW)
    async with uow_factory() as uow:
        assert await uow.todos.save(newer, expected_version=1)
        assert not await uow.todos.save(newer, expected_version=1)
        await uow.commit()
    async with uow_factory() as uow:
        found = await uow.todos.get(todo.id, reader_id=ada.id)
    assert found is not None
    assert (found[0].title, found[0].version, found[1]) == ("new", 2, ProjectRole.OWNER)


async def test_tags_filter_means_has_all_of(uow_factory: UowFactory) -> None:
    ada = _user("ada@x.io")
    both = _todo(ada, tags=("home", "work"))
    one = _todo(ada, tags=("work",))
    async with uow_factory() as uow:
        await _add_user(uow, ada)
        for todo in (both, one, _todo(ada)):
            await uow.todos.add(todo)
        await uow.commit()
        found = await uow.todos.find(
            TodoFilter(member_id=ada.id, tags=("home", "work")),
            sort=DEFAULT_SORT,
            after=None,
            limit=10,
            now=NOW,
        )
        work = await uow.todos.find(
            TodoFilter(member_id=ada.id, tags=("work",)),
            sort=DEFAULT_SORT,
            after=None,
            limit=10,
            now=NOW,
        )
    assert [t.id for t in found] == [both.id]
    assert {t.id for t in work} == {both.id, one.id}


async def test_round_trip_keeps_every_field(uow_factory: UowFactory) -> None:
    ada = _user("ada@x.io")
    todo = _todo(
        ada,
        description="d",
        priority=Priority.URGENT,
        due_at=NOW + timedelta(days=1),
        tags=("a", "b"),
        completed=True,
    )
    async with uow_factory() as uow:
        await _add_user(uow, ada)
        await uow.todos.add(todo)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.todos.get(todo.id, reader_id=ada.id) == (todo, ProjectRole.OWNER)


async def test_active_admins_are_listed(uow_factory: UowFactory) -> None:
    admin, user = _user("root@x.io", Role.ADMIN), _user("ada@x.io")
    async with uow_factory() as uow:
        await uow.users.add(admin)
        await uow.users.add(user)
        await uow.commit()
        assert await uow.users.lock_active_admins() == [admin.id]


# Idempotency keys

DAY = timedelta(hours=24)


def _key(owner: User, key: str = "k", *, at: datetime = NOW) -> IdempotencyRecord:
    return IdempotencyRecord(
        user_id=owner.id, key=key, fingerprint="f" * 64, todo_id=uuid.uuid4(), created_at=at
    )


async def _with_user(uow_factory: UowFactory) -> User:
    ada = _user("ada@x.io")
    async with uow_factory() as uow:
        await uow.users.add(ada)
        await uow.commit()
    return ada


async def test_a_committed_key_is_returned_to_the_next_claim(uow_factory: UowFactory) -> None:
    ada = await _with_user(uow_factory)
    first = _key(ada)
    async with uow_factory() as uow:
        assert await uow.idempotency_keys.claim(first, live_since=NOW - DAY) is None
        await uow.commit()
    async with uow_factory() as uow:
        later = _key(ada, at=NOW + timedelta(hours=1))
        assert await uow.idempotency_keys.claim(later, live_since=NOW - DAY) == first


async def test_an_uncommitted_key_leaves_nothing(uow_factory: UowFactory) -> None:
    ada = await _with_user(uow_factory)
    async with uow_factory() as uow:
        assert await uow.idempotency_keys.claim(_key(ada), live_since=NOW - DAY) is None
    async with uow_factory() as uow:
        assert await uow.idempotency_keys.claim(_key(ada), live_since=NOW - DAY) is None


async def test_an_expired_key_is_taken_over_and_others_are_swept(
    uow_factory: UowFactory,
) -> None:
    ada = await _with_user(uow_factory)
    live = _key(ada, "live")
    async with uow_factory() as uow:
        for key in ("taken-over", "swept"):
            await uow.idempotency_keys.claim(_key(ada, key, at=NOW - DAY), live_since=NOW - 2 * DAY)
        await uow.idempotency_keys.claim(live, live_since=NOW - DAY)
        await uow.commit()
    fresh = _key(ada, "taken-over")
    async with uow_factory() as uow:
        assert await uow.idempotency_keys.claim(fresh, live_since=NOW - DAY) is None
        await uow.idempotency_keys.delete_expired(live_since=NOW - DAY)
        await uow.commit()
    async with uow_factory() as uow:
        keys = uow.idempotency_keys
        assert await keys.claim(_key(ada, "taken-over"), live_since=NOW - DAY) == fresh
        assert await keys.claim(_key(ada, "live"), live_since=NOW - DAY) == live
        assert await keys.claim(_key(ada, "swept"), live_since=NOW - DAY) is None  # gone


@on_postgres
async def test_a_key_held_by_an_open_transaction_is_in_flight_until_it_ends(
    uow_factory: UowFactory,
) -> None:
    ada = await _with_user(uow_factory)
    async with uow_factory() as first:
        assert await first.idempotency_keys.claim(_key(ada), live_since=NOW - DAY) is None
        async with uow_factory() as second:
            with pytest.raises(IdempotencyKeyInFlight):
                await second.idempotency_keys.claim(_key(ada), live_since=NOW - DAY)
    # `first` ended without a commit: its lock and its record are gone with it.
    async with uow_factory() as third:
        assert await third.idempotency_keys.claim(_key(ada), live_since=NOW - DAY) is None


@on_postgres
async def test_a_finished_key_replays_while_another_replay_holds_its_lock(
    uow_factory: UowFactory,
) -> None:
    ada = await _with_user(uow_factory)
    first = _key(ada)
    async with uow_factory() as uow:
        await uow.idempotency_keys.claim(first, live_since=NOW - DAY)
        await uow.commit()
    async with uow_factory() as replaying:
        assert await replaying.idempotency_keys.claim(_key(ada), live_since=NOW - DAY) == first
        async with uow_factory() as retry:
            assert await retry.idempotency_keys.claim(_key(ada), live_since=NOW - DAY) == first


async def test_revoked_families_are_the_sessions_ended_since_then(uow_factory: UowFactory) -> None:
    ada = _user("ada@x.io")
    ended_long_ago, ended_lately, live = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with uow_factory() as uow:
        await uow.users.add(ada)
        for family in (ended_long_ago, ended_lately, live):
            for _ in range(2):
                await uow.refresh_tokens.add(
                    RefreshToken(
                        id=uuid.uuid4(),
                        user_id=ada.id,
                        family_id=family,
                        token_hash=uuid.uuid4().hex,
                        created_at=NOW - timedelta(hours=2),
                        expires_at=NOW + timedelta(days=7),
                    )
                )
        await uow.refresh_tokens.revoke_family(ended_long_ago, now=NOW - timedelta(hours=1))
        await uow.refresh_tokens.revoke_family(ended_lately, now=NOW - timedelta(minutes=1))
        await uow.commit()

    async with uow_factory() as uow:
        revoked = await uow.refresh_tokens.revoked_families(
            ada.id, since=NOW - timedelta(minutes=15)
        )
        anothers = await uow.refresh_tokens.revoked_families(
            uuid.uuid4(), since=NOW - timedelta(minutes=15)
        )

    assert revoked == {ended_lately: NOW - timedelta(minutes=1)}
    assert anothers == {}
