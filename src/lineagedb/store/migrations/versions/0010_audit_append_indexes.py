"""The audit log keeps only the indexes its writes and joins need.

Every write transaction appends one record, so each index on `lineagedb_audit` is a B-tree
page more per commit on SQLite (a 4 kB WAL frame) and a WAL record more on PostgreSQL.
The two secondary indexes 0006 made served only `lineagedb audit query` filters by time
and by principal: measured on SQLite, they were a third of what the audit log added to a
PutExecution's commit. They go. `(chain, seq)` stays (it keeps a chain from forking and
joins the node index to its records), and so does the id order that queries page by.
PostgreSQL gets a BRIN index on `time_ms` instead: records are appended in time order, so
a summary per range of pages keeps `--since`/`--until` from reading the whole table, and
appending to it writes nothing until a range is summarized. On SQLite and MySQL/MariaDB a
query by time or principal reads the records in id order.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TABLE = "lineagedb_audit"
# (name, columns) as 0006 made them.
_DROPPED = (
    ("idx_lineagedb_audit_time", "time_ms"),
    ("idx_lineagedb_audit_principal", "principal, time_ms"),
)
_BRIN = "idx_lineagedb_audit_time_brin"


def _indexes() -> set[str]:
    return {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(_TABLE)}


def upgrade() -> None:
    bind = op.get_bind()
    present = _indexes()
    for name, _ in _DROPPED:
        if name in present:
            op.drop_index(name, table_name=_TABLE)
    if bind.dialect.name == "postgresql":
        op.execute(f"CREATE INDEX IF NOT EXISTS {_BRIN} ON {_TABLE} USING brin (time_ms)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {_BRIN}")
    present = _indexes()
    for name, columns in _DROPPED:
        if name not in present:
            op.execute(f"CREATE INDEX {name} ON {_TABLE} ({columns})")
