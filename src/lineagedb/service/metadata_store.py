"""MetadataStore: MLMD's API semantics, one public method per RPC.

Each method takes the request message and returns the response message. Each
opens exactly one transaction; a failure anywhere rolls back everything the
request wrote (spec §1.3). Errors are the domain errors of `lineagedb.errors`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from google.protobuf.unknown_fields import UnknownFieldSet

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service import edges
from lineagedb.service import types as type_rules
from lineagedb.service.composite import CompositeWriter
from lineagedb.service.nodes import NodeWriter, UpdateOptions
from lineagedb.service.type_cache import TypeCache
from lineagedb.store import locks, pagination
from lineagedb.store.bootstrap import SYSTEM_TYPE_NAMES
from lineagedb.store.repositories import edges as edge_repo
from lineagedb.store.repositories import listing
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories import types as type_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.schema import ARTIFACT_KIND, CONTEXT_KIND, EXECUTION_KIND, check_text
from lineagedb.store.unit_of_work import Database, UnitOfWork

ARTIFACT, EXECUTION, CONTEXT = NodeKind.ARTIFACT, NodeKind.EXECUTION, NodeKind.CONTEXT


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class MetadataStore:
    def __init__(self, database: Database, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.db = database
        self.clock = clock
        self.types = TypeCache()

    def _writer(self, uow: UnitOfWork, kind: NodeKind) -> NodeWriter:
        return NodeWriter(uow, kind, self.types, self.clock)

    # -- type writes (§3.1) --------------------------------------------------------

    def _put_one_type(self, kind: int, request: Any, field: str) -> int:
        _check_all_fields_match(request)
        requested = getattr(request, field)
        # A re-put that changes nothing: answered from the cache and at most one read.
        unchanged = type_rules.unchanged_put_id(self.db, self.types, kind, requested, request.can_omit_fields)
        if unchanged is not None:
            return unchanged
        # MySQL/MariaDB: put_type_record's first statement is the named lock (MLMDEnv's row).
        with locks.env_locked_exclusively_first(), self.db.transaction() as uow:
            record = type_rules.put_type_record(
                uow, kind, requested, request.can_add_fields, request.can_omit_fields, alone=True
            )
            self.types.remember(uow, record)
            return record.id

    def put_artifact_type(self, request: svc.PutArtifactTypeRequest) -> svc.PutArtifactTypeResponse:
        return svc.PutArtifactTypeResponse(type_id=self._put_one_type(ARTIFACT_KIND, request, "artifact_type"))

    def put_execution_type(self, request: svc.PutExecutionTypeRequest) -> svc.PutExecutionTypeResponse:
        return svc.PutExecutionTypeResponse(type_id=self._put_one_type(EXECUTION_KIND, request, "execution_type"))

    def put_context_type(self, request: svc.PutContextTypeRequest) -> svc.PutContextTypeResponse:
        return svc.PutContextTypeResponse(type_id=self._put_one_type(CONTEXT_KIND, request, "context_type"))

    def put_types(self, request: svc.PutTypesRequest) -> svc.PutTypesResponse:
        _check_all_fields_match(request)
        groups: list[tuple[int, Sequence[Any]]] = [
            (ARTIFACT_KIND, request.artifact_types),
            (EXECUTION_KIND, request.execution_types),
            (CONTEXT_KIND, request.context_types),
        ]
        with self.db.transaction() as uow:
            ids = type_rules.put_types(uow, groups, request.can_add_fields, request.can_omit_fields)
        return svc.PutTypesResponse(artifact_type_ids=ids[0], execution_type_ids=ids[1], context_type_ids=ids[2])

    # -- type reads (§4.3) -----------------------------------------------------------

    def _get_type(self, kind: int, request: Any) -> Any:
        with self.db.transaction(write=False) as uow:
            record = type_repo.by_name(uow, kind, request.type_name, request.type_version or None)
        if record is None:
            version = f" version {request.type_version!r}" if request.type_version else ""
            raise errors.NotFoundError(f"no {type_rules.KIND_LABELS[kind]} named {request.type_name!r}{version}")
        return type_rules.to_message(record)

    def get_artifact_type(self, request: svc.GetArtifactTypeRequest) -> svc.GetArtifactTypeResponse:
        return svc.GetArtifactTypeResponse(artifact_type=self._get_type(ARTIFACT_KIND, request))

    def get_execution_type(self, request: svc.GetExecutionTypeRequest) -> svc.GetExecutionTypeResponse:
        return svc.GetExecutionTypeResponse(execution_type=self._get_type(EXECUTION_KIND, request))

    def get_context_type(self, request: svc.GetContextTypeRequest) -> svc.GetContextTypeResponse:
        return svc.GetContextTypeResponse(context_type=self._get_type(CONTEXT_KIND, request))

    def _types_by_id(self, kind: int, ids: Iterable[int]) -> list[Any]:
        wanted = list(ids)
        with self.db.transaction(write=False) as uow:
            found = type_repo.by_ids(uow, kind, wanted)
        # Request order, duplicates kept, unknown ids skipped (probed MLMD behaviour).
        return [type_rules.to_message(found[i]) for i in wanted if i in found]

    def get_artifact_types_by_id(self, request: svc.GetArtifactTypesByIDRequest) -> svc.GetArtifactTypesByIDResponse:
        return svc.GetArtifactTypesByIDResponse(artifact_types=self._types_by_id(ARTIFACT_KIND, request.type_ids))

    def get_execution_types_by_id(self, request: svc.GetExecutionTypesByIDRequest) -> svc.GetExecutionTypesByIDResponse:
        return svc.GetExecutionTypesByIDResponse(execution_types=self._types_by_id(EXECUTION_KIND, request.type_ids))

    def get_context_types_by_id(self, request: svc.GetContextTypesByIDRequest) -> svc.GetContextTypesByIDResponse:
        return svc.GetContextTypesByIDResponse(context_types=self._types_by_id(CONTEXT_KIND, request.type_ids))

    def _all_types(self, kind: int) -> list[Any]:
        with self.db.transaction(write=False) as uow:
            records = type_repo.all_of_kind(uow, kind)
        if kind != CONTEXT_KIND:
            records = [r for r in records if r.name not in SYSTEM_TYPE_NAMES]
        return [type_rules.to_message(r, type_rules.LIST_ALL) for r in records]

    def get_artifact_types(self, request: svc.GetArtifactTypesRequest) -> svc.GetArtifactTypesResponse:
        return svc.GetArtifactTypesResponse(artifact_types=self._all_types(ARTIFACT_KIND))

    def get_execution_types(self, request: svc.GetExecutionTypesRequest) -> svc.GetExecutionTypesResponse:
        return svc.GetExecutionTypesResponse(execution_types=self._all_types(EXECUTION_KIND))

    def get_context_types(self, request: svc.GetContextTypesRequest) -> svc.GetContextTypesResponse:
        return svc.GetContextTypesResponse(context_types=self._all_types(CONTEXT_KIND))

    def _types_by_external_ids(self, kind: int, external_ids: Iterable[str]) -> list[Any]:
        wanted = _check_external_ids(external_ids)
        if not wanted:
            return []
        with self.db.transaction(write=False) as uow:
            records = type_repo.by_external_ids(uow, kind, wanted)
        if not records:
            raise errors.NotFoundError(f"no {type_rules.KIND_LABELS[kind]} has any of the given external_ids")
        return [type_rules.to_message(r, type_rules.BY_EXTERNAL_ID) for r in records]

    def get_artifact_types_by_external_ids(
        self, request: svc.GetArtifactTypesByExternalIdsRequest
    ) -> svc.GetArtifactTypesByExternalIdsResponse:
        types = self._types_by_external_ids(ARTIFACT_KIND, request.external_ids)
        return svc.GetArtifactTypesByExternalIdsResponse(artifact_types=types)

    def get_execution_types_by_external_ids(
        self, request: svc.GetExecutionTypesByExternalIdsRequest
    ) -> svc.GetExecutionTypesByExternalIdsResponse:
        types = self._types_by_external_ids(EXECUTION_KIND, request.external_ids)
        return svc.GetExecutionTypesByExternalIdsResponse(execution_types=types)

    def get_context_types_by_external_ids(
        self, request: svc.GetContextTypesByExternalIdsRequest
    ) -> svc.GetContextTypesByExternalIdsResponse:
        types = self._types_by_external_ids(CONTEXT_KIND, request.external_ids)
        return svc.GetContextTypesByExternalIdsResponse(context_types=types)

    # -- node writes (§4.4) ------------------------------------------------------------

    def _put_nodes(self, kind: NodeKind, nodes: Any, request: Any, check_time: bool = False) -> list[int]:
        mask = request.update_mask if request.HasField("update_mask") else None
        options = UpdateOptions(mask=mask, check_last_update_time=check_time)
        with self.db.transaction() as uow:
            return self._writer(uow, kind).put(list(nodes), options)

    def put_artifacts(self, request: svc.PutArtifactsRequest) -> svc.PutArtifactsResponse:
        check = request.options.abort_if_latest_updated_time_changed
        ids = self._put_nodes(ARTIFACT, request.artifacts, request, check_time=check)
        return svc.PutArtifactsResponse(artifact_ids=ids)

    def put_executions(self, request: svc.PutExecutionsRequest) -> svc.PutExecutionsResponse:
        return svc.PutExecutionsResponse(execution_ids=self._put_nodes(EXECUTION, request.executions, request))

    def put_contexts(self, request: svc.PutContextsRequest) -> svc.PutContextsResponse:
        return svc.PutContextsResponse(context_ids=self._put_nodes(CONTEXT, request.contexts, request))

    # -- edge writes (§4.7) --------------------------------------------------------------

    def put_events(self, request: svc.PutEventsRequest) -> svc.PutEventsResponse:
        with self.db.transaction() as uow:
            edges.put_events(uow, list(request.events), self.clock())
        return svc.PutEventsResponse()

    def put_attributions_and_associations(
        self, request: svc.PutAttributionsAndAssociationsRequest
    ) -> svc.PutAttributionsAndAssociationsResponse:
        with self.db.transaction() as uow:
            edges.put_attributions_and_associations(uow, list(request.attributions), list(request.associations))
        return svc.PutAttributionsAndAssociationsResponse()

    def put_parent_contexts(self, request: svc.PutParentContextsRequest) -> svc.PutParentContextsResponse:
        with self.db.transaction() as uow:
            edges.put_parent_contexts(uow, list(request.parent_contexts))
        return svc.PutParentContextsResponse()

    # -- node reads (§4.8) ------------------------------------------------------------------

    # Reads build their nodes in the response's own repeated field (`into`): copying
    # hundreds of finished nodes into a response costs about as much as building them.

    def _list(
        self, kind: NodeKind, request: Any, into: Any, scope: listing.Scope | None = None
    ) -> tuple[list[Any], str | None]:
        """All nodes (no options) or one page; the token is None without options."""
        scope = scope or listing.Scope()
        with self.db.transaction(write=False) as uow:
            if not request.HasField("options"):
                return listing.list_all(uow, kind, scope, into), None
            page = pagination.parse_page(request.options, uow.tenancy.page_token_key)
            return listing.list_page(uow, kind, page, scope, into)

    def get_artifacts(self, request: svc.GetArtifactsRequest) -> svc.GetArtifactsResponse:
        response = svc.GetArtifactsResponse()
        _, token = self._list(ARTIFACT, request, response.artifacts)
        return _with_token(response, token)

    def get_executions(self, request: svc.GetExecutionsRequest) -> svc.GetExecutionsResponse:
        response = svc.GetExecutionsResponse()
        _, token = self._list(EXECUTION, request, response.executions)
        return _with_token(response, token)

    def get_contexts(self, request: svc.GetContextsRequest) -> svc.GetContextsResponse:
        response = svc.GetContextsResponse()
        _, token = self._list(CONTEXT, request, response.contexts)
        return _with_token(response, token)

    def _by_ids(self, kind: NodeKind, ids: Iterable[int], into: Any) -> None:
        wanted = list(ids)
        if wanted:
            with self.db.transaction(write=False) as uow:
                node_repo.load_by_ids(uow, kind, wanted, into=into)

    def get_artifacts_by_id(self, request: svc.GetArtifactsByIDRequest) -> svc.GetArtifactsByIDResponse:
        response = svc.GetArtifactsByIDResponse()
        wanted = list(request.artifact_ids)
        if not wanted:
            return response
        with self.db.transaction(write=False) as uow:
            artifacts = node_repo.load_by_ids(uow, ARTIFACT, wanted, into=response.artifacts)
            if request.populate_artifact_types and artifacts:
                order = list(dict.fromkeys(a.type_id for a in artifacts))
                found = type_repo.by_ids(uow, ARTIFACT_KIND, order)
                response.artifact_types.extend(
                    type_rules.to_message(found[i], type_rules.BY_EXTERNAL_ID) for i in order if i in found
                )
        return response

    def get_executions_by_id(self, request: svc.GetExecutionsByIDRequest) -> svc.GetExecutionsByIDResponse:
        response = svc.GetExecutionsByIDResponse()
        self._by_ids(EXECUTION, request.execution_ids, response.executions)
        return response

    def get_contexts_by_id(self, request: svc.GetContextsByIDRequest) -> svc.GetContextsByIDResponse:
        response = svc.GetContextsByIDResponse()
        self._by_ids(CONTEXT, request.context_ids, response.contexts)
        return response

    def _by_type(self, kind: NodeKind, request: Any, response: Any, into: Any) -> Any:
        """`response` with the nodes (built in `into`) and its token: present (possibly "")
        whenever the type has a node, absent otherwise."""
        with self.db.transaction(write=False) as uow:
            record = type_repo.by_name(uow, kind.type_kind, request.type_name, request.type_version or None)
            if record is None:
                return response
            scope = listing.Scope(type_id=record.id)
            if not request.HasField("options"):
                listing.list_all(uow, kind, scope, into)
                return response
            nodes, token = listing.list_page(
                uow, kind, pagination.parse_page(request.options, uow.tenancy.page_token_key), scope, into
            )
            # MLMD sets the token (possibly "") whenever the type has a node, even when the
            # filter or the page position leaves this page empty; it leaves it absent only
            # for a type without nodes (§5.5, probed). Presence is visible to clients.
            if nodes or token or _has_nodes(uow, kind, scope):
                response.next_page_token = token
        return response

    def get_artifacts_by_type(self, request: svc.GetArtifactsByTypeRequest) -> svc.GetArtifactsByTypeResponse:
        response = svc.GetArtifactsByTypeResponse()
        return self._by_type(ARTIFACT, request, response, response.artifacts)

    def get_executions_by_type(self, request: svc.GetExecutionsByTypeRequest) -> svc.GetExecutionsByTypeResponse:
        response = svc.GetExecutionsByTypeResponse()
        return self._by_type(EXECUTION, request, response, response.executions)

    def get_contexts_by_type(self, request: svc.GetContextsByTypeRequest) -> svc.GetContextsByTypeResponse:
        response = svc.GetContextsByTypeResponse()
        return self._by_type(CONTEXT, request, response, response.contexts)

    def _by_type_and_name(self, kind: NodeKind, request: Any, name: str) -> Any | None:
        # An unknown type ends the call before the name is looked up; text that cannot be
        # stored is refused all the same (INVALID_ARGUMENT, as on every other path).
        check_text(name, f"{kind.label} name")
        with self.db.transaction(write=False) as uow:
            record = type_repo.by_name(uow, kind.type_kind, request.type_name, request.type_version or None)
            if record is None:
                return None
            found = node_repo.load_by_type_and_name(uow, kind, record.id, name)
        return found

    def get_artifact_by_type_and_name(
        self, request: svc.GetArtifactByTypeAndNameRequest
    ) -> svc.GetArtifactByTypeAndNameResponse:
        node = self._by_type_and_name(ARTIFACT, request, request.artifact_name)
        return svc.GetArtifactByTypeAndNameResponse(artifact=node) if node else svc.GetArtifactByTypeAndNameResponse()

    def get_execution_by_type_and_name(
        self, request: svc.GetExecutionByTypeAndNameRequest
    ) -> svc.GetExecutionByTypeAndNameResponse:
        node = self._by_type_and_name(EXECUTION, request, request.execution_name)
        return (
            svc.GetExecutionByTypeAndNameResponse(execution=node) if node else svc.GetExecutionByTypeAndNameResponse()
        )

    def get_context_by_type_and_name(
        self, request: svc.GetContextByTypeAndNameRequest
    ) -> svc.GetContextByTypeAndNameResponse:
        node = self._by_type_and_name(CONTEXT, request, request.context_name)
        return svc.GetContextByTypeAndNameResponse(context=node) if node else svc.GetContextByTypeAndNameResponse()

    def get_artifacts_by_uri(self, request: svc.GetArtifactsByURIRequest) -> svc.GetArtifactsByURIResponse:
        if any(field.field_number == 1 for field in UnknownFieldSet(request)):  # type: ignore[attr-defined]
            raise errors.InvalidArgumentError(
                "the request contains the deprecated singular `uri` field (number 1); use `uris` and upgrade the client"
            )
        uris = list(dict.fromkeys(request.uris))
        if not uris:
            return svc.GetArtifactsByURIResponse()
        with self.db.transaction(write=False) as uow:
            found = node_repo.load_by_uris(uow, uris)
        grouped: dict[str, list[Any]] = {}
        for artifact in found:
            grouped.setdefault(artifact.uri, []).append(artifact)
        return svc.GetArtifactsByURIResponse(artifacts=[a for uri in uris for a in grouped.get(uri, [])])

    def _by_external_ids(self, kind: NodeKind, external_ids: Iterable[str]) -> list[Any]:
        wanted = _check_external_ids(external_ids)
        if not wanted:
            return []
        with self.db.transaction(write=False) as uow:
            nodes = node_repo.load_by_external_ids(uow, kind, wanted)
        if not nodes:
            raise errors.NotFoundError(f"no {kind.label} has any of the given external_ids")
        return nodes

    def get_artifacts_by_external_ids(
        self, request: svc.GetArtifactsByExternalIdsRequest
    ) -> svc.GetArtifactsByExternalIdsResponse:
        return svc.GetArtifactsByExternalIdsResponse(artifacts=self._by_external_ids(ARTIFACT, request.external_ids))

    def get_executions_by_external_ids(
        self, request: svc.GetExecutionsByExternalIdsRequest
    ) -> svc.GetExecutionsByExternalIdsResponse:
        nodes = self._by_external_ids(EXECUTION, request.external_ids)
        return svc.GetExecutionsByExternalIdsResponse(executions=nodes)

    def get_contexts_by_external_ids(
        self, request: svc.GetContextsByExternalIdsRequest
    ) -> svc.GetContextsByExternalIdsResponse:
        return svc.GetContextsByExternalIdsResponse(contexts=self._by_external_ids(CONTEXT, request.external_ids))

    # -- events -------------------------------------------------------------------------------

    def get_events_by_execution_ids(
        self, request: svc.GetEventsByExecutionIDsRequest
    ) -> svc.GetEventsByExecutionIDsResponse:
        if not request.execution_ids:
            return svc.GetEventsByExecutionIDsResponse()
        with self.db.transaction(write=False) as uow:
            events = edge_repo.events_by(uow, "execution_id", request.execution_ids)
        return svc.GetEventsByExecutionIDsResponse(events=events)

    def get_events_by_artifact_ids(
        self, request: svc.GetEventsByArtifactIDsRequest
    ) -> svc.GetEventsByArtifactIDsResponse:
        if not request.artifact_ids:
            return svc.GetEventsByArtifactIDsResponse()
        with self.db.transaction(write=False) as uow:
            events = edge_repo.events_by(uow, "artifact_id", request.artifact_ids)
        return svc.GetEventsByArtifactIDsResponse(events=events)

    # -- relationship reads (§4.9) ------------------------------------------------------------

    def _contexts_linked(self, links: Callable[[UnitOfWork], list[Any]], what: str) -> list[Any]:
        with self.db.transaction(write=False) as uow:
            context_ids = {row.context_id for row in links(uow)}
            contexts = node_repo.load_by_ids(uow, CONTEXT, context_ids) if context_ids else []
        if not contexts:
            raise errors.NotFoundError(f"no context is linked to {what}")
        return contexts

    def get_contexts_by_artifact(self, request: svc.GetContextsByArtifactRequest) -> svc.GetContextsByArtifactResponse:
        contexts = self._contexts_linked(
            lambda uow: edge_repo.attributions_for(uow, [request.artifact_id]), f"artifact {request.artifact_id}"
        )
        return svc.GetContextsByArtifactResponse(contexts=contexts)

    def get_contexts_by_execution(
        self, request: svc.GetContextsByExecutionRequest
    ) -> svc.GetContextsByExecutionResponse:
        contexts = self._contexts_linked(
            lambda uow: edge_repo.associations_for(uow, [request.execution_id]), f"execution {request.execution_id}"
        )
        return svc.GetContextsByExecutionResponse(contexts=contexts)

    def _related(self, context_ids: Iterable[int], parents: bool) -> dict[int, list[Any]]:
        """For each id, its direct parents (or children), as full contexts ordered by id."""
        wanted = list(dict.fromkeys(context_ids))
        with self.db.transaction(write=False) as uow:
            if parents:
                pairs = [(child, parent) for child, parent in edge_repo.parent_links(uow, wanted)]
            else:
                pairs = [(parent, child) for child, parent in edge_repo.child_links(uow, wanted)]
            contexts = {c.id: c for c in node_repo.load_by_ids(uow, CONTEXT, {other for _, other in pairs})}
        related: dict[int, list[Any]] = {}
        for this, other in sorted(pairs):
            if other in contexts:
                related.setdefault(this, []).append(contexts[other])
        return related

    def get_parent_contexts_by_context(
        self, request: svc.GetParentContextsByContextRequest
    ) -> svc.GetParentContextsByContextResponse:
        found = self._related([request.context_id], parents=True).get(request.context_id, [])
        return svc.GetParentContextsByContextResponse(contexts=found)

    def get_children_contexts_by_context(
        self, request: svc.GetChildrenContextsByContextRequest
    ) -> svc.GetChildrenContextsByContextResponse:
        found = self._related([request.context_id], parents=False).get(request.context_id, [])
        return svc.GetChildrenContextsByContextResponse(contexts=found)

    def get_parent_contexts_by_contexts(
        self, request: svc.GetParentContextsByContextsRequest
    ) -> svc.GetParentContextsByContextsResponse:
        if not request.context_ids:
            raise errors.InvalidArgumentError("context_ids must not be empty")
        response = svc.GetParentContextsByContextsResponse()
        for child, parents in self._related(request.context_ids, parents=True).items():
            response.contexts[child].parent_contexts.extend(parents)
        return response

    def get_children_contexts_by_contexts(
        self, request: svc.GetChildrenContextsByContextsRequest
    ) -> svc.GetChildrenContextsByContextsResponse:
        if not request.context_ids:
            raise errors.InvalidArgumentError("context_ids must not be empty")
        response = svc.GetChildrenContextsByContextsResponse()
        for parent, children in self._related(request.context_ids, parents=False).items():
            response.contexts[parent].children_contexts.extend(children)
        return response

    def get_artifacts_by_context(self, request: svc.GetArtifactsByContextRequest) -> svc.GetArtifactsByContextResponse:
        response = svc.GetArtifactsByContextResponse()
        _, token = self._list(ARTIFACT, request, response.artifacts, listing.Scope(context_id=request.context_id))
        return _with_token(response, token)

    def get_executions_by_context(
        self, request: svc.GetExecutionsByContextRequest
    ) -> svc.GetExecutionsByContextResponse:
        response = svc.GetExecutionsByContextResponse()
        _, token = self._list(EXECUTION, request, response.executions, listing.Scope(context_id=request.context_id))
        return _with_token(response, token)

    # -- composite writes (§4.5, §4.6) and lineage (§7) -------------------------------------------

    def put_execution(self, request: svc.PutExecutionRequest) -> svc.PutExecutionResponse:
        with self.db.transaction() as uow:
            return CompositeWriter(uow, self.types, self.clock).put_execution(request)

    def put_lineage_subgraph(self, request: svc.PutLineageSubgraphRequest) -> svc.PutLineageSubgraphResponse:
        with self.db.transaction() as uow:
            return CompositeWriter(uow, self.types, self.clock).put_lineage_subgraph(request)

    def get_lineage_graph(self, request: svc.GetLineageGraphRequest) -> svc.GetLineageGraphResponse:
        from lineagedb.service import lineage

        with self.db.transaction(write=False) as uow:
            graph = lineage.get_lineage_graph(uow, request.options)
        return svc.GetLineageGraphResponse(subgraph=graph)

    def get_lineage_subgraph(self, request: svc.GetLineageSubgraphRequest) -> svc.GetLineageSubgraphResponse:
        from lineagedb.service import lineage

        with self.db.transaction(write=False) as uow:
            graph = lineage.get_lineage_subgraph(uow, request.lineage_subgraph_query_options, request.read_mask.paths)
        return svc.GetLineageSubgraphResponse(lineage_subgraph=graph)


def _check_all_fields_match(request: Any) -> None:
    if request.HasField("all_fields_match") and not request.all_fields_match:
        raise errors.UnimplementedError("all_fields_match=false is not supported")


def _check_external_ids(external_ids: Iterable[str]) -> list[str]:
    wanted = list(external_ids)
    if any(not external_id for external_id in wanted):
        raise errors.InvalidArgumentError("external_ids must not contain an empty string")
    return wanted


def _has_nodes(uow: UnitOfWork, kind: NodeKind, scope: listing.Scope) -> bool:
    """Whether any node the caller may read is in `scope` (a one-row page, no filter)."""
    first = pagination.parse_page(mlmd.ListOperationOptions(max_result_size=1), uow.tenancy.page_token_key)
    nodes, _ = listing.list_page(uow, kind, first, scope)
    return bool(nodes)


def _with_token(response: Any, token: str | None) -> Any:
    if token:
        response.next_page_token = token
    return response


__all__ = ["MetadataStore", "mlmd"]
