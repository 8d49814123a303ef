"""lineagedb.v1.LineageService: one public method per RPC, one read transaction each.

The api layer passes the call's deadline (a time.monotonic() value, or None) so a
walk can stop in time and say so instead of running into DEADLINE_EXCEEDED.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service.answers import completeness, diff, graph, manifest, report
from lineagedb.service.answers.closure import ARTIFACT, CONTEXT, EXECUTION, Closure, Direction, deadline_check, walk
from lineagedb.service.answers.conventions import DEFAULT, Conventions
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.unit_of_work import Database, UnitOfWork


class LineageAnswers:
    def __init__(self, database: Database, conventions: Conventions = DEFAULT) -> None:
        self.db = database
        self.conventions = conventions

    @property
    def audit_on(self) -> bool:
        return self.db.audit is not None

    # -- Provenance and Impact -------------------------------------------------------------------

    def provenance(self, request: pb.ClosureRequest, deadline: float | None = None) -> pb.ClosureResponse:
        node = graph.parse_ref(request.node, "node")
        budget, as_of_ms = graph.max_nodes(request.max_nodes), graph.as_of(request.as_of_ms)
        response = pb.ClosureResponse()
        with self.db.transaction(write=False) as uow:
            closure = self._walk(uow, node, Direction.UPSTREAM, budget, as_of_ms, deadline)
            found = graph.load(uow, closure, as_of_ms, self.audit_on, into=response)
        _finish_walk(response, closure, found)
        return response

    def impact(self, request: pb.ImpactRequest, deadline: float | None = None) -> pb.ImpactResponse:
        node = graph.parse_ref(request.node, "node")
        budget, as_of_ms = graph.max_nodes(request.max_nodes), graph.as_of(request.as_of_ms)
        states = {_artifact_state(name) for name in request.artifact_states}
        types = set(request.artifact_types)
        response = pb.ImpactResponse()
        with self.db.transaction(write=False) as uow:
            closure = self._walk(uow, node, Direction.DOWNSTREAM, budget, as_of_ms, deadline)
            # Built in the response where they are read: copying 10,000 nodes in costs as much.
            found = graph.load(uow, closure, as_of_ms, self.audit_on, into=response, with_links=False)
        closure_start = set(closure.start)
        started = {node_id for kind, node_id in closure.start if kind is ARTIFACT}
        # One pass over the artifacts: which are affected, and their groups.
        counts: dict[tuple[str, Any], int] = {}
        dropped = []
        for index, artifact in enumerate(response.artifacts):
            if artifact.id in started:
                dropped.append(index)
                continue
            key = (artifact.type, artifact.state)
            if (types and key[0] not in types) or (states and key[1] not in states):
                dropped.append(index)
                continue
            counts[key] = counts.get(key, 0) + 1
        _drop(response.artifacts, dropped)
        _keep_only(response.executions, lambda e: (EXECUTION, e.id) not in closure_start)
        groups = {(type_name, mlmd.Artifact.State.Name(state)): n for (type_name, state), n in counts.items()}
        for (type_name, state_name), count in sorted(groups.items(), key=lambda item: (-item[1], item[0])):
            response.groups.add(type=type_name, state=state_name, count=count)
        # The breadth-first tree, encoded and parsed in one call (a step message built from
        # Python per node cost several times more).
        response.MergeFromString(_encoded_tree(closure.reached_from))
        _finish_walk(response, closure, found)
        return response

    def _walk(
        self,
        uow: UnitOfWork,
        node: graph.Node,
        direction: Direction,
        budget: int,
        as_of_ms: int | None,
        deadline: float | None,
    ) -> Closure:
        start = graph.start_nodes(uow, node, as_of_ms)
        return walk(uow, start, direction, budget, as_of_ms, deadline_check(deadline))

    # -- Diff, Manifest, Completeness, Report ------------------------------------------------------

    def diff(self, request: pb.DiffRequest, deadline: float | None = None) -> pb.DiffResponse:
        return diff.answer(self, request, deadline)

    def manifest(self, request: pb.ManifestRequest, deadline: float | None = None) -> pb.ManifestResponse:
        return manifest.answer(self, request, deadline)

    def completeness(self, request: pb.CompletenessRequest, deadline: float | None = None) -> pb.CompletenessResponse:
        return completeness.answer(self, request, deadline)

    def report(self, request: pb.ReportRequest, deadline: float | None = None) -> pb.ReportResponse:
        return report.answer(self, request, deadline)


def _finish_walk(response: pb.ClosureResponse | pb.ImpactResponse, closure: Closure, found: graph.Graph) -> None:
    """What Provenance and Impact say of the walk itself: its depth, whether and where it
    was cut short, and (as of a time) which nodes were restored."""
    response.depth = closure.depth
    response.truncated = closure.truncated  # type: ignore[assignment]
    response.frontier.extend(graph.ref(n) for n in closure.frontier)
    if found.as_of.time_ms:
        response.as_of.CopyFrom(found.as_of)


def _drop(repeated: Any, indexes: list[int]) -> None:
    """Remove the messages at `indexes` (ascending) from a repeated field, keeping the order."""
    if len(indexes) <= _FEW:
        for index in reversed(indexes):  # each removal shifts the tail: fine for a few
            del repeated[index]
        return
    gone = set(indexes)
    kept = [message for index, message in enumerate(repeated) if index not in gone]
    del repeated[:]  # the removed messages stay valid, detached from the field
    repeated.extend(kept)


# ImpactResponse.tree (field 5) entries: a Step is (node: 1, reached_from: 2), each a
# NodeRef whose one field (artifact_id 1, execution_id 2, context_id 3) is a varint.
_TREE_TAG = bytes([pb.ImpactResponse.TREE_FIELD_NUMBER << 3 | 2])
_REF_TAGS = {
    ARTIFACT: bytes([pb.NodeRef.ARTIFACT_ID_FIELD_NUMBER << 3]),
    EXECUTION: bytes([pb.NodeRef.EXECUTION_ID_FIELD_NUMBER << 3]),
    CONTEXT: bytes([pb.NodeRef.CONTEXT_ID_FIELD_NUMBER << 3]),
}
_STEP_NODE, _STEP_FROM = b"\x0a", b"\x12"
_ONE_BYTE = [bytes([n]) for n in range(128)]


def _encoded_tree(reached_from: dict[graph.Node, graph.Node]) -> bytes:
    """The tree's steps as ImpactResponse field entries, in the walk's order. A NodeRef is
    at most 11 bytes and a step at most 26, so their lengths are single bytes. A step's
    encoding depends on its two nodes only: kept by node, with the node it was reached
    from (bounded), for the next answer over the same graph."""
    known = _STEP_ENCODINGS
    if len(known) > _MAX_STEP_ENCODINGS:
        known.clear()
    parts = []
    for node, via in reached_from.items():
        entry = known.get(node)
        if entry is not None and entry[0] == via:
            parts.append(entry[1])
            continue
        body = _STEP_NODE + _ref(node) + _STEP_FROM + _ref(via)
        data = _TREE_TAG + _ONE_BYTE[len(body)] + body
        known[node] = (via, data)
        parts.append(data)
    return b"".join(parts)


def _ref(node: graph.Node) -> bytes:
    """A NodeRef's encoding, after its length."""
    body = _REF_TAGS[node[0]] + lineage_repo.varint(node[1])
    return _ONE_BYTE[len(body)] + body


_STEP_ENCODINGS: dict[graph.Node, tuple[graph.Node, bytes]] = {}
_MAX_STEP_ENCODINGS = 200_000


def _keep_only(repeated: Any, keep: Callable[[Any], bool]) -> None:
    """Remove the messages of a repeated field that `keep` refuses, keeping the order."""
    drop = [index for index, message in enumerate(repeated) if not keep(message)]
    if len(drop) <= _FEW:
        for index in reversed(drop):  # each removal shifts the tail: fine for a few
            del repeated[index]
        return
    kept = [message for message in repeated if keep(message)]
    del repeated[:]  # the removed messages stay valid, detached from the field
    repeated.extend(kept)


_FEW = 16


def _artifact_state(name: str) -> Any:
    try:
        return mlmd.Artifact.State.Value(name)
    except ValueError:
        known = ", ".join(mlmd.Artifact.State.keys())
        raise errors.InvalidArgumentError(f"artifact_states: unknown state {name!r}; known: {known}") from None
