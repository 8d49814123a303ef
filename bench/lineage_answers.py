"""Provenance and Impact of a 10,000-node closure in a 100,000-artifact store, against
collecting the same closure with MLMD's GetLineageSubgraph through the official client.

Per backend: a scratch database gets the MLMD schema (`lineagedb db upgrade`), then a
layered DAG is written straight into the tables with SQLAlchemy Core bulk inserts (one
gRPC call per node would take longer than the whole benchmark). One part of the store is
the closure: a root dataset read by the first layer of executions, layers of executions
each reading a few artifacts of the layer above and writing two, and a last execution
reading the whole bottom layer and writing the target model, so the target's upstream
closure and the root's downstream closure are the same ~10,000 nodes. The rest are
unrelated pipeline runs of the same shape, interleaved in id order with the closure's
layers, as runs recorded over time would be.

Then one `lineagedb serve` over the database, and in rounds:

* LineageDB: Provenance(target) and Impact(root) through gRPC (LineageDB's stubs), timed
  per call end to end (the client's parse included);
* the official client (`.venv-mlmd`, `bench/lineage_client.py`): the same closures
  collected frontier by frontier with get_lineage_subgraph (100 starting nodes a call,
  `id IN (...)`, a hop limit): hop by hop with the API's default field mask (node
  details with every call), hop by hop fetching edges only (node details once at the
  end), and edges only with the hop cap of 100 (one call for a closure under 100 levels).

Each method's node set must equal the one the generator built, and the events must
agree, before a ratio is reported. Finally the service is profiled in process with
cProfile (LineageAnswers(...).provenance / .impact over the same database): where the
time goes between walk statements, node hydration, edges, building the response and
serializing it.

    .venv/bin/python bench/lineage_answers.py [--quick] [--backends sqlite,postgresql] [--reps 20] [--rounds 5]

Writes bench/lineage_results.json and prints a table. Targets (issue 14): at most 200 ms
on SQLite and 400 ms on PostgreSQL; reported, not asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import math
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness

from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.lineagedb.v1 import lineage_pb2_grpc as pb_grpc
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.store.schema import ARTIFACT_KIND, CONTEXT_KIND, EXECUTION_KIND, Schema, schema_for

TARGETS_MS = {"sqlite": 200.0, "postgresql": 400.0, "mysql": 400.0}
MAX_NODES = 1_000_000  # never the reason a walk stops here: a cut-short answer is an error
MAX_MESSAGE = 512 * 1024 * 1024
CLIENT = Path(__file__).resolve().parent / "lineage_client.py"
CLIENT_TIMEOUT_S = 3600.0
# How the official client collects a closure (bench/lineage_client.py): field mask mode and
# max_num_hops per call. Hop by hop with the API's defaults, hop by hop fetching edges only,
# and edges only with the hop cap (100), which gets a closure under 100 levels in one call.
CLIENT_METHODS = {
    "default:1": "default mask, 1 hop a call",
    "lean:1": "edges only, 1 hop a call",
    "lean:100": "edges only, 100 hops a call",
}

PRESETS: dict[str, dict[str, int]] = {
    "quick": {"artifacts": 10_000, "closure": 1_000, "reps": 10, "rounds": 2},
    "full": {"artifacts": 100_000, "closure": 10_000, "reps": 20, "rounds": 5},
}

# Six steps of a TFX-like pipeline; a layer's nodes take the types of one step.
ARTIFACT_TYPES = ("Examples", "ExampleStatistics", "Schema", "TransformGraph", "Model", "ModelEvaluation")
EXECUTION_TYPES = ("ExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer", "Evaluator")
# Unrelated runs: layers x executions per layer, each execution writing two artifacts.
RUN_LAYERS, RUN_WIDTH = 5, 3
PIPELINES = 50
OUTPUTS = 2
T0_MS = 1_700_000_000_000


# ---------------------------------------------------------------- the graph, written in bulk


@dataclass
class Layout:
    """What the generator wrote: the two starting nodes and the closure they share."""

    target: int = 0  # the model at the bottom: Provenance starts here
    root: int = 0  # the dataset at the top: Impact starts here
    closure_artifacts: set[int] = field(default_factory=set)
    closure_executions: set[int] = field(default_factory=set)
    depth: int = 0
    width: int = 0
    totals: dict[str, int] = field(default_factory=dict)


class Writer:
    """Buffers rows per table and writes them with multi-row INSERTs; ids are assigned here
    (the database starts empty), so nothing is read back."""

    FLUSH_ROWS = 20_000

    def __init__(self, connection: sa.Connection, schema: Schema, types: dict[str, int], seed: int) -> None:
        self.connection = connection
        self.schema = schema
        self.types = types
        self.rng = random.Random(seed)
        self.next_id = {"artifact": 1, "execution": 1, "context": 1, "event": 1}
        self.buffers: dict[str, list[dict[str, Any]]] = {}
        self.counts: dict[str, int] = {}

    def _add(self, table: str, row: dict[str, Any]) -> None:
        rows = self.buffers.setdefault(table, [])
        rows.append(row)
        if len(rows) >= self.FLUSH_ROWS:
            self._flush(table)

    def _flush(self, table: str) -> None:
        rows = self.buffers.get(table)
        if rows:
            self.connection.execute(sa.insert(getattr(self.schema, table)), rows)
            self.counts[table] = self.counts.get(table, 0) + len(rows)
            rows.clear()

    def flush(self) -> None:
        for table in list(self.buffers):
            self._flush(table)

    def _id(self, kind: str) -> int:
        value = self.next_id[kind]
        self.next_id[kind] = value + 1
        return value

    def artifact(self, step: int, run: str) -> int:
        node_id = self._id("artifact")
        now = T0_MS + node_id
        self._add(
            "artifact",
            {
                "id": node_id,
                "type_id": self.types[ARTIFACT_TYPES[step % len(ARTIFACT_TYPES)]],
                "uri": f"s3://bench/{run}/{ARTIFACT_TYPES[step % len(ARTIFACT_TYPES)].lower()}/{node_id}",
                "state": mlmd.Artifact.LIVE,
                "name": f"{run}-a{node_id}",
                "create_time_since_epoch": now,
                "last_update_time_since_epoch": now,
            },
        )
        digest = hashlib.sha256(str(node_id).encode()).hexdigest()
        for name, custom, int_value, string_value in (
            ("span", False, node_id % 97, None),
            ("split", False, None, ("train", "eval")[node_id % 2]),
            ("digest", True, None, f"sha256:{digest}"),
        ):
            self._add(
                "artifact_property",
                {
                    "artifact_id": node_id,
                    "name": name,
                    "is_custom_property": custom,
                    "int_value": int_value,
                    "string_value": string_value,
                },
            )
        return node_id

    def execution(self, step: int, run: str) -> int:
        node_id = self._id("execution")
        now = T0_MS + node_id
        self._add(
            "execution",
            {
                "id": node_id,
                "type_id": self.types[EXECUTION_TYPES[step % len(EXECUTION_TYPES)]],
                "last_known_state": mlmd.Execution.COMPLETE,
                "name": f"{run}-e{node_id}",
                "create_time_since_epoch": now,
                "last_update_time_since_epoch": now,
            },
        )
        for name, custom, int_value, string_value in (
            ("step", False, step, None),
            ("code_version", False, None, f"git:{node_id % 13:040x}"),
            ("num_steps", True, 1000 + node_id % 7, None),
        ):
            self._add(
                "execution_property",
                {
                    "execution_id": node_id,
                    "name": name,
                    "is_custom_property": custom,
                    "int_value": int_value,
                    "string_value": string_value,
                },
            )
        return node_id

    def context(self, type_name: str, name: str) -> int:
        node_id = self._id("context")
        now = T0_MS + node_id
        self._add(
            "context",
            {
                "id": node_id,
                "type_id": self.types[type_name],
                "name": name,
                "create_time_since_epoch": now,
                "last_update_time_since_epoch": now,
            },
        )
        self._add(
            "context_property",
            {
                "context_id": node_id,
                "name": "pipeline_name",
                "is_custom_property": True,
                "int_value": None,
                "string_value": name.split("/")[0],
            },
        )
        return node_id

    def event(self, artifact_id: int, execution_id: int, kind: int, role: str, index: int) -> None:
        event_id = self._id("event")
        self._add(
            "event",
            {
                "id": event_id,
                "artifact_id": artifact_id,
                "execution_id": execution_id,
                "type": kind,
                "milliseconds_since_epoch": T0_MS + execution_id,
            },
        )
        # The path TFX records: the role (a key step) and the position (an index step).
        self._add("event_path", {"event_id": event_id, "is_index_step": False, "step_index": None, "step_key": role})
        self._add("event_path", {"event_id": event_id, "is_index_step": True, "step_index": index, "step_key": None})

    def attribute(self, contexts: tuple[int, ...], artifacts: list[int], executions: list[int]) -> None:
        for context_id in contexts:
            for artifact_id in artifacts:
                self._add("attribution", {"context_id": context_id, "artifact_id": artifact_id})
            for execution_id in executions:
                self._add("association", {"context_id": context_id, "execution_id": execution_id})

    def layer(
        self, step: int, run: str, above: list[int], width: int, contexts: tuple[int, ...]
    ) -> tuple[list[int], list[int]]:
        """`width` executions, each reading its own lane of `above` plus one other artifact of
        it (so every artifact above is read, and layers cross), each writing OUTPUTS artifacts.
        Returns (executions, artifacts written)."""
        executions, written = [], []
        lane = max(1, len(above) // width)
        for j in range(width):
            execution_id = self.execution(step, run)
            inputs = above[j * lane : (j + 1) * lane] if j < width - 1 else above[j * lane :]
            inputs = inputs or [above[j % len(above)]]
            extra = above[self.rng.randrange(len(above))]
            if extra not in inputs:
                inputs = [*inputs, extra]
            for index, artifact_id in enumerate(inputs):
                self.event(artifact_id, execution_id, mlmd.Event.INPUT, "input", index)
            for index in range(OUTPUTS):
                artifact_id = self.artifact(step, run)
                self.event(artifact_id, execution_id, mlmd.Event.OUTPUT, "output", index)
                written.append(artifact_id)
            executions.append(execution_id)
        self.attribute(contexts, written, executions)
        return executions, written


def closure_shape(closure: int) -> tuple[int, int]:
    """(depth, width) of a closure of about `closure` nodes: 3 x depth x width + 3 of them
    (per layer width executions writing 2 artifacts each; root, last execution, target)."""
    depth = max(2, round(math.sqrt(closure / 3) * 0.57))
    width = max(1, round((closure - 3) / (3 * depth)))
    return depth, width


def create_types(connection: sa.Connection, schema: Schema) -> dict[str, int]:
    first = int(connection.execute(sa.select(sa.func.coalesce(sa.func.max(schema.type.c.id), 0))).scalar_one()) + 1
    kinds = [(name, ARTIFACT_KIND) for name in ARTIFACT_TYPES] + [(name, EXECUTION_KIND) for name in EXECUTION_TYPES]
    kinds += [("Pipeline", CONTEXT_KIND), ("PipelineRun", CONTEXT_KIND)]
    types = {name: first + i for i, (name, _) in enumerate(kinds)}
    connection.execute(sa.insert(schema.type), [{"id": types[n], "name": n, "type_kind": k} for n, k in kinds])
    properties = []
    for name, kind in kinds:
        declared: tuple[tuple[str, int], ...]
        if kind == ARTIFACT_KIND:
            declared = (("span", mlmd.INT), ("split", mlmd.STRING))
        elif kind == EXECUTION_KIND:
            declared = (("step", mlmd.INT), ("code_version", mlmd.STRING))
        else:
            declared = ()
        properties += [{"type_id": types[name], "name": p, "data_type": t} for p, t in declared]
    connection.execute(sa.insert(schema.type_property), properties)
    return types


def build(url: str, artifacts: int, closure: int, seed: int = 14) -> Layout:
    """Write the store; returns where the closure is."""
    engine = sa.create_engine(url)
    schema = schema_for(engine.dialect.name)
    depth, width = closure_shape(closure)
    closure_artifact_count = OUTPUTS * depth * width + 2
    per_run = 1 + RUN_LAYERS * RUN_WIDTH * OUTPUTS
    runs, loose = divmod(max(0, artifacts - closure_artifact_count), per_run)
    layout = Layout(depth=depth, width=width)
    # The closure's layers go in among the unrelated runs, evenly, so its ids spread over
    # the whole id range as those of runs recorded over months would.
    slots = {round((i + 1) * runs / (depth + 1)) for i in range(depth)}
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA synchronous=OFF")
            types = create_types(connection, schema)
            w = Writer(connection, schema, types, seed)
            pipelines = [w.context("Pipeline", f"pipeline-{p}") for p in range(PIPELINES)]
            closure_pipeline = w.context("Pipeline", "closure-pipeline")
            first_run = w.context("PipelineRun", "closure-pipeline/run-0")
            root = w.artifact(0, "closure-run-0")
            w.attribute((closure_pipeline, first_run), [root], [])
            layout.root = root
            layout.closure_artifacts.add(root)
            above = [root]
            layer = 0

            def closure_layer() -> None:
                nonlocal above, layer
                layer += 1
                run_context = w.context("PipelineRun", f"closure-pipeline/run-{layer}")
                made, above = w.layer(layer, f"closure-run-{layer}", above, width, (closure_pipeline, run_context))
                layout.closure_executions.update(made)
                layout.closure_artifacts.update(above)

            for run in range(runs):
                if run in slots and layer < depth:
                    closure_layer()
                name = f"pipeline-{run % PIPELINES}/run-{run}"
                contexts = (pipelines[run % PIPELINES], w.context("PipelineRun", name))
                source = w.artifact(0, name)
                w.attribute(contexts, [source], [])
                top = [source]
                for step in range(1, RUN_LAYERS + 1):
                    _, top = w.layer(step, name, top, RUN_WIDTH, contexts)
            while layer < depth:
                closure_layer()
            # The last step reads the whole bottom layer and writes the target.
            last_run = w.context("PipelineRun", f"closure-pipeline/run-{depth + 1}")
            last = w.execution(depth + 1, f"closure-run-{depth + 1}")
            for index, artifact_id in enumerate(above):
                w.event(artifact_id, last, mlmd.Event.INPUT, "examples", index)
            target = w.artifact(4, f"closure-run-{depth + 1}")  # a Model
            w.event(target, last, mlmd.Event.OUTPUT, "model", 0)
            w.attribute((closure_pipeline, last_run), [target], [last])
            layout.target = target
            layout.closure_artifacts.add(target)
            layout.closure_executions.add(last)
            for index in range(loose):  # imported datasets nothing has read yet
                w.artifact(0, f"import-{index}")
            w.flush()
            layout.totals = dict(w.counts)
            if engine.dialect.name == "postgresql":
                # Ids were given explicitly: move the sequences past them, as the server
                # would have left them.
                for table in ("type", "artifact", "execution", "context", "event", "attribution", "association"):
                    connection.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
                    )
        if engine.dialect.name == "postgresql":
            # Statistics as autovacuum (or the server's own ANALYZE after bulk writes,
            # store/statistics.py) would leave them: a freshly loaded table has none.
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return layout


# ---------------------------------------------------------------- timing


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def event_digest(triples: list[tuple[int, int, int]]) -> str:
    """The same digest bench/lineage_client.py computes over (artifact, execution, type)."""
    text = "\n".join(f"{a},{e},{t}" for a, e, t in sorted(set(triples)))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Answer:
    artifacts: list[int]
    executions: list[int]
    events: str
    event_count: int
    truncated: int
    nodes: int
    response_bytes: int


def _answer(response: Any, start_excluded: tuple[str, int] | None = None) -> Answer:
    artifacts = sorted(a.id for a in response.artifacts)
    executions = sorted(e.id for e in response.executions)
    if start_excluded is not None:  # Impact leaves its starting node out of `artifacts`
        kind, node_id = start_excluded
        (artifacts if kind == "artifact" else executions).append(node_id)
        artifacts.sort()
        executions.sort()
    triples = [(e.artifact_id, e.execution_id, e.type) for e in response.events]
    return Answer(
        artifacts=artifacts,
        executions=executions,
        events=event_digest(triples),
        event_count=len(set(triples)),
        truncated=response.truncated,
        nodes=len(artifacts) + len(executions),
        response_bytes=response.ByteSize(),
    )


class Native:
    """Provenance and Impact through LineageDB's stubs."""

    def __init__(self, port: int, layout: Layout) -> None:
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)],
        )
        self.stub = pb_grpc.LineageServiceStub(self.channel)
        self.layout = layout

    def provenance(self) -> Any:
        request = pb.ClosureRequest(node=pb.NodeRef(artifact_id=self.layout.target), max_nodes=MAX_NODES)
        return self.stub.Provenance(request, timeout=600)

    def impact(self) -> Any:
        request = pb.ImpactRequest(node=pb.NodeRef(artifact_id=self.layout.root), max_nodes=MAX_NODES)
        return self.stub.Impact(request, timeout=600)

    def timed(self, op: str, reps: int) -> tuple[list[float], Answer]:
        call = self.provenance if op == "provenance" else self.impact
        samples = []
        response = None
        for _ in range(reps):
            start = time.perf_counter()
            response = call()
            samples.append((time.perf_counter() - start) * 1000)
        assert response is not None
        excluded = ("artifact", self.layout.root) if op == "impact" else None
        return samples, _answer(response, excluded)


