"""The real `mlflow` client (pinned in .venv-mlflow) against LineageDB on every backend: artifacts
(files and a directory, downloaded back byte-identical, listed), a registered model versioned from
a run, aliased, moved between stages, tagged and searched; the provenance of a registered model
version reaches the run and its input dataset. (The registry's error codes are compared with a
real `mlflow server` in tests/mlflow/test_mlflow_client.py, whose scenario covers them.)

Cost: one LineageDB server and one client process per backend (~5-8 s each).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from lineagedb.proto.lineagedb.v1 import lineage_pb2
from lineagedb.proto.lineagedb.v1 import lineage_pb2_grpc as lineage_grpc
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.http.conftest import start_http
from tests.mlflow.test_mlflow_client import MLFLOW_PYTHON, _python

SCENARIO = Path(__file__).with_name("client_scenario.py")
CLIENT_TIMEOUT_S = 240


def run_scenario(tracking_uri: str, workdir: Path, script: Path = SCENARIO) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    done = subprocess.run(
        [str(_python(MLFLOW_PYTHON, "mlflow-venv")), str(script), str(workdir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"scenario failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def lineagedb(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(tracking URI, gRPC address) of a LineageDB server with the HTTP listener."""
    server = start_http(database_url, tmp_path, "--artifact-root", str(tmp_path / "artifacts"))
    try:
        yield server.base, f"127.0.0.1:{server.server.port}"
    finally:
        assert server.stop() == 0


def test_mlflow_client_artifacts_and_registry(lineagedb: tuple[str, str], tmp_path: Path) -> None:
    tracking_uri, grpc_address = lineagedb
    result = run_scenario(tracking_uri, tmp_path / "client")
    run_id = result["run_id"]
    assert str(result["artifact_uri"]).startswith("mlflow-artifacts:/")
    assert result["listed"] == ["model", "weights.bin"]
    assert result["listed_model"] == [["model/MLmodel", False, 12], ["model/nested", True, None]]
    assert result["file_identical"] is True and result["dir_identical"] is True
    assert result["versions"] == ["1", "2"]
    assert result["alias_version"] == "1"
    assert (result["stage_after"], result["v2_stage"]) == ("Production", "Archived")
    assert result["latest_production"] == ["1"]
    assert result["model"] == {
        "description": "second",
        "tags": {"team": "risk"},
        "aliases": {"champion": "1"},
        "latest": [["1", "Production"], ["2", "Archived"]],
    }
    assert result["search_models"] == ["fraud-detector"]
    assert result["search_versions"] == ["2"]
    assert result["search_by_run"] == ["1", "2"]
    assert result["download_uri"] == f"{result['artifact_uri']}/model"
    assert result["model_files"] == ["MLmodel", "nested/deep.txt", "registered_model_meta"]  # the client adds the last
    assert result["register_model"] == ["via-register-model", "1", True]
    assert result["renamed_version_name"] == "fraud-detector-2"
    assert result["after_delete"] == ["1"]

    # One graph: each version's provenance reaches the run, the run's input dataset and its model.
    with grpc.insecure_channel(grpc_address) as channel:
        store = svc_grpc.MetadataStoreServiceStub(channel)
        versions = store.GetArtifactsByType(svc.GetArtifactsByTypeRequest(type_name="mlflow.ModelVersion")).artifacts
        assert sorted(v.properties["model_name"].string_value for v in versions) == [
            "fraud-detector-2",
            "via-register-model",
        ]
        for version in versions:
            closure = lineage_grpc.LineageServiceStub(channel).Provenance(
                lineage_pb2.ClosureRequest(node=lineage_pb2.NodeRef(artifact_id=version.id))
            )
            assert [e.name for e in closure.executions if e.type == "mlflow.Run"] == [run_id]
            inputs = {e.artifact_id for e in closure.events if e.type == mlmd.Event.INPUT}
            assert [a.type for a in closure.artifacts if a.id in inputs] == ["mlflow.Dataset"]
            assert "mlflow.RegisteredModel" in {c.type for c in closure.contexts}
