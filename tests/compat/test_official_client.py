"""The official ml-metadata client must see LineageDB exactly as it sees MLMD.

``scenario.py`` runs one scripted call sequence twice: against MLMD's embedded C++
store (the reference) and against a LineageDB server over gRPC. Every step must
produce the same outcome (status class and normalized response), except steps
listed in ``DOCUMENTED_DEVIATIONS``. The ``presence.*`` steps (and the page summaries'
tokens) also record which fields each response has set, so presence is compared, not
only values.

``presence_probe.py`` sends the same serialized requests to every RPC of MLMD's C++
store and of LineageDB and compares the status and present fields of each answer.
"""

from __future__ import annotations

import difflib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.backends import scratch_database
from tests.compat.conftest import REPO_ROOT, ScenarioRunner, ServerProcess, _clean_env

pytestmark = pytest.mark.compat

Steps = list[dict[str, Any]]

# step name -> why LineageDB deliberately answers differently from MLMD.
DOCUMENTED_DEVIATIONS: dict[str, str] = {}

# MLMD's MySQL store leaves external_id out of types read by name (its SQLite and
# PostgreSQL stores return it); LineageDB returns it on every backend. On MySQL these
# steps are compared without type external_ids.
MYSQL_TYPE_READS_WITHOUT_EXTERNAL_ID = {
    "artifact_type.get_after_evolution",
    "artifact_type.get_version_v1",
    "execution_type.get",
    "context_type.get",
    "presence.artifact_type",
    "presence.artifact_type_v1",
    "presence.execution_type",
    "presence.context_type",
    "presence.context_type_v2",
}


def normalize_for_backend(backend: str, steps: Steps) -> Steps:
    """Remove differences that come from MLMD's own backend-specific behaviour.

    * PostgreSQL: MLMD's list reads have no ORDER BY, so rows come back in heap order
      (an updated row moves); LineageDB orders by id. Lists of nodes or types are
      compared sorted by id.
    * MySQL: see MYSQL_TYPE_READS_WITHOUT_EXTERNAL_ID.
    """
    normalized = json.loads(json.dumps(steps))
    for step in normalized:
        if backend == "postgresql":
            step["result"] = _sorted_by_id(step["result"])
        mysql_type_read = backend == "mysql" and step["step"] in MYSQL_TYPE_READS_WITHOUT_EXTERNAL_ID
        if mysql_type_read and isinstance(step["result"], dict):
            _drop_type_external_id(step["result"])
    return normalized


def _drop_type_external_id(result: dict[str, Any]) -> None:
    """Forget a type's external_id: the type itself, or a recorded response holding one."""
    if "present" not in result:
        result.pop("external_id", None)
        return
    response: dict[str, Any] = result["response"]
    for field, type_message in response.items():  # the one `*_type` field of a Get*Type response
        type_message.pop("external_id", None)
        result["present"] = [path for path in result["present"] if path != f"{field}.external_id"]


def _sorted_by_id(value: Any) -> Any:
    if isinstance(value, list):
        items = [_sorted_by_id(item) for item in value]
        if items and all(isinstance(item, dict) and "id" in item for item in items):
            items.sort(key=lambda item: int(item["id"]))
        return items
    if isinstance(value, dict):
        return {key: _sorted_by_id(item) for key, item in value.items()}
    return value


# api1: type/node/edge writes and plain reads. api2: list options, filter queries,
# PutExecution, PutLineageSubgraph and lineage.
SUITES = [pytest.param("api1", id="api1"), pytest.param("api2", id="api2")]

MAX_REPORTED_MISMATCHES = 10
MAX_DIFF_LINES = 80


@dataclass(frozen=True)
class Mismatch:
    index: int
    name: str
    expected: dict[str, Any] | None
    actual: dict[str, Any] | None

    def render(self) -> str:
        header = f"[{self.index}] {self.name}"
        if self.expected is None or self.actual is None:
            side = "MLMD" if self.expected is None else "LineageDB"
            return f"{header}: step missing on the {side} side"
        if self.expected["code"] != self.actual["code"]:
            header += f": MLMD {self.expected['code']}, LineageDB {self.actual['code']}"
        diff = list(
            difflib.unified_diff(
                _pretty(self.expected).splitlines(),
                _pretty(self.actual).splitlines(),
                fromfile="mlmd",
                tofile="lineagedb",
                lineterm="",
            )
        )
        if len(diff) > MAX_DIFF_LINES:
            diff = [
                *diff[:MAX_DIFF_LINES],
                f"... ({len(diff) - MAX_DIFF_LINES} more diff lines)",
            ]
        return "\n".join([header, *diff])


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)