def run_client(port: int, layout: Layout, methods: str) -> dict[str, Any]:
    """One collection per operation and method by the official client, in its interpreter."""
    command = [
        str(harness.MLMD_PYTHON),
        str(CLIENT),
        "--port",
        str(port),
        "--methods",
        methods,
        "--provenance-artifact",
        str(layout.target),
        "--impact-artifact",
        str(layout.root),
    ]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=harness.clean_env(),
        cwd=harness.ROOT,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"lineage_client.py failed ({completed.returncode}): {completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def check_same(what: str, expected: tuple[set[int], set[int]], artifacts: list[int], executions: list[int]) -> None:
    got_a, got_e = set(artifacts), set(executions)
    if (got_a, got_e) != expected:
        raise AssertionError(
            f"{what}: node set differs from the generated closure: artifacts {len(got_a)} vs {len(expected[0])} "
            f"(missing {sorted(expected[0] - got_a)[:5]}, extra {sorted(got_a - expected[0])[:5]}), executions "
            f"{len(got_e)} vs {len(expected[1])} (missing {sorted(expected[1] - got_e)[:5]}, "
            f"extra {sorted(got_e - expected[1])[:5]})"
        )


# ---------------------------------------------------------------- profile


# Where the time of one answer goes: (label, module path suffix, function name). cumtime of
# each; the walk includes its statements, node hydration is load_by_ids for every kind.
PHASES = (
    ("start node", "answers/graph.py", "start_nodes"),
    ("walk (events statements + Python)", "answers/closure.py", "walk"),
    ("  of which events statements", "repositories/lineage.py", "event_tuples_touching"),
    ("graph.load (everything below)", "answers/graph.py", "load"),
    ("  node hydration (load_by_ids)", "repositories/nodes.py", "load_by_ids"),
    ("  events with paths (to_events)", "repositories/lineage.py", "to_events"),
    ("  attributions", "repositories/lineage.py", "attribution_pairs"),
    ("  associations", "repositories/lineage.py", "association_pairs"),
    ("  contexts linked (Impact)", "repositories/lineage.py", "context_ids_of"),
)


