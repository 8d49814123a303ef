"""Benchmark driver: one fixed MLMD workload through the official ``ml-metadata`` client.

Runs under the official client's interpreter (``.venv-mlmd``: ml-metadata 1.17.1 pins
protobuf < 5, so it cannot share an interpreter with LineageDB). It drives one target and
prints one JSON document of timings on stdout:

* ``--target inprocess --sqlite-path FILE``: MLMD's own C++ store inside this process;
* ``--target grpc --host H --port P``: any MLMD gRPC server (LineageDB, the pass-through
  server, the empty server).

``--workload trivial`` only times the trivial call (used for the empty-server floor).

An operation that raises (e.g. UNIMPLEMENTED while a feature is unfinished) is recorded
as ``"error: CODE"`` and the run goes on; the operations that depend on it are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

ARTIFACT_TYPE = "BenchDataset"
EXECUTION_TYPE = "BenchTrainer"
CONTEXT_TYPE = "BenchRun"
BASE_CONTEXT = "ctx-base"
SHARDS = 20  # artifacts carry properties.shard = index % SHARDS
FILTER_SHARD = 7
BASE_ATTRIBUTED = 250  # base artifacts attributed to ctx-base before the reads
HOPS = (2, 10, 20)
PAGE = 100  # the client pages by 100 (metadata_store.MAX_NUM_RESULT)

_CODE_NAMES = {
    value: name
    for name, value in vars(errors).items()
    if name.isupper() and isinstance(value, int) and not name.startswith("_")
}


class OpFailed(Exception):
    """An operation failed; its record already says why."""


@dataclass
class Recorder:
    """Collects per-operation samples (seconds) and errors."""

    warmup: int
    ops: dict[str, dict[str, Any]] = field(default_factory=dict)

    def time(self, name: str, fn: Callable[[int], int], reps: int, *, warm: bool = False) -> None:
        """Time ``fn(i)`` for i in range(reps); ``fn`` returns how many items it read or wrote.

        With ``warm`` the first ``warmup`` calls are made untimed (reads only: writes are
        all distinct and all count).
        """
        samples: list[float] = []
        items = 0
        try:
            if warm:
                for i in range(self.warmup):
                    fn(-1 - i)
            for i in range(reps):
                start = time.perf_counter()
                items = fn(i)
                samples.append(time.perf_counter() - start)
        except errors.StatusError as error:
            code = _CODE_NAMES.get(error.error_code, str(error.error_code))
            self.ops[name] = {"error": f"error: {code}", "message": str(error.message)[:300]}
            raise OpFailed(name) from error
        self.ops[name] = summarize(samples, items)

    def skip(self, name: str, reason: str) -> None:
        self.ops[name] = {"error": f"skipped: {reason}"}


def summarize(samples: Sequence[float], items: int) -> dict[str, Any]:
    ms = [s * 1000.0 for s in samples]
    return {
        "ms": statistics.median(ms),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "n": len(ms),
        "items": items,
    }


# ----------------------------------------------------------------------------- setup


def connect(args: argparse.Namespace) -> metadata_store.MetadataStore:
    if args.target == "inprocess":
        config = mlmd.ConnectionConfig()
        config.sqlite.filename_uri = args.sqlite_path
        config.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return metadata_store.MetadataStore(config)
    client = mlmd.MetadataStoreClientConfig(host=args.host, port=args.port)
    client.client_timeout_sec = args.timeout
    return metadata_store.MetadataStore(client)


def artifact_type(name: str = ARTIFACT_TYPE) -> mlmd.ArtifactType:
    t = mlmd.ArtifactType(name=name)
    t.properties["split"] = mlmd.STRING
    t.properties["shard"] = mlmd.INT
    t.properties["bytes"] = mlmd.INT
    return t


def execution_type(name: str = EXECUTION_TYPE) -> mlmd.ExecutionType:
    t = mlmd.ExecutionType(name=name)
    t.properties["step"] = mlmd.INT
    return t


def context_type(name: str = CONTEXT_TYPE) -> mlmd.ContextType:
    t = mlmd.ContextType(name=name)
    t.properties["pipeline"] = mlmd.STRING
    return t


@dataclass
class Workload:
    store: metadata_store.MetadataStore
    rec: Recorder
    rng: random.Random
    artifact_type_id: int = 0
    execution_type_id: int = 0
    context_type_id: int = 0
    base_context: mlmd.Context | None = None
    artifact_ids: list[int] = field(default_factory=list)
    artifact_count: int = 0  # artifacts made by this workload (drives properties.shard)
    chain_head: int = 0
    fanout_root: int = 0

    def new_artifact(self, kind: str = "data") -> mlmd.Artifact:
        index = self.artifact_count
        self.artifact_count += 1
        a = mlmd.Artifact(type_id=self.artifact_type_id, uri=f"/bench/{kind}/{index}")
        a.properties["split"].string_value = ("train", "eval", "test")[index % 3]
        a.properties["shard"].int_value = index % SHARDS
        a.properties["bytes"].int_value = 1000 + index
        a.custom_properties["producer"].string_value = kind
        a.state = mlmd.Artifact.LIVE
        return a

    def new_execution(self, step: int) -> mlmd.Execution:
        e = mlmd.Execution(type_id=self.execution_type_id, last_known_state=mlmd.Execution.COMPLETE)
        e.properties["step"].int_value = step
        return e

    # ------------------------------------------------------------------ base stage

    def trivial(self, prefix: str, reps: int) -> None:
        # get_artifacts_by_id([]): an empty request and an empty answer; warmed well, since the
        # first calls on a new channel also pay connection and thread-pool start-up.
        warm = Recorder(warmup=max(self.rec.warmup, 10), ops=self.rec.ops)
        warm.time(f"{prefix}trivial_call", lambda _i: len(self.store.get_artifacts_by_id([])), reps, warm=True)

    def register_types(self, reps: int) -> None:
        def fresh(i: int) -> int:
            self.store.put_artifact_type(artifact_type(f"{ARTIFACT_TYPE}_{i}"))
            self.store.put_execution_type(execution_type(f"{EXECUTION_TYPE}_{i}"))
            self.store.put_context_type(context_type(f"{CONTEXT_TYPE}_{i}"))
            return 3

        self.rec.time("put_types_new (3 calls)", fresh, reps)
        self.artifact_type_id = self.store.put_artifact_type(artifact_type())
        self.execution_type_id = self.store.put_execution_type(execution_type())
        self.context_type_id = self.store.put_context_type(context_type())

        def existing(_i: int) -> int:
            self.store.put_artifact_type(artifact_type())
            self.store.put_execution_type(execution_type())
            self.store.put_context_type(context_type())
            return 3

        self.rec.time("put_types_existing (3 calls)", existing, reps)
        ctx = mlmd.Context(type_id=self.context_type_id, name=BASE_CONTEXT)
        ctx.properties["pipeline"].string_value = "bench"
        [ctx.id] = self.store.put_contexts([ctx])
        self.base_context = ctx

        def one_context(i: int) -> int:
            run = mlmd.Context(type_id=self.context_type_id, name=f"ctx-run-{i}")
            run.properties["pipeline"].string_value = "bench"
            return len(self.store.put_contexts([run]))

        self.rec.time("put_contexts (1 new)", one_context, reps)

    def put_artifacts(self, batches: int) -> None:
        def batch(_i: int) -> int:
            ids = self.store.put_artifacts([self.new_artifact() for _ in range(100)])
            self.artifact_ids.extend(ids)
            return len(ids)

        self.rec.time("put_artifacts (100)", batch, batches)
        attributed = self.artifact_ids[:BASE_ATTRIBUTED]
        assert self.base_context is not None
        self.store.put_attributions_and_associations(
            [mlmd.Attribution(context_id=self.base_context.id, artifact_id=a) for a in attributed], []
        )

    def put_executions(self, count: int) -> None:
        assert self.base_context is not None
        # Inputs are stored artifacts as a client read them back (with ids), the output is new,
        # the context is the stored run context: the shape TFX's publisher sends.
        inputs = self.store.get_artifacts_by_id(self.artifact_ids[: 2 * count])
        inputs.sort(key=lambda a: a.id)
        context = self.store.get_contexts_by_id([self.base_context.id])[0]

        def one(i: int) -> int:
            pairs = [
                (inputs[2 * i], mlmd.Event(type=mlmd.Event.INPUT)),
                (inputs[2 * i + 1], mlmd.Event(type=mlmd.Event.INPUT)),
                (self.new_artifact("model"), mlmd.Event(type=mlmd.Event.OUTPUT)),
            ]
            _, artifact_ids, _ = self.store.put_execution(self.new_execution(i), pairs, [context])
            self.artifact_ids.append(artifact_ids[-1])
            return 1

        self.rec.time("put_execution (2 in, 1 out, 1 ctx)", one, min(count, len(inputs) // 2))

    def build_lineage(self, chain_executions: int, fanout: int) -> None:
        """A chain a0 -> e1 -> a1 -> ... and a broom: one root read by ``fanout`` chains."""
        [head] = self.store.put_artifacts([self.new_artifact("chain")])
        self.chain_head = head
        self._chain(head, chain_executions)
        [root] = self.store.put_artifacts([self.new_artifact("fanout")])
        self.fanout_root = root
        for _ in range(fanout):
            self._chain(root, chain_executions)

    def _chain(self, start: int, length: int) -> None:
        previous = self.store.get_artifacts_by_id([start])[0]
        for step in range(length):
            pairs = [
                (previous, mlmd.Event(type=mlmd.Event.INPUT)),
                (self.new_artifact("chain"), mlmd.Event(type=mlmd.Event.OUTPUT)),
            ]
            _, artifact_ids, _ = self.store.put_execution(self.new_execution(step), pairs, [])
            previous = self.store.get_artifacts_by_id([artifact_ids[-1]])[0]

    # ------------------------------------------------------------------ reads

    def reads(self, prefix: str, reps: int) -> None:
        store = self.store
        ids = self.artifact_ids

        def by_id(_i: int) -> int:
            return len(store.get_artifacts_by_id(self.rng.sample(ids, min(100, len(ids)))))

        prop = metadata_store.ListOptions(filter_query=f"properties.shard.int_value = {FILTER_SHARD}")
        ctx = metadata_store.ListOptions(filter_query=f"contexts_a.name = '{BASE_CONTEXT}'")
        assert self.base_context is not None
        context_id = self.base_context.id

        def by_new_uri(_i: int) -> int:
            # A text never sent before on every call (as a client searching for one URI after
            # another sends them): what a server spends on a filter it has not seen.
            index = self.rng.randrange(self.artifact_count)
            options = metadata_store.ListOptions(filter_query=f"uri = '/bench/data/{index}' OR uri = '/x/{index}'")
            return len(store.get_artifacts(list_options=options))

        self.trivial(prefix, reps)
        self.rec.time(f"{prefix}get_artifacts_by_id (100)", by_id, reps, warm=True)
        with contextlib.suppress(OpFailed):
            self.rec.time(f"{prefix}get_artifacts filter uri, a new text per call", by_new_uri, reps, warm=True)
        for name, fn in (
            ("get_artifacts filter property (all pages)", lambda _i: len(store.get_artifacts(list_options=prop))),
            ("get_artifacts filter context (all pages)", lambda _i: len(store.get_artifacts(list_options=ctx))),
            ("get_artifacts_by_context", lambda _i: len(store.get_artifacts_by_context(context_id))),
        ):
            with contextlib.suppress(OpFailed):  # recorded; the other reads still run
                self.rec.time(prefix + name, fn, reps, warm=True)
        for shape, start in (("chain", self.chain_head), ("fanout", self.fanout_root)):
            for hops in HOPS:
                name = f"{prefix}get_lineage_subgraph {shape} {hops} hops"
                with contextlib.suppress(OpFailed):
                    self.rec.time(name, self._lineage(start, hops), reps, warm=True)

    def _lineage(self, start: int, hops: int) -> Callable[[int], int]:
        options = mlmd.LineageSubgraphQueryOptions(
            starting_artifacts=mlmd.LineageSubgraphQueryOptions.StartingNodes(filter_query=f"id = {start}"),
            max_num_hops=hops,
        )

        def query(_i: int) -> int:
            graph = self.store.get_lineage_subgraph(options)
            return len(graph.artifacts) + len(graph.executions)

        return query

    # ------------------------------------------------------------------ scale stage

    def load(self, n: int, per_call: int) -> dict[str, Any]:
        """N artifacts, N/2 executions, 2N events, one context per call, via put_lineage_subgraph.

        Execution j of a call reads two artifacts already stored (random, seeded) and writes
        two new ones: 2 inputs + 2 outputs = 4 events per execution.
        """
        executions_total = n // 2
        calls: list[float] = []
        made_artifacts = made_executions = 0
        batch_no = 0
        start_all = time.perf_counter()
        while made_executions < executions_total:
            count = min(per_call, executions_total - made_executions)
            executions = [self.new_execution(made_executions + j) for j in range(count)]
            artifacts = [self.new_artifact("scale") for _ in range(2 * count)]
            context = mlmd.Context(type_id=self.context_type_id, name=f"scale-run-{batch_no}")
            edges: list[tuple[int | None, int | None, mlmd.Event]] = []
            for j in range(count):
                for artifact_id in self.rng.sample(self.artifact_ids, 2):
                    edges.append((j, None, mlmd.Event(type=mlmd.Event.INPUT, artifact_id=artifact_id)))
                edges.append((j, 2 * j, mlmd.Event(type=mlmd.Event.OUTPUT)))
                edges.append((j, 2 * j + 1, mlmd.Event(type=mlmd.Event.OUTPUT)))
            t0 = time.perf_counter()
            _, artifact_ids, _ = self.store.put_lineage_subgraph(executions, artifacts, [context], edges)
            calls.append(time.perf_counter() - t0)
            self.artifact_ids.extend(artifact_ids)
            made_artifacts += len(artifact_ids)
            made_executions += count
            batch_no += 1
        total = time.perf_counter() - start_all
        out = summarize(calls, 2 * per_call)
        out.update(
            total_s=total,
            artifacts=made_artifacts,
            executions=made_executions,
            events=4 * made_executions,
            artifacts_per_s=made_artifacts / total if total else 0.0,
        )
        return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    store = connect(args)
    rec = Recorder(warmup=args.warmup)
    w = Workload(store, rec, random.Random(args.seed))
    result: dict[str, Any] = {"target": args.target, "ops": rec.ops}
    if args.workload == "trivial":
        w.trivial("", args.reps)
        return result
    started = time.perf_counter()
    w.register_types(args.type_reps)
    w.put_artifacts(args.batches)
    w.put_executions(args.executions)
    if args.workload == "writes":
        result["stored_artifacts"] = len(w.artifact_ids)
        result["wall_s"] = time.perf_counter() - started
        return result
    w.build_lineage(args.chain, args.fanout)
    w.reads("", args.reps)
    if args.scale_n > 0:
        try:
            result["load"] = w.load(args.scale_n, args.scale_batch)
            rec.ops["scale: load put_lineage_subgraph"] = dict(result["load"])
            w.reads("scale: ", args.reps)
        except errors.StatusError as error:
            code = _CODE_NAMES.get(error.error_code, str(error.error_code))
            rec.ops["scale: load put_lineage_subgraph"] = {"error": f"error: {code}", "message": str(error)[:300]}
    result["stored_artifacts"] = len(w.artifact_ids)
    result["wall_s"] = time.perf_counter() - started
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=("inprocess", "grpc"), required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--sqlite-path", help="database file for --target inprocess")
    p.add_argument("--timeout", type=float, default=600.0, help="client deadline per call (s)")
    p.add_argument(
        "--workload",
        choices=("full", "writes", "trivial"),
        default="full",
        help="writes: the write stage only (types, put_artifacts, put_execution)",
    )
    p.add_argument("--reps", type=int, default=10, help="timed repetitions of each read")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls before each read")
    p.add_argument("--type-reps", type=int, default=5, help="type-registration samples")
    p.add_argument("--batches", type=int, default=20, help="put_artifacts batches of 100")
    p.add_argument("--executions", type=int, default=50, help="put_execution calls")
    p.add_argument("--chain", type=int, default=12, help="executions per lineage chain (2 hops each)")
    p.add_argument("--fanout", type=int, default=10, help="chains hanging off the fan-out root")
    p.add_argument("--scale-n", type=int, default=0, help="artifacts loaded in the scale stage (0: none)")
    p.add_argument("--scale-batch", type=int, default=50, help="executions per put_lineage_subgraph call")
    p.add_argument("--seed", type=int, default=20240601)
    args = p.parse_args(argv)
    if args.target == "inprocess" and not args.sqlite_path:
        p.error("--target inprocess needs --sqlite-path")
    if args.target == "grpc" and not args.port:
        p.error("--target grpc needs --port")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    json.dump(run(args), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
