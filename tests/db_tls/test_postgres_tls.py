"""PostgreSQL over TLS, verified both ways: libpq's sslmode=verify-full, sslrootcert and a client certificate."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from lineagedb.store.engine import create_engine
from tests.db_tls.conftest import (
    DB_PASSWORD,
    DB_USER,
    Pki,
    TlsPostgres,
    assert_no_secrets,
    assert_stopped_on_tls,
    exercise,
)
from tests.ops.conftest import Server, run_to_exit, start

KEY_PASSWORD = "key-pass-phrase"


def _serve(args: list[str]) -> list[str]:
    return ["serve", "--host", "127.0.0.1", "--port", "0", *args]


def test_verified_connection_is_encrypted_and_presents_the_client_certificate(
    tls_postgres: TlsPostgres, db_pki: Pki
) -> None:
    engine = create_engine(tls_postgres.verified_url(db_pki))
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT ssl, version, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ).one()
    finally:
        engine.dispose()
    assert row.ssl is True and row.version.startswith("TLSv1.")
    assert row.client_dn == f"/CN={DB_USER}"


def test_the_server_refuses_plaintext(tls_postgres: TlsPostgres) -> None:
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(
            host="127.0.0.1", port=tls_postgres.port, user=DB_USER, dbname=DB_USER, sslmode="disable", connect_timeout=5
        )


def test_serve_on_a_verified_url(tls_postgres: TlsPostgres, db_pki: Pki, tmp_path: Path, servers: list[Server]) -> None:
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", tls_postgres.verified_url(db_pki)], tmp_path)
    servers.append(server)
    exercise(server.address)
    # Every connection the server opened is encrypted and authenticated by our client certificate.
    admin = tls_postgres.admin_engine()
    with admin.connect() as connection:
        sessions = connection.execute(
            sa.text(
                "SELECT s.ssl, s.client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                "WHERE a.usename = :user AND a.datname = :user"
            ),
            {"user": DB_USER},
        ).all()
    admin.dispose()
    assert sessions and all(ssl and dn == f"/CN={DB_USER}" for ssl, dn in sessions), sessions
    assert server.stop() == 0
    assert_no_secrets(server.stderr())


def test_an_encrypted_client_key_and_its_password(
    tls_postgres: TlsPostgres, db_pki: Pki, tmp_path: Path, servers: list[Server]
) -> None:
    key = serialization.load_pem_private_key(db_pki.client_key.read_bytes(), password=None)
    encrypted = tmp_path / "client-encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )
    encrypted.chmod(0o600)
    url = tls_postgres.url(
        DB_USER,
        sslmode="verify-full",
        sslrootcert=str(db_pki.ca),
        sslcert=str(db_pki.client_cert),
        sslkey=str(encrypted),
        sslpassword=KEY_PASSWORD,
    )
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", url, "--log-level", "DEBUG"], tmp_path)
    servers.append(server)
    exercise(server.address)
    assert server.stop() == 0
    shown = server.stderr() + "".join(server.stdout)
    assert "sslpassword=REDACTED" in shown or "sslpassword" not in shown
    assert KEY_PASSWORD not in shown
    assert_no_secrets(shown)


@pytest.mark.parametrize(
    ("change", "driver_says"),
    [
        ("other_ca", "certificate verify failed"),  # the server's certificate is not from the CA we trust
        ("other_client", "unknown ca"),  # the server does not trust our client certificate
        ("wrong_host", "does not match host name"),  # verify-full: the certificate names another host
    ],
)
def test_a_certificate_that_does_not_verify_stops_startup_clearly(
    tls_postgres: TlsPostgres, db_pki: Pki, tmp_path: Path, change: str, driver_says: str
) -> None:
    query = {
        "sslmode": "verify-full",
        "sslrootcert": str(db_pki.ca),
        "sslcert": str(db_pki.client_cert),
        "sslkey": str(db_pki.client_key),
    }
    if change == "other_ca":
        query["sslrootcert"] = str(db_pki.other_ca)
    elif change == "other_client":
        query["sslcert"], query["sslkey"] = str(db_pki.other_client_cert), str(db_pki.other_client_key)
    else:
        # Connect to 127.0.0.1 but check the certificate against a name it does not hold.
        query["hostaddr"] = "127.0.0.1"
    url = tls_postgres.url(DB_USER, **query)
    if change == "wrong_host":
        url = url.replace("@127.0.0.1:", "@db.example.invalid:")
    code, _, stderr = run_to_exit(_serve(["--database", url]), tmp_path)
    assert_stopped_on_tls(code, stderr, driver_says)
    assert "postgresql+psycopg2://lineagedb:***@" in stderr


def test_a_missing_certificate_file_is_a_configuration_error(
    tls_postgres: TlsPostgres, db_pki: Pki, tmp_path: Path
) -> None:
    # libpq would skip a missing sslcert silently and the server would only say that one is required.
    url = tls_postgres.url(
        DB_USER, sslmode="verify-full", sslrootcert=str(db_pki.ca), sslcert=str(tmp_path / "gone.pem")
    )
    code, _, stderr = run_to_exit(_serve(["--database", url]), tmp_path)
    assert code == 2, stderr
    assert f"sslcert names {tmp_path / 'gone.pem'}, which is not an existing file" in stderr
    assert_no_secrets(stderr)


def test_mlmd_config_file_and_flags(
    tls_postgres: TlsPostgres, db_pki: Pki, tmp_path: Path, servers: list[Server]
) -> None:
    """MLMD's PostgreSQLDatabaseConfig.ssloption and --postgres_config_ssl* flags; the server creates the database."""
    config = tmp_path / "server_config.pbtxt"
    config.write_text(
        f"""connection_config {{
  postgresql {{
    host: "127.0.0.1" port: "{tls_postgres.port}" user: "{DB_USER}" password: "{DB_PASSWORD}" dbname: "mlmd_cfg"
    ssloption {{
      sslmode: "verify-full" sslrootcert: "{db_pki.ca}" sslcert: "{db_pki.client_cert}" sslkey: "{db_pki.client_key}"
    }}
  }}
}}
"""
    )
    server = start(["--host", "127.0.0.1", "--port", "0", f"--metadata_store_server_config_file={config}"], tmp_path)
    servers.append(server)
    exercise(server.address)
    assert server.stop() == 0
    assert_no_secrets(server.stderr())

    flags = [
        "--metadata_source_config_type=postgresql",
        "--postgres_config_host=127.0.0.1",
        f"--postgres_config_port={tls_postgres.port}",
        f"--postgres_config_user={DB_USER}",
        "--postgres_config_dbname=mlmd_flags",
        "--postgres_config_sslmode=verify-full",
        f"--postgres_config_sslrootcert={db_pki.ca}",
        f"--postgres_config_sslcert={db_pki.client_cert}",
        f"--postgres_config_sslkey={db_pki.client_key}",
    ]
    server = start(["--host", "127.0.0.1", "--port", "0", *flags], tmp_path)
    servers.append(server)
    exercise(server.address)
    assert server.stop() == 0
