"""Events (with their paths), attributions, associations and parent-context links."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.store import bulk_insert, fast_read, tenancy
from lineagedb.store.repositories.nodes import _insert_returning_ids
from lineagedb.store.schema import Schema
from lineagedb.store.tenancy import ARTIFACT_NODE, CONTEXT_NODE, EXECUTION_NODE, Reach
from lineagedb.store.unit_of_work import UnitOfWork

_CHUNK = 500


def insert_events(uow: UnitOfWork, events: Sequence[mlmd.Event], now_ms: int, clash_free: bool = False) -> None:
    """Insert complete events (ids and type already validated) and their path steps.
    `clash_free`: the caller knows no event can clash with a stored one (they all belong to an
    execution this transaction created, and are distinct), so where the INSERT may be deferred
    nothing it could fail on is left for a later statement to report."""
    if not events:
        return
    rows = [
        {
            "artifact_id": event.artifact_id,
            "execution_id": event.execution_id,
            "type": event.type,
            "milliseconds_since_epoch": (
                event.milliseconds_since_epoch if event.HasField("milliseconds_since_epoch") else now_ms
            ),
        }
        for event in events
    ]
    if uow.changes is not None:
        uow.changes.add_edges("event", ([r["artifact_id"], r["execution_id"], r["type"]] for r in rows))
    if clash_free and uow.can_defer and not any(event.path.steps for event in events):
        # MariaDB: only path steps need the events' ids (MLMD's API never shows them), so
        # without steps the INSERT travels with the next statement or the COMMIT, a round
        # trip less.
        bulk_insert.insert_rows(uow, uow.schema.event, rows, deferrable=True)
        return
    ids = _insert_returning_ids(uow, uow.schema.event, rows)
    steps: list[dict[str, Any]] = []
    for event_id, event in zip(ids, events, strict=True):
        for step in event.path.steps:
            case = step.WhichOneof("value")
            if case == "index":
                steps.append({"event_id": event_id, "is_index_step": True, "step_index": step.index, "step_key": None})
            elif case == "key":
                steps.append({"event_id": event_id, "is_index_step": False, "step_index": None, "step_key": step.key})
    bulk_insert.insert_rows(uow, uow.schema.event_path, steps, deferrable=True)  # nothing reads its result


def events_by(uow: UnitOfWork, column: str, ids: Iterable[int]) -> list[mlmd.Event]:
    """Readable events (both ends readable) whose `column` (artifact_id or execution_id) is in `ids`.

    Ordered as MLMD's SQLite reads come back: (artifact_id, execution_id, type)
    for by-artifact reads, (execution_id, insertion) for by-execution reads.
    """
    wanted = sorted(set(ids))
    statement = _events_by_statement(uow.schema, column, uow.tenancy.reach)
    visibility = uow.tenancy.parameters
    rows: list[Any] = []
    for start in range(0, len(wanted), _CHUNK):
        rows.extend(uow.execute(statement, {"ids": wanted[start : start + _CHUNK], **visibility}).all())
    if column == "artifact_id" and len(wanted) > _CHUNK:
        rows.sort(key=lambda r: (r.artifact_id, r.execution_id, r.type))
    elif len(wanted) > _CHUNK:
        rows.sort(key=lambda r: (r.execution_id, r.id))
    return rows_to_events(uow, rows)


def rows_to_events(uow: UnitOfWork, rows: Sequence[Any], into: Any | None = None) -> list[mlmd.Event]:
    """Events with their paths; built in `into` (a repeated field) when given."""
    make = mlmd.Event if into is None else into.add
    events = []
    by_id: dict[int, mlmd.Event] = {}
    for row in rows:
        event = make(artifact_id=row.artifact_id, execution_id=row.execution_id, type=row.type)
        if row.milliseconds_since_epoch is not None:
            event.milliseconds_since_epoch = row.milliseconds_since_epoch
        events.append(event)
        by_id[row.id] = event
    _load_paths(uow, by_id)
    return events


@functools.cache
def _events_by_statement(schema: Schema, column: str, reach: Reach) -> sa.Select[Any]:
    e = schema.event
    order = (e.c.artifact_id, e.c.execution_id, e.c.type) if column == "artifact_id" else (e.c.execution_id, e.c.id)
    query = sa.select(e).where(e.c[column].in_(sa.bindparam("ids", expanding=True)), *event_visible(e, reach))
    return query.order_by(*order)


def event_visible(
    event: sa.FromClause, reach: Reach, readable_end: str | None = None
) -> tuple[sa.ColumnElement[bool], ...]:
    """Conditions under which an event row is readable: both of its ends are.

    `readable_end` names an end column the caller already restricted to readable nodes
    (a lineage hop from nodes it read under the same reach): only the other is probed."""
    if reach is Reach.ALL:
        return ()
    ends = ((ARTIFACT_NODE, event.c.artifact_id), (EXECUTION_NODE, event.c.execution_id))
    return tuple(tenancy.visible(kind, column, reach) for kind, column in ends if column.name != readable_end)


def link_visible(
    link: sa.FromClause, reach: Reach, readable_end: str | None = None
) -> tuple[sa.ColumnElement[bool], ...]:
    """Conditions under which an attribution, association or parent-context row is
    readable; `readable_end` as in `event_visible`."""
    if reach is Reach.ALL:
        return ()
    columns = link.c
    if "artifact_id" in columns:
        ends = ((ARTIFACT_NODE, columns.artifact_id), (CONTEXT_NODE, columns.context_id))
    elif "execution_id" in columns:
        ends = ((EXECUTION_NODE, columns.execution_id), (CONTEXT_NODE, columns.context_id))
    else:
        ends = ((CONTEXT_NODE, columns.context_id), (CONTEXT_NODE, columns.parent_context_id))
    return tuple(tenancy.visible(kind, column, reach) for kind, column in ends if column.name != readable_end)


@functools.cache
def _paths_statement(schema: Schema, dialect: str) -> sa.Select[Any]:
    p = schema.event_path
    columns = (p.c.event_id, p.c.is_index_step, p.c.step_index, p.c.step_key)
    query = sa.select(*columns).where(p.c.event_id.in_(sa.bindparam("ids", expanding=True)))
    query = query.execution_options(**{fast_read.TRUTHY_BOOLEANS: True})  # _load_paths tests is_index_step
    # EventPath has no key; steps come back in insertion order via the physical row id.
    physical = {"sqlite": "rowid", "postgresql": "ctid"}.get(dialect)
    return query.order_by(p.c.event_id, sa.literal_column(physical)) if physical is not None else query


def _load_paths(uow: UnitOfWork, by_id: dict[int, mlmd.Event]) -> None:
    statement = _paths_statement(uow.schema, uow.dialect)
    ids = list(by_id)
    size = uow.id_chunk
    current: int | None = None
    add_step: Any = None
    for start in range(0, len(ids), size):
        for event_id, is_index_step, step_index, step_key in fast_read.rows(
            uow, statement, {"ids": ids[start : start + size]}
        ):
            # Rows come grouped by event (except on MySQL): one field lookup per event, and
            # each step built by one call.
            if event_id != current:
                current, add_step = event_id, by_id[event_id].path.steps.add
            if is_index_step:
                add_step(index=step_index)
            else:
                add_step(key=step_key if step_key is not None else "")


@functools.cache
def _ids_statement(table: sa.Table, reach: Reach) -> sa.Select[Any]:
    query = sa.select(table.c.id).where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
    if reach is not Reach.ALL:
        query = query.where(tenancy.visible(tenancy.kind_number(table.name.lower()), table.c.id, reach))
    return query


def existing_ids(uow: UnitOfWork, table: sa.Table, ids: Iterable[int]) -> set[int]:
    """The ids among `ids` of readable rows of the node table `table`."""
    wanted = sorted(set(ids))
    statement = _ids_statement(table, uow.tenancy.reach)
    visibility = uow.tenancy.parameters
    found: set[int] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = {"ids": wanted[start : start + _CHUNK], **visibility}
        found.update(row[0] for row in fast_read.rows(uow, statement, chunk))
    return found


def insert_ignoring_duplicates(uow: UnitOfWork, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert link rows; rows whose unique key already exists are skipped (idempotent)."""
    if not rows:
        return
    unique = list(dict.fromkeys(tuple(sorted(row.items())) for row in rows))
    params = [dict(items) for items in unique]
    if uow.changes is not None:  # the links asked for; those stored already are skipped below
        uow.changes.add_edges(table.name.lower(), ([value for _, value in items] for items in unique))
    if uow.dialect == "sqlite":
        bulk_insert.insert_rows(uow, table, params, ignore_duplicates=True)
        return
    uow.note_inserted(table, len(params))
    # MySQL/MariaDB: nothing reads the result, so the rows may go with the transaction's next
    # statement or its COMMIT (a round trip less per link table a write touches).
    if bulk_insert.defer_rows(uow, table, params, absorb_duplicates=True):
        return
    uow.execute(_insert_ignoring_statement(table, uow.dialect, next(iter(params[0]))), params)


