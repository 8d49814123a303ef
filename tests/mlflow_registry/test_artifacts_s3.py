"""MLflow's proxied artifacts in an S3 bucket (`--artifact-root s3://bucket/prefix`), against a real
S3-compatible server (moto's, a separate process; tests/mlflow_registry/s3.py).

The real `mlflow` client logs a file and a directory and gets them back byte-identical, lists and
deletes them; a streamed 12 MiB upload becomes a multipart upload; paths outside the root, other
namespaces and read-only callers are refused as with a directory; a missing bucket, refused
credentials or an unreachable endpoint stop the server at startup with the reason and without
the credentials. About 15 s (one moto server, three LineageDB servers on SQLite, one client run).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.audit.conftest import KEY
from tests.auth.conftest import AuthServer, make_callers, start_auth_server
from tests.auth.test_grpc_auth import POLICY, PRINCIPALS
from tests.http.conftest import HttpServer, start_http, wait_http_port
from tests.mlflow_registry.s3 import S3Server, moto_server
from tests.mlflow_registry.test_artifacts_http import (
    ARTIFACTS,
    RUN_ID,
    assert_artifacts_follow_the_runs_namespace,
    make_run,
    streamed,
)
from tests.mlflow_registry.test_mlflow_client import run_scenario
from tests.ops.conftest import free_port, run_to_exit

SCENARIO = Path(__file__).with_name("artifacts_scenario.py")
BUCKET = "lineagedb-artifacts"
PREFIX = "team/mlflow"
EXIT_CONFIG = 2


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        server.bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def s3_server(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpServer, str]]:
    directory = tmp_path_factory.mktemp("s3-root")
    server = start_http(
        f"sqlite:///{directory}/a.db", directory, "--artifact-root", f"s3://{BUCKET}/{PREFIX}", env=s3.env()
    )
    try:
        yield server, make_run(server.base)
        assert s3.secret_key not in server.log()
    finally:
        assert server.stop() == 0


def test_s3_upload_download_list_delete_streams_bytes_unchanged(
    s3: S3Server, s3_server: tuple[HttpServer, str]
) -> None:
    server, experiment = s3_server
    run_path = f"{experiment}/{RUN_ID}/artifacts"
    base = f"{server.base}{ARTIFACTS}/{run_path}"
    payload = os.urandom(12 * 1024 * 1024 + 7)  # more than one 8 MiB part: a multipart upload

    put = httpx.put(f"{base}/model/weights.bin", content=streamed(payload), timeout=60)
    assert (put.status_code, put.json()) == (200, {})
    assert httpx.put(f"{base}/model/MLmodel", content=b"flavor: x\n", timeout=30).status_code == 200
    assert httpx.put(f"{base}/page.html", content=b"<script>alert(1)</script>", timeout=30).status_code == 200
    key = f"{PREFIX}/{run_path}/model/weights.bin"
    assert s3.keys(BUCKET, f"{PREFIX}/{run_path}/") == [
        f"{PREFIX}/{run_path}/model/MLmodel",
        key,
        f"{PREFIX}/{run_path}/page.html",
    ]
    stored = s3.client().get_object(Bucket=BUCKET, Key=key)
    assert stored["ETag"].strip('"').endswith("-2")  # two parts
    assert hashlib.sha256(stored["Body"].read()).digest() == hashlib.sha256(payload).digest()

    with httpx.stream("GET", f"{base}/model/weights.bin", timeout=60) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-length"] == str(len(payload))
        assert b"".join(answer.iter_bytes()) == payload
    html = httpx.get(f"{base}/page.html", timeout=30)
    assert html.headers["content-type"].startswith("text/plain")
    assert html.headers["x-content-type-options"] == "nosniff" and html.headers["content-security-policy"] == "sandbox"
    assert html.headers["content-disposition"] == 'attachment; filename="page.html"'

    listing = httpx.get(f"{server.base}{ARTIFACTS}", params={"path": run_path}, timeout=30)
    assert listing.json() == {
        "files": [{"path": "model", "is_dir": True}, {"path": "page.html", "is_dir": False, "file_size": 25}]
    }
    inner = httpx.get(f"{server.base}{ARTIFACTS}", params={"path": f"{run_path}/model"}, timeout=30).json()
    assert [(f["path"], f.get("file_size")) for f in inner["files"]] == [("MLmodel", 10), ("weights.bin", len(payload))]
    assert httpx.get(f"{server.base}{ARTIFACTS}", params={"path": f"{run_path}/none"}, timeout=30).json() == {}
    # A file lists as nothing, as in a directory.
    assert httpx.get(f"{server.base}{ARTIFACTS}", params={"path": f"{run_path}/page.html"}, timeout=30).json() == {}

    assert httpx.delete(f"{base}/model", timeout=30).json() == {}
    assert s3.keys(BUCKET, f"{PREFIX}/{run_path}/") == [f"{PREFIX}/{run_path}/page.html"]
    missing = httpx.get(f"{base}/model/weights.bin", timeout=30)
    assert (missing.status_code, missing.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    directory = httpx.get(f"{base}/model", timeout=30)
    assert directory.status_code == 404


def test_s3_paths_outside_the_root_are_refused(s3: S3Server, s3_server: tuple[HttpServer, str]) -> None:
    server, experiment = s3_server
    before = s3.keys(BUCKET)
    prefix = f"{server.base}{ARTIFACTS}"
    for path in (
        f"{experiment}/{RUN_ID}/artifacts/%2e%2e/%2e%2e/%2e%2e/x",
        f"{experiment}/{RUN_ID}/artifacts/..%2f..%2fx",
        f"{experiment}/{RUN_ID}/artifacts/a%5cb",
        f"{experiment}/{RUN_ID}/artifacts/a//b",
        "%2fetc/passwd",
    ):
        for method in ("GET", "PUT", "DELETE"):
            answer = httpx.request(method, f"{prefix}/{path}", content=b"x" if method == "PUT" else None, timeout=30)
            assert (answer.status_code, answer.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), (method, path)
    for listed in ("../x", f"{experiment}/../..", "/etc", ""):
        assert httpx.get(prefix, params={"path": listed}, timeout=30).status_code == 400, listed
    assert s3.keys(BUCKET) == before


@pytest.fixture(scope="module")
def secured_s3(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthServer, str, str]]:
    directory = tmp_path_factory.mktemp("s3-auth")
    key_file = directory / "audit.key"
    key_file.write_bytes(KEY)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3.env().items():
            patch.setenv(name, value)
        auth = start_auth_server(
            directory,
            make_callers(PRINCIPALS),
            POLICY,
            ("team-a", "team-b", "shared"),
            ["--http-port", "0", "--artifact-root", f"s3://{BUCKET}/secured", "--audit-key-file", str(key_file)],
        )
    auth.secrets.append(s3.secret_key)  # the server logs at DEBUG: its log must not hold it either
    try:
        base = f"http://127.0.0.1:{wait_http_port(auth.server)}"
        experiment = make_run(base, _as(auth, "alice"), admin=_as(auth, "root"))
        yield auth, base, experiment
        auth.assert_log_has_no_secret()
    finally:
        auth.close()


def _as(auth: AuthServer, principal: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.token(principal)}"}


def test_s3_artifacts_follow_the_runs_namespace(s3: S3Server, secured_s3: tuple[AuthServer, str, str]) -> None:
    auth, base, experiment = secured_s3
    assert_artifacts_follow_the_runs_namespace(auth, base, experiment)
    # alice's upload is in the bucket, nothing that bob or carol tried is.
    assert s3.keys(BUCKET, "secured/") == [f"secured/{experiment}/{RUN_ID}/artifacts/data.csv"]


def test_mlflow_client_logs_lists_downloads_and_deletes_in_s3(
    s3: S3Server, s3_server: tuple[HttpServer, str], tmp_path: Path
) -> None:
    server, _ = s3_server
    result = run_scenario(server.base, tmp_path, SCENARIO)
    run_id, experiment = result["run_id"], result["experiment_id"]
    root = f"mlflow-artifacts:/{experiment}/{run_id}/artifacts"
    assert result["artifact_uri"] == root
    weights = ["weights.bin", False, 2 * 1024 * 1024 + 3]
    assert result["listed"] == [["model", True, None], weights]
    assert result["listed_model"] == [["model/MLmodel", False, 12], ["model/nested", True, None]]
    assert result["file_identical"] is True and result["dir_identical"] is True
    # The tracking API's ListArtifacts, answered as MLflow's server answers it.
    assert result["endpoint_root"] == {
        "status": 200,
        "body": {
            "root_uri": root,
            "files": [
                {"path": "model", "is_dir": True},
                {"path": "weights.bin", "is_dir": False, "file_size": weights[2]},
            ],
        },
    }
    assert result["endpoint_model"]["body"]["files"] == [
        {"path": "model/MLmodel", "is_dir": False, "file_size": 12},
        {"path": "model/nested", "is_dir": True},
    ]
    assert result["endpoint_nested"]["body"]["files"] == [
        {"path": "model/nested/deep.txt", "is_dir": False, "file_size": 5}
    ]
    assert (result["endpoint_traversal"]["status"], result["endpoint_traversal"]["body"]["error_code"]) == (
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert result["after_delete"] == ["weights.bin"]
    # The files are objects under the prefix, at the run's path.
    assert s3.keys(BUCKET, f"{PREFIX}/{experiment}/{run_id}/") == [
        f"{PREFIX}/{experiment}/{run_id}/artifacts/weights.bin"
    ]


def test_startup_refuses_a_missing_bucket_refused_credentials_and_no_endpoint(s3: S3Server, tmp_path: Path) -> None:
    def serve(root: str, env: dict[str, str]) -> tuple[int, str]:
        args = ["serve", "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
        code, stdout, stderr = run_to_exit(
            [*args, "--database", f"sqlite:///{tmp_path}/s.db", "--artifact-root", root], tmp_path, env
        )
        return code, stdout + stderr

    code, output = serve("s3://no-such-bucket", s3.env())
    assert code == EXIT_CONFIG, output
    assert "the S3 bucket 'no-such-bucket' at " + s3.endpoint + " does not exist" in output
    assert s3.secret_key not in output

    with moto_server(tmp_path, refuse_unknown_keys=True) as strict:
        strict_env = {**strict.env(), "AWS_SECRET_ACCESS_KEY": s3.secret_key}
        code, output = serve(f"s3://{BUCKET}", strict_env)
    assert code == EXIT_CONFIG, output
    assert "S3 refused the server's credentials for bucket 'lineagedb-artifacts'" in output
    assert s3.secret_key not in output and strict.access_key not in output

    closed = f"http://127.0.0.1:{free_port()}"
    code, output = serve(f"s3://{BUCKET}", {**s3.env(), "MLFLOW_S3_ENDPOINT_URL": closed})
    assert code == EXIT_CONFIG, output
    assert "cannot reach S3" in output and s3.secret_key not in output
    code, output = serve("s3:///nobucket", s3.env())
    assert code == EXIT_CONFIG and "expected s3://bucket" in output, output
