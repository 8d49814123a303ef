"""Database passwords come from LINEAGEDB_DATABASE_PASSWORD or a file, never from argv (T35).

A private PostgreSQL cluster that requires a SCRAM password on TCP.
"""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.ops.conftest import Server, run_to_exit, start
from tests.resilience.conftest import PrivatePostgres, Workload, channel


@pytest.fixture
def password_pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres(password="pw-" + secrets.token_hex(12))
    cluster.start()
    yield cluster
    cluster.destroy()


def _serves_with(env: dict[str, str], url: str, secret: str, tmp_path: Path, servers: list[Server]) -> None:
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", url, "--fail-fast"], tmp_path, env)
    servers.append(server)
    workload = Workload()
    with channel(server.address) as ch:
        stub = svc_grpc.MetadataStoreServiceStub(ch)
        workload.create_types(stub)
        assert workload.put(stub) == "OK"
    cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
    assert secret.encode() not in cmdline
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    assert secret not in server.stderr()


def test_password_from_environment_or_file_never_argv(
    password_pg: PrivatePostgres, tmp_path: Path, servers: list[Server]
) -> None:
    secret = password_pg.password or ""
    password_pg.create_database("lineagedb")
    url = password_pg.url("lineagedb", with_password=False)
    # Without a password the database refuses us; --fail-fast exits with a message that names no secret.
    code, stdout, stderr = run_to_exit(
        ["serve", "--port", "0", "--database", url, "--fail-fast", "--metadata_store_connection_retries=0"], tmp_path
    )
    assert code == 3 and "not reachable" in stderr and "listening" not in stdout
    _serves_with({"LINEAGEDB_DATABASE_PASSWORD": secret}, url, secret, tmp_path, servers)
    password_file = tmp_path / "db-password"
    password_file.write_text(secret + "\n")
    password_file.chmod(0o600)
    _serves_with({"LINEAGEDB_DATABASE_PASSWORD_FILE": str(password_file)}, url, secret, tmp_path, servers)
    # `lineagedb db current` reads the same variables.
    code, stdout, stderr = run_to_exit(
        ["db", "current", "--database", url], tmp_path, {"LINEAGEDB_DATABASE_PASSWORD_FILE": str(password_file)}
    )
    assert code == 0, stderr
    assert "revision=" in stdout and secret not in stdout + stderr
