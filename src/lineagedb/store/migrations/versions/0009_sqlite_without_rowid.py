"""SQLite: LineageDB's two per-node tables become WITHOUT ROWID tables.

`lineagedb_audit_node` (node kind, node id, chain, seq) and `lineagedb_node_namespace` (node
kind, node id -> namespace) are looked up and written by their primary keys. As ordinary
SQLite tables each was two B-trees, the rows by rowid and the key's index: every write
transaction with the audit log on, or into a namespace, wrote both, and every namespace
probe of a read searched both. Keyed by the primary key itself each is one (measured: a
PutArtifacts of 100 wrote 6 pages of the audit node index to the WAL, now 4).
PostgreSQL keeps heap and index; MySQL/MariaDB's InnoDB already stores a table in its
primary key. Each table is rebuilt under its name, rows and secondary indexes kept.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# name -> (columns, primary key, secondary indexes as (name, columns)), as 0003 and 0006 made them.
_TABLES = {
    "lineagedb_audit_node": (
        "node_kind SMALLINT NOT NULL, node_id INTEGER NOT NULL, chain VARCHAR(32) NOT NULL, seq BIGINT NOT NULL",
        "node_kind, node_id, chain, seq",
        [],
    ),
    "lineagedb_node_namespace": (
        "node_kind SMALLINT NOT NULL, node_id INTEGER NOT NULL, namespace VARCHAR(63) NOT NULL",
        "node_kind, node_id",
        [("idx_lineagedb_node_namespace_namespace", "namespace, node_kind")],
    ),
}


def _rebuild(without_rowid: bool) -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    for table, (columns, key, indexes) in _TABLES.items():
        definition = connection.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"), {"name": table}
        ).scalar()
        if definition is None or ("WITHOUT ROWID" in definition.upper()) == without_rowid:
            continue
        names = ", ".join(column.split()[0] for column in columns.split(", "))
        suffix = " WITHOUT ROWID" if without_rowid else ""
        op.execute(f"CREATE TABLE {table}_rebuilt ({columns}, PRIMARY KEY ({key})){suffix}")
        op.execute(f"INSERT INTO {table}_rebuilt ({names}) SELECT {names} FROM {table}")
        op.execute(f"DROP TABLE {table}")  # and its indexes
        op.execute(f"ALTER TABLE {table}_rebuilt RENAME TO {table}")
        for index, index_columns in indexes:
            op.execute(f"CREATE INDEX {index} ON {table} ({index_columns})")


def upgrade() -> None:
    _rebuild(without_rowid=True)


def downgrade() -> None:
    _rebuild(without_rowid=False)
