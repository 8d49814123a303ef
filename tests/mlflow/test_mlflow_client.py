"""The real `mlflow` client (pinned in requirements-mlflow.txt, run from .venv-mlflow) against
LineageDB's HTTP listener on SQLite, PostgreSQL and MariaDB, compared with MLflow's own
`mlflow server` on a scratch SQLite database running the same scenario (scenario.py): the
same runs, params, metrics, tags, nested runs, datasets and logged models; the same answers to
search_runs filters and orderings; the same error codes.

The same data is then read through the official ml-metadata client (.venv-mlmd) as contexts,
executions, artifacts and events, and LineageService.Provenance of the run's logged model
includes the run and its input dataset.

Cost: one `mlflow server` per worker (~10 s to start and run the scenario), then per backend one
LineageDB server and one scenario run (~8 s) plus one ml-metadata client run (~2 s).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from lineagedb.proto.lineagedb.v1 import lineage_pb2, lineage_pb2_grpc
from tests.http.conftest import start_http

REPO = Path(__file__).resolve().parents[2]
MLFLOW_PYTHON = Path(os.environ.get("LINEAGEDB_MLFLOW_PYTHON", REPO / ".venv-mlflow" / "bin" / "python"))
MLMD_PYTHON = Path(os.environ.get("LINEAGEDB_MLMD_PYTHON", REPO / ".venv-mlmd" / "bin" / "python"))
SCENARIO = Path(__file__).with_name("scenario.py")
TIMEOUT_S = 300

MLMD_READ = """
import json, sys
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
config = metadata_store_pb2.MetadataStoreClientConfig(host="127.0.0.1", port=int(sys.argv[1]))
store = metadata_store.MetadataStore(config)
runs = store.get_executions_by_type("mlflow.Run")
experiments = store.get_contexts_by_type("mlflow.Experiment")
datasets = store.get_artifacts_by_type("mlflow.Dataset")
models = store.get_artifacts_by_type("mlflow.LoggedModel")
events = store.get_events_by_execution_ids([r.id for r in runs])
alpha = [r for r in runs if r.properties["run_name"].string_value == "alpha"][0]
print(json.dumps({
    "runs": sorted(r.properties["run_name"].string_value for r in runs),
    "experiments": sorted(c.name for c in experiments),
    "alpha_params": {k: v.string_value for k, v in alpha.custom_properties.items() if k.startswith("param.")},
    "alpha_state": metadata_store_pb2.Execution.State.Name(alpha.last_known_state),
    "alpha_contexts": [c.name for c in store.get_contexts_by_execution(alpha.id)],
    "datasets": [(a.properties["name"].string_value, a.properties["digest"].string_value) for a in datasets],
    "alpha_events": sorted(
        metadata_store_pb2.Event.Type.Name(e.type) for e in events if e.execution_id == alpha.id
    ),
    "model_ids": {a.name: a.id for a in models},
    "alpha_id": alpha.id,
    "dataset_ids": {a.properties["name"].string_value: a.id for a in datasets},
}))
"""


def _python(path: Path, make_target: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make {make_target}` (make test does)")
    return path


def run_scenario(uri: str, suffix: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({"MLFLOW_TRACKING_URI": uri, "GIT_PYTHON_REFRESH": "quiet", "PYTHONUNBUFFERED": "1"})
    completed = subprocess.run(
        [str(_python(MLFLOW_PYTHON, "mlflow-venv")), str(SCENARIO), uri, suffix],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-5000:]
    # The client prints "View run ..." lines of its own; the answer is the last line.
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def mlflow_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The scenario's answers from MLflow's own server on a scratch SQLite database: made once
    per test session (pytest-xdist workers share it through this session's temporary root, the
    first to need it runs the server, ~90 s under load, the others wait for its answer)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return _reference(tmp_path_factory.mktemp("mlflow-server"))
    shared = tmp_path_factory.getbasetemp().parent  # this session's root, common to its workers
    with (shared / "mlflow-reference.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = shared / "mlflow-reference.json"
        if cached.exists():
            found: dict[str, Any] = json.loads(cached.read_text())
            return found
        result = _reference(tmp_path_factory.mktemp("mlflow-server"))
        cached.write_text(json.dumps(result))
        return result


def _reference(directory: Path) -> dict[str, Any]:
    port = _free_port()
    mlflow = _python(MLFLOW_PYTHON, "mlflow-venv").parent / "mlflow"
    log = (directory / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{directory / 'mlflow.db'}",
            "--default-artifact-root",
            str(directory / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=directory,
    )
    try:
        uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (directory / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.3)
        return run_scenario(uri, "x")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key != "ids"}


def test_mlflow_client_sees_what_mlflow_server_answers(
    database_url: str, tmp_path: Path, mlflow_reference: dict[str, Any]
) -> None:
    server = start_http(database_url, tmp_path)
    try:
        ours = run_scenario(server.base, "x")
        assert _comparable(ours) == _comparable(mlflow_reference)
        # Spot checks that the comparison compared something.
        assert ours["alpha"]["params"] == {"lr": "0.01", "optimizer": "adam"}
        assert ours["loss_history"] == [[0, 0.9], [1, 0.5], [2, 0.3]]
        assert ours["errors"]["get_missing_run"] == "RESOURCE_DOES_NOT_EXIST"
        assert ours["registry_errors"]["get_missing_version"] == "RESOURCE_DOES_NOT_EXIST"
        assert ours["artifacts"]["model"]["files"] == [
            {"path": "model/MLmodel", "is_dir": False, "file_size": 12},
            {"path": "model/nested", "is_dir": True},
        ]
        assert ours["artifacts"]["traversal"] == [400, "INVALID_PARAMETER_VALUE"]
        assert ours["alpha"]["datasets"][0]["tags"] == {"mlflow.data.context": "training"}
        by_filter = {search["filter"]: search["runs"] for search in ours["searches"]}
        assert by_filter["datasets.context = 'eval'"] == ["beta"]
        assert by_filter["datasets.name != 'tiny'"] == ["beta", "gamma"]

        mlmd = _mlmd_view(server.server.port)
        assert mlmd["runs"] == ["alpha", "beta", "child", "delta", "gamma"]
        assert "exp-x" in mlmd["experiments"]
        assert mlmd["alpha_params"]["param.lr"] == "0.01" and mlmd["alpha_params"]["param.optimizer"] == "adam"
        assert mlmd["alpha_state"] == "COMPLETE"
        assert mlmd["alpha_contexts"] == ["exp-x"]
        # One artifact per (experiment, name, digest): alpha's and beta's "tiny" is one.
        assert sorted(name for name, _ in mlmd["datasets"]) == ["big", "tiny"]
        assert mlmd["alpha_events"] == ["INPUT", "OUTPUT"]

        model_artifact = mlmd["model_ids"][ours["ids"]["model"]]
        with grpc.insecure_channel(server.server.address) as channel:
            provenance = lineage_pb2_grpc.LineageServiceStub(channel).Provenance(
                lineage_pb2.ClosureRequest(node=lineage_pb2.NodeRef(artifact_id=model_artifact)), timeout=30
            )
        assert mlmd["alpha_id"] in {e.id for e in provenance.executions}
        upstream = {a.id for a in provenance.artifacts}
        assert mlmd["dataset_ids"]["tiny"] in upstream and mlmd["dataset_ids"]["big"] not in upstream
    finally:
        server.stop()


def _mlmd_view(grpc_port: int) -> dict[str, Any]:
    completed = subprocess.run(
        [str(_python(MLMD_PYTHON, "mlmd-venv")), "-c", MLMD_READ, str(grpc_port)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-5000:]
    view: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return view


def test_error_answers_are_mlflow_json(tmp_path: Path) -> None:
    """Error bodies and HTTP statuses as MLflow's server sends them (no client in between)."""
    server = start_http(f"sqlite:///{tmp_path / 'errors.db'}", tmp_path)
    try:
        base = f"{server.base}/api/2.0/mlflow"
        missing = httpx.get(f"{base}/runs/get", params={"run_id": "0" * 32}, timeout=30)
        assert missing.status_code == 404
        assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        bad = httpx.post(f"{base}/runs/search", json={"experiment_ids": ["0"], "filter": "metrics.a > 'x'"}, timeout=30)
        assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        created = httpx.post(f"{base}/experiments/create", json={"name": "e"}, timeout=30)
        assert created.status_code == 200 and created.json()["experiment_id"].isdigit()
        again = httpx.post(f"{base}/experiments/create", json={"name": "e"}, timeout=30)
        assert again.status_code == 400 and again.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
        unknown = httpx.get(f"{base}/no/such/endpoint", timeout=30)
        assert unknown.status_code == 404 and unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        run = httpx.post(f"{base}/runs/create", json={"experiment_id": "0", "start_time": 5}, timeout=30).json()
        assert run["run"]["info"]["start_time"] == 5  # 64-bit integers as JSON numbers, as MLflow answers
        ajax = httpx.get(
            f"{server.base}/ajax-api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}, timeout=30
        )
        assert ajax.status_code == 200 and ajax.json()["experiment"]["name"] == "Default"
    finally:
        server.stop()
