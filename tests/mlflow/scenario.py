"""One MLflow tracking session, run with the pinned `mlflow` client (.venv-mlflow), never imported
by the tests: `python scenario.py <tracking uri>` prints one JSON document of what the client saw,
normalized so two servers' answers compare equal when they behave alike (run names instead of run
ids, experiment ids left out, times dropped).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput
from mlflow.exceptions import MlflowException
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request

SEARCHES: list[tuple[str, list[str]]] = [
    ("", ["attributes.run_name ASC"]),
    ("metrics.loss < 0.4", ["metrics.loss ASC"]),
    ("metrics.acc >= 0.8", ["metrics.acc DESC"]),
    ("params.lr = '0.01'", ["attributes.run_name"]),
    ("params.optimizer != 'adam'", ["params.lr DESC"]),
    ("tags.team = 'vision'", ["attributes.start_time ASC"]),
    ("tags.team LIKE 'vis%'", ["attributes.run_name DESC"]),
    ("tags.team ILIKE 'VIS%'", ["attributes.run_name"]),
    ("attributes.status = 'FAILED'", []),
    ("attributes.run_name = 'child'", []),
    ("params.lr = '0.01' and metrics.acc > 0.5", ["metrics.acc ASC"]),
    ("", ["params.lr ASC", "attributes.run_name DESC"]),
    ("", ["metrics.acc DESC", "attributes.run_name ASC"]),
    ("", ["tags.team ASC", "attributes.run_name ASC"]),
    # Datasets (alpha: tiny/training; beta: tiny/eval and big/training; gamma: big without a context).
    ("datasets.name = 'tiny'", ["attributes.run_name"]),
    ("datasets.name != 'tiny'", ["attributes.run_name"]),
    ("datasets.name LIKE 'ti%'", ["attributes.run_name"]),
    ("datasets.name LIKE 'TI%'", ["attributes.run_name"]),
    ("datasets.name ILIKE 'TI%'", ["attributes.run_name"]),
    ("datasets.name IN ('big', 'none')", ["attributes.run_name"]),
    ("datasets.name NOT IN ('tiny')", ["attributes.run_name"]),
    ("datasets.digest LIKE '%'", ["attributes.run_name"]),
    ("datasets.context = 'training'", ["attributes.run_name"]),
    ("datasets.context = 'eval'", ["attributes.run_name"]),
    ("datasets.context != 'training'", ["attributes.run_name"]),
    ("dataset.context LIKE 'train%'", ["attributes.run_name DESC"]),
    ("datasets.context ILIKE 'EVAL'", ["attributes.run_name"]),
    ("datasets.context IN ('eval', 'test')", ["attributes.run_name"]),
    ("datasets.context NOT IN ('training')", ["attributes.run_name"]),
    ("datasets.name = 'tiny' AND datasets.context = 'eval'", ["attributes.run_name"]),
    ("datasets.name = 'big' and params.lr = '0.01'", ["metrics.acc DESC"]),
]
BAD_SEARCHES = [
    "metrics.loss < 'x'",
    "params.lr = 1",
    "params.lr = '1' OR params.lr = '2'",
    "foo.bar = '1'",
    "datasets.source = 'x'",
    "datasets.name > 'x'",
    "datasets.name = 1",
]


def error_code(call: Any) -> str:
    try:
        call()
    except MlflowException as error:
        return str(error.error_code)
    return "OK"


def names(runs: list[Any]) -> list[str]:
    return [run.info.run_name for run in runs]


def main(uri: str, suffix: str) -> dict[str, Any]:
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    result: dict[str, Any] = {}
    experiment_id = client.create_experiment(f"exp-{suffix}", tags={"owner": "tests"})
    client.set_experiment_tag(experiment_id, "stage", "smoke")
    experiment = client.get_experiment_by_name(f"exp-{suffix}")
    result["experiment"] = {"name": experiment.name, "tags": experiment.tags, "stage": experiment.lifecycle_stage}

    specs = [
        ("alpha", "0.01", "adam", "vision", [0.9, 0.5, 0.3], 0.85, "FINISHED"),
        ("beta", "0.1", "sgd", "vision", [1.2, 0.8, 0.6], 0.7, "FINISHED"),
        ("gamma", "0.01", "sgd", "nlp", [0.7, 0.35, 0.2], 0.92, "FAILED"),
        ("delta", "0.5", "adam", None, [2.0, 1.5, 1.1], 0.4, "FINISHED"),
    ]
    run_ids: dict[str, str] = {}
    for index, (name, lr, optimizer, team, losses, acc, status) in enumerate(specs):
        with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
            run_ids[name] = run.info.run_id
            mlflow.log_params({"lr": lr, "optimizer": optimizer})
            for step, loss in enumerate(losses):
                mlflow.log_metric("loss", loss, step=step, timestamp=1_700_000_000_000 + index * 10 + step)
            mlflow.log_metric("acc", acc)
            if team is not None:
                mlflow.set_tag("team", team)
            if name == "alpha":
                dataset = mlflow.data.from_numpy(np.arange(12, dtype=np.float64).reshape(4, 3), name="tiny")
                mlflow.log_input(dataset, context="training")
                with mlflow.start_run(experiment_id=experiment_id, run_name="child", nested=True) as child:
                    run_ids["child"] = child.info.run_id
                    mlflow.log_metric("acc", 0.5)
            if name == "beta":
                tiny = mlflow.data.from_numpy(np.arange(12, dtype=np.float64).reshape(4, 3), name="tiny")
                big = mlflow.data.from_numpy(np.arange(40, dtype=np.float64).reshape(8, 5), name="big")
                mlflow.log_input(tiny, context="eval")
                mlflow.log_input(big, context="training")
            if name == "gamma":
                mlflow.log_input(mlflow.data.from_numpy(np.arange(40, dtype=np.float64).reshape(8, 5), name="big"))
            if status != "FINISHED":
                mlflow.end_run(status=status)
    batch_metrics = [mlflow.entities.Metric("batch", float(i), 1_700_000_000_000 + i, i) for i in range(50)]
    client.log_batch(run_ids["delta"], metrics=batch_metrics)
    client.delete_tag(run_ids["beta"], "team")
    client.set_tag(run_ids["beta"], "team", "vision")

    alpha = client.get_run(run_ids["alpha"])
    result["alpha"] = {
        "params": alpha.data.params,
        "metrics": alpha.data.metrics,
        "tags": {k: v for k, v in alpha.data.tags.items() if not k.startswith("mlflow.source")},
        "status": alpha.info.status,
        "datasets": [
            {"name": d.dataset.name, "digest": d.dataset.digest, "tags": {t.key: t.value for t in d.tags}}
            for d in alpha.inputs.dataset_inputs
        ],
    }
    child = client.get_run(run_ids["child"])
    result["child_parent_is_alpha"] = child.data.tags.get("mlflow.parentRunId") == run_ids["alpha"]
    result["loss_history"] = [(m.step, m.value) for m in client.get_metric_history(run_ids["alpha"], "loss")]
    result["batch_history_len"] = len(client.get_metric_history(run_ids["delta"], "batch"))

    digest = alpha.inputs.dataset_inputs[0].dataset.digest
    searches = [*SEARCHES, (f"datasets.digest = '{digest}'", ["attributes.run_name"])]
    result["searches"] = [
        {"filter": f, "order_by": o, "runs": names(client.search_runs([experiment_id], f, order_by=o))}
        for f, o in searches
    ]
    page = client.search_runs([experiment_id], "", order_by=["attributes.run_name ASC"], max_results=2)
    second = client.search_runs(
        [experiment_id], "", order_by=["attributes.run_name ASC"], max_results=2, page_token=page.token
    )
    result["pages"] = [names(page), names(second)]
    result["bad_searches"] = {f: error_code(lambda f=f: client.search_runs([experiment_id], f)) for f in BAD_SEARCHES}

    client.delete_run(run_ids["delta"])
    result["after_delete"] = names(client.search_runs([experiment_id], "", order_by=["attributes.run_name"]))
    result["deleted_only"] = names(client.search_runs([experiment_id], "", run_view_type=2))
    client.restore_run(run_ids["delta"])
    result["after_restore"] = len(client.search_runs([experiment_id], ""))

    missing_run = "0" * 32
    result["errors"] = {
        "get_missing_experiment": error_code(lambda: client.get_experiment("987654")),
        "get_missing_run": error_code(lambda: client.get_run(missing_run)),
        "log_param_missing_run": error_code(lambda: client.log_param(missing_run, "a", "1")),
        "duplicate_experiment": error_code(lambda: client.create_experiment(f"exp-{suffix}")),
        "change_param": error_code(lambda: client.log_param(run_ids["alpha"], "lr", "0.02")),
        "long_param": error_code(lambda: client.log_param(run_ids["alpha"], "long", "x" * 6001)),
        "bad_metric_key": error_code(lambda: client.log_metric(run_ids["alpha"], "bad\x01key", 1.0)),
        "too_many_metrics": error_code(
            lambda: client.log_batch(
                run_ids["alpha"], metrics=[mlflow.entities.Metric("m", 1.0, 1, i) for i in range(1001)]
            )
        ),
        "delete_missing_tag": error_code(lambda: client.delete_tag(run_ids["alpha"], "nope")),
    }
    result["long_param_len"] = len(client.get_run(run_ids["alpha"]).data.params.get("long", ""))
    result["missing_by_name"] = client.get_experiment_by_name(f"nope-{suffix}") is None

    # A logged model (MLflow 3) as the run's output, for the provenance check.
    model = client.create_logged_model(experiment_id, name="model", source_run_id=run_ids["alpha"])
    client.log_outputs(run_ids["alpha"], [LoggedModelOutput(model.model_id, step=0)])
    client.finalize_logged_model(model.model_id, "READY")
    fetched = client.get_logged_model(model.model_id)
    result["model"] = {
        "name": fetched.name,
        "status": str(fetched.status),
        "source_run": fetched.source_run_id == run_ids["alpha"],
    }
    outputs = client.get_run(run_ids["alpha"]).outputs
    result["alpha_outputs"] = [o.model_id == model.model_id for o in outputs.model_outputs] if outputs else []
    result["artifacts"] = artifacts(client, uri, run_ids["alpha"])
    result["ids"] = {"alpha": run_ids["alpha"], "model": model.model_id, "experiment": experiment_id}
    result["registry_errors"] = registry_errors(client, suffix)
    return result


def artifacts(client: MlflowClient, uri: str, run_id: str) -> dict[str, Any]:
    """A file and a directory logged to a run, then the tracking API's ListArtifacts (GET
    artifacts/list, through the client's REST helper): its files and error codes. root_uri differs
    by design (a local directory for the reference server, mlflow-artifacts: for LineageDB), so
    only whether it is the run's root is kept."""
    with tempfile.TemporaryDirectory() as scratch:
        files = Path(scratch)
        (files / "model" / "nested").mkdir(parents=True)
        (files / "weights.bin").write_bytes(b"w" * 1000)
        (files / "model" / "MLmodel").write_text("flavors: {}\n")
        (files / "model" / "nested" / "deep.txt").write_text("deep\n")
        client.log_artifact(run_id, str(files / "weights.bin"))
        client.log_artifacts(run_id, str(files / "model"), "model")
    creds = get_default_host_creds(uri)

    def listing(prefix: str = "/api", **params: str) -> Any:
        answer = http_request(creds, f"{prefix}/2.0/mlflow/artifacts/list", "GET", params=params)
        body = answer.json()
        if answer.status_code != 200:
            return [answer.status_code, body.get("error_code")]
        return {"root_is_the_runs": body["root_uri"].endswith(f"/{run_id}/artifacts"), "files": body.get("files")}

    return {
        "root": listing(run_id=run_id),
        "ajax_root": listing("/ajax-api", run_id=run_id),
        "model": listing(run_id=run_id, path="model"),
        "nested": listing(run_id=run_id, path="model/nested"),
        "file": listing(run_id=run_id, path="weights.bin"),
        "missing_path": listing(run_id=run_id, path="nothing-here"),
        "missing_run": listing(run_id="0" * 32),
        "no_run_id": listing(),
        "traversal": listing(run_id=run_id, path="../other"),
        "encoded_traversal": listing(run_id=run_id, path="model/%2e%2e/%2e%2e"),
    }


