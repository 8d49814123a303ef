"""The store `bench/scale.py` grows: pipelines of runs of steps, defined by position.

Every row is a function of a sequence number, so the part loaded through the API and the part
written straight into the tables hold the same shapes, and any step can start where the last
one stopped. Artifact ``s`` (id ``s + 1``) is output ``s % 2`` of execution ``x = s // 2``
(id ``x + 1``); execution ``x`` is step ``j = x % 10`` of run ``r = x // 10``, run ``q = r % 100``
of pipeline ``p = r // 100``. So 10 steps a run, 2 outputs a step, 100 runs a pipeline:

* step ``j > 0`` reads both outputs of step ``j - 1`` (a chain of 10 steps);
* step 0 of runs ``q > 0`` reads the pipeline's dataset, the two outputs of step 0 of run 0
  (so Impact of a dataset is ~3,000 nodes, Provenance of a run's model ~30, whatever the size);
* every artifact and execution belongs to its run context (PipelineRun, ``pipeline-P/run-Q``)
  and its pipeline context (Pipeline, ``pipeline-P``), as PutLineageSubgraph records them;
* artifacts: typed ``span`` (INT, the run number) and ``split`` (STRING), custom ``batch``
  (STRING, ``b<s // 100>``: exactly 100 artifacts per value, the selective filter);
  executions: typed ``step`` (INT), custom ``attempt`` (INT); contexts: one custom property.

About 2 events per artifact (an OUTPUT each, two INPUTs per step), no event paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc

STEPS_PER_RUN = 10
OUTPUTS_PER_STEP = 2
RUNS_PER_PIPELINE = 100
ARTIFACTS_PER_RUN = STEPS_PER_RUN * OUTPUTS_PER_STEP
T0_MS = 1_700_000_000_000
ARTIFACT_TYPES = ("Examples", "Statistics", "Model")
EXECUTION_TYPES = ("Transform", "Trainer")
PIPELINE_TYPE, RUN_TYPE = "Pipeline", "PipelineRun"


def artifact_type(s: int) -> str:
    j = (s // OUTPUTS_PER_STEP) % STEPS_PER_RUN
    return "Model" if j == STEPS_PER_RUN - 1 else ARTIFACT_TYPES[j % 2]


def execution_type(x: int) -> str:
    return "Trainer" if x % STEPS_PER_RUN == STEPS_PER_RUN - 1 else "Transform"


def run_of(x: int) -> tuple[int, int]:
    """(pipeline, run number) of execution x."""
    r = x // STEPS_PER_RUN
    return r // RUNS_PER_PIPELINE, r % RUNS_PER_PIPELINE


def pipeline_name(p: int) -> str:
    return f"pipeline-{p}"


def run_name(p: int, q: int) -> str:
    return f"pipeline-{p}/run-{q}"


def uri(s: int) -> str:
    x = s // OUTPUTS_PER_STEP
    p, q = run_of(x)
    return f"s3://scale/{run_name(p, q)}/{x % STEPS_PER_RUN}/{s % OUTPUTS_PER_STEP}"


def execution_name(x: int) -> str:
    p, q = run_of(x)
    return f"{run_name(p, q)}/step-{x % STEPS_PER_RUN}"


def dataset(p: int) -> tuple[int, int]:
    """The artifact sequence numbers of pipeline p's dataset."""
    first = p * RUNS_PER_PIPELINE * ARTIFACTS_PER_RUN
    return first, first + 1


def inputs(x: int) -> tuple[int, ...]:
    """Artifact sequence numbers execution x reads."""
    j = x % STEPS_PER_RUN
    if j > 0:
        return (OUTPUTS_PER_STEP * (x - 1), OUTPUTS_PER_STEP * (x - 1) + 1)
    p, q = run_of(x)
    return dataset(p) if q > 0 else ()


