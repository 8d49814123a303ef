"""Archives: a whole store, or one namespace, as one portable file; and putting it back.

Format (version 3). One file, gzip-compressed JSON Lines, ASCII:

* line 1, the header: {"format": "lineagedb-archive", "version": 3, "created_ms": ...,
  "source_dialect": "sqlite" | "postgresql" | "mysql" | "mariadb", "schema_revision": "0006" (its newest migration),
  "mlmd_schema_version": 10, "namespace": null | "team-a", "sections": [...],
  "lineagedb_version": "..."}. A reader refuses another "format" or a newer "version".
* then one line per stored row, {"t": <section>, <column>: <value>, ...}, sections in the
  order of SECTIONS (parents before children, so an import can remap ids as it goes):
  namespace, encryption_key, type, type_property, parent_type, artifact,
  artifact_property, execution, execution_property, context, context_property,
  outside_node, node_namespace, event, event_path, attribution, association,
  parent_context, mlflow_metric, mlflow_latest_metric. Columns are MLMD's (and LineageDB's
  own tables') column names; a NULL column is left out.
* mlflow_metric and mlflow_latest_metric (version 3) are the MLflow metric histories and
  latest values of the runs (executions) the archive holds (store.mlflow): only rows whose
  execution exists are exported. A history row's id orders equal (step, timestamp) values:
  imported into a database that holds history rows already, every history row gets a new
  id, in archive order, so that order is kept. An archive of an older version has no such
  sections and imports as if they were empty.
* a whole-store or namespace archive holds every edge whose two ends it holds. An archive
  of chosen nodes (version 2, header "selection": what a retention apply deletes, see
  store.archive_selection) also holds the edges from them to nodes it does not hold, and
  names each such node in an `outside_node` row (kind, id, type, name, uri, external_id):
  an import links those edges only to a node of the target that is the same one.
* the last line, the trailer: {"t": "trailer", "counts": {section: rows},
  "sha256": {section: hex}, "header_sha256": hex, "rows": total}. A section's digest is
  SHA-256 over its lines' bytes (each with its newline) in file order. Counts and digests
  cannot be known before the rows are streamed, hence a trailer, not a header field.

Values are portable: integers as JSON integers, doubles as the shortest text that reads
back to the same double (exact), booleans as true/false whatever the backend stores
(SQLite and MySQL keep 0/1), text as stored (a STRUCT value is MLMD's "mlmd-struct::"
string), `byte_value` and `proto_value` (the serialized google.protobuf.Any, whatever the
backend's own encoding of it) as standard base64. Encrypted sensitive values are exported
as stored, i.e. as envelopes (store.encryption): an archive never holds their plaintext.

Row order inside a section is deterministic: by the integer key (ids, owner ids), with
ties in text columns (property names, namespace names) sorted here by code point rather
than by the database, whose collations differ (MySQL's are case-insensitive). So the same
content gives the same lines, and the same digests, on every backend: `verify` recomputes
them from a database and compares. EventPath has no key; its steps are in stored order
within an event (SQLite's rowid, PostgreSQL's ctid, MySQL's event_id index), which is the
order MLMD and LineageDB read a path in.

Reads stream (yield_per: server-side cursors on PostgreSQL and MySQL, sqlite3's own lazy
cursor), so memory does not grow with the store; writes are batched multi-row INSERTs.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

import lineagedb
from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.store import bulk_insert
from lineagedb.store.bootstrap import inspect_schema
from lineagedb.store.codecs import ENVELOPE_PREFIX
from lineagedb.store.encryption import KEYS, Keyring, SealError, parse_envelope
from lineagedb.store.mlflow import LATEST, METRIC
from lineagedb.store.schema import ARTIFACT_KIND, CONTEXT_KIND, EXECUTION_KIND, Schema, schema_for
from lineagedb.store.sensitive import property_aad
from lineagedb.store.tenancy import (
    ARTIFACT_NODE,
    CONTEXT_NODE,
    DEFAULT_NAMESPACE,
    EXECUTION_NODE,
    MEMBERSHIP,
    NAMESPACES,
)
from lineagedb.store.unit_of_work import UnitOfWork

FORMAT = "lineagedb-archive"
# 2: the outside_node section (archives of chosen nodes). 3: the MLflow metric sections.
# Older archives read as before (a section they lack is empty).
VERSION = 3
OUTSIDE = "outside_node"
TRAILER = "trailer"
# Rows per fetch from a streaming cursor, and rows per INSERT batch on import.
FETCH_ROWS = 2000
BATCH_ROWS = 1000
# Ids looked up per statement when checking which are taken in the target.
_CHUNK = 500

INT, TEXT, BOOL, FLOAT, BYTES = "int", "text", "bool", "float", "bytes"


@dataclass(frozen=True)
class Section:
    """One table as it appears in an archive."""

    tag: str
    columns: tuple[tuple[str, str], ...]  # (column, kind) in line order
    order: tuple[str, ...]  # integer columns the database sorts by
    then: tuple[str, ...] = ()  # ties sorted here (text: collations differ between backends)
    node: str | None = None  # the node kind whose id this section's "id"/owner column holds

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @functools.cached_property
    def keys(self) -> frozenset[str]:
        """The keys a line of this section may have."""
        return frozenset(self.names) | {"t"}

    @property
    def has_id(self) -> bool:
        return self.columns[0][0] == "id"


def _node_columns(*extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return (
        ("id", INT),
        ("type_id", INT),
        *extra,
        ("name", TEXT),
        ("external_id", TEXT),
        ("create_time_since_epoch", INT),
        ("last_update_time_since_epoch", INT),
    )


def _property_section(kind: str) -> Section:
    owner = f"{kind}_id"
    columns = (
        (owner, INT),
        ("name", TEXT),
        ("is_custom_property", BOOL),
        ("int_value", INT),
        ("double_value", FLOAT),
        ("string_value", TEXT),
        ("byte_value", BYTES),
        ("proto_value", BYTES),
        ("bool_value", BOOL),
    )
    return Section(f"{kind}_property", columns, (owner,), ("name", "is_custom_property"), kind)


SECTIONS: tuple[Section, ...] = (
    Section("namespace", (("name", TEXT), ("create_time_since_epoch", INT)), (), ("name",)),
    Section(
        "encryption_key",
        (("key_id", TEXT), ("check_value", TEXT), ("create_time_since_epoch", INT)),
        (),
        ("key_id",),
    ),
    Section(
        "type",
        (
            ("id", INT),
            ("name", TEXT),
            ("version", TEXT),
            ("type_kind", INT),
            ("description", TEXT),
            ("input_type", TEXT),
            ("output_type", TEXT),
            ("external_id", TEXT),
        ),
        ("id",),
    ),
    Section("type_property", (("type_id", INT), ("name", TEXT), ("data_type", INT)), ("type_id",), ("name",)),
    Section("parent_type", (("type_id", INT), ("parent_type_id", INT)), ("type_id", "parent_type_id")),
    Section("artifact", _node_columns(("uri", TEXT), ("state", INT)), ("id",), node="artifact"),
    _property_section("artifact"),
    Section("execution", _node_columns(("last_known_state", INT)), ("id",), node="execution"),
    _property_section("execution"),
    Section("context", _node_columns(), ("id",), node="context"),
    _property_section("context"),
    # Not a table: the nodes an archive of chosen nodes has edges to but does not hold.
    Section(
        OUTSIDE,
        (
            ("node_kind", INT),
            ("node_id", INT),
            ("type_name", TEXT),
            ("type_version", TEXT),
            ("name", TEXT),
            ("uri", TEXT),
            ("external_id", TEXT),
        ),
        ("node_kind", "node_id"),
    ),
    Section(
        "node_namespace",
        (("node_kind", INT), ("node_id", INT), ("namespace", TEXT)),
        ("node_kind", "node_id"),
    ),
    Section(
        "event",
        (("id", INT), ("artifact_id", INT), ("execution_id", INT), ("type", INT), ("milliseconds_since_epoch", INT)),
        ("id",),
    ),
    Section(
        "event_path",
        (("event_id", INT), ("is_index_step", BOOL), ("step_index", INT), ("step_key", TEXT)),
        ("event_id",),
    ),
    Section("attribution", (("id", INT), ("context_id", INT), ("artifact_id", INT)), ("id",)),
    Section("association", (("id", INT), ("context_id", INT), ("execution_id", INT)), ("id",)),
    Section("parent_context", (("context_id", INT), ("parent_context_id", INT)), ("context_id", "parent_context_id")),
    # LineageDB's MLflow metric tables (store.mlflow), keyed by the run's execution id.
    Section(
        "mlflow_metric",
        (
            ("id", INT),
            ("execution_id", INT),
            ("key", TEXT),
            ("value", FLOAT),
            ("timestamp", INT),
            ("step", INT),
            ("is_nan", BOOL),
        ),
        ("execution_id", "id"),
    ),
    Section(
        "mlflow_latest_metric",
        (("execution_id", INT), ("key", TEXT), ("value", FLOAT), ("timestamp", INT), ("step", INT), ("is_nan", BOOL)),
        ("execution_id",),
        ("key",),
    ),
)
# Sections of rows that belong to an execution without being its properties.
EXECUTION_ROWS = ("mlflow_metric", "mlflow_latest_metric")
# The sections that are tables (all but outside_node).
STORED_SECTIONS: tuple[Section, ...] = tuple(section for section in SECTIONS if section.tag != OUTSIDE)
BY_TAG: dict[str, Section] = {section.tag: section for section in SECTIONS}
POSITION: dict[str, int] = {section.tag: index for index, section in enumerate(SECTIONS)}
# Sections whose rows have ids of their own (kept when free in the target, else remapped).
ID_TAGS = tuple(section.tag for section in SECTIONS if section.has_id)
_NODE_NUMBER = {"artifact": ARTIFACT_NODE, "execution": EXECUTION_NODE, "context": CONTEXT_NODE}
_NUMBER_NODE = {number: kind for kind, number in _NODE_NUMBER.items()}
_TYPE_KIND_NAMES = {ARTIFACT_KIND: "artifact type", EXECUTION_KIND: "execution type", CONTEXT_KIND: "context type"}


def table_for(schema: Schema, tag: str) -> sa.Table:
    if tag == "namespace":
        return NAMESPACES
    if tag == "node_namespace":
        return MEMBERSHIP
    if tag == "encryption_key":
        return KEYS
    if tag == "mlflow_metric":
        return METRIC
    if tag == "mlflow_latest_metric":
        return LATEST
    table: sa.Table = getattr(schema, tag)
    return table


# -- lines ------------------------------------------------------------------------------------


def encode(section: Section, row: Sequence[Any]) -> bytes:
    """One archive line (with its newline) for a row whose values are in `section.names` order."""
    record: dict[str, Any] = {"t": section.tag}
    for (name, kind), value in zip(section.columns, row, strict=True):
        if value is None:
            continue
        if kind == INT:
            value = int(value)
        elif kind == BOOL:
            value = bool(value)
        elif kind == FLOAT:
            value = float(value)
        elif kind == BYTES:
            value = base64.b64encode(bytes(value)).decode("ascii")
        record[name] = value
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("ascii")


def decode(section: Section, record: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A line's record as row values by column name (absent = NULL), each checked for its kind."""
    if not section.keys.issuperset(record):
        unknown = sorted(set(record) - section.keys)
        raise _invalid(f"{where}: unknown columns {unknown} in a {section.tag} row")
    row: dict[str, Any] = {}
    for name, kind in section.columns:
        value = record.get(name)
        if value is not None:
            # Exact types: JSON gives int, float, str and bool, and a bool is no integer here.
            kind_of = type(value)
            if kind == INT:
                ok = kind_of is int
            elif kind == TEXT:
                ok = kind_of is str
            elif kind == BOOL:
                ok = kind_of is bool
            elif kind == FLOAT:
                ok = kind_of is float or kind_of is int
                value = float(value) if ok else value
            else:
                try:
                    value = base64.b64decode(value, validate=True) if kind_of is str else None
                except (binascii.Error, ValueError):
                    value = None
                ok = value is not None
            if not ok:
                raise _invalid(f"{where}: {section.tag}.{name} is not a valid {kind} value")
        row[name] = value
    return row


