"""MLflow metric histories (lineagedb.store.mlflow): every logged value of a run's metrics.

`lineagedb_mlflow_metric` keeps each (run, key, step, timestamp, value) an MLflow client
logs; `lineagedb_mlflow_latest_metric` keeps the latest value per (run, key) by MLflow's
rule (highest step, then timestamp, then value), which GetRun and SearchRuns answer
with. The run itself is an MLMD execution; `execution_id` names it. The latest value is
also a custom property `metric.<key>` of that execution, so MLMD's filter_query sees it.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The tables as this revision makes them (store.mlflow has the code's copy).
_TABLES = sa.MetaData()
_DOUBLE = sa.Float(53)
sa.Table(
    "lineagedb_mlflow_metric",
    _TABLES,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.Integer, nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("value", _DOUBLE, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("is_nan", sa.Boolean(create_constraint=False), nullable=False),
    sa.Index("idx_lineagedb_mlflow_metric_run_key", "execution_id", "key", "step"),
)
sa.Table(
    "lineagedb_mlflow_latest_metric",
    _TABLES,
    sa.Column("execution_id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", _DOUBLE, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("is_nan", sa.Boolean(create_constraint=False), nullable=False),
    # No index on (key, value): runs are always narrowed by experiment first, and with one the
    # PostgreSQL planner, before its first ANALYZE of a fresh table, joined every run with every
    # row of a key (3 s instead of 60 ms for a filtered search over 2,000 runs).
)


def upgrade() -> None:
    _TABLES.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    _TABLES.drop_all(op.get_bind(), checkfirst=True)
