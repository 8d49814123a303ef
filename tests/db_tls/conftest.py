"""Encryption in transit to the database: private PostgreSQL and MariaDB servers that speak only TLS.

The shared services on 5432/3306 are never reconfigured. Each private server starts once per
session on a free port, with certificates made here: a CA, a server certificate for localhost and
127.0.0.1, a client certificate for the database user `lineagedb`, and an unrelated CA. Both servers
refuse plaintext TCP and client certificates from other CAs; the admin connections of the tests go
over the servers' own Unix sockets. Missing server binaries skip these tests locally and fail them
under CI (CI=true), like an unreachable backend.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pymysql
import pytest
import sqlalchemy as sa

from lineagedb.ops.health import TLS_FAILURE
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.backends import IN_CI
from tests.ops.conftest import free_port
from tests.ops.conftest import servers as servers  # the fixture: `lineagedb serve` processes stopped after a test
from tests.pki import Pki, make_pki
from tests.resilience.conftest import PG_BIN, PrivatePostgres

MARIADBD = Path("/usr/sbin/mariadbd")
MARIADB_INSTALL_DB = Path(shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db")
DB_USER = "lineagedb"
# The MariaDB account has a password as well as its certificate, so that tests can check that
# no message shows it. PostgreSQL's `cert` authentication ignores passwords; URLs carry this one
# there too, for the same check.
DB_PASSWORD = "s3cret-db-pw"
START_TIMEOUT_S = 60.0


def require_binaries(*paths: Path) -> None:
    """The private servers need their binaries, and root (they run as the `postgres` / `mysql` users)."""
    missing = [str(path) for path in paths if not path.exists()]
    reason = f"database server binaries not installed: {', '.join(missing)}" if missing else None
    if reason is None and os.geteuid() != 0:
        reason = "the private database servers are started as root (runuser postgres, mariadbd --user=mysql)"
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI requires the private database servers: {reason}")
        pytest.skip(reason)


# ------------------------------------------------------------------------- certificates


@pytest.fixture(scope="session")
def db_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    # PostgreSQL's `cert` authentication maps the certificate's CN to the database user.
    return make_pki(
        tmp_path_factory.mktemp("db-pki"),
        client_name=DB_USER,
        other_client_name=DB_USER,
        ca_name="LineageDB database test CA",
    )


def _install_server_files(pki: Pki, directory: Path, owner: str) -> tuple[Path, Path, Path]:
    """Copies of the CA, server certificate and key that the server's OS user can read."""
    copies = []
    for source in (pki.ca, pki.server_cert, pki.server_key):
        target = directory / f"server-{source.name}"
        shutil.copyfile(source, target)
        target.chmod(0o600)
        shutil.chown(target, owner)
        copies.append(target)
    return copies[0], copies[1], copies[2]


# ------------------------------------------------------------------------- PostgreSQL

PG_HBA = """\
# Admin over the private Unix socket; TCP only with TLS and a client certificate whose CN is the user.
local   all  all                trust
hostssl all  all  127.0.0.1/32  cert
host    all  all  127.0.0.1/32  reject
host    all  all  ::1/128       reject
"""


@dataclass
class TlsPostgres:
    cluster: PrivatePostgres

    @property
    def port(self) -> int:
        return self.cluster.port

    def admin_engine(self) -> sa.Engine:
        url = sa.engine.URL.create(
            "postgresql+psycopg2",
            username="postgres",
            database="postgres",
            query={"host": str(self.cluster.root), "port": str(self.cluster.port)},
        )
        return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)

    def url(self, database: str, **query: str) -> str:
        options = "&".join(f"{key}={value}" for key, value in query.items())
        return f"postgresql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.port}/{database}" + (
            f"?{options}" if options else ""
        )

    def verified_url(self, pki: Pki, database: str = DB_USER) -> str:
        return self.url(
            database,
            sslmode="verify-full",
            sslrootcert=str(pki.ca),
            sslcert=str(pki.client_cert),
            sslkey=str(pki.client_key),
        )


@pytest.fixture(scope="session")
def tls_postgres(db_pki: Pki) -> Iterator[TlsPostgres]:
    require_binaries(PG_BIN / "initdb", PG_BIN / "pg_ctl")
    cluster = PrivatePostgres()
    try:
        ca, cert, key = _install_server_files(db_pki, cluster.root, "postgres")
        hba = cluster.data / "pg_hba.conf"
        hba.write_text(PG_HBA)
        shutil.chown(hba, "postgres")
        cluster.settings.update(
            {"ssl": "on", "ssl_ca_file": str(ca), "ssl_cert_file": str(cert), "ssl_key_file": str(key)}
        )
        cluster.start()
        server = TlsPostgres(cluster)
        admin = server.admin_engine()
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE ROLE {DB_USER} LOGIN CREATEDB")
            connection.exec_driver_sql(f"CREATE DATABASE {DB_USER} OWNER {DB_USER}")
        admin.dispose()
        yield server
    except BaseException:
        print(cluster.log_text()[-3000:])
        raise
    finally:
        cluster.destroy()


# ------------------------------------------------------------------------- MariaDB