def _invalid(message: str) -> errors.InvalidArgumentError:
    return errors.InvalidArgumentError(f"not a usable archive: {message}")


class Tally:
    """Rows and SHA-256 per section, as an archive's trailer holds them."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {section.tag: 0 for section in SECTIONS}
        self._hashes = {section.tag: hashlib.sha256() for section in SECTIONS}

    def add(self, tag: str, line: bytes) -> None:
        self.counts[tag] += 1
        self._hashes[tag].update(line)

    def digests(self) -> dict[str, str]:
        return {tag: digest.hexdigest() for tag, digest in self._hashes.items()}

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def _header_line(header: Mapping[str, Any]) -> bytes:
    return (json.dumps(dict(header), separators=(",", ":")) + "\n").encode("ascii")


# -- reading a database -------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What an archive holds: the whole store (namespace None) or one namespace's nodes,
    the types they use, and the edges whose both ends are among them."""

    namespace: str | None = None


def _member(number: int, column: sa.ColumnElement[Any], namespace: str) -> sa.ColumnElement[bool]:
    """Whether the node `column` (of kind `number`) is in `namespace`; nodes of `default`
    have no membership row (store.tenancy)."""
    m = MEMBERSHIP.alias()
    row = sa.select(sa.literal(1)).where(m.c.node_kind == number, m.c.node_id == column)
    if namespace == DEFAULT_NAMESPACE:
        return ~sa.exists(row)
    return sa.exists(row.where(m.c.namespace == namespace))


