"""Artifact, Execution and Context rows with their properties.

Reads are set-based: one query for the node rows (joined with their type's
name), one for all their properties, whatever the number of nodes. Writes are
batched: one multi-row INSERT for a run of new nodes and one for their
properties.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from google.protobuf.message import Message

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.store import bulk_insert, codecs, encoded_cache, fast_read, sensitive, tenancy
from lineagedb.store.schema import ARTIFACT_KIND, CONTEXT_KIND, EXECUTION_KIND, Schema
from lineagedb.store.tenancy import Reach
from lineagedb.store.unit_of_work import UnitOfWork

Node = mlmd.Artifact | mlmd.Execution | mlmd.Context


class NodeKind(enum.Enum):
    ARTIFACT = "artifact"
    EXECUTION = "execution"
    CONTEXT = "context"

    # Members are singletons compared by identity; Enum's own __hash__ (of the name, in
    # Python) showed up in profiles of lineage walks keyed by (kind, id).
    __hash__ = object.__hash__

    @property
    def type_kind(self) -> int:
        return {NodeKind.ARTIFACT: ARTIFACT_KIND, NodeKind.EXECUTION: EXECUTION_KIND}.get(self, CONTEXT_KIND)

    @property
    def message(self) -> type[Any]:
        return {NodeKind.ARTIFACT: mlmd.Artifact, NodeKind.EXECUTION: mlmd.Execution}.get(self, mlmd.Context)

    @property
    def label(self) -> str:
        return self.value

    def table(self, schema: Schema) -> sa.Table:
        table: sa.Table = getattr(schema, self.value)
        return table

    def property_table(self, schema: Schema) -> sa.Table:
        table: sa.Table = getattr(schema, f"{self.value}_property")
        return table

    @property
    def number(self) -> int:
        """The kind as the namespace membership table stores it."""
        return tenancy.kind_number(self.value)

    def visible(self, node_id: sa.ColumnElement[Any], reach: Reach) -> sa.ColumnElement[bool]:
        """Whether the node `node_id` of this kind is readable (see store.tenancy)."""
        return tenancy.visible(self.number, node_id, reach)

    @property
    def owner_column(self) -> str:
        return f"{self.value}_id"

    @property
    def row_fields(self) -> tuple[str, ...]:
        """Node columns beyond id/type_id/name/external_id/times."""
        if self is NodeKind.ARTIFACT:
            return ("uri", "state")
        if self is NodeKind.EXECUTION:
            return ("last_known_state",)
        return ()


@dataclass(frozen=True)
class PropertyRow:
    owner_id: int
    name: str
    is_custom: bool
    columns: dict[str, Any]
    # The owner's type: whether a value is sensitive may depend on it (store.sensitive).
    type_id: int | None = None


def row_values(kind: NodeKind, node: Message) -> dict[str, Any]:
    """Column values of the node row written from `node` (spec §3.2, §3.3)."""
    values: dict[str, Any] = {
        "external_id": node.external_id if node.HasField("external_id") else None,  # type: ignore[attr-defined]
    }
    if kind is NodeKind.ARTIFACT:
        values["uri"] = node.uri  # type: ignore[attr-defined]  # unset uri is stored as ""
        values["state"] = node.state if node.HasField("state") else None  # type: ignore[attr-defined]
    elif kind is NodeKind.EXECUTION:
        values["last_known_state"] = (
            node.last_known_state if node.HasField("last_known_state") else None  # type: ignore[attr-defined]
        )
    return values


def property_rows(owner_id: int, node: Message) -> list[PropertyRow]:
    rows = []
    for is_custom, field in ((False, "properties"), (True, "custom_properties")):
        for name, value in getattr(node, field).items():
            columns = codecs.value_to_columns(name, value)
            rows.append(PropertyRow(owner_id, name, is_custom, columns, node.type_id))  # type: ignore[attr-defined]
    return rows


def insert_nodes(uow: UnitOfWork, kind: NodeKind, nodes: Sequence[Message], now_ms: int) -> list[int]:
    """Insert new nodes and their properties; returns ids in request order."""
    if not nodes:
        return []
    tenancy.require_creatable(uow)
    table = kind.table(uow.schema)
    rows = []
    for node in nodes:
        values = row_values(kind, node)
        values["type_id"] = node.type_id  # type: ignore[attr-defined]
        values["name"] = node.name if node.HasField("name") else None  # type: ignore[attr-defined]
        values["create_time_since_epoch"] = now_ms
        values["last_update_time_since_epoch"] = now_ms
        rows.append(values)
    joined = tenancy.insert_joining_namespace(uow, table, kind.value, rows)
    if joined is not None:
        ids = joined
    else:
        ids = _insert_returning_ids(uow, table, rows)
        tenancy.record_membership(uow, kind.value, ids)
    if uow.changes is not None:
        uow.changes.add_created(kind.value, ids)
    insert_properties(
        uow, kind, [prop for node_id, node in zip(ids, nodes, strict=True) for prop in property_rows(node_id, node)]
    )
    return ids


_LAST_ROWID = sa.select(sa.func.last_insert_rowid())


def _insert_returning_ids(uow: UnitOfWork, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
    dialect = uow.connection.dialect
    if uow.dialect == "sqlite":  # bulk_insert counts these rows
        # SQLite cannot promise RETURNING order, so SQLAlchemy would insert row by row.
        # Every write transaction holds SQLite's write lock (BEGIN IMMEDIATE), so nobody
        # else allocates ids meanwhile: one executemany allocates consecutive rowids
        # (INTEGER PRIMARY KEY takes max + 1), ending at last_insert_rowid(). One row goes
        # this way too: SQLAlchemy's execution of the INSERT cost more than SQLite's work.
        bulk_insert.insert_rows(uow, table, rows)
        [(last,)] = fast_read.rows(uow, _LAST_ROWID, {})
        return list(range(last - len(rows) + 1, last + 1))
    uow.note_inserted(table, len(rows))
    if len(rows) > 1 and dialect.insert_executemany_returning_sort_by_parameter_order:
        result = uow.execute(bulk_insert.insert_statement(table, returning_ids=True), rows)
        return [int(row[0]) for row in result]
    ids = []
    for row in rows:
        result = uow.execute(bulk_insert.insert_statement(table), row)
        ids.append(int(result.inserted_primary_key[0]))  # type: ignore[index]
    return ids


def insert_properties(uow: UnitOfWork, kind: NodeKind, rows: Iterable[PropertyRow]) -> None:
    # Every property value written passes here: sensitive ones become envelopes first.
    if uow.protection is not None:
        rows = uow.protection.seal_rows(uow, kind.value, list(rows))
    params = [
        {kind.owner_column: row.owner_id, "name": row.name, "is_custom_property": row.is_custom, **row.columns}
        for row in rows
    ]
    # Nothing reads this INSERT's result: on MySQL/MariaDB it rides with the next statement.
    bulk_insert.insert_rows(uow, kind.property_table(uow.schema), params, deferrable=True)


def delete_properties(uow: UnitOfWork, kind: NodeKind, keys: Iterable[tuple[int, str, bool]]) -> None:
    """Delete (owner, name, is_custom) rows; scoped by the custom flag (MLMD is not, spec §3.5)."""
    table = kind.property_table(uow.schema)
    owner = table.c[kind.owner_column]
    params = [{"o": o, "n": n, "c": c} for o, n, c in keys]
    if params:
        uow.execute(
            sa.delete(table).where(
                owner == sa.bindparam("o"),
                table.c.name == sa.bindparam("n"),
                table.c.is_custom_property == sa.bindparam("c"),
            ),
            params,
        )


def update_row(
    uow: UnitOfWork, kind: NodeKind, node_id: int, values: dict[str, Any], expected_last_update: int | None = None
) -> bool:
    """Rewrite a node row. With `expected_last_update`, only if the stored timestamp
    still equals it (optimistic concurrency); returns whether a row was written."""
    table = kind.table(uow.schema)
    statement = sa.update(table).where(table.c.id == node_id)
    if expected_last_update is not None:
        statement = statement.where(table.c.last_update_time_since_epoch == expected_last_update)
    return uow.execute(statement.values(**values)).rowcount > 0


def select_nodes(schema: Schema, kind: NodeKind, reach: Reach, joined: bool = False) -> sa.Select[Any]:
    """SELECT of the readable node rows joined with their type name, for callers to
    filter and order. Under a restricted reach it takes tenancy's parameters; `joined`
    checks the namespaces by a join (tenancy.readable_by_join, for MySQL/MariaDB)."""
    table = kind.table(schema)
    type_table = schema.type
    query = sa.select(table, type_table.c.name.label("type_name")).join_from(
        table, type_table, type_table.c.id == table.c.type_id, isouter=True
    )
    if reach is Reach.ALL:
        return query
    if joined:
        return tenancy.readable_by_join(query, table, "id", kind.number)
    return query.where(kind.visible(table.c.id, reach))


@functools.cache
def _statements(
    schema: Schema, kind: NodeKind, reach: Reach = Reach.ALL, joined: bool = False
) -> tuple[sa.Select[Any], sa.Select[Any], sa.Select[Any]]:
    """Statements reused by every by-id read, built once per reach: (readable nodes by
    ids, properties by owner ids, property columns). Expanding bind parameters keep
    them cacheable."""
    table = kind.table(schema)
    nodes = select_nodes(schema, kind, reach, joined).where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
    nodes = nodes.order_by(table.c.id)
    props = kind.property_table(schema)
    owner = props.c[kind.owner_column]
    columns = sa.select(
        owner, props.c.name, props.c.is_custom_property, *(props.c[c] for c in codecs.PROPERTY_VALUE_COLUMNS)
    )
    by_owner = columns.where(owner.in_(sa.bindparam("ids", expanding=True)))
    # codecs.fill_properties, their one reader, tests is_custom_property and bool_value for truth.
    by_owner = by_owner.execution_options(**{fast_read.TRUTHY_BOOLEANS: True})
    return nodes, by_owner, columns


def hydrate(
    uow: UnitOfWork,
    kind: NodeKind,
    rows: Sequence[Any],
    id_source: sa.Select[Any] | None = None,
    parameters: dict[str, Any] | None = None,
    into: Any | None = None,
) -> list[Any]:
    """Turn node rows (from `select_nodes`) into messages with all their properties.

    `id_source`, when given, is a SELECT of the same ids; it lets the property
    query use a subquery instead of a long IN list. `into`, a repeated field of a
    response, receives the messages where they are built: copying thousands of nodes
    into a response afterwards costs as much as building them. With `into` an
    encoded_cache.Field, kept encodings are appended to it with one parse, and the
    messages are returned only where they were built (read them in the response).

    Nodes whose row is unchanged since an earlier read are parsed from the encoding kept
    then (store.encoded_cache) and need no property rows; not with `id_source` or with
    property encryption configured (values then depend on the caller).
    """
    if id_source is not None or uow.protection is not None or not rows:
        if isinstance(into, encoded_cache.Field):
            into = into.repeated
        return _build(uow, kind, rows, id_source, parameters, into)
    cache = encoded_cache.for_engine(uow.connection.engine, kind.value)
    # Rows as tuples (fast_read hands out a list where it converted a value), to compare.
    rows = [row if type(row) is tuple else tuple(row) for row in rows]
    updated = len(rows[0]) - 2  # last_update_time_since_epoch, before the type name

    def build(part: Sequence[Any], target: Any | None) -> list[Any]:
        return _build(uow, kind, part, None, None, target)

    return encoded_cache.read_through(cache, rows, updated, build, kind.message, into)


def _build(
    uow: UnitOfWork,
    kind: NodeKind,
    rows: Sequence[Any],
    id_source: sa.Select[Any] | None,
    parameters: dict[str, Any] | None,
    into: Any | None,
) -> list[Any]:
    """Node messages built from their rows and property rows (see hydrate)."""
    message_class = kind.message if into is None else into.add
    messages = [_row_to_message(kind, message_class, row) for row in rows]
    if not messages:
        return messages
    by_id = {message.id: message for message in messages}
    _, by_ids, columns = _statements(uow.schema, kind)
    # Every read that returns nodes comes here: with encryption on, envelopes are set aside
    # and decrypted or redacted for this caller in one place (store.sensitive).
    sealed: list[tuple[Any, bool, str, str]] | None = [] if uow.protection is not None else None
    if id_source is not None:
        owner = kind.property_table(uow.schema).c[kind.owner_column]
        found = uow.execute(columns.where(owner.in_(id_source)), parameters or {}).all()
        codecs.fill_properties(found, by_id, sealed)
    else:
        ids = list(by_id)
        size = uow.id_chunk
        for start in range(0, len(ids), size):
            codecs.fill_properties(fast_read.rows(uow, by_ids, {"ids": ids[start : start + size]}), by_id, sealed)
    if sealed:
        sensitive.reveal(uow, kind.value, sealed)
    return messages


def _row_to_message(kind: NodeKind, message_class: Any, row: Any) -> Any:
    # Positional unpacking (column order of schema.py plus the joined type name) and
    # keyword construction: the per-row cost of every node read. None leaves a field unset.
    if kind is NodeKind.ARTIFACT:
        node_id, type_id, uri, state, name, external_id, created, updated, type_name = row
        return message_class(
            id=node_id,
            type_id=type_id,
            uri=uri if uri is not None else "",
            state=state,
            name=name,
            external_id=external_id,
            create_time_since_epoch=created,
            last_update_time_since_epoch=updated,
            type=type_name,
        )
    if kind is NodeKind.EXECUTION:
        node_id, type_id, last_known_state, name, external_id, created, updated, type_name = row
        return message_class(
            id=node_id,
            type_id=type_id,
            last_known_state=last_known_state,
            name=name,
            external_id=external_id,
            create_time_since_epoch=created,
            last_update_time_since_epoch=updated,
            type=type_name,
        )
    node_id, type_id, name, external_id, created, updated, type_name = row
    return message_class(
        id=node_id,
        type_id=type_id,
        name=name,
        external_id=external_id,
        create_time_since_epoch=created,
        last_update_time_since_epoch=updated,
        type=type_name,
    )


def load_by_ids(uow: UnitOfWork, kind: NodeKind, ids: Iterable[int], into: Any | None = None) -> list[Any]:
    """Existing nodes among `ids`, each once, ordered by id (built in `into`, a repeated
    field or an encoded_cache.Field, when given: see hydrate)."""
    wanted = sorted(set(ids))
    reach = uow.tenancy.reach
    by_ids = _statements(uow.schema, kind, reach, tenancy.joins_membership(uow.dialect))[0]
    # PostgreSQL, namespaces checked: dense ids are checked against their range's members at once.
    by_range = _by_id_range(uow.schema, kind, reach) if reach is not Reach.ALL and uow.dialect == "postgresql" else None
    visibility = uow.tenancy.parameters
    result: list[Any] = []
    size = uow.id_chunk
    for start in range(0, len(wanted), size):
        chunk = wanted[start : start + size]
        if by_range is not None and tenancy.dense(chunk):
            parameters = {"ids": chunk, tenancy.ID_RANGE_PARAMETER: [chunk[0], chunk[-1]], **visibility}
            rows = fast_read.rows(uow, by_range, parameters)
        else:
            rows = fast_read.rows(uow, by_ids, {"ids": chunk, **visibility})
        result.extend(hydrate(uow, kind, rows, into=into))
    return result


@functools.cache
def _by_id_range(schema: Schema, kind: NodeKind, reach: Reach) -> sa.Select[Any]:
    """PostgreSQL: `_statements`' nodes by ids, the namespaces checked by tenancy.visible_in_range."""
    table = kind.table(schema)
    query = select_nodes(schema, kind, Reach.ALL).where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
    return query.where(tenancy.visible_in_range(kind.number, table.c.id, reach)).order_by(table.c.id)


