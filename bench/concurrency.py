"""Throughput, latency and server CPU per call under concurrent clients (issue 20).

Three servers on each backend, each on a fresh database holding the same seed data: MLMD's
own C++ store behind the same Python grpcio front (passthrough_server.py, under the
official client's interpreter), LineageDB with `--workers 1`, and LineageDB as users get it:
`lineagedb serve` without --workers (nor LINEAGEDB_WORKERS), which starts one worker per usable
CPU ("default" in the table and the JSON, with the number of workers it started). Against
each, C client processes (1, 4, 8, 16: processes, not threads, so the clients' own GIL does
not cap the server) run one mix for a fixed time:

* read:  GetArtifactsByID of 100 ids, GetArtifactsByContext (a 100-artifact run),
  a 20-row page of GetArtifacts with a property filter, and GetLineageSubgraph from an
  artifact (2 hops);
* write: PutExecution (an input, an output and a run context reused ten calls in a row)
  and PutArtifacts of 10 artifacts.

Each cell reports calls/s, p50 and p99 per operation and server CPU seconds per call (the
server's process tree in /proc, children included: every LineageDB worker). A second stage
runs every operation alone at 4 clients, which gives CPU per call per operation. Ratios are
LineageDB over MLMD's store, taken in the same run.

    .venv/bin/python bench/concurrency.py [--quick] [--seconds 4] [--clients 1,4,8,16]
        [--backends sqlite,postgresql]

Writes bench/concurrency_results.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import LINEAGEDB, MLMD_PYTHON, log, running, scratch_database, unreachable
from workers import cpu_snapshot

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc

BENCH = Path(__file__).resolve().parent
RUNS = 20  # seed: runs (contexts) of ARTIFACTS_PER_RUN artifacts each
ARTIFACTS_PER_RUN = 100
READS = ("by_id", "by_context", "filtered_page", "lineage")
WRITES = ("put_execution", "put_artifacts")
MIXES = {"read": READS, "write": WRITES}
TARGETS = ("mlmd", "lineagedb-w1", "lineagedb-default")
DEFAULT = "lineagedb-default"
Seed = dict[str, Any]


# ---------------------------------------------------------------- the calls


def seed(address: str) -> Seed:
    """Types and RUNS runs of ARTIFACTS_PER_RUN artifacts, each run one execution reading the
    previous run's first artifact (so lineage has somewhere to go)."""
    with grpc.insecure_channel(address) as channel:
        stub = svc_grpc.MetadataStoreServiceStub(channel)
        data = mlmd.ArtifactType(name="Data")
        data.properties["shard"] = mlmd.INT
        types = stub.PutTypes(
            svc.PutTypesRequest(
                artifact_types=[data],
                execution_types=[mlmd.ExecutionType(name="Step")],
                context_types=[mlmd.ContextType(name="Run")],
            )
        )
        artifact_type = types.artifact_type_ids[0]
        execution_type = types.execution_type_ids[0]
        context_type = types.context_type_ids[0]
        pair = svc.PutExecutionRequest.ArtifactAndEvent
        artifact_ids: list[int] = []
        context_ids: list[int] = []
        previous: int | None = None
        for run in range(RUNS):
            request = svc.PutExecutionRequest(
                execution=mlmd.Execution(type_id=execution_type, last_known_state=mlmd.Execution.COMPLETE),
                contexts=[mlmd.Context(type_id=context_type, name=f"seed-{run}")],
            )
            if previous is not None:
                request.artifact_event_pairs.append(
                    pair(artifact=mlmd.Artifact(id=previous), event=mlmd.Event(type=mlmd.Event.INPUT))
                )
            for index in range(ARTIFACTS_PER_RUN):
                artifact = mlmd.Artifact(type_id=artifact_type, uri=f"s3://seed/{run}/{index}")
                artifact.properties["shard"].int_value = index % 10
                request.artifact_event_pairs.append(pair(artifact=artifact, event=mlmd.Event(type=mlmd.Event.OUTPUT)))
            response = stub.PutExecution(request)
            outputs = list(response.artifact_ids[1:] if previous is not None else response.artifact_ids)
            artifact_ids += outputs
            context_ids += list(response.context_ids)
            previous = outputs[0]
    return {
        "artifact_type": artifact_type,
        "execution_type": execution_type,
        "context_type": context_type,
        "artifact_ids": artifact_ids,
        "context_ids": context_ids,
    }


