"""Statements that remove nodes with everything attached to them, and find what depends
on nodes before they go.

Set-based like the rest of the store: each function runs one statement per table per
chunk of ids. Dependents are looked up without the caller's namespace scope on
purpose: a node another team cannot see still must not lose its lineage, and the
service says so without naming it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from lineagedb.store import fast_read, tenancy
from lineagedb.store.mlflow import LATEST, METRIC
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.schema import Schema
from lineagedb.store.unit_of_work import UnitOfWork

CHUNK = 500

INPUT_LIKE = (1, 3, 7)  # DECLARED_INPUT, INPUT, INTERNAL_INPUT
OUTPUT_LIKE = (2, 4, 6, 8)  # DECLARED_OUTPUT, OUTPUT, INTERNAL_OUTPUT, PENDING_OUTPUT
ARTIFACT_DELETED = 4  # ml_metadata.Artifact.State.DELETED


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


@dataclass
class Removed:
    """Rows removed (or that would be) per table group."""

    artifacts: int = 0
    executions: int = 0
    contexts: int = 0
    events: int = 0
    attributions: int = 0
    associations: int = 0
    parent_contexts: int = 0
    # MLflow metric values logged by removed (or tombstoned) runs: rows of
    # lineagedb_mlflow_metric; each run's latest values (lineagedb_mlflow_latest_metric) go too.
    mlflow_metrics: int = 0

    def add(self, other: Removed) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def dependents(
    uow: UnitOfWork, artifact_ids: Collection[int], execution_ids: Collection[int]
) -> list[tuple[NodeKind, int, NodeKind, int]]:
    """Every (dependent kind, dependent id, kind, id) where the dependent is outside the
    given set and consumed one of its artifacts (an input-like event) or is an output of
    one of its executions (an output-like event). Unscoped by namespace."""
    e = uow.schema.event
    found: list[tuple[NodeKind, int, NodeKind, int]] = []
    consumers = sa.select(e.c.execution_id, e.c.artifact_id).where(
        e.c.artifact_id.in_(sa.bindparam("ids", expanding=True)), e.c.type.in_(INPUT_LIKE)
    )
    for chunk in _chunks(artifact_ids):
        for row in fast_read.rows(uow, consumers, {"ids": chunk}):
            if row[0] not in execution_ids:
                found.append((NodeKind.EXECUTION, int(row[0]), NodeKind.ARTIFACT, int(row[1])))
    outputs = sa.select(e.c.artifact_id, e.c.execution_id).where(
        e.c.execution_id.in_(sa.bindparam("ids", expanding=True)), e.c.type.in_(OUTPUT_LIKE)
    )
    for chunk in _chunks(execution_ids):
        for row in fast_read.rows(uow, outputs, {"ids": chunk}):
            if row[0] not in artifact_ids:
                found.append((NodeKind.ARTIFACT, int(row[0]), NodeKind.EXECUTION, int(row[1])))
    return sorted(set(found), key=lambda row: (row[0].value, row[1], row[2].value, row[3]))


def edges_among(
    uow: UnitOfWork, artifact_ids: Collection[int], execution_ids: Collection[int]
) -> list[tuple[int, int, int]]:
    """(artifact_id, execution_id, type) of every event touching the given executions whose
    artifact is also given: the edges a deletion order must respect."""
    e = uow.schema.event
    statement = sa.select(e.c.artifact_id, e.c.execution_id, e.c.type).where(
        e.c.execution_id.in_(sa.bindparam("ids", expanding=True))
    )
    rows: list[tuple[int, int, int]] = []
    for chunk in _chunks(execution_ids):
        found = fast_read.rows(uow, statement, {"ids": chunk})
        rows.extend((int(row[0]), int(row[1]), int(row[2])) for row in found if row[0] in artifact_ids)
    return rows


def _count(uow: UnitOfWork, table: sa.Table, column: str, ids: Collection[int]) -> int:
    statement = (
        sa.select(sa.func.count()).select_from(table).where(table.c[column].in_(sa.bindparam("ids", expanding=True)))
    )
    return sum(int(uow.execute(statement, {"ids": chunk}).scalar_one()) for chunk in _chunks(ids))


def count(
    uow: UnitOfWork, artifact_ids: Collection[int], execution_ids: Collection[int], context_ids: Collection[int]
) -> Removed:
    """What `remove` would remove. Events and links touching two removed nodes are
    counted once: they are counted from one side only where both sides are removed."""
    s = uow.schema
    removed = Removed(len(artifact_ids), len(execution_ids), len(context_ids))
    removed.events = _count_union(uow, s.event, ("artifact_id", artifact_ids), ("execution_id", execution_ids))
    removed.attributions = _count_union(uow, s.attribution, ("artifact_id", artifact_ids), ("context_id", context_ids))
    removed.associations = _count_union(
        uow, s.association, ("execution_id", execution_ids), ("context_id", context_ids)
    )
    removed.parent_contexts = _count_union(
        uow, s.parent_context, ("context_id", context_ids), ("parent_context_id", context_ids)
    )
    removed.mlflow_metrics = count_metrics(uow, execution_ids)
    return removed


def count_metrics(uow: UnitOfWork, execution_ids: Collection[int]) -> int:
    """The MLflow metric values (history rows) the executions logged."""
    return _count(uow, METRIC, "execution_id", execution_ids)


def remove_metrics(uow: UnitOfWork, execution_ids: Collection[int]) -> int:
    """Delete the executions' MLflow metric history and latest values (one statement per
    table per chunk); returns the history rows deleted."""
    deleted = 0
    for chunk in _chunks(execution_ids):
        deleted += uow.execute(sa.delete(METRIC).where(METRIC.c.execution_id.in_(chunk))).rowcount
        uow.execute(sa.delete(LATEST).where(LATEST.c.execution_id.in_(chunk)))
    return deleted


def _count_union(
    uow: UnitOfWork, table: sa.Table, first: tuple[str, Collection[int]], second: tuple[str, Collection[int]]
) -> int:
    """Rows whose first column is in the first set or whose second is in the second set."""
    (column_a, ids_a), (column_b, ids_b) = first, second
    total = _count(uow, table, column_a, ids_a)
    if ids_b:
        # Rows of the second set that the first did not count already.
        statement = sa.select(table.c[column_a]).where(table.c[column_b].in_(sa.bindparam("ids", expanding=True)))
        for chunk in _chunks(ids_b):
            total += sum(1 for (value,) in uow.execute(statement, {"ids": chunk}) if value not in ids_a)
    return total


def remove(
    uow: UnitOfWork, artifact_ids: Collection[int], execution_ids: Collection[int], context_ids: Collection[int]
) -> Removed:
    """Delete the nodes with their properties, events (and event paths), attributions,
    associations, parent links, namespace membership and (executions that are MLflow
    runs) metric histories."""
    s = uow.schema
    removed = Removed()
    removed.mlflow_metrics = remove_metrics(uow, execution_ids)
    event_ids = _event_ids(uow, s, artifact_ids, execution_ids)
    removed.events = len(event_ids)
    for chunk in _chunks(event_ids):
        uow.execute(sa.delete(s.event_path).where(s.event_path.c.event_id.in_(chunk)))
        uow.execute(sa.delete(s.event).where(s.event.c.id.in_(chunk)))
    removed.attributions = _delete_where(uow, s.attribution, ("artifact_id", artifact_ids), ("context_id", context_ids))
    removed.associations = _delete_where(
        uow, s.association, ("execution_id", execution_ids), ("context_id", context_ids)
    )
    removed.parent_contexts = _delete_where(
        uow, s.parent_context, ("context_id", context_ids), ("parent_context_id", context_ids)
    )
    for kind, ids in (
        (NodeKind.ARTIFACT, artifact_ids),
        (NodeKind.EXECUTION, execution_ids),
        (NodeKind.CONTEXT, context_ids),
    ):
        properties = kind.property_table(s)
        table = kind.table(s)
        deleted = 0
        for chunk in _chunks(ids):
            uow.execute(sa.delete(properties).where(properties.c[kind.owner_column].in_(chunk)))
            deleted += uow.execute(sa.delete(table).where(table.c.id.in_(chunk))).rowcount
        setattr(removed, f"{kind.value}s", deleted)
        tenancy.forget_membership(uow, kind.value, ids)
    return removed


def _event_ids(uow: UnitOfWork, s: Schema, artifact_ids: Collection[int], execution_ids: Collection[int]) -> set[int]:
    e = s.event
    found: set[int] = set()
    for column, ids in (("artifact_id", artifact_ids), ("execution_id", execution_ids)):
        for chunk in _chunks(ids):
            found.update(int(row[0]) for row in uow.execute(sa.select(e.c.id).where(e.c[column].in_(chunk))))
    return found


def _delete_where(
    uow: UnitOfWork, table: sa.Table, first: tuple[str, Collection[int]], second: tuple[str, Collection[int]]
) -> int:
    deleted = 0
    for column, ids in (first, second):
        for chunk in _chunks(ids):
            deleted += uow.execute(sa.delete(table).where(table.c[column].in_(chunk))).rowcount
    return deleted


def tombstone(
    uow: UnitOfWork, kind: NodeKind, ids: Collection[int], keep: Collection[str], marker: str, now_ms: int
) -> None:
    """Turn nodes into tombstones: every property goes but those named in `keep`, the
    `marker` custom property records when, artifacts get state DELETED (4), and the
    update time moves. An execution's MLflow metric history goes with its properties."""
    if kind is NodeKind.EXECUTION:
        remove_metrics(uow, ids)
    properties = kind.property_table(uow.schema)
    table = kind.table(uow.schema)
    owner = properties.c[kind.owner_column]
    for chunk in _chunks(ids):
        strip = sa.delete(properties).where(owner.in_(chunk))
        if keep:
            strip = strip.where(sa.or_(properties.c.name.not_in(list(keep)), properties.c.name == marker))
        uow.execute(strip)
        values: dict[str, object] = {"last_update_time_since_epoch": now_ms}
        if kind is NodeKind.ARTIFACT:
            values["state"] = ARTIFACT_DELETED
        uow.execute(sa.update(table).where(table.c.id.in_(chunk)).values(**values))
        uow.execute(
            sa.insert(properties),
            [
                {kind.owner_column: node_id, "name": marker, "is_custom_property": True, "int_value": now_ms}
                for node_id in chunk
            ],
        )
