"""Set-based statements for lineage traversal (spec §7).

Every function here answers a question about a whole *set* of nodes with one
statement (one per chunk of ids for very large sets), so a traversal costs a
number of statements proportional to its hop count, never to its node count (on
MariaDB, `walk_events` reads a whole walk's events in one).
The traversal rules themselves live in `lineagedb.service.lineage`.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, cast

import sqlalchemy as sa

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.query.filter_ast import NodeKind as FilterKind
from lineagedb.store import encoded_cache, fast_read, filter_query
from lineagedb.store.repositories import edges as edge_repo
from lineagedb.store.repositories import types as type_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.repositories.types import TypeRecord
from lineagedb.store.schema import Schema
from lineagedb.store.tenancy import (
    ARTIFACT_NODE,
    CONTEXT_NODE,
    EXECUTION_NODE,
    Reach,
    joins_membership,
    readable_by_join,
)
from lineagedb.store.unit_of_work import UnitOfWork


class EventRow(NamedTuple):
    """An Event row without its path; paths are loaded once, for kept events only. A
    tuple, not a dataclass: walks make one per event, and a frozen dataclass costs
    several times more to build."""

    id: int
    artifact_id: int
    execution_id: int
    type: int
    milliseconds_since_epoch: int | None


# An EventRow's fields as a plain tuple (what the driver returns; no object per row to build).
EventTuple = tuple[int, int, int, int, int | None]


class LinkRow(NamedTuple):
    """An Attribution (node = artifact) or Association (node = execution) row (a tuple,
    for the reason EventRow is one)."""

    node_id: int
    context_id: int


# `EventRow._make` is a Python function per row; `tuple.__new__(EventRow, row)` (what it
# calls) builds the same tuple in C. Walks make one per event.
_NEW_TUPLE = tuple.__new__
_EVENT_ROWS = itertools.repeat(EventRow)
_LINK_ROWS = itertools.repeat(LinkRow)


def _chunks(uow: UnitOfWork, ids: Iterable[int]) -> Iterator[list[int]]:
    """Ascending, disjoint chunks of `ids` of the unit of work's IN-list size."""
    ordered = sorted(set(ids))
    size = uow.id_chunk
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def first_matching_ids(uow: UnitOfWork, kind: NodeKind, filter_text: str, limit: int) -> list[int]:
    """Ids of readable nodes of `kind` matching `filter_text`, ascending, at most `limit`."""
    filter_query.check_sensitive(uow, kind, filter_text)
    flt = filter_query.parse(filter_text, FilterKind(kind.value))
    statement = _first_matching_statement(uow.schema, kind, flt, uow.tenancy.reach)
    parameters = {"limit": limit, **uow.tenancy.parameters, **flt.parameters}
    return [int(row[0]) for row in fast_read.rows(uow, statement, parameters)]


@functools.lru_cache(maxsize=256)
def _first_matching_statement(
    schema: Schema, kind: NodeKind, flt: filter_query.ParsedFilter, reach: Reach
) -> sa.Select[Any]:
    """Built once per filter shape: lineage clients start from filters of a few shapes
    (`id = N`, another N each time), and building the statement cost more than running it;
    each call binds its filter's values."""
    table = kind.table(schema)
    # DISTINCT keeps the LIMIT counting nodes even if a filter joins neighbours into the query.
    ids = sa.select(table.c.id).distinct()
    matching = filter_query.matching_subquery(schema, FilterKind(kind.value), flt, reach)
    # The matching subquery keeps readable nodes only (filter_query.compile_filter).
    query = ids.where(table.c.id.in_(matching))
    return query.order_by(table.c.id).limit(sa.bindparam("limit", type_=sa.Integer))


def refuse_sensitive_filter(uow: UnitOfWork, kind: NodeKind, filter_text: str) -> None:
    """INVALID_ARGUMENT now if `filter_text` names a sensitive property, even if the
    traversal never gets to evaluate it (see filter_query.check_sensitive)."""
    filter_query.check_sensitive(uow, kind, filter_text, parse_errors=False)


