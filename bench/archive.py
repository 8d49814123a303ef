"""Export and import of the 100,000-artifact store: rows per second and peak memory.

Per source backend: a scratch database gets the MLMD schema (`lineagedb db upgrade`) and the
store bench/lineage_answers.py builds (100,000 artifacts with three properties each, the
executions, contexts, events with two-step paths, attributions and associations of ~3,300
pipeline runs: about 1.1 million rows). Then, each as its own `lineagedb` process, so its
peak resident memory (its VmHWM) is the command's alone:

* `lineagedb export` of the whole store;
* `lineagedb export verify` of that archive against the source;
* `lineagedb import` into a fresh database of the next backend (SQLite -> PostgreSQL ->
  MariaDB -> SQLite), then `export verify` against it.

    .venv/bin/python bench/archive.py [--quick] [--backends sqlite,postgresql,mysql] [--artifacts N]

Writes bench/archive_results.json and prints a table. Nothing is asserted but that every
command succeeds and every verify says equal.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lineage_answers
import run as harness

NEXT = {"sqlite": "postgresql", "postgresql": "mysql", "mysql": "sqlite"}
RESULTS = Path(__file__).resolve().parent / "archive_results.json"
ROWS = re.compile(r"([\d,]+) rows")


# Runs the command in this interpreter and records the process's own peak RSS (VmHWM of its
# address space). Not ru_maxrss: Linux carries the forking parent's peak into an exec'ed
# child's, and this parent holds the store it just built.
WRAPPER = """
import os, sys
from lineagedb.cli import main
code = main(sys.argv[1:])
with open(os.environ["LINEAGEDB_BENCH_HWM"], "w") as out:
    out.write(next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")))
sys.exit(code)
"""


def timed_command(argv: list[str], workdir: Path) -> dict[str, Any]:
    """Run `lineagedb ARGV`; its wall time, peak RSS and output (it must exit 0)."""
    out_path, err_path, hwm_path = workdir / "out.txt", workdir / "err.txt", workdir / "hwm.txt"
    env = {**harness.clean_env(), "LINEAGEDB_BENCH_HWM": str(hwm_path)}
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", WRAPPER, *argv], stdout=out, stderr=err, env=env, cwd=harness.ROOT, check=False
        )
        seconds = time.perf_counter() - started
    stdout, stderr = out_path.read_text(), err_path.read_text()
    if done.returncode != 0:
        raise RuntimeError(f"lineagedb {' '.join(argv[:2])} exited {done.returncode}:\n{stdout}\n{stderr}")
    peak_kb = int(hwm_path.read_text().split()[1])
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024, "stdout": stdout}


def rows_in(stdout: str) -> int:
    found = ROWS.search(stdout)
    return int(found.group(1).replace(",", "")) if found else 0


def one_backend(source: str, artifacts: int, closure: int, workdir: Path) -> dict[str, Any]:
    target = NEXT[source]
    result: dict[str, Any] = {"source": source, "target": target}
    with harness.scratch_database(source, workdir) as url:
        subprocess.run(
            [str(harness.LINEAGEDB), "db", "upgrade", "--database", url],
            check=True,
            capture_output=True,
            env=harness.clean_env(),
        )
        harness.log(f"{source}: building a {artifacts:,}-artifact store")
        lineage_answers.build(url, artifacts, closure)
        path = workdir / f"{source}.jsonl.gz"
        harness.log(f"{source}: export")
        export = timed_command(["export", "--database", url, str(path)], workdir)
        rows = rows_in(export["stdout"])
        result["rows"] = rows
        result["archive_mb"] = path.stat().st_size / 1e6
        result["export"] = {**export, "rows_per_s": rows / export["seconds"]}
        harness.log(f"{source}: verify against the source")
        check = timed_command(["export", "verify", "--database", url, str(path)], workdir)
        assert check["stdout"].splitlines()[-1].startswith("equal"), check["stdout"]
        result["verify_source"] = {**check, "rows_per_s": rows / check["seconds"]}
    if harness.unreachable(target) is not None:
        harness.log(f"{target} unreachable: import skipped")
        return result
    with harness.scratch_database(target, workdir) as target_url:
        harness.log(f"{source} -> {target}: import")
        imported = timed_command(["import", "--database", target_url, str(path)], workdir)
        result["import"] = {**imported, "rows_per_s": rows_in(imported["stdout"]) / imported["seconds"]}
        check = timed_command(["export", "verify", "--database", target_url, str(path)], workdir)
        assert check["stdout"].splitlines()[-1].startswith("equal"), check["stdout"]
        result["verify_target"] = {**check, "rows_per_s": rows / check["seconds"]}
    path.unlink()
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| step | rows | seconds | rows/s | peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        for step, label in (
            ("export", f"export {result['source']}"),
            ("verify_source", f"verify {result['source']}"),
            ("import", f"import {result['source']} archive into {result['target']}"),
            ("verify_target", f"verify {result['target']}"),
        ):
            cell = result.get(step)
            if cell is not None:
                lines.append(
                    f"| {label} | {result['rows']:,} | {cell['seconds']:.1f} | {cell['rows_per_s']:,.0f} | "
                    f"{cell['peak_rss_mb']:.0f} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 artifacts")
    parser.add_argument("--backends", default="sqlite,postgresql,mysql", help="source backends")
    parser.add_argument("--artifacts", type=int, help="artifacts in the store (default 100,000)")
    args = parser.parse_args(argv)
    artifacts = args.artifacts or (10_000 if args.quick else 100_000)
    closure = max(100, artifacts // 10)
    results = []
    with tempfile.TemporaryDirectory(prefix="lineagedb-archive-bench-") as directory:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            reason = harness.unreachable(backend)
            if reason is not None:
                harness.log(f"{backend} skipped: {reason}")
                continue
            results.append(one_backend(backend, artifacts, closure, Path(directory)))
    for result in results:
        for step in ("export", "verify_source", "import", "verify_target"):
            if step in result:
                result[step].pop("stdout")
    document = {"artifacts": artifacts, "machine": harness.machine_info(), "results": results}
    RESULTS.write_text(json.dumps(document, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
