"""In-place compatibility with MLMD databases, in both directions, on every backend.

(a) MLMD's own library creates and fills a database; LineageDB serves it, and the
    official client reads from LineageDB exactly what MLMD reads from the database.
(b) LineageDB creates and fills a database (through the official client over
    gRPC); MLMD's own library opens it and reads back the same data.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.compat.conftest import _clean_env
from tests.conftest import start_server, stop_server

pytestmark = pytest.mark.compat

DATASET = Path(__file__).with_name("dataset.py")


def run_dataset(mlmd_python: Path, action: str, store: str) -> Any:
    completed = subprocess.run(
        [str(mlmd_python), str(DATASET), action, store],
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(),
        cwd=DATASET.parent,
        check=False,
    )
    assert completed.returncode == 0, f"dataset.py {action} {store} failed:\n{completed.stderr[-4000:]}"
    return json.loads(completed.stdout) if action == "dump" else None


def mlmd_store_spec(database_url: str) -> str:
    """How dataset.py opens MLMD's in-process store on the same database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:{url.database}"
    scheme = "mysql" if url.get_backend_name() in ("mysql", "mariadb") else "postgresql"
    return f"{scheme}://{url.username}@{url.host}:{url.port}/{url.database}"


def test_lineagedb_serves_a_database_mlmd_created(mlmd_python: Path, database_url: str) -> None:
    mlmd_spec = mlmd_store_spec(database_url)
    run_dataset(mlmd_python, "fill", mlmd_spec)
    expected = run_dataset(mlmd_python, "dump", mlmd_spec)
    server = start_server(database_url)
    try:
        host, port = server.address.split(":")
        actual = run_dataset(mlmd_python, "dump", f"grpc:{host}:{port}")
    finally:
        assert stop_server(server) == 0
    assert actual == expected
    assert len(expected["artifacts"]) == 5 and len(expected["events"]) == 6


def test_mlmd_reads_a_database_lineagedb_created(mlmd_python: Path, database_url: str) -> None:
    server = start_server(database_url)
    try:
        host, port = server.address.split(":")
        run_dataset(mlmd_python, "fill", f"grpc:{host}:{port}")
        expected = run_dataset(mlmd_python, "dump", f"grpc:{host}:{port}")
    finally:
        assert stop_server(server) == 0
    actual = run_dataset(mlmd_python, "dump", mlmd_store_spec(database_url))
    assert actual == expected
    assert len(expected["contexts"]) == 3 and expected["parents"]
