"""The TLS options of database URLs, MLMD's config file and flags: what each turns into (no server needed)."""

from __future__ import annotations

import argparse
import logging
import socket
import ssl
from pathlib import Path

import psycopg2
import pymysql
import pytest
from cryptography.hazmat.primitives import serialization
from google.protobuf import text_format
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from lineagedb.ops import mlmd_flags
from lineagedb.ops.database import redacted
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.store import db_tls
from lineagedb.store.engine import create_engine
from tests.pki import Pki, new_key, write_pem


def _mysql(**query: str) -> db_tls.DriverArguments:
    options = "&".join(f"{key}={value}" for key, value in query.items())
    return db_tls.driver_arguments(make_url(f"mysql+pymysql://u:pw@db.example:3306/mlmd?{options}"))


def _context(arguments: db_tls.DriverArguments) -> ssl.SSLContext:
    context = arguments.connect_args["ssl"]
    assert isinstance(context, ssl.SSLContext)
    return context


def test_mysql_ca_verifies_certificate_and_host_name(db_pki: Pki) -> None:
    arguments = _mysql(ssl_ca=str(db_pki.ca), ssl_cert=str(db_pki.client_cert), ssl_key=str(db_pki.client_key))
    context = _context(arguments)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert arguments.tls_required and arguments.tls_verified
    # The context replaces what SQLAlchemy makes of ssl_ca & co.; the URL keeps them (for messages).
    assert set(arguments.connect_args) == {"ssl"}
    assert set(arguments.url.query) == {"ssl_ca", "ssl_cert", "ssl_key"}


def test_mysql_verification_switches(db_pki: Pki) -> None:
    no_host = _context(_mysql(ssl_ca=str(db_pki.ca), ssl_check_hostname="false"))
    assert no_host.verify_mode == ssl.CERT_REQUIRED and not no_host.check_hostname
    # Without a CA, asking for verification uses the system's CAs (PyMySQL alone verified nothing here).
    for option in ("ssl_verify_cert", "ssl_check_hostname", "ssl_verify_identity"):
        system = _mysql(**{option: "true"})
        assert system.tls_verified and _context(system).verify_mode == ssl.CERT_REQUIRED
        assert _context(system).check_hostname
    unverified = _mysql(ssl_cert=str(db_pki.client_cert), ssl_key=str(db_pki.client_key))
    assert unverified.tls_required and not unverified.tls_verified
    assert _context(unverified).verify_mode == ssl.CERT_NONE
    opted_out = _mysql(ssl_ca=str(db_pki.ca), ssl_verify_cert="false", ssl_check_hostname="false")
    assert not opted_out.tls_verified and _context(opted_out).verify_mode == ssl.CERT_NONE
    disabled = _mysql(ssl_disabled="true")
    assert disabled.connect_args == {"ssl_disabled": True} and not disabled.tls_required
    # PyMySQL took the string "false" for true; here it means the default (TLS if the server offers it).
    assert _mysql(ssl_disabled="false").connect_args == {"ssl_disabled": None}
    # PyMySQL's own keywords never reach it as strings (its ssl_verify_cert would drop our CA).
    assert _mysql(ssl_ca=str(db_pki.ca), ssl_verify_cert="true").connect_args["ssl_verify_cert"] is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"ssl_mode": "REQUIRED"}, "unknown MySQL/MariaDB TLS option(s) ssl_mode"),
        ({"ssl_check_hostname": "maybe"}, "ssl_check_hostname must be true or false"),
        ({"ssl_verify_cert": "false", "ssl_check_hostname": "true"}, "needs a verified certificate"),
        ({"ssl_check_hostname": "true", "ssl_verify_identity": "false"}, "disagree"),
        ({"ssl_ca": "/nonexistent/ca.pem"}, "ssl_ca names /nonexistent/ca.pem, which is not an existing file"),
        ({"ssl_capath": "/nonexistent"}, "ssl_capath names /nonexistent, which is not an existing directory"),
        ({"ssl_disabled": "true", "ssl_ca": "CA"}, "ssl_disabled=true contradicts"),
        ({"ssl_key": "KEY"}, "ssl_key needs ssl_cert"),
        ({"ssl_cert": "CERT", "ssl_key": "OTHER_KEY"}, "TLS options are unusable (KEY_VALUES_MISMATCH)"),
        ({"ssl_cert": "CERT", "ssl_key": "ENCRYPTED_KEY"}, "the ssl_key file is encrypted"),
        ({"ssl_cert": "CERT", "ssl_key": "ENCRYPTED_KEY", "ssl_key_password": "wrong"}, "TLS options are unusable"),
    ],
)
def test_mysql_unusable_options_are_refused_before_connecting(
    db_pki: Pki, tmp_path: Path, query: dict[str, str], message: str
) -> None:
    other_key = write_pem(tmp_path / "other.key", new_key())
    paths = {"CA": str(db_pki.ca), "CERT": str(db_pki.client_cert), "KEY": str(db_pki.client_key)}
    paths["OTHER_KEY"] = str(other_key)
    paths["ENCRYPTED_KEY"] = str(_encrypted_key(db_pki, tmp_path))
    resolved = {key: paths.get(value, value) for key, value in query.items()}
    with pytest.raises(sa_exc.ArgumentError) as refused:
        _mysql(**resolved)
    assert message in str(refused.value)
    assert "PRIVATE KEY" not in str(refused.value)


