"""Rows to domain objects and back, by column name: one column list per table, shared by the
statements that read it and the ones that write it.

A column is matched to the domain object's field of the same name, never by its position, so
a column added, dropped or reordered cannot shift values into the wrong field: a row with a
column the object has no field for fails to load, loudly (tests/unit/test_row_mappings.py
checks every table against its object before anything runs)."""

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

T = TypeVar("T")
Convert = Callable[[Any], Any]


class RowMapper(Generic[T]):
    """`kind`'s objects stored in `table`, one column per field of the same name.

    `stored` and `loaded` convert the few values whose stored form differs (a priority kept as
    its rank, tags as a list): field value → column value, and back. `not_fields` names
    columns that are no field of `kind`, each with the reason; they are neither read nor
    written here."""

    def __init__(
        self,
        table: sa.Table,
        kind: type[T],
        *,
        stored: Mapping[str, Convert] | None = None,
        loaded: Mapping[str, Convert] | None = None,
        not_fields: Mapping[str, str] | None = None,
    ) -> None:
        self.table = table
        self.kind = kind
        self.not_fields = dict(not_fields or {})
        self.names: tuple[str, ...] = tuple(
            column.name for column in table.columns if column.name not in self.not_fields
        )
        self.columns: tuple[sa.Column[Any], ...] = tuple(table.c[name] for name in self.names)
        self._stored = tuple((stored or {}).items())
        self._loaded = tuple((loaded or {}).items())
        unknown = {name for name, _ in (*self._stored, *self._loaded)} - set(self.names)
        if unknown:
            raise ValueError(f"{table.name} has no column {sorted(unknown)}")

    def values(self, item: T) -> dict[str, Any]:
        """The row that stores `item`: column name → value."""
        row = {name: getattr(item, name) for name in self.names}
        for name, convert in self._stored:
            row[name] = convert(row[name])
        return row

    def load(self, row: dict[str, Any]) -> T:
        """The object a row of this table's columns stores. The row is the caller's to give
        away (the statements hand out a fresh dict per row): it is converted in place."""
        for name, convert in self._loaded:
            row[name] = convert(row[name])
        return self.kind(**row)

    def select(self) -> sa.Select[Any]:
        """SELECT of exactly this mapping's columns."""
        return sa.select(*self.columns)

    def _each_bound(self) -> dict[str, sa.BindParameter[Any]]:
        return {
            column.name: sa.bindparam(column.name, type_=column.type) for column in self.columns
        }

    def insert(self) -> sa.Insert:
        """INSERT of exactly this mapping's columns, each value a parameter of its name (what
        `values()` gives): a column it leaves out is the database's (its default), and the
        statement's text never depends on the parameters it is given."""
        return sa.insert(self.table).values(self._each_bound())

    def update(self) -> sa.Update:
        """UPDATE setting exactly this mapping's columns, as `insert()` (its WHERE names its
        own parameters, other than the columns')."""
        return sa.update(self.table).values(self._each_bound())
