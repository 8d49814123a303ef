"""MlflowRegistry (the service layer) on every backend: the registry's rules and its graph."""

from __future__ import annotations

import pytest

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import mlflow_artifacts_pb2 as apb
from lineagedb.proto.lineagedb.v1 import mlflow_registry_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.service.mlflow_artifacts import MlflowArtifactAccess, path_segments
from lineagedb.service.mlflow_registry import MlflowRegistry
from lineagedb.store.unit_of_work import Database


@pytest.fixture
def registry(database: Database, clock: object) -> MlflowRegistry:
    return MlflowRegistry(database, clock)  # type: ignore[arg-type]


def _run(store: MetadataStore, run_id: str, experiment_id: str = "") -> int:
    """A run as the tracking API stores it: an `mlflow.Run` execution named by its run_id."""
    run_type = store.put_execution_type(
        svc.PutExecutionTypeRequest(
            execution_type=mlmd.ExecutionType(
                name="mlflow.Run", properties={"artifact_uri": mlmd.STRING, "experiment_id": mlmd.STRING}
            ),
            can_add_fields=True,
        )
    ).type_id
    run = mlmd.Execution(type_id=run_type, name=run_id)
    run.properties["artifact_uri"].string_value = f"mlflow-artifacts:/{experiment_id or '1'}/{run_id}/artifacts"
    run.properties["experiment_id"].string_value = experiment_id or "1"
    return store.put_executions(svc.PutExecutionsRequest(executions=[run])).execution_ids[0]


def test_registered_model_lifecycle_tags_aliases_and_search(registry: MlflowRegistry) -> None:
    created = registry.create_registered_model(
        pb.CreateRegisteredModelRequest(name="fraud", description="d", tags=[pb.RegisteredModelTag(key="k", value="v")])
    ).registered_model
    assert (created.name, created.description, [(t.key, t.value) for t in created.tags]) == ("fraud", "d", [("k", "v")])
    with pytest.raises(errors.AlreadyExistsError, match=r"Registered Model \(name=fraud\) already exists"):
        registry.create_registered_model(pb.CreateRegisteredModelRequest(name="fraud"))
    with pytest.raises(errors.InvalidArgumentError):
        registry.create_registered_model(pb.CreateRegisteredModelRequest(name=""))
    registry.create_registered_model(pb.CreateRegisteredModelRequest(name="churn"))

    v1 = registry.create_model_version(pb.CreateModelVersionRequest(name="fraud", source="s3://b/1")).model_version
    v2 = registry.create_model_version(pb.CreateModelVersionRequest(name="fraud", source="s3://b/2")).model_version
    assert (v1.version, v2.version, v2.current_stage, v2.status) == ("1", "2", "None", pb.READY)

    registry.set_registered_model_alias(pb.SetRegisteredModelAliasRequest(name="fraud", alias="champion", version="1"))
    by_alias = registry.get_model_version_by_alias(pb.RegisteredModelAliasName(name="fraud", alias="champion"))
    assert (by_alias.model_version.version, list(by_alias.model_version.aliases)) == ("1", ["champion"])
    with pytest.raises(errors.InvalidArgumentError):
        registry.set_registered_model_alias(
            pb.SetRegisteredModelAliasRequest(name="fraud", alias="latest", version="1")
        )
    with pytest.raises(errors.NotFoundError):
        registry.set_registered_model_alias(pb.SetRegisteredModelAliasRequest(name="fraud", alias="x", version="9"))

    registry.transition_model_version_stage(
        pb.TransitionModelVersionStageRequest(name="fraud", version="1", stage="production")
    )
    moved = registry.transition_model_version_stage(
        pb.TransitionModelVersionStageRequest(
            name="fraud", version="2", stage="Production", archive_existing_versions=True
        )
    ).model_version
    assert moved.current_stage == "Production"
    assert registry.get_model_version(pb.ModelVersionName(name="fraud", version="1")).model_version.current_stage == (
        "Archived"
    )
    latest = registry.get_latest_versions(pb.GetLatestVersionsRequest(name="fraud", stages=["production"]))
    assert [v.version for v in latest.model_versions] == ["2"]

    registry.set_model_version_tag(pb.SetModelVersionTagRequest(name="fraud", version="2", key="t", value="1"))
    registry.set_model_version_tag(pb.SetModelVersionTagRequest(name="fraud", version="2", key="gone", value="1"))
    registry.delete_model_version_tag(pb.DeleteModelVersionTagRequest(name="fraud", version="2", key="gone"))
    registry.delete_registered_model_tag(pb.DeleteRegisteredModelTagRequest(name="fraud", key="k"))
    registry.set_registered_model_alias(pb.SetRegisteredModelAliasRequest(name="fraud", alias="old", version="2"))
    registry.delete_registered_model_alias(pb.RegisteredModelAliasName(name="fraud", alias="old"))
    registry.delete_registered_model_alias(pb.RegisteredModelAliasName(name="fraud", alias="never-set"))
    model = registry.get_registered_model(pb.RegisteredModelName(name="fraud")).registered_model
    assert (list(model.tags), [a.alias for a in model.aliases]) == ([], ["champion"])
    renamed = registry.rename_registered_model(pb.RenameRegisteredModelRequest(name="fraud", new_name="fraud2"))
    assert [v.name for v in renamed.registered_model.latest_versions] == ["fraud2", "fraud2"]
    version = registry.get_model_version(pb.ModelVersionName(name="fraud2", version="2")).model_version
    assert [(t.key, t.value) for t in version.tags] == [("t", "1")]

    found = registry.search_registered_models(pb.SearchRequest(filter="name LIKE 'fr%'"))
    assert [m.name for m in found.registered_models] == ["fraud2"]
    everything = registry.search_registered_models(pb.SearchRequest()).registered_models
    assert {m.name: [v.version for v in m.latest_versions] for m in everything} == {"churn": [], "fraud2": ["2", "1"]}
    first = registry.search_registered_models(pb.SearchRequest(max_results=1, order_by=["name DESC"]))
    assert [m.name for m in first.registered_models] == ["fraud2"] and first.next_page_token
    second = registry.search_registered_models(pb.SearchRequest(max_results=1, page_token=first.next_page_token))
    assert [m.name for m in second.registered_models] == ["fraud2"]  # name ASC default: churn, fraud2
    versions = registry.search_model_versions(pb.SearchRequest(filter="name = 'fraud2' AND tags.t = '1'"))
    assert [v.version for v in versions.model_versions] == ["2"]
    with pytest.raises(errors.InvalidArgumentError):
        registry.search_model_versions(pb.SearchRequest(filter="bogus = 1"))

    registry.delete_model_version(pb.ModelVersionName(name="fraud2", version="1"))
    with pytest.raises(errors.NotFoundError, match=r"Model Version \(name=fraud2, version=1\) not found"):
        registry.get_model_version(pb.ModelVersionName(name="fraud2", version="1"))
    with pytest.raises(errors.InvalidArgumentError, match="alias champion not found"):  # it went with it
        registry.get_model_version_by_alias(pb.RegisteredModelAliasName(name="fraud2", alias="champion"))
    v3 = registry.create_model_version(pb.CreateModelVersionRequest(name="fraud2", source="s3://b/3")).model_version
    assert v3.version == "3"  # never reused
    registry.delete_registered_model(pb.RegisteredModelName(name="fraud2"))
    with pytest.raises(errors.NotFoundError, match="Registered Model with name=fraud2 not found"):
        registry.get_registered_model(pb.RegisteredModelName(name="fraud2"))
    with pytest.raises(errors.InvalidArgumentError):
        registry.get_model_version(pb.ModelVersionName(name="churn", version="one"))


