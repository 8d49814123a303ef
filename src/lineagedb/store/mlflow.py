"""Persistence of MLflow's tracking data that MLMD's tables do not hold, and SearchRuns.

Runs are MLMD executions (lineagedb.service.mlflow_graph); their params, tags and latest
metric values are execution properties named with the prefixes below. Metric histories
live in LineageDB's own tables (migration 0007). SearchRuns is one SELECT of run ids:
every comparison an EXISTS over the property or latest-metric table, every order key an
outer join, paged by offset (MLflow's page tokens are offsets too).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lineagedb.query.mlflow_filter import NUMERIC_ATTRIBUTES, Comparison, OrderKey
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.tenancy import Reach
from lineagedb.store.unit_of_work import UnitOfWork

# Property names of a run's MLflow data (custom properties of its execution).
PARAM_PREFIX = "param."
TAG_PREFIX = "tag."
METRIC_PREFIX = "metric."
# The largest double MySQL and PostgreSQL store; MLflow stores +-inf as these too.
_MAX_DOUBLE = 1.7976931348623157e308

METADATA = sa.MetaData()
_DOUBLE = sa.Float(53)
METRIC = sa.Table(
    "lineagedb_mlflow_metric",
    METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.Integer, nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("value", _DOUBLE, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("is_nan", sa.Boolean(create_constraint=False), nullable=False),
)
LATEST = sa.Table(
    "lineagedb_mlflow_latest_metric",
    METADATA,
    sa.Column("execution_id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", _DOUBLE, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("is_nan", sa.Boolean(create_constraint=False), nullable=False),
)


@dataclass(frozen=True)
class MetricRow:
    execution_id: int
    key: str
    value: float  # NaN and +-inf as logged
    timestamp: int
    step: int

    def row(self) -> dict[str, Any]:
        nan = math.isnan(self.value)
        stored = 0.0 if nan else max(-_MAX_DOUBLE, min(_MAX_DOUBLE, self.value))
        return {
            "execution_id": self.execution_id,
            "key": self.key,
            "value": stored,
            "timestamp": self.timestamp,
            "step": self.step,
            "is_nan": nan,
        }

    def rank(self) -> tuple[int, int, float]:
        """MLflow's "latest": highest step, then timestamp, then value (NaN lowest)."""
        return (self.step, self.timestamp, -math.inf if math.isnan(self.value) else self.value)


def _from_row(row: Any) -> MetricRow:
    value = math.nan if row.is_nan else float(row.value)
    return MetricRow(int(row.execution_id), row.key, value, int(row.timestamp), int(row.step))


def insert_metrics(uow: UnitOfWork, rows: Sequence[MetricRow]) -> None:
    if rows:
        uow.execute(METRIC.insert(), [row.row() for row in rows])
        uow.note_inserted(METRIC, len(rows))


def latest_metrics(uow: UnitOfWork, execution_ids: Iterable[int]) -> dict[int, list[MetricRow]]:
    """execution id -> its latest metric values, ordered by key."""
    wanted = sorted(set(execution_ids))
    found: dict[int, list[MetricRow]] = {}
    for start in range(0, len(wanted), uow.id_chunk):
        chunk = wanted[start : start + uow.id_chunk]
        statement = sa.select(LATEST).where(LATEST.c.execution_id.in_(chunk)).order_by(LATEST.c.key)
        for row in uow.execute(statement):
            metric = _from_row(row)
            found.setdefault(metric.execution_id, []).append(metric)
    return found


def replace_latest(uow: UnitOfWork, execution_id: int, rows: Sequence[MetricRow]) -> None:
    """Make `rows` the latest values of their keys for the run (one DELETE, one INSERT)."""
    if not rows:
        return
    keys = [row.key for row in rows]
    uow.execute(sa.delete(LATEST).where(LATEST.c.execution_id == execution_id, LATEST.c.key.in_(keys)))
    uow.execute(LATEST.insert(), [row.row() for row in rows])
    uow.note_inserted(LATEST, len(rows))  # keeps PostgreSQL's statistics fresh (store.statistics)


def metric_history(uow: UnitOfWork, execution_id: int, key: str, offset: int, limit: int | None) -> list[MetricRow]:
    statement = (
        sa.select(METRIC)
        .where(METRIC.c.execution_id == execution_id, METRIC.c.key == key)
        .order_by(METRIC.c.step, METRIC.c.timestamp, METRIC.c.id)
        .offset(offset)
    )
    if limit is not None:
        statement = statement.limit(limit)
    return [_from_row(row) for row in uow.execute(statement)]


# ---------------------------------------------------------------------------- SearchRuns


@dataclass(frozen=True)
class RunQuery:
    run_type_id: int
    context_ids: Sequence[int]  # the experiments' contexts
    lifecycle_stage: str | None  # "active", "deleted", or None for both
    comparisons: Sequence[Comparison]
    order: Sequence[OrderKey]
    offset: int
    limit: int


