"""Archives of chosen nodes: what a retention apply is about to delete, written first.

The archive (store.archive's format) holds the chosen artifacts, executions and contexts
with their properties and namespace memberships, the MLflow metric rows of the chosen
executions, the types they use (with their base types), and every edge that touches one
of them: exactly what deleting them removes. An edge whose other end survives the
deletion keeps that end's id, and the node is named in an `outside_node` row (kind, id,
type, name, uri, external_id), so an import relinks the edge only to that same node
(store.archive.Importer).

The ids come in memory (a retention plan holds them already); rows are read in chunks of
ids in ascending order, so each section comes out sorted as an export's does. Run it in
one snapshot transaction (ops.archive.snapshot) so the archive is one point in time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lineagedb.store.archive import (
    EXECUTION_ROWS,
    OUTSIDE,
    SECTIONS,
    Scope,
    Section,
    in_order,
    section_statement,
    table_for,
    with_parent_types,
)
from lineagedb.store.schema import Schema, schema_for
from lineagedb.store.tenancy import ARTIFACT_NODE, CONTEXT_NODE, EXECUTION_NODE, MEMBERSHIP, NAMESPACES

_CHUNK = 500
KINDS = ("artifact", "execution", "context")
_NUMBER = {"artifact": ARTIFACT_NODE, "execution": EXECUTION_NODE, "context": CONTEXT_NODE}
Row = tuple[Any, ...]


@dataclass(frozen=True)
class Selection:
    """The node ids an archive holds, per kind."""

    artifact: frozenset[int] = frozenset()
    execution: frozenset[int] = frozenset()
    context: frozenset[int] = frozenset()

    def ids(self, kind: str) -> frozenset[int]:
        ids: frozenset[int] = getattr(self, kind)
        return ids

    def counts(self) -> dict[str, int]:
        return {kind: len(self.ids(kind)) for kind in KINDS}


@dataclass
class _Edges:
    """The edges touching the selection (by id, or the key of a parent link) and their
    ends outside it."""

    ids: dict[str, set[int]] = field(
        default_factory=lambda: {"event": set(), "attribution": set(), "association": set()}
    )
    parents: set[tuple[int, int]] = field(default_factory=set)
    outside: dict[str, set[int]] = field(default_factory=lambda: {kind: set() for kind in KINDS})


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


# The edge tables: (table, id column or None, (column, node kind) of each end).
_EDGE_ENDS: tuple[tuple[str, tuple[tuple[str, str], tuple[str, str]]], ...] = (
    ("event", (("artifact_id", "artifact"), ("execution_id", "execution"))),
    ("attribution", (("context_id", "context"), ("artifact_id", "artifact"))),
    ("association", (("context_id", "context"), ("execution_id", "execution"))),
    ("parent_context", (("context_id", "context"), ("parent_context_id", "context"))),
)


def _edges(connection: sa.Connection, schema: Schema, selection: Selection) -> _Edges:
    found = _Edges()
    for tag, ends in _EDGE_ENDS:
        table = table_for(schema, tag)
        key = [table.c.id] if tag != "parent_context" else []
        columns = [*key, *(table.c[column] for column, _ in ends)]
        for column, kind in ends:
            for chunk in _chunks(selection.ids(kind)):
                for row in connection.execute(sa.select(*columns).where(table.c[column].in_(chunk))):
                    values = tuple(int(value) for value in row)
                    if key:
                        found.ids[tag].add(values[0])
                    else:
                        found.parents.add((values[0], values[1]))
                    for (_, end_kind), end_id in zip(ends, values[len(key) :], strict=True):
                        if end_id not in selection.ids(end_kind):
                            found.outside[end_kind].add(end_id)
    return found


def _used_types(connection: sa.Connection, schema: Schema, selection: Selection) -> list[int]:
    used: set[int] = set()
    for kind in KINDS:
        node = table_for(schema, kind)
        for chunk in _chunks(selection.ids(kind)):
            used.update(
                int(t)
                for t in connection.execute(sa.select(node.c.type_id).distinct().where(node.c.id.in_(chunk))).scalars()
            )
    return with_parent_types(connection, schema, used)


def _by_chunks(
    connection: sa.Connection,
    schema: Schema,
    section: Section,
    column: str,
    ids: Iterable[int],
    *conditions: sa.ColumnElement[bool],
) -> Iterator[tuple[Section, Row]]:
    """The section's rows whose `column` is among `ids`, in the section's order."""
    table = table_for(schema, section.tag)
    statement = section_statement(connection, schema, section, Scope(), None).where(*conditions)
    for chunk in _chunks(ids):
        rows = connection.execute(statement.where(table.c[column].in_(chunk)))
        yield from in_order(section, (tuple(row) for row in rows))


def _outside_rows(connection: sa.Connection, schema: Schema, outside: Mapping[str, set[int]]) -> Iterator[Row]:
    t = schema.type
    for kind in sorted(KINDS, key=lambda k: _NUMBER[k]):
        node = table_for(schema, kind)
        uri = node.c.uri if kind == "artifact" else sa.null()
        statement = (
            sa.select(node.c.id, t.c.name, t.c.version, node.c.name, uri, node.c.external_id)
            .join(t, t.c.id == node.c.type_id)
            .order_by(node.c.id)
        )
        for chunk in _chunks(outside[kind]):
            for row in connection.execute(statement.where(node.c.id.in_(chunk))):
                yield (_NUMBER[kind], *row)


def _namespaces(connection: sa.Connection, selection: Selection) -> list[str]:
    names: set[str] = set()
    for kind in KINDS:
        for chunk in _chunks(selection.ids(kind)):
            statement = sa.select(MEMBERSHIP.c.namespace).distinct()
            statement = statement.where(MEMBERSHIP.c.node_kind == _NUMBER[kind], MEMBERSHIP.c.node_id.in_(chunk))
            names.update(connection.execute(statement).scalars())
    return sorted(names)


def selection_rows(connection: sa.Connection, selection: Selection) -> Iterator[tuple[Section, Row]]:
    """Every row of the selection's archive, section by section in archive order."""
    schema = schema_for(connection.dialect.name)
    present = set(sa.inspect(connection).get_table_names())
    edges = _edges(connection, schema, selection)
    types = _used_types(connection, schema, selection)
    for section in SECTIONS:
        tag = section.tag
        if tag != OUTSIDE and table_for(schema, tag).name not in present:
            continue
        if tag == "namespace":
            names = _namespaces(connection, selection)
            statement = section_statement(connection, schema, section, Scope(), None).where(
                NAMESPACES.c.name.in_(names)
            )
            yield from in_order(section, (tuple(row) for row in connection.execute(statement)) if names else ())
        elif tag == "encryption_key":
            yield from in_order(
                section,
                (
                    tuple(row)
                    for row in connection.execute(section_statement(connection, schema, section, Scope(), None))
                ),
            )
        elif tag in ("type", "type_property", "parent_type"):
            yield from _by_chunks(connection, schema, section, "id" if tag == "type" else "type_id", types)
        elif section.node is not None:
            owner = "id" if section.has_id else f"{section.node}_id"
            yield from _by_chunks(connection, schema, section, owner, selection.ids(section.node))
        elif tag == OUTSIDE:
            yield from ((section, row) for row in _outside_rows(connection, schema, edges.outside))
        elif tag == "node_namespace":
            for kind in sorted(KINDS, key=lambda k: _NUMBER[k]):
                kind_only = MEMBERSHIP.c.node_kind == _NUMBER[kind]
                yield from _by_chunks(connection, schema, section, "node_id", selection.ids(kind), kind_only)
        elif tag == "event_path":
            yield from _by_chunks(connection, schema, section, "event_id", edges.ids["event"])
        elif tag == "parent_context":
            yield from ((section, pair) for pair in sorted(edges.parents))
        elif tag in EXECUTION_ROWS:  # the MLflow metric rows of the chosen runs
            yield from _by_chunks(connection, schema, section, "execution_id", selection.ids("execution"))
        else:
            yield from _by_chunks(connection, schema, section, "id", edges.ids[tag])


def header_extra(selection: Selection, purpose: Mapping[str, Any]) -> dict[str, Any]:
    """What a selection archive's header says besides an export's fields."""
    return {"selection": selection.counts(), **purpose}


def is_partial(header: Mapping[str, Any]) -> bool:
    return header.get("selection") is not None