def _used_types(connection: sa.Connection, schema: Schema, namespace: str) -> list[int]:
    """The types of a namespace's nodes and, transitively, their parent types."""
    used: set[int] = set()
    for kind, number in _NODE_NUMBER.items():
        node = getattr(schema, kind)
        statement = sa.select(node.c.type_id).distinct().where(_member(number, node.c.id, namespace))
        used.update(int(type_id) for type_id in connection.execute(statement).scalars())
    return with_parent_types(connection, schema, used)


def with_parent_types(connection: sa.Connection, schema: Schema, used: set[int]) -> list[int]:
    """`used` and, transitively, their base types, sorted."""
    used = set(used)
    parents: dict[int, list[int]] = {}
    pt = schema.parent_type
    for type_id, parent_id in connection.execute(sa.select(pt.c.type_id, pt.c.parent_type_id)):
        parents.setdefault(int(type_id), []).append(int(parent_id))
    pending = list(used)
    while pending:
        for parent_id in parents.get(pending.pop(), []):
            if parent_id not in used:
                used.add(parent_id)
                pending.append(parent_id)
    return sorted(used)


def section_statement(
    connection: sa.Connection, schema: Schema, section: Section, scope: Scope, types: list[int] | None
) -> sa.Select[Any]:
    table = table_for(schema, section.tag)
    statement = sa.select(*(table.c[name] for name in section.names))
    order: list[Any] = [table.c[name] for name in section.order]
    if section.tag == "event_path":
        # Steps in stored order within an event (see the module doc).
        dialect = connection.dialect.name
        if dialect == "sqlite":
            order.append(sa.literal_column("rowid"))
        elif dialect == "postgresql":
            order.append(sa.literal_column("ctid"))
        else:
            hint = "FORCE INDEX (idx_eventpath_event_id)"
            statement = statement.with_hint(table, hint, "mysql").with_hint(table, hint, "mariadb")
    if section.tag in EXECUTION_ROWS:
        # Only the rows of runs that exist (rows a deletion left behind before it removed them
        # belong to no node and must not be attached to another one on import).
        execution = schema.execution.alias()
        statement = statement.where(sa.exists(sa.select(sa.literal(1)).where(execution.c.id == table.c.execution_id)))
    namespace = scope.namespace
    if namespace is not None:
        statement = statement.where(*_scope_conditions(schema, section, table, namespace, types or []))
    return statement.order_by(*order)


def _scope_conditions(
    schema: Schema, section: Section, table: sa.Table, namespace: str, types: list[int]
) -> list[sa.ColumnElement[bool]]:
    tag, c = section.tag, table.c
    if tag == "namespace":
        return [c.name == namespace]
    if tag == "node_namespace":
        return [c.namespace == namespace]
    if tag == "encryption_key":
        return []  # check values only: no secret, and the target needs them for the envelopes
    if tag == "type":
        return [c.id.in_(types)]
    if tag in ("type_property", "parent_type"):
        conditions: list[sa.ColumnElement[bool]] = [c.type_id.in_(types)]
        return conditions + ([c.parent_type_id.in_(types)] if tag == "parent_type" else [])
    if section.node is not None:
        owner = c.id if section.has_id else c[f"{section.node}_id"]
        return [_member(_NODE_NUMBER[section.node], owner, namespace)]
    if tag == "event":
        return [_member(ARTIFACT_NODE, c.artifact_id, namespace), _member(EXECUTION_NODE, c.execution_id, namespace)]
    if tag == "event_path":
        e = schema.event.alias()
        both = (
            _member(ARTIFACT_NODE, e.c.artifact_id, namespace),
            _member(EXECUTION_NODE, e.c.execution_id, namespace),
        )
        return [sa.exists(sa.select(sa.literal(1)).where(e.c.id == c.event_id, *both))]
    if tag == "attribution":
        return [_member(CONTEXT_NODE, c.context_id, namespace), _member(ARTIFACT_NODE, c.artifact_id, namespace)]
    if tag == "association":
        return [_member(CONTEXT_NODE, c.context_id, namespace), _member(EXECUTION_NODE, c.execution_id, namespace)]
    if tag == "parent_context":
        return [_member(CONTEXT_NODE, c.context_id, namespace), _member(CONTEXT_NODE, c.parent_context_id, namespace)]
    if tag in EXECUTION_ROWS:
        return [_member(EXECUTION_NODE, c.execution_id, namespace)]
    raise AssertionError(tag)