def compare_steps(expected: Steps, actual: Steps) -> list[Mismatch]:
    """Pair steps by position (names must line up) and list the differing ones."""
    mismatches = []
    for index in range(max(len(expected), len(actual))):
        want = expected[index] if index < len(expected) else None
        got = actual[index] if index < len(actual) else None
        name = (want or got or {}).get("step", "?")
        if want is not None and got is not None and want["step"] != got["step"]:
            mismatches.append(Mismatch(index, f"{want['step']} vs {got['step']}", want, got))
            break  # the sequences diverged; later positions are meaningless
        if want != got:
            mismatches.append(Mismatch(index, name, want, got))
    return mismatches


def format_report(mismatches: list[Mismatch], total: int, artifacts: Path) -> str:
    names = ", ".join(m.name for m in mismatches)
    lines = [
        f"{len(mismatches)} of {total} steps differ from MLMD: {names}",
        f"full outputs: {artifacts}",
        "",
    ]
    for mismatch in mismatches[:MAX_REPORTED_MISMATCHES]:
        lines += [mismatch.render(), ""]
    if len(mismatches) > MAX_REPORTED_MISMATCHES:
        lines.append(f"... and {len(mismatches) - MAX_REPORTED_MISMATCHES} more")
    return "\n".join(lines)


def _save(directory: Path, name: str, steps: Steps) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(_pretty(steps) + "\n")


@pytest.mark.parametrize("compat_suite", SUITES)
def test_scenario_is_deterministic(reference_steps: Steps, reference_steps_rerun: Steps) -> None:
    """Two runs against fresh MLMD stores agree, so any difference below is LineageDB's."""
    mismatches = compare_steps(reference_steps, reference_steps_rerun)
    assert not mismatches, "\n\n".join(m.render() for m in mismatches[:MAX_REPORTED_MISMATCHES])


def test_documented_deviations_name_real_steps(reference_steps: Steps) -> None:
    known = {step["step"] for step in reference_steps}
    stale = sorted(set(DOCUMENTED_DEVIATIONS) - known)
    assert not stale, f"DOCUMENTED_DEVIATIONS lists steps the scenario no longer has: {stale}"


@pytest.mark.parametrize("compat_suite", SUITES)
def test_official_client_sees_mlmd_behavior(
    reference_steps: Steps, lineagedb_steps: Steps, tmp_path: Path, backend: str
) -> None:
    _save(tmp_path, "mlmd.json", reference_steps)
    _save(tmp_path, "lineagedb.json", lineagedb_steps)
    reference_steps = normalize_for_backend(backend, reference_steps)
    lineagedb_steps = normalize_for_backend(backend, lineagedb_steps)
    mismatches = [m for m in compare_steps(reference_steps, lineagedb_steps) if m.name not in DOCUMENTED_DEVIATIONS]
    assert not mismatches, format_report(mismatches, len(reference_steps), tmp_path)


PROBE = Path(__file__).with_name("presence_probe.py")
PROBE_TIMEOUT_S = 600.0
# See MYSQL_TYPE_READS_WITHOUT_EXTERNAL_ID: MLMD's MySQL store drops it from reads by name.
MYSQL_PROBE_IGNORED = [f"full.{kind}_type:{kind}_type.external_id" for kind in ("artifact", "execution", "context")]


def test_every_rpc_sets_the_fields_mlmd_sets(
    scenario_runner: ScenarioRunner, lineagedb_server: ServerProcess, backend: str, tmp_path: Path
) -> None:
    """The probe's requests, empty and non-empty answers of every RPC: same status, same present fields."""
    command = [str(scenario_runner.python), str(PROBE)]
    command += ["--lineagedb-address", f"{lineagedb_server.host}:{lineagedb_server.port}"]
    if backend == "mysql":
        for entry in MYSQL_PROBE_IGNORED:
            command += ["--ignore", entry]
    with scratch_database(backend, str(tmp_path)) as mlmd_url:
        if backend != "sqlite":
            command += ["--mlmd-database", mlmd_url]
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            env=_clean_env(),
            cwd=REPO_ROOT,
            check=False,
        )
    assert completed.returncode == 0, f"{completed.stdout[-6000:]}\n--- stderr ---\n{completed.stderr[-3000:]}"
