"""Archive before purge, seen by the official client: the two TFX-shaped runs are written
through it, run-1 is deleted by `lineagedb retention apply --archive`, and after
`lineagedb import` of that archive the official client reads exactly what it read before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.conftest import REPO_ROOT, _clean_env
from tests.compat.test_two_way import run_dataset
from tests.conftest import start_server, stop_server

pytestmark = pytest.mark.compat

WRITE_PIPELINE = REPO_ROOT / "tests" / "answers" / "write_pipeline.py"
POLICY = "[[rule]]\ncontexts = \"type = 'pipeline_run' AND name = 'run-1'\"\nolder_than_days = 0\n"


def lineagedb(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "lineagedb", *args], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_retention_archive_then_import_reads_the_same_through_the_official_client(
    mlmd_python: Path, database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url)
    try:
        host, port = server.address.rsplit(":", 1)
        written = subprocess.run(
            [str(mlmd_python), str(WRITE_PIPELINE), host, port],
            capture_output=True,
            text=True,
            timeout=300,
            env=_clean_env(),
            check=False,
        )
        assert written.returncode == 0, written.stderr[-3000:]
        run_1 = json.loads(written.stdout.strip().splitlines()[-1])["run-1"]
        store = f"grpc:{host}:{port}"
        before = run_dataset(mlmd_python, "dump", store)

        policy, plan, archives = tmp_path / "policy.toml", tmp_path / "plan.json", tmp_path / "archives"
        policy.write_text(POLICY)
        lineagedb("retention", "plan", "--policy", str(policy), "--output", str(plan), "--database", database_url)
        applied = lineagedb(
            "retention", "apply", "--plan", str(plan), "--archive", str(archives), "--database", database_url
        )
        assert applied.splitlines()[-1] == "done"
        [archive] = archives.glob("retention-*.lineagedb.gz")
        purged = run_dataset(mlmd_python, "dump", store)
        gone = {a["id"] for a in before["artifacts"]} - {a["id"] for a in purged["artifacts"]}
        assert str(run_1["model"]) in gone or run_1["model"] in gone
        assert len(purged["contexts"]) == len(before["contexts"]) - 1

        lineagedb("import", "--database", database_url, str(archive))
        assert run_dataset(mlmd_python, "dump", store) == before
    finally:
        assert stop_server(server) == 0
