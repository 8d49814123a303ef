"""MLflow's proxied artifact endpoints over HTTP: bytes in and out, paths that stay in the root,
and the same authentication and namespaces as every other call.

Runs and experiments are made through the JSON API as the tracking API stores them (an
`mlflow.Experiment` context, an `mlflow.Run` execution named by its run_id): these tests cover
the artifact component alone; tests/mlflow_registry/test_mlflow_client.py drives it with the real
`mlflow` client. About 4 s (two servers on SQLite).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audit.conftest import KEY
from tests.auth.conftest import AuthServer, make_callers, start_auth_server
from tests.auth.test_grpc_auth import POLICY, PRINCIPALS
from tests.http.conftest import MLMD, HttpServer, start_http, wait_http_port

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
RUN_ID = "0123456789abcdef0123456789abcdef"


def _json(base: str, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    answer = httpx.post(
        f"{base}/api/v1/{path}", json=body, headers={"Content-Type": "application/json", **(headers or {})}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def make_run(base: str, headers: dict[str, str] | None = None, admin: dict[str, str] | None = None) -> str:
    """An experiment with one run (as the tracking API stores them); returns the experiment id."""
    types = admin if admin is not None else headers
    experiment_type = _json(base, f"{MLMD}/PutContextType", {"context_type": {"name": "mlflow.Experiment"}}, types)
    run_type = _json(
        base,
        f"{MLMD}/PutExecutionType",
        {"execution_type": {"name": "mlflow.Run", "properties": {"experiment_id": "STRING"}}},
        types,
    )
    (experiment,) = _json(
        base,
        f"{MLMD}/PutContexts",
        {"contexts": [{"type_id": experiment_type["type_id"], "name": "exp"}]},
        headers,
    )["context_ids"]
    run = {
        "type_id": run_type["type_id"],
        "name": RUN_ID,
        "properties": {"experiment_id": {"string_value": experiment}},
    }
    _json(base, f"{MLMD}/PutExecutions", {"executions": [run]}, headers)
    return str(experiment)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpServer, Path, str]]:
    directory = tmp_path_factory.mktemp("artifacts")
    root = directory / "root"
    server = start_http(f"sqlite:///{directory}/a.db", directory, "--artifact-root", str(root))
    try:
        yield server, root, make_run(server.base)
    finally:
        assert server.stop() == 0


def test_upload_download_list_delete_streams_bytes_unchanged(open_server: tuple[HttpServer, Path, str]) -> None:
    server, root, experiment = open_server
    base = f"{server.base}{ARTIFACTS}/{experiment}/{RUN_ID}/artifacts"
    payload = os.urandom(3 * 1024 * 1024 + 7)

    put = httpx.put(f"{base}/model/weights.bin", content=streamed(payload), timeout=30)
    assert (put.status_code, put.json()) == (200, {})
    assert httpx.put(f"{base}/model/MLmodel", content=b"flavor: x\n", timeout=30).status_code == 200
    assert httpx.put(f"{base}/page.html", content=b"<script>alert(1)</script>", timeout=30).status_code == 200
    stored = root / experiment / RUN_ID / "artifacts" / "model" / "weights.bin"
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(payload).digest()

    with httpx.stream("GET", f"{base}/model/weights.bin", timeout=30) as answer:
        assert answer.status_code == 200
        assert b"".join(answer.iter_bytes()) == payload
    html = httpx.get(f"{base}/page.html", timeout=30)
    assert html.headers["content-type"].startswith("text/plain")
    assert html.headers["x-content-type-options"] == "nosniff" and html.headers["content-security-policy"] == "sandbox"

    listing = httpx.get(f"{server.base}{ARTIFACTS}", params={"path": f"{experiment}/{RUN_ID}/artifacts"}, timeout=30)
    assert listing.json() == {
        "files": [{"path": "model", "is_dir": True}, {"path": "page.html", "is_dir": False, "file_size": 25}]
    }
    inner = httpx.get(
        f"{server.base}{ARTIFACTS}", params={"path": f"{experiment}/{RUN_ID}/artifacts/model"}, timeout=30
    ).json()
    assert [(f["path"], f.get("file_size")) for f in inner["files"]] == [("MLmodel", 10), ("weights.bin", len(payload))]
    empty = httpx.get(f"{server.base}{ARTIFACTS}", params={"path": f"{experiment}/{RUN_ID}/artifacts/none"}, timeout=30)
    assert empty.json() == {}

    assert httpx.delete(f"{base}/model", timeout=30).json() == {}
    assert not stored.exists()
    missing = httpx.get(f"{base}/model/weights.bin", timeout=30)
    assert (missing.status_code, missing.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_paths_outside_the_root_are_refused(open_server: tuple[HttpServer, Path, str], tmp_path: Path) -> None:
    server, root, experiment = open_server
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    run_dir = root / experiment / RUN_ID / "artifacts"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "escape").symlink_to(tmp_path)
    prefix = f"{server.base}{ARTIFACTS}"
    for path in (
        f"{experiment}/{RUN_ID}/artifacts/%2e%2e/%2e%2e/%2e%2e/x",
        f"{experiment}/{RUN_ID}/artifacts/..%2f..%2fx",
        f"{experiment}/{RUN_ID}/artifacts/a%5cb",
        "%2fetc/passwd",
        f"{experiment}/{RUN_ID}/artifacts/escape/secret.txt",
    ):
        for method in ("GET", "PUT", "DELETE"):
            answer = httpx.request(method, f"{prefix}/{path}", content=b"x" if method == "PUT" else None, timeout=30)
            assert (answer.status_code, answer.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), (method, path)
    for listed in ("../x", f"{experiment}/{RUN_ID}/artifacts/escape", "/etc"):
        answer = httpx.get(prefix, params={"path": listed}, timeout=30)
        assert answer.status_code == 400, listed
    assert secret.read_text() == "outside"
    assert not (tmp_path / "x").exists()
    # An experiment that does not exist owns nothing (other paths under an experiment are its own,
    # as MLflow 3 keeps logged models under <experiment_id>/models/).
    for path in (f"999/{RUN_ID}/artifacts/a", "nope/a"):
        answer = httpx.put(f"{prefix}/{path}", content=b"x", timeout=30)
        assert (answer.status_code, answer.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST"), path


def start_secured(directory: Path) -> tuple[AuthServer, str]:
    """A server with tokens, the three-namespace policy, the audit log and an artifact root
    in `directory`; and its HTTP base URL."""
    key_file = directory / "audit.key"
    key_file.write_bytes(KEY)
    auth = start_auth_server(
        directory,
        make_callers(PRINCIPALS),
        POLICY,
        ("team-a", "team-b", "shared"),
        ["--http-port", "0", "--artifact-root", str(directory / "root"), "--audit-key-file", str(key_file)],
    )
    return auth, f"http://127.0.0.1:{wait_http_port(auth.server)}"


def streamed(payload: bytes) -> Iterator[bytes]:
    """`payload` as a streamed request body (no Content-Length), in 256 KiB chunks."""
    for start in range(0, len(payload), 256 * 1024):
        yield payload[start : start + 256 * 1024]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthServer, str, str]]:
    auth, base = start_secured(tmp_path_factory.mktemp("artifacts-auth"))
    try:
        experiment = make_run(base, _as(auth, "alice"), admin=_as(auth, "root"))
        yield auth, base, experiment
        auth.assert_log_has_no_secret()
    finally:
        auth.close()


def call_audit(auth: AuthServer, base: str, method: str) -> list[dict[str, Any]]:
    """The audit records of `method`, as the cluster admin reads them."""
    answer = httpx.post(
        f"{base}/api/v1/lineagedb.v1.AuditService/QueryAudit",
        json={"method": method, "max_results": 100},
        headers=_as(auth, "root"),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json().get("records", [])
    return records


def _as(auth: AuthServer, principal: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.token(principal)}"}


def test_artifacts_follow_the_runs_namespace(secured: tuple[AuthServer, str, str]) -> None:
    assert_artifacts_follow_the_runs_namespace(*secured)


def assert_artifacts_follow_the_runs_namespace(auth: AuthServer, base: str, experiment: str) -> None:
    """alice (team-a's editor) writes, carol (its viewer) reads, bob (team-b) sees nothing; audited.
    Also run on an S3 artifact root (test_artifacts_s3.py)."""
    url = f"{base}{ARTIFACTS}/{experiment}/{RUN_ID}/artifacts/data.csv"
    nobody = httpx.put(url, content=b"a,b\n", timeout=30)
    assert (nobody.status_code, nobody.json()["error_code"]) == (401, "UNAUTHENTICATED")
    assert httpx.put(url, content=b"a,b\n", headers=_as(auth, "alice"), timeout=30).status_code == 200
    # MLflow's Basic credentials (MLFLOW_TRACKING_USERNAME/PASSWORD, a token as the password) work alike.
    assert httpx.get(url, auth=("carol", auth.token("carol")), timeout=30).content == b"a,b\n"
    assert httpx.get(url, auth=("carol", "not-a-token"), timeout=30).status_code == 401
    # carol views team-a: she reads, she may not write or delete
    assert httpx.get(url, headers=_as(auth, "carol"), timeout=30).content == b"a,b\n"
    for method in ("PUT", "DELETE"):
        refused = httpx.request(method, url, content=b"x" if method == "PUT" else None, headers=_as(auth, "carol"))
        assert (refused.status_code, refused.json()["error_code"]) == (403, "PERMISSION_DENIED"), method
    # bob's namespaces do not hold the run: it does not exist for him
    for method in ("GET", "PUT", "DELETE"):
        hidden = httpx.request(method, url, content=b"x" if method == "PUT" else None, headers=_as(auth, "bob"))
        assert (hidden.status_code, hidden.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST"), method
    listed = httpx.get(
        f"{base}{ARTIFACTS}", params={"path": f"{experiment}/{RUN_ID}/artifacts"}, headers=_as(auth, "bob")
    )
    assert listed.status_code == 404
    assert httpx.get(url, headers=_as(auth, "alice"), timeout=30).content == b"a,b\n"
    # The audit log has alice's upload (its path, on the run) and carol's refused one.
    audit = call_audit(auth, base, "/lineagedb.v1.MlflowArtifactsService/AuthorizeWrite")
    outcomes = [(r["principal"], r["outcome"]) for r in audit]
    assert ("alice", "OK") in outcomes and ("carol", "PERMISSION_DENIED") in outcomes
    written = json.loads(next(r["detail_json"] for r in audit if r["outcome"] == "OK"))
    assert f"{experiment}/{RUN_ID}/artifacts/data.csv" in json.dumps(written)


def test_registered_models_follow_namespaces(secured: tuple[AuthServer, str, str]) -> None:
    auth, base, _ = secured
    registry = f"{base}/api/v1/lineagedb.v1.MlflowRegistryService"

    def call(method: str, body: dict[str, Any], principal: str) -> httpx.Response:
        return httpx.post(f"{registry}/{method}", json=body, headers=_as(auth, principal), timeout=30)

    assert call("CreateRegisteredModel", {"name": "team-a-model"}, "alice").status_code == 200
    assert call("CreateModelVersion", {"name": "team-a-model", "source": "s3://b/m"}, "alice").status_code == 200
    assert call("GetRegisteredModel", {"name": "team-a-model"}, "carol").json()["registered_model"]["name"] == (
        "team-a-model"
    )
    assert call("SetRegisteredModelTag", {"name": "team-a-model", "key": "k", "value": "v"}, "carol").status_code == 403
    assert call("DeleteRegisteredModel", {"name": "team-a-model"}, "carol").status_code == 403
    assert call("GetRegisteredModel", {"name": "team-a-model"}, "bob").status_code == 404
    assert call("SearchRegisteredModels", {}, "bob").json() == {}
    assert call("SearchModelVersions", {}, "bob").json() == {}
    assert [m["name"] for m in call("SearchRegisteredModels", {}, "carol").json()["registered_models"]] == [
        "team-a-model"
    ]
    # A deleted version is named in the audit record of its deletion.
    assert call("DeleteModelVersion", {"name": "team-a-model", "version": "1"}, "alice").status_code == 200
    records = call_audit(auth, base, "/lineagedb.v1.MlflowRegistryService/DeleteModelVersion")
    assert [(r["principal"], r["outcome"]) for r in records] == [("alice", "OK")]
    assert json.loads(records[0]["detail_json"])["deleted"]["artifact"]
