"""The atomic multi-entity writes: PutExecution (§4.5) and PutLineageSubgraph (§4.6).

Both run inside the caller's single transaction, so a failing member leaves no
trace of the others. Runs of new nodes are written with one multi-row INSERT.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service import access, edges
from lineagedb.service.nodes import NodeWriter, UpdateOptions
from lineagedb.service.type_cache import TypeCache
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.unit_of_work import UniqueViolation, UnitOfWork

ARTIFACT, EXECUTION, CONTEXT = NodeKind.ARTIFACT, NodeKind.EXECUTION, NodeKind.CONTEXT
MISSING_ARTIFACT = -1


class CompositeWriter:
    def __init__(self, uow: UnitOfWork, types: TypeCache, clock: Callable[[], int]) -> None:
        self.uow = uow
        self.clock = clock
        self.writers = {kind: NodeWriter(uow, kind, types, clock) for kind in NodeKind}

    # -- shared pieces -------------------------------------------------------------

    def _reuse_map(self, artifacts: Sequence[mlmd.Artifact]) -> dict[str, int]:
        """external_id -> id of stored artifacts named by new artifacts of the request."""
        wanted = {a.external_id for a in artifacts if not a.HasField("id") and a.external_id}
        if not wanted:
            return {}
        found = node_repo.load_by_external_ids(self.uow, ARTIFACT, sorted(wanted))
        return {a.external_id: a.id for a in found}

    def _as_update_of(self, node: Any, node_id: int) -> Any:
        updated = type(node)()
        updated.CopyFrom(node)
        updated.id = node_id
        return updated

    def _put_context(self, context: mlmd.Context, reuse: bool) -> int:
        """Create, whole-update or (with `reuse`) look up one context by (type_id, name)."""
        if not context.HasField("type_id") or not context.HasField("name") or not context.name:
            raise errors.InvalidArgumentError("every context needs type_id and a non-empty name")
        writer = self.writers[CONTEXT]
        if context.HasField("id"):
            return writer.put([context])[0]
        if reuse:
            existing = node_repo.load_by_type_and_name(self.uow, CONTEXT, context.type_id, context.name)
            if existing is not None:
                return int(existing.id)
        writer.check_new([context])
        try:
            return node_repo.insert_nodes(self.uow, CONTEXT, [context], self.clock())[0]
        except UniqueViolation as error:
            if reuse and not node_repo.exists_unscoped(self.uow, CONTEXT, context.type_id, context.name):
                # Another writer created it first; the client's retry will find and reuse it.
                raise errors.AbortedError(
                    f"context {context.name!r} was created concurrently; retry to reuse it"
                ) from error
            raise errors.AlreadyExistsError(
                f"a context of type {context.type_id} named {context.name!r} already exists"
            ) from error

    # -- PutExecution ------------------------------------------------------------------

    def put_execution(self, request: svc.PutExecutionRequest) -> svc.PutExecutionResponse:
        if not request.HasField("execution"):
            raise errors.InvalidArgumentError("PutExecution needs an execution")
        options = request.options
        access.learn_namespaces(self.uow, _stored_nodes_named(request))
        artifact_ids = self._put_pair_artifacts(request, options.reuse_artifact_if_already_exist_by_external_id)
        execution_writer = self.writers[EXECUTION]
        execution = request.execution
        update = UpdateOptions(force_update_time=options.force_update_time)
        execution_id = execution_writer.put([execution], update)[0]

        events: list[mlmd.Event] = []
        response_ids: list[int] = []
        for pair, artifact_id in zip(request.artifact_event_pairs, artifact_ids, strict=True):
            resolved = artifact_id
            if pair.HasField("event"):
                event = mlmd.Event()
                event.CopyFrom(pair.event)
                if event.HasField("execution_id") and event.execution_id != execution_id:
                    raise errors.InvalidArgumentError(
                        f"event execution_id {event.execution_id} differs from the execution's id {execution_id}"
                    )
                event.execution_id = execution_id
                if artifact_id is not None:
                    if event.HasField("artifact_id") and event.artifact_id != artifact_id:
                        raise errors.InvalidArgumentError(
                            f"event artifact_id {event.artifact_id} differs from its pair's artifact id {artifact_id}"
                        )
                    event.artifact_id = artifact_id
                elif not event.HasField("artifact_id"):
                    raise errors.InvalidArgumentError("an event without an artifact in its pair needs artifact_id")
                resolved = event.artifact_id
                events.append(event)
            response_ids.append(resolved if resolved is not None else MISSING_ARTIFACT)
        new_execution = not execution.HasField("id")
        edges.put_events(self.uow, events, self.clock(), check_nodes=False, new_execution=new_execution)

        context_ids = []
        for context in request.contexts:
            if context.HasField("id") and options.force_reuse_context:
                if not access.readable_ids(self.uow, "context", [context.id]):
                    raise errors.NotFoundError(f"context {context.id} does not exist (force_reuse_context)")
                context_ids.append(context.id)
                continue
            context_ids.append(self._put_context(context, options.reuse_context_if_already_exist))
        linked = [a for a in dict.fromkeys(response_ids) if a != MISSING_ARTIFACT]
        edges.link_associations(self.uow, ((c, execution_id) for c in dict.fromkeys(context_ids)))
        edges.link_attributions(self.uow, ((c, a) for c in dict.fromkeys(context_ids) for a in linked))
        return svc.PutExecutionResponse(execution_id=execution_id, artifact_ids=response_ids, context_ids=context_ids)

    def _put_pair_artifacts(self, request: svc.PutExecutionRequest, reuse: bool) -> list[int | None]:
        """Write the pairs' artifacts in order; None for pairs without one.

        With `reuse`, a new artifact whose external_id names a stored artifact (or one
        created earlier in this request) becomes a whole update of it.
        """
        pairs = request.artifact_event_pairs
        artifacts = [pair.artifact for pair in pairs if pair.HasField("artifact")]
        writer = self.writers[ARTIFACT]
        if not reuse:
            ids = iter(writer.put(artifacts))
            return [next(ids) if pair.HasField("artifact") else None for pair in pairs]
        known = self._reuse_map(artifacts)
        result: list[int | None] = []
        for pair in pairs:
            if not pair.HasField("artifact"):
                result.append(None)
                continue
            artifact = pair.artifact
            if not artifact.HasField("id") and artifact.external_id in known:
                artifact = self._as_update_of(artifact, known[artifact.external_id])
            artifact_id = writer.put([artifact])[0]
            if artifact.external_id:
                known.setdefault(artifact.external_id, artifact_id)
            result.append(artifact_id)
        return result

    # -- PutLineageSubgraph ------------------------------------------------------------------

    def put_lineage_subgraph(self, request: svc.PutLineageSubgraphRequest) -> svc.PutLineageSubgraphResponse:
        for index, edge in enumerate(request.event_edges):
            _check_edge(index, edge, request)
        for kind, nodes in (
            (ARTIFACT, request.artifacts),
            (EXECUTION, request.executions),
            (CONTEXT, request.contexts),
        ):
            self.writers[kind].check_new(list(nodes))
        options = request.options
        context_ids = [self._put_context(c, options.reuse_context_if_already_exist) for c in request.contexts]

        artifacts = list(request.artifacts)
        if options.reuse_artifact_if_already_exist_by_external_id:
            known = self._reuse_map(artifacts)  # built once: new duplicates in the request still clash
            artifacts = [
                self._as_update_of(a, known[a.external_id]) if not a.HasField("id") and a.external_id in known else a
                for a in artifacts
            ]
        artifact_ids = self._put_validated(ARTIFACT, artifacts)
        execution_ids = self._put_validated(EXECUTION, list(request.executions))

        distinct_contexts = list(dict.fromkeys(context_ids))
        executions = list(dict.fromkeys(execution_ids))
        linked_artifacts = list(dict.fromkeys(artifact_ids))
        edges.link_associations(self.uow, ((c, e) for c in distinct_contexts for e in executions))
        edges.link_attributions(self.uow, ((c, a) for c in distinct_contexts for a in linked_artifacts))

        events = []
        for edge in request.event_edges:
            event = mlmd.Event()
            event.CopyFrom(edge.event)
            if not event.HasField("execution_id"):
                event.execution_id = execution_ids[edge.execution_index]
            if not event.HasField("artifact_id"):
                event.artifact_id = artifact_ids[edge.artifact_index]
            events.append(event)
        edges.put_events(self.uow, events, self.clock(), check_nodes=False)
        return svc.PutLineageSubgraphResponse(
            execution_ids=execution_ids, artifact_ids=artifact_ids, context_ids=context_ids
        )

    def _put_validated(self, kind: NodeKind, nodes: list[Any]) -> list[int]:
        """Create/update nodes whose types and properties were already checked."""
        writer = self.writers[kind]
        stored = writer.load_stored(n.id for n in nodes if n.HasField("id"))
        ids: list[int] = []
        pending: list[Any] = []
        for node in nodes:
            if not node.HasField("id"):
                pending.append(node)
                continue
            ids.extend(writer.create(pending, validated=True))
            pending = []
            ids.append(writer.update(node, stored.get(node.id)))
        ids.extend(writer.create(pending, validated=True))
        return ids


def _check_edge(index: int, edge: Any, request: svc.PutLineageSubgraphRequest) -> None:
    if not edge.HasField("event"):
        raise errors.InvalidArgumentError(f"event_edges[{index}] has no event")
    for side, nodes in (("execution", request.executions), ("artifact", request.artifacts)):
        index_field, id_field = f"{side}_index", f"{side}_id"
        has_index, has_id = edge.HasField(index_field), edge.event.HasField(id_field)
        if not has_index and not has_id:
            raise errors.InvalidArgumentError(f"event_edges[{index}] needs {index_field} or event.{id_field}")
        if not has_index:
            continue
        position = getattr(edge, index_field)
        if position < 0 or position >= len(nodes):
            raise errors.OutOfRangeError(
                f"event_edges[{index}].{index_field} = {position} is outside the {len(nodes)} {side}s of the request"
            )
        if has_id:
            node = nodes[position]
            if not node.HasField("id") or node.id != getattr(edge.event, id_field):
                raise errors.InvalidArgumentError(
                    f"event_edges[{index}]: event.{id_field} does not match the id of {side}s[{position}]"
                )


def _stored_nodes_named(request: svc.PutExecutionRequest) -> dict[str, list[int]]:
    """The ids of stored nodes a PutExecution names, by kind: what its checks look up."""
    artifacts = [pair.artifact.id for pair in request.artifact_event_pairs if pair.artifact.HasField("id")]
    artifacts += [pair.event.artifact_id for pair in request.artifact_event_pairs if pair.event.HasField("artifact_id")]
    return {
        "artifact": artifacts,
        "execution": [request.execution.id] if request.execution.HasField("id") else [],
        "context": [context.id for context in request.contexts if context.HasField("id")],
    }