@functools.cache
def _insert_ignoring_statement(table: sa.Table, dialect: str, first_column: str) -> Any:
    if dialect == "postgresql":
        # RETURNING makes SQLAlchemy send the rows as one multi-row INSERT ("insertmanyvalues");
        # without it psycopg2's executemany is one round trip per row.
        return pg_dialect.insert(table).on_conflict_do_nothing().returning(table.c.id)
    # INSERT IGNORE would also hide other errors; a no-op update only absorbs duplicates.
    mysql_insert = mysql_dialect.insert(table)
    return mysql_insert.on_duplicate_key_update({first_column: mysql_insert.inserted[first_column]})


def existing_links(
    uow: UnitOfWork, table: sa.Table, owner_column: str, pairs: Sequence[tuple[int, int]]
) -> set[tuple[int, int]]:
    """The (context_id, owner id) pairs among `pairs` stored in the link `table`. Not
    scoped: the caller has already checked that it may read both ends."""
    wanted = sorted(set(pairs))
    found: set[tuple[int, int]] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        query = sa.select(table.c.context_id, table.c[owner_column]).where(
            table.c.context_id.in_(sorted({c for c, _ in chunk})),
            table.c[owner_column].in_(sorted({o for _, o in chunk})),
        )
        rows: list[Any] = list(uow.execute(query))
        found.update((int(row[0]), int(row[1])) for row in rows)
    return found & set(wanted)