def load_where(
    uow: UnitOfWork, kind: NodeKind, where: sa.ColumnElement[bool] | None, order_by: Sequence[Any] = ()
) -> list[Any]:
    """All readable nodes matching `where` (None = all), ordered by `order_by` (default id)."""
    table = kind.table(uow.schema)
    reach = uow.tenancy.reach
    query = select_nodes(uow.schema, kind, reach)
    ids = sa.select(table.c.id)
    if reach is not Reach.ALL:
        ids = ids.where(kind.visible(table.c.id, reach))
    if where is not None:
        query = query.where(where)
        ids = ids.where(where)
    query = query.order_by(*(order_by or (table.c.id,)))
    rows = uow.execute(query, uow.tenancy.parameters).all()
    return hydrate(uow, kind, rows, id_source=ids, parameters=uow.tenancy.parameters)


def load_by_type_and_name(uow: UnitOfWork, kind: NodeKind, type_id: int, name: str) -> Any | None:
    table = kind.table(uow.schema)
    found = load_where(uow, kind, sa.and_(table.c.type_id == type_id, table.c.name == name))
    return found[0] if found else None


def exists_unscoped(uow: UnitOfWork, kind: NodeKind, type_id: int, name: str) -> bool:
    """Whether a node of (type, name) exists that the call cannot read. Only to tell a
    unique clash with an invisible node (ALREADY_EXISTS) from a creation race (ABORTED):
    a clash with a readable one is a race the client's retry resolves by reusing it."""
    reach = uow.tenancy.reach
    if reach is Reach.ALL:
        return False  # unrestricted: a clash after a lookup that found nothing is a race
    table = kind.table(uow.schema)
    query = sa.select(table.c.id).where(
        table.c.type_id == type_id, table.c.name == name, sa.not_(kind.visible(table.c.id, reach))
    )
    if uow.dialect == "postgresql":
        # The failed INSERT aborted this transaction (PostgreSQL refuses every further
        # statement), so ask on a connection of its own. PostgreSQL reports the unique
        # violation only once the clashing row is committed, so that connection sees it.
        with uow.connection.engine.connect() as other:
            return other.execute(query, uow.tenancy.parameters).first() is not None
    return uow.execute(query, uow.tenancy.parameters).first() is not None


