"""MAX_TODOS_PER_USER: a user owns at most that many todos, live and in the trash together; a
create past it is a 403 `todo_quota_exceeded` that creates nothing, also when many creates
race for the last places, and an idempotent replay is not a second create."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient

from app.config import Settings
from app.main import create_app
from tests.support import API, MakeUser, Session, assert_problem

QUOTA = 3


@pytest.fixture
async def limited(app: Any, settings: Settings) -> AsyncIterator[AsyncClient]:
    """The service with a quota of QUOTA todos, on the same stores as `client` (whose
    sessions it accepts: same secret key)."""
    limited_app = create_app(settings.model_copy(update={"max_todos_per_user": QUOTA}))
    async with limited_app.router.lifespan_context(limited_app):
        transport = ASGITransport(app=limited_app, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://limited") as http:
            yield http


async def _create(http: AsyncClient, session: Session, title: str, **headers: str) -> Any:
    return await http.post(
        f"{API}/todos", json={"title": title}, headers={**session.headers, **headers}
    )


async def _owned(http: AsyncClient, session: Session) -> int:
    counts = 0
    for deleted in ("false", "true"):
        page = await http.get(f"{API}/todos?limit=100&deleted={deleted}", headers=session.headers)
        assert page.status_code == 200, page.text
        counts += len(page.json()["items"])
    return counts


async def test_a_create_past_the_quota_is_403_todo_quota_exceeded_and_creates_nothing(
    limited: AsyncClient, make_user: MakeUser
) -> None:
    ada, bob = await make_user(), await make_user()
    for n in range(QUOTA):
        assert (await _create(limited, ada, f"todo {n}")).status_code == 201
    body = assert_problem(await _create(limited, ada, "one too many"), 403, "todo_quota_exceeded")
    assert str(QUOTA) in body["detail"]
    assert await _owned(limited, ada) == QUOTA
    # Another user's quota is their own.
    assert (await _create(limited, bob, "bob's first")).status_code == 201


async def test_todos_in_the_trash_count_against_the_quota_until_deleted_for_good(
    limited: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    ids = [(await _create(limited, ada, f"todo {n}")).json()["id"] for n in range(QUOTA)]
    trashed = await limited.delete(f"{API}/todos/{ids[0]}", headers=ada.headers)
    assert trashed.status_code == 204
    assert_problem(
        await _create(limited, ada, "while one is in the trash"), 403, "todo_quota_exceeded"
    )
    purged = await limited.delete(f"{API}/todos/{ids[0]}?permanent=true", headers=ada.headers)
    assert purged.status_code == 204
    assert (await _create(limited, ada, "in its place")).status_code == 201


async def test_an_idempotent_replay_at_the_quota_returns_the_todo_and_creates_nothing(
    limited: AsyncClient, make_user: MakeUser
) -> None:
    ada = await make_user()
    for n in range(QUOTA - 1):
        assert (await _create(limited, ada, f"todo {n}")).status_code == 201
    first = await _create(limited, ada, "the last one", **{"Idempotency-Key": "last"})
    assert first.status_code == 201
    replay = await _create(limited, ada, "the last one", **{"Idempotency-Key": "last"})
    assert replay.status_code == 201, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    # A new key past the quota is refused, and leaves no key behind: once there is room, the
    # same key creates the todo.
    refused = await _create(limited, ada, "past it", **{"Idempotency-Key": "past"})
    assert_problem(refused, 403, "todo_quota_exceeded")
    purged = await limited.delete(
        f"{API}/todos/{first.json()['id']}?permanent=true", headers=ada.headers
    )
    assert purged.status_code == 204
    retried = await _create(limited, ada, "past it", **{"Idempotency-Key": "past"})
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert await _owned(limited, ada) == QUOTA


async def test_concurrent_creates_at_the_quota_never_pass_it(
    limited: AsyncClient, make_user: MakeUser
) -> None:
    """Each round: one user with one place left before the quota, and a burst of creates at
    once (on PostgreSQL, one connection each): exactly one gets the place."""
    for _ in range(4):
        ada = await make_user()
        for n in range(QUOTA - 1):
            assert (await _create(limited, ada, f"todo {n}")).status_code == 201
        answers = await asyncio.gather(*(_create(limited, ada, f"race {n}") for n in range(12)))
        statuses = Counter(answer.status_code for answer in answers)
        assert statuses == {201: 1, 403: 11}, [answer.text for answer in answers]
        assert await _owned(limited, ada) == QUOTA
