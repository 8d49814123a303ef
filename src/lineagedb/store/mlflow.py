"""Persistence of MLflow's tracking data that MLMD's tables do not hold, and SearchRuns.

Runs are MLMD executions (lineagedb.service.mlflow_graph); their params, tags and latest
metric values are execution properties named with the prefixes below. Metric histories
live in LineageDB's own tables (migration 0007). SearchRuns is one SELECT of run ids:
every comparison an EXISTS over the property or latest-metric table (a dataset's name or
digest: over the run's INPUT events to mlflow.Dataset artifacts and their properties),
every order key an outer join, paged by offset (MLflow's page tokens are offsets too).

`datasets.context` compares the input's `mlflow.data.context` tag, which is a (key, value)
pair of steps in the event's path. EventPath rows have no position column, so SQL cannot
pair a key step with the value step after it: the runs that match are found first by one
read of the candidate events (INPUT events to datasets, of runs in the searched
experiments, whose path has that key) with their paths, paired here, and the page's
SELECT keeps the runs found.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lineagedb.query.mlflow_filter import NUMERIC_ATTRIBUTES, Comparison, OrderKey
from lineagedb.store.repositories import edges as edge_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.tenancy import Reach
from lineagedb.store.unit_of_work import UnitOfWork

# Property names of a run's MLflow data (custom properties of its execution).
PARAM_PREFIX = "param."
TAG_PREFIX = "tag."
METRIC_PREFIX = "metric."
# The input tag MLflow's datasets.context compares (mlflow.utils.mlflow_tags.MLFLOW_DATASET_CONTEXT).
DATASET_CONTEXT_TAG = "mlflow.data.context"
_INPUT = 3  # ml_metadata.Event.INPUT
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
    dataset_type_id: int | None = None  # mlflow.Dataset; None: not registered (no run has datasets)


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
        if comparison.entity == "dataset":
            statement = statement.where(_dataset_condition(uow, query, execution, comparison))
        else:
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


def _dataset_condition(
    uow: UnitOfWork, query: RunQuery, execution: sa.Table, comparison: Comparison
) -> sa.ColumnElement[bool]:
    """MLflow's dataset comparison: the run has an input dataset whose name or digest (or
    whose input's context tag) compares true (so `!=` means "a dataset other than")."""
    if query.dataset_type_id is None:
        return sa.false()
    if comparison.key == "context":
        # Rendered as literals (integers read from the database): SQLite's limit on bound
        # parameters would otherwise cap the number of matching runs.
        matching = sorted(_runs_with_context(uow, query, comparison))
        return execution.c.id.in_(sa.bindparam(None, matching, expanding=True, literal_execute=True))
    schema = uow.schema
    event, artifact, prop = schema.event.alias(), schema.artifact.alias(), schema.artifact_property.alias()
    found = (
        sa.select(sa.literal(1))
        .select_from(event)
        .join(artifact, artifact.c.id == event.c.artifact_id)
        .join(prop, prop.c.artifact_id == artifact.c.id)
        .where(
            event.c.execution_id == execution.c.id,
            event.c.type == _INPUT,
            artifact.c.type_id == query.dataset_type_id,
            prop.c.name == comparison.key,
            prop.c.is_custom_property == sa.false(),
            _compare(uow.dialect, prop.c.string_value, comparison.comparator, comparison.value),
        )
    )
    if uow.tenancy.reach is not Reach.ALL:
        found = found.where(NodeKind.ARTIFACT.visible(artifact.c.id, uow.tenancy.reach))
    return sa.exists(found)


def _runs_with_context(uow: UnitOfWork, query: RunQuery, comparison: Comparison) -> set[int]:
    """The runs of the searched experiments with an input dataset whose context tag compares
    true: one read of the candidate events (and one of their paths per chunk)."""
    schema = uow.schema
    event, artifact, path = schema.event, schema.artifact.alias(), schema.event_path.alias()
    association = schema.association
    statement = (
        sa.select(event)
        .join(artifact, artifact.c.id == event.c.artifact_id)
        .where(
            event.c.type == _INPUT,
            artifact.c.type_id == query.dataset_type_id,
            event.c.execution_id.in_(
                sa.select(association.c.execution_id).where(association.c.context_id.in_(list(query.context_ids)))
            ),
            sa.exists(
                sa.select(sa.literal(1)).where(path.c.event_id == event.c.id, path.c.step_key == DATASET_CONTEXT_TAG)
            ),
            *edge_repo.event_visible(event, uow.tenancy.reach),
        )
        .order_by(event.c.id)
    )
    if comparison.comparator in ("=", "LIKE", "ILIKE", "IN"):
        # Necessary, not sufficient (the matching step must also be the context's value): fewer
        # candidates to pair for a selective comparison.
        value_step = schema.event_path.alias()
        statement = statement.where(
            sa.exists(
                sa.select(sa.literal(1)).where(
                    value_step.c.event_id == event.c.id,
                    _compare(uow.dialect, value_step.c.step_key, comparison.comparator, comparison.value),
                )
            )
        )
    rows = uow.execute(statement, uow.tenancy.parameters).all()
    matches = _text_matcher(comparison.comparator, comparison.value)
    found: set[int] = set()
    for item in edge_repo.rows_to_events(uow, rows):
        steps = [step.key for step in item.path.steps]
        pairs = zip(steps[0::2], steps[1::2], strict=False)
        if any(key == DATASET_CONTEXT_TAG and matches(value) for key, value in pairs):
            found.add(int(item.execution_id))
    return found


def _text_matcher(comparator: str, value: Any) -> Callable[[str], bool]:
    """`_compare`'s comparison of a text value, in Python."""
    if comparator == "=":
        return lambda text: text == value
    if comparator == "!=":
        return lambda text: text != value
    if comparator == "IN":
        return lambda text: text in value
    if comparator == "NOT IN":
        return lambda text: text not in value
    pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in str(value))
    flags = re.DOTALL | (re.IGNORECASE if comparator == "ILIKE" else 0)
    compiled = re.compile(pattern, flags)
    return lambda text: compiled.fullmatch(text) is not None


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