def search_run_ids(uow: UnitOfWork, query: RunQuery) -> list[int]:
    """Ids of the runs matching `query`, in its order, one page of them."""
    schema = uow.schema
    execution, prop, association = schema.execution, schema.execution_property, schema.association
    statement = sa.select(execution.c.id).where(
        execution.c.type_id == query.run_type_id,
        execution.c.id.in_(
            sa.select(association.c.execution_id).where(association.c.context_id.in_(list(query.context_ids)))
        ),
    )
    reach = uow.tenancy.reach
    if reach is not Reach.ALL:
        statement = statement.where(NodeKind.EXECUTION.visible(execution.c.id, reach))
    if query.lifecycle_stage is not None:
        statement = statement.where(
            _property_exists(prop, execution, "lifecycle_stage", False, prop.c.string_value == query.lifecycle_stage)
        )
    for comparison in query.comparisons:
        statement = statement.where(_condition(uow.dialect, prop, execution, comparison))
    order: list[Any] = []
    named = set()
    for index, key in enumerate(query.order):
        column, join_on = _order_column(prop, execution, key, index)
        if join_on is not None:
            statement = statement.join_from(execution, column.table, join_on, isouter=True)
        named.add((key.entity, key.key))
        # Runs without the value come last whichever the direction (as MLflow's store orders).
        order.append(sa.case((column.is_(None), 1), else_=0))
        order.append(column.asc() if key.ascending else column.desc())
    if ("attribute", "start_time") not in named:
        column, join_on = _order_column(prop, execution, OrderKey("attribute", "start_time", False), len(order))
        assert join_on is not None
        statement = statement.join_from(execution, column.table, join_on, isouter=True)
        order.append(column.desc())
    if ("attribute", "run_id") not in named:
        order.append(execution.c.name.asc())
    statement = statement.order_by(*order).offset(query.offset).limit(query.limit)
    return [int(row[0]) for row in uow.execute(statement, uow.tenancy.parameters)]


def _property_exists(
    prop: sa.Table, execution: sa.Table, name: str, custom: bool, condition: sa.ColumnElement[bool]
) -> sa.ColumnElement[bool]:
    return sa.exists(
        sa.select(sa.literal(1)).where(
            prop.c.execution_id == execution.c.id,
            prop.c.name == name,
            prop.c.is_custom_property == custom,
            condition,
        )
    )


def _condition(dialect: str, prop: sa.Table, execution: sa.Table, comparison: Comparison) -> sa.ColumnElement[bool]:
    entity, key, comparator, value = comparison.entity, comparison.key, comparison.comparator, comparison.value
    if entity == "metric":
        latest = LATEST.alias()
        return sa.exists(
            sa.select(sa.literal(1)).where(
                latest.c.execution_id == execution.c.id,
                latest.c.key == key,
                latest.c.is_nan == sa.false(),
                _compare(dialect, latest.c.value, comparator, value),
            )
        )
    if entity in ("param", "tag"):
        name = (PARAM_PREFIX if entity == "param" else TAG_PREFIX) + key
        return _property_exists(prop, execution, name, True, _compare(dialect, prop.c.string_value, comparator, value))
    if entity == "attribute":
        if key == "run_id":
            return _compare(dialect, execution.c.name, comparator, value)
        column = prop.c.int_value if key in NUMERIC_ATTRIBUTES else prop.c.string_value
        if key in NUMERIC_ATTRIBUTES and isinstance(value, float):
            value = int(value) if value.is_integer() else value
        return _property_exists(prop, execution, key, False, _compare(dialect, column, comparator, value))
    raise ValueError(f"filtering on {entity}s is not supported by this server")


def _compare(dialect: str, column: Any, comparator: str, value: Any) -> sa.ColumnElement[bool]:
    if comparator == "=":
        return column == value
    if comparator == "!=":
        return column != value
    if comparator == ">":
        return column > value
    if comparator == ">=":
        return column >= value
    if comparator == "<":
        return column < value
    if comparator == "<=":
        return column <= value
    if comparator == "IN":
        return column.in_(list(value))
    if comparator == "NOT IN":
        return column.not_in(list(value))
    if comparator == "ILIKE":
        return sa.func.lower(column).like(sa.func.lower(sa.literal(value)))
    # LIKE is case-sensitive in MLflow on every backend.
    if dialect == "sqlite":
        return sa.and_(column.like(value), column.op("GLOB")(_glob(value)))
    if dialect in ("mysql", "mariadb"):
        return column.op("LIKE BINARY")(value)
    return column.like(value)


def _glob(pattern: str) -> str:
    """A LIKE pattern (% and _) as the equivalent case-sensitive GLOB pattern."""
    out = []
    for char in pattern:
        if char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        elif char in "*?[]":
            out.append(f"[{char}]")
        else:
            out.append(char)
    return "".join(out)


def _order_column(
    prop: sa.Table, execution: sa.Table, key: OrderKey, index: int
) -> tuple[Any, sa.ColumnElement[bool] | None]:
    """The column a run is ordered by for `key`, and the outer-join condition that brings it in."""
    if key.entity == "attribute" and key.key == "run_id":
        return execution.c.name, None
    if key.entity == "metric":
        latest = LATEST.alias(f"order_{index}")
        return latest.c.value, sa.and_(latest.c.execution_id == execution.c.id, latest.c.key == key.key)
    alias = prop.alias(f"order_{index}")
    if key.entity == "attribute":
        name, custom = key.key, False
        column = alias.c.int_value if key.key in NUMERIC_ATTRIBUTES else alias.c.string_value
    else:
        name, custom = (PARAM_PREFIX if key.entity == "param" else TAG_PREFIX) + key.key, True
        column = alias.c.string_value
    join_on = sa.and_(
        alias.c.execution_id == execution.c.id, alias.c.name == name, alias.c.is_custom_property == custom
    )
    return column, join_on
