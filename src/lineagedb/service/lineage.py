"""Lineage traversal: GetLineageSubgraph (spec §7.1) and the deprecated GetLineageGraph (§7.3).

Both traversals are breadth-first and set-based: each hop expands the whole
frontier with one events statement (one per chunk of ids for huge frontiers) and
at most one filter statement, so a request costs O(hops) statements however many
nodes it reaches. On MariaDB a GetLineageSubgraph without ending rules reads every
event its walk can meet in one statement (a recursive WITH) and the same hop loop
runs over them in memory. Rules that decide *which* nodes and events are kept live
here; the statements live in `lineagedb.store.repositories.lineage`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service import types as type_rules
from lineagedb.store import pagination
from lineagedb.store.bootstrap import SYSTEM_TYPE_NAMES
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.repositories import listing
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories import types as type_repo
from lineagedb.store.repositories.lineage import EventRow
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.repositories.types import TypeRecord
from lineagedb.store.schema import ARTIFACT_KIND, CONTEXT_KIND, EXECUTION_KIND, Schema
from lineagedb.store.unit_of_work import UnitOfWork

Options = mlmd.LineageSubgraphQueryOptions
Direction = mlmd.LineageSubgraphQueryOptions.Direction

# The ten LineageGraph fields a read_mask may name (§7.2), in field-number order.
GRAPH_FIELDS: tuple[str, ...] = tuple(
    f.name for f in sorted(mlmd.LineageGraph.DESCRIPTOR.fields, key=lambda f: f.number)
)

MAX_NUM_HOPS = 100
# MLMD reads the starting set through its list path, which never fetches more
# than 101 rows (§5.2); 150 matching nodes therefore start 101 (probed).
MAX_STARTING_NODES = pagination.MAX_FETCH

INPUT_LIKE = frozenset({mlmd.Event.DECLARED_INPUT, mlmd.Event.INPUT, mlmd.Event.INTERNAL_INPUT})
OUTPUT_LIKE = frozenset(
    {mlmd.Event.DECLARED_OUTPUT, mlmd.Event.OUTPUT, mlmd.Event.INTERNAL_OUTPUT, mlmd.Event.PENDING_OUTPUT}
)

# Pre-1.15 library limits of the deprecated GetLineageGraph (§7.3).
LEGACY_MAX_NUM_HOPS = 20

ARTIFACT, EXECUTION = NodeKind.ARTIFACT, NodeKind.EXECUTION


# -- GetLineageSubgraph ------------------------------------------------------------------------


@dataclass(frozen=True)
class SubgraphQuery:
    """A validated GetLineageSubgraph request."""

    start_kind: NodeKind
    start_filter: str
    max_num_hops: int
    direction: int
    # Per node kind: the ending filter (None = no ending rule) and include_ending_nodes.
    ending_filters: dict[NodeKind, str | None]
    include_ending: dict[NodeKind, bool]
    fields: frozenset[str]


@dataclass
class _Side:
    """Traversal state of one node kind: visited ids and ending ids."""

    kind: NodeKind
    ending_filter: str | None
    include_ending: bool
    visited: set[int] = field(default_factory=set)
    ending: set[int] = field(default_factory=set)

    def split_ending(self, uow: UnitOfWork, ids: set[int]) -> set[int]:
        """The ids among `ids` that are ending nodes (matching this kind's ending filter)."""
        if self.ending_filter is None or not ids:
            return set()
        if self.ending_filter == "":
            # A present-but-empty filter has no predicate, so it matches every node (§7.1).
            return set(ids)
        return lineage_repo.ids_matching(uow, self.kind, ids, self.ending_filter)

    def result_ids(self) -> list[int]:
        return sorted(self.visited | self.ending if self.include_ending else self.visited)


@dataclass
class Traversal:
    artifact_ids: list[int]
    execution_ids: list[int]
    events: list[EventRow]


def parse_subgraph_query(options: Options, mask_paths: Iterable[str]) -> SubgraphQuery:
    """Validate a request in MLMD's order (§7.1 steps 1-4); no statement runs here."""
    # 1. An empty mask means every field; unknown and nested paths are ignored.
    paths = list(mask_paths)
    fields = frozenset(GRAPH_FIELDS) if not paths else frozenset(p for p in paths if p in GRAPH_FIELDS)
    # 2. A starting side is required.
    which = options.WhichOneof("starting_nodes")
    if which is None:
        raise errors.InvalidArgumentError(
            "lineage_subgraph_query_options must set starting_artifacts or starting_executions"
        )
    start_kind = ARTIFACT if which == "starting_artifacts" else EXECUTION
    # 3. ... with a non-empty filter.
    start_filter = getattr(options, which).filter_query
    if not start_filter:
        raise errors.InvalidArgumentError(f"{which}.filter_query must not be empty")
    # 4. Hops: unset means the cap; negative is an error; larger values are clamped.
    hops = options.max_num_hops if options.HasField("max_num_hops") else MAX_NUM_HOPS
    if hops < 0:
        raise errors.InvalidArgumentError(f"max_num_hops must not be negative, got {hops}")
    ending = {ARTIFACT: options.ending_artifacts, EXECUTION: options.ending_executions}
    return SubgraphQuery(
        start_kind=start_kind,
        start_filter=start_filter,
        max_num_hops=min(hops, MAX_NUM_HOPS),
        direction=options.direction,
        # Presence of filter_query, not its content, switches the ending rule on (an unset
        # ending_* message reads as a default one, whose filter_query is absent).
        ending_filters={
            kind: ending[kind].filter_query if ending[kind].HasField("filter_query") else None
            for kind in (ARTIFACT, EXECUTION)
        },
        include_ending={kind: ending[kind].include_ending_nodes for kind in (ARTIFACT, EXECUTION)},
        fields=fields,
    )


def kept_event_types(direction: int, from_artifacts: bool) -> frozenset[int] | None:
    """Event types a hop keeps, relative to the side it expands from (§7.1 step 2); None = all."""
    if direction == Options.UPSTREAM:
        return OUTPUT_LIKE if from_artifacts else INPUT_LIKE
    if direction == Options.DOWNSTREAM:
        return INPUT_LIKE if from_artifacts else OUTPUT_LIKE
    return None


def traverse(uow: UnitOfWork, query: SubgraphQuery) -> Traversal:
    """Run the hop loop of §7.1 and return the result node ids and kept events."""
    for kind, ending_filter in query.ending_filters.items():
        if ending_filter:
            lineage_repo.refuse_sensitive_filter(uow, kind, ending_filter)
    starting = lineage_repo.first_matching_ids(uow, query.start_kind, query.start_filter, MAX_STARTING_NODES)
    if not starting:
        raise errors.NotFoundError(f"no {query.start_kind.label} matches the starting filter_query")
    sides = {
        kind: _Side(kind, query.ending_filters[kind], query.include_ending[kind]) for kind in (ARTIFACT, EXECUTION)
    }
    first = sides[query.start_kind]
    first.visited = set(starting)
    # Starting nodes that are also ending nodes are kept aside and never expanded.
    first.ending = first.split_ending(uow, first.visited)
    first.visited -= first.ending
    frontier = set(first.visited)
    directed = query.direction in (Options.UPSTREAM, Options.DOWNSTREAM)
    events_touching = _events_source(uow, query, frontier)
    events: list[EventRow] = []
    for hop in range(query.max_num_hops):
        if not frontier:
            break
        from_artifacts = (query.start_kind is ARTIFACT) == (hop % 2 == 0)
        source, target = (sides[ARTIFACT], sides[EXECUTION]) if from_artifacts else (sides[EXECUTION], sides[ARTIFACT])
        # Direction filtering happens in SQL: the rules drop the other events anyway.
        rows = events_touching(source.kind, frontier, kept_event_types(query.direction, from_artifacts))
        if not rows:
            break

        def other_end(row: EventRow, from_artifacts: bool = from_artifacts) -> int:
            return row.execution_id if from_artifacts else row.artifact_id

        candidates = {other_end(row) for row in rows} - target.visited - target.ending
        newly_ending = target.split_ending(uow, candidates)
        target.ending |= newly_ending
        candidates -= newly_ending
        for row in rows:
            reached = other_end(row)
            if reached in candidates:
                events.append(row)
            elif reached in target.ending:
                if target.include_ending:
                    events.append(row)
            elif directed:
                # An edge back into an earlier hop. A directed traversal sees each edge from one
                # side only (the type filters are complementary), so keeping it cannot duplicate;
                # a bidirectional one already collected it from the other side.
                events.append(row)
        target.visited |= candidates
        frontier = candidates
    return Traversal(sides[ARTIFACT].result_ids(), sides[EXECUTION].result_ids(), events)


EventsTouching = Callable[[NodeKind, Collection[int], Collection[int] | None], list[EventRow]]


def _events_source(uow: UnitOfWork, query: SubgraphQuery, starting: set[int]) -> EventsTouching:
    """Where the hop loop reads each hop's events. Where the database can walk in one
    statement (lineage_repo.walk_events) it reads every event the walk can meet at once, and
    the hops are replayed in memory by the same loop, so the rules stay in one place. An
    ending rule decides per node with a filter of its own, hop by hop: such walks, and
    databases that cannot, ask the store at each hop."""
    if all(ending is None for ending in query.ending_filters.values()):
        kept_from = {
            ARTIFACT: kept_event_types(query.direction, from_artifacts=True),
            EXECUTION: kept_event_types(query.direction, from_artifacts=False),
        }
        walked = lineage_repo.walk_events(uow, query.start_kind, starting, query.max_num_hops, kept_from)
        if walked is not None:
            return _WalkedEvents(walked).touching
    return functools.partial(lineage_repo.events_touching, uow)


class _WalkedEvents:
    """Events read for a whole walk, indexed by each end, answering as events_touching would."""

    def __init__(self, rows: list[EventRow]) -> None:
        self.by_end: dict[NodeKind, dict[int, list[EventRow]]] = {ARTIFACT: {}, EXECUTION: {}}
        by_artifact, by_execution = self.by_end[ARTIFACT], self.by_end[EXECUTION]
        for row in rows:
            by_artifact.setdefault(row.artifact_id, []).append(row)
            by_execution.setdefault(row.execution_id, []).append(row)

    def touching(self, side: NodeKind, frontier: Collection[int], types: Collection[int] | None) -> list[EventRow]:
        index = self.by_end[side]
        found = [row for node in frontier for row in index.get(node, ()) if types is None or row.type in types]
        found.sort(key=_event_id)  # as the store orders them
        return found


def _event_id(row: EventRow) -> int:
    return row.id


def get_lineage_subgraph(uow: UnitOfWork, options: Options, mask_paths: Iterable[str]) -> mlmd.LineageGraph:
    """GetLineageSubgraph (§7.1): the traversal, then the masked parts of the response."""
    query = parse_subgraph_query(options, mask_paths)
    found = traverse(uow, query)
    return assemble(uow, found, query.fields)


def assemble(uow: UnitOfWork, found: Traversal, fields: Collection[str]) -> mlmd.LineageGraph:
    """Build the LineageGraph, reading only what the mask asks for."""
    graph = mlmd.LineageGraph()
    type_fields = frozenset(_TYPE_FIELDS) & frozenset(fields)
    if type_fields:
        # Every answer carries every type: read their rows (one statement) and reuse the
        # messages built from equal rows (types change rarely, answers are frequent).
        graph.MergeFrom(_types_part(uow.schema, type_repo.all_type_rows(uow), type_fields))
    if "artifacts" in fields:
        add_artifact = graph.artifacts.add
        for artifact_id in found.artifact_ids:
            add_artifact(id=artifact_id)
    if "executions" in fields:
        add_execution = graph.executions.add
        for execution_id in found.execution_ids:
            add_execution(id=execution_id)
    if "events" in fields:
        lineage_repo.to_events(uow, found.events, into=graph.events)
    wanted = set(fields)
    artifact_ids = found.artifact_ids if {"attributions", "contexts"} & wanted else []
    execution_ids = found.execution_ids if {"associations", "contexts"} & wanted else []
    attributions, associations = lineage_repo.links(uow, artifact_ids, execution_ids)
    if "contexts" in fields:
        context_ids = sorted({link.context_id for link in attributions} | {link.context_id for link in associations})
        graph.contexts.extend(mlmd.Context(id=i) for i in context_ids)
    if "attributions" in fields:
        graph.attributions.extend(
            mlmd.Attribution(artifact_id=link.node_id, context_id=link.context_id) for link in attributions
        )
    if "associations" in fields:
        graph.associations.extend(
            mlmd.Association(execution_id=link.node_id, context_id=link.context_id) for link in associations
        )
    # parent_contexts is never populated by MLMD (§7.1), whatever the mask says.
    return graph


_TYPE_FIELDS = {"artifact_types": ARTIFACT_KIND, "execution_types": EXECUTION_KIND, "context_types": CONTEXT_KIND}


@functools.lru_cache(maxsize=8)
def _types_part(schema: Schema, rows: tuple[tuple[Any, ...], ...], names: frozenset[str]) -> mlmd.LineageGraph:
    """A LineageGraph holding only the types named (`names`), as of the type rows `rows`.
    Callers merge it into their answer and never change it."""
    by_kind = _types_by_kind(type_repo.all_types_from_rows(schema, rows))
    part = mlmd.LineageGraph()
    for name, kind in _TYPE_FIELDS.items():
        if name in names:
            getattr(part, name).extend(type_rules.to_message(r, type_rules.LINEAGE) for r in by_kind[kind])
    return part


def _types_by_kind(records: Iterable[TypeRecord]) -> dict[int, list[TypeRecord]]:
    by_kind: dict[int, list[TypeRecord]] = {ARTIFACT_KIND: [], EXECUTION_KIND: [], CONTEXT_KIND: []}
    for record in records:
        by_kind[record.kind].append(record)
    return by_kind


# -- GetLineageGraph (deprecated) -------------------------------------------------------------
#
# Extension: MLMD's server answers UNIMPLEMENTED (§1.6). We serve the pre-1.15 library
# semantics (§7.3) instead, a superset no MLMD client can rely on being absent. Where MLMD
# dropped "arbitrary" nodes beyond the node quota, we keep the lowest ids, so results are
# reproducible.


def get_lineage_graph(uow: UnitOfWork, options: mlmd.LineageGraphQueryOptions) -> mlmd.LineageGraph:
    """The deprecated GetLineageGraph with the pre-1.15 library semantics (§7.3)."""
    if not options.HasField("artifacts_options"):
        raise errors.InvalidArgumentError("options.artifacts_options must be set")
    stop = options.stop_conditions
    hops = stop.max_num_hops if stop.HasField("max_num_hops") else LEGACY_MAX_NUM_HOPS
    if hops < 0:
        raise errors.InvalidArgumentError(f"stop_conditions.max_num_hops must not be negative, got {hops}")
    hops = min(hops, LEGACY_MAX_NUM_HOPS)
    query_artifacts, _ = listing.list_page(
        uow, ARTIFACT, pagination.parse_page(options.artifacts_options, uow.tenancy.page_token_key)
    )
    if not query_artifacts:
        raise errors.NotFoundError("no artifact matches artifacts_options")
    max_nodes = options.max_node_size  # proto default 20; <= 0 means unlimited
    if max_nodes > 0:
        query_artifacts = query_artifacts[:max_nodes]
    boundaries = {ARTIFACT: stop.boundary_artifacts or None, EXECUTION: stop.boundary_executions or None}
    for kind, boundary_filter in boundaries.items():
        if boundary_filter:
            lineage_repo.refuse_sensitive_filter(uow, kind, boundary_filter)
    visited: dict[NodeKind, set[int]] = {ARTIFACT: {a.id for a in query_artifacts}, EXECUTION: set()}
    frontier = set(visited[ARTIFACT])
    events: list[EventRow] = []
    for hop in range(hops):
        remaining = max_nodes - len(visited[ARTIFACT]) - len(visited[EXECUTION]) if max_nodes > 0 else None
        if not frontier or remaining == 0:
            break
        source, target = (ARTIFACT, EXECUTION) if hop % 2 == 0 else (EXECUTION, ARTIFACT)
        rows = lineage_repo.events_touching(uow, source, frontier)

        def other_end(row: EventRow, target: NodeKind = target) -> int:
            return row.execution_id if target is EXECUTION else row.artifact_id

        reached = {other_end(row) for row in rows} - visited[target]
        boundary = boundaries[target]
        if boundary is not None and reached:
            # Boundary filters say which newly reached nodes to keep; the rest are pruned.
            reached = lineage_repo.ids_matching(uow, target, reached, boundary)
        if remaining is not None:
            reached = set(sorted(reached)[:remaining])
        events.extend(row for row in rows if other_end(row) in reached)
        visited[target] |= reached
        frontier = reached
    graph = mlmd.LineageGraph()
    # Query artifacts first, in page order (as the library copied them), then the reached
    # nodes, hydrated, by ascending id.
    graph.artifacts.extend(query_artifacts)
    reached_artifacts = visited[ARTIFACT] - {a.id for a in query_artifacts}
    graph.artifacts.extend(node_repo.load_by_ids(uow, ARTIFACT, reached_artifacts))
    graph.executions.extend(node_repo.load_by_ids(uow, EXECUTION, visited[EXECUTION]))
    graph.events.extend(lineage_repo.to_events(uow, events))
    # "All non-system types" as the list-all reads define them: system names are hidden
    # from artifact and execution types only (§2.1).
    by_kind = _types_by_kind(
        r for r in lineage_repo.all_types(uow) if r.kind == CONTEXT_KIND or r.name not in SYSTEM_TYPE_NAMES
    )
    graph.artifact_types.extend(type_rules.to_message(r, type_rules.LIST_ALL) for r in by_kind[ARTIFACT_KIND])
    graph.execution_types.extend(type_rules.to_message(r, type_rules.LIST_ALL) for r in by_kind[EXECUTION_KIND])
    graph.context_types.extend(type_rules.to_message(r, type_rules.LIST_ALL) for r in by_kind[CONTEXT_KIND])
    return graph