class PrivateMariaDB:
    """A throw-away mariadbd on a free port with its own data directory and socket, run as `mysql`."""

    def __init__(self, options: list[str]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lineagedb-mariadb-"))
        shutil.chown(self.root, "mysql")
        self.data = self.root / "data"
        self.socket = self.root / "mysqld.sock"
        self.log = self.root / "mariadbd.log"
        self.port = free_port()
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None
        # Its own temporary directory: bootstraps running at once (xdist workers) collided in /tmp.
        tmpdir = self.root / "tmp"
        tmpdir.mkdir()
        shutil.chown(tmpdir, "mysql")
        # Small InnoDB files keep the bootstrap to a second or two.
        self._common = ["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", f"--tmpdir={tmpdir}"]
        installed = subprocess.run(
            [
                str(MARIADB_INSTALL_DB),
                "--no-defaults",
                "--user=mysql",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                *self._common,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if installed.returncode != 0:
            shutil.rmtree(self.root, ignore_errors=True)
            raise RuntimeError(f"mariadb-install-db failed:\n{installed.stdout[-2000:]}{installed.stderr[-2000:]}")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(MARIADBD),
                "--no-defaults",
                "--user=mysql",
                f"--datadir={self.data}",
                f"--socket={self.socket}",
                f"--pid-file={self.root / 'mariadbd.pid'}",
                f"--log-error={self.log}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
                *self._common,
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self.admin().close()
                return
            except pymysql.err.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd did not start:\n{self.log_text()[-3000:]}") from None
                time.sleep(0.1)

    def admin(self) -> pymysql.connections.Connection:
        """root over the Unix socket (socket authentication: the tests run as root)."""
        return pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def destroy(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class TlsMariaDB:
    server: PrivateMariaDB

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, database: str, **query: str) -> str:
        options = "&".join(f"{key}={value}" for key, value in query.items())
        return f"mysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.port}/{database}" + (f"?{options}" if options else "")

    def verified_url(self, pki: Pki, database: str = DB_USER) -> str:
        return self.url(database, ssl_ca=str(pki.ca), ssl_cert=str(pki.client_cert), ssl_key=str(pki.client_key))


@pytest.fixture(scope="session")
def tls_mariadb(db_pki: Pki) -> Iterator[TlsMariaDB]:
    require_binaries(MARIADBD, MARIADB_INSTALL_DB)
    server = PrivateMariaDB([])
    try:
        ca, cert, key = _install_server_files(db_pki, server.root, "mysql")
        server.options += [
            f"--ssl-ca={ca}",
            f"--ssl-cert={cert}",
            f"--ssl-key={key}",
            "--require-secure-transport=ON",
        ]
        server.start()
        admin = server.admin()
        with admin.cursor() as cursor:
            # The account needs the password and a client certificate that verifies against --ssl-ca.
            cursor.execute(f"CREATE USER '{DB_USER}'@'%%' IDENTIFIED BY %s REQUIRE X509", (DB_PASSWORD,))
            cursor.execute(f"GRANT ALL ON *.* TO '{DB_USER}'@'%'")
            cursor.execute(f"CREATE DATABASE {DB_USER} CHARACTER SET utf8mb4")
        admin.close()
        yield TlsMariaDB(server)
    except BaseException:
        print(server.log_text()[-3000:])
        raise
    finally:
        server.destroy()


# ------------------------------------------------------------------------- checks


def exercise(address: str) -> None:
    """A few RPCs that write and read through the server's database connections."""
    name = f"over-tls-{uuid.uuid4().hex[:8]}"  # tests share the session's databases
    with grpc.insecure_channel(address) as channel:
        stub = svc_grpc.MetadataStoreServiceStub(channel)
        type_id = stub.PutArtifactType(
            svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="tls.Blob")), timeout=30
        ).type_id
        ids = stub.PutArtifacts(
            svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, uri="mem://tls/1", name=name)]),
            timeout=30,
        ).artifact_ids
        read = stub.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=ids), timeout=30)
        assert [a.name for a in read.artifacts] == [name]


def assert_no_secrets(text: str) -> None:
    """What a user sees names neither the password nor key material, and holds no traceback."""
    assert DB_PASSWORD not in text
    assert "PRIVATE KEY" not in text and "-----BEGIN" not in text
    assert "Traceback" not in text


def assert_stopped_on_tls(code: int, stderr: str, driver_says: str) -> None:
    """`lineagedb serve` exited 3 and said why: TLS to the database failed, with the driver's reason.

    Usually the first connection shows it and the server never listens. When the *server* rejects
    our client certificate under TLS 1.3, it does so after the client's half of the handshake, and
    the connection may die (EOF, reset) before its alert is read: that first attempt looks like an
    outage, and the server starts NOT_SERVING, retries, reads the alert and stops.
    """
    assert code == 3, stderr
    last = stderr.strip().splitlines()[-1]
    assert ("lineagedb: cannot prepare the database at " in last) or ("stopped: the database cannot be used" in last)
    assert TLS_FAILURE in last and driver_says in last, last
    assert_no_secrets(stderr)