def profile(url: str, layout: Layout, calls: int = 3) -> dict[str, Any]:
    """cProfile of the service called in process (no gRPC) over the same database: phases
    by cumulative time, the top functions by own time, and serialization timed apart."""
    from lineagedb.service.answers.service import LineageAnswers
    from lineagedb.store.engine import create_engine
    from lineagedb.store.unit_of_work import Database

    engine = create_engine(url)
    answers = LineageAnswers(Database(engine))
    requests: dict[str, tuple[Callable[[Any], Any], Any]] = {
        "provenance": (
            answers.provenance,
            pb.ClosureRequest(node=pb.NodeRef(artifact_id=layout.target), max_nodes=MAX_NODES),
        ),
        "impact": (answers.impact, pb.ImpactRequest(node=pb.NodeRef(artifact_id=layout.root), max_nodes=MAX_NODES)),
    }
    out: dict[str, Any] = {}
    try:
        for op, (method, request) in requests.items():
            response = method(request)  # warm: statement caches, type cache, page cache
            plain = []
            for _ in range(calls):
                start = time.perf_counter()
                response = method(request)
                plain.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            for _ in range(calls):
                data = response.SerializeToString()
            serialize_ms = (time.perf_counter() - start) * 1000 / calls
            start = time.perf_counter()
            for _ in range(calls):
                type(response).FromString(data)
            parse_ms = (time.perf_counter() - start) * 1000 / calls
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(calls):
                method(request)
            profiler.disable()
            stats = pstats.Stats(profiler)
            raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
            total = stats.total_tt * 1000 / calls  # type: ignore[attr-defined]
            phases = {}
            for label, suffix, name in PHASES:
                cum = sum(v[3] for k, v in raw.items() if k[0].endswith(suffix) and k[2] == name)
                phases[label] = cum * 1000 / calls
            accounted = phases["start node"] + phases["walk (events statements + Python)"]
            accounted += phases["graph.load (everything below)"]
            phases["building the response (rest of the call)"] = total - accounted
            # Across all phases: the time inside the database driver (the statements
            # themselves, their round trips and row fetching), the rest being Python.
            driver = sum(
                v[3]
                for k, v in raw.items()
                if k[0] == "~"
                and any(f"method '{m}' of" in k[2] for m in ("execute", "executemany", "fetchall"))
                and "ursor" in k[2]
            )
            phases["database driver, all phases (execute + fetch)"] = driver * 1000 / calls
            top = sorted(raw.items(), key=lambda item: -item[1][2])[:15]
            out[op] = {
                "in_process_ms": statistics.median(plain),
                "profiled_ms": total,
                "phases_ms": phases,
                "serialize_ms": serialize_ms,
                "parse_ms": parse_ms,
                "response_bytes": len(data),
                "top_own_time": [
                    {
                        "function": f"{Path(k[0]).name}:{k[1]}({k[2]})",
                        "calls": v[1] // calls,
                        "own_ms": v[2] * 1000 / calls,
                        "cum_ms": v[3] * 1000 / calls,
                    }
                    for k, v in top
                ],
            }
            buffer = io.StringIO()
            pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(25)
            out[op]["cumulative_text"] = buffer.getvalue()
    finally:
        engine.dispose()
    return out


