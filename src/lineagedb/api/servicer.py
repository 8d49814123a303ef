"""MetadataStoreService: pure delegation, one line per RPC.

Every method hands the request to `MetadataStore` and returns its response.
Validation, transactions and errors live elsewhere: errors become gRPC status
codes in `lineagedb.api.status`. tests/api/test_grpc_edge.py checks this class
against the service descriptor, so a new RPC cannot be missed.
"""

from __future__ import annotations

import time

import grpc

from lineagedb.proto.lineagedb.v1 import audit_pb2
from lineagedb.proto.lineagedb.v1 import audit_pb2_grpc as audit_grpc
from lineagedb.proto.lineagedb.v1 import deletion_pb2 as deletion
from lineagedb.proto.lineagedb.v1 import deletion_pb2_grpc as deletion_grpc
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as lineage
from lineagedb.proto.lineagedb.v1 import lineage_pb2_grpc as lineage_grpc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.service.answers.service import LineageAnswers
from lineagedb.service.audit import AuditQueries
from lineagedb.service.deletion import Deletion
from lineagedb.service.metadata_store import MetadataStore


class MetadataStoreServicer(svc_grpc.MetadataStoreServiceServicer):
    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def PutArtifactType(
        self, request: svc.PutArtifactTypeRequest, context: grpc.ServicerContext
    ) -> svc.PutArtifactTypeResponse:
        return self._store.put_artifact_type(request)

    def PutExecutionType(
        self, request: svc.PutExecutionTypeRequest, context: grpc.ServicerContext
    ) -> svc.PutExecutionTypeResponse:
        return self._store.put_execution_type(request)

    def PutContextType(
        self, request: svc.PutContextTypeRequest, context: grpc.ServicerContext
    ) -> svc.PutContextTypeResponse:
        return self._store.put_context_type(request)

    def PutTypes(self, request: svc.PutTypesRequest, context: grpc.ServicerContext) -> svc.PutTypesResponse:
        return self._store.put_types(request)

    def PutArtifacts(self, request: svc.PutArtifactsRequest, context: grpc.ServicerContext) -> svc.PutArtifactsResponse:
        return self._store.put_artifacts(request)

    def PutExecutions(
        self, request: svc.PutExecutionsRequest, context: grpc.ServicerContext
    ) -> svc.PutExecutionsResponse:
        return self._store.put_executions(request)

    def PutEvents(self, request: svc.PutEventsRequest, context: grpc.ServicerContext) -> svc.PutEventsResponse:
        return self._store.put_events(request)

    def PutExecution(self, request: svc.PutExecutionRequest, context: grpc.ServicerContext) -> svc.PutExecutionResponse:
        return self._store.put_execution(request)

    def PutLineageSubgraph(
        self, request: svc.PutLineageSubgraphRequest, context: grpc.ServicerContext
    ) -> svc.PutLineageSubgraphResponse:
        return self._store.put_lineage_subgraph(request)

    def PutContexts(self, request: svc.PutContextsRequest, context: grpc.ServicerContext) -> svc.PutContextsResponse:
        return self._store.put_contexts(request)

    def PutAttributionsAndAssociations(
        self, request: svc.PutAttributionsAndAssociationsRequest, context: grpc.ServicerContext
    ) -> svc.PutAttributionsAndAssociationsResponse:
        return self._store.put_attributions_and_associations(request)

    def PutParentContexts(
        self, request: svc.PutParentContextsRequest, context: grpc.ServicerContext
    ) -> svc.PutParentContextsResponse:
        return self._store.put_parent_contexts(request)

    def GetArtifactType(
        self, request: svc.GetArtifactTypeRequest, context: grpc.ServicerContext
    ) -> svc.GetArtifactTypeResponse:
        return self._store.get_artifact_type(request)

    def GetArtifactTypesByID(
        self, request: svc.GetArtifactTypesByIDRequest, context: grpc.ServicerContext
    ) -> svc.GetArtifactTypesByIDResponse:
        return self._store.get_artifact_types_by_id(request)

    def GetArtifactTypes(
        self, request: svc.GetArtifactTypesRequest, context: grpc.ServicerContext
    ) -> svc.GetArtifactTypesResponse:
        return self._store.get_artifact_types(request)

    def GetExecutionType(
        self, request: svc.GetExecutionTypeRequest, context: grpc.ServicerContext
    ) -> svc.GetExecutionTypeResponse:
        return self._store.get_execution_type(request)

    def GetExecutionTypesByID(
        self, request: svc.GetExecutionTypesByIDRequest, context: grpc.ServicerContext
    ) -> svc.GetExecutionTypesByIDResponse:
        return self._store.get_execution_types_by_id(request)

    def GetExecutionTypes(
        self, request: svc.GetExecutionTypesRequest, context: grpc.ServicerContext
    ) -> svc.GetExecutionTypesResponse:
        return self._store.get_execution_types(request)

    def GetContextType(
        self, request: svc.GetContextTypeRequest, context: grpc.ServicerContext
    ) -> svc.GetContextTypeResponse:
        return self._store.get_context_type(request)

    def GetContextTypesByID(
        self, request: svc.GetContextTypesByIDRequest, context: grpc.ServicerContext
    ) -> svc.GetContextTypesByIDResponse:
        return self._store.get_context_types_by_id(request)

    def GetContextTypes(
        self, request: svc.GetContextTypesRequest, context: grpc.ServicerContext
    ) -> svc.GetContextTypesResponse:
        return self._store.get_context_types(request)

    def GetArtifacts(self, request: svc.GetArtifactsRequest, context: grpc.ServicerContext) -> svc.GetArtifactsResponse:
        return self._store.get_artifacts(request)

    def GetExecutions(
        self, request: svc.GetExecutionsRequest, context: grpc.ServicerContext
    ) -> svc.GetExecutionsResponse:
        return self._store.get_executions(request)

    def GetContexts(self, request: svc.GetContextsRequest, context: grpc.ServicerContext) -> svc.GetContextsResponse:
        return self._store.get_contexts(request)

    def GetArtifactsByID(
        self, request: svc.GetArtifactsByIDRequest, context: grpc.ServicerContext
    ) -> svc.GetArtifactsByIDResponse:
        return self._store.get_artifacts_by_id(request)

    def GetExecutionsByID(
        self, request: svc.GetExecutionsByIDRequest, context: grpc.ServicerContext
    ) -> svc.GetExecutionsByIDResponse:
        return self._store.get_executions_by_id(request)

    def GetContextsByID(
        self, request: svc.GetContextsByIDRequest, context: grpc.ServicerContext
    ) -> svc.GetContextsByIDResponse:
        return self._store.get_contexts_by_id(request)

    def GetArtifactsByType(
        self, request: svc.GetArtifactsByTypeRequest, context: grpc.ServicerContext
    ) -> svc.GetArtifactsByTypeResponse:
        return self._store.get_artifacts_by_type(request)

    def GetExecutionsByType(
        self, request: svc.GetExecutionsByTypeRequest, context: grpc.ServicerContext
    ) -> svc.GetExecutionsByTypeResponse:
        return self._store.get_executions_by_type(request)

    def GetContextsByType(
        self, request: svc.GetContextsByTypeRequest, context: grpc.ServicerContext
    ) -> svc.GetContextsByTypeResponse:
        return self._store.get_contexts_by_type(request)

    def GetArtifactByTypeAndName(
        self, request: svc.GetArtifactByTypeAndNameRequest, context: grpc.ServicerContext
    ) -> svc.GetArtifactByTypeAndNameResponse:
        return self._store.get_artifact_by_type_and_name(request)

    def GetExecutionByTypeAndName(
        self, request: svc.GetExecutionByTypeAndNameRequest, context: grpc.ServicerContext
    ) -> svc.GetExecutionByTypeAndNameResponse:
        return self._store.get_execution_by_type_and_name(request)

    def GetContextByTypeAndName(
        self, request: svc.GetContextByTypeAndNameRequest, context: grpc.ServicerContext
    ) -> svc.GetContextByTypeAndNameResponse:
        return self._store.get_context_by_type_and_name(request)

    def GetArtifactsByURI(
        self, request: svc.GetArtifactsByURIRequest, context: grpc.ServicerContext
    ) -> svc.GetArtifactsByURIResponse:
        return self._store.get_artifacts_by_uri(request)

    def GetEventsByExecutionIDs(
        self, request: svc.GetEventsByExecutionIDsRequest, context: grpc.ServicerContext
    ) -> svc.GetEventsByExecutionIDsResponse:
        return self._store.get_events_by_execution_ids(request)

    def GetEventsByArtifactIDs(
        self, request: svc.GetEventsByArtifactIDsRequest, context: grpc.ServicerContext
    ) -> svc.GetEventsByArtifactIDsResponse:
        return self._store.get_events_by_artifact_ids(request)

    def GetArtifactsByExternalIds(
        self, request: svc.GetArtifactsByExternalIdsRequest, context: grpc.ServicerContext
    ) -> svc.GetArtifactsByExternalIdsResponse:
        return self._store.get_artifacts_by_external_ids(request)

    def GetExecutionsByExternalIds(
        self, request: svc.GetExecutionsByExternalIdsRequest, context: grpc.ServicerContext
    ) -> svc.GetExecutionsByExternalIdsResponse:
        return self._store.get_executions_by_external_ids(request)

    def GetContextsByExternalIds(
        self, request: svc.GetContextsByExternalIdsRequest, context: grpc.ServicerContext
    ) -> svc.GetContextsByExternalIdsResponse:
        return self._store.get_contexts_by_external_ids(request)

    def GetArtifactTypesByExternalIds(
        self, request: svc.GetArtifactTypesByExternalIdsRequest, context: grpc.ServicerContext
    ) -> svc.GetArtifactTypesByExternalIdsResponse:
        return self._store.get_artifact_types_by_external_ids(request)

    def GetExecutionTypesByExternalIds(
        self, request: svc.GetExecutionTypesByExternalIdsRequest, context: grpc.ServicerContext
    ) -> svc.GetExecutionTypesByExternalIdsResponse:
        return self._store.get_execution_types_by_external_ids(request)

    def GetContextTypesByExternalIds(
        self, request: svc.GetContextTypesByExternalIdsRequest, context: grpc.ServicerContext
    ) -> svc.GetContextTypesByExternalIdsResponse:
        return self._store.get_context_types_by_external_ids(request)

    def GetContextsByArtifact(
        self, request: svc.GetContextsByArtifactRequest, context: grpc.ServicerContext
    ) -> svc.GetContextsByArtifactResponse:
        return self._store.get_contexts_by_artifact(request)

    def GetContextsByExecution(
        self, request: svc.GetContextsByExecutionRequest, context: grpc.ServicerContext
    ) -> svc.GetContextsByExecutionResponse:
        return self._store.get_contexts_by_execution(request)

    def GetParentContextsByContext(
        self, request: svc.GetParentContextsByContextRequest, context: grpc.ServicerContext
    ) -> svc.GetParentContextsByContextResponse:
        return self._store.get_parent_contexts_by_context(request)

    def GetChildrenContextsByContext(
        self, request: svc.GetChildrenContextsByContextRequest, context: grpc.ServicerContext
    ) -> svc.GetChildrenContextsByContextResponse:
        return self._store.get_children_contexts_by_context(request)

    def GetParentContextsByContexts(
        self, request: svc.GetParentContextsByContextsRequest, context: grpc.ServicerContext
    ) -> svc.GetParentContextsByContextsResponse:
        return self._store.get_parent_contexts_by_contexts(request)

    def GetChildrenContextsByContexts(
        self, request: svc.GetChildrenContextsByContextsRequest, context: grpc.ServicerContext
    ) -> svc.GetChildrenContextsByContextsResponse:
        return self._store.get_children_contexts_by_contexts(request)

    def GetArtifactsByContext(
        self, request: svc.GetArtifactsByContextRequest, context: grpc.ServicerContext
    ) -> svc.GetArtifactsByContextResponse:
        return self._store.get_artifacts_by_context(request)

    def GetExecutionsByContext(
        self, request: svc.GetExecutionsByContextRequest, context: grpc.ServicerContext
    ) -> svc.GetExecutionsByContextResponse:
        return self._store.get_executions_by_context(request)

    def GetLineageGraph(
        self, request: svc.GetLineageGraphRequest, context: grpc.ServicerContext
    ) -> svc.GetLineageGraphResponse:
        return self._store.get_lineage_graph(request)

    def GetLineageSubgraph(
        self, request: svc.GetLineageSubgraphRequest, context: grpc.ServicerContext
    ) -> svc.GetLineageSubgraphResponse:
        return self._store.get_lineage_subgraph(request)


