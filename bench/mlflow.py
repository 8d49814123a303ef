"""MLflow's REST API: LineageDB vs `mlflow server`, same client, same workload, same run.

For each backend (SQLite, PostgreSQL) both servers get a fresh database and the pinned
MLflow client (.venv-mlflow) runs bench/mlflow_driver.py against each: N runs loaded over
REST, then log_batch of 1,000 metrics and search_runs over the N runs (a filtered, ordered
page of 100 and the default page of 1,000). Reported: medians in ms and the ratio
LineageDB / mlflow server (below 1.0: LineageDB is faster).

    .venv/bin/python bench/mlflow.py [--runs 10000] [--reps 15] [--backends sqlite,postgresql]

Results: bench/mlflow_results.json (not in git) and a table on stdout; figures in bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness

MLFLOW_PYTHON = harness.ROOT / ".venv-mlflow" / "bin" / "python"
DRIVER = harness.BENCH / "mlflow_driver.py"
MEASURES = ("log_batch_1000_ms", "search_filtered_100_ms", "search_default_1000_ms")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_health(uri: str, path: str, process: subprocess.Popen[Any], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}) before answering {uri}{path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{uri}{path}", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{uri}{path} did not answer within {timeout_s} s")


@contextlib.contextmanager
def serving(command: list[str], log_path: Path, uri: str, health: str) -> Iterator[str]:
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=harness.clean_env())
        try:
            wait_health(uri, health, process)
            yield uri
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def lineagedb(url: str, directory: Path) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    command = [str(harness.LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--http-port", str(port), "--database", url]
    return serving(
        command,
        directory / "lineagedb.log",
        f"http://127.0.0.1:{port}",
        "/api/2.0/mlflow/experiments/get?experiment_id=0",
    )


def mlflow_server(url: str, directory: Path) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    command = [str(MLFLOW_PYTHON.with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port)]
    # The URL names its driver (postgresql+psycopg2): SQLAlchemy 2.1's default is psycopg 3, not installed there.
    command += ["--workers", "1", "--backend-store-uri", url]
    command += ["--default-artifact-root", str(directory / "mlruns")]
    return serving(command, directory / "mlflow.log", f"http://127.0.0.1:{port}", "/health")


def drive(uri: str, runs: int, reps: int) -> dict[str, Any]:
    completed = subprocess.run(
        [str(MLFLOW_PYTHON), "-P", str(DRIVER), uri, "--runs", str(runs), "--reps", str(reps)],
        capture_output=True,
        text=True,
        env=harness.clean_env(),
        timeout=7200,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"driver failed against {uri}: {completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    if not MLFLOW_PYTHON.exists():
        print(f"{MLFLOW_PYTHON} is missing: run `make mlflow-venv`", file=sys.stderr)
        return 2
    report: dict[str, Any] = {"runs": args.runs, "reps": args.reps, "backends": {}}
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as scratch:
        workdir = Path(scratch)
        for backend in args.backends.split(","):
            reason = harness.unreachable(backend) if backend != "sqlite" else None
            if reason is not None:
                harness.log(f"mlflow bench: {backend} skipped ({reason})")
                continue
            results: dict[str, Any] = {}
            for name, server in (("lineagedb", lineagedb), ("mlflow", mlflow_server)):
                directory = workdir / f"{backend}-{name}"
                directory.mkdir()
                try:
                    with harness.scratch_database(backend, directory) as url, server(url, directory) as uri:
                        harness.log(f"mlflow bench: {name} on {backend}, {args.runs} runs")
                        results[name] = drive(uri, args.runs, args.reps)
                except RuntimeError as error:
                    logs = "".join(p.read_text()[-2000:] for p in directory.glob("*.log"))
                    harness.log(f"mlflow bench: {name} on {backend} failed: {error}\n{logs}")
                    break
                harness.log(f"mlflow bench: {name} on {backend}: {json.dumps(results[name])}")
            if len(results) < 2:
                continue
            results["ratio"] = {m: results["lineagedb"][m] / results["mlflow"][m] for m in MEASURES}
            report["backends"][backend] = results
    (harness.BENCH / "mlflow_results.json").write_text(json.dumps(report, indent=1))
    print(f"| backend | measure | LineageDB ms | mlflow server ms | ratio |  ({args.runs} runs)")
    print("| --- | --- | ---: | ---: | ---: |")
    for backend, results in report["backends"].items():
        for measure in MEASURES:
            ours, theirs = results["lineagedb"][measure], results["mlflow"][measure]
            print(f"| {backend} | {measure} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f}x |")
        print(f"| {backend} | load (s) | {results['lineagedb']['load_s']} | {results['mlflow']['load_s']} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
