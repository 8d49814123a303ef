"""The audit log: records, the nodes each touched, and each writer chain's head.

See lineagedb.store.audit_log. On PostgreSQL a trigger refuses UPDATE and DELETE of
records and of their node rows, except inside `lineagedb audit prune`, which sets
`lineagedb.audit_prune` for its own transaction only. (Whoever may drop a trigger can
still change the table; the hash chain is what makes that visible.)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The tables as this revision makes them.
_TABLES = sa.MetaData()
_records = sa.Table(
    "lineagedb_audit",
    _TABLES,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("chain", sa.String(32), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("time_ms", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("principal", sa.String(255), nullable=False),
    sa.Column("namespace", sa.String(63), nullable=False),
    sa.Column("method", sa.String(255), nullable=False),
    sa.Column("peer", sa.String(255), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("request_digest", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("mac", sa.String(64), nullable=False),
    sa.UniqueConstraint("chain", "seq", name="uq_lineagedb_audit_chain_seq"),
)
sa.Index("idx_lineagedb_audit_time", _records.c.time_ms)
sa.Index("idx_lineagedb_audit_principal", _records.c.principal, _records.c.time_ms)
sa.Table(
    "lineagedb_audit_node",
    _TABLES,
    sa.Column("node_kind", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("node_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("chain", sa.String(32), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
)
sa.Table(
    "lineagedb_audit_chain",
    _TABLES,
    sa.Column("chain", sa.String(32), primary_key=True),
    sa.Column("head_seq", sa.BigInteger, nullable=False),
    sa.Column("head_mac", sa.String(64), nullable=False),
    sa.Column("base_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("base_mac", sa.String(64), nullable=True),
)

_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION lineagedb_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('lineagedb.audit_prune', true), '') <> 'on' THEN
        RAISE EXCEPTION 'the audit log is append-only: % on % is refused (retention: lineagedb audit prune)',
            TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""
_GUARDED = ("lineagedb_audit", "lineagedb_audit_node")


def upgrade() -> None:
    bind = op.get_bind()
    _TABLES.create_all(bind, checkfirst=True)
    if bind.dialect.name != "postgresql":
        return
    op.execute(_APPEND_ONLY)
    for table in _GUARDED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION lineagedb_audit_append_only()"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in _GUARDED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS lineagedb_audit_append_only()")
    _TABLES.drop_all(bind, checkfirst=True)
