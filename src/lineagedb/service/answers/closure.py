"""The complete upstream or downstream closure of a set of nodes, level by level.

A level expands the whole frontier with one events statement per side (one per
chunk of ids for huge frontiers), so a closure costs statements in proportion to
its depth, never to its size. There is no hop limit; the walk stops when nothing
new is reached, when `max_nodes` would be exceeded, or when the call's deadline is
near, and says which and where (the nodes reached but not expanded).

Upstream from an artifact follows the events that produced it (output-like) to
executions; upstream from an execution follows its inputs (input-like) to
artifacts. Downstream is the mirror image. Every statement is scoped to the
caller's readable namespaces, so a walk never enters one it cannot read.
"""

from __future__ import annotations

import enum
import operator
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.service.lineage import INPUT_LIKE, OUTPUT_LIKE
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.repositories.lineage import EventTuple
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.unit_of_work import UnitOfWork

ARTIFACT, EXECUTION, CONTEXT = NodeKind.ARTIFACT, NodeKind.EXECUTION, NodeKind.CONTEXT

# A node of the graph: its kind and id.
Node = tuple[NodeKind, int]


class Direction(enum.Enum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


@dataclass
class Closure:
    """What a walk found: node ids per kind, the events among them, and how it ended."""

    start: list[Node]
    artifact_ids: set[int] = field(default_factory=set)
    execution_ids: set[int] = field(default_factory=set)
    # (id, artifact_id, execution_id, type, milliseconds_since_epoch): EventRow's fields,
    # as plain tuples (a walk reads thousands).
    events: list[EventTuple] = field(default_factory=list)
    # The node each reached node was first reached from (a breadth-first tree, so the
    # chain back to a starting node is a shortest path).
    reached_from: dict[Node, Node] = field(default_factory=dict)
    depth: int = 0
    truncated: int = pb.TRUNCATION_UNSPECIFIED
    # When truncated: the nodes of the answer whose neighbours (in the walk's direction) were
    # not all included, i.e. where the walk would go on.
    frontier: list[Node] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.artifact_ids) + len(self.execution_ids)

    def ids(self, kind: NodeKind) -> set[int]:
        return self.artifact_ids if kind is ARTIFACT else self.execution_ids

    def path_to(self, node: Node) -> list[Node]:
        """The shortest chain of nodes from a starting node to `node`, both included."""
        chain = [node]
        while chain[-1] in self.reached_from:
            chain.append(self.reached_from[chain[-1]])
        chain.reverse()
        return chain


def _followed(direction: Direction, from_kind: NodeKind) -> frozenset[int]:
    """The event types a step from `from_kind` follows in `direction`."""
    upstream = direction is Direction.UPSTREAM
    if from_kind is ARTIFACT:
        return OUTPUT_LIKE if upstream else INPUT_LIKE
    return INPUT_LIKE if upstream else OUTPUT_LIKE


