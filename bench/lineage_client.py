"""A whole upstream or downstream closure, collected the way clients do it today: with
MLMD's GetLineageSubgraph through the official ``ml-metadata`` client.

Runs under the official client's interpreter (``.venv-mlmd``), started by
bench/lineage_answers.py against a LineageDB server. GetLineageSubgraph takes at most 100
starting nodes (a filter_query; here ``id IN (...)``) and a hop limit, so a client that
wants everything loops: it starts from the nodes it has not expanded yet, 100 a call,
and goes on from the nodes the last hop reached, until no call finds anything new. The
nodes a call reached within fewer hops than its limit have been expanded by the server
(it follows every edge of each hop in the direction asked), so only those reached at
the last hop are started from again.

Two field-mask modes, each with a hop limit per call (``--methods MODE:HOPS,...``), each
timed end to end:

* ``default``: ``get_lineage_subgraph(options)`` as the API is called, with no field
  mask: the client fetches every returned node's details (and types) after each call.
* ``lean``: a field mask of the edges only (events, attributions, associations); the
  node details are fetched once at the end with get_artifacts_by_id,
  get_executions_by_id and get_contexts_by_id.

With a hop limit of 100 (the cap LineageDB applies to max_num_hops) a closure less than
100 levels deep comes back from one starting node in one call: the least work a client
can do.

Prints JSON: per operation and mode the time, the calls made, the node ids found and a
digest of the events (the same digest lineage_answers.py computes over LineageDB's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterable
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

CHUNK = 100  # GetLineageSubgraph's limit on starting nodes
INPUT_LIKE = frozenset({mlmd.Event.DECLARED_INPUT, mlmd.Event.INPUT, mlmd.Event.INTERNAL_INPUT})
OUTPUT_LIKE = frozenset(
    {mlmd.Event.DECLARED_OUTPUT, mlmd.Event.OUTPUT, mlmd.Event.INTERNAL_OUTPUT, mlmd.Event.PENDING_OUTPUT}
)
Options = mlmd.LineageSubgraphQueryOptions
LEAN_MASK = ["events", "attributions", "associations"]
ARTIFACT, EXECUTION = "artifact", "execution"


def _followed(upstream: bool, from_kind: str) -> frozenset[int]:
    """Event types a step from `from_kind` follows (as LineageDB and MLMD define directions)."""
    if from_kind == ARTIFACT:
        return OUTPUT_LIKE if upstream else INPUT_LIKE
    return INPUT_LIKE if upstream else OUTPUT_LIKE


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


def _reached_at(
    events: Iterable[Any], kind: str, start: list[int], upstream: bool, hops: int
) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """Breadth-first over one call's events from its starting nodes: (nodes closer than
    `hops`, which the server expanded; nodes at exactly `hops`, which it did not)."""
    out: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for event in events:
        a, e = (ARTIFACT, event.artifact_id), (EXECUTION, event.execution_id)
        if event.type in _followed(upstream, ARTIFACT):
            out.setdefault(a, []).append(e)
        if event.type in _followed(upstream, EXECUTION):
            out.setdefault(e, []).append(a)
    level = {(kind, i) for i in start}
    seen = set(level)
    for _ in range(hops):
        following = {n for node in level for n in out.get(node, ()) if n not in seen}
        if not following:
            return seen, set()
        seen |= following
        level = following
    return seen - level, level


def collect(
    store: metadata_store.MetadataStore, kind: str, node_id: int, upstream: bool, hops: int, mode: str
) -> dict[str, Any]:
    direction = Options.UPSTREAM if upstream else Options.DOWNSTREAM
    mask = LEAN_MASK if mode == "lean" else None
    found: dict[str, set[int]] = {ARTIFACT: set(), EXECUTION: set()}
    found[kind].add(node_id)
    expanded: set[tuple[str, int]] = set()
    frontier: set[tuple[str, int]] = {(kind, node_id)}
    events: dict[tuple[int, int, int], Any] = {}
    context_ids: set[int] = set()
    details: dict[str, dict[int, Any]] = {ARTIFACT: {}, EXECUTION: {}, "context": {}}
    calls = rounds = follow_ups = 0
    while frontier:
        rounds += 1
        reached_last: set[tuple[str, int]] = set()
        for start_kind in (ARTIFACT, EXECUTION):
            for chunk in _chunks(i for k, i in frontier if k == start_kind):
                options = Options(max_num_hops=hops, direction=direction)
                side = options.starting_artifacts if start_kind == ARTIFACT else options.starting_executions
                side.filter_query = f"id IN ({','.join(map(str, chunk))})"
                graph = store.get_lineage_subgraph(options, mask)
                calls += 1
                for event in graph.events:
                    events[(event.artifact_id, event.execution_id, event.type)] = event
                    found[ARTIFACT].add(event.artifact_id)
                    found[EXECUTION].add(event.execution_id)
                context_ids.update(link.context_id for link in graph.attributions)
                context_ids.update(link.context_id for link in graph.associations)
                if mode == "default":
                    details[ARTIFACT].update((a.id, a) for a in graph.artifacts)
                    details[EXECUTION].update((e.id, e) for e in graph.executions)
                    details["context"].update((c.id, c) for c in graph.contexts)
                inner, last = _reached_at(graph.events, start_kind, chunk, upstream, hops)
                expanded |= inner
                reached_last |= last
        frontier = reached_last - expanded
    if mode == "lean":
        details[ARTIFACT] = {a.id: a for a in store.get_artifacts_by_id(sorted(found[ARTIFACT]))}
        details[EXECUTION] = {e.id: e for e in store.get_executions_by_id(sorted(found[EXECUTION]))}
        details["context"] = {c.id: c for c in store.get_contexts_by_id(sorted(context_ids))}
        follow_ups = 3
    missing = [k for k in (ARTIFACT, EXECUTION) if set(details[k]) != found[k]]
    if missing:
        raise AssertionError(f"details of some {missing} were not fetched")
    text = "\n".join(f"{a},{e},{t}" for a, e, t in sorted(events))
    return {
        "artifacts": sorted(found[ARTIFACT]),
        "executions": sorted(found[EXECUTION]),
        "contexts": len(details["context"]),
        "events": hashlib.sha256(text.encode()).hexdigest(),
        "event_count": len(events),
        "subgraph_calls": calls,
        "rounds": rounds,
        "follow_up_calls": follow_ups,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--methods", default="default:1,lean:1,lean:100", help="MODE:HOPS,...: field mask mode and max_num_hops"
    )
    parser.add_argument("--provenance-artifact", type=int, required=True)
    parser.add_argument("--impact-artifact", type=int, required=True)
    args = parser.parse_args(argv)
    config = mlmd.MetadataStoreClientConfig(host=args.host, port=args.port)
    config.client_timeout_sec = 600
    # A whole closure's details in one answer can exceed gRPC's default 4 MB.
    config.channel_arguments.max_receive_message_length = 512 * 1024 * 1024
    store = metadata_store.MetadataStore(config)
    for _ in range(3):  # the channel's connection and the server's thread pool, untimed
        store.get_artifacts_by_id([])
    result: dict[str, Any] = {}
    for op, node_id, upstream in (
        ("provenance", args.provenance_artifact, True),
        ("impact", args.impact_artifact, False),
    ):
        for method in args.methods.split(","):
            mode, hops = method.split(":")
            start = time.perf_counter()
            record = collect(store, ARTIFACT, node_id, upstream, int(hops), mode)
            record["ms"] = (time.perf_counter() - start) * 1000
            result.setdefault(op, {})[method] = record
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
