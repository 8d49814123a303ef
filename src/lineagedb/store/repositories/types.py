"""Type rows: Type, TypeProperty and ParentType, loaded in three set-based queries."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lineagedb.store import fast_read
from lineagedb.store.schema import ARTIFACT_KIND, CONTEXT_KIND, EXECUTION_KIND, Schema
from lineagedb.store.unit_of_work import UnitOfWork


@dataclass
class TypeRecord:
    """A stored type of any kind, with its properties and base-type links."""

    id: int
    kind: int
    name: str
    version: str | None = None
    description: str | None = None
    external_id: str | None = None
    input_type: str | None = None
    output_type: str | None = None
    properties: dict[str, int] = field(default_factory=dict)
    parent_type_names: list[str] = field(default_factory=list)


@functools.cache
def _types_query(schema: Schema) -> sa.Select[Any]:
    """Types with their base-type link and their properties, one row per (type, property);
    built once (aliases are costly to rebuild)."""
    t, pt, tp = schema.type, schema.parent_type, schema.type_property
    parent = t.alias("parent")
    return (
        sa.select(
            t,
            parent.c.name.label("parent_name"),
            tp.c.name.label("property_name"),
            tp.c.data_type.label("property_type"),
        )
        .join_from(t, pt, pt.c.type_id == t.c.id, isouter=True)
        .join(parent, parent.c.id == pt.c.parent_type_id, isouter=True)
        .join(tp, tp.c.type_id == t.c.id, isouter=True)
        .order_by(t.c.id, pt.c.parent_type_id)
    )


def load_types(
    uow: UnitOfWork,
    where: sa.ColumnElement[bool] | sa.Select[Any],
    parameters: dict[str, Any] | None = None,
) -> list[TypeRecord]:
    """Types matching `where` (over the Type table), ordered by id, in one statement.

    `where` is a condition, or a full statement from `_types_query` with its bound
    `parameters` (the hot paths build theirs once, see `_by_ids_statement`).
    """
    if isinstance(where, sa.Select):
        query, rows = where, fast_read.rows(uow, where, parameters or {})
    else:
        query = _types_query(uow.schema).where(where)
        rows = list(uow.execute(query).all())
    return _records(query, rows)


@functools.cache
def _all_types_statement(schema: Schema) -> sa.Select[Any]:
    t = schema.type
    return _types_query(schema).where(t.c.type_kind.in_([ARTIFACT_KIND, EXECUTION_KIND, CONTEXT_KIND]))


def all_type_rows(uow: UnitOfWork) -> tuple[tuple[Any, ...], ...]:
    """The rows of every type of every kind, system types included (one statement), as a
    hashable value: equal rows give equal types, so a caller may reuse what it built from
    them (see `all_types_from_rows`)."""
    return tuple(tuple(row) for row in fast_read.rows(uow, _all_types_statement(uow.schema), {}))


def all_types_from_rows(schema: Schema, rows: Sequence[Sequence[Any]]) -> list[TypeRecord]:
    """The types `all_type_rows` read, ordered by id."""
    return _records(_all_types_statement(schema), rows)


def _records(query: sa.Select[Any], rows: Sequence[Sequence[Any]]) -> list[TypeRecord]:
    at = _positions(query)
    id_, kind, name, version, description = at["id"], at["type_kind"], at["name"], at["version"], at["description"]
    external_id, input_type, output_type = at["external_id"], at["input_type"], at["output_type"]
    parent_name, property_name, property_type = at["parent_name"], at["property_name"], at["property_type"]
    records: dict[int, TypeRecord] = {}
    for row in rows:
        record = records.get(row[id_])
        if record is None:
            record = records[row[id_]] = TypeRecord(
                id=row[id_],
                kind=row[kind],
                name=row[name],
                version=row[version],
                description=row[description],
                external_id=row[external_id],
                input_type=row[input_type],
                output_type=row[output_type],
            )
        # A type has at most one base-type link, so parents do not multiply property rows;
        # property rows repeat the parent name, hence the membership test.
        if row[parent_name] is not None and row[parent_name] not in record.parent_type_names:
            record.parent_type_names.append(row[parent_name])
        if row[property_name] is not None:
            record.properties[row[property_name]] = row[property_type] or 0
    return list(records.values())


def _positions(query: sa.Select[Any]) -> dict[str, int]:
    return {str(column.key): position for position, column in enumerate(query.selected_columns)}


# Statements of the per-call paths, built once per schema: building a SELECT with
# joins and aliases cost more than running it on SQLite.


@functools.cache
def _by_ids_statement(schema: Schema) -> sa.Select[Any]:
    t = schema.type
    return _types_query(schema).where(
        t.c.type_kind == sa.bindparam("kind"), t.c.id.in_(sa.bindparam("ids", expanding=True))
    )


@functools.cache
def _by_name_statement(schema: Schema, versioned: bool, locking: bool) -> sa.Select[Any]:
    """`locking` reads the newest committed rows even inside an older MySQL snapshot
    (a locking read, as MLMD does there); other backends read committed rows per
    statement anyway."""
    t = schema.type
    version_clause = t.c.version == sa.bindparam("version") if versioned else t.c.version.is_(None)
    query = _types_query(schema).where(t.c.type_kind == sa.bindparam("kind"), t.c.name == sa.bindparam("name"))
    query = query.where(version_clause)
    return query.with_for_update(read=True, of=t) if locking else query


@functools.cache
def _property_count_statement(schema: Schema) -> sa.Select[Any]:
    tp = schema.type_property
    return sa.select(sa.func.count()).where(tp.c.type_id == sa.bindparam("type_id"))


def property_count(uow: UnitOfWork, type_id: int) -> int:
    """How many properties a type has (they are only ever added, so this tells a cached copy is current)."""
    [(count,)] = fast_read.rows(uow, _property_count_statement(uow.schema), {"type_id": type_id})
    return int(count)


def by_ids(uow: UnitOfWork, kind: int, ids: Iterable[int]) -> dict[int, TypeRecord]:
    wanted = sorted(set(ids))
    statement = _by_ids_statement(uow.schema)
    found: dict[int, TypeRecord] = {}
    for chunk in _chunks(wanted):
        for record in load_types(uow, statement, parameters={"kind": kind, "ids": list(chunk)}):
            found[record.id] = record
    return found


def by_name(uow: UnitOfWork, kind: int, name: str, version: str | None) -> TypeRecord | None:
    statement = _by_name_statement(uow.schema, bool(version), uow.dialect in ("mysql", "mariadb"))
    records = load_types(uow, statement, parameters={"kind": kind, "name": name, "version": version})
    return records[0] if records else None


def by_external_ids(uow: UnitOfWork, kind: int | None, external_ids: Sequence[str]) -> list[TypeRecord]:
    t = uow.schema.type
    clause: sa.ColumnElement[bool] = t.c.external_id.in_(sorted(set(external_ids)))
    if kind is not None:
        clause = sa.and_(clause, t.c.type_kind == kind)
    return load_types(uow, clause)


def all_of_kind(uow: UnitOfWork, kind: int) -> list[TypeRecord]:
    return load_types(uow, uow.schema.type.c.type_kind == kind)


def insert(uow: UnitOfWork, record: TypeRecord) -> int:
    t = uow.schema.type
    result = uow.execute(
        sa.insert(t).values(
            name=record.name,
            version=record.version,
            type_kind=record.kind,
            description=record.description,
            input_type=record.input_type,
            output_type=record.output_type,
            external_id=record.external_id,
        )
    )
    type_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    record.id = type_id
    if uow.changes is not None:
        uow.changes.add_created("type", [type_id])
    add_properties(uow, type_id, record.properties, new_type=True)
    return type_id


def add_properties(uow: UnitOfWork, type_id: int, properties: dict[str, int], new_type: bool = False) -> None:
    if properties and uow.changes is not None and not new_type:
        uow.changes.add_updated(
            "type", type_id, [(f"properties.{name}", None, data_type) for name, data_type in properties.items()]
        )
    if properties:
        uow.execute(
            sa.insert(uow.schema.type_property),
            [{"type_id": type_id, "name": name, "data_type": data_type} for name, data_type in properties.items()],
        )


def set_external_id(uow: UnitOfWork, type_id: int, external_id: str) -> None:
    if uow.changes is not None:
        uow.changes.add_updated("type", type_id, [("external_id", None, external_id)])
    t = uow.schema.type
    uow.execute(sa.update(t).where(t.c.id == type_id).values(external_id=external_id))


def add_parent(uow: UnitOfWork, type_id: int, parent_type_id: int) -> None:
    uow.execute(sa.insert(uow.schema.parent_type).values(type_id=type_id, parent_type_id=parent_type_id))


def _chunks(values: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
