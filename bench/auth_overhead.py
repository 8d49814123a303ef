"""What access control costs: the same workload against LineageDB with auth off and on.

Two servers on two fresh databases of one backend, loaded with the same data through
the same calls; with auth on every call carries a bearer token and acts in a namespace,
so every node has a membership row and every read evaluates the namespace predicates.
Operations alternate between the two servers rep by rep (same machine state); the
report is the median of per-rep ratios on / off. The reps are split over `--rounds`
lifetimes of the two servers (each round starts both again on the same databases):
two processes of the same server, same configuration, differ by up to 5-10% in server
CPU on this machine (measured: four identical servers side by side, 10 blocks of 100
calls each), and one pair of processes would report that luck as access control's cost. The official client cannot send
bearer tokens, so this uses LineageDB's generated stubs (the same wire messages).

    .venv/bin/python bench/auth_overhead.py [--backends sqlite,postgresql,mysql] [--reps 30] [--calls 5]
        [--min-sample-ms 10] [--no-analyze]

A read shorter than --min-sample-ms takes more calls per sample than --calls (measured
once on the server without auth), so a 0.5 ms read is not timed by five calls alone.
`--analyze` (the default) collects PostgreSQL's statistics after loading (see `analyze`).

Two readers are timed with auth on: `viewer-of-default` can read `default` too and
`team-only` cannot (two different readable sets bound into the same statements; see
`lineagedb.store.tenancy.visible`).

The servers inherit the environment: `LINEAGEDB_PG_PREPARED=off` runs PostgreSQL's reads
unprepared (see `lineagedb.store.prepared`), the other side of that comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc

POLICY = """
cluster_admins = ["root"]
[namespaces.team-a]
editor = ["writer", "team-only"]
[namespaces.default]
viewer = ["writer"]
[defaults]
writer = "team-a"
"team-only" = "team-a"
"""

Metadata = list[tuple[str, str]]


def _token(principal: str) -> tuple[str, str]:
    out = subprocess.run(
        [str(harness.LINEAGEDB), "token", "create", "--principal", principal],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line and not line.startswith("#"))
    return fields["token"], fields["tokens file line"]


class Target:
    """One server with the data loaded; `call(op)` runs one timed operation."""

    def __init__(self, port: int, writer: Metadata, readers: dict[str, Metadata]) -> None:
        self.connect(port)
        self.writer = writer
        self.readers = readers

    def connect(self, port: int) -> None:
        """Talk to the server on `port` (a new process on the same database keeps what was loaded)."""
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = svc_grpc.MetadataStoreServiceStub(self.channel)

    def load(self, admin: Metadata, batches: int, chain: int) -> None:
        s = self.stub
        self.atype = s.PutArtifactType(
            svc.PutArtifactTypeRequest(
                artifact_type=mlmd.ArtifactType(name="Data", properties={"shard": mlmd.INT, "split": mlmd.STRING})
            ),
            metadata=admin,
        ).type_id
        self.etype = s.PutExecutionType(
            svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="Step")), metadata=admin
        ).type_id
        self.ctype = s.PutContextType(
            svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="Run")), metadata=admin
        ).type_id
        self.context_id = s.PutContexts(
            svc.PutContextsRequest(contexts=[mlmd.Context(type_id=self.ctype, name="ctx-base")]), metadata=self.writer
        ).context_ids[0]
        self.ids: list[int] = []
        for batch in range(batches):
            self.put_batch(f"load{batch}")
        # A chain a0 -> e1 -> a1 -> ... for lineage, attributed to the base context.
        head = self.ids[0]
        previous = head
        for step in range(chain):
            response = s.PutExecution(self._execution_request([previous], f"chain{step}"), metadata=self.writer)
            previous = response.artifact_ids[-1]
        self.head = head

    def _artifacts(self, tag: str, count: int) -> list[mlmd.Artifact]:
        return [
            mlmd.Artifact(
                type_id=self.atype,
                uri=f"s3://bucket/{tag}/{i}",
                properties={"shard": mlmd.Value(int_value=i % 20), "split": mlmd.Value(string_value="train")},
                custom_properties={"note": mlmd.Value(string_value=tag)},
            )
            for i in range(count)
        ]

    def put_batch(self, tag: str) -> None:
        response = self.stub.PutArtifacts(
            svc.PutArtifactsRequest(artifacts=self._artifacts(tag, 100)), metadata=self.writer
        )
        self.ids.extend(response.artifact_ids)

    def _execution_request(self, inputs: list[int], tag: str) -> svc.PutExecutionRequest:
        # Inputs by event only: sending the stored artifact back would be a whole update.
        pairs = [
            svc.PutExecutionRequest.ArtifactAndEvent(event=mlmd.Event(artifact_id=i, type=mlmd.Event.INPUT))
            for i in inputs
        ]
        pairs.append(
            svc.PutExecutionRequest.ArtifactAndEvent(
                artifact=self._artifacts(tag, 1)[0], event=mlmd.Event(type=mlmd.Event.OUTPUT)
            )
        )
        return svc.PutExecutionRequest(
            execution=mlmd.Execution(type_id=self.etype, last_known_state=mlmd.Execution.COMPLETE),
            artifact_event_pairs=pairs,
            contexts=[mlmd.Context(id=self.context_id)],
            options=svc.PutExecutionRequest.Options(force_reuse_context=True),
        )

    def operations(self, rep: int, reader: str) -> dict[str, Callable[[], Any]]:
        s, md, ids = self.stub, self.readers[reader], self.ids
        picked = ids[(rep * 37) % (len(ids) - 100) :][:100]

        def paged_filter() -> None:
            options = mlmd.ListOperationOptions(max_result_size=100, filter_query="properties.shard.int_value = 7")
            while True:
                page = s.GetArtifacts(svc.GetArtifactsRequest(options=options), metadata=md)
                if not page.next_page_token:
                    return
                options.next_page_token = page.next_page_token

        lineage = svc.GetLineageSubgraphRequest(
            lineage_subgraph_query_options=mlmd.LineageSubgraphQueryOptions(
                starting_artifacts=mlmd.LineageSubgraphQueryOptions.StartingNodes(filter_query=f"id = {self.head}"),
                max_num_hops=10,
            )
        )
        return {
            "trivial": lambda: s.GetArtifactsByID(svc.GetArtifactsByIDRequest(), metadata=md),
            "by_id_100": lambda: s.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=picked), metadata=md),
            "filter_property_all_pages": paged_filter,
            "by_context": lambda: s.GetArtifactsByContext(
                svc.GetArtifactsByContextRequest(context_id=self.context_id), metadata=md
            ),
            "lineage_10_hops": lambda: s.GetLineageSubgraph(lineage, metadata=md),
            "put_artifacts_100": lambda: self.put_batch(f"rep{rep}"),
            "put_execution": lambda: s.PutExecution(
                self._execution_request(picked[:2], f"exec{rep}"), metadata=self.writer
            ),
        }


def _timed(operation: Callable[[], Any], calls: int) -> float:
    """Seconds per call over `calls` back-to-back calls: one call of a sub-millisecond
    operation is timed as much by the scheduler as by the server."""
    start = time.perf_counter()
    for _ in range(calls):
        operation()
    return (time.perf_counter() - start) / calls


def analyze(backend: str, url: str) -> None:
    """PostgreSQL: collect the planner's statistics of a database just loaded, as autovacuum
    (on by default) does within its first minute. Without them every plan rests on default
    estimates (a table of 2,000 artifacts taken for 140 rows), on both servers but not in
    the same statements, so the ratios measured plan luck as much as access control. This
    machine's PostgreSQL runs with autovacuum off, which left the tables never analyzed."""
    if backend != "postgresql":
        return
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("ANALYZE"))
    finally:
        engine.dispose()