def ids_matching(uow: UnitOfWork, kind: NodeKind, candidates: Collection[int], filter_text: str) -> set[int]:
    """The subset of `candidates` (ids of `kind`) that match `filter_text` (readable ones only)."""
    filter_query.check_sensitive(uow, kind, filter_text)
    table = kind.table(uow.schema)
    found: set[int] = set()
    for chunk in _chunks(uow, candidates):
        query = filter_query.apply(uow, kind, sa.select(table.c.id).where(table.c.id.in_(chunk)), filter_text)
        found.update(int(i) for i in uow.execute(query, uow.tenancy.parameters).scalars())
    return found


def events_touching(
    uow: UnitOfWork,
    side: NodeKind,
    frontier: Collection[int],
    event_types: Collection[int] | None = None,
    as_of_ms: int | None = None,
) -> list[EventRow]:
    """Events whose `side` id (artifact or execution) is in `frontier`, ordered by event id.

    `frontier` holds readable nodes only (a traversal reaches nodes through readable
    starting nodes and events), so only the far end of each event is checked.
    `event_types`, when given, restricts the event types in SQL, so events a
    directed traversal would discard never leave the database. `as_of_ms` leaves out
    events recorded later (an event without a time counts as recorded with its nodes).
    """
    return list(map(_NEW_TUPLE, _EVENT_ROWS, event_tuples_touching(uow, side, frontier, event_types, as_of_ms)))


def event_tuples_touching(
    uow: UnitOfWork,
    side: NodeKind,
    frontier: Collection[int],
    event_types: Collection[int] | None = None,
    as_of_ms: int | None = None,
) -> list[EventTuple]:
    """`events_touching` as the driver's plain tuples (EventRow's fields, in its order):
    for walks over thousands of events, which read them by position."""
    statement = _events_statement(
        uow.schema,
        side,
        event_types is not None,
        uow.tenancy.reach,
        as_of_ms is not None,
        joins_membership(uow.dialect),
    )
    types = sorted(event_types) if event_types is not None else None
    visibility = uow.tenancy.parameters
    rows: list[EventTuple] = []
    for chunk in _chunks(uow, frontier):
        parameters: dict[str, object] = {"ids": chunk, **visibility}
        if types is not None:
            parameters["types"] = types
        if as_of_ms is not None:
            parameters["as_of"] = as_of_ms
        rows.extend(fast_read.rows(uow, statement, parameters))  # type: ignore[arg-type]
    if len(frontier) > uow.id_chunk:
        rows.sort(key=_first)
    return rows


_first = operator.itemgetter(0)


@functools.cache
def _events_statement(
    schema: Schema, side: NodeKind, by_type: bool, reach: Reach, as_of: bool = False, joined: bool = False
) -> sa.Select[Any]:
    """Built once per shape; expanding parameters keep it in SQLAlchemy's compiled cache
    without rebuilding the expression on every hop."""
    e = schema.event
    query = sa.select(e.c.id, e.c.artifact_id, e.c.execution_id, e.c.type, e.c.milliseconds_since_epoch).where(
        e.c[side.owner_column].in_(sa.bindparam("ids", expanding=True))
    )
    if by_type:
        query = query.where(e.c.type.in_(sa.bindparam("types", expanding=True)))
    if as_of:
        recorded = e.c.milliseconds_since_epoch
        query = query.where(sa.or_(recorded.is_(None), recorded <= sa.bindparam("as_of")))
    # A hop never crosses into a namespace the caller cannot read.
    if joined and reach is not Reach.ALL:
        far_end, far_kind = (
            ("execution_id", EXECUTION_NODE) if side is NodeKind.ARTIFACT else ("artifact_id", ARTIFACT_NODE)
        )
        return readable_by_join(query, e, far_end, far_kind).order_by(e.c.id)
    return query.where(*edge_repo.event_visible(e, reach, readable_end=side.owner_column)).order_by(e.c.id)


