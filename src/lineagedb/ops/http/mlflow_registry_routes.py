"""MLflow's model-registry endpoints (verb, path under /api/2.0/mlflow) -> MlflowRegistryService.

The paths and verbs are those of the pinned client's ModelRegistryService definitions (the
REST store calls exactly these); MLflow's REST API component (lineagedb.ops.http.mlflow_api)
serves them next to the tracking routes.
"""

from __future__ import annotations

from lineagedb.ops.http.mlflow_api import MlflowRoute, rpc_route
from lineagedb.proto.lineagedb.v1 import mlflow_registry_pb2 as registry

_SERVICE = registry.DESCRIPTOR.services_by_name["MlflowRegistryService"]


def _route(verb: str, path: str, rpc: str) -> MlflowRoute:
    return rpc_route(_SERVICE, verb, path, rpc)


REGISTRY_ROUTES: list[MlflowRoute] = [
    _route("POST", "/registered-models/create", "CreateRegisteredModel"),
    _route("POST", "/registered-models/rename", "RenameRegisteredModel"),
    _route("PATCH", "/registered-models/update", "UpdateRegisteredModel"),
    _route("DELETE", "/registered-models/delete", "DeleteRegisteredModel"),
    _route("GET", "/registered-models/get", "GetRegisteredModel"),
    _route("GET", "/registered-models/search", "SearchRegisteredModels"),
    _route("POST", "/registered-models/get-latest-versions", "GetLatestVersions"),
    _route("GET", "/registered-models/get-latest-versions", "GetLatestVersions"),
    _route("POST", "/registered-models/set-tag", "SetRegisteredModelTag"),
    _route("DELETE", "/registered-models/delete-tag", "DeleteRegisteredModelTag"),
    _route("POST", "/registered-models/alias", "SetRegisteredModelAlias"),
    _route("DELETE", "/registered-models/alias", "DeleteRegisteredModelAlias"),
    _route("GET", "/registered-models/alias", "GetModelVersionByAlias"),
    _route("POST", "/model-versions/create", "CreateModelVersion"),
    _route("PATCH", "/model-versions/update", "UpdateModelVersion"),
    _route("POST", "/model-versions/transition-stage", "TransitionModelVersionStage"),
    _route("DELETE", "/model-versions/delete", "DeleteModelVersion"),
    _route("GET", "/model-versions/get", "GetModelVersion"),
    _route("GET", "/model-versions/search", "SearchModelVersions"),
    _route("GET", "/model-versions/get-download-uri", "GetModelVersionDownloadUri"),
    _route("POST", "/model-versions/set-tag", "SetModelVersionTag"),
    _route("DELETE", "/model-versions/delete-tag", "DeleteModelVersionTag"),
]
