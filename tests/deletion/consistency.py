"""Orphan checks: rows that point at a node or event that is no longer there."""

from __future__ import annotations

import sqlalchemy as sa

from lineagedb.store.mlflow import LATEST, METRIC
from lineagedb.store.schema import schema_for
from lineagedb.store.tenancy import MEMBERSHIP


def orphans(engine: sa.Engine) -> dict[str, int]:
    """Per kind of dangling reference, how many rows have one (empty when consistent)."""
    s = schema_for(engine.dialect.name)
    checks = {
        "event.artifact_id": (s.event, s.event.c.artifact_id, s.artifact.c.id),
        "event.execution_id": (s.event, s.event.c.execution_id, s.execution.c.id),
        "event_path.event_id": (s.event_path, s.event_path.c.event_id, s.event.c.id),
        "attribution.artifact_id": (s.attribution, s.attribution.c.artifact_id, s.artifact.c.id),
        "attribution.context_id": (s.attribution, s.attribution.c.context_id, s.context.c.id),
        "association.execution_id": (s.association, s.association.c.execution_id, s.execution.c.id),
        "association.context_id": (s.association, s.association.c.context_id, s.context.c.id),
        "parent_context.context_id": (s.parent_context, s.parent_context.c.context_id, s.context.c.id),
        "parent_context.parent_context_id": (s.parent_context, s.parent_context.c.parent_context_id, s.context.c.id),
        "artifact_property": (s.artifact_property, s.artifact_property.c.artifact_id, s.artifact.c.id),
        "execution_property": (s.execution_property, s.execution_property.c.execution_id, s.execution.c.id),
        "context_property": (s.context_property, s.context_property.c.context_id, s.context.c.id),
        "mlflow_metric": (METRIC, METRIC.c.execution_id, s.execution.c.id),
        "mlflow_latest_metric": (LATEST, LATEST.c.execution_id, s.execution.c.id),
    }
    found: dict[str, int] = {}
    with engine.connect() as connection:
        for name, (table, column, target) in checks.items():
            statement = sa.select(sa.func.count()).select_from(table).where(column.not_in(sa.select(target)))
            count = int(connection.execute(statement).scalar_one())
            if count:
                found[name] = count
        for number, target in ((0, s.execution.c.id), (1, s.artifact.c.id), (2, s.context.c.id)):
            statement = sa.select(sa.func.count()).where(
                MEMBERSHIP.c.node_kind == number, MEMBERSHIP.c.node_id.not_in(sa.select(target))
            )
            count = int(connection.execute(statement).scalar_one())
            if count:
                found[f"membership.{number}"] = count
    return found
