"""as_of: property values as they were, restored from the audit log's previous values,
and said plainly when they cannot be."""

from __future__ import annotations

from typing import Any

from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.answers.service import LineageAnswers
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.unit_of_work import Database
from tests.answers import tfx_pipeline
from tests.answers.conftest import LocalClient
from tests.audit.conftest import as_call


def _approve(store: MetadataStore, artifact_id: int, approved: str, uri: str | None = None) -> None:
    artifact = mlmd.Artifact(id=artifact_id)
    artifact.custom_properties["approved"].string_value = approved
    if uri is not None:
        artifact.uri = uri
    request = svc.PutArtifactsRequest(artifacts=[artifact])
    request.update_mask.paths.append("custom_properties.approved")
    if uri is not None:
        request.update_mask.paths.append("uri")
    with as_call("PutArtifacts"):
        store.put_artifacts(request)


def _model_as_of(answers: LineageAnswers, ids: dict[str, int], cut: int) -> tuple[Any, pb.AsOf]:
    got = answers.provenance(pb.ClosureRequest(node=pb.NodeRef(artifact_id=ids["pushed_model"]), as_of_ms=cut))
    return next(a for a in got.artifacts if a.id == ids["model"]), got.as_of


def test_values_changed_later_are_shown_as_they_were(
    audited_store: MetadataStore, audited_db: Database, clock: Any
) -> None:
    with as_call("PutExecution"):
        ids = tfx_pipeline.write_run(mlmd, LocalClient(audited_store), "run-1")
    _approve(audited_store, ids["model"], "no")
    clock.now += 1000
    cut = clock.now
    clock.now += 1000
    _approve(audited_store, ids["model"], "yes", uri="gs://moved/model")
    _approve(audited_store, ids["model"], "yes, twice")
    answers = LineageAnswers(audited_db)

    model, as_of = _model_as_of(answers, ids, cut)
    assert model.custom_properties["approved"].string_value == "no"
    assert model.uri == "gs://pipelines/taxi/run-1/Trainer/model"
    assert [r.artifact_id for r in as_of.restored] == [ids["model"]]
    assert not as_of.current_values
    # Now: the current values, nothing restored.
    now = answers.provenance(pb.ClosureRequest(node=pb.NodeRef(artifact_id=ids["pushed_model"])))
    current = next(a for a in now.artifacts if a.id == ids["model"])
    assert current.custom_properties["approved"].string_value == "yes, twice"
    assert current.uri == "gs://moved/model"
    assert not now.HasField("as_of") or now.as_of == pb.AsOf()


def test_a_property_added_later_is_absent_as_of_before(
    audited_store: MetadataStore, audited_db: Database, clock: Any
) -> None:
    with as_call("PutExecution"):
        ids = tfx_pipeline.write_run(mlmd, LocalClient(audited_store), "run-1")
    clock.now += 1000
    cut = clock.now
    clock.now += 1000
    _approve(audited_store, ids["model"], "yes")
    model, as_of = _model_as_of(LineageAnswers(audited_db), ids, cut)
    assert "approved" not in model.custom_properties
    assert [r.artifact_id for r in as_of.restored] == [ids["model"]]


def test_without_an_audit_log_changed_nodes_are_listed_with_current_values(
    store: MetadataStore, answers: LineageAnswers, client: LocalClient, clock: Any
) -> None:
    ids = tfx_pipeline.write_run(mlmd, client, "run-1")
    clock.now += 1000
    cut = clock.now
    clock.now += 1000
    _approve(store, ids["model"], "yes")
    model, as_of = _model_as_of(answers, ids, cut)
    assert model.custom_properties["approved"].string_value == "yes"
    assert [r.artifact_id for r in as_of.current_values] == [ids["model"]]
    assert not as_of.restored
