"""Completeness: each gap kind on a small graph with its exact score, the gaps of a
TFX-shaped run reasoned out from what its components record, truncation and bad requests."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from lineagedb import errors
from lineagedb.api.status import status_for
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.answers.conventions import from_mapping
from lineagedb.service.answers.service import LineageAnswers
from lineagedb.store.unit_of_work import Database
from tests.answers.conftest import LocalClient

Runs = dict[str, dict[str, int]]
Gaps = list[tuple[str, str, int]]

DIGEST_NAMES = "digest, content_digest, sha256, checksum, md5, fingerprint, input_fingerprint"
VERSION_NAMES = "version, data_version, model_version, span"
CODE_NAMES = "code_version, git_commit, git_sha, source_version, module_path, module_file, mlflow.source.git.commit"


def artifact(node_id: int) -> pb.NodeRef:
    return pb.NodeRef(artifact_id=node_id)


def execution(node_id: int) -> pb.NodeRef:
    return pb.NodeRef(execution_id=node_id)


def context(node_id: int) -> pb.NodeRef:
    return pb.NodeRef(context_id=node_id)


def completeness(answers: LineageAnswers, node: pb.NodeRef, **options: Any) -> pb.CompletenessResponse:
    return answers.completeness(pb.CompletenessRequest(node=node, **options))


def gaps_of(response: pb.CompletenessResponse) -> Gaps:
    """(kind, node kind, id) of each gap, in the answer's order."""
    found = []
    for gap in response.gaps:
        which = gap.node.WhichOneof("node")
        assert which is not None
        found.append((gap.kind, which.removesuffix("_id"), getattr(gap.node, which)))
    return found


class Builder:
    """Small graphs through the official client's methods."""

    def __init__(self, client: LocalClient) -> None:
        self.client = client
        self.data = client.put_artifact_type(mlmd.ArtifactType(name="Data"))
        self.step = client.put_execution_type(mlmd.ExecutionType(name="Step"))
        self.run = client.put_context_type(mlmd.ContextType(name="run"))

    def artifact(self, uri: str, **custom: Any) -> mlmd.Artifact:
        node = mlmd.Artifact(type_id=self.data, uri=uri, state=mlmd.Artifact.LIVE)
        for name, value in custom.items():
            if isinstance(value, int):
                node.custom_properties[name].int_value = value
            else:
                node.custom_properties[name].string_value = value
        return node

    def lone_artifact(self, uri: str, **custom: Any) -> int:
        request = svc.PutArtifactsRequest(artifacts=[self.artifact(uri, **custom)])
        return self.client.store.put_artifacts(request).artifact_ids[0]

    def execution(self, name: str, state: int = mlmd.Execution.COMPLETE, **custom: Any) -> mlmd.Execution:
        node = mlmd.Execution(type_id=self.step, name=name, last_known_state=state)
        for key, value in custom.items():
            node.custom_properties[key].string_value = value
        return node

    def run_step(
        self,
        node: mlmd.Execution,
        inputs: list[mlmd.Artifact] = [],  # noqa: B006 - never mutated
        outputs: list[mlmd.Artifact] = [],  # noqa: B006
        run: str | None = None,
    ) -> tuple[int, list[int], list[int]]:
        pairs = [(a, mlmd.Event(type=mlmd.Event.INPUT)) for a in inputs]
        pairs += [(a, mlmd.Event(type=mlmd.Event.OUTPUT)) for a in outputs]
        contexts = [mlmd.Context(type_id=self.run, name=run)] if run else []
        return self.client.put_execution(node, pairs, contexts, reuse_context_if_already_exist=True)


FULL = {"digest": "sha256:00", "version": 3}
GOOD_STEP = {"code_version": "git:abc", "learning_rate": "0.1"}


def test_an_artifact_with_nothing_recorded_fails_all_three_checks(answers: LineageAnswers, client: LocalClient) -> None:
    build = Builder(client)
    bare = build.lone_artifact("s3://raw/bare")
    got = completeness(answers, artifact(bare))
    assert gaps_of(got) == [
        ("artifact_without_digest", "artifact", bare),
        ("artifact_without_producer", "artifact", bare),
        ("artifact_without_version", "artifact", bare),
    ]
    assert [gap.message for gap in got.gaps] == [
        f"artifact {bare} (Data s3://raw/bare) has no content digest: record one of the properties {DIGEST_NAMES}",
        f"artifact {bare} (Data s3://raw/bare) was produced by no execution: record the step that wrote it "
        "(an OUTPUT event)",
        f"artifact {bare} (Data s3://raw/bare) has no version: record one of the properties {VERSION_NAMES}",
    ]
    assert (got.checks, got.score, got.truncated) == (3, 0.0, pb.TRUNCATION_UNSPECIFIED)


def test_a_source_with_digest_and_version_lacks_only_a_producer(answers: LineageAnswers, client: LocalClient) -> None:
    build = Builder(client)
    source = build.lone_artifact("s3://raw/source", sha256="ab", data_version=2)
    got = completeness(answers, artifact(source))
    assert gaps_of(got) == [("artifact_without_producer", "artifact", source)]
    assert (got.checks, got.score) == (3, pytest.approx(2 / 3))