def walk_events(
    uow: UnitOfWork,
    start_kind: NodeKind,
    starting: Collection[int],
    hops: int,
    kept_from: Mapping[NodeKind, Collection[int] | None],
) -> list[EventRow] | None:
    """Every event between two of the nodes that a walk of `hops` hops from `starting` (nodes
    of `start_kind`, readable) reaches, ordered by id: one statement for the whole walk, which
    the caller then replays in memory. An event is followed from a node of kind K only if its
    type is in `kept_from[K]` (None: any type), and never into a node the caller cannot read.
    None where the database cannot walk in one statement; the caller then asks
    `events_touching` hop by hop.

    MariaDB only: a recursive WITH whose UNION keeps each (kind, id) once is a breadth-first
    walk with a visited set (a node reached again is not expanded again), and
    `max_recursive_iterations` stops it after `hops` levels (with a warning, no error). Each
    hop as a statement of its own cost a round trip and, with namespaces, a join's fixed cost
    on every one (a 10-hop walk: 13 statements). PostgreSQL and SQLite have no such bound on
    the iterations (a depth column would make each node a row per depth): they walk by hops."""
    if not getattr(uow.connection.dialect, "is_mariadb", False) or hops < 1 or not starting:
        return None
    directed = kept_from[NodeKind.ARTIFACT] is not None
    statement = _walk_statement(uow.schema, start_kind, directed, uow.tenancy.reach)
    parameters: dict[str, object] = {"starting": sorted(starting), **uow.tenancy.parameters}
    if directed:
        parameters["from_artifacts"] = sorted(kept_from[NodeKind.ARTIFACT] or ())
        parameters["from_executions"] = sorted(kept_from[NodeKind.EXECUTION] or ())
    # The hop count is this server's own integer (the request's, validated and capped), written
    # with `:d`: SET STATEMENT takes a constant, not a placeholder.
    prefix = f"SET STATEMENT max_recursive_iterations = {hops:d} FOR "
    rows = fast_read.rows(uow, statement, parameters, prefix=prefix)
    return list(map(_NEW_TUPLE, _EVENT_ROWS, rows))


@functools.cache
def _walk_statement(schema: Schema, start_kind: NodeKind, directed: bool, reach: Reach) -> sa.Select[Any]:
    e = schema.event
    start = start_kind.table(schema)
    start_number = ARTIFACT_NODE if start_kind is NodeKind.ARTIFACT else EXECUTION_NODE
    seed = sa.select(sa.literal_column(str(start_number), sa.Integer).label("kind"), start.c.id.label("id")).where(
        start.c.id.in_(sa.bindparam("starting", expanding=True))
    )
    walk = seed.cte("lineage_walk", recursive=True)
    steps = []
    for near_number, near, far, far_number, types in (
        (ARTIFACT_NODE, "artifact_id", "execution_id", EXECUTION_NODE, "from_artifacts"),
        (EXECUTION_NODE, "execution_id", "artifact_id", ARTIFACT_NODE, "from_executions"),
    ):
        reached = walk.alias(f"reached_from_{near}")
        step = (
            sa.select(sa.literal_column(str(far_number), sa.Integer), e.c[far])
            .select_from(reached.join(e, e.c[near] == reached.c.id))
            .where(reached.c.kind == sa.literal_column(str(near_number), sa.Integer))
        )
        if directed:
            step = step.where(e.c.type.in_(sa.bindparam(types, expanding=True)))
        # A step never enters a node the caller cannot read.
        if reach is not Reach.ALL:
            step = readable_by_join(step, e, far, far_number)
        steps.append(step)
    walk = walk.union(*steps)
    # From the walk's artifacts to their events by Event's (artifact_id, ...) key, each kept if
    # its execution was reached too (a semi-join MariaDB materializes with a unique key). The
    # walk is estimated at 2 rows, so it drives; joined twice (artifacts x executions) it made a
    # 1,500-node walk a block nested loop over every pair: 287 ms, against 8 ms this way.
    artifacts, executions = walk.alias("walked_artifact"), walk.alias("walked_execution")
    reached_executions = sa.select(executions.c.id).where(
        executions.c.kind == sa.literal_column(str(EXECUTION_NODE), sa.Integer)
    )
    columns = (e.c.id, e.c.artifact_id, e.c.execution_id, e.c.type, e.c.milliseconds_since_epoch)
    return (
        sa.select(*columns)
        .select_from(artifacts.join(e, e.c.artifact_id == artifacts.c.id))
        .where(
            artifacts.c.kind == sa.literal_column(str(ARTIFACT_NODE), sa.Integer),
            e.c.execution_id.in_(reached_executions),
        )
        .order_by(e.c.id)
    )


