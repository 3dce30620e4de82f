"""Every table is read and written by column name through one mapping (RowMapper), and its
columns (app/infrastructure/orm.py) and its domain object's fields cannot drift apart: a
column with no field, or a field with no column, fails here unless the mapping names it with
its reason."""

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy as sa

from app.domain.todos import Priority, Todo, TodoDraft
from app.infrastructure.orm import Base
from app.infrastructure.repositories import (
    activity,
    idempotency_keys,
    invitations,
    memberships,
    projects,
    todos,
    tokens,
    users,
    webhooks,
)
from app.infrastructure.repositories.rows import RowMapper

REPOSITORIES: tuple[ModuleType, ...] = (
    users,
    todos,
    tokens,
    idempotency_keys,
    projects,
    memberships,
    invitations,
    activity,
    webhooks,
)


def mappers() -> list[RowMapper[Any]]:
    return [
        value
        for module in REPOSITORIES
        for value in vars(module).values()
        if isinstance(value, RowMapper)
    ]


def drift(mapper: RowMapper[Any]) -> list[str]:
    """How a mapping's table and object disagree, beyond the columns it names as no field."""
    columns = {column.name for column in mapper.table.columns}
    field_names = {field.name for field in fields(mapper.kind)}
    return [
        *(
            f"{mapper.table.name}.{name} has no field in {mapper.kind.__name__}"
            for name in sorted(columns - field_names - set(mapper.not_fields))
        ),
        *(
            f"{mapper.kind.__name__}.{name} has no column in {mapper.table.name}"
            for name in sorted(field_names - columns)
        ),
        *(
            f"{mapper.table.name}.{name} is named as no field, but {mapper.kind.__name__} has it"
            for name in sorted(set(mapper.not_fields) & field_names)
        ),
    ]


def test_every_table_has_one_mapping() -> None:
    mapped = [mapper.table.name for mapper in mappers()]
    assert sorted(mapped) == sorted(Base.metadata.tables)


@pytest.mark.parametrize("mapper", mappers(), ids=lambda mapper: mapper.table.name)
def test_a_tables_columns_and_its_objects_fields_match(mapper: RowMapper[Any]) -> None:
    assert drift(mapper) == []
    assert all(reason.strip() for reason in mapper.not_fields.values())


# The check itself, on a table and an object made to drift.
_metadata = sa.MetaData()
_things = sa.Table(
    "things",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String),
    sa.Column("search", sa.String),
)


@dataclass
class Thing:
    id: int
    name: str
    colour: str


def test_the_check_finds_a_column_with_no_field_and_a_field_with_no_column() -> None:
    assert drift(RowMapper(_things, Thing)) == [
        "things.search has no field in Thing",
        "Thing.colour has no column in things",
    ]
    named = RowMapper(_things, Thing, not_fields={"search": "kept by a trigger, for search"})
    assert drift(named) == ["Thing.colour has no column in things"]
    assert named.names == ("id", "name")  # neither read nor written


def test_a_row_is_read_by_name_whatever_the_order_of_its_columns() -> None:
    owner = uuid4()
    todo = Todo.new(
        TodoDraft(title="milk", priority=Priority.HIGH, tags=("home",)),
        id=uuid4(),
        project_id=uuid4(),
        owner_id=owner,
        created_by=owner,
        now=datetime.now(UTC),
    )
    row = todos.TODOS.values(todo)
    assert row["priority"] == Priority.HIGH.rank
    assert row["tags"] == ["home"]
    assert todos.TODOS.load(dict(reversed(row.items()))) == todo
    with pytest.raises(TypeError):  # a column the object has no field for: loudly
        todos.TODOS.load({**todos.TODOS.values(todo), "colour": "red"})


def test_a_conversion_for_a_column_the_table_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="no column"):
        RowMapper(_things, Thing, loaded={"colour": str})


def test_writes_name_exactly_the_mappings_columns_each_a_parameter_of_its_name() -> None:
    named = RowMapper(_things, Thing, not_fields={"search": "kept by a trigger, for search"})
    insert, update = named.insert().compile(), named.update().compile()
    assert str(insert) == "INSERT INTO things (id, name) VALUES (:id, :name)"
    assert str(update) == "UPDATE things SET id=:id, name=:name"
    assert set(insert.params) == set(update.params) == {"id", "name"}