def walk(
    uow: UnitOfWork,
    start: Iterable[Node],
    direction: Direction,
    max_nodes: int,
    as_of_ms: int | None = None,
    out_of_time: Callable[[], bool] = lambda: False,
) -> Closure:
    """Walk from the (readable) `start` nodes in `direction` until the closure is complete
    or a limit stops it. `start` nodes count toward `max_nodes`."""
    closure = Closure(start=sorted(set(start), key=lambda node: (node[0].value, node[1])))
    frontier: dict[NodeKind, set[int]] = {ARTIFACT: set(), EXECUTION: set()}
    for kind, node_id in closure.start:
        closure.ids(kind).add(node_id)
        frontier[kind].add(node_id)
    while frontier[ARTIFACT] or frontier[EXECUTION]:
        if out_of_time():
            closure.truncated = pb.DEADLINE
            break
        reached: dict[NodeKind, dict[int, Node]] = {ARTIFACT: {}, EXECUTION: {}}
        kept: list[EventTuple] = []
        for from_kind in (ARTIFACT, EXECUTION):
            if not frontier[from_kind]:
                continue
            to_kind = EXECUTION if from_kind is ARTIFACT else ARTIFACT
            rows = lineage_repo.event_tuples_touching(
                uow, from_kind, frontier[from_kind], _followed(direction, from_kind), as_of_ms
            )
            kept.extend(rows)
            known, reached_to = closure.ids(to_kind), reached[to_kind]
            # Rows are (id, artifact_id, execution_id, type, time): the far end is column 2
            # from artifacts and column 1 from executions.
            source_column: Literal[1, 2] = 1 if from_kind is ARTIFACT else 2
            target_column: Literal[1, 2] = 2 if from_kind is ARTIFACT else 1
            for row in rows:
                target = row[target_column]
                if target not in known and target not in reached_to:
                    reached_to[target] = (from_kind, row[source_column])
        if as_of_ms is not None:
            # Nodes created after the time asked for were not in the graph then.
            for kind in (ARTIFACT, EXECUTION):
                if reached[kind]:
                    existed = lineage_repo.created_by(uow, kind, reached[kind], as_of_ms)
                    reached[kind] = {i: via for i, via in reached[kind].items() if i in existed}
            kept = [row for row in kept if _between_known(row, closure, reached)]
        new_count = len(reached[ARTIFACT]) + len(reached[EXECUTION])
        if not new_count:
            closure.events.extend(kept)
            break
        room = max_nodes - closure.size
        if new_count > room:
            _admit_within_budget(closure, reached, room)
            closure.events.extend(row for row in kept if _between_known(row, closure, {}))
            closure.depth += 1
            closure.truncated = pb.NODE_BUDGET
            # The walk would go on from the nodes just expanded (some of their neighbours were
            # left out) and from those just admitted (not expanded at all).
            frontier = {kind: frontier[kind] | set(reached[kind]) for kind in (ARTIFACT, EXECUTION)}
            break
        for kind in (ARTIFACT, EXECUTION):
            closure.ids(kind).update(reached[kind])
            for node_id, via in reached[kind].items():
                closure.reached_from[(kind, node_id)] = via
        closure.events.extend(kept)
        closure.depth += 1
        frontier = {kind: set(reached[kind]) for kind in (ARTIFACT, EXECUTION)}
    if closure.truncated != pb.TRUNCATION_UNSPECIFIED:
        closure.frontier = [(kind, i) for kind in (ARTIFACT, EXECUTION) for i in sorted(frontier[kind])]
    # Each event is read once: from its artifact end only if output-like (upstream) or
    # input-like (downstream), from its execution end only if the other, and a node is
    # expanded once. Each level's rows are in id order already: the sort merges the runs.
    closure.events.sort(key=_event_id)
    return closure


_event_id: Callable[[EventTuple], int] = operator.itemgetter(0)


def _between_known(row: EventTuple, closure: Closure, reached: dict[NodeKind, dict[int, Node]]) -> bool:
    """Whether both ends of `row` are in the closure or about to join it."""
    _, artifact_id, execution_id, _, _ = row
    artifact_known = artifact_id in closure.artifact_ids or artifact_id in reached.get(ARTIFACT, {})
    execution_known = execution_id in closure.execution_ids or execution_id in reached.get(EXECUTION, {})
    return artifact_known and execution_known


def _admit_within_budget(closure: Closure, reached: dict[NodeKind, dict[int, Node]], room: int) -> None:
    """Admit the lowest ids of the level (executions first, as the steps that explain the
    artifacts) while there is room; the rest of the level is left out."""
    for kind in (EXECUTION, ARTIFACT):
        admitted = sorted(reached[kind])[: max(room, 0)]
        room -= len(admitted)
        reached[kind] = {i: reached[kind][i] for i in admitted}
        closure.ids(kind).update(admitted)
        for node_id in admitted:
            closure.reached_from[(kind, node_id)] = reached[kind][node_id]


def deadline_check(deadline: float | None, margin: float = 0.1) -> Callable[[], bool]:
    """A check that says when less than `margin` of the time left at the start remains
    before `deadline` (a time.monotonic() value), so the answer still gets back."""
    if deadline is None:
        return lambda: False
    stop_at = deadline - margin * max(deadline - time.monotonic(), 0.0)
    return lambda: time.monotonic() >= stop_at