def load_by_uris(uow: UnitOfWork, uris: Sequence[str]) -> list[Any]:
    """Artifacts whose uri is one of `uris`, ordered by id."""
    table = NodeKind.ARTIFACT.table(uow.schema)
    found: list[Any] = []
    for start in range(0, len(uris), 500):
        found.extend(load_where(uow, NodeKind.ARTIFACT, table.c.uri.in_(uris[start : start + 500])))
    return sorted(found, key=lambda a: a.id) if len(uris) > 500 else found


def load_by_external_ids(uow: UnitOfWork, kind: NodeKind, external_ids: Sequence[str]) -> list[Any]:
    table = kind.table(uow.schema)
    wanted = sorted(set(external_ids))
    found: list[Any] = []
    for start in range(0, len(wanted), 500):
        found.extend(load_where(uow, kind, table.c.external_id.in_(wanted[start : start + 500])))
    return sorted(found, key=lambda n: n.id) if len(wanted) > 500 else found


def type_names_of(uow: UnitOfWork, kind: NodeKind, ids: Iterable[int]) -> list[str]:
    """The type name of each of the (existing) nodes `ids`, one entry per node."""
    table, types = kind.table(uow.schema), uow.schema.type
    statement = (
        sa.select(types.c.name)
        .join_from(table, types, types.c.id == table.c.type_id)
        .where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
    )
    wanted = sorted(set(ids))
    names: list[str] = []
    size = uow.id_chunk
    for start in range(0, len(wanted), size):
        names.extend(str(row[0]) for row in fast_read.rows(uow, statement, {"ids": wanted[start : start + size]}))
    return names
