"""Namespaces: LineageDB's own tables for tenancy (lineagedb.store.tenancy).

`lineagedb_namespace` lists the namespaces an administrator created; `default` is
implicit. `lineagedb_node_namespace` records the namespace of nodes outside
`default`. MLMD's tables are untouched, so MLMD still opens the database, and nodes
written before this revision (or by MLMD) belong to `default`.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


# The tables as this revision made them (later revisions change them; see 0004).
_TABLES = sa.MetaData()
sa.Table(
    "lineagedb_namespace",
    _TABLES,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("create_time_since_epoch", sa.BigInteger, nullable=False),
)
_membership = sa.Table(
    "lineagedb_node_namespace",
    _TABLES,
    sa.Column("node_kind", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("node_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("namespace", sa.String(63), nullable=False),
)
sa.Index("idx_lineagedb_node_namespace_namespace", _membership.c.namespace, _membership.c.node_kind)


def upgrade() -> None:
    _TABLES.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    _TABLES.drop_all(op.get_bind(), checkfirst=True)
