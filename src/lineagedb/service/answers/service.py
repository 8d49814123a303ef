"""lineagedb.v1.LineageService: one public method per RPC, one read transaction each.

The api layer passes the call's deadline (a time.monotonic() value, or None) so a
walk can stop in time and say so instead of running into DEADLINE_EXCEEDED.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service.answers import completeness, diff, graph, manifest, report
from lineagedb.service.answers.closure import ARTIFACT, EXECUTION, Closure, Direction, deadline_check, walk
from lineagedb.service.answers.conventions import DEFAULT, Conventions
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
        response.depth = closure.depth
        response.truncated = closure.truncated  # type: ignore[assignment]
        response.frontier.extend(graph.ref(n) for n in closure.frontier)
        if as_of_ms is not None:
            response.as_of.CopyFrom(found.as_of)
        return response

    def impact(self, request: pb.ImpactRequest, deadline: float | None = None) -> pb.ImpactResponse:
        node = graph.parse_ref(request.node, "node")
        budget, as_of_ms = graph.max_nodes(request.max_nodes), graph.as_of(request.as_of_ms)
        states = {_artifact_state(name) for name in request.artifact_states}
        types = set(request.artifact_types)
        with self.db.transaction(write=False) as uow:
            closure = self._walk(uow, node, Direction.DOWNSTREAM, budget, as_of_ms, deadline)
            found = graph.load(uow, closure, as_of_ms, self.audit_on)
        started = set(closure.start)
        affected = [
            a
            for a in found.artifacts
            if (ARTIFACT, a.id) not in started and (not types or a.type in types) and (not states or a.state in states)
        ]
        groups = Counter((a.type, mlmd.Artifact.State.Name(a.state)) for a in affected)
        return pb.ImpactResponse(
            groups=[
                pb.ImpactGroup(type=type_name, state=state, count=count)
                for (type_name, state), count in sorted(groups.items(), key=lambda item: (-item[1], item[0]))
            ],
            artifacts=affected,
            executions=[e for e in found.executions if (EXECUTION, e.id) not in started],
            contexts=found.contexts,
            tree=[
                pb.Step(node=graph.ref(node), reached_from=graph.ref(via)) for node, via in closure.reached_from.items()
            ],
            events=found.events,
            depth=closure.depth,
            truncated=closure.truncated,  # type: ignore[arg-type]
            frontier=[graph.ref(n) for n in closure.frontier],
            as_of=found.as_of,
        )

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


def _artifact_state(name: str) -> Any:
    try:
        return mlmd.Artifact.State.Value(name)
    except ValueError:
        known = ", ".join(mlmd.Artifact.State.keys())
        raise errors.InvalidArgumentError(f"artifact_states: unknown state {name!r}; known: {known}") from None