def operations(stub: svc_grpc.MetadataStoreServiceStub, data: Seed, tag: str) -> dict[str, Callable[[int], Any]]:
    """name -> call(n): one call of each operation (n varies the arguments)."""
    ids, contexts = data["artifact_ids"], data["context_ids"]
    rng = random.Random(tag)
    pair = svc.PutExecutionRequest.ArtifactAndEvent

    def by_id(_n: int) -> Any:
        return stub.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=rng.sample(ids, 100)))

    def by_context(n: int) -> Any:
        request = svc.GetArtifactsByContextRequest(
            context_id=contexts[n % len(contexts)], options=mlmd.ListOperationOptions(max_result_size=100)
        )
        return stub.GetArtifactsByContext(request)

    def filtered_page(n: int) -> Any:
        options = mlmd.ListOperationOptions(max_result_size=20, filter_query=f"properties.shard.int_value = {n % 10}")
        return stub.GetArtifacts(svc.GetArtifactsRequest(options=options))

    def lineage(n: int) -> Any:
        starting = mlmd.LineageSubgraphQueryOptions.StartingNodes(filter_query=f"id = {ids[(n * 37) % len(ids)]}")
        options = mlmd.LineageSubgraphQueryOptions(starting_artifacts=starting, max_num_hops=2)
        return stub.GetLineageSubgraph(svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=options))

    def put_execution(n: int) -> Any:
        source = mlmd.Artifact(type_id=data["artifact_type"], uri=f"s3://{tag}/{n}/in")
        output = mlmd.Artifact(type_id=data["artifact_type"], uri=f"s3://{tag}/{n}/out")
        request = svc.PutExecutionRequest(
            execution=mlmd.Execution(type_id=data["execution_type"]),
            artifact_event_pairs=[
                pair(artifact=source, event=mlmd.Event(type=mlmd.Event.INPUT)),
                pair(artifact=output, event=mlmd.Event(type=mlmd.Event.OUTPUT)),
            ],
            contexts=[mlmd.Context(type_id=data["context_type"], name=f"run-{tag}-{n // 10}")],
            options=svc.PutExecutionRequest.Options(reuse_context_if_already_exist=True),
        )
        return stub.PutExecution(request)

    def put_artifacts(n: int) -> Any:
        artifacts = [mlmd.Artifact(type_id=data["artifact_type"], uri=f"s3://{tag}/{n}/batch/{i}") for i in range(10)]
        return stub.PutArtifacts(svc.PutArtifactsRequest(artifacts=artifacts))

    return {
        "by_id": by_id,
        "by_context": by_context,
        "filtered_page": filtered_page,
        "lineage": lineage,
        "put_execution": put_execution,
        "put_artifacts": put_artifacts,
    }


def client(
    address: str,
    data: Seed,
    names: tuple[str, ...],
    tag: str,
    ready: Any,
    go: Any,
    deadline: Any,
    out: Any,
    rate: float = 0.0,
) -> None:
    """One client process: the named operations in turn until the deadline; latencies per operation.
    With `rate` (calls per second) the calls start on a fixed schedule, each as soon as it is due
    (a late call goes at once and the schedule does not slip); else back to back."""
    channel = grpc.insecure_channel(address)
    stub = svc_grpc.MetadataStoreServiceStub(channel)
    calls = operations(stub, data, tag)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    n = 0
    ready.put(tag)
    go.wait()  # every client starts at the same moment, once all are up
    # Paced clients start spread over one interval, so that their calls do not arrive together.
    due = time.perf_counter() + (random.Random(tag).random() / rate if rate else 0.0)
    while time.time() < deadline.value:
        for name in names:
            if rate:
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                due += 1.0 / rate
            began = time.perf_counter()
            try:
                calls[name](n)
            except grpc.RpcError as error:
                errors[f"{name}:{error.code().name}"] += 1
                continue
            latencies[name].append(time.perf_counter() - began)
        n += 1
    channel.close()
    out.put({"latencies": dict(latencies), "errors": dict(errors)})