def registry_errors(client: MlflowClient, suffix: str) -> dict[str, str]:
    """The model registry's error codes (a registered model with one version, then mistakes)."""
    name = f"reg-{suffix}"
    client.create_registered_model(name)
    client.create_model_version(name, "s3://bucket/model", run_id=None)
    return {
        "get_missing_model": error_code(lambda: client.get_registered_model("no-such-model")),
        "create_duplicate_model": error_code(lambda: client.create_registered_model(name)),
        "get_missing_version": error_code(lambda: client.get_model_version(name, "99")),
        "get_version_of_missing_model": error_code(lambda: client.get_model_version("no-such-model", "1")),
        "missing_alias": error_code(lambda: client.get_model_version_by_alias(name, "nope")),
        "alias_to_missing_version": error_code(lambda: client.set_registered_model_alias(name, "a", "99")),
        "delete_missing_model": error_code(lambda: client.delete_registered_model("no-such-model")),
        "rename_missing_model": error_code(lambda: client.rename_registered_model("no-such-model", "x")),
        "version_for_missing_model": error_code(lambda: client.create_model_version("no-such-model", "s3://b/m")),
        "bad_stage": error_code(lambda: client.transition_model_version_stage(name, "1", "Nowhere")),
    }


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    print(json.dumps(_finite(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "a")), sort_keys=True))
