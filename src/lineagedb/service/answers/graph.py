"""From a closure's ids to the nodes, edges and contexts the answers are made of.

Everything is read set-wise: nodes with their properties, events with their paths,
attributions, associations and contexts, each a statement per chunk of ids. An
answer as of a past time also leaves out contexts created later and shows nodes
changed later as they were, where the audit log holds their earlier values.
"""

from __future__ import annotations

import base64
import functools
import heapq
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service.answers.closure import ARTIFACT, CONTEXT, EXECUTION, Closure, Node
from lineagedb.service.lineage import INPUT_LIKE, OUTPUT_LIKE
from lineagedb.store import audit_log, audit_store, encoded_cache
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.unit_of_work import UnitOfWork

DEFAULT_MAX_NODES = 10_000
MAX_NODES_LIMIT = 1_000_000

_REF_FIELDS = {ARTIFACT: "artifact_id", EXECUTION: "execution_id", CONTEXT: "context_id"}
_STATE_FIELD = {ARTIFACT: ("state", mlmd.Artifact.State), EXECUTION: ("last_known_state", mlmd.Execution.State)}


def max_nodes(requested: int) -> int:
    """The node budget of a request: the default when unset, else 1..MAX_NODES_LIMIT."""
    if requested == 0:
        return DEFAULT_MAX_NODES
    if not 0 < requested <= MAX_NODES_LIMIT:
        raise errors.InvalidArgumentError(f"max_nodes must be between 1 and {MAX_NODES_LIMIT}, got {requested}")
    return requested


def as_of(requested: int) -> int | None:
    if requested < 0:
        raise errors.InvalidArgumentError(f"as_of_ms must not be negative, got {requested}")
    return requested or None


def ref(node: Node) -> pb.NodeRef:
    kind, node_id = node
    return pb.NodeRef(**{_REF_FIELDS[kind]: node_id})


def ref_fields(node: Node) -> dict[str, int]:
    """A NodeRef as keyword fields: what a message constructor takes without building one."""
    return {_REF_FIELDS[node[0]]: node[1]}


def label(node: Node) -> str:
    return f"{node[0].value}:{node[1]}"


def parse_ref(message: pb.NodeRef, what: str, kinds: Collection[NodeKind] = (ARTIFACT, EXECUTION, CONTEXT)) -> Node:
    """The node a NodeRef names, if it names one of `kinds` (not yet checked to exist)."""
    which = message.WhichOneof("node")
    allowed = " or ".join(_REF_FIELDS[k] for k in kinds)
    if which is None:
        raise errors.InvalidArgumentError(f"{what} must set {allowed}")
    kind = next(k for k, name in _REF_FIELDS.items() if name == which)
    if kind not in kinds:
        raise errors.InvalidArgumentError(f"{what} must set {allowed}, not {which}")
    node_id = getattr(message, which)
    if node_id <= 0:
        raise errors.InvalidArgumentError(f"{what}.{which} must be a positive id, got {node_id}")
    return kind, node_id


def load_node(uow: UnitOfWork, node: Node) -> Any:
    """The stored node, or NOT_FOUND (also when the caller cannot read it: a node in a
    namespace one cannot read does not exist for them)."""
    found = node_repo.load_by_ids(uow, node[0], [node[1]])
    if not found:
        raise errors.NotFoundError(f"{node[0].value} {node[1]} does not exist")
    return found[0]


def start_nodes(uow: UnitOfWork, node: Node, as_of_ms: int | None = None) -> list[Node]:
    """Where a walk from `node` starts: the node itself, or for a context every readable
    artifact and execution of it."""
    stored = load_node(uow, node)
    if as_of_ms is not None and stored.create_time_since_epoch > as_of_ms:
        raise errors.NotFoundError(f"{node[0].value} {node[1]} did not exist at as_of_ms {as_of_ms}")
    if node[0] is not CONTEXT:
        return [node]
    artifact_ids, execution_ids = lineage_repo.context_members(uow, [node[1]])
    members = [(ARTIFACT, i) for i in artifact_ids] + [(EXECUTION, i) for i in execution_ids]
    if as_of_ms is not None:
        existed = {
            kind: lineage_repo.created_by(uow, kind, [i for k, i in members if k is kind], as_of_ms)
            for kind in (ARTIFACT, EXECUTION)
        }
        members = [(kind, i) for kind, i in members if i in existed[kind]]
    return members


@dataclass
class Graph:
    """A closure's content as messages."""

    artifacts: list[Any] = field(default_factory=list)
    executions: list[Any] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    attributions: list[Any] = field(default_factory=list)
    associations: list[Any] = field(default_factory=list)
    as_of: pb.AsOf = field(default_factory=pb.AsOf)

    # By id, for answers that look nodes up while walking edges (read after loading).
    @functools.cached_property
    def artifact_by_id(self) -> dict[int, Any]:
        return {node.id: node for node in self.artifacts}

    @functools.cached_property
    def execution_by_id(self) -> dict[int, Any]:
        return {node.id: node for node in self.executions}

    @functools.cached_property
    def context_by_id(self) -> dict[int, Any]:
        return {node.id: node for node in self.contexts}


