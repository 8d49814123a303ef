"""A retention apply deleting about half of the 100,000-artifact store while a client
writes and reads, with that client's latency before and during the apply.

Per backend: the store of bench/lineage_answers.py (pipeline runs of six steps, and a
deep closure across runs), one `lineagedb serve` over it, and a client process calling
it in a loop (a PutExecution of a new step reading one existing artifact and writing
one, then a GetArtifactsByID of ten existing artifacts). The client runs alone for a
while, then `lineagedb retention plan` and `apply` run beside it with a policy expiring
the older half of the runs; the client's p50/p99 during the apply are compared with its
own before it, in the same run, and the apply's nodes per second are reported.

    .venv/bin/python bench/retention.py [--quick] [--backends sqlite,postgresql]

Writes bench/retention_results.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lineage_answers
import run as harness

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.store.schema import schema_for

PRESETS = {"quick": {"artifacts": 10_000, "baseline_s": 5.0}, "full": {"artifacts": 100_000, "baseline_s": 15.0}}
LINEAGEDB = harness.LINEAGEDB


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ---------------------------------------------------------------- the client process


def client(port: int, max_artifact: int, out: Path, stop_file: Path) -> None:
    """Call the server in a loop until `stop_file` exists; write (time, seconds) per call."""
    rng = random.Random(7)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = svc_grpc.MetadataStoreServiceStub(channel)
    type_id = stub.PutArtifactType(
        svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="BenchBlob"))
    ).type_id
    step_type = stub.PutExecutionType(
        svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="BenchStep"))
    ).type_id
    samples: list[tuple[float, float, str]] = []
    while not stop_file.exists():
        request = svc.PutExecutionRequest(execution=mlmd.Execution(type_id=step_type))
        # A new input artifact, so a deleted existing one cannot fail the call.
        request.artifact_event_pairs.add(
            artifact=mlmd.Artifact(type_id=type_id), event=mlmd.Event(type=mlmd.Event.INPUT)
        )
        request.artifact_event_pairs.add(
            artifact=mlmd.Artifact(type_id=type_id), event=mlmd.Event(type=mlmd.Event.OUTPUT)
        )
        start = time.perf_counter()
        stub.PutExecution(request, timeout=60)
        samples.append((time.time(), time.perf_counter() - start, "write"))
        ids = [rng.randint(1, max_artifact) for _ in range(10)]
        start = time.perf_counter()
        stub.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=ids), timeout=60)
        samples.append((time.time(), time.perf_counter() - start, "read"))
    out.write_text(json.dumps(samples))


# ---------------------------------------------------------------- one backend


def bench_backend(backend: str, preset: dict[str, Any], workdir: Path) -> dict[str, Any]:
    with harness.scratch_database(backend, workdir) as url:
        subprocess.run([str(LINEAGEDB), "db", "upgrade", "--database", url], check=True, capture_output=True)
        harness.log(f"{backend}: loading {preset['artifacts']} artifacts")
        lineage_answers.build(url, preset["artifacts"], 1_000)
        engine = sa.create_engine(url)
        schema = schema_for(engine.dialect.name)
        with engine.connect() as connection:
            contexts = int(connection.execute(sa.select(sa.func.max(schema.context.c.id))).scalar_one())
            artifacts = int(connection.execute(sa.select(sa.func.max(schema.artifact.c.id))).scalar_one())
        engine.dispose()
        policy = workdir / f"{backend}-policy.toml"
        policy.write_text(
            f"[[rule]]\ncontexts = \"type = 'PipelineRun' AND id <= {contexts // 2}\"\nolder_than_days = 0\n"
        )
        command = [str(LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0", "--database", url]
        with harness.running(command, workdir / f"{backend}-server.log") as server:
            stop_file = workdir / f"{backend}-stop"
            samples_file = workdir / f"{backend}-samples.json"
            client_process = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--client",
                    str(server.port),
                    str(artifacts),
                    str(samples_file),
                    str(stop_file),
                ]
            )
            time.sleep(preset["baseline_s"])
            plan_file = workdir / f"{backend}-plan.json"
            started = time.time()
            subprocess.run(
                [
                    str(LINEAGEDB),
                    "retention",
                    "plan",
                    "--policy",
                    str(policy),
                    "--output",
                    str(plan_file),
                    "--database",
                    url,
                ],
                check=True,
                capture_output=True,
            )
            planned = time.time()
            applied = subprocess.run(
                [str(LINEAGEDB), "retention", "apply", "--plan", str(plan_file), "--database", url],
                check=True,
                capture_output=True,
                text=True,
            )
            finished = time.time()
            stop_file.write_text("stop")
            client_process.wait(timeout=120)
        nodes = len(json.loads(plan_file.read_text())["order"])
        samples = json.loads(samples_file.read_text())
    result: dict[str, Any] = {
        "nodes_deleted": nodes,
        "plan_s": round(planned - started, 2),
        "apply_s": round(finished - planned, 2),
        "nodes_per_s": round(nodes / max(finished - planned, 1e-9)),
        "apply_output_tail": applied.stdout.splitlines()[-1],
    }
    for kind in ("write", "read"):
        before = [s for t, s, k in samples if k == kind and t < started]
        during = [s for t, s, k in samples if k == kind and planned <= t <= finished]
        if not before or not during:
            continue
        result[kind] = {
            "before_p50_ms": round(statistics.median(before) * 1000, 2),
            "before_p99_ms": round(percentile(before, 0.99) * 1000, 2),
            "during_p50_ms": round(statistics.median(during) * 1000, 2),
            "during_p99_ms": round(percentile(during, 0.99) * 1000, 2),
            "p99_ratio": round(percentile(during, 0.99) / percentile(before, 0.99), 2),
            "calls_during": len(during),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["--client"]:
        port, max_artifact, out, stop = args_list[1:5]
        client(int(port), int(max_artifact), Path(out), Path(stop))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 artifacts")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--out", type=Path, default=harness.BENCH / "retention_results.json")
    args = parser.parse_args(args_list)
    preset = PRESETS["quick" if args.quick else "full"]
    results: dict[str, Any] = {"preset": "quick" if args.quick else "full", "machine": harness.machine_info()}
    with tempfile.TemporaryDirectory(prefix="lineagedb-retention-") as directory:
        for backend in args.backends.split(","):
            reason = harness.unreachable(backend)
            if reason:
                harness.log(f"{backend}: skipped ({reason})")
                continue
            results[backend] = bench_backend(backend, preset, Path(directory))
    args.out.write_text(json.dumps(results, indent=1))
    header = ("backend", "deleted", "apply s", "nodes/s", "write p99 before/during", "read p99 before/during")
    print("{:<11} {:>8} {:>8} {:>8}  {:>24}  {:>23}".format(*header))
    for backend in args.backends.split(","):
        r = results.get(backend)
        if not r:
            continue
        cells = []
        for kind in ("write", "read"):
            k = r.get(kind, {})
            cells.append(f"{k.get('before_p99_ms', '-')}/{k.get('during_p99_ms', '-')} ms ({k.get('p99_ratio', '-')}x)")
        row = (backend, r["nodes_deleted"], r["apply_s"], r["nodes_per_s"], cells[0], cells[1])
        print("{:<11} {:>8} {:>8} {:>8}  {:>24}  {:>23}".format(*row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
