"""Lineage answers read attributions and associations from the index alone.

0002's `lineagedb_idx_attribution_artifact_id` (artifact_id) and
`lineagedb_idx_association_execution_id` (execution_id) become (artifact_id, context_id) and
(execution_id, context_id), under the same names: a Provenance of 10,000 nodes reads 20,000
links by node id, each of which cost a second lookup in the table for its context id (see
store.lineage_indexes for what was measured). Index only: a server on 0010 serves as before
and logs the `lineagedb db upgrade` command.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

from lineagedb.store.lineage_indexes import WIDENED
from lineagedb.store.widened_indexes import narrow, widen

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    widen(op.get_bind(), WIDENED)


def downgrade() -> None:
    narrow(op.get_bind(), WIDENED)