def bench_backend(
    backend: str,
    reps: int,
    calls: int,
    batches: int,
    chain: int,
    workdir: Path,
    counts: Path | None = None,
    statistics_first: bool = False,
    min_sample_s: float = 0.0,
    rounds: int = 1,
) -> dict[str, Any]:
    tokens = {principal: _token(principal) for principal in ("root", "writer", "team-only")}
    (workdir / "tokens").write_text("\n".join(line for _, line in tokens.values()) + "\n")
    (workdir / "policy.toml").write_text(POLICY)

    def bearer(principal: str) -> Metadata:
        return [("authorization", f"Bearer {tokens[principal][0]}")]

    with ExitStack() as stack:
        off_url = stack.enter_context(harness.scratch_database(backend, workdir))
        on_url = stack.enter_context(harness.scratch_database(backend, workdir))
        subprocess.run([str(harness.LINEAGEDB), "db", "upgrade", "--database", on_url], check=True, capture_output=True)
        subprocess.run(
            [str(harness.LINEAGEDB), "namespace", "create", "team-a", "--database", on_url],
            check=True,
            capture_output=True,
        )
        # One worker (as bench/run.py): one client connection, one statement-count file.
        base = [str(harness.LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1"]

        def env(name: str, round_number: int) -> dict[str, str] | None:
            # Statements per call of each server (see lineagedb.store.statement_count), first round.
            if counts is None or round_number:
                return None
            return {"LINEAGEDB_COUNT_STATEMENTS": str(counts / f"{backend}-{name}.json")}

        on_command = [
            *base,
            "--database",
            on_url,
            "--auth-tokens",
            str(workdir / "tokens"),
            "--authz-policy",
            str(workdir / "policy.toml"),
        ]
        off = on = None
        samples = Samples()
        for round_number, round_reps in enumerate(split(reps, rounds)):
            with ExitStack() as servers:
                off_server = servers.enter_context(
                    harness.running([*base, "--database", off_url], workdir / "off.log", env("off", round_number))
                )
                on_server = servers.enter_context(
                    harness.running(on_command, workdir / "on.log", env("on", round_number))
                )
                if off is None or on is None:
                    off = Target(off_server.port, [], {"viewer-of-default": [], "team-only": []})
                    on = Target(
                        on_server.port,
                        bearer("writer"),
                        {"viewer-of-default": bearer("writer"), "team-only": bearer("team-only")},
                    )
                    off.load([], batches, chain)
                    on.load(bearer("root"), batches, chain)
                    if statistics_first:
                        analyze(backend, off_url)
                        analyze(backend, on_url)
                else:
                    off.connect(off_server.port)
                    on.connect(on_server.port)
                compare(off, on, round_reps, calls, ("viewer-of-default", "team-only"), min_sample_s, samples)
                off.channel.close()
                on.channel.close()
    return samples.summary()


def split(reps: int, rounds: int) -> list[int]:
    """`reps` spread over `rounds` (at least one rep each): 30 over 4 is 8, 8, 7, 7."""
    rounds = max(1, min(rounds, reps))
    return [reps // rounds + (1 if index < reps % rounds else 0) for index in range(rounds)]


def _calibrated_calls(off: Target, readers: tuple[str, ...], calls: int, min_sample_s: float) -> dict[str, int]:
    """Calls per sample for each read, so a sample lasts at least `min_sample_s` on the
    server without auth: five calls of a 0.5 ms read are a 2.5 ms sample, which one
    scheduler hiccup on a loaded machine moves by 20%. Writes keep `calls` (each call
    grows the store). Calibrated once, before the reps, on the off server only."""
    counts: dict[str, int] = {}
    for name, operation in off.operations(0, readers[0]).items():
        if name.startswith("put_") or min_sample_s <= 0:
            continue
        operation()  # warm: the first call of an operation prepares its statements
        one = min(_timed(operation, 1) for _ in range(3))
        counts[name] = max(calls, math.ceil(min_sample_s / max(one, 1e-6)))
    return counts


class Samples:
    """Per-rep times of each operation on both servers, pooled over rounds."""

    def __init__(self) -> None:
        self.ratios: dict[str, list[float]] = {}
        self.times: dict[str, dict[str, list[float]]] = {}
        self.rounds: dict[str, list[float]] = {}  # each round's median ratio

    def add(self, key: str, off_s: float, on_s: float) -> None:
        self.ratios.setdefault(key, []).append(on_s / off_s)
        entry = self.times.setdefault(key, {"off": [], "on": []})
        entry["off"].append(off_s)
        entry["on"].append(on_s)

    def end_round(self, first_rep: dict[str, int]) -> None:
        """Close a round: each operation's median ratio over the reps it added."""
        for key, values in self.ratios.items():
            self.rounds.setdefault(key, []).append(statistics.median(values[first_rep.get(key, 0) :]))

    def mark(self) -> dict[str, int]:
        return {key: len(values) for key, values in self.ratios.items()}

    def summary(self) -> dict[str, Any]:
        return {
            key: {
                "off_ms": statistics.median(self.times[key]["off"]) * 1000,
                "on_ms": statistics.median(self.times[key]["on"]) * 1000,
                "ratio_on_off": statistics.median(values),
                "round_ratios": [round(ratio, 3) for ratio in self.rounds.get(key, [])],
            }
            for key, values in self.ratios.items()
        }


def compare(
    off: Target,
    on: Target,
    reps: int,
    calls: int,
    readers: tuple[str, ...],
    min_sample_s: float = 0.0,
    samples: Samples | None = None,
) -> dict[str, Any]:
    """Every operation on both servers, alternating which goes first rep by rep; the
    median of the per-rep ratios on / off, and each side's median time (of these reps
    and of those `samples` holds already). With `min_sample_s`, short reads take more
    calls per sample (see _calibrated_calls)."""
    samples = samples if samples is not None else Samples()
    start = samples.mark()
    per_operation = _calibrated_calls(off, readers, calls, min_sample_s)
    for rep in range(reps):
        for reader in readers:
            off_ops, on_ops = off.operations(rep, reader), on.operations(rep, reader)
            for name in off_ops:
                if name.startswith("put_") and reader != readers[0]:
                    continue  # writes do not depend on the reader
                key = name if name.startswith("put_") or len(readers) == 1 else f"{name} [{reader}]"
                # Alternate which server goes first, so neither always meets a warm cache.
                pair = (off_ops[name], on_ops[name]) if rep % 2 else (on_ops[name], off_ops[name])
                count = per_operation.get(name, calls)
                first, second = _timed(pair[0], count), _timed(pair[1], count)
                off_s, on_s = (first, second) if rep % 2 else (second, first)
                samples.add(key, off_s, on_s)
    samples.end_round(start)
    return samples.summary()


def common_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """The flags this benchmark shares with bench/audit_overhead.py."""
    parser.add_argument("--backends", default="sqlite,postgresql,mysql")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument(
        "--rounds", type=int, default=3, help="server lifetimes per side the reps are spread over (see the docstring)"
    )
    parser.add_argument("--calls", type=int, default=5, help="back-to-back calls per timed sample")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--chain", type=int, default=11)
    parser.add_argument("--out", type=Path, default=harness.BENCH / out)


def run_backends(
    what: str, args: argparse.Namespace, bench: Callable[[str, Path], dict[str, Any]], title: str
) -> dict[str, Any]:
    """`bench(backend, workdir)` on each reachable backend; the results are written to
    args.out and printed as a table of on ÷ off ratios under `title`."""
    results: dict[str, Any] = {}
    for backend in args.backends.split(","):
        reason = harness.unreachable(backend)
        if reason is not None:
            harness.log(f"{what}: {backend} skipped ({reason})")
            continue
        harness.log(f"{what} on {backend}: {args.reps} alternating reps over {args.rounds} rounds of servers")
        with tempfile.TemporaryDirectory(prefix="lineagedb-bench-") as workdir:
            results[backend] = bench(backend, Path(workdir))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n## {title} (median of per-rep ratios, same run)\n")
    print("| backend | operation | off ms | on ms | on ÷ off | per round |\n| --- | --- | ---: | ---: | ---: | --- |")
    for backend, rows in results.items():
        for key, row in rows.items():
            per_round = " ".join(f"{ratio:.2f}" for ratio in row.get("round_ratios", []))
            print(
                f"| {backend} | {key} | {row['off_ms']:.2f} | {row['on_ms']:.2f} | {row['ratio_on_off']:.2f}x "
                f"| {per_round} |"
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_arguments(parser, "auth_results.json")
    parser.add_argument(
        "--count-statements", type=Path, metavar="DIR", help="write each server's statements per call to DIR"
    )
    parser.add_argument(
        "--analyze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="PostgreSQL: ANALYZE both databases after loading, as autovacuum would have done on a server with "
        "default settings (see analyze()); --no-analyze plans on whatever statistics the server has",
    )
    parser.add_argument(
        "--min-sample-ms",
        type=float,
        default=10.0,
        help="take more calls per sample of a read shorter than this (0: always --calls)",
    )
    args = parser.parse_args(argv)

    def bench(backend: str, workdir: Path) -> dict[str, Any]:
        return bench_backend(
            backend,
            args.reps,
            args.calls,
            args.batches,
            args.chain,
            workdir,
            args.count_statements,
            args.analyze,
            args.min_sample_ms / 1000,
            args.rounds,
        )

    run_backends("auth overhead", args, bench, "Access control: auth on ÷ auth off")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