@functools.cache
def _links_statement(table: sa.Table, owner_column: str, reach: Reach, joined: bool = False) -> sa.Select[Any]:
    owner, context = table.c[owner_column], table.c.context_id
    query = sa.select(owner, context).where(owner.in_(sa.bindparam("ids", expanding=True)))
    # The owners are nodes of the traversal's result, readable already: only contexts are checked.
    if joined and reach is not Reach.ALL:
        return readable_by_join(query, table, "context_id", CONTEXT_NODE).order_by(owner, context)
    return query.where(*edge_repo.link_visible(table, reach, readable_end=owner_column)).order_by(owner, context)


def created_by(uow: UnitOfWork, kind: NodeKind, ids: Collection[int], as_of_ms: int) -> set[int]:
    """Those of `ids` (readable nodes) created at or before `as_of_ms`."""
    statement = _created_statement(uow.schema, kind)
    found: set[int] = set()
    for chunk in _chunks(uow, ids):
        found.update(int(row[0]) for row in fast_read.rows(uow, statement, {"ids": chunk, "as_of": as_of_ms}))
    return found


@functools.cache
def _created_statement(schema: Schema, kind: NodeKind) -> sa.Select[Any]:
    table = kind.table(schema)
    return sa.select(table.c.id).where(
        table.c.id.in_(sa.bindparam("ids", expanding=True)),
        table.c.create_time_since_epoch <= sa.bindparam("as_of"),
    )


def context_members(uow: UnitOfWork, context_ids: Collection[int]) -> tuple[set[int], set[int]]:
    """The readable artifacts and executions attributed or associated to the given
    (readable) contexts: (artifact ids, execution ids). Two statements per chunk."""
    found: list[set[int]] = []
    for table, owner_column in ((uow.schema.attribution, "artifact_id"), (uow.schema.association, "execution_id")):
        statement = _members_statement(table, owner_column, uow.tenancy.reach, joins_membership(uow.dialect))
        ids: set[int] = set()
        for chunk in _chunks(uow, context_ids):
            ids.update(int(row[0]) for row in fast_read.rows(uow, statement, {"ids": chunk, **uow.tenancy.parameters}))
        found.append(ids)
    return found[0], found[1]


@functools.cache
def _members_statement(table: sa.Table, owner_column: str, reach: Reach, joined: bool = False) -> sa.Select[Any]:
    query = sa.select(table.c[owner_column]).where(table.c.context_id.in_(sa.bindparam("ids", expanding=True)))
    if joined and reach is not Reach.ALL:
        kind = ARTIFACT_NODE if owner_column == "artifact_id" else EXECUTION_NODE
        return readable_by_join(query, table, owner_column, kind)
    return query.where(*edge_repo.link_visible(table, reach, readable_end="context_id"))


