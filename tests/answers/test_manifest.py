"""Manifest: the exact document of a TFX-shaped run, its schema, its stable hash, the
topological order, compare() after changes made through the store, and refusals."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import grpc
import jsonschema
import pytest

from lineagedb import errors
from lineagedb.api.status import status_for
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.answers import manifest
from lineagedb.service.answers.service import LineageAnswers
from tests.answers.conftest import LocalClient
from tests.answers.tfx_pipeline import STEPS

Runs = dict[str, dict[str, int]]

SCHEMA = json.loads(manifest.SCHEMA_PATH.read_text(encoding="utf-8"))
MODULE_PATH = "taxi_utils@gs://bucket/_wheels/taxi-0.1-abc123.whl"


def get_manifest(answers: LineageAnswers, artifact_id: int, **options: Any) -> tuple[dict[str, Any], str]:
    response = answers.manifest(pb.ManifestRequest(artifact_id=artifact_id, **options))
    # The hash is of the exact text, and the text is the canonical form of its own content.
    assert response.sha256 == hashlib.sha256(response.manifest_json.encode("utf-8")).hexdigest()
    document = json.loads(response.manifest_json)
    assert manifest.canonical(document) == response.manifest_json
    return document, response.sha256


def validate(document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(document)


def uri(run: str, step: str, role: str) -> str:
    return f"gs://pipelines/taxi/{run}/{step}/{role}"


def test_manifest_of_a_pushed_model_is_its_exact_upstream(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    document, _ = get_manifest(answers, run["pushed_model"])

    assert document["manifest_version"] == 1
    assert document["target"] == {
        "id": run["pushed_model"],
        "type": "PushedModel",
        "uri": uri("run-1", "Pusher", "pushed_model"),
        "name": None,
        "external_id": None,
        "digest": None,
        "version": None,
        "state": "LIVE",
    }

    executions = document["executions"]
    assert sorted(e["id"] for e in executions) == sorted(run[step] for step in STEPS)
    # A valid topological order: every producer of an input comes earlier.
    producer = {link["artifact_id"]: e["id"] for e in executions for link in e["outputs"]}
    position = {e["id"]: index for index, e in enumerate(executions)}
    for execution in executions:
        for link in execution["inputs"]:
            assert position[producer[link["artifact_id"]]] < position[execution["id"]]
    # This pipeline has one such order with ties broken by id: the order it ran in.
    assert [e["id"] for e in executions] == [run[step] for step in STEPS]

    by_type = {e["type"]: e for e in executions}
    assert by_type["Trainer"] == {
        "id": run["Trainer"],
        "type": "Trainer",
        "name": "run-1.Trainer",
        "state": "COMPLETE",
        "parameters": {"train_args": '{"num_steps": 100}'},
        "code_version": {"module_path": MODULE_PATH},
        "environment": {"tfx_version": "1.16.0"},
        "inputs": [
            {"role": "examples", "artifact_id": run["transformed_examples"]},
            {"role": "schema", "artifact_id": run["schema"]},
            {"role": "transform_graph", "artifact_id": run["transform_graph"]},
        ],
        "outputs": [{"role": "model", "artifact_id": run["model"]}],
    }
    assert by_type["ExampleGen"]["parameters"] == {"input_base": "gs://raw/taxi/2026-11"}
    assert by_type["ExampleGen"]["inputs"] == []
    assert by_type["Transform"]["parameters"] == {}
    assert by_type["Transform"]["code_version"] == {"module_path": MODULE_PATH}
    # Only the outputs that lead to the target: the evaluation is not one of them.
    assert by_type["Evaluator"]["outputs"] == [{"role": "blessing", "artifact_id": run["blessing"]}]

    artifacts = {a["id"]: a for a in document["artifacts"]}
    assert [a["id"] for a in document["artifacts"]] == sorted(artifacts)
    expected = {
        "examples": ("Examples", "ExampleGen", "sha256:1111", 1),
        "statistics": ("ExampleStatistics", "StatisticsGen", None, None),
        "schema": ("Schema", "SchemaGen", None, None),
        "transform_graph": ("TransformGraph", "Transform", None, None),
        "transformed_examples": ("Examples", "Transform", None, 1),
        "model": ("Model", "Trainer", None, None),
        "blessing": ("ModelBlessing", "Evaluator", None, None),
        "pushed_model": ("PushedModel", "Pusher", None, None),
    }
    assert artifacts == {
        run[key]: {
            "id": run[key],
            "type": type_name,
            "uri": uri("run-1", step, key),
            "name": None,
            "external_id": None,
            "digest": digest,
            "version": version,
            "source": False,  # ExampleGen produced the examples: nothing here comes from nowhere
        }
        for key, (type_name, step, digest, version) in expected.items()
    }
    # The Examples' digest is its input_fingerprint (the first digest property it has).
    assert artifacts[run["examples"]]["digest"] == "sha256:1111"

    contexts = document["contexts"]
    assert [c["id"] for c in contexts] == sorted(c["id"] for c in contexts)
    assert sorted((c["type"], c["name"]) for c in contexts) == sorted(
        [("pipeline", "taxi"), ("pipeline_run", "run-1")] + [("node", f"taxi.{step}") for step in STEPS]
    )
    validate(document)


def test_same_graph_same_hash_and_another_run_another(answers: LineageAnswers, two_runs: Runs) -> None:
    first, first_hash = get_manifest(answers, two_runs["run-1"]["pushed_model"])
    again, again_hash = get_manifest(answers, two_runs["run-1"]["pushed_model"])
    assert (again, again_hash) == (first, first_hash)
    other, other_hash = get_manifest(answers, two_runs["run-2"]["pushed_model"])
    assert other_hash != first_hash
    validate(other)
    trainer = next(e for e in other["executions"] if e["type"] == "Trainer")
    assert trainer["parameters"] == {"train_args": '{"num_steps": 200}'}
    examples = next(a for a in other["artifacts"] if a["id"] == two_runs["run-2"]["examples"])
    assert examples["digest"] == "sha256:2222"
    assert manifest.compare(first, again) == []


def test_the_schema_refuses_what_is_not_a_manifest(answers: LineageAnswers, two_runs: Runs) -> None:
    document, _ = get_manifest(answers, two_runs["run-1"]["model"])
    validate(document)
    for broken in (
        {**document, "manifest_version": 2},
        {**document, "extra": 1},
        {**document, "artifacts": [{**document["artifacts"][0], "source": "no"}]},
        {key: value for key, value in document.items() if key != "contexts"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_compare_reports_a_uri_changed_through_the_store(
    answers: LineageAnswers, client: LocalClient, two_runs: Runs
) -> None:
    run = two_runs["run-1"]
    recorded, recorded_hash = get_manifest(answers, run["pushed_model"])
    stored = client.store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[run["examples"]])).artifacts[0]
    old_uri = stored.uri
    stored.uri = "gs://pipelines/taxi/run-1/ExampleGen/examples-moved"
    client.store.put_artifacts(svc.PutArtifactsRequest(artifacts=[stored]))

    current, current_hash = get_manifest(answers, run["pushed_model"])
    assert current_hash != recorded_hash
    validate(current)
    assert manifest.compare(recorded, current) == [
        f"artifact {run['examples']} (Examples {old_uri}): uri changed from '{old_uri}' to "
        "'gs://pipelines/taxi/run-1/ExampleGen/examples-moved'"
    ]
    # Both directions read the same way round.
    assert manifest.compare(current, current) == []


def test_compare_reports_a_changed_parameter(answers: LineageAnswers, client: LocalClient, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    recorded, _ = get_manifest(answers, run["pushed_model"])
    stored = client.store.get_executions_by_id(svc.GetExecutionsByIDRequest(execution_ids=[run["Trainer"]]))
    trainer = stored.executions[0]
    trainer.custom_properties["train_args"].string_value = '{"num_steps": 300}'
    client.store.put_executions(svc.PutExecutionsRequest(executions=[trainer]))

    current, _ = get_manifest(answers, run["pushed_model"])
    assert manifest.compare(recorded, current) == [
        f"execution {run['Trainer']} (Trainer run-1.Trainer): parameter train_args changed from "
        """'{"num_steps": 100}' to '{"num_steps": 300}'"""
    ]


def test_compare_reports_nodes_added_and_missing_and_a_changed_target(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    recorded, _ = get_manifest(answers, run["model"])
    current = json.loads(manifest.canonical(recorded))
    schema = next(a for a in current["artifacts"] if a["type"] == "Schema")
    current["artifacts"].remove(schema)
    current["artifacts"].append({**schema, "id": 999, "uri": "gs://elsewhere/schema", "digest": "sha256:aa"})
    current["contexts"] = [c for c in current["contexts"] if c["type"] != "pipeline"]
    trainer = next(e for e in current["executions"] if e["type"] == "Trainer")
    trainer["environment"] = {"tfx_version": "1.17.0", "image": "tfx:1.17"}
    del trainer["code_version"]["module_path"]
    trainer["inputs"] = [link for link in trainer["inputs"] if link["role"] != "schema"]
    trainer["inputs"].append({"role": "schema", "artifact_id": 999})
    trainer["state"] = "FAILED"
    pipeline = next(c for c in recorded["contexts"] if c["type"] == "pipeline")

    assert manifest.compare(recorded, current) == [
        f"artifact {run['schema']} (Schema {uri('run-1', 'SchemaGen', 'schema')}) is missing: it is no longer "
        "upstream of the target (deleted, unlinked or unreadable)",
        "artifact 999 (Schema gs://elsewhere/schema) was added: it is now upstream of the target and was not when "
        "the manifest was recorded",
        f"execution {run['Trainer']} (Trainer run-1.Trainer): state changed from 'COMPLETE' to 'FAILED'",
        f"execution {run['Trainer']} (Trainer run-1.Trainer): code version module_path was removed "
        f"(was '{MODULE_PATH}')",
        f"execution {run['Trainer']} (Trainer run-1.Trainer): environment image was added ('tfx:1.17')",
        f"execution {run['Trainer']} (Trainer run-1.Trainer): environment tfx_version changed from '1.16.0' to "
        "'1.17.0'",
        f"execution {run['Trainer']} (Trainer run-1.Trainer): no longer reads artifact {run['schema']} as schema",
        f"execution {run['Trainer']} (Trainer run-1.Trainer): now reads artifact 999 as schema",
        f"context {pipeline['id']} (pipeline taxi) is missing: it is no longer among the closure's contexts "
        "(deleted, unlinked or unreadable)",
    ]

    other_target = {**recorded, "target": {**recorded["target"], "id": run["pushed_model"]}}
    assert manifest.compare(recorded, other_target) == [
        f"the target changed: the recorded manifest is of artifact {run['model']}, the current one of artifact "
        f"{run['pushed_model']}"
    ]
    deleted = {**recorded, "target": {**recorded["target"], "state": "DELETED"}}
    assert manifest.compare(recorded, deleted) == [
        f"target artifact {run['model']} (Model {uri('run-1', 'Trainer', 'model')}): state changed from 'LIVE' "
        "to 'DELETED'"
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "the recorded manifest is not a JSON object"),
        ({"manifest_version": 2}, "the recorded manifest has manifest_version 2; only version 1 is understood"),
        ({"manifest_version": 1, "target": {}}, "the recorded manifest has no target object with an id"),
        (
            {"manifest_version": 1, "target": {"id": 1}, "executions": [], "artifacts": {}, "contexts": []},
            "the recorded manifest: artifacts must be a list of objects with an id",
        ),
        (
            {
                "manifest_version": 1,
                "target": {"id": 1},
                "executions": [{"id": 2, "inputs": [{"role": ["x"], "artifact_id": 1}]}],
                "artifacts": [],
                "contexts": [],
            },
            "the recorded manifest: inputs of execution 2 must be a list of {role, artifact_id}",
        ),
    ],
)
def test_compare_refuses_what_is_not_a_manifest(document: Any, message: str) -> None:
    good = {"manifest_version": 1, "target": {"id": 1}, "executions": [], "artifacts": [], "contexts": []}
    with pytest.raises(ValueError) as caught:
        manifest.compare(document, good)
    assert str(caught.value) == message


def _types(client: LocalClient) -> tuple[int, int]:
    artifact_type = client.put_artifact_type(mlmd.ArtifactType(name="Data"))
    execution_type = client.put_execution_type(mlmd.ExecutionType(name="Step"))
    return artifact_type, execution_type


def _output(role: str | None = None) -> mlmd.Event:
    event = mlmd.Event(type=mlmd.Event.OUTPUT)
    if role is not None:
        event.path.steps.add().key = role
    return event


def _input(role: str | None = None) -> mlmd.Event:
    event = mlmd.Event(type=mlmd.Event.INPUT)
    if role is not None:
        event.path.steps.add().key = role
    return event


def test_order_follows_the_data_not_the_ids(answers: LineageAnswers, client: LocalClient) -> None:
    """The consumer is recorded (and numbered) before the producer of its input."""
    data, step = _types(client)
    consumer, (raw, target), _ = client.put_execution(
        mlmd.Execution(type_id=step, name="consumer", last_known_state=mlmd.Execution.COMPLETE),
        [(mlmd.Artifact(type_id=data, uri="mem://raw"), _input("raw")), (mlmd.Artifact(type_id=data), _output())],
        [],
    )
    producer, _, _ = client.put_execution(
        mlmd.Execution(type_id=step, name="producer", last_known_state=mlmd.Execution.RUNNING),
        [(mlmd.Artifact(id=raw, type_id=data, uri="mem://raw"), _output("out"))],
        [],
    )
    assert consumer < producer
    document, _ = get_manifest(answers, target)
    validate(document)
    assert [(e["id"], e["state"], e["inputs"], e["outputs"]) for e in document["executions"]] == [
        (producer, "RUNNING", [], [{"role": "out", "artifact_id": raw}]),
        (
            consumer,
            "COMPLETE",
            [{"role": "raw", "artifact_id": raw}],
            [{"role": None, "artifact_id": target}],
        ),
    ]
    assert [(a["id"], a["uri"], a["source"]) for a in document["artifacts"]] == [
        (raw, "mem://raw", False),
        (target, None, False),
    ]
    assert document["contexts"] == []


def test_a_cycle_lists_every_execution_once_from_its_lowest_id(answers: LineageAnswers, client: LocalClient) -> None:
    """MLMD does not forbid a -> first -> b -> second -> a; the order breaks it at the lowest id."""
    data, step = _types(client)
    first, (a, b, target), _ = client.put_execution(
        mlmd.Execution(type_id=step, name="first"),
        [
            (mlmd.Artifact(type_id=data, name="a"), _input()),
            (mlmd.Artifact(type_id=data, name="b"), _output()),
            (mlmd.Artifact(type_id=data, name="t"), _output()),
        ],
        [],
    )
    second, _, _ = client.put_execution(
        mlmd.Execution(type_id=step, name="second"),
        [
            (mlmd.Artifact(id=b, type_id=data, name="b"), _input()),
            (mlmd.Artifact(id=a, type_id=data, name="a"), _output()),
        ],
        [],
    )
    document, _ = get_manifest(answers, target)
    validate(document)
    assert [e["id"] for e in document["executions"]] == [first, second]
    assert [(x["id"], x["name"], x["source"]) for x in document["artifacts"]] == [
        (a, "a", False),
        (b, "b", False),
        (target, "t", False),
    ]
    assert document["executions"][0]["state"] == "UNKNOWN"


def test_an_artifact_produced_by_nothing_is_its_own_manifest(answers: LineageAnswers, client: LocalClient) -> None:
    data, _ = _types(client)
    artifact = mlmd.Artifact(type_id=data, uri="s3://b/k", name="raw", external_id="ext-1")
    artifact.custom_properties["sha256"].string_value = "ab12"
    artifact.custom_properties["span"].int_value = 7
    (artifact_id,) = client.store.put_artifacts(svc.PutArtifactsRequest(artifacts=[artifact])).artifact_ids
    document, digest = get_manifest(answers, artifact_id)
    validate(document)
    assert document == {
        "manifest_version": 1,
        "target": {
            "id": artifact_id,
            "type": "Data",
            "uri": "s3://b/k",
            "name": "raw",
            "external_id": "ext-1",
            "digest": "ab12",
            "version": 7,
            "state": "UNKNOWN",
        },
        "executions": [],
        "artifacts": [
            {
                "id": artifact_id,
                "type": "Data",
                "uri": "s3://b/k",
                "name": "raw",
                "external_id": "ext-1",
                "digest": "ab12",
                "version": 7,
                "source": True,
            }
        ],
        "contexts": [],
    }
    assert digest == hashlib.sha256(manifest.canonical(document).encode()).hexdigest()


def test_canonical_json_is_sorted_compact_utf8_and_spells_non_finite_floats() -> None:
    assert manifest.canonical({"b": "é", "a": [1, 2.5]}) == '{"a":[1,2.5],"b":"é"}'
    assert manifest._plain({"x": [float("inf"), float("-inf"), float("nan")]}) == {
        "x": ["Infinity", "-Infinity", "NaN"]
    }
    with pytest.raises(ValueError):
        manifest.canonical({"x": float("nan")})


def test_a_closure_beyond_max_nodes_is_refused(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    with pytest.raises(errors.FailedPreconditionError) as caught:
        answers.manifest(pb.ManifestRequest(artifact_id=run["pushed_model"], max_nodes=3))
    assert status_for(caught.value) == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.message == (
        f"the upstream closure of artifact {run['pushed_model']} exceeds max_nodes (3); a partial manifest cannot "
        "reproduce anything: ask again with a larger max_nodes (at most 1000000)"
    )
    # Exactly the closure's size (8 artifacts and 7 executions) is enough.
    document, _ = get_manifest(answers, run["pushed_model"], max_nodes=15)
    assert len(document["artifacts"]) + len(document["executions"]) == 15
    with pytest.raises(errors.FailedPreconditionError):
        answers.manifest(pb.ManifestRequest(artifact_id=run["pushed_model"], max_nodes=14))


def test_a_deadline_too_near_is_refused_not_answered_in_part(answers: LineageAnswers, two_runs: Runs) -> None:
    with pytest.raises(errors.DeadlineExceededError) as caught:
        answers.manifest(pb.ManifestRequest(artifact_id=two_runs["run-1"]["pushed_model"]), deadline=0.0)
    assert status_for(caught.value) == grpc.StatusCode.DEADLINE_EXCEEDED


@pytest.mark.parametrize(
    ("request_fields", "error", "code", "message"),
    [
        ({}, errors.InvalidArgumentError, "INVALID_ARGUMENT", "artifact_id must be a positive id, got 0"),
        (
            {"artifact_id": -4},
            errors.InvalidArgumentError,
            "INVALID_ARGUMENT",
            "artifact_id must be a positive id, got -4",
        ),
        ({"artifact_id": 10**9}, errors.NotFoundError, "NOT_FOUND", "artifact 1000000000 does not exist"),
        (
            {"artifact_id": 1, "max_nodes": -1},
            errors.InvalidArgumentError,
            "INVALID_ARGUMENT",
            "max_nodes must be between 1 and 1000000, got -1",
        ),
        (
            {"artifact_id": 1, "max_nodes": 1_000_001},
            errors.InvalidArgumentError,
            "INVALID_ARGUMENT",
            "max_nodes must be between 1 and 1000000, got 1000001",
        ),
    ],
)
def test_bad_requests(
    answers: LineageAnswers,
    request_fields: dict[str, int],
    error: type[errors.LineageError],
    code: str,
    message: str,
) -> None:
    with pytest.raises(error) as caught:
        answers.manifest(pb.ManifestRequest(**request_fields))
    assert status_for(caught.value) == getattr(grpc.StatusCode, code)
    assert caught.value.message == message
