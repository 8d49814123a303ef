"""Namespaces: LineageDB's own tables for tenancy (lineagedb.store.tenancy).

`lineagedb_namespace` lists the namespaces an administrator created; `default` is
implicit. `lineagedb_node_namespace` records the namespace of nodes outside
`default`. MLMD's tables are untouched, so MLMD still opens the database, and nodes
written before this revision (or by MLMD) belong to `default`.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from lineagedb.store.tenancy import METADATA

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    METADATA.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    METADATA.drop_all(op.get_bind(), checkfirst=True)
