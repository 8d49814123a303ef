"""LineageDB's own indexes, beyond MLMD's, for filters, relationship reads and lineage.

MLMD indexes a context or node name only behind its type id, and attributions and
associations only behind the context id. Without these, a `contexts_a.name = ...`
filter, GetContextsByArtifact/Execution and the lineage membership reads scan whole
tables, so their cost grows with the store rather than with the answer. Indexes do
not change MLMD's tables, so MLMD still opens the database.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from lineagedb.store.bootstrap import lineagedb_indexes

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    for index in lineagedb_indexes(bind.dialect.name):
        index.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    for index in lineagedb_indexes(bind.dialect.name):
        index.drop(bind, checkfirst=True)