def to_events(uow: UnitOfWork, rows: Sequence[EventTuple], into: Any | None = None) -> list[mlmd.Event]:
    """Full events (with paths) for `rows`, in the order given; one path query per chunk.
    Appended to `into` (a repeated field of a response, or an encoded_cache.Field: see
    nodes.hydrate) when given.

    Events never change, so each is encoded from its row and path rows straight into the
    bytes protobuf would serialize (`_encoded_events`), kept from its first read (with an
    equal row, at least encoded_cache.SETTLED_MS old), and parsed from them: no message is
    built per event from Python, and a kept event's path rows are not read again. (Built as
    messages, a 10,000-node Provenance's 16,600 events cost 52 ms on its first call, and as
    much again, plus serializing, on its second.)"""
    if not rows:
        return []
    cache = encoded_cache.for_engine(uow.connection.engine, "event")
    entries = cache.entries
    encodings: list[bytes | None] = []
    missing: list[int] = []
    for row in rows:
        entry = entries.get(row[0])
        if entry is not None and entry[0] == row and entry[1] is not None:
            encodings.append(entry[1])
        else:
            missing.append(len(encodings))
            encodings.append(None)
    if missing:
        wanted = [rows[index] for index in missing]
        settled = encoded_cache.settled_before()
        keep: list[tuple[int, tuple[tuple[Any, ...], bytes | None]]] = []
        for index, row, data in zip(missing, wanted, _encoded_events(uow, wanted), strict=True):
            encodings[index] = data
            time_ms = row[4]
            if time_ms is not None and time_ms <= settled:
                keep.append((row[0], (row, data)))
        cache.put_many(keep)
    return encoded_cache.parsed(mlmd.Event, cast(list[bytes], encodings), into)


# Event fields (metadata_store.proto): artifact_id 1, execution_id 2, path 3, type 4,
# milliseconds_since_epoch 5, each as its tag byte; Path.steps 1; Step.index 1, Step.key 2.
_ARTIFACT_ID, _EXECUTION_ID, _PATH, _TIME = b"\x08", b"\x10", b"\x1a", b"\x28"
_STEPS, _STEP_INDEX, _STEP_KEY = b"\x0a", b"\x08", b"\x12"
_INT64_MASK = (1 << 64) - 1
# The one-byte varints, 0-127.
ONE_BYTE = [bytes([n]) for n in range(128)]


def varint(value: int) -> bytes:
    """The varint of an int64 (negative ones as their 64-bit two's complement, as protobuf
    writes int64 and enum fields): encoded_cache.varint without its loop for the values a
    first answer encodes tens of thousands of: ids (up to four bytes, below 2**28) and times
    in milliseconds (six bytes, 2**35 to 2**42: 1971 to 2109)."""
    if value < 0:
        return encoded_cache.varint(value & _INT64_MASK)
    if value < 0x80:
        return ONE_BYTE[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    if value < 0x200000:
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14))
    if value < 0x10000000:
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14 & 0x7F | 0x80, value >> 21))
    if 0x800000000 <= value < 0x40000000000:
        return bytes(
            (
                value & 0x7F | 0x80,
                value >> 7 & 0x7F | 0x80,
                value >> 14 & 0x7F | 0x80,
                value >> 21 & 0x7F | 0x80,
                value >> 28 & 0x7F | 0x80,
                value >> 35,
            )
        )
    return encoded_cache.varint(value)


# Event.type's tag and value, by type (the eight of metadata_store.proto; others computed).
_TYPES = {number: b"\x20" + varint(number) for number in range(8)}


def _encoded_events(uow: UnitOfWork, rows: Sequence[EventTuple]) -> list[bytes]:
    """The `encoded_cache.delimited` encodings of the events of `rows` with their paths, as
    serializing the messages edges.rows_to_events builds gives them (fields in number order;
    artifact, execution and type always present, the time when not NULL, the path when it
    has steps, each step's index or key even when 0 or empty)."""
    paths = _encoded_paths(uow, [row[0] for row in rows])
    types = _TYPES
    one_byte = ONE_BYTE
    out = []
    for event_id, artifact_id, execution_id, event_type, time_ms in rows:
        data = _ARTIFACT_ID + varint(artifact_id) + _EXECUTION_ID + varint(execution_id)
        path = paths.get(event_id)
        if path is not None:
            data += _PATH + (one_byte[len(path)] if len(path) < 0x80 else varint(len(path))) + path
        data += types.get(event_type) or b"\x20" + varint(event_type)
        if time_ms is not None:
            data += _TIME + varint(time_ms)
        out.append((one_byte[len(data)] if len(data) < 0x80 else varint(len(data))) + data)
    return out


