"""The fakes keep the promises of the ports they stand in for, or the unit tests mean nothing
(their signatures: mypy, at the end of tests/fakes.py; their behaviour: here)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from app.domain.errors import EmailTaken
from app.domain.sessions import RefreshToken
from app.domain.todos import SortField, SortKey, Todo, TodoChanges, TodoDraft, TodoFilter
from tests.fakes import (
    FakeClock,
    FakePasswordHasher,
    InMemoryRefreshTokenRepository,
    InMemoryState,
    InMemoryTodoRepository,
    InMemoryUnitOfWork,
    InMemoryUserRepository,
    a_todo,
    a_user,
    give_inbox,
)

NOW = datetime(2025, 3, 1, tzinfo=UTC)


async def test_rollback_discards_writes_since_the_last_commit() -> None:
    uow = InMemoryUnitOfWork()
    kept, dropped = a_user(email="kept@x.io"), a_user(email="dropped@x.io")
    await uow.users.add(kept)
    await uow.commit()
    await uow.users.add(dropped)

    await uow.rollback()

    assert await uow.users.get(kept.id) == kept
    assert await uow.users.get(dropped.id) is None
    assert (uow.commits, uow.rollbacks) == (1, 1)


async def test_leaving_the_unit_of_work_without_commit_writes_nothing() -> None:
    uow = InMemoryUnitOfWork()
    user = a_user()

    async with uow:
        await uow.users.add(user)

    assert await uow.users.get(user.id) is None


async def test_email_is_unique_on_add_and_update() -> None:
    users = InMemoryUserRepository()
    ada, bob = a_user(email="ada@x.io"), a_user(email="bob@x.io")
    await users.add(ada)
    await users.add(bob)

    with pytest.raises(EmailTaken):
        await users.add(a_user(email="ada@x.io"))
    with pytest.raises(EmailTaken):
        await users.update(replace(bob, email="ada@x.io"), before=bob)


async def test_save_is_compare_and_set_on_the_version() -> None:
    todos = InMemoryTodoRepository()
    todo = a_todo(uuid4(), NOW, TodoDraft(title="t"))
    await todos.add(todo)
    v2 = todo.apply(TodoChanges(title="v2"), NOW)

    assert await todos.save(v2, expected_version=1)
    assert not await todos.save(v2.apply(TodoChanges(title="late"), NOW), expected_version=1)
    assert todos.stored(todo.id) == v2
    assert not await todos.delete(todo.id, expected_version=1)
    assert await todos.delete(todo.id, expected_version=2)


async def test_find_puts_nulls_last_both_ways_and_resumes_after_a_null() -> None:
    state = InMemoryState()
    todos = InMemoryTodoRepository(state)
    owner = uuid4()
    give_inbox(state, owner)
    dues = [None, NOW, NOW + timedelta(days=1), None]
    for due in dues:
        draft = TodoDraft(title="t", due_at=due)
        await todos.add(a_todo(owner, NOW, draft))

    async def order(descending: bool, after: tuple[object, ...] | None = None) -> list[Todo]:
        sort = [SortKey(field=SortField.DUE_AT, descending=descending)]
        return await todos.find(
            TodoFilter(member_id=owner), sort=sort, after=after, limit=10, now=NOW
        )

    ascending, descending = await order(False), await order(True)
    assert [t.due_at for t in ascending] == [NOW, NOW + timedelta(days=1), None, None]
    assert [t.due_at for t in descending] == [NOW + timedelta(days=1), NOW, None, None]
    # Ties among the nulls fall to the id, in the last key's direction.
    nulls_ascending = [t.id for t in ascending[2:]]
    nulls_descending = [t.id for t in descending[2:]]
    assert nulls_ascending == sorted(nulls_ascending)
    assert nulls_descending == sorted(nulls_descending, reverse=True)
    first_null = ascending[2]
    assert await order(False, after=(None, first_null.id)) == [ascending[3]]


async def test_refresh_token_is_spent_only_once() -> None:
    tokens = InMemoryRefreshTokenRepository()
    token = RefreshToken(
        id=uuid4(),
        user_id=uuid4(),
        family_id=uuid4(),
        token_hash="hash",
        created_at=NOW,
        expires_at=NOW + timedelta(days=1),
    )
    await tokens.add(token)

    assert await tokens.spend(token, now=NOW)
    assert not await tokens.spend(token, now=NOW)


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(NOW)

    assert clock.now() == clock.now() == NOW
    assert clock.advance(timedelta(minutes=2)) == NOW + timedelta(minutes=2)
    clock.set(NOW)
    assert clock.now() == NOW
    with pytest.raises(ValueError, match="aware"):
        clock.set(datetime(2025, 1, 1))  # noqa: DTZ001


async def test_fake_hasher_verifies_by_real_comparison() -> None:
    hasher = FakePasswordHasher()
    stored = await hasher.hash("secret pass")

    assert await hasher.verify("secret pass", stored)
    assert not await hasher.verify("secret pasS", stored)
    assert not await hasher.verify("", stored)