# ---------------------------------------------------------------- one backend


@contextmanager
def loaded_store(backend: str, workdir: Path, artifacts: int, closure: int) -> Iterator[tuple[str, Layout, float]]:
    with harness.scratch_database(backend, workdir) as url:
        subprocess.run(
            [str(harness.LINEAGEDB), "db", "upgrade", "--database", url],
            check=True,
            capture_output=True,
            env=harness.clean_env(),
        )
        start = time.perf_counter()
        layout = build(url, artifacts, closure)
        yield url, layout, time.perf_counter() - start


def bench_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with ExitStack() as stack:
        url, layout, load_s = stack.enter_context(loaded_store(backend, workdir, args.artifacts, args.closure))
        expected = (layout.closure_artifacts, layout.closure_executions)
        harness.log(
            f"  {backend}: loaded {layout.totals.get('artifact', 0)} artifacts, {layout.totals.get('execution', 0)} "
            f"executions, {layout.totals.get('event', 0)} events in {load_s:.1f}s; closure "
            f"{len(expected[0]) + len(expected[1])} nodes ({layout.depth} layers x {layout.width} executions)"
        )
        result["store"] = {
            "rows": layout.totals,
            "load_s": load_s,
            "closure_nodes": len(expected[0]) + len(expected[1]),
            "closure_artifacts": len(expected[0]),
            "closure_executions": len(expected[1]),
            "layers": layout.depth,
            "executions_per_layer": layout.width,
            "target_artifact": layout.target,
            "root_artifact": layout.root,
        }
        # One worker: the native and the official client (another process) meet the same caches.
        command = [
            str(harness.LINEAGEDB),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--workers",
            "1",
            "--database",
            url,
        ]
        server = stack.enter_context(harness.running(command, workdir / f"{backend}-server.log"))
        native = Native(server.port, layout)
        # The first call of each: connections, compiled statements, and the server's kept
        # encodings of nodes and events (store.encoded_cache) all cold. Reported apart, not in
        # the samples: a client asking again finds them warm.
        first_ms = {op: native.timed(op, 1)[0][0] for op in ("provenance", "impact")}
        per_round = max(1, math.ceil(args.reps / args.rounds))
        samples: dict[str, list[float]] = {"provenance": [], "impact": []}
        client_ms: dict[str, dict[str, list[float]]] = {}
        ratios: dict[str, dict[str, list[float]]] = {}
        client_calls: dict[str, dict[str, Any]] = {}
        answers: dict[str, Answer] = {}
        for number in range(args.rounds):
            round_native: dict[str, list[float]] = {}
            for op in ("provenance", "impact"):
                times, answer = native.timed(op, per_round)
                samples[op] += times
                round_native[op] = times
                answers[op] = answer
            harness.log(
                f"  {backend} round {number + 1}/{args.rounds}: provenance "
                f"{statistics.median(round_native['provenance']):.0f} ms, impact "
                f"{statistics.median(round_native['impact']):.0f} ms; official client ..."
            )
            collected = run_client(server.port, layout, args.client_methods)
            for op, by_mode in collected.items():
                for mode, record in by_mode.items():
                    check_same(f"official client {op} ({mode})", expected, record["artifacts"], record["executions"])
                    if record["events"] != answers[op].events:
                        raise AssertionError(
                            f"official client {op} ({mode}): {record['event_count']} events differ from "
                            f"LineageDB's {answers[op].event_count}"
                        )
                    client_ms.setdefault(op, {}).setdefault(mode, []).append(record["ms"])
                    ratios.setdefault(op, {}).setdefault(mode, []).append(
                        record["ms"] / statistics.median(round_native[op])
                    )
                    client_calls.setdefault(op, {})[mode] = {
                        k: record[k] for k in ("subgraph_calls", "rounds", "follow_up_calls") if k in record
                    }
                    harness.log(f"    client {op} ({mode}): {record['ms']:.0f} ms, {record['subgraph_calls']} calls")
        for op, answer in answers.items():
            check_same(f"LineageDB {op}", expected, answer.artifacts, answer.executions)
            if answer.truncated:
                raise AssertionError(f"LineageDB {op} was cut short ({answer.truncated})")
        native.channel.close()
        result["ops"] = {
            op: {
                "median_ms": statistics.median(samples[op]),
                "p90_ms": percentile(samples[op], 0.9),
                "first_call_ms": first_ms[op],
                "min_ms": min(samples[op]),
                "max_ms": max(samples[op]),
                "n": len(samples[op]),
                "target_ms": TARGETS_MS[backend],
                "met": percentile(samples[op], 0.9) <= TARGETS_MS[backend],
                "nodes": answers[op].nodes,
                "events": answers[op].event_count,
                "response_bytes": answers[op].response_bytes,
                "samples_ms": samples[op],
                "official_client": {
                    mode: {
                        "median_ms": statistics.median(client_ms[op][mode]),
                        "ratio_median": statistics.median(ratios[op][mode]),
                        "ratio_min": min(ratios[op][mode]),
                        "ratio_max": max(ratios[op][mode]),
                        "samples_ms": client_ms[op][mode],
                        **client_calls[op][mode],
                    }
                    for mode in client_ms.get(op, {})
                },
            }
            for op in ("provenance", "impact")
        }
        if args.profile:
            harness.log(f"  {backend}: profiling the service in process")
            result["profile"] = profile(url, layout)
    return result


