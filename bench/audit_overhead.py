"""What the audit log costs: the same workload against LineageDB with the audit log off and on.

Two servers on two fresh databases of one backend, authentication off on both, loaded
through the same calls; the second has an audit key, so every write transaction appends
its record (and node index rows, and its chain's head) before it commits. Reads are
audited only when refused (the default), so they should not move. Operations alternate
between the servers rep by rep; the figure is the median of per-rep ratios on / off.

Writes are measured a second way too: alternating blocks of `--block` calls per server,
each block's server CPU (its threads' run time in /proc) and wall time per
call. A 5-call sample of a 2 ms write is timed as much by the scheduler as by the server;
CPU over a block is what the audit log adds, and is what it costs a busy server.

As in the auth benchmark, reps and blocks are spread over `--rounds` lifetimes of the two
servers (same databases), so that one process's luck is not reported as the log's cost.

    .venv/bin/python bench/audit_overhead.py [--backends sqlite,postgresql,mysql] [--reps 30] [--calls 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness
from auth_overhead import Samples, Target, common_arguments, compare, run_backends, split

WRITES = ("put_execution", "put_artifacts_100")
BLOCKS = 8


def _process_cpu_s(pid: int) -> float:
    """CPU seconds of one process's threads, to the nanosecond (the first field of each
    /proc/PID/task/TID/schedstat; /proc/PID/stat counts in 10 ms ticks). Threads that
    ended are not counted: the server's gRPC threads live as long as it does."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1e9


class Blocks:
    """Per-block server CPU and wall time per call of each write, pooled over rounds."""

    def __init__(self) -> None:
        self.cpu: dict[str, dict[str, list[float]]] = {name: {"off": [], "on": []} for name in WRITES}
        self.wall: dict[str, dict[str, list[float]]] = {name: {"off": [], "on": []} for name in WRITES}

    def summary(self, block: int) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for name in WRITES:
            for measure, values in (("server CPU", self.cpu[name]), ("wall", self.wall[name])):
                off_s, on_s = statistics.median(values["off"]), statistics.median(values["on"])
                results[f"{name} ({measure} of {block}-call blocks)"] = {
                    "off_ms": off_s * 1000,
                    "on_ms": on_s * 1000,
                    "ratio_on_off": on_s / off_s,
                }
        return results


def write_blocks(
    servers: dict[str, tuple[int, Target]], block: int, blocks: int = BLOCKS, into: Blocks | None = None, first: int = 0
) -> dict[str, Any]:
    """Each write in alternating blocks of `block` calls per server: the medians of the
    blocks' server CPU and wall time per call, and their ratios on / off (of these blocks
    and of those `into` holds already). `first` numbers the blocks, so that every call
    writes new artifacts."""
    into = into if into is not None else Blocks()
    for name in WRITES:
        cpu, wall = into.cpu[name], into.wall[name]
        for rep in range(first, first + blocks):
            for side in ("off", "on") if rep % 2 else ("on", "off"):
                pid, target = servers[side]
                # A fresh rep number per call: each call writes new artifacts.
                calls = [target.operations(10_000 + rep * block + i, "anyone")[name] for i in range(block)]
                cpu_start, wall_start = _process_cpu_s(pid), time.perf_counter()
                for call in calls:
                    call()
                wall[side].append((time.perf_counter() - wall_start) / block)
                cpu[side].append((_process_cpu_s(pid) - cpu_start) / block)
    return into.summary(block)


def bench_backend(
    backend: str, reps: int, calls: int, batches: int, chain: int, workdir: Path, block: int = 100, rounds: int = 1
) -> dict[str, Any]:
    key_file = workdir / "audit.key"
    key_file.write_bytes(b"bench-audit-key-" * 4)
    with ExitStack() as stack:
        off_url = stack.enter_context(harness.scratch_database(backend, workdir))
        on_url = stack.enter_context(harness.scratch_database(backend, workdir))
        # One worker: write_blocks reads the CPU of the server process itself.
        base = [str(harness.LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1"]
        on_command = [*base, "--database", on_url, "--audit-key-file", str(key_file)]
        off = on = None
        samples, blocks = Samples(), Blocks()
        # An even number of blocks per round, so that each server goes first equally often.
        per_round = max(2, 2 * math.ceil(BLOCKS / max(rounds, 1) / 2))
        written = 0
        for round_reps in split(reps, rounds):
            with ExitStack() as servers:
                off_server = servers.enter_context(harness.running([*base, "--database", off_url], workdir / "off.log"))
                on_server = servers.enter_context(harness.running(on_command, workdir / "on.log"))
                if off is None or on is None:
                    off = Target(off_server.port, [], {"anyone": []})
                    on = Target(on_server.port, [], {"anyone": []})
                    off.load([], batches, chain)
                    on.load([], batches, chain)
                else:
                    off.connect(off_server.port)
                    on.connect(on_server.port)
                compare(off, on, round_reps, calls, ("anyone",), samples=samples)
                pids = {"off": (off_server.process.pid, off), "on": (on_server.process.pid, on)}
                write_blocks(pids, block, per_round, blocks, written)
                written += per_round
                off.channel.close()
                on.channel.close()
    return {**samples.summary(), **blocks.summary(block)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_arguments(parser, "audit_results.json")
    parser.add_argument("--block", type=int, default=100, help="calls per block of the server-CPU stage")
    args = parser.parse_args(argv)

    def bench(backend: str, workdir: Path) -> dict[str, Any]:
        return bench_backend(backend, args.reps, args.calls, args.batches, args.chain, workdir, args.block, args.rounds)

    run_backends("audit overhead", args, bench, "Audit log: on ÷ off")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