# ---------------------------------------------------------------- one cell


def measure(address: str, server_pid: int, data: Seed, names: tuple[str, ...], clients: int, seconds: float) -> Any:
    context = multiprocessing.get_context("spawn")
    out, ready, go = context.Queue(), context.Queue(), context.Event()
    deadline = context.Value("d", 0.0)
    tag = f"c{clients}-{'-'.join(names)}-{time.monotonic_ns()}"
    children = [
        context.Process(target=client, args=(address, data, names, f"{tag}-{i}", ready, go, deadline, out))
        for i in range(clients)
    ]
    for child in children:
        child.start()
    for _ in children:  # spawned interpreters take a while to start on a busy machine
        ready.get(timeout=300)
    before = cpu_snapshot(server_pid, os.getpid())
    deadline.value = time.time() + seconds
    go.set()
    while time.time() < deadline.value:
        time.sleep(0.01)
    # Server CPU is read once the clients have stopped calling (the last calls finish first).
    reports = [out.get(timeout=seconds + 120) for _ in children]
    after = cpu_snapshot(server_pid, os.getpid())
    for child in children:
        child.join(timeout=30)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for report in reports:
        for name, values in report["latencies"].items():
            latencies[name] += values
        for key, count in report["errors"].items():
            errors[key] += count
    calls = sum(len(v) for v in latencies.values())
    server_cpu = after["server"] - before["server"]
    return {
        "clients": clients,
        "calls": calls,
        "calls_per_s": calls / seconds,
        "server_cpu_ms_per_call": 1000 * server_cpu / calls if calls else None,
        "server_cores": server_cpu / seconds,
        "errors": dict(errors),
        "operations": {
            name: {
                "calls_per_s": len(values) / seconds,
                "p50_ms": 1000 * statistics.median(values),
                "p99_ms": 1000 * _percentile(values, 0.99),
            }
            for name, values in latencies.items()
            if values
        },
    }


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ---------------------------------------------------------------- servers


