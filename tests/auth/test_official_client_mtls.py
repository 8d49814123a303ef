"""The official ml-metadata client over mTLS, its certificate's common name as its identity.

The official client cannot send metadata, so it relies on the policy alone: the `[defaults]`
entry puts the pipeline's writes in its namespace, `type_writers = "editor"` lets it
register types there. A certificate from the same CA whose CN has no role gets
PermissionDeniedError, even for a read.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lineagedb.store import tenancy
from lineagedb.store.engine import create_engine
from lineagedb.store.unit_of_work import Database
from tests.auth.conftest import AuthPki, create_namespaces, sqlite_url
from tests.ops.conftest import Server, start

pytestmark = pytest.mark.compat

POLICY = """\
type_writers = "editor"

[namespaces.pipelines]
editor = ["pipeline-runner"]

[defaults]
pipeline-runner = "pipelines"
"""

# Runs under .venv-mlmd: {"ca", "cert", "key", "port", "op": "write" | "read"} in, one JSON line out.
CLIENT_SCRIPT = """\
import json, sys, uuid
from pathlib import Path
from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

options = json.loads(sys.argv[1])
config = mlmd.MetadataStoreClientConfig(host="localhost", port=int(options["port"]))
config.client_timeout_sec = 10.0
config.ssl_config.custom_ca = Path(options["ca"]).read_text()
config.ssl_config.server_cert = Path(options["cert"]).read_text()  # the client's own certificate
config.ssl_config.client_key = Path(options["key"]).read_text()
try:
    store = metadata_store.MetadataStore(config)
    if options["op"] == "write":
        type_id = store.put_artifact_type(mlmd.ArtifactType(name="mtls.Model." + uuid.uuid4().hex[:8]))
        [artifact_id] = store.put_artifacts([mlmd.Artifact(type_id=type_id, uri="s3://models/1")])
        [read] = store.get_artifacts_by_id([artifact_id])
        listed = [a.id for a in store.get_artifacts()]
        result = {"ok": True, "type_id": type_id, "artifact_id": artifact_id, "uri": read.uri, "listed": listed}
    else:
        result = {"ok": True, "artifacts": [a.id for a in store.get_artifacts()]}
except errors.StatusError as error:
    result = {"ok": False, "error": type(error).__name__, "message": str(error)[:500]}
print(json.dumps(result))
"""


def run_client(mlmd_python: Path, script: Path, port: int, pki: AuthPki, cn: str, op: str) -> dict[str, Any]:
    cert, key = pki.clients[cn]
    options = {"port": port, "ca": str(pki.ca), "cert": str(cert), "key": str(key), "op": op}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    completed = subprocess.run(
        [str(mlmd_python), str(script), json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, auth_pki: AuthPki) -> Iterator[tuple[Server, str, Path]]:
    directory = tmp_path_factory.mktemp("official-mtls")
    url = sqlite_url(directory)
    create_namespaces(url, directory, ["pipelines"])
    policy = directory / "policy.toml"
    policy.write_text(POLICY)
    args = ["--host", "127.0.0.1", "--port", "0", "--database", url]
    tls = ["--tls-cert", str(auth_pki.server_cert), "--tls-key", str(auth_pki.server_key)]
    auth = ["--tls-client-ca", str(auth_pki.ca), "--auth-mtls-identity", "cn", "--authz-policy", str(policy)]
    server = start([*args, *tls, *auth], directory)
    script = directory / "official_client.py"
    script.write_text(CLIENT_SCRIPT)
    try:
        yield server, url, script
    finally:
        if server.process.poll() is None:
            assert server.stop() == 0


def test_official_client_with_a_certificate_bound_in_the_policy_writes_and_reads(
    mtls_server: tuple[Server, str, Path], auth_pki: AuthPki, mlmd_python: Path
) -> None:
    server, url, script = mtls_server
    result = run_client(mlmd_python, script, server.port, auth_pki, "pipeline-runner", "write")
    assert result["ok"], result
    assert result["uri"] == "s3://models/1"
    assert result["artifact_id"] in result["listed"]
    # The artifact went to the namespace the policy's [defaults] names for this CN.
    engine = create_engine(url)
    try:
        with Database(engine).transaction(write=False) as uow:
            assert tenancy.namespaces_of(uow, "artifact", [result["artifact_id"]]) == {
                result["artifact_id"]: "pipelines"
            }
    finally:
        engine.dispose()


def test_official_client_with_a_certificate_without_a_role_is_denied(
    mtls_server: tuple[Server, str, Path], auth_pki: AuthPki, mlmd_python: Path
) -> None:
    server, _, script = mtls_server
    for op in ("read", "write"):
        result = run_client(mlmd_python, script, server.port, auth_pki, "stranger", op)
        assert not result["ok"], result
        assert result["error"] == "PermissionDeniedError", result
    assert "denied" in server.stderr()
