"""MLflow's tracking ListArtifacts (GET /api/2.0/mlflow/artifacts/list and under /ajax-api) on a
secured server with a local artifact root: MLflow's answer (root_uri, files named from the
run's root), MLflow's error codes, READ on the run (a viewer lists, another team's caller finds no
run), and a run whose root an experiment's artifact_location points at another experiment's files
cannot list them. The same endpoint over an S3 root is driven by the real client in
test_artifacts_s3.py, and compared with `mlflow server` in tests/mlflow/scenario.py. About 4 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.auth.conftest import AuthServer
from tests.mlflow_registry.test_artifacts_http import ARTIFACTS, start_secured

LIST = "/api/2.0/mlflow/artifacts/list"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthServer, str]]:
    auth, base = start_secured(tmp_path_factory.mktemp("list-artifacts"))
    try:
        yield auth, base
        auth.assert_log_has_no_secret()
    finally:
        auth.close()


def _as(auth: AuthServer, principal: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.token(principal)}"}


def _mlflow(base: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    answer = httpx.post(f"{base}/api/2.0/mlflow/{path}", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _run(base: str, headers: dict[str, str], experiment: str, location: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": experiment, **({"artifact_location": location} if location else {})}
    experiment_id = _mlflow(base, "experiments/create", body, headers)["experiment_id"]
    info: dict[str, Any] = _mlflow(base, "runs/create", {"experiment_id": experiment_id}, headers)["run"]["info"]
    return info


def _list(base: str, headers: dict[str, str], prefix: str = "/api", **params: str) -> tuple[int, Any]:
    answer = httpx.get(f"{base}{prefix}{LIST[4:]}", params=params, headers=headers, timeout=30)
    return answer.status_code, answer.json()


def _upload(base: str, headers: dict[str, str], info: dict[str, Any], path: str, body: bytes) -> None:
    root = info["artifact_uri"].removeprefix("mlflow-artifacts:/")
    answer = httpx.put(f"{base}{ARTIFACTS}/{root}/{path}", content=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text


def test_list_artifacts_answers_root_uri_and_files_as_mlflow(secured: tuple[AuthServer, str]) -> None:
    auth, base = secured
    alice = _as(auth, "alice")
    info = _run(base, alice, "listing")
    run_id, root_uri = info["run_id"], info["artifact_uri"]
    assert root_uri == f"mlflow-artifacts:/{info['experiment_id']}/{run_id}/artifacts"
    assert _list(base, alice, run_id=run_id) == (200, {"root_uri": root_uri})
    _upload(base, alice, info, "weights.bin", b"w" * 1000)
    _upload(base, alice, info, "model/MLmodel", b"flavors: {}\n")
    _upload(base, alice, info, "model/nested/deep.txt", b"deep\n")

    top = {
        "root_uri": root_uri,
        "files": [{"path": "model", "is_dir": True}, {"path": "weights.bin", "is_dir": False, "file_size": 1000}],
    }
    assert _list(base, alice, run_id=run_id) == (200, top)
    assert _list(base, alice, prefix="/ajax-api", run_id=run_id) == (200, top)
    assert _list(base, alice, run_uuid=run_id) == (200, top)  # MLflow's deprecated name
    assert _list(base, alice, run_id=run_id, page_token="anything") == (200, top)  # one page, as MLflow's server
    assert _list(base, alice, run_id=run_id, path="model") == (
        200,
        {
            "root_uri": root_uri,
            "files": [
                {"path": "model/MLmodel", "is_dir": False, "file_size": 12},
                {"path": "model/nested", "is_dir": True},
            ],
        },
    )
    assert _list(base, alice, run_id=run_id, path="model/nested/")[1]["files"] == [
        {"path": "model/nested/deep.txt", "is_dir": False, "file_size": 5}
    ]
    assert _list(base, alice, run_id=run_id, path="weights.bin") == (200, {"root_uri": root_uri})
    assert _list(base, alice, run_id=run_id, path="none") == (200, {"root_uri": root_uri})

    def error(**params: str) -> tuple[int, str]:
        status, body = _list(base, alice, **params)
        return status, body["error_code"]

    assert error(run_id="0" * 32) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error() == (400, "INVALID_PARAMETER_VALUE")
    for bad in ("../other", "model/../..", "/etc", "a//b", "..%2f.."):
        assert error(run_id=run_id, path=bad) == (400, "INVALID_PARAMETER_VALUE"), bad
    unknown = httpx.get(f"{base}/api/2.0/mlflow/artifacts/other", headers=alice, timeout=30)
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, "ENDPOINT_NOT_FOUND")


def test_list_artifacts_needs_read_on_the_run(secured: tuple[AuthServer, str]) -> None:
    auth, base = secured
    alice = _as(auth, "alice")
    info = _run(base, alice, "team-a-run")
    _upload(base, alice, info, "data.csv", b"a,b\n")
    expected = {"root_uri": info["artifact_uri"], "files": [{"path": "data.csv", "is_dir": False, "file_size": 4}]}
    assert _list(base, _as(auth, "carol"), run_id=info["run_id"]) == (200, expected)  # team-a's viewer
    status, body = _list(base, _as(auth, "bob"), run_id=info["run_id"])  # team-b: no such run for him
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    status, body = _list(base, {}, run_id=info["run_id"])
    assert (status, body["error_code"]) == (401, "UNAUTHENTICATED")


def test_a_root_pointing_at_another_experiment_lists_nothing_of_it(secured: tuple[AuthServer, str]) -> None:
    auth, base = secured
    bob = _as(auth, "bob")
    theirs = _run(base, bob, "team-b-secrets")
    _upload(base, bob, theirs, "secret.txt", b"team-b only")
    alice = _as(auth, "alice")
    # alice chooses her experiment's artifact_location: inside team-b's experiment.
    mine = _run(base, alice, "pointing", f"mlflow-artifacts:/{theirs['experiment_id']}")
    assert mine["artifact_uri"] == f"mlflow-artifacts:/{theirs['experiment_id']}/{mine['run_id']}/artifacts"
    status, body = _list(base, alice, run_id=mine["run_id"])
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    # Even at team-b's run directory itself, listed through the experiment's owner check.
    direct = _run(base, alice, "pointing-2", f"mlflow-artifacts:/{theirs['experiment_id']}/{theirs['run_id']}")
    status, body = _list(base, alice, run_id=direct["run_id"])
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    # A root outside this server's store is not listed here (MLflow's server would read that store itself).
    elsewhere = _run(base, alice, "elsewhere", "s3://some-bucket/path")
    status, body = _list(base, alice, run_id=elsewhere["run_id"])
    assert (status, body["error_code"]) == (501, "NOT_IMPLEMENTED")
