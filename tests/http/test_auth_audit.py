"""Authentication, namespaces and the audit log over HTTP: the same as over gRPC.

The auth tests use the policy of tests/auth (alice edits team-a, carol views it, bob edits
team-b, root administers). HTTP clients bind 127.0.0.2 so their address differs from the
gRPC server's own loopback: the audit record of an HTTP call must name that client
(address and port), not the private socket the call was forwarded over, and a gRPC client
sending the forwarded-peer metadata itself must not get its claim into the log.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from lineagedb.api.forwarding import FORWARDED_PEER_METADATA
from lineagedb.proto.lineagedb.v1 import audit_pb2
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from tests.audit.conftest import KEY
from tests.auth.conftest import AuthServer, make_callers, start_auth_server
from tests.auth.test_grpc_auth import POLICY, PRINCIPALS
from tests.backends import scratch_database
from tests.http.conftest import MLMD, GrpcCaller, HttpServer, start_http, wait_http_port

AUDIT = "lineagedb.v1.AuditService/QueryAudit"
CLIENT_HOST = "127.0.0.2"
FORGED = "ipv4:203.0.113.9:4242"


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    peer: str  # the client's address as gRPC spells peers


def post(port: int, path: str, body: Any, headers: dict[str, str] | None = None) -> Answer:
    """One POST from CLIENT_HOST on a fresh connection, so the client's port is known."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(CLIENT_HOST, 0))
    try:
        connection.connect()
        host, client_port = connection.sock.getsockname()[:2]
        connection.request(
            "POST",
            f"/api/v1/{path}",
            body=json.dumps(body),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        response = connection.getresponse()
        data = response.read()
        return Answer(response.status, json.loads(data), dict(response.getheaders()), f"ipv4:{host}:{client_port}")
    finally:
        connection.close()


@dataclass
class Secured:
    auth: AuthServer
    http_port: int
    type_id: int

    def as_(self, principal: str | None, namespace: str | None = None) -> dict[str, str]:
        headers = {}
        if principal is not None:
            headers["Authorization"] = f"Bearer {self.auth.token(principal)}"
        if namespace is not None:
            headers["X-LineageDB-Namespace"] = namespace
        return headers

    def post(self, path: str, body: Any, principal: str | None, namespace: str | None = None) -> Answer:
        return post(self.http_port, path, body, self.as_(principal, namespace))

    def audit(self, **query: Any) -> list[audit_pb2.AuditRecord]:
        answer = self.post(AUDIT, {"max_results": 100, **query}, "root")
        assert answer.status == 200, answer.body
        return list(json_format.ParseDict(answer.body, audit_pb2.QueryAuditResponse()).records)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    directory = tmp_path_factory.mktemp("http-auth")
    key_file = directory / "audit.key"
    key_file.write_bytes(KEY)
    auth = start_auth_server(
        directory,
        make_callers(PRINCIPALS),
        POLICY,
        ("team-a", "team-b", "shared"),
        ["--http-port", "0", "--audit-key-file", str(key_file)],
    )
    try:
        http_port = wait_http_port(auth.server)
        answer = post(
            http_port,
            f"{MLMD}/PutArtifactType",
            {"artifact_type": {"name": "http.Data"}},
            {"Authorization": f"Bearer {auth.token('root')}"},
        )
        assert answer.status == 200, answer.body
        yield Secured(auth, http_port, int(answer.body["type_id"]))
        auth.assert_log_has_no_secret()
    finally:
        auth.close()


def test_no_credentials_is_401_with_a_challenge(secured: Secured) -> None:
    answer = secured.post(f"{MLMD}/GetArtifacts", {}, None)
    assert answer.status == 401
    assert answer.body["status"] == "UNAUTHENTICATED"
    assert answer.headers["www-authenticate"].startswith("Bearer")
    bad = post(secured.http_port, f"{MLMD}/GetArtifacts", {}, {"Authorization": "Bearer ldb_not-a-real-token-at-all"})
    assert (bad.status, bad.body["status"]) == (401, "UNAUTHENTICATED")


def test_a_viewer_writing_is_403_and_an_editor_writes(secured: Secured) -> None:
    artifact = {"type_id": str(secured.type_id), "uri": "file:///viewer"}
    refused = secured.post(f"{MLMD}/PutArtifacts", {"artifacts": [artifact]}, "carol", "team-a")
    assert (refused.status, refused.body["status"]) == (403, "PERMISSION_DENIED")
    assert "carol" in refused.body["message"] and "team-a" in refused.body["message"]
    written = secured.post(f"{MLMD}/PutArtifacts", {"artifacts": [artifact]}, "alice")
    assert written.status == 200, written.body
    (artifact_id,) = written.body["artifact_ids"]
    # carol reads team-a, bob does not; an admin of the cluster reads everything
    for principal, visible in (("carol", True), ("bob", False), ("root", True), ("alice", True)):
        seen = secured.post(f"{MLMD}/GetArtifactsByID", {"artifact_ids": [artifact_id]}, principal)
        assert seen.status == 200, seen.body
        assert [a["id"] for a in seen.body.get("artifacts", [])] == ([artifact_id] if visible else []), principal


def test_the_namespace_header_is_honoured(secured: Secured) -> None:
    artifact = {"type_id": str(secured.type_id), "uri": "file:///in-team-b"}
    # alice may only view shared and may not touch team-b
    for namespace in ("shared", "team-b"):
        refused = secured.post(f"{MLMD}/PutArtifacts", {"artifacts": [artifact]}, "alice", namespace)
        assert refused.status == 403 and namespace in refused.body["message"], refused.body
    written = secured.post(f"{MLMD}/PutArtifacts", {"artifacts": [artifact]}, "bob", "team-b")
    assert written.status == 200, written.body
    (artifact_id,) = written.body["artifact_ids"]
    # It went to team-b: bob sees it, team-a's members do not; the audit record says where.
    for principal, visible in (("bob", True), ("carol", False), ("alice", False)):
        seen = secured.post(f"{MLMD}/GetArtifactsByID", {"artifact_ids": [artifact_id]}, principal)
        assert [a["id"] for a in seen.body.get("artifacts", [])] == ([artifact_id] if visible else []), principal
    (record,) = [r for r in secured.audit(method="PutArtifacts", principal="bob") if r.peer == written.peer]
    assert (record.namespace, record.kind) == ("team-b", "write")
    # A read naming a namespace needs a role there.
    not_readable = secured.post(f"{MLMD}/GetArtifacts", {}, "carol", "team-b")
    assert not_readable.status == 403 and "team-b" in not_readable.body["message"]


def test_admin_services_need_cluster_admins(secured: Secured) -> None:
    assert secured.post(AUDIT, {}, "alice").status == 403
    assert secured.post(AUDIT, {}, "root").status == 200


def test_the_audit_record_of_an_http_call_names_the_real_client(secured: Secured) -> None:
    artifact = {"type_id": str(secured.type_id), "uri": "file:///audited", "name": "audited-over-http"}
    written = secured.post(f"{MLMD}/PutArtifacts", {"artifacts": [artifact]}, "alice")
    assert written.status == 200, written.body
    refused = secured.post(f"{MLMD}/PutArtifacts", {"artifacts": [artifact]}, "carol", "team-a")
    assert refused.status == 403
    assert written.peer.startswith(f"ipv4:{CLIENT_HOST}:") and written.peer != refused.peer

    records = secured.audit(method="PutArtifacts")
    by_peer = {record.peer: record for record in records}
    assert by_peer[written.peer].principal == "alice"
    assert (by_peer[written.peer].kind, by_peer[written.peer].namespace) == ("write", "team-a")
    assert (by_peer[refused.peer].principal, by_peer[refused.peer].kind) == ("carol", "denied")
    assert not [record.peer for record in records if record.peer.startswith("unix")]


def test_a_forwarded_peer_sent_over_grpc_is_ignored(secured: Secured) -> None:
    request = svc.PutArtifactsRequest(
        artifacts=[mlmd.Artifact(type_id=secured.type_id, uri="file:///forged", name="forged-peer")]
    )
    metadata = [
        ("authorization", f"Bearer {secured.auth.token('alice')}"),
        (FORWARDED_PEER_METADATA, f"{'0' * 64} {FORGED}"),
    ]
    with secured.auth.server.channel() as channel:
        GrpcCaller(channel, metadata).call(f"{MLMD}/PutArtifacts", request)
        # A claim without any secret at all, and one with an empty peer: ignored too.
        for value in (FORGED, f"{'0' * 64} "):
            GrpcCaller(channel, [metadata[0], (FORWARDED_PEER_METADATA, value)]).call(
                f"{MLMD}/GetArtifactTypes", svc.GetArtifactTypesRequest()
            )
    records = secured.audit(method="PutArtifacts", principal="alice")
    peers = [record.peer for record in records]
    assert FORGED not in peers and not [peer for peer in peers if "203.0.113.9" in peer]
    assert any(peer.startswith("ipv4:127.0.0.1:") for peer in peers), peers
    assert f"ignored a forged {FORWARDED_PEER_METADATA}" in secured.auth.log()


def test_http_peers_in_the_audit_log_on_every_backend(backend: str, tmp_path: Path) -> None:
    """Without authentication (the record's principal is then the peer) on SQLite, PostgreSQL and MariaDB."""
    with scratch_database(backend, str(tmp_path)) as url:
        server: HttpServer = start_http(url, tmp_path, env={"LINEAGEDB_AUDIT_KEY": KEY.decode()})
        try:
            typed = post(server.http_port, f"{MLMD}/PutArtifactType", {"artifact_type": {"name": "peer.Data"}})
            assert typed.status == 200, typed.body
            artifact = {"type_id": typed.body["type_id"], "uri": "file:///peer"}
            written = post(server.http_port, f"{MLMD}/PutArtifacts", {"artifacts": [artifact]})
            assert written.status == 200, written.body
            with server.server.channel() as channel:
                forged = [(FORWARDED_PEER_METADATA, f"{'f' * 64} {FORGED}")]
                GrpcCaller(channel, forged).call(
                    f"{MLMD}/PutArtifacts",
                    svc.PutArtifactsRequest(
                        artifacts=[mlmd.Artifact(type_id=int(typed.body["type_id"]), uri="file:///grpc")]
                    ),
                )
                answer: Any = GrpcCaller(channel).call(AUDIT, audit_pb2.QueryAuditRequest(method="PutArtifacts"))
            records = {record.peer: record for record in answer.records}
            assert written.peer in records and records[written.peer].principal == written.peer
            (grpc_peer,) = [peer for peer in records if peer != written.peer]
            assert grpc_peer.startswith("ipv4:127.0.0.1:")
        finally:
            assert server.stop() == 0