# properties: (name, is_custom, int_value, string_value)
def artifact_properties(s: int) -> tuple[tuple[str, bool, int | None, str | None], ...]:
    _, q = run_of(s // OUTPUTS_PER_STEP)
    return (
        ("span", False, q, None),
        ("split", False, None, ("train", "eval")[s % 2]),
        ("batch", True, None, f"b{s // 100}"),
    )


def execution_properties(x: int) -> tuple[tuple[str, bool, int | None, str | None], ...]:
    return (("step", False, x % STEPS_PER_RUN, None), ("attempt", True, 1, None))


def pipeline_properties(p: int) -> tuple[tuple[str, bool, int | None, str | None], ...]:
    return (("owner", True, None, f"team-{p % 20}"),)


def run_properties(q: int) -> tuple[tuple[str, bool, int | None, str | None], ...]:
    return (("run_number", True, q, None),)


def type_request() -> svc.PutTypesRequest:
    request = svc.PutTypesRequest()
    for name in ARTIFACT_TYPES:
        t = request.artifact_types.add(name=name)
        t.properties["span"] = mlmd.INT
        t.properties["split"] = mlmd.STRING
    for name in EXECUTION_TYPES:
        request.execution_types.add(name=name).properties["step"] = mlmd.INT
    request.context_types.add(name=PIPELINE_TYPE)
    request.context_types.add(name=RUN_TYPE)
    return request


def _set(message: Any, props: tuple[tuple[str, bool, int | None, str | None], ...]) -> None:
    for name, custom, int_value, string_value in props:
        value = (message.custom_properties if custom else message.properties)[name]
        if int_value is not None:
            value.int_value = int_value
        else:
            value.string_value = string_value or ""


def run_request(r: int, types: dict[str, int]) -> svc.PutLineageSubgraphRequest:
    """Run r through the API: its steps, outputs, in-run events and contexts (the dataset reads
    of step 0 are PutEvents, `dataset_events`: an artifact of another run is not re-put)."""
    p, q = divmod(r, RUNS_PER_PIPELINE)
    request = svc.PutLineageSubgraphRequest()
    request.options.reuse_context_if_already_exist = True
    pipeline = request.contexts.add(type_id=types[PIPELINE_TYPE], name=pipeline_name(p))
    _set(pipeline, pipeline_properties(p))
    run = request.contexts.add(type_id=types[RUN_TYPE], name=run_name(p, q))
    _set(run, run_properties(q))
    x0 = r * STEPS_PER_RUN
    for x in range(x0, x0 + STEPS_PER_RUN):
        execution = request.executions.add(
            type_id=types[execution_type(x)],
            name=execution_name(x),
            last_known_state=mlmd.Execution.COMPLETE,
            create_time_since_epoch=T0_MS + 10 * x,
        )
        _set(execution, execution_properties(x))
    s0 = x0 * OUTPUTS_PER_STEP
    for s in range(s0, s0 + ARTIFACTS_PER_RUN):
        artifact = request.artifacts.add(
            type_id=types[artifact_type(s)], uri=uri(s), state=mlmd.Artifact.LIVE, create_time_since_epoch=T0_MS + 5 * s
        )
        _set(artifact, artifact_properties(s))
        x = s // OUTPUTS_PER_STEP
        edge = request.event_edges.add(execution_index=x - x0, artifact_index=s - s0)
        edge.event.type = mlmd.Event.OUTPUT
        edge.event.milliseconds_since_epoch = T0_MS + 10 * x
    for x in range(x0 + 1, x0 + STEPS_PER_RUN):
        for s in inputs(x):
            edge = request.event_edges.add(execution_index=x - x0, artifact_index=s - s0)
            edge.event.type = mlmd.Event.INPUT
            edge.event.milliseconds_since_epoch = T0_MS + 10 * x
    return request


def dataset_events(r: int) -> list[mlmd.Event]:
    x = r * STEPS_PER_RUN
    return [
        mlmd.Event(
            artifact_id=s + 1, execution_id=x + 1, type=mlmd.Event.INPUT, milliseconds_since_epoch=T0_MS + 10 * x
        )
        for s in inputs(x)
    ]


# ---------------------------------------------------------------- rows, for the set-based part


@dataclass
class Rows:
    """Rows of artifacts [s0, s1) (whole runs) for the tables, as tuples in `COLUMNS` order.
    Context ids are given by the caller (contexts are written first and read back)."""

    types: dict[str, int]
    s0: int
    s1: int
    context_ids: dict[str, int]

    def runs(self) -> range:
        return range(self.s0 // ARTIFACTS_PER_RUN, self.s1 // ARTIFACTS_PER_RUN)

    def artifact(self) -> Iterator[tuple[Any, ...]]:
        live = mlmd.Artifact.LIVE
        for s in range(self.s0, self.s1):
            t = T0_MS + 5 * s
            yield (s + 1, self.types[artifact_type(s)], uri(s), live, None, None, t, t)

    def artifactproperty(self) -> Iterator[tuple[Any, ...]]:
        for s in range(self.s0, self.s1):
            for name, custom, int_value, string_value in artifact_properties(s):
                yield (s + 1, name, custom, int_value, string_value)

    def execution(self) -> Iterator[tuple[Any, ...]]:
        complete = mlmd.Execution.COMPLETE
        for x in range(self.s0 // OUTPUTS_PER_STEP, self.s1 // OUTPUTS_PER_STEP):
            t = T0_MS + 10 * x
            yield (x + 1, self.types[execution_type(x)], complete, execution_name(x), None, t, t)

    def executionproperty(self) -> Iterator[tuple[Any, ...]]:
        for x in range(self.s0 // OUTPUTS_PER_STEP, self.s1 // OUTPUTS_PER_STEP):
            for name, custom, int_value, string_value in execution_properties(x):
                yield (x + 1, name, custom, int_value, string_value)

    def event(self) -> Iterator[tuple[Any, ...]]:
        output, input_ = mlmd.Event.OUTPUT, mlmd.Event.INPUT
        for x in range(self.s0 // OUTPUTS_PER_STEP, self.s1 // OUTPUTS_PER_STEP):
            t = T0_MS + 10 * x
            for s in inputs(x):
                yield (s + 1, x + 1, input_, t)
            for k in range(OUTPUTS_PER_STEP):
                yield (OUTPUTS_PER_STEP * x + k + 1, x + 1, output, t)

    def _contexts(self, r: int) -> tuple[int, int]:
        p, q = divmod(r, RUNS_PER_PIPELINE)
        return self.context_ids[pipeline_name(p)], self.context_ids[run_name(p, q)]

    def _links(self, per_run: int) -> Iterator[tuple[Any, ...]]:
        """(context id, node id) of every node of the runs, `per_run` nodes a run, in both
        its contexts."""
        for r in self.runs():
            contexts = self._contexts(r)
            for n in range(r * per_run, (r + 1) * per_run):
                for c in contexts:
                    yield (c, n + 1)

    def attribution(self) -> Iterator[tuple[Any, ...]]:
        return self._links(ARTIFACTS_PER_RUN)

    def association(self) -> Iterator[tuple[Any, ...]]:
        return self._links(STEPS_PER_RUN)


COLUMNS = {
    "artifact": (
        "id", "type_id", "uri", "state", "name", "external_id",
        "create_time_since_epoch", "last_update_time_since_epoch",
    ),
    "artifactproperty": ("artifact_id", "name", "is_custom_property", "int_value", "string_value"),
    "execution": (
        "id", "type_id", "last_known_state", "name", "external_id", "create_time_since_epoch",
        "last_update_time_since_epoch",
    ),
    "executionproperty": ("execution_id", "name", "is_custom_property", "int_value", "string_value"),
    "event": ("artifact_id", "execution_id", "type", "milliseconds_since_epoch"),
    "attribution": ("context_id", "artifact_id"),
    "association": ("context_id", "execution_id"),
}  # fmt: skip


def new_contexts(
    s0: int, s1: int, existing: set[str]
) -> list[tuple[str, str, tuple[tuple[str, bool, int | None, str | None], ...]]]:
    """(type name, name, properties) of the contexts runs of [s0, s1) need and `existing` lacks."""
    out: list[tuple[str, str, tuple[tuple[str, bool, int | None, str | None], ...]]] = []
    for r in range(s0 // ARTIFACTS_PER_RUN, s1 // ARTIFACTS_PER_RUN):
        p, q = divmod(r, RUNS_PER_PIPELINE)
        if pipeline_name(p) not in existing:
            existing.add(pipeline_name(p))
            out.append((PIPELINE_TYPE, pipeline_name(p), pipeline_properties(p)))
        out.append((RUN_TYPE, run_name(p, q), run_properties(q)))
    return out