def attributions_for(uow: UnitOfWork, artifact_ids: Iterable[int]) -> list[Any]:
    a = uow.schema.attribution
    return _rows_where_in(uow, sa.select(a.c.context_id, a.c.artifact_id), a, a.c.artifact_id, artifact_ids)


def associations_for(uow: UnitOfWork, execution_ids: Iterable[int]) -> list[Any]:
    a = uow.schema.association
    return _rows_where_in(uow, sa.select(a.c.context_id, a.c.execution_id), a, a.c.execution_id, execution_ids)


def _rows_where_in(
    uow: UnitOfWork,
    query: sa.Select[Any],
    link: sa.Table,
    column: sa.Column[Any],
    ids: Iterable[int],
    scoped: bool = True,
) -> list[Any]:
    """Readable rows of `link` (both ends readable) whose `column` is in `ids`;
    every such row when not `scoped` (integrity checks only)."""
    wanted = sorted(set(ids))
    visibility = uow.tenancy.parameters if scoped else {}
    if scoped:
        query = query.where(*link_visible(link, uow.tenancy.reach))
    rows: list[Any] = []
    for start in range(0, len(wanted), _CHUNK):
        rows.extend(uow.execute(query.where(column.in_(wanted[start : start + _CHUNK])), visibility).all())
    return rows


def parent_links(uow: UnitOfWork, child_ids: Iterable[int], integrity_check: bool = False) -> list[tuple[int, int]]:
    """(child, parent) pairs for the given children. `integrity_check` reads links
    the caller cannot see too: a cycle through another namespace is still a cycle."""
    pc = uow.schema.parent_context
    query = sa.select(pc.c.context_id, pc.c.parent_context_id)
    rows = _rows_where_in(uow, query, pc, pc.c.context_id, child_ids, scoped=not integrity_check)
    return [(row[0], row[1]) for row in rows]


def child_links(uow: UnitOfWork, parent_ids: Iterable[int]) -> list[tuple[int, int]]:
    """(child, parent) pairs for the given parents."""
    pc = uow.schema.parent_context
    query = sa.select(pc.c.context_id, pc.c.parent_context_id)
    rows = _rows_where_in(uow, query, pc, pc.c.parent_context_id, parent_ids)
    return [(row[0], row[1]) for row in rows]


def insert_parent_context(uow: UnitOfWork, child_id: int, parent_id: int) -> None:
    if uow.changes is not None:
        uow.changes.add_edges("parent_context", [[child_id, parent_id]])
    uow.execute(sa.insert(uow.schema.parent_context).values(context_id=child_id, parent_context_id=parent_id))
