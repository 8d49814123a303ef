"""Diff: exact change lists between the two TFX-shaped runs (executions, runs, upstream
closures), between two hand-made variants that add, remove and change every kind of
thing, of a node with itself, and bad requests with their status codes.

The graphs are read-only here, so each backend writes them once per module."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from lineagedb import errors
from lineagedb.api.status import status_for
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service.answers.service import LineageAnswers
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import statement_count
from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import create_engine
from lineagedb.store.tenancy import CURRENT_TENANCY, Tenancy
from lineagedb.store.unit_of_work import Database
from tests.answers import tfx_pipeline
from tests.answers.conftest import LocalClient
from tests.backends import scratch_database
from tests.conftest import FakeClock

Ids = dict[str, int]
Row = tuple[str, str, str, list[str], Any, Any]

MISSING_ID = 987_654


class World:
    def __init__(self, answers: LineageAnswers, runs: dict[str, Ids], variants: Ids) -> None:
        self.answers = answers
        self.runs = runs
        self.variants = variants


@pytest.fixture(scope="module")
def world(module_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with scratch_database(module_backend, str(tmp_path_factory.mktemp("diff"))) as url:
        engine = create_engine(url)
        prepare_database(engine)
        statement_count.install(engine)  # counts only inside a counted call
        database = Database(engine)
        client = LocalClient(MetadataStore(database, clock=FakeClock()))
        runs = tfx_pipeline.write_two_runs(mlmd, client)
        variants = write_variants(client)
        for width in WIDTHS:
            variants.update(write_wide(client, width))
        yield World(LineageAnswers(database), runs, variants)
        database.dispose()


# -- helpers ------------------------------------------------------------------------------------


def execution(node_id: int) -> pb.NodeRef:
    return pb.NodeRef(execution_id=node_id)


def context(node_id: int) -> pb.NodeRef:
    return pb.NodeRef(context_id=node_id)


def diff(world: World, a: pb.NodeRef, b: pb.NodeRef, upstream: bool = False, **options: Any) -> pb.DiffResponse:
    return world.answers.diff(pb.DiffRequest(a=a, b=b, upstream=upstream), **options)


def rows(response: pb.DiffResponse) -> list[Row]:
    found = []
    for change in response.changes:
        for text in (change.before, change.after):
            # Compact JSON: sorted keys, no insignificant space.
            assert not text or text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
        found.append(
            (
                change.section,
                change.key,
                pb.Change.Kind.Name(change.kind),
                list(change.fields),
                json.loads(change.before) if change.before else None,
                json.loads(change.after) if change.after else None,
            )
        )
    return found


# What tfx_pipeline writes: key -> (producing component, type name, extra identifying fields).
TFX_ARTIFACTS: dict[str, tuple[str, str]] = {
    "examples": ("ExampleGen", "Examples"),
    "statistics": ("StatisticsGen", "ExampleStatistics"),
    "schema": ("SchemaGen", "Schema"),
    "transform_graph": ("Transform", "TransformGraph"),
    "transformed_examples": ("Transform", "Examples"),
    "model": ("Trainer", "Model"),
    "evaluation": ("Evaluator", "ModelEvaluation"),
    "blessing": ("Evaluator", "ModelBlessing"),
    "pushed_model": ("Pusher", "PushedModel"),
}
FINGERPRINT = {"run-1": "sha256:1111", "run-2": "sha256:2222"}


def tfx_artifact(world: World, run: str, key: str) -> dict[str, Any]:
    component, type_name = TFX_ARTIFACTS[key]
    found: dict[str, Any] = {
        "id": world.runs[run][key],
        "type": type_name,
        "uri": f"gs://pipelines/taxi/{run}/{component}/{key}",
    }
    if key in ("examples", "transformed_examples"):
        found["version"] = 1  # "version" comes before "span" in the conventions
    if key == "examples":
        found["digest"] = FINGERPRINT[run]  # input_fingerprint
    return found


def tfx_changed(world: World, section: str, key: str, artifact: str) -> Row:
    """Every artifact of run-2 differs from run-1's by URI (it holds the run), Examples
    from ExampleGen also by digest (the raw data's fingerprint)."""
    fields = ["uri", "digest"] if artifact == "examples" else ["uri"]
    before, after = tfx_artifact(world, "run-1", artifact), tfx_artifact(world, "run-2", artifact)
    return (section, key, "CHANGED", fields, before, after)


TRAIN_ARGS: Row = ("parameter", "Trainer/train_args", "CHANGED", [], '{"num_steps": 100}', '{"num_steps": 200}')
INPUT_BASE: Row = (
    "parameter",
    "ExampleGen/input_base",
    "CHANGED",
    [],
    "gs://raw/taxi/2026-11",
    "gs://raw/taxi/2026-12",
)
MODULE_PATH = "taxi_utils@gs://bucket/_wheels/taxi-0.1-abc123.whl"


def tfx_execution(world: World, run: str, step: str) -> dict[str, Any]:
    found: dict[str, Any] = {"id": world.runs[run][step], "type": step, "name": f"{run}.{step}"}
    if step == "ExampleGen":
        found["parameters"] = {"input_base": "gs://raw/taxi/2026-11" if run == "run-1" else "gs://raw/taxi/2026-12"}
    if step == "Trainer":
        found["parameters"] = {"train_args": '{"num_steps": 100}' if run == "run-1" else '{"num_steps": 200}'}
        found["code_version"] = {"module_path": MODULE_PATH}
        found["environment"] = {"tfx_version": "1.16.0"}
    return found


def upstream_execution_changes(world: World) -> list[Row]:
    return [
        (
            "upstream_execution",
            "ExampleGen",
            "CHANGED",
            ["input_base"],
            tfx_execution(world, "run-1", "ExampleGen"),
            tfx_execution(world, "run-2", "ExampleGen"),
        ),
        (
            "upstream_execution",
            "Trainer",
            "CHANGED",
            ["train_args"],
            tfx_execution(world, "run-1", "Trainer"),
            tfx_execution(world, "run-2", "Trainer"),
        ),
    ]


# -- the two TFX runs ---------------------------------------------------------------------------


def test_two_trainers_differ_in_train_args_and_in_every_input_and_output_by_uri(world: World) -> None:
    one, two = world.runs["run-1"], world.runs["run-2"]
    got = diff(world, execution(one["Trainer"]), execution(two["Trainer"]))
    assert rows(got) == [
        # Trainer reads Transform's transformed_examples as "examples".
        tfx_changed(world, "input", "examples", "transformed_examples"),
        tfx_changed(world, "input", "schema", "schema"),
        tfx_changed(world, "input", "transform_graph", "transform_graph"),
        tfx_changed(world, "output", "model", "model"),
        ("parameter", "train_args", "CHANGED", [], '{"num_steps": 100}', '{"num_steps": 200}'),
        # module_path (code version) and tfx_version (environment) are the same: no change.
    ]
    assert (got.upstream_executions_compared, got.upstream_artifacts_compared, got.truncated) == (0, 0, 0)


def test_two_example_gens_differ_in_input_base_and_in_the_examples_digest(world: World) -> None:
    one, two = world.runs["run-1"], world.runs["run-2"]
    got = diff(world, execution(one["ExampleGen"]), execution(two["ExampleGen"]))
    assert rows(got) == [
        tfx_changed(world, "output", "examples", "examples"),
        ("parameter", "input_base", "CHANGED", [], "gs://raw/taxi/2026-11", "gs://raw/taxi/2026-12"),
    ]


def test_two_runs_differ_in_two_parameters_and_every_output(world: World) -> None:
    one, two = world.runs["run-1"], world.runs["run-2"]
    got = diff(world, context(one["run"]), context(two["run"]))
    # Every step is matched ("run-1.Trainer" and "run-2.Trainer" are both "Trainer"), so
    # there is no "execution" entry; nothing the runs read came from outside them, so
    # there are no inputs.
    assert rows(got) == [
        tfx_changed(world, "output", "Evaluator/blessing", "blessing"),
        tfx_changed(world, "output", "Evaluator/evaluation", "evaluation"),
        tfx_changed(world, "output", "ExampleGen/examples", "examples"),
        tfx_changed(world, "output", "Pusher/pushed_model", "pushed_model"),
        tfx_changed(world, "output", "SchemaGen/schema", "schema"),
        tfx_changed(world, "output", "StatisticsGen/statistics", "statistics"),
        tfx_changed(world, "output", "Trainer/model", "model"),
        tfx_changed(world, "output", "Transform/transform_graph", "transform_graph"),
        tfx_changed(world, "output", "Transform/transformed_examples", "transformed_examples"),
        INPUT_BASE,
        TRAIN_ARGS,
    ]
    assert got.upstream_executions_compared == got.upstream_artifacts_compared == 0


def test_upstream_of_two_pushers_compares_their_whole_provenance(world: World) -> None:
    one, two = world.runs["run-1"], world.runs["run-2"]
    got = diff(world, execution(one["Pusher"]), execution(two["Pusher"]), upstream=True)
    assert rows(got) == [
        tfx_changed(world, "input", "model", "model"),
        tfx_changed(world, "input", "model_blessing", "blessing"),
        tfx_changed(world, "output", "pushed_model", "pushed_model"),
        *upstream_execution_changes(world),
        # Upstream of a Pusher execution: its inputs and everything they came from, but
        # neither its own output nor the Evaluator's evaluation.
        tfx_changed(world, "upstream_artifact", "Evaluator/blessing", "blessing"),
        tfx_changed(world, "upstream_artifact", "ExampleGen/examples", "examples"),
        tfx_changed(world, "upstream_artifact", "SchemaGen/schema", "schema"),
        tfx_changed(world, "upstream_artifact", "StatisticsGen/statistics", "statistics"),
        tfx_changed(world, "upstream_artifact", "Trainer/model", "model"),
        tfx_changed(world, "upstream_artifact", "Transform/transform_graph", "transform_graph"),
        tfx_changed(world, "upstream_artifact", "Transform/transformed_examples", "transformed_examples"),
    ]
    # All seven steps and the seven artifacts upstream of each Pusher are matched.
    assert (got.upstream_executions_compared, got.upstream_artifacts_compared) == (7, 7)
    assert got.truncated == pb.TRUNCATION_UNSPECIFIED


def test_upstream_of_two_runs_starts_from_all_of_each_run(world: World) -> None:
    one, two = world.runs["run-1"], world.runs["run-2"]
    got = diff(world, context(one["run"]), context(two["run"]), upstream=True)
    top = rows(diff(world, context(one["run"]), context(two["run"])))
    assert rows(got) == [
        *top,
        *upstream_execution_changes(world),
        *(
            tfx_changed(world, "upstream_artifact", f"{TFX_ARTIFACTS[key][0]}/{key}", key)
            for key in sorted(TFX_ARTIFACTS, key=lambda k: f"{TFX_ARTIFACTS[k][0]}/{k}")
        ),
    ]
    assert (got.upstream_executions_compared, got.upstream_artifacts_compared) == (7, 9)


def test_upstream_cut_short_by_the_deadline_says_so(world: World) -> None:
    one, two = world.runs["run-1"], world.runs["run-2"]
    # A deadline already past: each walk stops before its first level.
    got = diff(world, execution(one["Pusher"]), execution(two["Pusher"]), upstream=True, deadline=time.monotonic())
    assert got.truncated == pb.DEADLINE
    assert [row[0] for row in rows(got)] == ["input", "input", "output"]
    assert (got.upstream_executions_compared, got.upstream_artifacts_compared) == (1, 0)


@pytest.mark.parametrize("kind", ["execution", "context"])
def test_a_node_compared_with_itself_has_no_changes(world: World, kind: str) -> None:
    run = world.runs["run-1"]
    node = execution(run["Pusher"]) if kind == "execution" else context(run["run"])
    assert rows(diff(world, node, node)) == []
    got = diff(world, node, node, upstream=True)
    assert rows(got) == []
    assert (got.upstream_executions_compared, got.upstream_artifacts_compared) == (
        (7, 7) if kind == "execution" else (7, 9)
    )


# -- variants that add, remove and change everything ---------------------------------------------


def write_variants(client: LocalClient) -> Ids:
    """Runs x-1 and x-2 of a hand-made pipeline: a Trainer step "train" in each, and an
    Evaluator step "evaluate" in x-2 only."""
    a_types = {n: client.put_artifact_type(mlmd.ArtifactType(name=n)) for n in ("Examples", "Schema", "Model")}
    for name in ("HyperParameters", "Vocabulary", "ModelEvaluation"):
        a_types[name] = client.put_artifact_type(mlmd.ArtifactType(name=name))
    e_types = {n: client.put_execution_type(mlmd.ExecutionType(name=n)) for n in ("Trainer", "Evaluator")}
    run_type = client.put_context_type(mlmd.ContextType(name="pipeline_run"))
    ids: Ids = {}

    def artifact(key: str, type_name: str, uri: str, external_id: str = "", **custom: str) -> mlmd.Artifact:
        if key in ids:
            return mlmd.Artifact(id=ids[key], type_id=a_types[type_name], uri=uri)
        made = mlmd.Artifact(type_id=a_types[type_name], uri=uri)
        if external_id:
            made.external_id = external_id
        for name, value in custom.items():
            made.custom_properties[name].string_value = value
        return made

    def event(kind: Any, role: str | None, index: int = 0) -> mlmd.Event:
        made = mlmd.Event(type=kind)
        if role is not None:
            made.path.steps.add().key = role
            made.path.steps.add().index = index
        return made

    def step(run: str, name: str, type_name: str, links: list[tuple[str, Any, Any]], **props: Any) -> None:
        made = mlmd.Execution(
            type_id=e_types[type_name], name=f"{run}.{name}", last_known_state=mlmd.Execution.COMPLETE
        )
        for prop, value in props.items():
            target = made.custom_properties[prop]
            if isinstance(value, float):
                target.double_value = value
            elif isinstance(value, int):
                target.int_value = value
            else:
                target.string_value = value
        pairs = [(art, ev) for _, art, ev in links]
        execution_id, artifact_ids, context_ids = client.put_execution(
            made, pairs, [mlmd.Context(type_id=run_type, name=run)], reuse_context_if_already_exist=True
        )
        ids[f"{run}.{name}"], ids[run] = execution_id, context_ids[0]
        for (key, _, _), artifact_id in zip(links, artifact_ids, strict=True):
            ids[key] = artifact_id

    IN, OUT = mlmd.Event.INPUT, mlmd.Event.OUTPUT
    step(
        "x-1",
        "train",
        "Trainer",
        [
            ("e1", artifact("e1", "Examples", "gs://data/examples", digest="d1"), event(IN, "examples")),
            ("s1", artifact("s1", "Schema", "gs://data/schema"), event(IN, "schema")),
            ("v1", artifact("v1", "Vocabulary", "gs://data/vocab-1"), event(IN, None)),  # no path: role = type
            ("base", artifact("base", "Model", "gs://models/base"), event(IN, "base_model")),
            ("m1", artifact("m1", "Model", "gs://models/x-1"), event(OUT, "model")),
        ],
        learning_rate=0.1,
        epochs=5,
        git_commit="abc",
        image="trainer:1",
    )
    step(
        "x-2",
        "train",
        "Trainer",
        [
            ("e2", artifact("e2", "Examples", "gs://data/examples", "examples-2", digest="d2"), event(IN, "examples")),
            ("e2b", artifact("e2b", "Examples", "gs://data/examples-extra"), event(IN, "examples", 1)),
            ("h2", artifact("h2", "HyperParameters", "gs://data/hp"), event(IN, "hyperparameters")),
            ("v2", artifact("v2", "Vocabulary", "gs://data/vocab-2"), event(IN, None)),
            ("base", artifact("base", "Model", "gs://models/base"), event(IN, "base_model")),  # the same artifact
            ("m2", artifact("m2", "Model", "gs://models/x-2"), event(OUT, "model")),
        ],
        learning_rate=0.2,
        batch_size=64,
        git_commit="def",
        image="trainer:1",
        python_version="3.12",
    )
    step(
        "x-2",
        "evaluate",
        "Evaluator",
        [
            ("m2", artifact("m2", "Model", "gs://models/x-2"), event(IN, "model")),
            ("ev2", artifact("ev2", "ModelEvaluation", "gs://eval/x-2"), event(OUT, "evaluation")),
        ],
    )
    return ids


def variant_rows(world: World, prefix: str) -> list[Row]:
    """The changes from x-1's train step to x-2's, keys prefixed with `prefix`."""
    ids = world.variants

    def art(key: str, type_name: str, uri: str, **extra: Any) -> dict[str, Any]:
        return {"id": ids[key], "type": type_name, "uri": uri, **extra}

    e1 = art("e1", "Examples", "gs://data/examples", digest="d1")
    e2 = art("e2", "Examples", "gs://data/examples", digest="d2", external_id="examples-2")
    return [
        (
            "input",
            prefix + "Vocabulary",
            "CHANGED",
            ["uri"],
            art("v1", "Vocabulary", "gs://data/vocab-1"),
            art("v2", "Vocabulary", "gs://data/vocab-2"),
        ),
        ("input", prefix + "examples", "CHANGED", ["external_id", "digest"], e1, e2),
        ("input", prefix + "examples[1]", "ADDED", [], None, art("e2b", "Examples", "gs://data/examples-extra")),
        ("input", prefix + "hyperparameters", "ADDED", [], None, art("h2", "HyperParameters", "gs://data/hp")),
        ("input", prefix + "schema", "REMOVED", [], art("s1", "Schema", "gs://data/schema"), None),
        # base_model is the same artifact on both sides: no change.
        (
            "output",
            prefix + "model",
            "CHANGED",
            ["uri"],
            art("m1", "Model", "gs://models/x-1"),
            art("m2", "Model", "gs://models/x-2"),
        ),
        ("parameter", prefix + "batch_size", "ADDED", [], None, 64),
        ("parameter", prefix + "epochs", "REMOVED", [], 5, None),
        ("parameter", prefix + "learning_rate", "CHANGED", [], 0.1, 0.2),
        ("code_version", prefix + "git_commit", "CHANGED", [], "abc", "def"),
        # image is the same; python_version is new.
        ("environment", prefix + "python_version", "ADDED", [], None, "3.12"),
    ]


def test_two_executions_with_roles_and_values_added_removed_and_changed(world: World) -> None:
    ids = world.variants
    got = diff(world, execution(ids["x-1.train"]), execution(ids["x-2.train"]))
    assert rows(got) == variant_rows(world, "")


def test_two_runs_with_a_step_of_one_run_only(world: World) -> None:
    ids = world.variants
    got = diff(world, context(ids["x-1"]), context(ids["x-2"]))
    # "x-2.train" in run "x-2" is step "train"; not its type name, so shown "Trainer:train".
    expected = variant_rows(world, "Trainer:train/")
    evaluation = {"id": ids["ev2"], "type": "ModelEvaluation", "uri": "gs://eval/x-2"}
    # The evaluator's input (the model) was produced inside the run: not a run input.
    expected.insert(5, ("output", "Evaluator:evaluate/evaluation", "ADDED", [], None, evaluation))
    evaluator = {"id": ids["x-2.evaluate"], "type": "Evaluator", "name": "x-2.evaluate"}
    expected.append(("execution", "Evaluator:evaluate", "ADDED", [], None, evaluator))
    assert rows(got) == expected


def test_upstream_of_two_executions_matches_source_artifacts_by_role(world: World) -> None:
    ids = world.variants
    got = diff(world, execution(ids["x-1.train"]), execution(ids["x-2.train"]), upstream=True)
    summary = {
        "x-1": {
            "id": ids["x-1.train"],
            "type": "Trainer",
            "name": "x-1.train",
            "parameters": {"learning_rate": 0.1, "epochs": 5},
            "code_version": {"git_commit": "abc"},
            "environment": {"image": "trainer:1"},
        },
        "x-2": {
            "id": ids["x-2.train"],
            "type": "Trainer",
            "name": "x-2.train",
            "parameters": {"learning_rate": 0.2, "batch_size": 64},
            "code_version": {"git_commit": "def"},
            "environment": {"image": "trainer:1", "python_version": "3.12"},
        },
    }
    fields = ["batch_size", "epochs", "git_commit", "learning_rate", "python_version"]
    # Nothing upstream produced the inputs: they are sources, matched by the role read as.
    upstream = [
        (section.replace("input", "upstream_artifact"), key, kind, changed, before, after)
        for section, key, kind, changed, before, after in variant_rows(world, "source/")
        if section == "input"
    ]
    assert rows(got) == [
        *variant_rows(world, ""),
        ("upstream_execution", "Trainer:train", "CHANGED", fields, summary["x-1"], summary["x-2"]),
        *upstream,
    ]
    # The train steps; the vocabulary, the examples and the shared base model.
    assert (got.upstream_executions_compared, got.upstream_artifacts_compared) == (1, 3)


# -- set-based: statements do not grow with the runs' width -----------------------------------

WIDTHS = (3, 30)


def write_wide(client: LocalClient, width: int) -> Ids:
    """Runs w{width}-1 and w{width}-2: `width` "Worker" steps each, all reading one shared
    source artifact and writing one artifact of their own."""
    source_type = client.put_artifact_type(mlmd.ArtifactType(name="Examples"))
    out_type = client.put_artifact_type(mlmd.ArtifactType(name="Model"))
    worker = client.put_execution_type(mlmd.ExecutionType(name="Worker"))
    run_type = client.put_context_type(mlmd.ContextType(name="pipeline_run"))
    ids: Ids = {}
    source = mlmd.Artifact(type_id=source_type, uri=f"gs://wide/{width}/raw")
    for run in (f"w{width}-1", f"w{width}-2"):
        for index in range(width):
            made = mlmd.Execution(type_id=worker, name=f"{run}.step{index}")
            made.custom_properties["seed"].int_value = index
            read, wrote = mlmd.Event(type=mlmd.Event.INPUT), mlmd.Event(type=mlmd.Event.OUTPUT)
            read.path.steps.add().key = "examples"
            wrote.path.steps.add().key = "model"
            output = mlmd.Artifact(type_id=out_type, uri=f"gs://wide/{run}/step{index}")
            _, artifact_ids, context_ids = client.put_execution(
                made,
                [(source, read), (output, wrote)],
                [mlmd.Context(type_id=run_type, name=run)],
                reuse_context_if_already_exist=True,
            )
            source = mlmd.Artifact(id=artifact_ids[0], type_id=source_type, uri=source.uri)
            ids[run] = context_ids[0]
    return ids


def counted_diff(world: World, a: pb.NodeRef, b: pb.NodeRef, tmp_path: Path) -> tuple[pb.DiffResponse, int]:
    counter = statement_count.StatementCounter(tmp_path / "statements.json")
    token = counter.begin_call()
    got = diff(world, a, b, upstream=True)
    counter.end_call("Diff", token)
    counter.write()
    per_call = json.loads((tmp_path / "statements.json").read_text())["Diff"]["per_call"]
    (count,) = (int(statements) for statements in per_call)
    return got, count


def test_statements_do_not_grow_with_the_number_of_steps(world: World, tmp_path: Path) -> None:
    counts = []
    for width in WIDTHS:
        a, b = context(world.variants[f"w{width}-1"]), context(world.variants[f"w{width}-2"])
        got, count = counted_diff(world, a, b, tmp_path)
        counts.append(count)
        # Each step's output moved (its URI holds the run); the shared source did not.
        assert [(row[0], row[1], row[2], row[3]) for row in rows(got)] == [
            *(("output", f"Worker:step{i}/model", "CHANGED", ["uri"]) for i in sorted(range(width), key=str)),
            *(
                ("upstream_artifact", f"Worker:step{i}/model", "CHANGED", ["uri"])
                for i in sorted(range(width), key=str)
            ),
        ]
        assert (got.upstream_executions_compared, got.upstream_artifacts_compared) == (width, width + 1)
    assert counts[0] == counts[1], counts


# -- bad requests -------------------------------------------------------------------------------


def code_of(error: errors.LineageError) -> grpc.StatusCode:
    return status_for(error)


@pytest.mark.parametrize(
    ("a", "b", "code", "message"),
    [
        (execution(1), context(1), grpc.StatusCode.INVALID_ARGUMENT, "a and b must be two executions or two contexts"),
        (
            pb.NodeRef(artifact_id=1),
            execution(1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "a must set execution_id or context_id, not artifact_id",
        ),
        (pb.NodeRef(), execution(1), grpc.StatusCode.INVALID_ARGUMENT, "a must set execution_id or context_id"),
        (execution(1), pb.NodeRef(), grpc.StatusCode.INVALID_ARGUMENT, "b must set execution_id or context_id"),
        (execution(1), execution(-3), grpc.StatusCode.INVALID_ARGUMENT, "b.execution_id must be a positive id"),
        (execution(1), execution(MISSING_ID), grpc.StatusCode.NOT_FOUND, f"b: execution {MISSING_ID} does not exist"),
        (context(MISSING_ID), context(1), grpc.StatusCode.NOT_FOUND, f"a: context {MISSING_ID} does not exist"),
    ],
)
def test_bad_requests(world: World, a: pb.NodeRef, b: pb.NodeRef, code: grpc.StatusCode, message: str) -> None:
    with pytest.raises(errors.LineageError) as caught:
        diff(world, a, b, upstream=True)
    assert code_of(caught.value) == code
    assert caught.value.message.startswith(message)


def test_nodes_the_caller_cannot_read_do_not_exist(world: World) -> None:
    run = world.runs["run-1"]
    # Everything was written in the default namespace; this caller reads only team-a.
    token = CURRENT_TENANCY.set(Tenancy(namespace="team-a", readable=frozenset({"team-a"})))
    try:
        with pytest.raises(errors.NotFoundError, match=f"^a: execution {run['Trainer']} does not exist$"):
            diff(world, execution(run["Trainer"]), execution(run["Trainer"]))
    finally:
        CURRENT_TENANCY.reset(token)


def test_every_section_is_named_in_the_proto() -> None:
    """Every section the answer uses is named in lineage.proto's Change.section comment."""
    from lineagedb.service.answers import diff as module

    proto = (Path(__file__).resolve().parents[2] / "protos/lineagedb/v1/lineage.proto").read_text()
    comment = proto.split("message Change {")[1].split("string section = 1;")[0]
    assert [s for s in module.SECTIONS if f'"{s}"' not in comment] == []