def _encrypted_key(db_pki: Pki, tmp_path: Path) -> Path:
    key = serialization.load_pem_private_key(db_pki.client_key.read_bytes(), password=None)
    path = tmp_path / "client-encrypted.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key-secret"),
        )
    )
    return path


def test_mysql_encrypted_client_key(db_pki: Pki, tmp_path: Path) -> None:
    key = _encrypted_key(db_pki, tmp_path)
    arguments = _mysql(
        ssl_ca=str(db_pki.ca), ssl_cert=str(db_pki.client_cert), ssl_key=str(key), ssl_key_password="key-secret"
    )
    assert isinstance(arguments.connect_args["ssl"], ssl.SSLContext)
    assert "ssl_key_password" not in arguments.url.query  # engine.url, shown in logs, never holds it


def test_postgres_files_are_checked_and_the_key_password_leaves_the_url(db_pki: Pki, tmp_path: Path) -> None:
    url = make_url(
        f"postgresql+psycopg2://u:pw@db/mlmd?sslmode=verify-full&sslrootcert={db_pki.ca}"
        f"&sslcert={db_pki.client_cert}&sslkey={db_pki.client_key}&sslpassword=key-secret"
    )
    arguments = db_tls.driver_arguments(url)
    assert arguments.connect_args == {"sslpassword": "key-secret"}
    assert "sslpassword" not in arguments.url.query and arguments.url.query["sslmode"] == "verify-full"
    engine = create_engine(url)
    try:  # engine.url is what gets logged
        assert "key-secret" not in engine.url.render_as_string(hide_password=False)
    finally:
        engine.dispose()
    assert "key-secret" not in redacted(url) and "sslpassword=REDACTED" in redacted(url)
    assert "ssl_key_password=REDACTED" in redacted("mysql://u:pw@db/m?ssl_key_password=k&ssl_cert=c")
    db_tls.driver_arguments(make_url("postgresql://u@db/m?sslmode=verify-full&sslrootcert=system"))
    with pytest.raises(sa_exc.ArgumentError, match=r"sslkey names .*, which is not an existing file"):
        db_tls.driver_arguments(make_url(f"postgresql://u@db/m?sslkey={tmp_path / 'missing.key'}"))