def stream_rows(connection: sa.Connection, scope: Scope) -> Iterator[tuple[Section, tuple[Any, ...]]]:
    """Every row of the scope, section by section in archive order, streamed.

    Run it inside one transaction with a stable snapshot (REPEATABLE READ on PostgreSQL and
    MySQL, a read transaction on SQLite) so that the archive is one point in time."""
    schema = schema_for(connection.dialect.name)
    present = set(sa.inspect(connection).get_table_names())
    types = _used_types(connection, schema, scope.namespace) if scope.namespace is not None else None
    for section in STORED_SECTIONS:  # a whole store or a namespace has no edges leading out of it
        if table_for(schema, section.tag).name not in present:
            continue  # LineageDB's own tables in a database not upgraded to them: nothing to export
        statement = section_statement(connection, schema, section, scope, types)
        result = connection.execute(statement, execution_options={"yield_per": FETCH_ROWS})
        yield from in_order(section, (tuple(row) for row in result))


def in_order(section: Section, rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Section, tuple[Any, ...]]]:
    """`rows` (sorted by section.order) with ties sorted by section.then, by code point."""
    if not section.then:
        for row in rows:
            yield section, row
        return
    names = section.names
    group_at = [names.index(name) for name in section.order]
    then_at = [names.index(name) for name in section.then]

    def tie_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(row[i] for i in then_at)

    group: list[tuple[Any, ...]] = []
    group_key: tuple[Any, ...] | None = None
    for row in rows:
        key = tuple(row[i] for i in group_at)
        if key != group_key and group:
            for grouped in sorted(group, key=tie_key):
                yield section, grouped
            group = []
        group_key = key
        group.append(row)
    for grouped in sorted(group, key=tie_key):
        yield section, grouped