def test_model_version_is_an_output_of_its_run(registry: MlflowRegistry, store: MetadataStore) -> None:
    run_execution = _run(store, "a" * 32)
    registry.create_registered_model(pb.CreateRegisteredModelRequest(name="m"))
    version = registry.create_model_version(
        pb.CreateModelVersionRequest(name="m", source=f"runs:/{'a' * 32}/model", run_id="a" * 32)
    ).model_version
    uri = registry.get_model_version_download_uri(pb.ModelVersionName(name="m", version=version.version))
    assert uri.artifact_uri == f"mlflow-artifacts:/1/{'a' * 32}/artifacts/model"
    events = store.get_events_by_execution_ids(svc.GetEventsByExecutionIDsRequest(execution_ids=[run_execution]))
    assert [e.type for e in events.events] == [mlmd.Event.OUTPUT]
    model = store.get_contexts(svc.GetContextsRequest()).contexts
    artifacts = store.get_artifacts_by_context(svc.GetArtifactsByContextRequest(context_id=model[0].id)).artifacts
    assert [a.id for a in artifacts] == [events.events[0].artifact_id]


def test_artifact_paths_refuse_traversal() -> None:
    assert path_segments("1/abc/artifacts/a.txt") == ["1", "abc", "artifacts", "a.txt"]
    for bad in ("../x", "1/../../x", "/etc/passwd", "1/./x", "1//x", "1\\x", "C:/x", "1/x\x00"):
        with pytest.raises(errors.InvalidArgumentError):
            path_segments(bad)


def test_artifact_access_needs_an_existing_owner(database: Database, store: MetadataStore) -> None:
    access = MlflowArtifactAccess(database)
    with pytest.raises(errors.NotFoundError):
        access.authorize_read(apb.ArtifactPath(path="1/run/artifacts/x"))
    experiment_type = store.put_context_type(
        svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="mlflow.Experiment"))
    ).type_id
    experiment_id = store.put_contexts(
        svc.PutContextsRequest(contexts=[mlmd.Context(type_id=experiment_type, name="e")])
    ).context_ids[0]
    run_id = "b" * 32
    _run(store, run_id, str(experiment_id))
    owner = access.authorize_write(apb.ArtifactPath(path=f"{experiment_id}/{run_id}/artifacts/x"))
    assert (owner.experiment_id, owner.run_id) == (str(experiment_id), run_id)
    assert access.authorize_read(apb.ArtifactPath(path=f"{experiment_id}/models/m1/artifacts")).run_id == ""
    with pytest.raises(errors.InvalidArgumentError):
        access.authorize_read(apb.ArtifactPath(path=""))
