"""MLMD's property value indexes end with the owner's id, on PostgreSQL.

`idx_{artifact,execution,context}_property_{int,double,string}` become (name,
is_custom_property, value, owner id) under the same names, so a filter's page takes its
matches in id order from the index (see store.property_indexes for what was measured).
MySQL/MariaDB's indexes already hold the owner's id last (InnoDB appends the primary key);
SQLite's pages do not read matches in index order. Both stay as they are. Index only: a
server on 0011 serves as before and logs the `lineagedb db upgrade` command.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

from lineagedb.store.property_indexes import WIDENED
from lineagedb.store.widened_indexes import narrow, widen

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    widen(op.get_bind(), WIDENED)


def downgrade() -> None:
    narrow(op.get_bind(), WIDENED)