def test_a_running_step_without_code_or_parameters(answers: LineageAnswers, client: LocalClient) -> None:
    build = Builder(client)
    step, (output,), _ = build.run_step(
        build.execution("train", mlmd.Execution.RUNNING, pipeline_name="p"),  # bookkeeping, not a parameter
        outputs=[build.artifact("s3://out/model", **FULL)],
    )
    got = completeness(answers, artifact(output))
    assert gaps_of(got) == [
        ("execution_not_complete", "execution", step),
        ("execution_without_code_version", "execution", step),
        ("execution_without_parameters", "execution", step),
    ]
    assert [gap.message for gap in got.gaps] == [
        f"execution {step} (Step train) is RUNNING, not COMPLETE or CACHED: its outputs may not be those of a "
        "finished run",
        f"execution {step} (Step train) has no code version: record one of the properties {CODE_NAMES}",
        f"execution {step} (Step train) has no parameters: record the settings it ran with as properties",
    ]
    assert (got.checks, got.score) == (6, 0.5)


def test_every_unfinished_state_is_a_gap_and_complete_or_cached_is_not(
    answers: LineageAnswers, client: LocalClient
) -> None:
    build = Builder(client)
    states = ("COMPLETE", "CACHED", "RUNNING", "FAILED", "NEW", "CANCELED", "UNKNOWN")
    ids = {}
    for state in states:
        ids[state], _, run_ids = build.run_step(
            build.execution(state.lower(), mlmd.Execution.State.Value(state), **GOOD_STEP),
            outputs=[build.artifact(f"s3://out/{state}", **FULL)],
            run="states",
        )
    got = completeness(answers, context(run_ids[0]))
    unfinished = ("RUNNING", "FAILED", "NEW", "CANCELED", "UNKNOWN")
    assert gaps_of(got) == sorted(("execution_not_complete", "execution", ids[state]) for state in unfinished)
    assert {gap.message.split(" is ")[1].split(",")[0] for gap in got.gaps} == set(unfinished)
    # 7 outputs and 7 steps, 3 checks each; 5 failed.
    assert (got.checks, got.score) == (42, pytest.approx(37 / 42))


def test_an_execution_starts_the_walk_at_its_inputs(answers: LineageAnswers, client: LocalClient) -> None:
    build = Builder(client)
    _, (raw,), _ = build.run_step(
        build.execution("ingest", **GOOD_STEP), outputs=[build.artifact("s3://raw", sha256="x")]
    )
    stored_raw = build.artifact("s3://raw", sha256="x")
    stored_raw.id = raw
    step, _, _ = build.run_step(
        build.execution("train", **GOOD_STEP), inputs=[stored_raw], outputs=[build.artifact("s3://model", **FULL)]
    )
    got = completeness(answers, execution(step))
    # train, its input and the input's producer; not train's output (downstream).
    assert gaps_of(got) == [("artifact_without_version", "artifact", raw)]
    assert (got.checks, got.score) == (9, pytest.approx(8 / 9))


def test_a_context_without_members_has_nothing_to_miss(answers: LineageAnswers, client: LocalClient) -> None:
    build = Builder(client)
    request = svc.PutContextsRequest(contexts=[mlmd.Context(type_id=build.run, name="empty")])
    (empty,) = client.store.put_contexts(request).context_ids
    got = completeness(answers, context(empty))
    assert (gaps_of(got), got.checks, got.score) == ([], 0, 1.0)


def test_a_complete_chain_scores_one(answers: LineageAnswers, client: LocalClient) -> None:
    build = Builder(client)
    _, (raw,), _ = build.run_step(
        build.execution("ingest", mlmd.Execution.CACHED, **GOOD_STEP), outputs=[build.artifact("s3://raw", **FULL)]
    )
    stored = build.artifact("s3://raw", **FULL)
    stored.id = raw
    _, (_, model), _ = build.run_step(
        build.execution("train", **GOOD_STEP), inputs=[stored], outputs=[build.artifact("s3://model", **FULL)]
    )
    got = completeness(answers, artifact(model))
    assert (gaps_of(got), got.checks, got.score) == ([], 12, 1.0)


# Of the TFX-shaped run (tests/answers/tfx_pipeline.py) upstream of the pushed model:
# only ExampleGen's Examples carry a digest (input_fingerprint); both Examples carry a
# version ("version", and "span"); ExampleGen produced the Examples, so no artifact lacks a
# producer. Transform and Trainer record module_path (a code version); Trainer's train_args
# and ExampleGen's input_base are the only parameters (Transform's module_path is code, and
# tfx_version is environment). Every step is COMPLETE.
WITHOUT_DIGEST = (
    "statistics",
    "schema",
    "transform_graph",
    "transformed_examples",
    "model",
    "blessing",
    "pushed_model",
)
WITHOUT_VERSION = ("statistics", "schema", "transform_graph", "model", "blessing", "pushed_model")
WITHOUT_CODE = ("ExampleGen", "StatisticsGen", "SchemaGen", "Evaluator", "Pusher")
WITHOUT_PARAMETERS = ("StatisticsGen", "SchemaGen", "Transform", "Evaluator", "Pusher")


