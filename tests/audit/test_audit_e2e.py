"""The audit log end to end: real servers, refused and failed calls, reads, the admin RPC,
two server processes appending at once, and the `lineagedb audit` commands."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from lineagedb.proto.lineagedb.v1 import audit_pb2, audit_pb2_grpc
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.audit.conftest import KEY
from tests.auth.conftest import AuthServer, make_callers, start_auth_server
from tests.ops.conftest import run_to_exit, start

POLICY = """
cluster_admins = ["root"]
[namespaces.team-a]
editor = ["alice"]
viewer = ["victor"]
[defaults]
alice = "team-a"
victor = "team-a"
"""


def _key_file(directory: Path) -> Path:
    path = directory / "audit.key"
    path.write_bytes(KEY)
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AuthServer]:
    callers = make_callers({"root": (), "alice": (), "victor": ()})
    running = start_auth_server(
        tmp_path, callers, POLICY, ["team-a"], extra_args=["--audit-key-file", str(_key_file(tmp_path))]
    )
    yield running
    running.close()


def _audit(server: AuthServer, caller: str, **conditions: Any) -> list[audit_pb2.AuditRecord]:
    stub = audit_pb2_grpc.AuditServiceStub(server.channel)
    request = audit_pb2.QueryAuditRequest(**conditions)
    return list(stub.QueryAudit(request, metadata=server.metadata(caller), timeout=10).records)


def _cli(directory: Path, *args: str) -> tuple[int, str, str]:
    return run_to_exit(["audit", *args, "--database", f"sqlite:///{directory / 'auth.db'}"], directory)


def test_writes_refusals_and_failures_are_recorded_with_who_did_them(server: AuthServer, tmp_path: Path) -> None:
    type_id = server.call(
        "PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Model")), as_="root"
    ).type_id
    created = server.call(
        "PutArtifacts", svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, uri="s3://m")]), as_="alice"
    ).artifact_ids
    assert server.code("PutArtifacts", as_="victor")[0] == grpc.StatusCode.PERMISSION_DENIED
    bad = svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=999_999)])
    assert server.code("PutArtifacts", bad, as_="alice")[0] == grpc.StatusCode.NOT_FOUND
    assert server.code("GetArtifacts", as_="alice")[0] == grpc.StatusCode.OK  # not recorded by default
    assert server.code("GetArtifacts")[0] == grpc.StatusCode.UNAUTHENTICATED  # a refused read is

    found = [(r.kind, r.principal, r.method.rsplit("/", 1)[1], r.outcome) for r in _audit(server, "root")]
    assert len(found) == 5
    assert found[:4] == [
        ("write", "root", "PutArtifactType", "OK"),
        ("write", "alice", "PutArtifacts", "OK"),
        ("denied", "victor", "PutArtifacts", "PERMISSION_DENIED"),
        ("failed", "alice", "PutArtifacts", "NOT_FOUND"),
    ]
    # Without credentials the principal is the peer address.
    assert found[4][0] == "denied" and found[4][1].startswith("ipv4:127.0.0.1:") and found[4][3] == "UNAUTHENTICATED"
    write = _audit(server, "root", principal="alice", kind="write")[0]
    assert write.namespace == "team-a" and json.loads(write.detail_json)["created"] == {"artifact": list(created)}
    assert len(write.request_sha256) == 64 and len(write.mac) == 64

    # The admin RPC is for cluster admins only, and pages.
    with pytest.raises(grpc.RpcError) as refused:
        _audit(server, "alice")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    stub = audit_pb2_grpc.AuditServiceStub(server.channel)
    first = stub.QueryAudit(audit_pb2.QueryAuditRequest(max_results=2), metadata=server.metadata("root"))
    second = stub.QueryAudit(
        audit_pb2.QueryAuditRequest(max_results=2, page_token=first.next_page_token), metadata=server.metadata("root")
    )
    assert [r.id for r in first.records] + [r.id for r in second.records] == [r.id for r in _audit(server, "root")][:4]
    with pytest.raises(grpc.RpcError) as bad_token:
        stub.QueryAudit(audit_pb2.QueryAuditRequest(page_token="x"), metadata=server.metadata("root"))
    assert bad_token.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    code, out, err = _cli(tmp_path, "verify", "--audit-key-file", str(tmp_path / "audit.key"))
    assert code == 0 and out.startswith("ok: "), err
    code, out, _ = _cli(tmp_path, "query", "--principal", "alice", "--format", "json")
    # Alice's refused QueryAudit is a record of its own.
    assert code == 0 and [r["kind"] for r in json.loads(out)] == ["write", "failed", "denied"]
    code, out, _ = _cli(tmp_path, "export", "--kind", "denied")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [line["outcome"] for line in lines] == [
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
    ]
    assert all(len(line["mac"]) == 64 for line in lines)
    server.assert_log_has_no_secret()


def test_the_history_of_a_node_says_who_changed_what_from_what(server: AuthServer, tmp_path: Path) -> None:
    type_id = server.call(
        "PutArtifactType",
        svc.PutArtifactTypeRequest(
            artifact_type=mlmd.ArtifactType(name="Model", properties={"approved": mlmd.BOOLEAN})
        ),
        as_="root",
    ).type_id
    model = mlmd.Artifact(type_id=type_id, uri="s3://model", properties={"approved": mlmd.Value(bool_value=False)})
    [model_id] = server.call("PutArtifacts", svc.PutArtifactsRequest(artifacts=[model]), as_="alice").artifact_ids
    model.id = model_id
    model.properties["approved"].bool_value = True
    server.call("PutArtifacts", svc.PutArtifactsRequest(artifacts=[model]), as_="alice")
    code, out, err = _cli(tmp_path, "history", f"artifact:{model_id}")
    assert code == 0, err
    lines = out.splitlines()
    assert "alice" in lines[0] and lines[0].endswith("PutArtifacts  created")
    assert lines[1].endswith("PutArtifacts  updated")
    assert lines[2].strip() == 'properties.approved: {"bool_value": false} -> {"bool_value": true}'
    code, out, _ = _cli(tmp_path, "history", "artifact:nope")
    assert code != 0


def test_reads_are_recorded_when_asked(tmp_path: Path) -> None:
    callers = make_callers({"root": (), "alice": ()})
    running = start_auth_server(
        tmp_path,
        callers,
        POLICY,
        ["team-a"],
        extra_args=["--audit-key-file", str(_key_file(tmp_path)), "--audit-reads", "all"],
    )
    try:
        running.call("GetArtifacts", as_="alice")
        reads = _audit(running, "root", kind="read")
        assert [(r.principal, r.method.rsplit("/", 1)[1]) for r in reads] == [("alice", "GetArtifacts")]
    finally:
        running.close()


def test_audit_prune_keeps_the_log_verifiable(server: AuthServer, tmp_path: Path) -> None:
    for name in ("A", "B"):
        server.call(
            "PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name=name)), as_="root"
        )
    key = ("--audit-key-file", str(tmp_path / "audit.key"))
    code, out, err = _cli(tmp_path, "prune", "--before", "2999-01-01", *key)
    assert code == 0 and out.startswith("pruned 2 records"), err
    assert _cli(tmp_path, "verify", *key)[0] == 0
    code, _, err = _cli(tmp_path, "verify", "--audit-key-file", str(_key_file_with(tmp_path, b"w" * 32)))
    assert code == 1


def _key_file_with(directory: Path, key: bytes) -> Path:
    path = directory / "wrong.key"
    path.write_bytes(key)
    return path


def test_two_server_processes_appending_at_once_leave_a_verifiable_log(database_url: str, tmp_path: Path) -> None:
    key_file = _key_file(tmp_path)
    code, _, err = run_to_exit(["db", "upgrade", "--database", database_url], tmp_path)
    assert code == 0, err
    args = ["--host", "127.0.0.1", "--port", "0", "--database", database_url, "--audit-key-file", str(key_file)]
    for i in range(2):
        (tmp_path / str(i)).mkdir()
    servers = [start(args, tmp_path / str(i)) for i in range(2)]
    try:
        channels = [grpc.insecure_channel(server.address) for server in servers]
        stubs = [svc_grpc.MetadataStoreServiceStub(channel) for channel in channels]
        type_id = (
            stubs[0]
            .PutArtifactType(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Data")), timeout=10)
            .type_id
        )
        errors: list[BaseException] = []

        def write(stub: svc_grpc.MetadataStoreServiceStub, tag: str) -> None:
            try:
                for i in range(15):
                    artifacts = [mlmd.Artifact(type_id=type_id, uri=f"s3://{tag}/{i}/{j}") for j in range(3)]
                    stub.PutArtifacts(svc.PutArtifactsRequest(artifacts=artifacts), timeout=30)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=write, args=(stubs[i % 2], f"w{i}")) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        for channel in channels:
            channel.close()
    finally:
        for server in servers:
            server.stop()
    code, out, err = run_to_exit(
        ["audit", "verify", "--database", database_url, "--audit-key-file", str(key_file)], tmp_path
    )
    assert code == 0, out + err
    assert out.startswith("ok: 61 records in ")  # the type, and 4 writers x 15 writes
    code, out, _ = run_to_exit(
        ["audit", "query", "--database", database_url, "--format", "json", "--limit", "100"], tmp_path
    )
    assert len({record["chain"] for record in json.loads(out)}) >= 2