def test_unverified_mysql_tls_is_warned_about(db_pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lineagedb.store.engine"):
        create_engine(f"mysql://u:pw@db/m?ssl_cert={db_pki.client_cert}&ssl_key={db_pki.client_key}").dispose()
        create_engine(f"mysql://u:pw@db/m?ssl_ca={db_pki.ca}").dispose()
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and "does not verify the server's certificate" in warnings[0]
    assert ":pw@" not in warnings[0]


def test_tls_failures_are_told_from_outages() -> None:
    def pymysql_error(code: int, cause: BaseException | None) -> sa_exc.DBAPIError:
        orig = pymysql.err.OperationalError(code, "Can't connect")
        orig.__context__ = cause
        return sa_exc.OperationalError("connect", None, orig)

    def libpq_error(text: str) -> sa_exc.DBAPIError:
        return sa_exc.OperationalError("connect", None, psycopg2.OperationalError(text))

    failures = [
        pymysql_error(2003, ssl.SSLCertVerificationError("certificate verify failed")),
        pymysql_error(2013, ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")),
        pymysql_error(db_tls.CR_SSL_CONNECTION_ERROR, None),
        libpq_error('connection to server at "h", port 5432 failed: SSL error: certificate verify failed'),
        libpq_error('server certificate for "a" does not match host name "b"'),
        libpq_error('root certificate file "/x" does not exist'),
        libpq_error("FATAL:  connection requires a valid client certificate"),
        libpq_error("server does not support SSL, but SSL was required"),
    ]
    outages = [
        pymysql_error(2003, ConnectionRefusedError(111, "Connection refused")),
        pymysql_error(2013, ssl.SSLEOFError(8, "EOF occurred in violation of protocol")),
        libpq_error('connection to server at "h", port 5432 failed: Connection refused'),
        libpq_error("SSL SYSCALL error: EOF detected"),
        libpq_error('FATAL:  password authentication failed for user "u"'),
    ]
    assert [db_tls.is_tls_failure(error) for error in failures] == [True] * len(failures)
    assert [db_tls.is_tls_failure(error) for error in outages] == [False] * len(outages)


def _mysql_config_url(ssl_options: str) -> str:
    mysql = f'host: "db" port: 3306 database: "m" user: "u" ssl_options {{ {ssl_options} }}'
    config = text_format.Parse(f"connection_config {{ mysql {{ {mysql} }} }}", mlmd.MetadataStoreServerConfig())
    url = mlmd_flags.source_from_server_config(config).url
    assert url is not None
    return url.render_as_string(hide_password=False)


def _flags_url(argv: list[str]) -> str:
    parser = argparse.ArgumentParser()
    mlmd_flags.add_arguments(parser, lambda _name: None)
    args, _ = parser.parse_known_args(argv)
    url = mlmd_flags.source_from_args(args, argv).url
    assert url is not None
    return url.render_as_string(hide_password=False)


def test_mlmd_ssl_options_and_flags_map_to_the_same_url(db_pki: Pki) -> None:
    mysql = ["--mysql_config_host=db", "--mysql_config_port=3306", "--mysql_config_database=m", "--mysql_config_user=u"]
    verified = _mysql_config_url(f'ca: "{db_pki.ca}" cert: "C" key: "K" cipher: "X" verify_server_cert: true')
    assert verified == _flags_url(
        [
            *mysql,
            f"--mysql_config_sslrootcert={db_pki.ca}",
            "--mysql_config_sslcert=C",
            "--mysql_config_sslkey=K",
            "--mysql_config_sslcipher=X",
            "--mysql_config_verify_server_cert=true",
        ]
    )
    assert dict(make_url(verified).query) == {
        "ssl_key": "K",
        "ssl_cert": "C",
        "ssl_ca": str(db_pki.ca),
        "ssl_cipher": "X",
        "ssl_verify_cert": "true",
        "ssl_check_hostname": "true",
    }
    # verify_server_cert=false: a CA still verifies the chain (as MLMD's client does), not the host name.
    chain_only = _mysql_config_url(f'ca: "{db_pki.ca}"')
    assert chain_only == _flags_url([*mysql, f"--mysql_config_sslrootcert={db_pki.ca}"])
    context = _context(db_tls.driver_arguments(make_url(chain_only)))
    assert context.verify_mode == ssl.CERT_REQUIRED and not context.check_hostname
    # verify_server_cert alone (no CA): the system's CAs, host name checked.
    alone = _flags_url([*mysql, "--mysql_config_verify_server_cert"])
    assert alone == _mysql_config_url("verify_server_cert: true")
    assert _context(db_tls.driver_arguments(make_url(alone))).check_hostname

    postgres = _flags_url(
        [
            "--metadata_source_config_type=postgresql",
            "--postgres_config_host=db",
            "--postgres_config_port=5432",
            "--postgres_config_user=u",
            "--postgres_config_dbname=m",
            "--postgres_config_sslmode=verify-full",
            "--postgres_config_sslrootcert=/ca.pem",
            "--postgres_config_sslcert=/c.pem",
            "--postgres_config_sslkey=/k.pem",
        ]
    )
    config = text_format.Parse(
        'connection_config { postgresql { host: "db" port: "5432" user: "u" dbname: "m" ssloption { '
        'sslmode: "verify-full" sslrootcert: "/ca.pem" sslcert: "/c.pem" sslkey: "/k.pem" } } }',
        mlmd.MetadataStoreServerConfig(),
    )
    from_file = mlmd_flags.source_from_server_config(config).url
    assert from_file is not None and postgres == from_file.render_as_string(hide_password=False)
    assert dict(make_url(postgres).query) == {
        "sslmode": "verify-full",
        "sslrootcert": "/ca.pem",
        "sslcert": "/c.pem",
        "sslkey": "/k.pem",
    }


def test_a_mysql_connection_that_asked_for_tls_but_is_plaintext_is_refused() -> None:
    """PyMySQL 1.x went on in plaintext when the server did not offer TLS; the engine checks the socket."""

    class Plain:
        closed = False

        def __init__(self, sock: socket.socket) -> None:
            self._sock = sock

        def close(self) -> None:
            self.closed = True

    with socket.socket() as sock:
        connection = Plain(sock)
        with pytest.raises(pymysql.err.OperationalError) as refused:
            db_tls.require_encrypted(connection)
        assert refused.value.args[0] == db_tls.CR_SSL_CONNECTION_ERROR and connection.closed
        assert db_tls.is_tls_failure(sa_exc.OperationalError("connect", None, refused.value))