class AuditServicer(audit_grpc.AuditServiceServicer):
    """lineagedb.v1.AuditService: the audit log for administrators."""

    def __init__(self, queries: AuditQueries) -> None:
        self._queries = queries

    def QueryAudit(
        self, request: audit_pb2.QueryAuditRequest, context: grpc.ServicerContext
    ) -> audit_pb2.QueryAuditResponse:
        return self._queries.query_audit(request)


def _deadline(context: grpc.ServicerContext) -> float | None:
    """The call's deadline on the time.monotonic() clock, or None without one."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class LineageServicer(lineage_grpc.LineageServiceServicer):
    """lineagedb.v1.LineageService: answers computed from the lineage graph."""

    def __init__(self, answers: LineageAnswers) -> None:
        self._answers = answers

    def Provenance(self, request: lineage.ClosureRequest, context: grpc.ServicerContext) -> lineage.ClosureResponse:
        return self._answers.provenance(request, _deadline(context))

    def Impact(self, request: lineage.ImpactRequest, context: grpc.ServicerContext) -> lineage.ImpactResponse:
        return self._answers.impact(request, _deadline(context))

    def Diff(self, request: lineage.DiffRequest, context: grpc.ServicerContext) -> lineage.DiffResponse:
        return self._answers.diff(request, _deadline(context))

    def Manifest(self, request: lineage.ManifestRequest, context: grpc.ServicerContext) -> lineage.ManifestResponse:
        return self._answers.manifest(request, _deadline(context))

    def Completeness(
        self, request: lineage.CompletenessRequest, context: grpc.ServicerContext
    ) -> lineage.CompletenessResponse:
        return self._answers.completeness(request, _deadline(context))

    def Report(self, request: lineage.ReportRequest, context: grpc.ServicerContext) -> lineage.ReportResponse:
        return self._answers.report(request, _deadline(context))


class DeletionServicer(deletion_grpc.DeletionServiceServicer):
    """lineagedb.v1.DeletionService: deletes that keep lineage whole."""

    def __init__(self, deletion: Deletion) -> None:
        self._deletion = deletion

    def Delete(self, request: deletion.DeleteRequest, context: grpc.ServicerContext) -> deletion.DeleteResponse:
        return self._deletion.delete(request)
