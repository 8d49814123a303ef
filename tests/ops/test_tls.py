"""TLS and mTLS with the official client; every refused case."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from tests.ops.conftest import Pki, Server, free_port, health_status, official_client, run_to_exit, start

pytestmark = pytest.mark.compat


def _db(tmp_path: Path) -> list[str]:
    return ["--host", "127.0.0.1", "--port", "0", "--database", f"sqlite:///{tmp_path}/tls.db"]


def test_tls_server_accepts_official_client_and_refuses_plaintext_and_wrong_ca(
    pki: Pki, mlmd_python: Path, tmp_path: Path, servers: list[Server]
) -> None:
    server = start([*_db(tmp_path), "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)], tmp_path)
    servers.append(server)
    ok = official_client(mlmd_python, server.port, ca=pki.ca)
    assert ok["ok"], ok
    plaintext = official_client(mlmd_python, server.port)
    assert plaintext == {"ok": False, "error": "UnavailableError", "message": plaintext["message"]}
    wrong_ca = official_client(mlmd_python, server.port, ca=pki.other_ca)
    assert not wrong_ca["ok"] and wrong_ca["error"] == "UnavailableError"
    # A plaintext gRPC health probe is refused too.
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as refused:
        health_status(channel)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    assert server.stop() == 0


def test_mtls_requires_a_client_certificate_from_the_client_ca(
    pki: Pki, mlmd_python: Path, tmp_path: Path, servers: list[Server]
) -> None:
    args = [*_db(tmp_path), "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    server = start([*args, "--tls-client-ca", str(pki.ca), "--tls-require-client-cert=true"], tmp_path)
    servers.append(server)
    ok = official_client(mlmd_python, server.port, ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    assert ok["ok"], ok
    missing = official_client(mlmd_python, server.port, ca=pki.ca)
    assert not missing["ok"] and missing["error"] == "UnavailableError"
    untrusted = official_client(
        mlmd_python, server.port, ca=pki.ca, cert=pki.other_client_cert, key=pki.other_client_key
    )
    assert not untrusted["ok"] and untrusted["error"] == "UnavailableError"
    plaintext = official_client(mlmd_python, server.port)
    assert not plaintext["ok"] and plaintext["error"] == "UnavailableError"
    assert server.stop() == 0


def test_mlmd_ssl_config_in_the_server_config_file(
    pki: Pki, mlmd_python: Path, tmp_path: Path, servers: list[Server]
) -> None:
    """MLMD's ssl_config holds PEM text, not paths; client_verify asks for client certificates."""

    def pem(path: Path) -> str:
        return path.read_text().replace("\n", "\\n")

    config = tmp_path / "server_config.pbtxt"
    config.write_text(
        f'connection_config {{ sqlite {{ filename_uri: "{tmp_path}/ssl.db" }} }}\n'
        f'ssl_config {{ server_key: "{pem(pki.server_key)}" server_cert: "{pem(pki.server_cert)}" '
        f'custom_ca: "{pem(pki.ca)}" client_verify: true }}'
    )
    server = start(["--grpc_port=0", "--host=127.0.0.1", f"--metadata_store_server_config_file={config}"], tmp_path)
    servers.append(server)
    ok = official_client(mlmd_python, server.port, ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    assert ok["ok"], ok
    missing = official_client(mlmd_python, server.port, ca=pki.ca)
    assert not missing["ok"] and missing["error"] == "UnavailableError"
    assert server.stop() == 0


def test_bad_tls_configurations_refuse_to_start(pki: Pki, tmp_path: Path) -> None:
    base = ["serve", *_db(tmp_path)]
    cases = {
        "mismatched key": ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.other_server_key)],
        "unreadable certificate": ["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(pki.server_key)],
        "key without certificate": ["--tls-key", str(pki.server_key)],
        "plaintext on a public address next to TLS": [
            "--tls-cert",
            str(pki.server_cert),
            "--tls-key",
            str(pki.server_key),
            "--plaintext-port",
            "0",
            "--plaintext-host",
            "0.0.0.0",
        ],
    }
    for name, extra in cases.items():
        code, stdout, stderr = run_to_exit([*base, *extra], tmp_path)
        assert code != 0, name
        assert "listening" not in stdout, name
        assert "configuration error" in stderr, (name, stderr)


def test_plaintext_loopback_listener_beside_tls_and_the_explicit_override(
    pki: Pki, tmp_path: Path, servers: list[Server]
) -> None:
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    plain_port = free_port()
    server = start([*_db(tmp_path), *tls, "--plaintext-port", str(plain_port)], tmp_path)
    servers.append(server)
    with grpc.insecure_channel(f"127.0.0.1:{plain_port}") as channel:
        assert health_status(channel) == "SERVING"
    assert server.stop() == 0
    overridden = start(
        [*_db(tmp_path), *tls, "--plaintext-port", "0", "--plaintext-host", "0.0.0.0", "--insecure-i-know"], tmp_path
    )
    servers.append(overridden)
    assert overridden.stop() == 0
