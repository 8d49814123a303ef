"""MLMD's own client test suite, run against LineageDB over gRPC.

The suite ships inside the ml-metadata wheel (metadata_store_test.py and its
conftest.py) and targets a server with --use_grpc_backend. Against MLMD's own
C++ store behind gRPC it gives 102 passed, 4 failed, 2 xfailed: the 4 failures
are bugs in the test file (three gRPC-only tests call `_get_metadata_store()`
without its argument, one writes `self.self`). We copy the file, fix exactly
those lines, and require 106 passed, 2 xfailed, 0 failed.

`test_connection_config_with_grpc_client_timeout_sec_errors` uses a zero-second
client deadline and is timing-dependent even against MLMD (about one run in
four fails), so it runs separately with retries instead of shaping the server
around it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.compat.conftest import ServerProcess, _clean_env

pytestmark = pytest.mark.compat

EXPECTED_PASSED = 106
EXPECTED_XFAILED = 2
FLAKY_TEST = "test_connection_config_with_grpc_client_timeout_sec_errors"
FLAKY_ATTEMPTS = 4
SUITE_TIMEOUT_S = 900
# (broken text, fixed text, how many occurrences the upstream file has)
PATCHES = (
    ("_get_metadata_store(grpc_", "_get_metadata_store(self.cli_args, grpc_", 3),
    ("self.self.cli_args", "self.cli_args", 1),
)


def _suite_sources(mlmd_python: Path) -> Path:
    site = subprocess.run(
        [str(mlmd_python), "-c", "import ml_metadata.metadata_store as m, os; print(os.path.dirname(m.__file__))"],
        capture_output=True,
        text=True,
        check=True,
        env=_clean_env(),
    )
    return Path(site.stdout.strip())


def _patched_suite(mlmd_python: Path, directory: Path) -> Path:
    source = _suite_sources(mlmd_python)
    shutil.copy(source / "conftest.py", directory / "conftest.py")
    text = (source / "metadata_store_test.py").read_text()
    for broken, fixed, count in PATCHES:
        assert text.count(broken) == count, f"upstream test file changed: expected {count}x {broken!r}"
        text = text.replace(broken, fixed)
    target = directory / "metadata_store_test.py"
    target.write_text(text)
    return target


def _run(mlmd_python: Path, suite: Path, server: ServerProcess, *selection: str) -> tuple[dict[str, int], str]:
    command = [
        str(mlmd_python),
        "-m",
        "pytest",
        str(suite),
        "--use_grpc_backend",
        "--grpc_host",
        server.host,
        "--grpc_port",
        str(server.port),
        "-q",
        "-p",
        "no:cacheprovider",
        *selection,
    ]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_S,
        cwd=suite.parent,
        env=_clean_env(),
        check=False,
    )
    output = completed.stdout + completed.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|xfailed|error|errors|skipped)", summary)}
    return counts, output


def test_mlmd_client_suite_passes_against_lineagedb(
    mlmd_python: Path, lineagedb_server: ServerProcess, tmp_path: Path
) -> None:
    suite = _patched_suite(mlmd_python, tmp_path)
    counts, output = _run(
        mlmd_python, suite, lineagedb_server, "--deselect", f"metadata_store_test.py::MetadataStoreTest::{FLAKY_TEST}"
    )
    failures = "\n".join(line for line in output.splitlines() if line.startswith(("FAILED", "ERROR")))
    assert counts.get("failed", 0) == 0 and counts.get("error", 0) + counts.get("errors", 0) == 0, (
        f"MLMD's client suite failed against LineageDB:\n{failures}\n--- tail ---\n{output[-6000:]}"
    )
    assert counts.get("passed") == EXPECTED_PASSED - 1, output[-3000:]
    assert counts.get("xfailed") == EXPECTED_XFAILED, output[-3000:]

    for _attempt in range(FLAKY_ATTEMPTS):
        flaky_counts, flaky_output = _run(mlmd_python, suite, lineagedb_server, "-k", FLAKY_TEST)
        if flaky_counts.get("passed") == 1:
            break
    else:
        pytest.fail(f"{FLAKY_TEST} failed {FLAKY_ATTEMPTS} times:\n{flaky_output[-3000:]}")