def header_for(
    connection: sa.Connection, scope: Scope, created_ms: int, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    state = inspect_schema(connection)
    dialect = connection.dialect.name
    if dialect == "mysql" and getattr(connection.dialect, "is_mariadb", False):
        dialect = "mariadb"
    return {
        "format": FORMAT,
        "version": VERSION,
        "created_ms": created_ms,
        "source_dialect": dialect,
        "schema_revision": state.revision,
        "mlmd_schema_version": state.mlmd_version,
        "namespace": scope.namespace,
        "sections": [section.tag for section in SECTIONS],
        "lineagedb_version": lineagedb.__version__,
        **(extra or {}),
    }


Progress = Callable[[str, int], None]


def write_archive(
    connection: sa.Connection,
    out: IO[bytes],
    scope: Scope,
    created_ms: int,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the scope's archive to `out` (a binary file; compressed here). Returns (header, trailer)."""
    header = header_for(connection, scope, created_ms)
    return header, write_rows(out, header, stream_rows(connection, scope), progress)


def write_rows(
    out: IO[bytes],
    header: Mapping[str, Any],
    rows: Iterable[tuple[Section, Sequence[Any]]],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write an archive of `rows` (in archive order) to `out`, compressed. Returns the trailer."""
    tally = Tally()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as compressed:
        # Whole buffers to the compressor: one write() per line costs more than the compression.
        buffered = io.BufferedWriter(compressed, buffer_size=1 << 20)
        head = _header_line(header)
        buffered.write(head)
        for section, row in rows:
            line = encode(section, row)
            tally.add(section.tag, line)
            buffered.write(line)
            if progress is not None and tally.rows % FETCH_ROWS == 0:
                progress(section.tag, tally.rows)
        trailer = {
            "t": TRAILER,
            "counts": tally.counts,
            "sha256": tally.digests(),
            "header_sha256": hashlib.sha256(head).hexdigest(),
            "rows": tally.rows,
        }
        buffered.write((json.dumps(trailer, separators=(",", ":")) + "\n").encode("ascii"))
        buffered.flush()
        buffered.detach()
    return trailer


def tally_database(connection: sa.Connection, scope: Scope, progress: Progress | None = None) -> Tally:
    """Counts and digests of the scope as an archive written now would hold them."""
    tally = Tally()
    for section, row in stream_rows(connection, scope):
        tally.add(section.tag, encode(section, row))
        if progress is not None and tally.rows % FETCH_ROWS == 0:
            progress(section.tag, tally.rows)
    return tally


# -- reading an archive -------------------------------------------------------------------------


@dataclass
class ArchiveStats:
    """What a full read of an archive found (besides the rows)."""

    header: dict[str, Any] = field(default_factory=dict)
    trailer: dict[str, Any] = field(default_factory=dict)
    max_ids: dict[str, int] = field(default_factory=dict)


class ArchiveReader:
    """Reads an archive, checking it as it goes; the rows are trustworthy only once
    iteration has finished without an error (the trailer's counts and digests are
    compared at the end). Import therefore reads an archive twice: once to check it,
    once inside the transaction (which a change of the file in between rolls back)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.stats = ArchiveStats()

    def records(self) -> Iterator[tuple[Section, dict[str, Any]]]:
        """(section, row by column) for every row, in file order, each value checked for its kind."""
        name = str(self.path)
        for section, record, number in self._scan():
            yield section, decode(section, record, f"{name} line {number}")

    def check(self) -> ArchiveStats:
        """Read the whole archive; raises InvalidArgumentError saying what is wrong. Values
        are checked for their kinds when the rows are read for use (records())."""
        for _ in self._scan():
            pass
        return self.stats

    def _scan(self) -> Iterator[tuple[Section, dict[str, Any], int]]:
        """(section, parsed line, line number) for every row; the integrity checks."""
        name = str(self.path)
        tally = Tally()
        max_ids: dict[str, int] = {}
        position = -1
        trailer: dict[str, Any] | None = None
        try:
            with gzip.open(self.path, "rb") as compressed:
                stream = io.BufferedReader(compressed, buffer_size=1 << 20)
                head = stream.readline()
                header = self._header(head, name)
                self.stats.header = header
                for number, line in enumerate(stream, start=2):
                    if trailer is not None:
                        raise _invalid(f"{name} line {number}: rows after the trailer")
                    record = _parse(line, name, number)
                    tag = record.get("t")
                    if tag == TRAILER:
                        trailer = record
                        continue
                    section = BY_TAG.get(tag) if isinstance(tag, str) else None
                    if section is None:
                        raise _invalid(f"{name} line {number}: unknown section {tag!r}")
                    if POSITION[section.tag] != position:
                        if POSITION[section.tag] < position:
                            raise _invalid(f"{name} line {number}: {section.tag} rows after later sections")
                        position = POSITION[section.tag]
                    tally.add(section.tag, line)
                    if section.has_id:
                        row_id = record.get("id")
                        if not isinstance(row_id, int) or isinstance(row_id, bool):
                            raise _invalid(f"{name} line {number}: a {section.tag} row without its id")
                        if row_id > max_ids.get(section.tag, 0):
                            max_ids[section.tag] = row_id
                    yield section, record, number
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise _invalid(f"{name} is truncated or not gzip-compressed ({error})") from None
        except OSError as error:
            raise errors.InvalidArgumentError(f"cannot read the archive {name}: {error.strerror or error}") from None
        if trailer is None:
            raise _invalid(f"{name} ends without its trailer: it was cut short")
        self._check(trailer, tally, head, name)
        self.stats.trailer = trailer
        self.stats.max_ids = max_ids

    @staticmethod
    def _header(head: bytes, name: str) -> dict[str, Any]:
        if not head:
            raise _invalid(f"{name} is empty")
        header = _parse(head, name, 1)
        if header.get("format") != FORMAT:
            raise _invalid(f"{name} is not a LineageDB archive (no {FORMAT!r} header)")
        version = header.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise _invalid(f"{name}: the header has no format version")
        if version > VERSION:
            raise errors.FailedPreconditionError(
                f"{name} is archive format version {version}; this LineageDB reads version {VERSION} "
                "and older: upgrade LineageDB"
            )
        namespace = header.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            raise _invalid(f"{name}: the header's namespace is not a name")
        return header

    @staticmethod
    def _check(trailer: Mapping[str, Any], tally: Tally, head: bytes, name: str) -> None:
        counts, digests = trailer.get("counts"), trailer.get("sha256")
        if not isinstance(counts, dict) or not isinstance(digests, dict):
            raise _invalid(f"{name}: the trailer has no counts and digests")
        if trailer.get("header_sha256") != hashlib.sha256(head).hexdigest():
            raise _invalid(f"{name}: the header does not match the trailer's digest of it (the file was edited)")
        found = tally.digests()
        for section in SECTIONS:
            tag = section.tag
            if tag not in counts and tag not in digests and tally.counts[tag] == 0:
                continue  # a section added after the archive's format version was written
            if counts.get(tag, 0) != tally.counts[tag]:
                raise _invalid(
                    f"{name}: {tally.counts[tag]} {tag} rows, the trailer says {counts.get(tag, 0)} "
                    "(the file was cut short or edited)"
                )
            if digests.get(tag) != found[tag]:
                raise _invalid(
                    f"{name}: the {tag} rows do not match the trailer's SHA-256 digest (the file was edited)"
                )
        extra = set(counts) - set(BY_TAG)
        if extra:
            raise _invalid(f"{name}: the trailer counts unknown sections {sorted(extra)}")


_DECODER = json.JSONDecoder()


def _parse(line: bytes, name: str, number: int) -> dict[str, Any]:
    try:
        record = _DECODER.decode(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is one
        raise _invalid(f"{name} line {number} is not a JSON object (the file was cut short or edited)") from None
    if not isinstance(record, dict):
        raise _invalid(f"{name} line {number} is not a JSON object")
    return record


# -- importing ----------------------------------------------------------------------------------


@dataclass
class ImportReport:
    rows: dict[str, int] = field(default_factory=lambda: {section.tag: 0 for section in SECTIONS})
    # Per section with ids: how many rows got another id because theirs was taken.
    remapped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ID_TAGS, 0))
    reused_types: int = 0  # archive types identical to a type the target has (its id is used)
    existing_namespaces: int = 0
    existing_keys: int = 0
    rebound_envelopes: int = 0  # encrypted values re-encrypted for their node's new id

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    @property
    def total_remapped(self) -> int:
        return sum(self.remapped.values())


@dataclass
class _Type:
    id: int
    row: dict[str, Any]
    properties: dict[str, int] = field(default_factory=dict)
    parents: set[int] = field(default_factory=set)

    @property
    def key(self) -> tuple[int, str, str | None]:
        return (int(self.row["type_kind"]), self.row["name"], self.row["version"])


def _describe_key(key: tuple[Any, ...]) -> str:
    kind, name, version = key
    described = f"{_TYPE_KIND_NAMES.get(kind, 'type')} {name!r}"
    return described + (f" version {version!r}" if version is not None else "")


def _property_text(properties: Mapping[str, int]) -> str:
    def type_name(value: int) -> str:
        try:
            return str(mlmd.PropertyType.Name(value))  # type: ignore[arg-type]
        except ValueError:
            return str(value)

    return "{" + ", ".join(f"{name}: {type_name(value)}" for name, value in sorted(properties.items())) + "}"


class Importer:
    """Puts an archive's rows into a database, in one unit of work.

    Ids are kept when they are free in the target; a taken id is replaced by a new one
    above both the target's and the archive's largest, and every reference to it follows
    (only the replaced ids are remembered, so memory grows with collisions, not rows).
    A type the target already has, by (kind, name, version), is used as it is if its
    definition is identical, and refused otherwise. Nodes are added, never merged: one the
    target holds already (same type and name, or same external_id) is refused. Encrypted
    values are bound to their node's id: a node with encrypted values that gets another id
    needs the keys (`keyring`), which re-encrypt them for it under the same key id.

    An archive of chosen nodes (`partial`) may hold edges to nodes it does not hold: each
    must be named in its outside_node rows and be the same node in the target (its type,
    name, uri and external_id), or nothing is imported. Its node ids are remembered to tell
    the two apart, so memory grows with such an archive's nodes."""

    def __init__(
        self,
        uow: UnitOfWork,
        archive_max_ids: Mapping[str, int],
        keyring: Keyring | None = None,
        progress: Progress | None = None,
        partial: bool = False,
    ) -> None:
        self.uow = uow
        self.partial = partial
        # Partial archives: the (source) ids of the nodes the archive holds, and of the
        # outside nodes found identical in the target.
        self.held: dict[str, set[int]] = {kind: set() for kind in _NODE_NUMBER}
        self.outside: dict[str, set[int]] = {kind: set() for kind in _NODE_NUMBER}
        self.schema = uow.schema
        self.keyring = keyring
        self.progress = progress
        self.report = ImportReport()
        self.maps: dict[str, dict[int, int]] = {tag: {} for tag in ID_TAGS}
        self.next_id: dict[str, int] = {}
        self.target_rows: dict[str, bool] = {}
        self.present = set(sa.inspect(uow.connection).get_table_names())
        for tag in ID_TAGS:
            table = table_for(self.schema, tag)
            if table.name not in self.present:  # LineageDB's own table, not migrated: refused if used
                self.target_rows[tag] = False
                continue
            largest = uow.execute(sa.select(sa.func.max(table.c.id))).scalar()
            self.target_rows[tag] = largest is not None
            self.next_id[tag] = max(int(largest or 0), int(archive_max_ids.get(tag, 0))) + 1
        self._types: dict[str, list[dict[str, Any]]] | None = {"type": [], "type_property": [], "parent_type": []}
        self._type_names: dict[int, str] = {}
        self._batch: list[dict[str, Any]] = []
        self._section: Section | None = None

    # The caller feeds rows in archive order, then calls finish().
    def add(self, section: Section, row: dict[str, Any]) -> None:
        if section.tag in ("type", "type_property", "parent_type"):
            assert self._types is not None, "type rows after node rows"
            self._types[section.tag].append(row)
            return
        if self._types is not None and POSITION[section.tag] > POSITION["parent_type"]:
            self._flush()
            self._resolve_types()
        if section is not self._section:
            self._flush()
            self._section = section
        self._batch.append(row)
        if len(self._batch) >= BATCH_ROWS:
            self._flush()

    def finish(self) -> ImportReport:
        self._flush()
        if self._types is not None:
            self._resolve_types()
        if self.uow.dialect == "postgresql":
            self._advance_sequences()
        return self.report

    def _mapped(self, tag: str, value: int) -> int:
        return self.maps[tag].get(value, value)

    def _flush(self) -> None:
        rows, section = self._batch, self._section
        if not rows or section is None:
            return
        self._batch = []
        tag = section.tag
        if tag == OUTSIDE:
            self._check_outside(rows)
            return
        if table_for(self.schema, tag).name not in self.present:
            raise errors.FailedPreconditionError(
                f"the archive has {tag} rows and the target database lacks LineageDB's table for them; "
                "run `lineagedb db upgrade` on it first"
            )
        if tag in ("namespace", "encryption_key"):
            self._insert_missing(section, rows)
        elif section.node is not None and section.has_id:
            self._insert_nodes(section, rows)
        elif section.node is not None:
            self._insert_properties(section, rows)
        else:
            self._insert_edges(section, rows)
        if self.progress is not None:
            self.progress(tag, self.report.total)

    def _insert(self, section: Section, rows: list[dict[str, Any]]) -> None:
        try:
            bulk_insert.insert_rows(self.uow, table_for(self.schema, section.tag), rows)
        except errors.AlreadyExistsError:
            raise errors.FailedPreconditionError(
                f"the archive's {section.tag} rows collide with rows the target database already holds "
                "(a unique key); nothing was imported"
            ) from None
        self.report.rows[section.tag] += len(rows)

    def _new_ids(self, tag: str, rows: list[dict[str, Any]]) -> None:
        """Give the rows whose id is taken in the target a new one (recorded in maps)."""
        if not self.target_rows[tag]:
            return
        if tag == "mlflow_metric":
            # Ids order a run's equal (step, timestamp) values: all new, in archive order, or none.
            # Nothing refers to these ids (nor does MLflow's API show them): they are replaced in
            # place, not remembered, and not counted as remapped.
            for row in rows:
                row["id"] = self.next_id[tag]
                self.next_id[tag] += 1
            return
        table = table_for(self.schema, tag)
        ids = [row["id"] for row in rows]
        taken: set[int] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            taken.update(int(i) for i in self.uow.execute(sa.select(table.c.id).where(table.c.id.in_(chunk))).scalars())
        for row in rows:
            if row["id"] in taken:
                new = self.next_id[tag]
                self.next_id[tag] = new + 1
                self.maps[tag][row["id"]] = new
                self.report.remapped[tag] += 1

    def _insert_missing(self, section: Section, rows: list[dict[str, Any]]) -> None:
        table = table_for(self.schema, section.tag)
        key = section.names[0]
        names = [row[key] for row in rows]
        existing = set(self.uow.execute(sa.select(table.c[key]).where(table.c[key].in_(names))).scalars())
        if section.tag == "namespace":
            self.report.existing_namespaces += len(existing)
        else:
            self.report.existing_keys += len(existing)
        self._insert(section, [row for row in rows if row[key] not in existing])

    # types ---------------------------------------------------------------------------------

    def _resolve_types(self) -> None:
        buffered, self._types = self._types, None
        assert buffered is not None
        archive = self._load_archive_types(buffered)
        target = self._load_target_types()
        target_by_key = {t.key: t for t in target.values()}
        archive_keys = {type_id: t.key for type_id, t in archive.items()}
        target_keys = {type_id: t.key for type_id, t in target.items()}
        new: list[_Type] = []
        for type_id in sorted(archive):
            item = archive[type_id]
            existing = target_by_key.get(item.key)
            if existing is not None:
                differences = self._differences(item, existing, archive_keys, target_keys)
                if differences:
                    raise errors.FailedPreconditionError(
                        f"the archive's {_describe_key(item.key)} differs from the target database's "
                        f"({'; '.join(differences)}); import into a database without that type, or make "
                        "the two definitions equal first"
                    )
                if existing.id != type_id:
                    self.maps["type"][type_id] = existing.id
                    self.report.remapped["type"] += 1
                self.report.reused_types += 1
            else:
                if type_id in target:
                    self.maps["type"][type_id] = self.next_id["type"]
                    self.next_id["type"] += 1
                    self.report.remapped["type"] += 1
                new.append(item)
            self._type_names[self._mapped("type", type_id)] = item.row["name"]
        for existing in target.values():
            self._type_names.setdefault(existing.id, existing.row["name"])
        type_rows = [{**t.row, "id": self._mapped("type", t.id)} for t in new]
        property_rows = [
            {"type_id": self._mapped("type", t.id), "name": name, "data_type": data_type}
            for t in new
            for name, data_type in sorted(t.properties.items())
        ]
        parent_rows = [
            {"type_id": self._mapped("type", t.id), "parent_type_id": self._mapped("type", parent)}
            for t in new
            for parent in sorted(t.parents)
        ]
        for tag, rows in (("type", type_rows), ("type_property", property_rows), ("parent_type", parent_rows)):
            for start in range(0, len(rows), BATCH_ROWS):
                self._insert(BY_TAG[tag], rows[start : start + BATCH_ROWS])

    @staticmethod
    def _load_archive_types(buffered: Mapping[str, list[dict[str, Any]]]) -> dict[int, _Type]:
        types = {row["id"]: _Type(row["id"], row) for row in buffered["type"]}
        for row in buffered["type_property"]:
            owner = types.get(row["type_id"])
            if owner is None:
                raise _invalid(f"a property of type {row['type_id']}, which the archive does not hold")
            owner.properties[row["name"]] = row["data_type"]
        for row in buffered["parent_type"]:
            owner = types.get(row["type_id"])
            if owner is None:
                raise _invalid(f"a parent of type {row['type_id']}, which the archive does not hold")
            owner.parents.add(row["parent_type_id"])
        return types

    def _load_target_types(self) -> dict[int, _Type]:
        section = BY_TAG["type"]
        t = self.schema.type
        types: dict[int, _Type] = {}
        for row in self.uow.execute(sa.select(*(t.c[name] for name in section.names))):
            values = dict(zip(section.names, row, strict=True))
            values["type_kind"] = int(values["type_kind"])
            types[int(values["id"])] = _Type(int(values["id"]), values)
        p = self.schema.type_property
        for row in self.uow.execute(sa.select(p.c.type_id, p.c.name, p.c.data_type)):
            if int(row.type_id) in types:
                types[int(row.type_id)].properties[row.name] = row.data_type
        pt = self.schema.parent_type
        for row in self.uow.execute(sa.select(pt.c.type_id, pt.c.parent_type_id)):
            if int(row.type_id) in types:
                types[int(row.type_id)].parents.add(int(row.parent_type_id))
        return types

    @staticmethod
    def _differences(
        item: _Type,
        existing: _Type,
        archive_keys: Mapping[int, tuple[Any, ...]],
        target_keys: Mapping[int, tuple[Any, ...]],
    ) -> list[str]:
        found = []
        for name in ("description", "input_type", "output_type", "external_id"):
            if item.row[name] != existing.row[name]:
                found.append(f"{name}: archive {item.row[name]!r}, target {existing.row[name]!r}")
        if item.properties != existing.properties:
            found.append(
                f"properties: archive {_property_text(item.properties)}, target {_property_text(existing.properties)}"
            )
        archive_parents = {archive_keys.get(p, ("?", p, None)) for p in item.parents}
        target_parents = {target_keys.get(p, ("?", p, None)) for p in existing.parents}
        if archive_parents != target_parents:
            described = [
                ", ".join(sorted(_describe_key(k) for k in keys)) or "none"
                for keys in (archive_parents, target_parents)
            ]
            found.append(f"base types: archive {described[0]}, target {described[1]}")
        return found

    # nodes, properties, edges ----------------------------------------------------------------

    def _insert_nodes(self, section: Section, rows: list[dict[str, Any]]) -> None:
        kind = section.tag
        if self.partial:
            self.held[kind].update(row["id"] for row in rows)
        self._new_ids(kind, rows)
        for row in rows:
            row["id"] = self._mapped(kind, row["id"])
            row["type_id"] = self._mapped("type", row["type_id"])
        if self.target_rows[kind]:
            self._refuse_duplicates(kind, rows)
        self._insert(section, rows)

    def _refuse_duplicates(self, kind: str, rows: list[dict[str, Any]]) -> None:
        """A node the target holds already (same type and name, or external_id): say which."""
        table = table_for(self.schema, kind)
        named = [(row["type_id"], row["name"]) for row in rows if row["name"] is not None]
        external = [row["external_id"] for row in rows if row["external_id"] is not None]
        found = None
        if named:
            pair = sa.tuple_(table.c.type_id, table.c.name)
            statement = sa.select(table.c.id, table.c.type_id, table.c.name).where(pair.in_(named)).limit(1)
            found = self.uow.execute(statement).first()
        if found is not None:
            type_name = self._type_names.get(int(found.type_id), str(found.type_id))
            raise errors.FailedPreconditionError(
                f"the target database already has {kind} {found.name!r} of type {type_name!r} (id {found.id}); "
                "an import adds nodes, it does not merge them"
            )
        if external:
            statement = sa.select(table.c.id, table.c.external_id).where(table.c.external_id.in_(external)).limit(1)
            clash = self.uow.execute(statement).first()
            if clash is not None:
                raise errors.FailedPreconditionError(
                    f"the target database already has a {kind} with external_id {clash.external_id!r} "
                    f"(id {clash.id}); an import adds nodes, it does not merge them"
                )

    def _insert_properties(self, section: Section, rows: list[dict[str, Any]]) -> None:
        kind = section.node
        assert kind is not None
        owner = f"{kind}_id"
        for row in rows:
            old = row[owner]
            new = self._mapped(kind, old)
            if new != old:
                row[owner] = new
                value = row["string_value"]
                if isinstance(value, str) and value.startswith(ENVELOPE_PREFIX):
                    row["string_value"] = self._rebind(kind, old, new, row, value)
        self._insert(section, rows)

    def _rebind(self, kind: str, old: int, new: int, row: Mapping[str, Any], envelope: str) -> str:
        custom, name = bool(row["is_custom_property"]), row["name"]
        if self.keyring is None:
            raise errors.FailedPreconditionError(
                f"{kind} {old} holds encrypted values and is imported as {kind} {new} (its id is taken in the "
                "target); encrypted values are bound to their node's id, so the import needs the encryption "
                "keys (--encryption-keys-file or LINEAGEDB_ENCRYPTION_KEYS) to re-encrypt them"
            )
        try:
            key_id = parse_envelope(envelope).key_id
            plaintext = self.keyring.open(envelope, property_aad(kind, old, custom, name))
            sealed = self.keyring.seal(plaintext, property_aad(kind, new, custom, name), key_id)
        except SealError as error:
            raise errors.FailedPreconditionError(
                f"{kind} {old} property {name!r}: the encrypted value cannot be re-encrypted for its new id: {error}"
            ) from None
        self.report.rebound_envelopes += 1
        return sealed

    def _insert_edges(self, section: Section, rows: list[dict[str, Any]]) -> None:
        tag = section.tag
        if section.has_id:
            self._new_ids(tag, rows)
        references = _REFERENCES[tag]
        if self.partial:
            self._check_ends(tag, references, rows)
        for row in rows:
            if section.has_id:
                row["id"] = self._mapped(tag, row["id"])
            if tag == "node_namespace":
                kind = _NUMBER_NODE.get(row["node_kind"])
                if kind is None:
                    raise _invalid(f"node_namespace row of unknown node kind {row['node_kind']}")
                row["node_id"] = self._mapped(kind, row["node_id"])
            for column, target in references:
                row[column] = self._mapped(target, row[column])
        self._insert(section, rows)

    def _check_outside(self, rows: list[dict[str, Any]]) -> None:
        """Each node an edge of the archive leads to must be in the target as the same node."""
        if not self.partial:
            raise _invalid("outside_node rows in an archive of a whole store or namespace")
        t = self.schema.type
        for kind in _NODE_NUMBER:
            wanted = {row["node_id"]: row for row in rows if _NUMBER_NODE.get(row["node_kind"]) == kind}
            if not wanted:
                continue
            node = table_for(self.schema, kind)
            uri = node.c.uri if kind == "artifact" else sa.null()
            statement = sa.select(node.c.id, t.c.name, t.c.version, node.c.name, uri, node.c.external_id)
            statement = statement.join(t, t.c.id == node.c.type_id)
            found: dict[int, tuple[Any, ...]] = {}
            ids = sorted(wanted)
            for start in range(0, len(ids), _CHUNK):
                for stored in self.uow.execute(statement.where(node.c.id.in_(ids[start : start + _CHUNK]))):
                    found[int(stored[0])] = tuple(stored[1:])
            for node_id, row in sorted(wanted.items()):
                expected = (row["type_name"], row["type_version"], row["name"], row["uri"], row["external_id"])
                if found.get(node_id) != expected:
                    label = f"name {row['name']!r}" if row["name"] is not None else f"uri {row['uri']!r}"
                    described = f"{kind} {node_id} (type {row['type_name']!r}, {label})"
                    state = (
                        "which the target database does not hold"
                        if node_id not in found
                        else f"and the target database's {kind} {node_id} is another node"
                    )
                    raise errors.FailedPreconditionError(
                        f"the archive's edges lead to {described}, {state}: import it into the database it was "
                        "taken from, after any archive that holds that node"
                    )
                self.outside[kind].add(node_id)
        unknown = {row["node_kind"] for row in rows} - set(_NUMBER_NODE)
        if unknown:
            raise _invalid(f"outside_node rows of unknown node kinds {sorted(unknown)}")

    def _check_ends(self, tag: str, references: Sequence[tuple[str, str]], rows: list[dict[str, Any]]) -> None:
        """In a partial archive every edge end is a node it holds or a checked outside node."""
        for row in rows:
            if tag == "node_namespace":
                kind = _NUMBER_NODE.get(row["node_kind"])
                if kind is not None and row["node_id"] not in self.held[kind]:
                    raise _invalid(f"a node_namespace row for {kind} {row['node_id']}, which the archive does not hold")
                continue
            for column, kind in references:
                if kind not in self.held:
                    continue  # an event_path's event: checked with the event
                node_id = row[column]
                if node_id not in self.held[kind] and node_id not in self.outside[kind]:
                    raise _invalid(f"a {tag} row leads to {kind} {node_id}, which the archive neither holds nor names")

    def _advance_sequences(self) -> None:
        """PostgreSQL's id sequences do not move for explicit ids: put them past the largest
        id (never back: ids of deleted nodes are not handed out again)."""
        for tag in ID_TAGS:
            table = table_for(self.schema, tag)
            if table.name not in self.present:
                continue
            sequence = self.uow.execute(sa.select(sa.func.pg_get_serial_sequence(table.name, "id"))).scalar()
            largest = self.uow.execute(sa.select(sa.func.max(table.c.id))).scalar()
            if sequence is None or largest is None:
                continue
            # The name comes quoted from the catalog, ready to use in SQL (PostgreSQL's own quoting).
            state = self.uow.execute(sa.text(f"SELECT last_value, is_called FROM {sequence}")).one()
            if int(largest) > int(state.last_value) or (int(largest) == int(state.last_value) and not state.is_called):
                self.uow.execute(sa.select(sa.func.setval(sequence, int(largest), True)))


# Columns of edge rows that hold ids of other sections (remapped with them).
_REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "node_namespace": (),
    "event": (("artifact_id", "artifact"), ("execution_id", "execution")),
    "event_path": (("event_id", "event"),),
    "attribution": (("context_id", "context"), ("artifact_id", "artifact")),
    "association": (("context_id", "context"), ("execution_id", "execution")),
    "parent_context": (("context_id", "context"), ("parent_context_id", "context")),
    "mlflow_metric": (("execution_id", "execution"),),
    "mlflow_latest_metric": (("execution_id", "execution"),),
}
