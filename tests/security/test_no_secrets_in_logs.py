"""Logs, errors and metrics never contain a secret (issue 13: "logs never contain").

One server at DEBUG with every secret in use at once: a database password in the URL,
static bearer tokens, a page-token key, the audit key, encryption keys and sensitive
property values; then calls that succeed, are refused, fail and page, a policy reload,
and a shutdown. Everything the process wrote, every error a client received and the
metrics page are scanned for each secret.
"""

from __future__ import annotations

import base64
import tomllib
import urllib.request
from pathlib import Path

import grpc
import sqlalchemy as sa

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.auth.conftest import bearer, create_namespaces, make_callers, write_tokens
from tests.backends import scratch_database
from tests.ops.conftest import free_port, require_backend, run_to_exit, start, wait_for

POLICY = """
cluster_admins = ["root"]
[namespaces.default]
editor = ["writer"]
viewer = ["reader", "viewer"]
"secrets:read" = ["reader"]
"""
DATABASE_PASSWORD = "pg-Pa55word-never-shown"
SENSITIVE_VALUE = "hunter2-the-sensitive-value"
AUDIT_KEY = b"audit-key-material-0123456789-abcdefgh"
PAGE_TOKEN_KEY = b"page-token-key-material-0123456789"


def test_a_server_with_every_secret_in_use_never_shows_one(tmp_path: Path) -> None:
    require_backend("postgresql")
    with scratch_database("postgresql", str(tmp_path)) as plain_url:
        url = sa.make_url(plain_url).set(password=DATABASE_PASSWORD).render_as_string(hide_password=False)
        create_namespaces(url, tmp_path, [])
        callers = make_callers({"root": (), "writer": (), "reader": (), "viewer": ()})
        tokens = write_tokens(tmp_path / "tokens", callers.values())
        (tmp_path / "policy.toml").write_text(POLICY)
        (tmp_path / "audit.key").write_bytes(AUDIT_KEY)
        (tmp_path / "page.key").write_bytes(PAGE_TOKEN_KEY)
        keys = tmp_path / "keys.toml"
        code, _, stderr = run_to_exit(["keys", "generate", "--id", "k1", "--file", str(keys)], tmp_path)
        assert code == 0, stderr
        encryption_keys = list(tomllib.loads(keys.read_text())["keys"].values())
        metrics_port = free_port()
        args = ["--host", "127.0.0.1", "--port", "0", "--database", url, "--log-level", "DEBUG"]
        args += ["--auth-tokens", str(tokens), "--authz-policy", str(tmp_path / "policy.toml")]
        args += ["--audit-key-file", str(tmp_path / "audit.key"), "--audit-reads", "all"]
        args += ["--encryption-keys-file", str(keys), "--page-token-key-file", str(tmp_path / "page.key")]
        args += ["--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1"]
        server = start(args, tmp_path)
        seen: list[str] = []  # what clients were told
        try:
            with grpc.insecure_channel(server.address) as channel:
                stub = svc_grpc.MetadataStoreServiceStub(channel)

                def call(method: str, request: object, principal: str | None) -> object | None:
                    metadata = bearer(callers[principal].token) if principal else bearer("ldb_" + "x" * 43)
                    try:
                        return getattr(stub, method)(request, metadata=metadata, timeout=10)
                    except grpc.RpcError as error:
                        seen.append(f"{error.code()} {error.details()}")
                        return None

                type_request = svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Model"))
                type_id = call("PutArtifactType", type_request, "root").type_id  # type: ignore[union-attr]
                artifacts = []
                for i in range(3):
                    artifact = mlmd.Artifact(type_id=type_id, uri=f"s3://m/{i}")
                    artifact.custom_properties["db_password"].string_value = SENSITIVE_VALUE
                    artifacts.append(artifact)
                ids = call("PutArtifacts", svc.PutArtifactsRequest(artifacts=artifacts), "writer")
                assert ids is not None
                by_id = svc.GetArtifactsByIDRequest(artifact_ids=list(ids.artifact_ids))  # type: ignore[attr-defined]
                clear = call("GetArtifactsByID", by_id, "reader")
                assert clear.artifacts[0].custom_properties["db_password"].string_value == SENSITIVE_VALUE  # type: ignore[union-attr]
                redacted = call("GetArtifactsByID", by_id, "viewer")
                assert SENSITIVE_VALUE not in str(redacted)
                # Refused and failing calls: a wrong token, a viewer writing, a filter on the secret.
                call("GetArtifacts", svc.GetArtifactsRequest(), None)
                call("PutArtifacts", svc.PutArtifactsRequest(artifacts=artifacts[:1]), "viewer")
                sensitive_filter = f"custom_properties.db_password.string_value = '{SENSITIVE_VALUE}'"
                options = mlmd.ListOperationOptions(filter_query=sensitive_filter)
                call("GetArtifacts", svc.GetArtifactsRequest(options=options), "reader")
                # Paging (signed page tokens), and a write whose update changes the secret.
                page = call(
                    "GetArtifacts",
                    svc.GetArtifactsRequest(options=mlmd.ListOperationOptions(max_result_size=1)),
                    "reader",
                )
                assert page is not None and page.next_page_token  # type: ignore[attr-defined]
                changed = mlmd.Artifact()
                changed.CopyFrom(artifacts[0])
                changed.id = ids.artifact_ids[0]  # type: ignore[attr-defined]
                changed.custom_properties["db_password"].string_value = SENSITIVE_VALUE + "-rotated"
                call("PutArtifacts", svc.PutArtifactsRequest(artifacts=[changed]), "writer")
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
            server.process.send_signal(1)  # SIGHUP: reload the policy and credentials
            assert wait_for(lambda: "reloaded" in server.stderr(), 15)
        finally:
            server.stop()
        output = server.stderr() + "".join(server.stdout)
        # The audit log keeps the change, with the secret redacted.
        code, audit_out, _ = run_to_exit(["audit", "export", "--database", url], tmp_path)
        assert code == 0 and '"custom_properties.db_password"' in audit_out
    secrets = {
        "database password": DATABASE_PASSWORD,
        "sensitive value": SENSITIVE_VALUE,
        "audit key": AUDIT_KEY.decode(),
        "page token key": PAGE_TOKEN_KEY.decode(),
        **{f"token of {name}": caller.token for name, caller in callers.items()},
        **{f"encryption key {i}": key for i, key in enumerate(encryption_keys)},
        **{f"encryption key {i} (hex)": base64.b64decode(key).hex() for i, key in enumerate(encryption_keys)},
    }
    for where, text in {
        "server output": output,
        "client errors": "\n".join(seen),
        "metrics": metrics,
        "audit log": audit_out,
    }.items():
        leaked = [name for name, secret in secrets.items() if secret in text]
        assert not leaked, f"{where} contains: {leaked}"
    assert "DEBUG" in output  # the scan covered debug logging
    assert len(seen) >= 3  # the refused and failed calls happened