def load(
    uow: UnitOfWork,
    closure: Closure,
    as_of_ms: int | None,
    audit_on: bool,
    with_contexts: bool = True,
    into: pb.ClosureResponse | pb.ImpactResponse | None = None,
    with_links: bool = True,
) -> Graph:
    """Read everything the closure names, as it was at `as_of_ms` where it can be told.
    With `into`, the nodes, events and links are built in that response's fields (the
    Graph's lists then hold the response's own messages), saving a copy of each.
    Without `with_links` the contexts are read but no attribution or association is built."""
    if into is None:
        graph = Graph(
            artifacts=node_repo.load_by_ids(uow, ARTIFACT, closure.artifact_ids),
            executions=node_repo.load_by_ids(uow, EXECUTION, closure.execution_ids),
            events=lineage_repo.to_events(uow, closure.events),
        )
    else:
        # Appended to the response's fields (kept encodings in one parse each); the Graph
        # reads them there, list-like, without a Python object per message.
        node_repo.load_by_ids(uow, ARTIFACT, closure.artifact_ids, encoded_cache.Field(into, "artifacts"))
        node_repo.load_by_ids(uow, EXECUTION, closure.execution_ids, encoded_cache.Field(into, "executions"))
        lineage_repo.to_events(uow, closure.events, encoded_cache.Field(into, "events"))
        graph = Graph(artifacts=into.artifacts, executions=into.executions, events=into.events)  # type: ignore[arg-type]
    if with_contexts:
        if with_links:
            attributions = lineage_repo.attribution_pairs(uow, closure.artifact_ids)
            associations = lineage_repo.association_pairs(uow, closure.execution_ids)
            context_ids = {link[1] for link in attributions} | {link[1] for link in associations}
        else:  # only which contexts: no row per link
            context_ids = lineage_repo.context_ids_of(uow, closure.artifact_ids, closure.execution_ids)
        contexts = node_repo.load_by_ids(uow, CONTEXT, context_ids)
        if as_of_ms is not None:
            contexts = [c for c in contexts if c.create_time_since_epoch <= as_of_ms]
        if with_links:
            _build_links(graph, attributions, associations, {c.id for c in contexts}, into)
        if into is not None:
            into.contexts.extend(contexts)
            contexts = list(into.contexts)
        graph.contexts = contexts
    if as_of_ms is not None:
        graph.as_of = _restore(uow, graph, as_of_ms, audit_on)
    return graph


def _build_links(
    graph: Graph,
    attributions: list[tuple[int, int]],
    associations: list[tuple[int, int]],
    kept: set[int],
    into: pb.ClosureResponse | pb.ImpactResponse | None,
) -> None:
    """The attributions and associations to contexts in `kept` (built in `into`, a
    ClosureResponse, when given)."""
    closure_response = into if isinstance(into, pb.ClosureResponse) else None
    if closure_response is not None:
        # Into a response: the links' encodings, joined and parsed by protobuf in one call
        # (a message built per link from Python cost several times more).
        encoded = _encoded_links(_ATTRIBUTIONS_TAG, attributions, kept)
        encoded += _encoded_links(_ASSOCIATIONS_TAG, associations, kept)
        closure_response.MergeFromString(encoded)
        # The response's own fields (list-like): a Python wrapper per link costs as much again.
        graph.attributions = closure_response.attributions  # type: ignore[assignment]
        graph.associations = closure_response.associations  # type: ignore[assignment]
        return
    graph.attributions = [
        mlmd.Attribution(artifact_id=node_id, context_id=context_id)
        for node_id, context_id in attributions
        if context_id in kept
    ]
    graph.associations = [
        mlmd.Association(execution_id=node_id, context_id=context_id)
        for node_id, context_id in associations
        if context_id in kept
    ]


# ClosureResponse fields 5 (attributions) and 6 (associations), length-delimited; an
# Attribution or Association is (node id: field 1, context id: field 2), both varints.
_ATTRIBUTIONS_TAG = bytes([pb.ClosureResponse.ATTRIBUTIONS_FIELD_NUMBER << 3 | 2])
_ASSOCIATIONS_TAG = bytes([pb.ClosureResponse.ASSOCIATIONS_FIELD_NUMBER << 3 | 2])
# A link's encoding depends on its two ids only, so it is kept by them (bounded).
_LINK_ENCODINGS: dict[bytes, dict[tuple[int, int], bytes]] = {_ATTRIBUTIONS_TAG: {}, _ASSOCIATIONS_TAG: {}}
_MAX_LINK_ENCODINGS = 200_000