def worker_count(pid: int) -> int:
    """Processes serving: the children of a `--workers` parent, else the process itself."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return len(children) or 1


@contextmanager
def serve(target: str, backend: str, directory: Path) -> Iterator[Any]:
    with scratch_database(backend, directory) as url:
        if target == "mlmd":
            store = (
                ["--sqlite-path", url.removeprefix("sqlite:///")] if backend == "sqlite" else ["--database-url", url]
            )
            command = [str(MLMD_PYTHON), str(BENCH / "passthrough_server.py"), *store]
        else:
            command = [str(LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0", "--database", url]
            if target != DEFAULT:  # the default: no --workers, what `lineagedb serve` starts by itself
                command += ["--workers", "1"]
        with running(command, directory / f"{target}-{backend}.log") as server:
            yield server


def run_backend(backend: str, clients: list[int], seconds: float, directory: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for target in TARGETS:
        with serve(target, backend, directory) as server:
            address = f"127.0.0.1:{server.port}"
            data = seed(address)
            cells: dict[str, Any] = {"mixes": {}, "alone": {}, "workers": worker_count(server.process.pid)}
            for mix, names in MIXES.items():
                for count in clients:
                    cell = measure(address, server.process.pid, data, names, count, seconds)
                    cells["mixes"][f"{mix}/{count}"] = cell
                    log(
                        f"{backend} {target} {mix} x{count}: {cell['calls_per_s']:.0f} calls/s, "
                        f"server {cell['server_cpu_ms_per_call']:.2f} ms CPU/call, errors {cell['errors']}"
                    )
            for name in (*READS, *WRITES):
                cells["alone"][name] = measure(address, server.process.pid, data, (name,), 4, seconds)
            results[target] = cells
    return results


# ---------------------------------------------------------------- report


def ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value and base else "-"


def report(results: dict[str, Any], clients: list[int]) -> list[str]:
    lines: list[str] = []
    for backend, by_target in results.items():
        mlmd_cells = by_target["mlmd"]
        lines.append(f"\n{backend}: calls/s of the mix (LineageDB / MLMD's store), server ms CPU per call")
        workers = by_target[DEFAULT].get("workers", "?")
        lines.append(f"(default: `lineagedb serve` without --workers, which started {workers} workers here)")
        heading = f"{'mix':<12} {'clients':>7} {'MLMD':>8} {'w1':>8} {'default':>8} {'w1/MLMD':>8} {'def/MLMD':>8}"
        lines.append(heading + "  cpu/call MLMD w1 default")
        for mix in MIXES:
            for count in clients:
                key = f"{mix}/{count}"
                cells = [by_target[t]["mixes"][key] for t in TARGETS]
                rates = [c["calls_per_s"] for c in cells]
                cpu = " ".join(f"{c['server_cpu_ms_per_call']:.2f}" for c in cells)
                lines.append(
                    f"{mix:<12} {count:>7} {rates[0]:>8.0f} {rates[1]:>8.0f} {rates[2]:>8.0f} "
                    f"{ratio(rates[1], rates[0]):>8} {ratio(rates[2], rates[0]):>8}  {cpu}"
                )
        lines.append(f"{backend}: each operation alone at 4 clients: p50 / p99 ms, server ms CPU per call")
        for name in (*READS, *WRITES):
            parts = []
            for target in TARGETS:
                cell = by_target[target]["alone"][name]
                op = cell["operations"].get(name, {})
                cpu_ms = cell["server_cpu_ms_per_call"] or 0
                parts.append(f"{target} {op.get('p50_ms', 0):.1f}/{op.get('p99_ms', 0):.1f} {cpu_ms:.2f}")
            base = mlmd_cells["alone"][name]["server_cpu_ms_per_call"]
            w1 = by_target["lineagedb-w1"]["alone"][name]["server_cpu_ms_per_call"]
            default = by_target[DEFAULT]["alone"][name]["server_cpu_ms_per_call"]
            cpu_ratios = f"CPU w1/MLMD {ratio(w1, base)} default/MLMD {ratio(default, base)}"
            lines.append(f"  {name:<14} " + " | ".join(parts) + f" | {cpu_ratios}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 and 4 clients, 2 s a cell, SQLite only")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", default="1,4,8,16")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    clients = [1, 4] if args.quick else [int(c) for c in args.clients.split(",")]
    seconds = 2.0 if args.quick else args.seconds
    backends = ["sqlite"] if args.quick else args.backends.split(",")
    # "default" measures what users get: no LINEAGEDB_WORKERS from this shell either.
    os.environ.pop("LINEAGEDB_WORKERS", None)
    if not MLMD_PYTHON.exists():
        print(f"skipped: no official-client interpreter at {MLMD_PYTHON} (make mlmd-venv)")
        return 0
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lineagedb-concurrency-") as tmp:
        for backend in backends:
            reason = unreachable(backend)
            if reason:
                log(f"{backend} skipped: {reason}")
                continue
            results[backend] = run_backend(backend, clients, seconds, Path(tmp))
    usable = len(os.sched_getaffinity(0))
    document = {"seconds": seconds, "clients": clients, "cores": os.cpu_count(), "usable_cpus": usable}
    document["results"] = results
    (BENCH / "concurrency_results.json").write_text(json.dumps(document, indent=1) + "\n")
    print("\n".join(report(results, clients)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
