"""The HTTP listener as an operator meets it: flags and variables, HTTPS with the gRPC port's
certificate, client certificates, refusals at startup, graceful stop, worker processes."""

from __future__ import annotations

import signal
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.http.conftest import HTTP_LINE, JSON, MLMD, start_http, wait_http_port
from tests.ops.conftest import free_port, run_to_exit, start
from tests.pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("http-pki"), client_name="pipeline-runner", other_client_name="intruder")


def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/listener.db"


def types(base: str, **options: object) -> httpx.Response:
    with httpx.Client(timeout=30, **options) as client:  # type: ignore[arg-type]
        return client.post(f"{base}/api/v1/{MLMD}/GetArtifactTypes", content=b"{}", headers=JSON)


def test_off_unless_a_port_is_given(tmp_path: Path) -> None:
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", sqlite(tmp_path)], tmp_path)
    try:
        time.sleep(0.5)
        assert not [line for line in server.stdout if line.startswith(HTTP_LINE)]
        assert "http listening" not in server.stderr()
    finally:
        assert server.stop() == 0


def test_the_port_from_the_environment_and_a_graceful_stop(tmp_path: Path) -> None:
    port = free_port()
    # A short directory: under pytest-xdist, tmp_path is long enough that a socket path in it
    # passes the 107-byte limit and the server (rightly) falls back to /tmp.
    private = Path(tempfile.mkdtemp(prefix="ldb-", dir="/tmp"))
    env = {"LINEAGEDB_HTTP_PORT": str(port), "LINEAGEDB_HTTP_HOST": "127.0.0.1", "TMPDIR": str(private)}
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", sqlite(tmp_path)], tmp_path, env)
    try:
        assert wait_http_port(server) == port
        assert f"http listening on 127.0.0.1:{port}" in server.stderr()
        assert types(f"http://127.0.0.1:{port}").status_code == 200
        # The forwarded calls' socket: one directory only the server's user may enter.
        (directory,) = list(private.iterdir())
        assert directory.stat().st_mode & 0o777 == 0o700
        assert (directory / "grpc.sock").is_socket()
    finally:
        assert server.stop() == 0
    assert list(private.iterdir()) == []
    private.rmdir()
    with pytest.raises(httpx.ConnectError):
        types(f"http://127.0.0.1:{port}")


def test_requests_in_flight_are_answered_during_a_graceful_stop(tmp_path: Path) -> None:
    server = start_http(sqlite(tmp_path), tmp_path, "--shutdown-grace-s", "10", "--shutdown-drain-s", "0.5")
    body = b'{"type_name": "none", "options": {"filter_query": "uri LIKE \'%x%\'"}}'
    results: list[int] = []

    def ask() -> None:
        deadline = time.monotonic() + 20
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                try:
                    answer = client.post(server.url(f"{MLMD}/GetArtifactsByType"), content=body, headers=JSON)
                except httpx.TransportError:
                    return  # the listener closed: a refused connection, never a half answer
                results.append(answer.status_code)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    server.server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(60)
    assert server.server.process.wait(30) == 0
    assert results and set(results) <= {200, 503}, results  # answered, or NOT_SERVING while draining


def test_https_with_the_grpc_certificate(tmp_path: Path, pki: Pki) -> None:
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    server = start_http(sqlite(tmp_path), tmp_path, *tls, scheme="https")
    try:
        assert "(HTTPS)" in server.log()
        context = ssl.create_default_context(cafile=str(pki.ca))
        answer = types(f"https://localhost:{server.http_port}", verify=context)
        assert answer.status_code == 200 and answer.json() == {}  # a fresh store: no types yet
        with pytest.raises(httpx.ConnectError):  # not signed by a CA the client trusts
            types(f"https://localhost:{server.http_port}")
        with pytest.raises(httpx.RemoteProtocolError):  # plaintext to a TLS port
            types(f"http://127.0.0.1:{server.http_port}")
        # The gRPC port is unchanged: TLS.
        credentials = grpc.ssl_channel_credentials(pki.ca.read_bytes())
        with grpc.secure_channel(f"localhost:{server.server.port}", credentials) as channel:
            svc_grpc.MetadataStoreServiceStub(channel).GetArtifactTypes(svc.GetArtifactTypesRequest(), timeout=10)
    finally:
        assert server.stop() == 0


