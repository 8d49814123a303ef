"""MariaDB over TLS with verification both ways: ssl_ca, ssl_cert/ssl_key and MLMD's ssl_options."""

from __future__ import annotations

from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa

from lineagedb.store.engine import create_engine
from tests.db_tls.conftest import (
    DB_PASSWORD,
    DB_USER,
    Pki,
    TlsMariaDB,
    assert_no_secrets,
    assert_stopped_on_tls,
    exercise,
)
from tests.ops.conftest import Server, run_to_exit, start


def test_verified_connection_is_encrypted(tls_mariadb: TlsMariaDB, db_pki: Pki) -> None:
    engine = create_engine(tls_mariadb.verified_url(db_pki))
    try:
        with engine.connect() as connection:
            cipher = connection.exec_driver_sql("SHOW SESSION STATUS LIKE 'Ssl_cipher'").one()[1]
            version = connection.exec_driver_sql("SHOW SESSION STATUS LIKE 'Ssl_version'").one()[1]
    finally:
        engine.dispose()
    assert cipher and version.startswith("TLSv1."), (cipher, version)


def test_the_server_refuses_plaintext_and_connections_without_a_client_certificate(
    tls_mariadb: TlsMariaDB, db_pki: Pki
) -> None:
    admin = tls_mariadb.server.admin()
    with admin.cursor() as cursor:
        cursor.execute("SELECT @@require_secure_transport")
        assert cursor.fetchone() == (1,)
    admin.close()
    common = {"host": "127.0.0.1", "port": tls_mariadb.port, "user": DB_USER, "password": DB_PASSWORD}
    # (MariaDB reports a refused insecure transport as "access denied".)
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        pymysql.connect(**common, ssl_disabled=True, connect_timeout=5)
    engine = create_engine(tls_mariadb.url(DB_USER, ssl_ca=str(db_pki.ca)))  # TLS, but no client certificate
    try:
        with pytest.raises(sa.exc.OperationalError, match="Access denied"), engine.connect():
            pass
    finally:
        engine.dispose()


def test_serve_on_a_verified_url(tls_mariadb: TlsMariaDB, db_pki: Pki, tmp_path: Path, servers: list[Server]) -> None:
    # The account requires a client certificate (REQUIRE X509), so every session of the server is TLS.
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", tls_mariadb.verified_url(db_pki)], tmp_path)
    servers.append(server)
    exercise(server.address)
    assert server.stop() == 0
    assert_no_secrets(server.stderr())


@pytest.mark.parametrize(
    ("change", "driver_says"),
    [
        ("other_ca", "CERTIFICATE_VERIFY_FAILED"),  # the server's certificate is not from the CA we trust
        ("other_client", "UNKNOWN_CA"),  # the server does not trust our client certificate
    ],
)
def test_a_certificate_that_does_not_verify_stops_startup_clearly(
    tls_mariadb: TlsMariaDB, db_pki: Pki, tmp_path: Path, change: str, driver_says: str
) -> None:
    query = {"ssl_ca": str(db_pki.ca), "ssl_cert": str(db_pki.client_cert), "ssl_key": str(db_pki.client_key)}
    if change == "other_ca":
        query["ssl_ca"] = str(db_pki.other_ca)
    else:
        query["ssl_cert"], query["ssl_key"] = str(db_pki.other_client_cert), str(db_pki.other_client_key)
    args = ["serve", "--host", "127.0.0.1", "--port", "0", "--database", tls_mariadb.url(DB_USER, **query)]
    code, _, stderr = run_to_exit(args, tmp_path)
    assert_stopped_on_tls(code, stderr, driver_says)
    assert "mysql+pymysql://lineagedb:***@127.0.0.1" in stderr


def _config_file(tmp_path: Path, tls_mariadb: TlsMariaDB, database: str, ssl_options: str) -> Path:
    config = tmp_path / f"{database}.pbtxt"
    config.write_text(
        f"""connection_config {{
  mysql {{
    host: "127.0.0.1" port: {tls_mariadb.port} database: "{database}" user: "{DB_USER}" password: "{DB_PASSWORD}"
    ssl_options {{ {ssl_options} }}
  }}
}}
"""
    )
    return config


def test_mlmd_config_file_ssl_options(
    tls_mariadb: TlsMariaDB, db_pki: Pki, tmp_path: Path, servers: list[Server]
) -> None:
    """MLMD's MySQLDatabaseConfig.ssl_options with verify_server_cert; the server creates the database."""
    options = f'key: "{db_pki.client_key}" cert: "{db_pki.client_cert}" ca: "{db_pki.ca}" verify_server_cert: true'
    config = _config_file(tmp_path, tls_mariadb, "mlmd_cfg", options)
    server = start(["--host", "127.0.0.1", "--port", "0", f"--metadata_store_server_config_file={config}"], tmp_path)
    servers.append(server)
    exercise(server.address)
    assert server.stop() == 0
    assert_no_secrets(server.stderr())

    # The same file with the other CA: verify_server_cert cannot be satisfied, startup stops.
    options = options.replace(str(db_pki.ca), str(db_pki.other_ca))
    config = _config_file(tmp_path, tls_mariadb, "mlmd_cfg", options)
    args = ["serve", "--host", "127.0.0.1", "--port", "0", f"--metadata_store_server_config_file={config}"]
    code, _, stderr = run_to_exit(args, tmp_path)
    assert_stopped_on_tls(code, stderr, "CERTIFICATE_VERIFY_FAILED")


def test_mlmd_flags(tls_mariadb: TlsMariaDB, db_pki: Pki, tmp_path: Path, servers: list[Server]) -> None:
    flags = [
        "--mysql_config_host=127.0.0.1",
        f"--mysql_config_port={tls_mariadb.port}",
        "--mysql_config_database=mlmd_flags",
        f"--mysql_config_user={DB_USER}",
        f"--mysql_config_sslrootcert={db_pki.ca}",
        f"--mysql_config_sslcert={db_pki.client_cert}",
        f"--mysql_config_sslkey={db_pki.client_key}",
        "--mysql_config_verify_server_cert=true",
    ]
    server = start(
        ["--host", "127.0.0.1", "--port", "0", *flags], tmp_path, env={"LINEAGEDB_DATABASE_PASSWORD": DB_PASSWORD}
    )
    servers.append(server)
    exercise(server.address)
    assert server.stop() == 0
    assert_no_secrets(server.stderr())
