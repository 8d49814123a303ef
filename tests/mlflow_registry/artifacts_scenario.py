"""Artifacts only, run by the REAL `mlflow` client (.venv-mlflow): `python artifacts_scenario.py <workdir>`
with MLFLOW_TRACKING_URI set; prints one JSON object on its last stdout line.

A run logs a file and a directory (with a nested directory), lists them with the client
(MlflowClient.list_artifacts with and without a path) and with the tracking API's ListArtifacts
(GET /api/2.0/mlflow/artifacts/list, through the client's own REST helper), downloads them back,
deletes the directory through the client's artifact repository and lists again. Never imported
by pytest (tests/mlflow_registry/test_artifacts_s3.py runs it).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import mlflow
from client_scenario import make_files, same_files  # this directory: run as a script
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request

warnings.filterwarnings("ignore")


def list_endpoint(run_id: str, path: str | None) -> Any:
    """The tracking API's ListArtifacts as the client's REST layer calls it."""
    params = {"run_id": run_id, **({"path": path} if path is not None else {})}
    creds = get_default_host_creds(mlflow.get_tracking_uri())
    answer = http_request(creds, "/api/2.0/mlflow/artifacts/list", "GET", params=params)
    return {"status": answer.status_code, "body": answer.json()}


def main(workdir: Path) -> dict[str, Any]:
    client = MlflowClient()
    out: dict[str, Any] = {}
    mlflow.set_experiment("s3-artifacts")
    files, blob = make_files(workdir)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(files / "weights.bin"))
        mlflow.log_artifacts(str(files / "model"), artifact_path="model")
    run_id = run.info.run_id
    out["run_id"] = run_id
    out["experiment_id"] = run.info.experiment_id
    out["artifact_uri"] = run.info.artifact_uri
    out["listed"] = sorted((f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id))
    out["listed_model"] = sorted((f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id, "model"))
    out["endpoint_root"] = list_endpoint(run_id, None)
    out["endpoint_model"] = list_endpoint(run_id, "model")
    out["endpoint_nested"] = list_endpoint(run_id, "model/nested")
    out["endpoint_traversal"] = list_endpoint(run_id, "../other")

    back = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(workdir / "download")))
    out["file_identical"], out["dir_identical"] = same_files(files, blob, back)
    get_artifact_repository(run.info.artifact_uri).delete_artifacts("model")
    out["after_delete"] = sorted(f.path for f in client.list_artifacts(run_id))
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
