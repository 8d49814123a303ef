"""Run the MLMD benchmark against every target in alternating rounds and write the results.

Runs under LineageDB's interpreter (``.venv``); the workload itself runs in
``bench/driver.py`` under the official client's interpreter (``.venv-mlmd``). Targets:

  a  MLMD's C++ store in-process (the driver's own process), SQLite
  b  the same C++ store behind a pass-through Python grpcio servicer, SQLite
  c  LineageDB over gRPC, SQLite
  d  LineageDB over gRPC, PostgreSQL (when reachable)
  e  LineageDB over gRPC, MariaDB/MySQL (when reachable)
  bp, bm  the pass-through servicer with MLMD's C++ store on PostgreSQL / MariaDB, for the
      same-database ratios d / bp and e / bm
  floor  an empty grpcio servicer: the trivial call only

Every round runs every target once on a fresh database, in an order rotated by one each
round so drift on a shared machine favours none. Ratios are taken within a round, then
summarised. After the timed rounds, one counting run per LineageDB target (the server
started with LINEAGEDB_COUNT_STATEMENTS, see lineagedb.store.statement_count) gives the
statements, i.e. round trips on PostgreSQL and MariaDB, each RPC sent; counting stays out
of the timed runs. Writes bench/results.json and bench/results.md and prints the tables.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import make_url

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MLMD_PYTHON = Path(os.environ.get("LINEAGEDB_MLMD_PYTHON", ROOT / ".venv-mlmd" / "bin" / "python"))
LINEAGEDB = Path(sys.executable).with_name("lineagedb")
POSTGRES_URL = os.environ.get("LINEAGEDB_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
MYSQL_URL = os.environ.get("LINEAGEDB_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/mysql")
LISTENING = re.compile(r"listening on (?P<host>[^\s:]+):(?P<port>\d+)")
START_TIMEOUT_S = 60.0
DRIVER_TIMEOUT_S = 1800.0
BASELINES = ("b", "a")


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    kind: str  # inprocess | passthrough | lineagedb | empty
    backend: str = "sqlite"  # sqlite | postgresql | mysql
    # MLMD's C++ core on the same database: the target this one is compared with first.
    same_db: str | None = None


ALL_TARGETS = (
    Target("a", "MLMD C++ in-process, SQLite", "inprocess"),
    Target("b", "MLMD C++ via Python grpcio pass-through, SQLite", "passthrough"),
    Target("c", "LineageDB gRPC, SQLite", "lineagedb", same_db="b"),
    Target("d", "LineageDB gRPC, PostgreSQL", "lineagedb", "postgresql", same_db="bp"),
    Target("e", "LineageDB gRPC, MariaDB", "lineagedb", "mysql", same_db="bm"),
    Target("bp", "MLMD C++ via Python grpcio pass-through, PostgreSQL", "passthrough", "postgresql"),
    Target("bm", "MLMD C++ via Python grpcio pass-through, MariaDB", "passthrough", "mysql"),
    Target("floor", "empty grpcio servicer (trivial call only)", "empty"),
)

PRESETS: dict[str, dict[str, int]] = {
    # sizes passed to driver.py; see bench/README.md
    "quick": {
        "rounds": 1,
        "reps": 3,
        "type_reps": 2,
        "batches": 3,
        "executions": 5,
        "chain": 11,
        "fanout": 3,
        "scale_n": 2000,
        "scale_batch": 50,
    },
    "default": {
        "rounds": 3,
        "reps": 7,
        # Type puts are ~1 ms calls: 5 samples a round swung 0.96-1.68x for the same code.
        "type_reps": 30,
        "batches": 20,
        "executions": 50,
        "chain": 11,
        "fanout": 10,
        "scale_n": 40000,
        "scale_batch": 50,
    },
    "full": {
        "rounds": 3,
        "reps": 7,
        # Type puts are ~1 ms calls: 5 samples a round swung 0.96-1.68x for the same code.
        "type_reps": 30,
        "batches": 20,
        "executions": 50,
        "chain": 11,
        "fanout": 10,
        "scale_n": 100000,
        "scale_batch": 50,
    },
}
DRIVER_SIZES = ("reps", "type_reps", "batches", "executions", "chain", "fanout", "scale_n", "scale_batch")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- databases


def server_url(backend: str) -> str:
    return POSTGRES_URL if backend == "postgresql" else MYSQL_URL


def unreachable(backend: str) -> str | None:
    if backend == "sqlite":
        return None
    engine = sa.create_engine(server_url(backend), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return None
    except Exception as error:  # any failure to connect means the backend is skipped
        return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    finally:
        engine.dispose()


@contextlib.contextmanager
def scratch_database(backend: str, directory: Path) -> Iterator[str]:
    """A fresh empty database for one run, dropped afterwards; yields its URL."""
    name = f"lineagedb_bench_{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        yield f"sqlite:///{directory}/{name}.db"
        return
    admin_url = make_url(server_url(backend))
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if backend == "postgresql":
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            else:
                connection.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            if backend == "postgresql":
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


# ---------------------------------------------------------------- servers


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Server:
    process: subprocess.Popen[str]
    log_file: TextIO
    port: int = 0
    lines: list[str] = field(default_factory=list)


def _pump(server: Server, ready: threading.Event) -> None:
    assert server.process.stdout is not None
    for line in server.process.stdout:
        server.lines.append(line)
        match = LISTENING.search(line)
        if match and not ready.is_set():
            server.port = int(match.group("port"))
            ready.set()
    ready.set()


@contextlib.contextmanager
def running(command: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Start a server that prints ``... listening on HOST:PORT``; SIGTERM it afterwards."""
    log_file = log_path.open("w")
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
        env={**clean_env(), **(env or {})},
        cwd=ROOT,
    )
    server = Server(process, log_file)
    ready = threading.Event()
    threading.Thread(target=_pump, args=(server, ready), daemon=True).start()
    try:
        if not ready.wait(START_TIMEOUT_S) or not server.port:
            raise RuntimeError(f"server did not start: {' '.join(command)}; see {log_path}")
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        log_file.close()


