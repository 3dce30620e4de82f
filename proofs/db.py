"""What the database really holds: the ground truth the HTTP answers are checked against.
Proof todos carry their idempotency key (or another tag) in the title."""

from collections import Counter
from collections.abc import Collection

import psycopg


def todos_by_title(url: str, prefix: str) -> Counter[str]:
    """Live or trashed, how many todos have each title starting with `prefix`."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT title, count(*) FROM todos WHERE starts_with(title, %s) GROUP BY title",
            (prefix,),
        ).fetchall()
    return Counter(dict(rows))


def existing_todo_ids(url: str, ids: Collection[str]) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT id::text FROM todos WHERE id = ANY(%s::uuid[])", (list(ids),)
        ).fetchall()
    return {todo_id for (todo_id,) in rows}


def per_key(counts: Counter[str], titles: dict[str, str]) -> Counter[int]:
    """Keys by how many todos they made: {1: keys with exactly one, 2: ..., 0: none}."""
    return Counter(counts.get(title, 0) for title in titles.values())
