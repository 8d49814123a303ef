"""Completeness: what upstream of a node would stop anyone reproducing it.

The walk goes upstream from the node asked about (an artifact, an execution, or a
context's readable artifacts and executions) with no hop limit, within max_nodes and
the call's deadline, and checks every node of the closure (the starting nodes
included). Which property counts as a digest, a version or a code version is the
deployment's conventions (conventions.py).

Checks and the gap each failed check reports:

* every artifact
  - ``artifact_without_digest``: none of the digest properties (a content hash that
    tells whether the bytes at the URI are still the ones used);
  - ``artifact_without_version``: none of the version properties;
  - ``artifact_without_producer``: no execution produced it (no output-like event
    reaches it), as far as the caller can read. A raw source is often legitimately
    produced by nothing, yet it is still a point where lineage stops. The frontier of
    a truncated walk (artifacts whose producers were not all walked to) is not given
    this check, since the answer is unknown there;
* every execution
  - ``execution_without_code_version``: none of the code-version properties;
  - ``execution_without_parameters``: no parameters (properties other than
    bookkeeping, code version and environment);
  - ``execution_not_complete``: its last known state is neither COMPLETE nor CACHED
    (RUNNING, FAILED, NEW, CANCELED or UNKNOWN): its outputs may not be what a
    finished run would have written.

Scoring: ``checks`` counts one check per (node, check that applies to it); ``score``
is passed checks over ``checks``, 1.0 when there are no checks (nothing to miss).
Gaps are sorted by kind, then node (artifacts before executions, then by id). A
truncated walk says so in ``truncated``, and its score covers only the nodes reached.
"""

from __future__ import annotations

from typing import Any

from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service.answers import graph
from lineagedb.service.answers.closure import ARTIFACT, EXECUTION, Direction, Node, deadline_check, walk
from lineagedb.service.answers.conventions import Conventions
from lineagedb.service.lineage import OUTPUT_LIKE

ARTIFACT_WITHOUT_DIGEST = "artifact_without_digest"
ARTIFACT_WITHOUT_VERSION = "artifact_without_version"
ARTIFACT_WITHOUT_PRODUCER = "artifact_without_producer"
EXECUTION_WITHOUT_CODE_VERSION = "execution_without_code_version"
EXECUTION_WITHOUT_PARAMETERS = "execution_without_parameters"
EXECUTION_NOT_COMPLETE = "execution_not_complete"

_FINISHED = frozenset({mlmd.Execution.COMPLETE, mlmd.Execution.CACHED})


def answer(answers: Any, request: pb.CompletenessRequest, deadline: float | None) -> pb.CompletenessResponse:
    node = graph.parse_ref(request.node, "node")
    budget = graph.max_nodes(request.max_nodes)
    with answers.db.transaction(write=False) as uow:
        start = graph.start_nodes(uow, node)
        closure = walk(uow, start, Direction.UPSTREAM, budget, None, deadline_check(deadline))
        found = graph.load(uow, closure, None, answers.audit_on, with_contexts=False)
    produced = {artifact_id for _, artifact_id, _, kind, _ in closure.events if kind in OUTPUT_LIKE}
    unexpanded = {node_id for kind, node_id in closure.frontier if kind is ARTIFACT}
    gaps, checks = find_gaps(found, produced, unexpanded, answers.conventions)
    gaps.sort(key=lambda gap: (gap[0], gap[1][0] is not ARTIFACT, gap[1][1]))
    return pb.CompletenessResponse(
        score=(checks - len(gaps)) / checks if checks else 1.0,
        checks=checks,
        gaps=[pb.Gap(kind=kind, node=graph.ref(node), message=message) for kind, node, message in gaps],
        truncated=closure.truncated,  # type: ignore[arg-type]
    )


def find_gaps(
    found: graph.Graph, produced: set[int], unexpanded: set[int], conventions: Conventions
) -> tuple[list[tuple[str, Node, str]], int]:
    """The failed checks as (kind, node, message), and how many checks were made."""
    gaps: list[tuple[str, Node, str]] = []
    checks = 0
    for artifact in found.artifacts:
        node: Node = (ARTIFACT, artifact.id)
        name = _artifact_label(artifact)
        checks += 2
        if conventions.first(artifact, conventions.digest) is None:
            gaps.append(
                (
                    ARTIFACT_WITHOUT_DIGEST,
                    node,
                    f"{name} has no content digest: record one of the properties {_names(conventions.digest)}",
                )
            )
        if conventions.first(artifact, conventions.version) is None:
            gaps.append(
                (
                    ARTIFACT_WITHOUT_VERSION,
                    node,
                    f"{name} has no version: record one of the properties {_names(conventions.version)}",
                )
            )
        if artifact.id not in unexpanded:
            checks += 1
            if artifact.id not in produced:
                gaps.append(
                    (
                        ARTIFACT_WITHOUT_PRODUCER,
                        node,
                        f"{name} was produced by no execution: record the step that wrote it (an OUTPUT event)",
                    )
                )
    for execution in found.executions:
        node = (EXECUTION, execution.id)
        name = _execution_label(execution)
        checks += 3
        if conventions.first(execution, conventions.code_version) is None:
            gaps.append(
                (
                    EXECUTION_WITHOUT_CODE_VERSION,
                    node,
                    f"{name} has no code version: record one of the properties {_names(conventions.code_version)}",
                )
            )
        if not conventions.parameters(execution):
            gaps.append(
                (
                    EXECUTION_WITHOUT_PARAMETERS,
                    node,
                    f"{name} has no parameters: record the settings it ran with as properties",
                )
            )
        if execution.last_known_state not in _FINISHED:
            state = _state_name(execution.last_known_state)
            gaps.append(
                (
                    EXECUTION_NOT_COMPLETE,
                    node,
                    f"{name} is {state}, not COMPLETE or CACHED: its outputs may not be those of a finished run",
                )
            )
    return gaps, checks


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "(none configured)"


def _state_name(value: mlmd.Execution.State.ValueType) -> str:
    states = mlmd.Execution.State
    return str(states.Name(value)) if value in states.values() else f"state {value}"


def _artifact_label(artifact: Any) -> str:
    where = artifact.uri if artifact.HasField("uri") and artifact.uri else None
    if where is None and artifact.HasField("name"):
        where = artifact.name
    return f"artifact {artifact.id} ({artifact.type}{'' if where is None else ' ' + where})"


def _execution_label(execution: Any) -> str:
    name = f" {execution.name}" if execution.HasField("name") else ""
    return f"execution {execution.id} ({execution.type}{name})"