# ---------------------------------------------------------------- report


def report(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    methods = doc["config"]["client_methods"].split(",")
    out = [
        "",
        "## Lineage answers: Provenance and Impact of a whole closure",
        "",
        f"{m['date']} · {m['nproc']} CPU(s), {m['cpu']} · LineageDB {m['lineagedb_commit']} · "
        f"load average {m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end",
        "",
        "LineageDB: median and p90 ms, and the first call after the server started (cold: no kept",
        "encodings yet). Official client: median ms, and the median (min-max) of the per-round",
        "ratios client ÷ LineageDB (how many times longer collecting the same closure takes).",
        "",
        "| backend | answer | nodes | median ms | p90 ms | first call ms | target | "
        + " | ".join(f"client: {CLIENT_METHODS.get(k, k)}" for k in methods)
        + " |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in methods) + " |",
    ]
    for backend, result in doc["backends"].items():
        for op, row in result["ops"].items():
            cells = []
            for method in methods:
                client = row["official_client"].get(method)
                cells.append(
                    "—"
                    if client is None
                    else f"{client['median_ms']:.0f} ms, {client['ratio_median']:.1f}x "
                    f"({client['ratio_min']:.1f}-{client['ratio_max']:.1f}), {client['subgraph_calls']} calls"
                )
            verdict = "met" if row["met"] else "not met"
            out.append(
                f"| {backend} | {op} | {row['nodes']} | {row['median_ms']:.0f} | {row['p90_ms']:.0f} | "
                f"{row.get('first_call_ms', float('nan')):.0f} | ≤ {row['target_ms']:.0f} ({verdict}) | "
                + " | ".join(cells)
                + " |"
            )
    for backend, result in doc["backends"].items():
        for op, prof in result.get("profile", {}).items():
            out += [
                "",
                f"### {backend} {op}, in process: {prof['in_process_ms']:.0f} ms "
                f"(profiled {prof['profiled_ms']:.0f} ms), serialize {prof['serialize_ms']:.0f} ms, "
                f"parse {prof['parse_ms']:.0f} ms, {prof['response_bytes'] / 1e6:.1f} MB",
                "",
            ]
            out += [f"- {label}: {ms:.0f} ms" for label, ms in prof["phases_ms"].items()]
            out += ["", "Top own time:", ""]
            out += [
                f"- {row['function']}: {row['own_ms']:.1f} ms own, {row['cum_ms']:.1f} ms cum, {row['calls']} calls"
                for row in prof["top_own_time"][:10]
            ]
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 artifacts, a 1,000-node closure")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--artifacts", type=int, help="artifacts in the store (full: 100,000)")
    parser.add_argument("--closure", type=int, help="nodes in the closure, about (full: 10,000)")
    parser.add_argument("--reps", type=int, help="timed Provenance and Impact calls each, over all rounds")
    parser.add_argument("--rounds", type=int, help="rounds; the official client collects once per round")
    parser.add_argument(
        "--client-methods",
        default=",".join(CLIENT_METHODS),
        help="how the official client collects: MODE:HOPS,... (MODE default = no field mask, lean = edges only)",
    )
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="skip the in-process profile")
    parser.add_argument("--out", type=Path, default=harness.BENCH / "lineage_results.json")
    args = parser.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "full"]
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if not harness.MLMD_PYTHON.exists():
        harness.log(f"official client interpreter not found at {harness.MLMD_PYTHON}: run `make mlmd-venv`")
        return 2
    doc: dict[str, Any] = {
        "config": {k: getattr(args, k) for k in ("artifacts", "closure", "reps", "rounds", "client_methods")},
        "machine": harness.machine_info(),
        "backends": {},
    }
    for backend in args.backends.split(","):
        reason = harness.unreachable(backend)
        if reason is not None:
            harness.log(f"lineage answers: {backend} skipped ({reason})")
            continue
        harness.log(f"lineage answers on {backend}: {args.artifacts} artifacts, closure of about {args.closure}")
        with tempfile.TemporaryDirectory(prefix="lineagedb-bench-") as workdir:
            doc["backends"][backend] = bench_backend(backend, args, Path(workdir))
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(report(doc))
    harness.log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
