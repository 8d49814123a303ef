"""The one table from every served gRPC method to the permission it needs.

A method that is not listed here is denied (fail closed); a test lists the methods
of every service the server registers (through reflection) and requires each to be
here, so a new RPC cannot slip through unprotected.
"""

from __future__ import annotations

import enum


class Permission(enum.Enum):
    PUBLIC = "public"  # no credentials: health probes
    AUTHENTICATED = "authenticated"  # any caller with valid credentials: schema reflection
    READ = "read"  # viewer somewhere; sees only readable namespaces
    WRITE = "write"  # editor in the call's namespace (nodes and edges)
    WRITE_TYPES = "write_types"  # the policy's type_writers role in the call's namespace
    ADMIN = "admin"  # the policy's cluster_admins: LineageDB's administration services (audit)


_MLMD = "/ml_metadata.MetadataStoreService/"
_MLMD_WRITES = (
    "PutArtifacts",
    "PutExecutions",
    "PutContexts",
    "PutEvents",
    "PutExecution",
    "PutLineageSubgraph",
    "PutAttributionsAndAssociations",
    "PutParentContexts",
)
_MLMD_TYPE_WRITES = ("PutArtifactType", "PutExecutionType", "PutContextType", "PutTypes")
_MLMD_READS = (
    "GetArtifactType",
    "GetArtifactTypesByID",
    "GetArtifactTypes",
    "GetArtifactTypesByExternalIds",
    "GetExecutionType",
    "GetExecutionTypesByID",
    "GetExecutionTypes",
    "GetExecutionTypesByExternalIds",
    "GetContextType",
    "GetContextTypesByID",
    "GetContextTypes",
    "GetContextTypesByExternalIds",
    "GetArtifacts",
    "GetExecutions",
    "GetContexts",
    "GetArtifactsByID",
    "GetExecutionsByID",
    "GetContextsByID",
    "GetArtifactsByType",
    "GetExecutionsByType",
    "GetContextsByType",
    "GetArtifactByTypeAndName",
    "GetExecutionByTypeAndName",
    "GetContextByTypeAndName",
    "GetArtifactsByURI",
    "GetArtifactsByExternalIds",
    "GetExecutionsByExternalIds",
    "GetContextsByExternalIds",
    "GetEventsByExecutionIDs",
    "GetEventsByArtifactIDs",
    "GetContextsByArtifact",
    "GetContextsByExecution",
    "GetParentContextsByContext",
    "GetChildrenContextsByContext",
    "GetParentContextsByContexts",
    "GetChildrenContextsByContexts",
    "GetArtifactsByContext",
    "GetExecutionsByContext",
    "GetLineageGraph",
    "GetLineageSubgraph",
)

_MLFLOW_REGISTRY_READS = (
    "GetRegisteredModel",
    "SearchRegisteredModels",
    "GetModelVersionByAlias",
    "GetLatestVersions",
    "GetModelVersion",
    "SearchModelVersions",
    "GetModelVersionDownloadUri",
)
_MLFLOW_REGISTRY_WRITES = (
    "CreateRegisteredModel",
    "RenameRegisteredModel",
    "UpdateRegisteredModel",
    "DeleteRegisteredModel",
    "SetRegisteredModelTag",
    "DeleteRegisteredModelTag",
    "SetRegisteredModelAlias",
    "DeleteRegisteredModelAlias",
    "CreateModelVersion",
    "UpdateModelVersion",
    "DeleteModelVersion",
    "SetModelVersionTag",
    "DeleteModelVersionTag",
    "TransitionModelVersionStage",
)

_MLFLOW_TRACKING_READS = (
    "GetExperiment",
    "GetExperimentByName",
    "SearchExperiments",
    "GetRun",
    "SearchRuns",
    "GetMetricHistory",
    "GetLoggedModel",
    "SearchLoggedModels",
)
_MLFLOW_TRACKING_WRITES = (
    "CreateExperiment",
    "UpdateExperiment",
    "DeleteExperiment",
    "RestoreExperiment",
    "SetExperimentTag",
    "DeleteExperimentTag",
    "CreateRun",
    "UpdateRun",
    "DeleteRun",
    "RestoreRun",
    "LogMetric",
    "LogParam",
    "SetTag",
    "DeleteTag",
    "LogBatch",
    "LogInputs",
    "LogOutputs",
    "CreateLoggedModel",
    "FinalizeLoggedModel",
    "SetLoggedModelTags",
    "LogLoggedModelParams",
)

METHOD_PERMISSIONS: dict[str, Permission] = {
    **{_MLMD + name: Permission.WRITE for name in _MLMD_WRITES},
    **{_MLMD + name: Permission.WRITE_TYPES for name in _MLMD_TYPE_WRITES},
    **{_MLMD + name: Permission.READ for name in _MLMD_READS},
    "/lineagedb.v1.AuditService/QueryAudit": Permission.ADMIN,
    # Lineage answers read the graph, scoped to the caller's readable namespaces like any read.
    **{
        "/lineagedb.v1.LineageService/" + name: Permission.READ
        for name in ("Provenance", "Impact", "Diff", "Manifest", "Completeness", "Report")
    },
    # Deleting is writing: an editor of every namespace it touches (checked per node in the service).
    "/lineagedb.v1.DeletionService/Delete": Permission.WRITE,
    # MLflow's model registry: reads and writes of its contexts and artifacts, scoped like any other.
    **{"/lineagedb.v1.MlflowRegistryService/" + name: Permission.READ for name in _MLFLOW_REGISTRY_READS},
    **{"/lineagedb.v1.MlflowRegistryService/" + name: Permission.WRITE for name in _MLFLOW_REGISTRY_WRITES},
    # Asked by the HTTP listener before it streams an artifact file (download/list, upload/delete).
    "/lineagedb.v1.MlflowArtifactsService/AuthorizeRead": Permission.READ,
    "/lineagedb.v1.MlflowArtifactsService/AuthorizeWrite": Permission.WRITE,
    "/lineagedb.v1.MlflowArtifactsService/AuthorizeListArtifacts": Permission.READ,
    # MLflow's tracking API: experiments, runs and logged models are contexts, executions and
    # artifacts, read and written like any other (the MLflow types are registered by the
    # service itself, not by the caller, so WRITE suffices).
    **{"/lineagedb.v1.mlflow.TrackingService/" + name: Permission.READ for name in _MLFLOW_TRACKING_READS},
    **{"/lineagedb.v1.mlflow.TrackingService/" + name: Permission.WRITE for name in _MLFLOW_TRACKING_WRITES},
    "/grpc.health.v1.Health/Check": Permission.PUBLIC,
    "/grpc.health.v1.Health/Watch": Permission.PUBLIC,
    "/grpc.health.v1.Health/List": Permission.PUBLIC,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Permission.AUTHENTICATED,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": Permission.AUTHENTICATED,
}


def permission_for(method: str) -> Permission | None:
    """The permission `method` needs, or None: not in the table, so denied."""
    return METHOD_PERMISSIONS.get(method)