def test_client_certificates_when_the_grpc_port_requires_them(tmp_path: Path, pki: Pki) -> None:
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--tls-client-ca", str(pki.ca)]
    server = start_http(sqlite(tmp_path), tmp_path, *tls, scheme="https")
    try:
        base = f"https://localhost:{server.http_port}"
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        assert types(base, verify=context).status_code == 200
        stranger = ssl.create_default_context(cafile=str(pki.ca))
        stranger.load_cert_chain(str(pki.other_client_cert), str(pki.other_client_key))
        bare = ssl.create_default_context(cafile=str(pki.ca))
        for refused in (stranger, bare):  # another CA's certificate, or none
            with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
                types(base, verify=refused)
    finally:
        assert server.stop() == 0


def test_certificate_identities_are_refused_at_startup(tmp_path: Path, pki: Pki) -> None:
    args = ["serve", "--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--database", sqlite(tmp_path)]
    args += ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--tls-client-ca", str(pki.ca)]
    policy = tmp_path / "policy.toml"
    policy.write_text('cluster_admins = ["pipeline-runner"]\n')
    code, stdout, stderr = run_to_exit([*args, "--auth-mtls-identity", "cn", "--authz-policy", str(policy)], tmp_path)
    assert code == 2 and stdout == ""
    assert "--http-port cannot be combined with --auth-mtls-identity" in stderr


def test_plaintext_credentials_on_a_public_address_are_refused(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("")
    policy = tmp_path / "policy.toml"
    policy.write_text('cluster_admins = ["root"]\n')
    args = ["serve", "--host", "127.0.0.1", "--port", "0", "--database", sqlite(tmp_path), "--auth-tokens", str(tokens)]
    args += ["--authz-policy", str(policy)]
    code, _, stderr = run_to_exit([*args, "--http-port", "0", "--http-host", "0.0.0.0"], tmp_path)
    assert code == 2
    assert "refusing to accept credentials in plaintext over HTTP on 0.0.0.0" in stderr


def test_a_taken_port_stops_startup(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["serve", "--host", "127.0.0.1", "--port", "0", "--database", sqlite(tmp_path)]
        code, stdout, stderr = run_to_exit([*args, "--http-port", str(port)], tmp_path)
    assert code == 3 and stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}" in stderr and "Traceback" not in stderr


def test_workers_share_the_http_port(tmp_path: Path) -> None:
    args = ["--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--workers", "2", "--database", sqlite(tmp_path)]
    server = start(args, tmp_path)
    try:
        port = wait_http_port(server)
        time.sleep(0.3)
        assert [line for line in server.stdout if line.startswith(HTTP_LINE)] == [f"{HTTP_LINE}127.0.0.1:{port}\n"]
        with httpx.Client(timeout=30) as client:
            created = client.post(
                f"http://127.0.0.1:{port}/api/v1/{MLMD}/PutArtifactType",
                content=b'{"artifact_type": {"name": "workers.Data"}}',
                headers=JSON,
            )
            assert created.status_code == 200, created.text
            # New connections spread over both workers; every one answers from the shared database.
            for _ in range(8):
                with httpx.Client(timeout=30) as fresh:
                    answer = fresh.post(
                        f"http://127.0.0.1:{port}/api/v1/{MLMD}/GetArtifactType",
                        content=b'{"type_name": "workers.Data"}',
                        headers=JSON,
                    )
                    assert answer.json()["artifact_type"]["id"] == created.json()["type_id"]
    finally:
        assert server.stop() == 0