def driver_command(args: list[str], sizes: dict[str, Any]) -> list[str]:
    command = [str(MLMD_PYTHON), str(BENCH / "driver.py"), *args]
    for name in DRIVER_SIZES:
        command += [f"--{name.replace('_', '-')}", str(sizes[name])]
    if "--workload" not in args and sizes.get("workload", "full") != "full":
        command += ["--workload", str(sizes["workload"])]  # e.g. the write stage only
    return command


def run_driver(command: list[str]) -> dict[str, Any]:
    completed = subprocess.run(
        command, capture_output=True, text=True, env=clean_env(), cwd=ROOT, timeout=DRIVER_TIMEOUT_S, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"driver failed ({completed.returncode}): {completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def run_target(target: Target, sizes: dict[str, Any], workdir: Path, count: bool = False) -> dict[str, Any]:
    """One complete workload against one target on a fresh database.

    With ``count`` (LineageDB targets), the server counts its statements per RPC and the
    result carries them under "statements"."""
    rundir = Path(tempfile.mkdtemp(prefix=f"run-{target.key}-", dir=workdir))
    try:
        if target.kind == "inprocess":
            return run_driver(
                driver_command(["--target", "inprocess", "--sqlite-path", str(rundir / "mlmd.db")], sizes)
            )
        if target.kind == "empty":
            cmd = [sys.executable, str(BENCH / "empty_server.py"), "--port", "0"]
            with running(cmd, rundir / "server.log") as server:
                trivial = ["--target", "grpc", "--port", str(server.port), "--workload", "trivial"]
                # the floor is cheap: take 10x the samples the other targets take
                return run_driver(driver_command(trivial, {**sizes, "reps": sizes["reps"] * 10}))
        if target.kind == "passthrough" and target.backend == "sqlite":
            cmd = [str(MLMD_PYTHON), str(BENCH / "passthrough_server.py"), "--sqlite-path", str(rundir / "mlmd.db")]
            with running(cmd, rundir / "server.log") as server:
                return run_driver(driver_command(["--target", "grpc", "--port", str(server.port)], sizes))
        with scratch_database(target.backend, rundir) as url:
            if target.kind == "passthrough":
                cmd = [str(MLMD_PYTHON), str(BENCH / "passthrough_server.py"), "--database-url", url]
                with running(cmd, rundir / "server.log") as server:
                    return run_driver(driver_command(["--target", "grpc", "--port", str(server.port)], sizes))
            # One worker: one client is one connection, so one worker serves it anyway, and
            # LINEAGEDB_COUNT_STATEMENTS is one file that each worker would overwrite as it stops.
            cmd = [str(LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1", "--database", url]
            counts = rundir / "statements.json"
            env = {"LINEAGEDB_COUNT_STATEMENTS": str(counts)} if count else None
            with running(cmd, rundir / "server.log", env) as server:
                result = run_driver(driver_command(["--target", "grpc", "--port", str(server.port)], sizes))
            if count:  # written by the server as it stopped
                result["statements"] = json.loads(counts.read_text()) if counts.exists() else {}
            return result
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


# ---------------------------------------------------------------- statistics


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(rounds: list[dict[str, Any]], targets: Sequence[Target]) -> dict[str, Any]:
    """Per op and target: median/min/max over rounds, and per-round ratios to (b) and (a)."""
    ops: list[str] = []
    for r in rounds:
        for result in r["results"].values():
            for op in result.get("ops", {}):
                if op not in ops:
                    ops.append(op)
    summary: dict[str, Any] = {}
    for op in ops:
        row: dict[str, Any] = {}
        for t in targets:
            values: list[float] = []
            errors: list[str] = []
            items: list[int] = []
            for r in rounds:
                rec = r["results"].get(t.key, {}).get("ops", {}).get(op)
                if rec is None:
                    continue
                if "ms" in rec:
                    values.append(rec["ms"])
                    items.append(rec.get("items", 0))
                else:
                    errors.append(rec["error"])
            cell: dict[str, Any] = {}
            if values:
                cell.update(spread(values), rounds=len(values), items=max(items))
            if errors:
                cell["errors"] = sorted(set(errors))
            for base in (*BASELINES, "same"):
                base_key = t.same_db if base == "same" else base
                if base_key is None:
                    continue
                ratios = []
                for r in rounds:
                    mine = r["results"].get(t.key, {}).get("ops", {}).get(op, {})
                    theirs = r["results"].get(base_key, {}).get("ops", {}).get(op, {})
                    if "ms" in mine and "ms" in theirs and theirs["ms"] > 0:
                        ratios.append(mine["ms"] / theirs["ms"])
                if ratios:
                    cell[f"ratio_{base}"] = spread(ratios)
            if cell:
                row[t.key] = cell
        summary[op] = row
    return summary


# ---------------------------------------------------------------- reporting


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mlmd_versions = subprocess.run(
        [
            str(MLMD_PYTHON),
            "-c",
            "import sys, importlib.metadata as m; print(sys.version.split()[0], m.version('ml-metadata'),"
            " m.version('grpcio'), m.version('protobuf'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    from importlib.metadata import version

    commit = subprocess.run(
        ["git", "--no-optional-locks", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "platform": platform.platform(),
        "python_lineagedb": platform.python_version(),
        "python_mlmd": mlmd_versions[0] if mlmd_versions else "?",
        "ml_metadata": mlmd_versions[1] if len(mlmd_versions) > 1 else "?",
        "grpcio_lineagedb": version("grpcio"),
        "protobuf_lineagedb": version("protobuf"),
        "grpcio_mlmd": mlmd_versions[2] if len(mlmd_versions) > 2 else "?",
        "protobuf_mlmd": mlmd_versions[3] if len(mlmd_versions) > 3 else "?",
        "lineagedb_commit": commit + ("+uncommitted changes" if dirty else ""),
        "loadavg_start": list(os.getloadavg()),
    }


def num(value: float) -> str:
    """Two decimals, or three significant digits below 1."""
    return f"{value:.2f}" if value >= 1 or value == 0 else f"{value:.3g}"


def fmt_ms(cell: dict[str, Any]) -> str:
    if "median" not in cell:
        return "; ".join(cell.get("errors", ["—"]))
    text = num(cell["median"])
    if cell["rounds"] > 1:
        text += f" ({num(cell['min'])}-{num(cell['max'])})"
    if cell.get("errors"):
        text += " [" + "; ".join(cell["errors"]) + "]"
    return text


def fmt_ratio(cell: dict[str, Any] | None, base: str) -> str:
    if not cell:
        return "—"
    r = cell.get(f"ratio_{base}")
    if r is None:
        return "; ".join(cell.get("errors", ["—"]))
    text = f"{num(r['median'])}x"
    if r["min"] != r["max"]:
        text += f" ({num(r['min'])}-{num(r['max'])})"
    return text


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    targets = [Target(**t) for t in doc["targets"]]
    keys = [t.key for t in targets]
    summary: dict[str, Any] = doc["summary"]
    out = [
        "# LineageDB benchmark",
        "",
        f"{m['date']} · mode `{doc['mode']}` · {doc['config']['rounds']} round(s) · "
        f"{m['nproc']} CPU(s), {m['cpu']} · {m['platform']}",
        "",
        f"Python {m['python_lineagedb']} (LineageDB: grpcio {m['grpcio_lineagedb']}, protobuf "
        f"{m['protobuf_lineagedb']}) · Python {m['python_mlmd']} (ml-metadata {m['ml_metadata']}, grpcio "
        f"{m['grpcio_mlmd']}, protobuf {m['protobuf_mlmd']}) · LineageDB {m['lineagedb_commit']} · "
        f"load average {m['loadavg_start'][0]:.2f} at start, {m.get('loadavg_end', [0.0])[0]:.2f} at end",
        "",
        "Sizes: " + ", ".join(f"{k}={v}" for k, v in doc["config"].items() if k != "rounds"),
        "",
        "Targets: " + "; ".join(f"**{t.key}** {t.label}" for t in targets),
        "",
    ]
    for key, reason in doc.get("skipped", {}).items():
        out.append(f"Skipped **{key}**: {reason}")
        out.append("")
    for number, r in enumerate(doc["rounds"], 1):
        for key, result in r["results"].items():
            if "failed" in result:
                lines = result["failed"].strip().splitlines() or ["?"]
                out.append(f"Run of **{key}** in round {number} failed (no timings): `{lines[-1][:300]}`")
                out.append("")
    out += [
        "## Milliseconds per operation",
        "",
        "Median over rounds of each run's median (min-max over rounds). Multi-page reads count all pages;",
        "`get_lineage_subgraph` counts the client's follow-up calls; `items` = artifacts (+ executions for lineage)",
        "returned, or written per call (one value per target where they differ).",
        "",
        "| operation | items | " + " | ".join(keys) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in keys) + " |",
    ]
    for op, row in summary.items():
        counts = {k: c["items"] for k, c in row.items() if "items" in c and k != "floor"}
        if len(set(counts.values())) > 1:  # targets disagree on what they returned: show each
            items = " ".join(f"{k}={v}" for k, v in counts.items())
        else:
            items = str(next(iter(counts.values()), ""))
        cells = [fmt_ms(row[k]) if k in row else "—" for k in keys]
        out.append(f"| {op} | {items} | " + " | ".join(cells) + " |")
    for base in BASELINES:
        others = [k for k in keys if k not in (base, "floor")] + (["floor"] if "floor" in keys else [])
        out += [
            "",
            f"## Ratio to ({base}), taken within each round",
            "",
            "Median of the per-round ratios (min-max). Above 1 means slower than "
            + ("MLMD's store behind the same Python gRPC transport." if base == "b" else "MLMD in-process."),
            "",
            "| operation | " + " | ".join(f"{k} ÷ {base}" for k in others) + " |",
            "| --- | " + " | ".join("---:" for _ in others) + " |",
        ]
        for op, row in summary.items():
            if base not in row or "median" not in row[base]:
                continue
            out.append(f"| {op} | " + " | ".join(fmt_ratio(row.get(k), base) for k in others) + " |")
    same = [t for t in targets if t.same_db is not None and t.same_db in keys]
    if same:
        out += [
            "",
            "## Ratio to MLMD's C++ core on the same database, taken within each round",
            "",
            "Median of the per-round ratios (min-max): LineageDB ÷ the pass-through servicer over MLMD's core on",
            "the same backend (b: SQLite, bp: PostgreSQL, bm: MariaDB), so both pay the same transport and database.",
            "",
            "| operation | " + " | ".join(f"{t.key} ÷ {t.same_db}" for t in same) + " |",
            "| --- | " + " | ".join("---:" for _ in same) + " |",
        ]
        for op, row in summary.items():
            cells = [fmt_ratio(row.get(t.key), "same") for t in same]
            if any(c != "—" for c in cells):
                out.append(f"| {op} | " + " | ".join(cells) + " |")
    out += statements_table(doc.get("statements", {}), targets)
    floor = summary.get("trivial_call", {}).get("floor")
    if floor and "median" in floor:
        out += ["", "## Per-call floor", ""]
        out.append(
            f"Trivial call (`get_artifacts_by_id([])`) against an empty grpcio servicer: {fmt_ms(floor)} ms. "
            "Trivial call on each target, as a multiple of that floor (median of per-round ratios):"
        )
        out.append("")
        for k in keys:
            if k == "floor":
                continue
            ratios = [
                r["results"][k]["ops"]["trivial_call"]["ms"] / r["results"]["floor"]["ops"]["trivial_call"]["ms"]
                for r in doc["rounds"]
                if "ms" in r["results"].get(k, {}).get("ops", {}).get("trivial_call", {})
                and "ms" in r["results"].get("floor", {}).get("ops", {}).get("trivial_call", {})
            ]
            if ratios:
                out.append(f"- {k}: {num(statistics.median(ratios))}x the floor")
    load_rows = []
    for k in keys:
        per_round = [r["results"][k]["load"] for r in doc["rounds"] if "load" in r["results"].get(k, {})]
        if per_round:
            totals = [p["total_s"] for p in per_round]
            rates = [p["artifacts_per_s"] for p in per_round]
            load_rows.append(
                f"| {k} | {per_round[0]['artifacts']} / {per_round[0]['executions']} / {per_round[0]['events']} | "
                f"{statistics.median(totals):.1f} ({min(totals):.1f}-{max(totals):.1f}) | "
                f"{statistics.median(rates):.0f} |"
            )
    if load_rows:
        out += [
            "",
            "## Scale-stage load",
            "",
            "| target | artifacts / executions / events | total s (min-max) | artifacts/s |",
            "| --- | --- | ---: | ---: |",
            *load_rows,
        ]
    out.append("")
    return "\n".join(out)


def statements_table(counts: dict[str, Any], targets: Sequence[Target]) -> list[str]:
    """Statements per RPC per LineageDB target, from the counting runs."""
    keys = [t.key for t in targets if t.key in counts]
    if not keys:
        return []
    methods = sorted({m for k in keys for m in counts[k]})
    out = [
        "",
        "## Statements per RPC (LineageDB)",
        "",
        "From one counting run per target after the timed rounds: every statement the server sent, BEGIN and",
        "COMMIT included (on PostgreSQL and MariaDB each is a network round trip; psycopg2 sends BEGIN before",
        "a transaction's first statement, MariaDB opens it implicitly). `n x k`: n calls sent k statements each.",
        "",
        "| RPC | " + " | ".join(keys) + " |",
        "| --- | " + " | ".join("---" for _ in keys) + " |",
    ]
    for method in methods:
        cells = []
        for k in keys:
            record = counts[k].get(method)
            if record is None:
                cells.append("—")
                continue
            cells.append(", ".join(f"{n} x {k_}" for k_, n in record["per_call"].items()))
        out.append(f"| {method} | " + " | ".join(cells) + " |")
    return out


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smoke run: 1 round, tiny sizes (about a minute)")
    mode.add_argument("--full", action="store_true", help="scale stage of 100k artifacts")
    p.add_argument("--targets", default="a,b,c,d,e,bp,bm,floor", help="comma-separated subset of a,b,c,d,e,bp,bm,floor")
    p.add_argument("--no-count", action="store_true", help="skip the statement-counting runs")
    p.add_argument("--rounds", type=int)
    p.add_argument(
        "--workload",
        choices=("full", "writes", "trivial"),
        default="full",
        help="writes: only the write stage (type, artifact and execution puts; no lineage, reads or scale stage); "
        "trivial: only the trivial call, on an empty database (compare with its value inside the full workload)",
    )
    for name in DRIVER_SIZES:
        p.add_argument(f"--{name.replace('_', '-')}", type=int, dest=name)
    p.add_argument("--out", type=Path, default=BENCH, help="directory for results.json and results.md")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "full" if args.full else "default"
    config = dict(PRESETS[mode])
    for name in ("rounds", *DRIVER_SIZES):
        if getattr(args, name) is not None:
            config[name] = getattr(args, name)
    if not MLMD_PYTHON.exists():
        log(f"official client interpreter not found at {MLMD_PYTHON}: run `make mlmd-venv`")
        return 2
    wanted = {k.strip() for k in args.targets.split(",") if k.strip()}
    targets: list[Target] = []
    skipped: dict[str, str] = {}
    for t in ALL_TARGETS:
        if t.key not in wanted:
            continue
        reason = unreachable(t.backend) if t.kind in ("lineagedb", "passthrough") else None
        if reason:
            skipped[t.key] = reason
            log(f"skipping {t.key} ({t.label}): {reason}")
        else:
            targets.append(t)
    doc: dict[str, Any] = {
        "mode": mode,
        "config": config,
        "machine": machine_info(),
        "targets": [t.__dict__ for t in targets],
        "skipped": skipped,
        "rounds": [],
    }
    sizes: dict[str, Any] = {k: v for k, v in config.items() if k != "rounds"}
    sizes["workload"] = args.workload
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lineagedb-bench-") as work:
        for index in range(config["rounds"]):
            order = targets[index % len(targets) :] + targets[: index % len(targets)]
            log(f"round {index + 1}/{config['rounds']}: order {' '.join(t.key for t in order)}")
            results: dict[str, Any] = {}
            for t in order:
                t0 = time.perf_counter()
                try:
                    results[t.key] = run_target(t, sizes, Path(work))
                except Exception as error:  # a broken target is reported, the others still run
                    results[t.key] = {"failed": str(error)[-2000:], "ops": {}}
                    log(f"  {t.key} FAILED: {str(error)[-500:]}")
                log(f"  {t.key} done in {time.perf_counter() - t0:.1f}s")
            doc["rounds"].append({"order": [t.key for t in order], "results": results})
        # Counting is kept out of the timed runs; the scale stage is cut short, since what a
        # call costs in statements does not depend on how much is stored.
        doc["statements"] = {}
        counted_sizes = {**sizes, "reps": min(sizes["reps"], 3), "scale_n": min(sizes["scale_n"], 2000)}
        for t in [t for t in targets if t.kind == "lineagedb" and not args.no_count]:
            log(f"counting statements on {t.key}")
            try:
                doc["statements"][t.key] = run_target(t, counted_sizes, Path(work), count=True).get("statements", {})
            except Exception as error:  # the timings stand without the counts
                log(f"  counting on {t.key} FAILED: {str(error)[-500:]}")
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    doc["elapsed_s"] = time.perf_counter() - started
    doc["summary"] = summarize(doc["rounds"], targets)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    table = markdown(doc)
    (args.out / "results.md").write_text(table)
    print(table)
    log(f"finished in {doc['elapsed_s']:.0f}s; wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
