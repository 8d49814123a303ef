"""Fixtures for the compatibility tier: the official MLMD client against LineageDB.

The official ``ml-metadata`` wheel pins protobuf < 5 and cannot share an interpreter
with LineageDB, so it lives in its own virtualenv (``make mlmd-venv`` creates
``.venv-mlmd``). Tests never import it; they run ``scenario.py`` with that
interpreter as a subprocess and compare the JSON it prints.

Hooks for later tiers:

* ``lineagedb_database_url`` decides which database the server under test uses.
  Parametrize it indirectly with URL templates (``{tmp_path}`` is substituted), or
  override the fixture in a nested ``conftest.py``, to run the same comparison on
  other backends. The scenario expects an empty store.
* ``LINEAGEDB_MLMD_PYTHON`` points at another interpreter that has ``ml-metadata``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.backends import scratch_database

REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("scenario.py")
MLMD_PYTHON_ENV = "LINEAGEDB_MLMD_PYTHON"
DEFAULT_MLMD_PYTHON = REPO_ROOT / ".venv-mlmd" / "bin" / "python"
SERVER_START_TIMEOUT_S = 30.0
SERVER_STOP_TIMEOUT_S = 15.0
SCENARIO_TIMEOUT_S = 600.0
LISTENING = re.compile(r"listening on (?P<host>[^\s:]+):(?P<port>\d+)")

Steps = list[dict[str, Any]]


def pytest_configure(config: pytest.Config) -> None:
    # Also belongs in [tool.pytest.ini_options] markers; registering here keeps this
    # directory usable with --strict-markers before that lands.
    config.addinivalue_line(
        "markers",
        "compat: compares LineageDB with the official ml-metadata client (needs .venv-mlmd)",
    )


# ----------------------------------------------------------------- official client


def _clean_env() -> dict[str, str]:
    """Environment for the official client: nothing from LineageDB's interpreter leaks in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class ScenarioRunner:
    """Runs ``scenario.py`` under the official client's interpreter."""

    python: Path
    _references: dict[str, Steps] = field(default_factory=dict, compare=False, repr=False)

    def run(self, *args: str, suite: str = "api1", backend: str = "sqlite") -> Steps:
        command = [str(self.python), str(SCENARIO), "--suite", suite, *args]
        if backend != "sqlite":
            command.append("--portable-values")
        try:
            completed = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=SCENARIO_TIMEOUT_S,
                env=_clean_env(),
                cwd=REPO_ROOT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"scenario timed out after {SCENARIO_TIMEOUT_S}s: {' '.join(command)}\n{exc.stderr!r}")
        if completed.returncode != 0:
            pytest.fail(
                f"scenario exited with {completed.returncode}: {' '.join(command)}\n"
                f"--- stderr (tail) ---\n{completed.stderr[-4000:]}"
            )
        steps: Steps = json.loads(completed.stdout)
        return steps

    def inprocess(self, suite: str = "api1", backend: str = "sqlite") -> Steps:
        if backend == "sqlite":
            return self.run("--target", "inprocess", suite=suite)
        # MLMD's own store on a scratch database of the same server as LineageDB's.
        with tempfile.TemporaryDirectory() as tmp, scratch_database(backend, tmp) as url:
            return self.run("--target", "inprocess", "--mlmd-database", url, suite=suite, backend=backend)

    def reference(self, suite: str = "api1", backend: str = "sqlite") -> Steps:
        """The in-process MLMD run of ``suite`` on ``backend``, computed once per session."""
        key = f"{suite}/{backend}"
        if key not in self._references:
            self._references[key] = self.inprocess(suite, backend)
        return self._references[key]

    def grpc(self, host: str, port: int, suite: str = "api1", backend: str = "sqlite") -> Steps:
        return self.run("--target", "grpc", "--host", host, "--port", str(port), suite=suite, backend=backend)


@pytest.fixture(scope="session")
def mlmd_python() -> Path:
    """The interpreter of the official-client virtualenv (skip locally if absent, fail on CI)."""
    python = Path(os.environ.get(MLMD_PYTHON_ENV) or DEFAULT_MLMD_PYTHON)
    if python.exists():
        return python
    reason = f"official ml-metadata client not found at {python}; run `make mlmd-venv` (or set {MLMD_PYTHON_ENV})"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def scenario_runner(mlmd_python: Path) -> ScenarioRunner:
    return ScenarioRunner(mlmd_python)


@pytest.fixture
def compat_suite() -> str:
    """Scenario suite to compare; parametrize ``compat_suite`` directly to pick others."""
    return "api1"


@pytest.fixture
def reference_steps(scenario_runner: ScenarioRunner, compat_suite: str, backend: str) -> Steps:
    """The scenario as MLMD's own C++ store answers it on the same kind of database."""
    return scenario_runner.reference(compat_suite, backend)


@pytest.fixture
def reference_steps_rerun(scenario_runner: ScenarioRunner, compat_suite: str, backend: str) -> Steps:
    """A second reference run on another fresh store (determinism check)."""
    return scenario_runner.inprocess(compat_suite, backend)


# ------------------------------------------------------------------ LineageDB server


@pytest.fixture
def lineagedb_database_url(database_url: str) -> str:
    """Database URL for the server under test: a fresh scratch database of the backend under test."""
    return database_url


@dataclass
class ServerProcess:
    """A ``lineagedb serve`` subprocess and everything it printed."""

    process: subprocess.Popen[str]
    database_url: str
    host: str = "127.0.0.1"
    port: int = 0
    output: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.output)


def _pump_output(server: ServerProcess, ready: threading.Event) -> None:
    """Collect the server's output; flag readiness once it announces its port."""
    assert server.process.stdout is not None
    for line in server.process.stdout:
        server.output.append(line)
        match = LISTENING.search(line)
        if match and not ready.is_set():
            server.port = int(match.group("port"))
            ready.set()
    ready.set()  # process ended: let the waiter notice


def _stop(server: ServerProcess) -> None:
    if server.process.poll() is not None:
        return
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=SERVER_STOP_TIMEOUT_S)


@pytest.fixture
def lineagedb_server(lineagedb_database_url: str) -> Iterator[ServerProcess]:
    """Start LineageDB on a free loopback port; stop it with SIGTERM afterwards."""
    command = [
        sys.executable,
        "-m",
        "lineagedb",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--database",
        lineagedb_database_url,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    server = ServerProcess(process=process, database_url=lineagedb_database_url)
    ready = threading.Event()
    pump = threading.Thread(target=_pump_output, args=(server, ready), daemon=True)
    pump.start()
    try:
        if not ready.wait(SERVER_START_TIMEOUT_S) or server.port == 0:
            state = "exited" if process.poll() is not None else "did not announce its port"
            pytest.fail(
                f"lineagedb server {state} within {SERVER_START_TIMEOUT_S}s: {' '.join(command)}\n"
                f"--- server output ---\n{server.log()[-4000:]}"
            )
        yield server
    finally:
        _stop(server)
        pump.join(timeout=SERVER_STOP_TIMEOUT_S)


@pytest.fixture
def lineagedb_steps(
    scenario_runner: ScenarioRunner, lineagedb_server: ServerProcess, compat_suite: str, backend: str
) -> Steps:
    """The scenario as the official client sees LineageDB over gRPC."""
    return scenario_runner.grpc(lineagedb_server.host, lineagedb_server.port, compat_suite, backend)