def _encoded_paths(uow: UnitOfWork, event_ids: list[int]) -> dict[int, bytes]:
    """Event id -> its Path's encoding (its steps in the order the rows come, as
    edges.rows_to_events adds them), for the events that have steps."""
    # The statement edges.rows_to_events reads paths with: the same steps in the same order.
    statement = edge_repo._paths_statement(uow.schema, uow.dialect)
    steps: dict[int, list[bytes]] = {}
    known = _STEP_ENCODINGS
    if len(known) > _MAX_STEP_ENCODINGS:
        known.clear()
    for chunk in _chunks(uow, event_ids):
        for event_id, is_index_step, step_index, step_key in fast_read.rows(uow, statement, {"ids": chunk}):
            key = (True, step_index) if is_index_step else (False, step_key)
            step = known.get(key)
            if step is None:
                step = known[key] = _encoded_step(is_index_step, step_index, step_key)
            found = steps.get(event_id)
            if found is None:
                steps[event_id] = [step]
            else:
                found.append(step)
    return {event_id: b"".join(parts) for event_id, parts in steps.items()}


def _encoded_step(is_index_step: Any, step_index: int | None, step_key: str | None) -> bytes:
    """A Path.steps entry: its tag, length and Step (what `steps.add(index=...)` or
    `steps.add(key=...)` makes; a NULL index leaves the step empty, a NULL key is "")."""
    if is_index_step:
        body = b"" if step_index is None else _STEP_INDEX + varint(step_index)
    else:
        text = (step_key if step_key is not None else "").encode()
        body = _STEP_KEY + varint(len(text)) + text
    return _STEPS + varint(len(body)) + body


# Step encodings by (is index, value): paths repeat a few keys and small indexes.
_STEP_ENCODINGS: dict[tuple[bool, Any], bytes] = {}
_MAX_STEP_ENCODINGS = 10_000


def attributions(uow: UnitOfWork, artifact_ids: Collection[int]) -> list[LinkRow]:
    """Attribution rows of the given (readable) artifacts, ordered by (artifact_id, context_id)."""
    return _links(uow, uow.schema.attribution, "artifact_id", artifact_ids)


def associations(uow: UnitOfWork, execution_ids: Collection[int]) -> list[LinkRow]:
    """Association rows of the given (readable) executions, ordered by (execution_id, context_id)."""
    return _links(uow, uow.schema.association, "execution_id", execution_ids)


def attribution_pairs(uow: UnitOfWork, artifact_ids: Collection[int]) -> list[tuple[int, int]]:
    """`attributions` as the driver's plain (artifact_id, context_id) tuples."""
    return _link_tuples(uow, uow.schema.attribution, "artifact_id", artifact_ids)


def association_pairs(uow: UnitOfWork, execution_ids: Collection[int]) -> list[tuple[int, int]]:
    """`associations` as the driver's plain (execution_id, context_id) tuples."""
    return _link_tuples(uow, uow.schema.association, "execution_id", execution_ids)


def links(
    uow: UnitOfWork, artifact_ids: Collection[int], execution_ids: Collection[int]
) -> tuple[list[LinkRow], list[LinkRow]]:
    """`attributions` of `artifact_ids` and `associations` of `execution_ids` (readable nodes),
    in one statement when each set fits one chunk: a lineage answer's links in one round trip
    instead of two, and on MySQL/MariaDB one namespace join for both (each join is a fixed
    ~30 us of server time there, whatever the rows)."""
    size = uow.id_chunk
    if not artifact_ids or not execution_ids or len(artifact_ids) > size or len(execution_ids) > size:
        return attributions(uow, artifact_ids), associations(uow, execution_ids)
    statement = _both_links_statement(uow.schema, uow.tenancy.reach, joins_membership(uow.dialect))
    parameters = {"artifact_ids": sorted(artifact_ids), "execution_ids": sorted(execution_ids)}
    attributed: list[LinkRow] = []
    associated: list[LinkRow] = []
    for side, node_id, context_id in fast_read.rows(uow, statement, {**parameters, **uow.tenancy.parameters}):
        (attributed if side == _ATTRIBUTION_SIDE else associated).append(LinkRow(node_id, context_id))
    return attributed, associated


_ATTRIBUTION_SIDE, _ASSOCIATION_SIDE = 1, 0


