"""Throughput of `lineagedb serve --workers N` under concurrent clients, on PostgreSQL.

One Python process cannot use two cores, so LineageDB pre-forks N server processes on
one port. This measures what that buys: the same mixed workload (a PutExecution with
an input, an output and a run context, then a 20-node page with a property filter,
then a by-id read of 20 artifacts) from C concurrent clients for a fixed time, against
`--workers 1` and `--workers 2`, alternating in rounds. Clients run in their own
processes (two threads each) so the client side is not the bottleneck of one GIL.

    .venv/bin/python bench/workers.py [--clients 8] [--seconds 12] [--rounds 2]

Writes bench/workers.json and prints ops/s per configuration and the ratio.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import LINEAGEDB, log, running, scratch_database, unreachable

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc

BENCH = Path(__file__).resolve().parent
THREADS_PER_PROCESS = 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- where the CPU goes (Linux /proc): on a 2-core machine that also runs the clients and
# the database, the ratio alone cannot say whether the servers or the machine ran out.


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from "state" on; comm may hold spaces


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds so far) for every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), comm, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


def _tree(root: int, processes: dict[int, tuple[int, str, float]]) -> set[int]:
    members, added = {root}, True
    while added:
        children = {pid for pid, (parent, _, _) in processes.items() if parent in members} - members
        members |= children
        added = bool(children)
    return members


def _machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


def cpu_snapshot(server_pid: int, bench_pid: int) -> dict[str, float]:
    processes = _processes()
    server = _tree(server_pid, processes)
    clients = _tree(bench_pid, processes) - server - {bench_pid}
    busy, total = _machine_busy_seconds()
    return {
        "server": sum(processes[p][2] for p in server if p in processes),
        "clients": sum(processes[p][2] for p in clients if p in processes),
        "postgres": sum(cpu for _, comm, cpu in processes.values() if comm.startswith("postgres")),
        "machine_busy": busy,
        "machine_total": total,
    }


def cores_used(before: dict[str, float], after: dict[str, float], elapsed: float) -> dict[str, float]:
    """Average cores each party used between two snapshots (client processes are read
    just before they exit, so their share is taken from their own last reading)."""
    used = {key: (after[key] - before[key]) / elapsed for key in ("server", "postgres", "machine_busy")}
    used["machine_cores"] = (after["machine_total"] - before["machine_total"]) / elapsed
    return used


def prepare_types(address: str) -> dict[str, int]:
    with grpc.insecure_channel(address) as channel:
        stub = svc_grpc.MetadataStoreServiceStub(channel)
        artifact_type = mlmd.ArtifactType(name="Data")
        artifact_type.properties["shard"] = mlmd.INT
        response = stub.PutTypes(
            svc.PutTypesRequest(
                artifact_types=[artifact_type],
                execution_types=[mlmd.ExecutionType(name="Step")],
                context_types=[mlmd.ContextType(name="Run")],
            )
        )
    return {
        "artifact": response.artifact_type_ids[0],
        "execution": response.execution_type_ids[0],
        "context": response.context_type_ids[0],
    }


def client_process(address: str, types: dict[str, int], deadline: float, tag: str, results: Any) -> None:
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def loop(thread: int) -> None:
        channel = grpc.insecure_channel(address)
        stub = svc_grpc.MetadataStoreServiceStub(channel)
        local: Counter[str] = Counter()
        n = 0
        last_ids: list[int] = []
        while time.monotonic() < deadline:
            n += 1
            try:
                source = mlmd.Artifact(type_id=types["artifact"], uri=f"s3://{tag}/{thread}/{n}/in")
                source.properties["shard"].int_value = n % 7
                output = mlmd.Artifact(type_id=types["artifact"], uri=f"s3://{tag}/{thread}/{n}/out")
                output.properties["shard"].int_value = n % 7
                pair = svc.PutExecutionRequest.ArtifactAndEvent
                response = stub.PutExecution(
                    svc.PutExecutionRequest(
                        execution=mlmd.Execution(type_id=types["execution"]),
                        artifact_event_pairs=[
                            pair(artifact=source, event=mlmd.Event(type=mlmd.Event.INPUT)),
                            pair(artifact=output, event=mlmd.Event(type=mlmd.Event.OUTPUT)),
                        ],
                        contexts=[mlmd.Context(type_id=types["context"], name=f"run-{tag}-{thread}-{n // 10}")],
                        options=svc.PutExecutionRequest.Options(reuse_context_if_already_exist=True),
                    )
                )
                last_ids = (last_ids + list(response.artifact_ids))[-20:]
                stub.GetArtifacts(
                    svc.GetArtifactsRequest(
                        options=mlmd.ListOperationOptions(
                            max_result_size=20, filter_query=f"properties.shard.int_value = {n % 7}"
                        )
                    )
                )
                stub.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=last_ids))
                local["ok"] += 3
            except grpc.RpcError as error:
                local[error.code().name] += 1
        channel.close()
        with lock:
            counts.update(local)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(THREADS_PER_PROCESS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times = os.times()
    report: dict[str, float] = dict(counts)
    report["cpu_seconds"] = times.user + times.system  # this client process, both threads
    results.put(report)


def measure(workers: int, clients: int, seconds: float, directory: Path) -> dict[str, Any]:
    with scratch_database("postgresql", directory) as url:
        command = [str(LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0", "--database", url]
        command += ["--workers", str(workers)]
        with running(command, directory / f"workers-{workers}.log") as server:
            address = f"127.0.0.1:{server.port}"
            types = prepare_types(address)
            context = multiprocessing.get_context("spawn")
            results = context.Queue()
            processes = max(1, clients // THREADS_PER_PROCESS)
            start = time.monotonic()
            deadline = start + seconds
            children = [
                context.Process(target=client_process, args=(address, types, deadline, f"w{workers}p{i}", results))
                for i in range(processes)
            ]
            before = cpu_snapshot(server.process.pid, os.getpid())
            for child in children:
                child.start()
            totals: Counter[str] = Counter()
            client_cpu = 0.0
            for _ in children:
                counts = results.get(timeout=seconds + 120)
                client_cpu += counts.pop("cpu_seconds", 0.0)
                totals.update(counts)
            after = cpu_snapshot(server.process.pid, os.getpid())
            for child in children:
                child.join(timeout=30)
            elapsed = time.monotonic() - start
    cores = cores_used(before, after, elapsed)
    cores["clients"] = client_cpu / elapsed
    return {"workers": workers, "ops": totals.get("ok", 0), "seconds": elapsed, "codes": dict(totals), "cores": cores}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    reason = unreachable("postgresql")
    if reason:
        print(f"skipped: {reason}")
        return 0
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lineagedb-workers-") as tmp:
        for round_ in range(args.rounds):
            order = (1, 2) if round_ % 2 == 0 else (2, 1)
            for workers in order:
                result = measure(workers, args.clients, args.seconds, Path(tmp))
                result["ops_per_s"] = result["ops"] / result["seconds"]
                log(f"round {round_ + 1}: --workers {workers}: {result['ops_per_s']:.0f} ops/s {result['codes']}")
                log("  cores used: " + ", ".join(f"{k} {v:.2f}" for k, v in result["cores"].items()))
                runs.append(result)
    by_workers = {w: [r["ops_per_s"] for r in runs if r["workers"] == w] for w in (1, 2)}
    ratios = [two / one for one, two in zip(by_workers[1], by_workers[2], strict=True)]
    summary = {
        "clients": args.clients,
        "seconds": args.seconds,
        "ops_per_s": {str(w): statistics.median(v) for w, v in by_workers.items()},
        "ratio_2_to_1": statistics.median(ratios),
        "ratios": ratios,
        "runs": runs,
    }
    (BENCH / "workers.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"PostgreSQL, {args.clients} concurrent clients, {args.seconds:.0f} s per run, {args.rounds} rounds")
    print(f"  --workers 1: {summary['ops_per_s']['1']:.0f} ops/s")
    print(f"  --workers 2: {summary['ops_per_s']['2']:.0f} ops/s")
    print(f"  ratio: {summary['ratio_2_to_1']:.2f}x (per round: {', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"  cores used (median over rounds; the machine has {os.cpu_count()}):")
    for w in (1, 2):
        cores = [r["cores"] for r in runs if r["workers"] == w]
        parts = ("server", "clients", "postgres", "machine_busy")
        print(f"    --workers {w}: " + ", ".join(f"{p} {statistics.median(c[p] for c in cores):.2f}" for p in parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
