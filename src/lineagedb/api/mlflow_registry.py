"""gRPC servicers of MLflow's model registry and artifact authorization: pure delegation."""

from __future__ import annotations

import grpc

from lineagedb.proto.lineagedb.v1 import mlflow_artifacts_pb2 as artifacts
from lineagedb.proto.lineagedb.v1 import mlflow_artifacts_pb2_grpc as artifacts_grpc
from lineagedb.proto.lineagedb.v1 import mlflow_registry_pb2 as registry
from lineagedb.proto.lineagedb.v1 import mlflow_registry_pb2_grpc as registry_grpc
from lineagedb.service.mlflow_artifacts import MlflowArtifactAccess
from lineagedb.service.mlflow_registry import MlflowRegistry


class MlflowRegistryServicer(registry_grpc.MlflowRegistryServiceServicer):
    """lineagedb.v1.MlflowRegistryService: MLflow's model registry."""

    def __init__(self, registry: MlflowRegistry) -> None:
        self._registry = registry

    def CreateRegisteredModel(
        self, request: registry.CreateRegisteredModelRequest, context: grpc.ServicerContext
    ) -> registry.RegisteredModelResponse:
        return self._registry.create_registered_model(request)

    def GetRegisteredModel(
        self, request: registry.RegisteredModelName, context: grpc.ServicerContext
    ) -> registry.RegisteredModelResponse:
        return self._registry.get_registered_model(request)

    def RenameRegisteredModel(
        self, request: registry.RenameRegisteredModelRequest, context: grpc.ServicerContext
    ) -> registry.RegisteredModelResponse:
        return self._registry.rename_registered_model(request)

    def UpdateRegisteredModel(
        self, request: registry.UpdateRegisteredModelRequest, context: grpc.ServicerContext
    ) -> registry.RegisteredModelResponse:
        return self._registry.update_registered_model(request)

    def DeleteRegisteredModel(
        self, request: registry.RegisteredModelName, context: grpc.ServicerContext
    ) -> registry.Empty:
        return self._registry.delete_registered_model(request)

    def SearchRegisteredModels(
        self, request: registry.SearchRequest, context: grpc.ServicerContext
    ) -> registry.SearchRegisteredModelsResponse:
        return self._registry.search_registered_models(request)

    def SetRegisteredModelTag(
        self, request: registry.SetRegisteredModelTagRequest, context: grpc.ServicerContext
    ) -> registry.Empty:
        return self._registry.set_registered_model_tag(request)

    def DeleteRegisteredModelTag(
        self, request: registry.DeleteRegisteredModelTagRequest, context: grpc.ServicerContext
    ) -> registry.Empty:
        return self._registry.delete_registered_model_tag(request)

    def SetRegisteredModelAlias(
        self, request: registry.SetRegisteredModelAliasRequest, context: grpc.ServicerContext
    ) -> registry.Empty:
        return self._registry.set_registered_model_alias(request)

    def DeleteRegisteredModelAlias(
        self, request: registry.RegisteredModelAliasName, context: grpc.ServicerContext
    ) -> registry.Empty:
        return self._registry.delete_registered_model_alias(request)

    def GetModelVersionByAlias(
        self, request: registry.RegisteredModelAliasName, context: grpc.ServicerContext
    ) -> registry.ModelVersionResponse:
        return self._registry.get_model_version_by_alias(request)

    def GetLatestVersions(
        self, request: registry.GetLatestVersionsRequest, context: grpc.ServicerContext
    ) -> registry.ModelVersionsResponse:
        return self._registry.get_latest_versions(request)

    def CreateModelVersion(
        self, request: registry.CreateModelVersionRequest, context: grpc.ServicerContext
    ) -> registry.ModelVersionResponse:
        return self._registry.create_model_version(request)

    def GetModelVersion(
        self, request: registry.ModelVersionName, context: grpc.ServicerContext
    ) -> registry.ModelVersionResponse:
        return self._registry.get_model_version(request)

    def UpdateModelVersion(
        self, request: registry.UpdateModelVersionRequest, context: grpc.ServicerContext
    ) -> registry.ModelVersionResponse:
        return self._registry.update_model_version(request)

    def DeleteModelVersion(self, request: registry.ModelVersionName, context: grpc.ServicerContext) -> registry.Empty:
        return self._registry.delete_model_version(request)

    def SearchModelVersions(
        self, request: registry.SearchRequest, context: grpc.ServicerContext
    ) -> registry.SearchModelVersionsResponse:
        return self._registry.search_model_versions(request)

    def SetModelVersionTag(
        self, request: registry.SetModelVersionTagRequest, context: grpc.ServicerContext
    ) -> registry.Empty:
        return self._registry.set_model_version_tag(request)

    def DeleteModelVersionTag(
        self, request: registry.DeleteModelVersionTagRequest, context: grpc.ServicerContext
    ) -> registry.Empty:
        return self._registry.delete_model_version_tag(request)

    def TransitionModelVersionStage(
        self, request: registry.TransitionModelVersionStageRequest, context: grpc.ServicerContext
    ) -> registry.ModelVersionResponse:
        return self._registry.transition_model_version_stage(request)

    def GetModelVersionDownloadUri(
        self, request: registry.ModelVersionName, context: grpc.ServicerContext
    ) -> registry.GetModelVersionDownloadUriResponse:
        return self._registry.get_model_version_download_uri(request)


class MlflowArtifactsServicer(artifacts_grpc.MlflowArtifactsServiceServicer):
    """lineagedb.v1.MlflowArtifactsService: may this caller read or write an artifact path."""

    def __init__(self, access: MlflowArtifactAccess) -> None:
        self._access = access

    def AuthorizeRead(self, request: artifacts.ArtifactPath, context: grpc.ServicerContext) -> artifacts.ArtifactOwner:
        return self._access.authorize_read(request)

    def AuthorizeWrite(self, request: artifacts.ArtifactPath, context: grpc.ServicerContext) -> artifacts.ArtifactOwner:
        return self._access.authorize_write(request)

    def AuthorizeListArtifacts(
        self, request: artifacts.ListArtifactsRequest, context: grpc.ServicerContext
    ) -> artifacts.RunArtifactLocation:
        return self._access.authorize_list_artifacts(request)