def _encoded_links(tag: bytes, links: list[tuple[int, int]], kept: set[int]) -> bytes:
    """The response field entries (`tag`) of the links to contexts in `kept`, in order."""
    known = _LINK_ENCODINGS[tag]
    varint, one_byte = lineage_repo.varint, lineage_repo.ONE_BYTE
    if len(known) > _MAX_LINK_ENCODINGS:
        known.clear()
    parts = []
    for link in links:
        if link[1] not in kept:
            continue
        data = known.get(link)
        if data is None:
            body = b"\x08" + varint(link[0]) + b"\x10" + varint(link[1])
            data = known[link] = tag + one_byte[len(body)] + body  # at most 22 bytes
        parts.append(data)
    return b"".join(parts)


def _restore(uow: UnitOfWork, graph: Graph, as_of_ms: int, audit_on: bool) -> pb.AsOf:
    """Show nodes changed after `as_of_ms` as they were, from the audit log's previous
    values; those it cannot restore are listed as shown with current values."""
    answer = pb.AsOf(time_ms=as_of_ms)
    for kind, nodes in ((ARTIFACT, graph.artifacts), (EXECUTION, graph.executions), (CONTEXT, graph.contexts)):
        changed = {node.id: node for node in nodes if node.last_update_time_since_epoch > as_of_ms}
        if not changed:
            continue
        history: dict[int, list[tuple[int, list[dict[str, Any]]]]] = {}
        if audit_on:
            number = audit_log.NODE_KINDS[kind.value]
            history = audit_store.changes_since(uow.connection, number, changed, as_of_ms)
        for node_id in sorted(changed):
            node = changed[node_id]
            records = history.get(node_id, [])
            # The newest change must be on record, else earlier ones may be missing too
            # (an update made while the audit log was off).
            if records and records[0][0] >= node.last_update_time_since_epoch and _undo(kind, node, records):
                answer.restored.append(ref((kind, node_id)))
            else:
                answer.current_values.append(ref((kind, node_id)))
    return answer


def _undo(kind: NodeKind, node: Any, records: list[tuple[int, list[dict[str, Any]]]]) -> bool:
    """Apply each record's previous values, newest record first. False if a value cannot
    be restored (a redacted sensitive value); the node is then left partly restored."""
    complete = True
    for _, changes in records:
        for change in changes:
            name, previous = change["field"], change["from"]
            map_name, _, key = name.partition(".")
            if key and map_name in ("properties", "custom_properties"):
                values = getattr(node, map_name)
                if previous is None:
                    values.pop(key, None)
                elif isinstance(previous, dict):
                    values[key].CopyFrom(_value(previous))
                else:
                    complete = False  # redacted in the log
            elif kind in _STATE_FIELD and name == _STATE_FIELD[kind][0]:
                enum = _STATE_FIELD[kind][1]
                setattr(node, name, enum.Value(previous) if previous else 0)
            elif name in node.DESCRIPTOR.fields_by_name:
                if previous is None:
                    node.ClearField(name)
                else:
                    setattr(node, name, previous)
    return complete


def _value(data: dict[str, Any]) -> mlmd.Value:
    if "proto_value" in data:
        packed = data["proto_value"]
        value = mlmd.Value()
        value.proto_value.type_url = packed["type_url"]
        value.proto_value.value = base64.b64decode(packed["value"])
        return value
    return json_format.ParseDict(data, mlmd.Value())


def steps_in_order(
    executions: Iterable[Any], events: Iterable[Any], tie: Callable[[Any], tuple[int, ...]] = lambda e: (e.id,)
) -> list[Any]:
    """Executions after every execution that produced one of their inputs (a topological
    order, Kahn's algorithm over a heap); among those ready, the least by `tie` first
    (default: the lowest id). A cycle (possible in recorded metadata) is broken at its
    least member. The manifest, the report and the pictures list steps this way."""
    by_id = {e.id: e for e in executions}
    producers: dict[int, set[int]] = defaultdict(set)
    consumers: dict[int, set[int]] = defaultdict(set)
    for event in events:
        if event.execution_id not in by_id:
            continue
        if event.type in OUTPUT_LIKE:
            producers[event.artifact_id].add(event.execution_id)
        elif event.type in INPUT_LIKE:
            consumers[event.artifact_id].add(event.execution_id)
    after: dict[int, set[int]] = defaultdict(set)
    waiting = dict.fromkeys(by_id, 0)
    for artifact_id, makers in producers.items():
        for maker in makers:
            for user in consumers.get(artifact_id, ()):
                if user != maker and user not in after[maker]:
                    after[maker].add(user)
                    waiting[user] += 1

    def key(execution_id: int) -> tuple[tuple[int, ...], int]:
        return (tie(by_id[execution_id]), execution_id)

    ready = [key(i) for i, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[Any] = []
    done: set[int] = set()
    while len(ordered) < len(by_id):
        if not ready:  # a cycle: release its earliest member
            heapq.heappush(ready, min(key(i) for i in by_id if i not in done))
        _, execution_id = heapq.heappop(ready)
        if execution_id in done:
            continue
        done.add(execution_id)
        ordered.append(by_id[execution_id])
        for user in sorted(after[execution_id]):
            waiting[user] -= 1
            if waiting[user] == 0 and user not in done:
                heapq.heappush(ready, key(user))
    return ordered
