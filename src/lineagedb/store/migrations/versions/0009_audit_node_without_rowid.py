"""SQLite: the audit log's node index becomes a WITHOUT ROWID table.

`lineagedb_audit_node` is nothing but its primary key (node kind, node id, chain, seq). As an
ordinary SQLite table it was two B-trees, the rows by rowid and the key's index, so every
write transaction with the audit log on wrote both; keyed by the primary key itself it is one
(measured: a PutArtifacts of 100 wrote 6 pages of it to the WAL, now 2 or 3). PostgreSQL keeps
its heap and index; MySQL/MariaDB's InnoDB already stores a table in its primary key.
The table is rebuilt under the same name, rows kept.

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

_TABLE = "lineagedb_audit_node"
_COLUMNS = "node_kind, node_id, chain, seq"


def _create(name: str, without_rowid: bool) -> str:
    suffix = " WITHOUT ROWID" if without_rowid else ""
    return (
        f"CREATE TABLE {name} (node_kind SMALLINT NOT NULL, node_id INTEGER NOT NULL, "
        f"chain VARCHAR(32) NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY ({_COLUMNS})){suffix}"
    )


def _rebuild(without_rowid: bool) -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    definition = connection.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"), {"name": _TABLE}
    ).scalar()
    if definition is None or ("WITHOUT ROWID" in definition.upper()) == without_rowid:
        return
    op.execute(_create(f"{_TABLE}_rebuilt", without_rowid))
    op.execute(f"INSERT INTO {_TABLE}_rebuilt ({_COLUMNS}) SELECT {_COLUMNS} FROM {_TABLE}")
    op.execute(f"DROP TABLE {_TABLE}")
    op.execute(f"ALTER TABLE {_TABLE}_rebuilt RENAME TO {_TABLE}")


def upgrade() -> None:
    _rebuild(without_rowid=True)


def downgrade() -> None:
    _rebuild(without_rowid=False)
