"""A TFX-shaped pipeline run, written through the official client's API.

The same function writes through the official `ml_metadata` client (in its own
virtualenv, see write_pipeline.py) and through an in-process adapter with the same
four methods (tests/answers/conftest.py), so the lineage answers are tested on the
graph TFX would leave: ExampleGen -> StatisticsGen -> SchemaGen -> Transform ->
Trainer -> Evaluator -> Pusher, with TFX's contexts (pipeline, pipeline_run, node),
its event paths (key, index) and the properties its components record.

This module imports nothing: the caller passes the proto module (`pb`, i.e.
metadata_store_pb2 of whichever package) and the client.
"""

from __future__ import annotations

from typing import Any

PIPELINE = "taxi"
# The keys of write_run's answer: its steps (execution types) in pipeline order, and its artifacts.
STEPS = ("ExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer", "Evaluator", "Pusher")
ARTIFACTS = (
    "examples",
    "statistics",
    "schema",
    "transform_graph",
    "transformed_examples",
    "model",
    "evaluation",
    "blessing",
    "pushed_model",
)


def _artifact(pb: Any, type_id: int, uri: str, **custom: Any) -> Any:
    artifact = pb.Artifact(type_id=type_id, uri=uri, state=pb.Artifact.LIVE)
    for name, value in custom.items():
        target = artifact.custom_properties[name]
        if isinstance(value, int):
            target.int_value = value
        else:
            target.string_value = str(value)
    return artifact


def _event(pb: Any, kind: Any, role: str) -> Any:
    event = pb.Event(type=kind)
    event.path.steps.add().key = role
    event.path.steps.add().index = 0
    return event


def _types(pb: Any, client: Any) -> dict[str, int]:
    ids: dict[str, int] = {}
    for name in (
        "Examples",
        "ExampleStatistics",
        "Schema",
        "TransformGraph",
        "Model",
        "ModelEvaluation",
        "ModelBlessing",
        "PushedModel",
    ):
        ids[name] = client.put_artifact_type(pb.ArtifactType(name=name))
    for name in ("ExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer", "Evaluator", "Pusher"):
        ids[name] = client.put_execution_type(pb.ExecutionType(name=name))
    for name in ("pipeline", "pipeline_run", "node"):
        ids[name] = client.put_context_type(pb.ContextType(name=name))
    return ids


def write_run(
    pb: Any,
    client: Any,
    run: str,
    *,
    num_steps: int = 100,
    data_uri: str = "gs://raw/taxi/2026-11",
    fingerprint: str = "sha256:1111",
    module_path: str = "taxi_utils@gs://bucket/_wheels/taxi-0.1-abc123.whl",
) -> dict[str, int]:
    """One run of the pipeline; returns the ids of its nodes by name
    ("examples", "model", "Trainer", "run", ...)."""
    types = _types(pb, client)
    ids: dict[str, int] = {}
    produced: dict[str, Any] = {}

    def context(type_name: str, name: str) -> Any:
        return pb.Context(type_id=types[type_name], name=name)

    def step(
        component: str, inputs: dict[str, str], outputs: dict[str, tuple[str, str, dict[str, Any]]], **exec_props: Any
    ) -> None:
        execution = pb.Execution(type_id=types[component], last_known_state=pb.Execution.COMPLETE)
        execution.name = f"{run}.{component}"
        for name, value in exec_props.items():
            target = execution.custom_properties[name]
            if isinstance(value, int):
                target.int_value = value
            else:
                target.string_value = str(value)
        pairs = []
        for role, key in inputs.items():
            pairs.append((produced[key], _event(pb, pb.Event.INPUT, role)))
        new: list[str] = []
        for role, (key, type_name, custom) in outputs.items():
            uri = f"gs://pipelines/{PIPELINE}/{run}/{component}/{role}"
            pairs.append((_artifact(pb, types[type_name], uri, **custom), _event(pb, pb.Event.OUTPUT, role)))
            new.append(key)
        contexts = [
            context("pipeline", PIPELINE),
            context("pipeline_run", run),
            context("node", f"{PIPELINE}.{component}"),
        ]
        execution_id, artifact_ids, context_ids = client.put_execution(
            execution, pairs, contexts, reuse_context_if_already_exist=True
        )
        ids[component] = execution_id
        ids["pipeline"], ids["run"] = context_ids[0], context_ids[1]
        for offset, key in enumerate(new):
            artifact_id = artifact_ids[len(inputs) + offset]
            ids[key] = artifact_id
            stored = pairs[len(inputs) + offset][0]
            stored.id = artifact_id
            produced[key] = stored

    step(
        "ExampleGen",
        {},
        {"examples": ("examples", "Examples", {"span": 0, "version": 1, "input_fingerprint": fingerprint})},
        input_base=data_uri,
    )
    step("StatisticsGen", {"examples": "examples"}, {"statistics": ("statistics", "ExampleStatistics", {})})
    step("SchemaGen", {"statistics": "statistics"}, {"schema": ("schema", "Schema", {})})
    step(
        "Transform",
        {"examples": "examples", "schema": "schema"},
        {
            "transform_graph": ("transform_graph", "TransformGraph", {}),
            "transformed_examples": ("transformed_examples", "Examples", {"span": 0, "version": 1}),
        },
        module_path=module_path,
    )
    step(
        "Trainer",
        {"examples": "transformed_examples", "transform_graph": "transform_graph", "schema": "schema"},
        {"model": ("model", "Model", {})},
        module_path=module_path,
        train_args=f'{{"num_steps": {num_steps}}}',
        tfx_version="1.16.0",
    )
    step(
        "Evaluator",
        {"examples": "examples", "model": "model"},
        {
            "evaluation": ("evaluation", "ModelEvaluation", {}),
            "blessing": ("blessing", "ModelBlessing", {"blessed": 1}),
        },
    )
    step(
        "Pusher",
        {"model": "model", "model_blessing": "blessing"},
        {"pushed_model": ("pushed_model", "PushedModel", {})},
    )
    return ids


def write_two_runs(pb: Any, client: Any) -> dict[str, dict[str, int]]:
    """Two runs that differ in one parameter (Trainer's num_steps) and one input (the raw
    data ExampleGen read, hence the Examples' fingerprint)."""
    return {
        "run-1": write_run(pb, client, "run-1"),
        "run-2": write_run(
            pb, client, "run-2", num_steps=200, data_uri="gs://raw/taxi/2026-12", fingerprint="sha256:2222"
        ),
    }
