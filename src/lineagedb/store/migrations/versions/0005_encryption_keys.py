"""Encryption at rest: the registry of keys the database holds values under (store.encryption).

`lineagedb_encryption_key` has one row per key id that sensitive property values were
encrypted with, and a check value (a fixed text encrypted under that key), so a server
started with a missing or different key refuses to start. The values themselves stay in
MLMD's property tables (an envelope in `string_value`), so MLMD still opens the database
and sees ciphertext. A database that never uses encryption keeps this table empty.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# The table as this revision makes it (store.encryption.KEYS is the code's copy).
_TABLES = sa.MetaData()
sa.Table(
    "lineagedb_encryption_key",
    _TABLES,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("check_value", sa.String(255), nullable=False),
    sa.Column("create_time_since_epoch", sa.BigInteger, nullable=False),
)


def upgrade() -> None:
    # Like 0002-0004, safe over a database that already has it (re-stamped).
    _TABLES.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    _TABLES.drop_all(op.get_bind(), checkfirst=True)
