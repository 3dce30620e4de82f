"""What the database really holds: the ground truth the HTTP answers are checked against.
Proof todos carry their idempotency key (or another tag) in the title."""

from collections.abc import Collection
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class TodosPerKey:
    """Keys by how many todos they made, live or trashed."""

    keys: int
    once: int
    none: int
    more: int
    extra: int
    """Todos past the first, over every key that made more than one."""

    @property
    def each_once(self) -> bool:
        return self.keys > 0 and self.once == self.keys


def todos_per_key(url: str, titles: dict[str, str]) -> TodosPerKey:
    """For each key, the todos with its title (`titles`: key -> title)."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT title, count(*) FROM todos WHERE title = ANY(%s) GROUP BY title",
            (list(titles.values()),),
        ).fetchall()
    counts: dict[str, int] = dict(rows)
    made = [counts.get(title, 0) for title in titles.values()]
    return TodosPerKey(
        keys=len(made),
        once=made.count(1),
        none=made.count(0),
        more=sum(n > 1 for n in made),
        extra=sum(n - 1 for n in made if n > 1),
    )


def existing_todo_ids(url: str, ids: Collection[str]) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT id::text FROM todos WHERE id = ANY(%s::uuid[])", (list(ids),)
        ).fetchall()
    return {todo_id for (todo_id,) in rows}


def todo_titles(url: str, prefix: str) -> set[str]:
    """The titles of the todos committed whose title starts with `prefix`."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT title FROM todos WHERE starts_with(title, %s)", (prefix,)
        ).fetchall()
    return {title for (title,) in rows}
