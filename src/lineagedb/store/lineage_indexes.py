"""The link indexes lineage answers read whole (migration 0011).

Provenance lists every attribution and association of its closure, and Impact every context
its closure is in: for a 10,000-node closure, 13,000 attribution and 6,700 association rows,
read by node id (`repositories.lineage`). The indexes 0002 made for those reads hold the node
id only, so every row found was then looked up in the table for its context id, a second
B-tree search per row on SQLite. With the context id in the index (after the node id, so the
node id reads are as before) the reads are answered by the index alone and come out in the
(node, context) order the answers want, with no sort.

Measured on the 100,000-artifact benchmark store (bench/lineage_answers.py), thread CPU of the
statements alone: SQLite 9.3 -> 5.2 ms (attributions) and 4.5 -> 2.6 ms (associations) for
Provenance, 6.4 -> 3.7 ms for Impact's context reads; PostgreSQL 18 -> 15 ms and 8.5 -> 7.5 ms
once vacuumed (index-only scans need the visibility map; freshly loaded, about the same as
before). Each index replaces one of 0002 under the same name, so a write maintains as many
B-trees as before, each entry one integer wider.

The event reads of a walk were measured the same way and left alone: indexes covering
(artifact or execution id, type, the other id, time) saved SQLite 1.3-2.3 ms of a 15.5 ms
walk and PostgreSQL nothing measurable, for two more B-trees written with every event.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from lineagedb.store.schema import schema_for


@dataclass(frozen=True)
class WidenedIndex:
    name: str
    table: str  # the schema attribute: "attribution" or "association"
    before: tuple[str, ...]  # as 0002 made it
    after: tuple[str, ...]  # as 0011 makes it


WIDENED: tuple[WidenedIndex, ...] = (
    WidenedIndex(
        "lineagedb_idx_attribution_artifact_id", "attribution", ("artifact_id",), ("artifact_id", "context_id")
    ),
    WidenedIndex(
        "lineagedb_idx_association_execution_id", "association", ("execution_id",), ("execution_id", "context_id")
    ),
)


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
    already does, created if it is missing (a database stamped without 0002's indexes)."""
    present = index_columns(connection, index)
    if present == columns:
        return
    preparer = connection.dialect.identifier_preparer
    table = preparer.quote(table_name(connection.dialect.name, index))
    name = preparer.quote(index.name)
    listed = ", ".join(preparer.quote(column) for column in columns)
    # Identifiers only, from the constants above: no user input reaches this text.
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
