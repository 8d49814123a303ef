"""Locks a MariaDB Galera cluster certifies (lineagedb.store.galera), MySQL/MariaDB only.

`lineagedb_galera_guard` holds the two guard rows of the writers' lock, `lineagedb_galera_slot`
one row per server connection referring to one of them (its foreign key is what the cluster
certifies), `lineagedb_galera_claim` one row per named lock ever taken (type identities).
Other backends lock without them.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The tables as this revision makes them (store.galera writes them through SQL text).
_TABLES = sa.MetaData()
_GUARD = sa.Table(
    "lineagedb_galera_guard",
    _TABLES,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
)
sa.Table(
    "lineagedb_galera_slot",
    _TABLES,
    sa.Column("slot", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("guard", sa.Integer, sa.ForeignKey(_GUARD.c.id, name="fk_galera_slot_guard"), nullable=False),
)
sa.Table(
    "lineagedb_galera_claim",
    _TABLES,
    sa.Column("name_hash", sa.BINARY(16), primary_key=True),
    sa.Column("claims", sa.BigInteger, nullable=False, server_default="0"),
)


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name not in ("mysql", "mariadb"):
        return
    _TABLES.create_all(connection, checkfirst=True)
    if connection.execute(sa.select(sa.func.count()).select_from(_GUARD)).scalar() == 0:
        connection.execute(sa.insert(_GUARD), [{"id": 1, "epoch": 0}, {"id": 2, "epoch": 0}])


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name in ("mysql", "mariadb"):
        _TABLES.drop_all(connection, checkfirst=True)