def tfx_gaps(run: dict[str, int], extra_artifacts: tuple[str, ...] = ()) -> Gaps:
    gaps = [("artifact_without_digest", "artifact", run[k]) for k in WITHOUT_DIGEST + extra_artifacts]
    gaps += [("artifact_without_version", "artifact", run[k]) for k in WITHOUT_VERSION + extra_artifacts]
    gaps += [("execution_without_code_version", "execution", run[k]) for k in WITHOUT_CODE]
    gaps += [("execution_without_parameters", "execution", run[k]) for k in WITHOUT_PARAMETERS]
    return sorted(gaps)


def test_the_gaps_of_a_tfx_run_upstream_of_its_pushed_model(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    got = completeness(answers, artifact(run["pushed_model"]))
    assert gaps_of(got) == tfx_gaps(run)
    # 8 artifacts and 7 executions, 3 checks each; 7 + 6 + 5 + 5 = 23 failed.
    assert (got.checks, got.score) == (45, pytest.approx(22 / 45))


def test_the_gaps_of_a_tfx_run_context(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-2"]
    got = completeness(answers, context(run["run"]))
    # The run also holds the evaluation, which is not upstream of the pushed model.
    assert gaps_of(got) == tfx_gaps(run, ("evaluation",))
    assert (got.checks, got.score) == (48, pytest.approx(23 / 48))


def test_conventions_decide_what_counts(database: Database, two_runs: Runs) -> None:
    """A deployment whose pipelines record digests as `etag` and code as `input_base`."""
    run = two_runs["run-1"]
    conventions = from_mapping({"digest": ["etag"], "code_version": ["module_path", "input_base"]})
    got = completeness(LineageAnswers(database, conventions), artifact(run["pushed_model"]))
    kinds = [(kind, node_id) for kind, _, node_id in gaps_of(got)]
    assert [k for k in kinds if k[0] == "artifact_without_digest"] == sorted(
        ("artifact_without_digest", run[k]) for k in (*WITHOUT_DIGEST, "examples")
    )
    # input_base is now code, so ExampleGen has a code version and no parameters.
    assert ("execution_without_code_version", run["ExampleGen"]) not in kinds
    assert ("execution_without_parameters", run["ExampleGen"]) in kinds


def test_a_truncated_walk_says_so_and_checks_only_what_it_knows(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    # pushed_model, Pusher, then model and blessing: the budget stops at 4, leaving model and
    # blessing unexpanded (their producers unknown, so not checked for one).
    got = completeness(answers, artifact(run["pushed_model"]), max_nodes=4)
    assert got.truncated == pb.NODE_BUDGET
    assert gaps_of(got) == sorted(
        [("artifact_without_digest", "artifact", run[k]) for k in ("model", "blessing", "pushed_model")]
        + [("artifact_without_version", "artifact", run[k]) for k in ("model", "blessing", "pushed_model")]
        + [("execution_without_code_version", "execution", run["Pusher"])]
        + [("execution_without_parameters", "execution", run["Pusher"])]
    )
    # 3 artifacts x 2 + the pushed model's producer check + 3 for the Pusher.
    assert (got.checks, got.score) == (10, pytest.approx(2 / 10))


@pytest.mark.parametrize(
    ("request_fields", "error", "code", "message"),
    [
        (
            {},
            errors.InvalidArgumentError,
            "INVALID_ARGUMENT",
            "node must set artifact_id or execution_id or context_id",
        ),
        (
            {"node": pb.NodeRef(artifact_id=0)},
            errors.InvalidArgumentError,
            "INVALID_ARGUMENT",
            "node.artifact_id must be a positive id, got 0",
        ),
        (
            {"node": pb.NodeRef(context_id=-2)},
            errors.InvalidArgumentError,
            "INVALID_ARGUMENT",
            "node.context_id must be a positive id, got -2",
        ),
        ({"node": pb.NodeRef(execution_id=77)}, errors.NotFoundError, "NOT_FOUND", "execution 77 does not exist"),
        ({"node": pb.NodeRef(context_id=77)}, errors.NotFoundError, "NOT_FOUND", "context 77 does not exist"),
        (
            {"node": pb.NodeRef(artifact_id=1), "max_nodes": -5},
            errors.InvalidArgumentError,
            "INVALID_ARGUMENT",
            "max_nodes must be between 1 and 1000000, got -5",
        ),
    ],
)
def test_bad_requests(
    answers: LineageAnswers, request_fields: dict[str, Any], error: type[errors.LineageError], code: str, message: str
) -> None:
    with pytest.raises(error) as caught:
        answers.completeness(pb.CompletenessRequest(**request_fields))
    assert status_for(caught.value) == getattr(grpc.StatusCode, code)
    assert caught.value.message == message
