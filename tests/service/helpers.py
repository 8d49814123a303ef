"""Small builders shared by the service-level behaviour tests."""

from __future__ import annotations

from typing import TypeAlias

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore

PropertyType: TypeAlias = mlmd.PropertyType.ValueType


def artifact_type(name: str = "Dataset", **properties: PropertyType) -> mlmd.ArtifactType:
    message = mlmd.ArtifactType(name=name)
    for key, data_type in properties.items():
        message.properties[key] = data_type
    return message


def execution_type(name: str = "Trainer", **properties: PropertyType) -> mlmd.ExecutionType:
    message = mlmd.ExecutionType(name=name)
    for key, data_type in properties.items():
        message.properties[key] = data_type
    return message


def context_type(name: str = "Pipeline", **properties: PropertyType) -> mlmd.ContextType:
    message = mlmd.ContextType(name=name)
    for key, data_type in properties.items():
        message.properties[key] = data_type
    return message


def put_artifact_type(store: MetadataStore, name: str = "Dataset", **properties: PropertyType) -> int:
    request = svc.PutArtifactTypeRequest(artifact_type=artifact_type(name, **properties))
    return store.put_artifact_type(request).type_id


def put_execution_type(store: MetadataStore, name: str = "Trainer", **properties: PropertyType) -> int:
    request = svc.PutExecutionTypeRequest(execution_type=execution_type(name, **properties))
    return store.put_execution_type(request).type_id


def put_context_type(store: MetadataStore, name: str = "Pipeline", **properties: PropertyType) -> int:
    request = svc.PutContextTypeRequest(context_type=context_type(name, **properties))
    return store.put_context_type(request).type_id


def put_artifacts(store: MetadataStore, *artifacts: mlmd.Artifact) -> list[int]:
    return list(store.put_artifacts(svc.PutArtifactsRequest(artifacts=artifacts)).artifact_ids)


def put_executions(store: MetadataStore, *executions: mlmd.Execution) -> list[int]:
    return list(store.put_executions(svc.PutExecutionsRequest(executions=executions)).execution_ids)


def put_contexts(store: MetadataStore, *contexts: mlmd.Context) -> list[int]:
    return list(store.put_contexts(svc.PutContextsRequest(contexts=contexts)).context_ids)


def get_artifact(store: MetadataStore, artifact_id: int) -> mlmd.Artifact:
    found = store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[artifact_id])).artifacts
    assert len(found) == 1, f"artifact {artifact_id} not found"
    return found[0]


def get_execution(store: MetadataStore, execution_id: int) -> mlmd.Execution:
    found = store.get_executions_by_id(svc.GetExecutionsByIDRequest(execution_ids=[execution_id])).executions
    assert len(found) == 1, f"execution {execution_id} not found"
    return found[0]


def get_context(store: MetadataStore, context_id: int) -> mlmd.Context:
    found = store.get_contexts_by_id(svc.GetContextsByIDRequest(context_ids=[context_id])).contexts
    assert len(found) == 1, f"context {context_id} not found"
    return found[0]


def all_artifacts(store: MetadataStore) -> list[mlmd.Artifact]:
    return list(store.get_artifacts(svc.GetArtifactsRequest()).artifacts)


def all_contexts(store: MetadataStore) -> list[mlmd.Context]:
    return list(store.get_contexts(svc.GetContextsRequest()).contexts)