@functools.cache
def _both_links_statement(schema: Schema, reach: Reach, joined: bool) -> sa.Select[Any] | sa.CompoundSelect:
    """(side, node id, context id) of the attributions of `artifact_ids` (side 1) and the
    associations of `execution_ids` (side 0), each side ordered as `_links_statement` orders it.
    The owners are readable already: only the contexts are checked, on MySQL/MariaDB by one
    outer join to the membership key around both sides (`readable_by_join`)."""
    sides = []
    for table, owner_column, side, ids in (
        (schema.attribution, "artifact_id", _ATTRIBUTION_SIDE, "artifact_ids"),
        (schema.association, "execution_id", _ASSOCIATION_SIDE, "execution_ids"),
    ):
        owner = table.c[owner_column]
        query = sa.select(
            sa.literal_column(str(side), sa.Integer).label("side"), owner.label("node_id"), table.c.context_id
        ).where(owner.in_(sa.bindparam(ids, expanding=True)))
        if not joined:
            query = query.where(*edge_repo.link_visible(table, reach, readable_end=owner_column))
        sides.append(query)
    both = sa.union_all(*sides)
    if not joined or reach is Reach.ALL:
        return both.order_by(
            sa.literal_column("side").desc(), sa.literal_column("node_id"), sa.literal_column("context_id")
        )
    found = both.subquery("links")
    query = readable_by_join(
        sa.select(found.c.side, found.c.node_id, found.c.context_id), found, "context_id", CONTEXT_NODE
    )
    return query.order_by(found.c.side.desc(), found.c.node_id, found.c.context_id)


def _links(uow: UnitOfWork, table: sa.Table, owner_column: str, ids: Collection[int]) -> list[LinkRow]:
    return list(map(_NEW_TUPLE, _LINK_ROWS, _link_tuples(uow, table, owner_column, ids)))


def _link_tuples(uow: UnitOfWork, table: sa.Table, owner_column: str, ids: Collection[int]) -> list[tuple[int, int]]:
    statement = _links_statement(table, owner_column, uow.tenancy.reach, joins_membership(uow.dialect))
    visibility = uow.tenancy.parameters
    rows: list[tuple[int, int]] = []
    for chunk in _chunks(uow, ids):
        rows.extend(fast_read.rows(uow, statement, {"ids": chunk, **visibility}))  # type: ignore[arg-type]
    return rows  # chunks are ascending and disjoint, so the concatenation stays ordered


def context_ids_of(uow: UnitOfWork, artifact_ids: Collection[int], execution_ids: Collection[int]) -> set[int]:
    """The readable contexts the given (readable) artifacts are attributed to or executions
    associated with: what the links give without building a row per link (one DISTINCT
    statement per chunk of ids and table)."""
    found: set[int] = set()
    visibility = uow.tenancy.parameters
    for table, owner_column, ids in (
        (uow.schema.attribution, "artifact_id", artifact_ids),
        (uow.schema.association, "execution_id", execution_ids),
    ):
        statement = _link_contexts_statement(table, owner_column, uow.tenancy.reach, joins_membership(uow.dialect))
        for chunk in _chunks(uow, ids):
            found.update(row[0] for row in fast_read.rows(uow, statement, {"ids": chunk, **visibility}))
    return found


@functools.cache
def _link_contexts_statement(table: sa.Table, owner_column: str, reach: Reach, joined: bool = False) -> sa.Select[Any]:
    owner, context = table.c[owner_column], table.c.context_id
    query = sa.select(context).distinct().where(owner.in_(sa.bindparam("ids", expanding=True)))
    # The owners are readable already (see _links_statement): only contexts are checked.
    if joined and reach is not Reach.ALL:
        return readable_by_join(query, table, "context_id", CONTEXT_NODE)
    return query.where(*edge_repo.link_visible(table, reach, readable_end=owner_column))


def all_types(uow: UnitOfWork) -> list[TypeRecord]:
    """Every type of every kind, system types included, ordered by id (one statement)."""
    return type_repo.all_types_from_rows(uow.schema, type_repo.all_type_rows(uow))
