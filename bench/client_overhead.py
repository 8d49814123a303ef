"""What lineagedb.client costs against the official ml-metadata client: the same workload, same run.

bench/driver.py (the MLMD workload of `make bench`, written against the official API) runs
against LineageDB over gRPC twice per round: under the official client (.venv-mlmd:
ml-metadata 1.17.1, protobuf 4, Python 3.11) and under the ml_metadata drop-in
(clients/python-ml-metadata on the import path of .venv: lineagedb.client, protobuf 7, the
same Python 3.11). Each run gets a fresh server on a fresh SQLite file; the order alternates
round by round. The report is, per operation, the median over rounds of the ratio
drop-in / official, and their geometric mean (target: at most 1.1). With
.venv-client313 present, the drop-in on Python 3.13 is timed too (for information: another
interpreter, so not the ratio the target is about).

    .venv/bin/python bench/client_overhead.py [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness

ROOT = harness.ROOT
DROP_IN = ROOT / "clients" / "python-ml-metadata"
PYTHON313 = ROOT / ".venv-client313" / "bin" / "python"
RESULTS = harness.BENCH / "client_results.json"
TARGET_RATIO = 1.1
QUICK = ["--reps", "5", "--type-reps", "3", "--batches", "5", "--executions", "20", "--chain", "6", "--fanout", "4"]
FULL = ["--reps", "10"]


def clients() -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (interpreter command, extra environment)."""
    found = {
        "official": ([str(harness.MLMD_PYTHON)], {}),
        "drop-in": ([sys.executable], {"PYTHONPATH": str(DROP_IN)}),
    }
    if PYTHON313.exists():
        found["drop-in-3.13"] = ([str(PYTHON313)], {})
    return found


def one_run(client: tuple[list[str], dict[str, str]], sizes: list[str], workdir: Path, tag: str) -> dict[str, Any]:
    python, env = client
    database = f"sqlite:///{workdir / f'{tag}.db'}"
    command = [str(harness.LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0", "--database", database]
    with harness.running(command, workdir / f"{tag}.log") as server:
        driver = [*python, str(harness.BENCH / "driver.py"), "--target", "grpc", "--port", str(server.port), *sizes]
        full = _run_json(driver, env)
        trivial = _run_json([*driver, "--workload", "trivial", "--reps", "200"], env)
    ops = {name: op["ms"] for name, op in full["ops"].items() if "ms" in op}
    ops.update({name: op["ms"] for name, op in trivial["ops"].items() if "ms" in op})
    ops["wall (whole workload)"] = full["wall_s"] * 1000.0
    return ops


def _run_json(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    import subprocess

    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**harness.clean_env(), **env},
        cwd=ROOT,
        timeout=harness.DRIVER_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def compare(rounds: list[dict[str, dict[str, float]]], name: str) -> dict[str, dict[str, float]]:
    """Per operation: median ms of each side and the median per-round ratio name / official."""
    table: dict[str, dict[str, float]] = {}
    for op in rounds[0]["official"]:
        pairs = [(r[name][op], r["official"][op]) for r in rounds if op in r.get(name, {}) and r["official"][op] > 0]
        if not pairs:
            continue
        table[op] = {
            "official_ms": statistics.median(b for _, b in pairs),
            f"{name}_ms": statistics.median(a for a, _ in pairs),
            "ratio": statistics.median(a / b for a, b in pairs),
        }
    return table


def geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smaller workload (about a minute in all)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    runners = clients()
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="client-bench-") as tmp:
        for index in range(args.rounds):
            names = list(runners) if index % 2 == 0 else list(reversed(runners))
            rounds.append({name: one_run(runners[name], sizes, Path(tmp), f"r{index}-{name}") for name in names})
            harness.log(f"client overhead: round {index + 1}/{args.rounds} done")
    report: dict[str, Any] = {"rounds": args.rounds, "quick": args.quick, "machine": harness.machine_info()}
    for name in runners:
        if name == "official":
            continue
        table = compare(rounds, name)
        ops = [op for op in table if op != "wall (whole workload)"]
        report[name] = {
            "ops": table,
            "geomean_ratio": geomean([table[op]["ratio"] for op in ops]),
            "wall_ratio": table["wall (whole workload)"]["ratio"],
        }
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nlineagedb.client (ml_metadata drop-in) / official ml-metadata client, {args.rounds} rounds")
    drop_in = report["drop-in"]["ops"]
    print(f"{'operation':58} {'official ms':>12} {'drop-in ms':>12} {'ratio':>7}")
    for op, row in drop_in.items():
        print(f"{op:58} {row['official_ms']:12.3f} {row['drop-in_ms']:12.3f} {row['ratio']:7.3f}")
    for name in [n for n in runners if n != "official"]:
        print(
            f"{name}: geometric mean of per-operation ratios {report[name]['geomean_ratio']:.3f}, "
            f"whole workload {report[name]['wall_ratio']:.3f} (target <= {TARGET_RATIO})"
        )
    print(f"results: {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
