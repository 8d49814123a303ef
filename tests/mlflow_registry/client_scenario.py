"""The model-registry and artifact scenario, run by the REAL `mlflow` client (.venv-mlflow).

Never imported by pytest: tests/mlflow_registry/test_mlflow_client.py runs it as
`python client_scenario.py <workdir>` with MLFLOW_TRACKING_URI set, and reads one JSON object
from its last stdout line: an experiment and a run with an input dataset, files and a directory
logged as artifacts and downloaded back, a registered model with two versions from the run, an
alias, stage transitions, tags and searches. (The registry's error codes are compared with a real
`mlflow server` by tests/mlflow/scenario.py, which runs against both.)
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import mlflow
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.tracking import MlflowClient

warnings.filterwarnings("ignore")


def make_files(workdir: Path) -> tuple[Path, bytes]:
    """A file of 2 MB and a directory `model` with a nested directory, under workdir/upload."""
    files = workdir / "upload"
    (files / "model" / "nested").mkdir(parents=True)
    blob = os.urandom(2 * 1024 * 1024 + 3)
    (files / "weights.bin").write_bytes(blob)
    (files / "model" / "MLmodel").write_text("flavors: {}\n")
    (files / "model" / "nested" / "deep.txt").write_text("deep\n")
    return files, blob


def same_files(files: Path, blob: bytes, back: Path) -> tuple[bool, bool]:
    """Whether the downloaded file and directory are byte-identical to those of make_files."""
    file_identical = hashlib.sha256((back / "weights.bin").read_bytes()).digest() == hashlib.sha256(blob).digest()
    comparison = filecmp.dircmp(files / "model", back / "model")
    dir_identical = (
        not comparison.diff_files
        and not comparison.left_only
        and not comparison.right_only
        and filecmp.cmp(files / "model" / "nested" / "deep.txt", back / "model" / "nested" / "deep.txt", shallow=False)
    )
    return file_identical, dir_identical


def full(workdir: Path) -> dict[str, Any]:
    client = MlflowClient()
    out: dict[str, Any] = {}
    mlflow.set_experiment("registry-scenario")
    files, blob = make_files(workdir)
    with mlflow.start_run() as run:
        mlflow.log_input(
            MetaDataset(source=HTTPDatasetSource("https://example.com/train.csv"), name="train", digest="d1g35t"),
            context="training",
        )
        mlflow.log_artifact(str(files / "weights.bin"))
        mlflow.log_artifacts(str(files / "model"), artifact_path="model")
    run_id = run.info.run_id
    out["run_id"] = run_id
    out["artifact_uri"] = run.info.artifact_uri
    out["listed"] = sorted(f.path for f in client.list_artifacts(run_id))
    # A subdirectory through the artifact repository itself (MlflowClient.list_artifacts(run_id, path)
    # first looks for a logged model of that name, a tracking-API matter).
    listed_model = mlflow.artifacts.list_artifacts(artifact_uri=f"{run.info.artifact_uri}/model")
    out["listed_model"] = sorted((f.path, f.is_dir, f.file_size) for f in listed_model)
    back = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(workdir / "download")))
    out["file_identical"], out["dir_identical"] = same_files(files, blob, back)

    name = "fraud-detector"
    client.create_registered_model(name, tags={"team": "risk"}, description="first")
    v1 = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id, tags={"k": "v"})
    v2 = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    out["versions"] = [v1.version, v2.version]
    client.set_registered_model_alias(name, "champion", v1.version)
    out["alias_version"] = client.get_model_version_by_alias(name, "champion").version
    client.transition_model_version_stage(name, v1.version, "Staging")
    client.transition_model_version_stage(name, v2.version, "Production")
    moved = client.transition_model_version_stage(name, v1.version, "Production", archive_existing_versions=True)
    out["stage_after"] = moved.current_stage
    out["v2_stage"] = client.get_model_version(name, v2.version).current_stage
    out["latest_production"] = [v.version for v in client.get_latest_versions(name, stages=["Production"])]
    client.update_registered_model(name, description="second")
    client.set_model_version_tag(name, v2.version, "checked", "yes")
    model = client.get_registered_model(name)
    out["model"] = {
        "description": model.description,
        "tags": model.tags,
        "aliases": model.aliases,
        "latest": sorted((v.version, v.current_stage) for v in model.latest_versions),
    }
    out["search_models"] = [m.name for m in client.search_registered_models(filter_string="name LIKE 'fraud%'")]
    out["search_versions"] = sorted(
        v.version for v in client.search_model_versions(f"name = '{name}' AND tags.checked = 'yes'")
    )
    out["search_by_run"] = sorted(v.version for v in client.search_model_versions(f"run_id = '{run_id}'"))
    out["download_uri"] = client.get_model_version_download_uri(name, v1.version)
    model_files = Path(mlflow.artifacts.download_artifacts(f"models:/{name}@champion", dst_path=str(workdir / "mv")))
    out["model_files"] = sorted(str(p.relative_to(model_files)) for p in model_files.rglob("*") if p.is_file())
    # The usual one-liner: registers (creating the model) from the run's artifact path.
    registered = mlflow.register_model(f"runs:/{run_id}/model", "via-register-model")
    out["register_model"] = [registered.name, registered.version, registered.run_id == run_id]
    client.rename_registered_model(name, "fraud-detector-2")
    out["renamed_version_name"] = client.get_model_version("fraud-detector-2", v1.version).name
    client.delete_model_version("fraud-detector-2", v2.version)
    out["after_delete"] = sorted(v.version for v in client.search_model_versions("name = 'fraud-detector-2'"))
    return out


def main() -> None:
    print(json.dumps(full(Path(sys.argv[1]))))


if __name__ == "__main__":
    main()
