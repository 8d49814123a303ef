"""Indexes LineageDB widens by a column, under the name they had (migrations 0011 and 0012).

A widened index replaces the narrower one rather than joining it, so a write maintains as
many B-trees as before, each entry one integer wider; every read the narrow index served
is served by the wide one's leading columns. What each widening is for and what it saved
is in the module that lists it: store.lineage_indexes and store.property_indexes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from lineagedb.store.schema import schema_for


@dataclass(frozen=True)
class WidenedIndex:
    name: str
    table: str  # the schema attribute, e.g. "attribution" or "artifact_property"
    before: tuple[str, ...]
    after: tuple[str, ...]
    # The backends whose index is widened; elsewhere it stays as it is (None: every backend).
    dialects: tuple[str, ...] | None = None

    def applies_to(self, dialect_name: str) -> bool:
        return self.dialects is None or dialect_name in self.dialects


def table_name(dialect_name: str, index: WidenedIndex) -> str:
    """The index's table as this dialect's schema names it (MLMD's case differs by backend)."""
    table: sa.Table = getattr(schema_for(dialect_name), index.table)
    return table.name


def index_columns(connection: sa.Connection, index: WidenedIndex) -> tuple[str, ...] | None:
    """The columns `index` has in this database, or None if it is not there."""
    for found in sa.inspect(connection).get_indexes(table_name(connection.dialect.name, index)):
        if found["name"] == index.name:
            return tuple(str(column) for column in found["column_names"])
    return None


def reshape(connection: sa.Connection, index: WidenedIndex, columns: tuple[str, ...]) -> None:
    """Make `index` cover `columns` (drop and create under the same name); nothing to do if it
    already does, or if the index is not widened on this backend; created if it is missing
    (a database stamped without it)."""
    if not index.applies_to(connection.dialect.name):
        return
    present = index_columns(connection, index)
    if present == columns:
        return
    preparer = connection.dialect.identifier_preparer
    table = preparer.quote(table_name(connection.dialect.name, index))
    name = preparer.quote(index.name)
    listed = ", ".join(preparer.quote(column) for column in columns)
    # Identifiers only, from constants: no user input reaches this text.
    if connection.dialect.name == "mysql" and present is not None:
        # One ALTER: MySQL commits each DDL statement, so a separate DROP then CREATE could
        # leave the table without the index if the second failed.
        connection.exec_driver_sql(f"ALTER TABLE {table} DROP INDEX {name}, ADD INDEX {name} ({listed})")
        return
    if present is not None:
        connection.exec_driver_sql(
            f"DROP INDEX {name} ON {table}" if connection.dialect.name == "mysql" else f"DROP INDEX {name}"
        )
    connection.exec_driver_sql(f"CREATE INDEX {name} ON {table} ({listed})")


def widen(connection: sa.Connection, indexes: Iterable[WidenedIndex]) -> None:
    """A migration's upgrade: every index as it widens it."""
    for index in indexes:
        reshape(connection, index, index.after)


def narrow(connection: sa.Connection, indexes: Iterable[WidenedIndex]) -> None:
    """A migration's downgrade: every index as it was before."""
    for index in indexes:
        reshape(connection, index, index.before)
