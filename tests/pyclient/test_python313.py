"""The ml_metadata drop-in on Python 3.13 (.venv-client313: this repository's client, its server
extra and clients/python-ml-metadata; no official wheel, which stops at 3.11):

* MLMD's own client suite (metadata_store_test.py from the official wheel, patched as in
  tests/compat/test_mlmd_suite.py) against a LineageDB server, and embedded (the suite's
  non-gRPC mode opens `ConnectionConfig(sqlite={})`, an in-memory database in this process);
* the official-client scenario (tests/compat/scenario.py) through the drop-in, over gRPC and
  embedded, compared step by step with MLMD's own in-process store (the reference).

Cost: about 60 s in all (the embedded suite is half of it: 108 fresh in-memory stores).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import SCENARIO, ScenarioRunner, _clean_env
from tests.compat.test_mlmd_suite import EXPECTED_PASSED, EXPECTED_XFAILED, _patched_suite, _suite_sources
from tests.compat.test_official_client import compare_steps, format_report
from tests.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.compat

ROOT = Path(__file__).resolve().parents[2]
PYTHON313 = ROOT / ".venv-client313" / "bin" / "python"
SUITE_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def python313() -> Path:
    if PYTHON313.exists():
        return PYTHON313
    reason = f"{PYTHON313} is missing; run `make client-venvs`"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("client313")
    running = start_server(f"sqlite:///{directory / 'server.db'}")
    yield running
    stop_server(running)


def _drop_in_env() -> dict[str, str]:
    env = _clean_env()
    env.pop("LINEAGEDB_DATABASE_URL", None)
    return env


def _run_suite(python313: Path, suite: Path, *args: str) -> tuple[dict[str, int], str]:
    completed = subprocess.run(
        [str(python313), "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_S,
        cwd=suite.parent,
        env=_drop_in_env(),
        check=False,
    )
    output = completed.stdout + completed.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|xfailed|error|errors|skipped)", summary)}
    return counts, output


def test_the_drop_in_is_this_repositorys_client(python313: Path) -> None:
    script = (
        "import sys, ml_metadata, lineagedb.client as c; from ml_metadata.proto import metadata_store_pb2 as p; "
        "from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as g; from ml_metadata import errors; "
        "import google.protobuf as pb; "
        "assert ml_metadata.MetadataStore is c.MetadataStore and p is g; "
        "assert errors.NotFoundError is c.errors.NotFoundError; "
        "print(sys.version_info[:2], pb.__version__)"
    )
    completed = subprocess.run([str(python313), "-c", script], capture_output=True, text=True, env=_drop_in_env())
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("(3, 13)"), completed.stdout


@pytest.mark.parametrize("mode", ["grpc", "embedded"])
def test_mlmd_client_suite_passes_on_python313(
    mode: str, python313: Path, mlmd_python: Path, server: LiveServer, tmp_path: Path
) -> None:
    suite = _patched_suite(mlmd_python, tmp_path)
    args: list[str] = []
    if mode == "grpc":
        host, port = server.address.rsplit(":", 1)
        args = ["--use_grpc_backend", "--grpc_host", host, "--grpc_port", port]
    counts, output = _run_suite(python313, suite, *args)
    failures = "\n".join(line for line in output.splitlines() if line.startswith(("FAILED", "ERROR")))
    assert counts.get("failed", 0) == 0 and counts.get("error", 0) + counts.get("errors", 0) == 0, (
        f"MLMD's client suite failed with the drop-in ({mode}):\n{failures}\n--- tail ---\n{output[-4000:]}"
    )
    assert counts.get("passed") == EXPECTED_PASSED, output[-3000:]
    assert counts.get("xfailed") == EXPECTED_XFAILED, output[-3000:]


def test_mlmd_types_suite_passes_on_python313(python313: Path, mlmd_python: Path, tmp_path: Path) -> None:
    """The official wheel's own tests of the system base types (mlmd.Dataset, mlmd.Train, ...)."""
    suite = tmp_path / "mlmd_types_test.py"
    shutil.copy(_suite_sources(mlmd_python) / "mlmd_types_test.py", suite)
    counts, output = _run_suite(python313, suite)
    assert counts.get("passed") == 2 and not counts.get("failed"), output[-3000:]


def _scenario_313(python313: Path, suite: str, *target: str) -> list[dict[str, object]]:
    completed = subprocess.run(
        [str(python313), str(SCENARIO), "--suite", suite, *target],
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_S,
        env=_drop_in_env(),
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    steps: list[dict[str, object]] = json.loads(completed.stdout)
    return steps


@pytest.mark.parametrize("suite", ["api1", "api2"])
@pytest.mark.parametrize("mode", ["grpc", "embedded"])
def test_official_client_scenario_through_the_drop_in(
    mode: str, suite: str, python313: Path, scenario_runner: ScenarioRunner, tmp_path: Path
) -> None:
    """Each run needs a store that starts empty: a server of its own for gRPC."""
    if mode == "grpc":
        running = start_server(f"sqlite:///{tmp_path / 'scenario.db'}")
        try:
            host, port = running.address.rsplit(":", 1)
            steps = _scenario_313(python313, suite, "--target", "grpc", "--host", host, "--port", port)
        finally:
            stop_server(running)
    else:
        steps = _scenario_313(python313, suite, "--target", "inprocess")
    reference = scenario_runner.reference(suite)
    mismatches = compare_steps(reference, steps)  # type: ignore[arg-type]
    (tmp_path / "mlmd.json").write_text(json.dumps(reference, indent=1))
    (tmp_path / "drop_in.json").write_text(json.dumps(steps, indent=1))
    assert not mismatches, format_report(mismatches, len(reference), tmp_path)


SURFACE = Path(__file__).with_name("api_surface.py")
# What the drop-in has beyond the official client.
ADDED_METHODS = {"close"}
ADDED_PROTO = {"PostgreSQLDatabaseConfig"}


def _surface(python: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [str(python), str(SURFACE)], capture_output=True, text=True, env=_drop_in_env(), cwd=ROOT, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    surface: dict[str, Any] = json.loads(completed.stdout)
    return surface


def test_public_api_is_the_official_clients(python313: Path, mlmd_python: Path) -> None:
    """Every name, method, parameter (name, kind, default), error class and status code of the
    official client, read by introspection under both; ours only adds keyword-only options."""
    official, ours = _surface(mlmd_python), _surface(python313)
    assert set(ours["methods"]) - set(official["methods"]) == ADDED_METHODS
    assert {name: ours["methods"][name] for name in official["methods"]} == official["methods"]
    assert set(ours["proto"]) - set(official["proto"]) == ADDED_PROTO
    assert set(official["proto"]) <= set(ours["proto"])
    init = ours["init"]
    assert init[: len(official["init"])] == official["init"]
    assert all(kind == "KEYWORD_ONLY" for _, kind, _ in init[len(official["init"]) :])
    for key in ("ml_metadata", "properties", "errors", "error_classes", "list_options", "order_by", "downgrade_schema"):
        assert ours[key] == official[key], key
