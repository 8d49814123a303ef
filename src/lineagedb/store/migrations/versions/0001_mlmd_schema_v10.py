"""Baseline: MLMD schema version 10, its MLMDEnv row and the nine system types.

A database that MLMD itself created at version 10 already has all of this; it is
stamped with this revision instead of running it (see lineagedb.store.bootstrap).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from lineagedb.store.bootstrap import create_mlmd_schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_mlmd_schema(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("LineageDB does not drop an MLMD schema; restore a backup instead")
