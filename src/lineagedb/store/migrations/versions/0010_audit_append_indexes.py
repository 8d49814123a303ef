"""The audit log's append path: only the indexes its writes and joins need, and on
PostgreSQL one function call per record.

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

PostgreSQL also gets `lineagedb_audit_append(...)`: the record, its node rows and its
chain's head in one call, whose statements PL/pgSQL plans once per connection; sent as
three statements with the COMMIT, PostgreSQL parsed and planned each of them on every write
(measured: 0.30 ms of backend time per record against 0.21 through the function, with
synchronous_commit off so that only the work counts). Servers on 0009 send the statements.

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
# Security invoker (the default): it writes with the caller's rights and search_path, as the
# statements it replaces did. `p_new_chain`: the chain's head row is inserted, not updated.
_APPEND_FUNCTION = """
CREATE OR REPLACE FUNCTION lineagedb_audit_append(
    p_chain text, p_seq bigint, p_time_ms bigint, p_kind text, p_principal text, p_namespace text,
    p_method text, p_peer text, p_outcome text, p_request_digest text, p_detail text, p_mac text,
    p_node_kinds smallint[], p_node_ids integer[], p_new_chain boolean
) RETURNS void AS $$
BEGIN
    INSERT INTO lineagedb_audit (chain, seq, time_ms, kind, principal, namespace, method, peer, outcome,
                                 request_digest, detail, mac)
    VALUES (p_chain, p_seq, p_time_ms, p_kind, p_principal, p_namespace, p_method, p_peer, p_outcome,
            p_request_digest, p_detail, p_mac);
    IF cardinality(p_node_ids) > 0 THEN
        INSERT INTO lineagedb_audit_node (node_kind, node_id, chain, seq)
        SELECT node.kind, node.id, p_chain, p_seq FROM unnest(p_node_kinds, p_node_ids) AS node(kind, id);
    END IF;
    IF p_new_chain THEN
        INSERT INTO lineagedb_audit_chain (chain, head_seq, head_mac) VALUES (p_chain, p_seq, p_mac);
    ELSE
        UPDATE lineagedb_audit_chain SET head_seq = p_seq, head_mac = p_mac WHERE chain = p_chain;
    END IF;
END;
$$ LANGUAGE plpgsql
"""
_APPEND_SIGNATURE = (
    "lineagedb_audit_append(text, bigint, bigint, text, text, text, text, text, text, text, text, text, "
    "smallint[], integer[], boolean)"
)


def _indexes() -> set[str]:
    return {str(index["name"]) for index in sa.inspect(op.get_bind()).get_indexes(_TABLE)}


def upgrade() -> None:
    bind = op.get_bind()
    present = _indexes()
    for name, _ in _DROPPED:
        if name in present:
            op.drop_index(name, table_name=_TABLE)
    if bind.dialect.name == "postgresql":
        op.execute(f"CREATE INDEX IF NOT EXISTS {_BRIN} ON {_TABLE} USING brin (time_ms)")
        op.execute(_APPEND_FUNCTION)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {_APPEND_SIGNATURE}")
        op.execute(f"DROP INDEX IF EXISTS {_BRIN}")
    present = _indexes()
    for name, columns in _DROPPED:
        if name not in present:
            op.execute(f"CREATE INDEX {name} ON {_TABLE} ({columns})")
