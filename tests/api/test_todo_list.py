"""The list endpoint against a straightforward in-memory model of the same query: every
filter, every sort key both ways (nulls and ties included), and keyset pages that return
every match exactly once, in order."""

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import API, MakeUser, Session

PRIORITIES = ["low", "medium", "high", "urgent"]
TAGS = ["work", "home", "urgent", "later"]
SORT_FIELDS = ["created_at", "updated_at", "due_at", "priority", "title"]
NOW = datetime.now(UTC)


def _model_sort(rows: list[dict[str, Any]], sort: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    """Stable sorts from the least significant key up: id (in the last key's direction),
    then each key, with nulls last whichever the direction."""
    ordered = sorted(rows, key=lambda r: r["id"], reverse=sort[-1][1])
    for field, descending in reversed(sort):

        def key(row: dict[str, Any], field: str = field) -> Any:
            value = row[field]
            if field == "priority":
                value = PRIORITIES.index(value)
            if field.endswith("_at") and value is not None:
                value = datetime.fromisoformat(value)
            return value

        present = [r for r in ordered if key(r) is not None]
        missing = [r for r in ordered if key(r) is None]
        ordered = sorted(present, key=key, reverse=descending) + missing
    return ordered


def _model_filter(rows: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    def due(row: dict[str, Any]) -> datetime | None:
        return datetime.fromisoformat(row["due_at"]) if row["due_at"] else None

    def keep(row: dict[str, Any]) -> bool:
        if row["_deleted"] != params.get("deleted", False):
            return False
        if "completed" in params and row["completed"] != params["completed"]:
            return False
        if params.get("priority") and row["priority"] not in params["priority"]:
            return False
        if not set(params.get("tag", [])) <= set(row["tags"]):
            return False
        if "q" in params:
            text = params["q"].lower()
            if text not in row["title"].lower() and text not in row["description"].lower():
                return False
        row_due = due(row)
        if "due_before" in params and not (row_due and row_due < params["due_before"]):
            return False
        if "due_after" in params and not (row_due and row_due > params["due_after"]):
            return False
        if "overdue" in params:
            overdue = not row["completed"] and row_due is not None and row_due < NOW
            if overdue != params["overdue"]:
                return False
        return True

    return [row for row in rows if keep(row)]


async def _seed(client: AsyncClient, who: Session, count: int) -> list[dict[str, Any]]:
    rng = random.Random(20261121)
    rows = []
    for n in range(count):
        due_days = rng.choice([None, -3, -1, 2, 2, 5])  # nulls and ties
        body = {
            "title": rng.choice(["Alpha", "beta", "Gamma", "alpha", "Milk run"]) + f" {n % 4}",
            "description": rng.choice(["", "buy MILK", "call bob"]),
            "priority": rng.choice(PRIORITIES),
            "tags": rng.sample(TAGS, rng.randint(0, 3)),
            "completed": rng.random() < 0.3,
            "due_at": None
            if due_days is None
            else (NOW.replace(microsecond=0) + timedelta(days=due_days)).isoformat(),
        }
        response = await client.post(f"{API}/todos", json=body, headers=who.headers)
        assert response.status_code == 201
        row = response.json()
        row["_deleted"] = False
        if n % 7 == 0:  # some are edited later: updated_at differs from created_at order
            patched = await client.patch(
                f"{API}/todos/{row['id']}", json={"title": row["title"] + "!"}, headers=who.headers
            )
            row = {**patched.json(), "_deleted": False}
        if n % 9 == 0:
            await client.delete(f"{API}/todos/{row['id']}", headers=who.headers)
            row["_deleted"] = True
        rows.append(row)
    return rows


async def _walk(client: AsyncClient, who: Session, params: dict[str, Any], limit: int) -> list[str]:
    query = {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in params.items()
        if k != "sort_keys"
    }
    ids: list[str] = []
    cursor = None
    for _ in range(200):
        page_params = {**query, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"{API}/todos", params=page_params, headers=who.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("pagination did not end")


sort_keys = st.lists(
    st.tuples(st.sampled_from(SORT_FIELDS), st.booleans()),
    min_size=1,
    max_size=3,
    unique_by=lambda key: key[0],
)
filters = st.fixed_dictionaries(
    {},
    optional={
        "completed": st.booleans(),
        "priority": st.lists(st.sampled_from(PRIORITIES), min_size=1, max_size=2, unique=True),
        "tag": st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True),
        "q": st.sampled_from(["alpha", "MILK", "a", "bob"]),
        "due_before": st.sampled_from([NOW, NOW + timedelta(days=3)]),
        "due_after": st.sampled_from([NOW - timedelta(days=2), NOW]),
        "overdue": st.booleans(),
        "deleted": st.booleans(),
    },
)


@pytest.fixture
async def seeded(client: AsyncClient, make_user: MakeUser) -> tuple[Session, list[dict[str, Any]]]:
    ada, bob = await make_user(), await make_user()
    await _seed(client, bob, 5)  # someone else's todos never show up
    return ada, await _seed(client, ada, 40)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sort=sort_keys, params=filters, limit=st.integers(min_value=1, max_value=7))
async def test_every_page_walk_matches_the_model(
    client: AsyncClient,
    seeded: tuple[Session, list[dict[str, Any]]],
    sort: list[tuple[str, bool]],
    params: dict[str, Any],
    limit: int,
) -> None:
    ada, rows = seeded
    spec = ",".join(("-" if descending else "") + field for field, descending in sort)
    expected = [row["id"] for row in _model_sort(_model_filter(rows, params), sort)]
    assert await _walk(client, ada, {**params, "sort": spec}, limit) == expected


@pytest.mark.parametrize("field", SORT_FIELDS)
@pytest.mark.parametrize("descending", [False, True])
async def test_each_sort_key_both_ways(
    client: AsyncClient,
    seeded: tuple[Session, list[dict[str, Any]]],
    field: str,
    descending: bool,
) -> None:
    ada, rows = seeded
    sort = [(field, descending)]
    expected = [row["id"] for row in _model_sort(_model_filter(rows, {}), sort)]
    spec = ("-" if descending else "") + field
    assert await _walk(client, ada, {"sort": spec}, 4) == expected


async def test_default_order_is_newest_first(
    client: AsyncClient, seeded: tuple[Session, list[dict[str, Any]]]
) -> None:
    ada, rows = seeded
    live = [row for row in rows if not row["_deleted"]]
    response = await client.get(f"{API}/todos", params={"limit": 100}, headers=ada.headers)
    assert [t["id"] for t in response.json()["items"]] == [
        row["id"] for row in _model_sort(live, [("created_at", True)])
    ]


async def test_a_cursor_is_bound_to_its_filters_and_sort(
    client: AsyncClient, seeded: tuple[Session, list[dict[str, Any]]]
) -> None:
    ada, _ = seeded
    first = (await client.get(f"{API}/todos", params={"limit": 2}, headers=ada.headers)).json()
    cursor = first["next_cursor"]
    assert cursor
    others: list[dict[str, Any]] = [
        {"sort": "title"},
        {"completed": True},
        {"tag": "work"},
        {"deleted": True},
    ]
    for other in others:
        response = await client.get(
            f"{API}/todos", params={"limit": 2, "cursor": cursor, **other}, headers=ada.headers
        )
        assert response.status_code == 400, other
        assert response.json()["code"] == "invalid_cursor"
    edited = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")
    for bad in [edited, "not-a-cursor", "=" * 8, cursor + cursor]:
        response = await client.get(
            f"{API}/todos", params={"limit": 2, "cursor": bad}, headers=ada.headers
        )
        assert response.status_code == 400, bad
        assert response.json()["code"] == "invalid_cursor", bad


async def test_another_users_cursor_does_not_work_for_me(
    client: AsyncClient, seeded: tuple[Session, list[dict[str, Any]]], make_user: MakeUser
) -> None:
    ada, _ = seeded
    eve = await make_user()
    cursor = (await client.get(f"{API}/todos", params={"limit": 1}, headers=ada.headers)).json()[
        "next_cursor"
    ]
    response = await client.get(
        f"{API}/todos", params={"limit": 1, "cursor": cursor}, headers=eve.headers
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "colour"}, "query.sort"),
        ({"sort": "title,-title"}, "query.sort"),
        ({"sort": "-"}, "query.sort"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 101}, "query.limit"),
        ({"due_before": "2030-01-01T00:00:00"}, "query.due_before"),
        ({"due_after": "yesterday"}, "query.due_after"),
        # No UTC form (year 0, year 10000): an overflow, not a 500.
        ({"due_before": "0001-01-01T00:00:00+14:00"}, "query.due_before"),
        ({"due_after": "9999-12-31T23:59:59-14:00"}, "query.due_after"),
        ({"due_before": "9999-12-31T23:59:59-14:00"}, "query.due_before"),
        ({"due_after": "0001-01-01T00:00:00+14:00"}, "query.due_after"),
        ({"priority": "critical"}, "query.priority.0"),
        ({"completed": "perhaps"}, "query.completed"),
        ({"tag": "x" * 33}, "query.tag.0"),
        ({"owner_id": "not-a-uuid"}, "query.owner_id"),
    ],
)
async def test_bad_list_parameters_are_422_naming_the_field(
    client: AsyncClient, make_user: MakeUser, params: dict[str, Any], field: str
) -> None:
    ada = await make_user()
    response = await client.get(f"{API}/todos", params=params, headers=ada.headers)
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]
