"""A private 3-node MariaDB Galera cluster on local ports (once per module), and one LineageDB
server per node.

Node 1 is bootstrapped (--wsrep-new-cluster) on a fresh data directory; nodes 2 and 3 join and
receive its state by rsync (SST). Nothing of the system MariaDB on 3306 is touched. Missing
binaries (mariadbd, galera-4, rsync) are a skip locally and a failure in CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa

from tests.backends import IN_CI
from tests.conftest import LiveServer, start_server, stop_server
from tests.ops.conftest import free_port, wait_for

MARIADBD = Path("/usr/sbin/mariadbd")
GALERA = Path("/usr/lib/galera/libgalera_smm.so")
INSTALL_DB = "mariadb-install-db"
JOIN_TIMEOUT_S = 90
DATABASE = "lineagedb"
ROOT_USER = os.geteuid() == 0


def require_galera() -> None:
    missing = [str(path) for path in (MARIADBD, GALERA) if not path.exists()]
    missing += [name for name in (INSTALL_DB, "rsync", "wsrep_sst_rsync") if shutil.which(name) is None]
    if missing:
        reason = f"MariaDB Galera cluster cannot run here: missing {', '.join(missing)}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


class Node:
    def __init__(self, root: Path, index: int, cluster_ports: list[int]) -> None:
        self.index = index
        self.dir = root / f"node{index}"
        self.data = self.dir / "data"
        self.data.mkdir(parents=True)
        self.port = free_port()
        self.gcomm_port = cluster_ports[index - 1]
        self.process: subprocess.Popen[bytes] | None = None
        members = ",".join(f"127.0.0.1:{port}" for port in cluster_ports)
        options = f"gmcast.listen_addr=tcp://127.0.0.1:{self.gcomm_port};ist.recv_addr=127.0.0.1:{free_port()};"
        options += "gcache.size=32M;evs.inactive_timeout=PT6S;evs.suspect_timeout=PT3S"
        settings = {
            "datadir": self.data,
            "socket": self.dir / "mysqld.sock",
            "pid-file": self.dir / "mysqld.pid",
            "port": self.port,
            "bind-address": "127.0.0.1",
            "log-error": self.dir / "error.log",
            "skip-name-resolve": "ON",
            "innodb_buffer_pool_size": "32M",
            "innodb_log_file_size": "16M",
            "innodb_flush_log_at_trx_commit": "0",
            "performance_schema": "OFF",
            "max_connections": "200",
            "binlog_format": "ROW",
            "default_storage_engine": "InnoDB",
            "innodb_autoinc_lock_mode": "2",
            "wsrep_on": "ON",
            "wsrep_provider": GALERA,
            "wsrep_cluster_name": "lineagedb-test",
            "wsrep_cluster_address": f"gcomm://{members}",
            "wsrep_node_address": f"127.0.0.1:{self.gcomm_port}",
            "wsrep_node_name": f"node{index}",
            "wsrep_sst_method": "rsync",
            "wsrep_sst_receive_address": f"127.0.0.1:{free_port()}",
            "wsrep_provider_options": f'"{options}"',
            "wsrep_slave_threads": "2",
        }
        if ROOT_USER:  # mariadbd refuses to run as root unless told; it runs as mysql
            settings["user"] = "mysql"
        self.config = self.dir / "my.cnf"
        self.config.write_text("[mariadbd]\n" + "".join(f"{key}={value}\n" for key, value in settings.items()))
        if ROOT_USER:
            shutil.chown(self.dir, "mysql", "mysql")
            shutil.chown(self.data, "mysql", "mysql")

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{DATABASE}"

    def install(self) -> None:
        subprocess.run(
            [
                INSTALL_DB,
                f"--defaults-file={self.config}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )

    def start(self, *extra: str) -> None:
        log = (self.dir / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            [str(MARIADBD), f"--defaults-file={self.config}", *extra], stdout=log, stderr=subprocess.STDOUT
        )
        if not wait_for(self.synced, JOIN_TIMEOUT_S, interval=0.3):
            self.kill()
            tail = (self.dir / "error.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"Galera node {self.index} did not join the cluster:\n{tail}")

    def status(self, name: str) -> str | None:
        try:
            connection = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=2)
        except pymysql.Error:
            return None
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW STATUS LIKE %s", (name,))
                row = cursor.fetchone()
                return None if row is None else str(row[1])
        finally:
            connection.close()

    def synced(self) -> bool:
        return self.status("wsrep_local_state_comment") == "Synced" and self.status("wsrep_ready") == "ON"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


class Cluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lineagedb-galera-"))
        if ROOT_USER:
            shutil.chown(self.root, "mysql", "mysql")
        ports = [free_port() for _ in range(3)]
        self.nodes = [Node(self.root, index, ports) for index in (1, 2, 3)]

    def start(self) -> None:
        first, *others = self.nodes
        first.install()
        first.start("--wsrep-new-cluster")
        engine = sa.create_engine(first.url.rsplit("/", 1)[0] + "/mysql", isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4"))
        engine.dispose()
        for node in others:  # one at a time: each receives the state by rsync
            node.start()
        assert first.status("wsrep_cluster_size") == "3"

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    require_galera()
    started = Cluster()
    try:
        started.start()
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def node_servers(cluster: Cluster) -> Iterator[list[LiveServer]]:
    """One LineageDB server per node, started one after another (the first creates the schema)."""
    started: list[LiveServer] = []
    try:
        for node in cluster.nodes:
            started.append(start_server(node.url, "--health-interval-s", "0.5"))
        yield started
    finally:
        for server in started:
            if server.process.poll() is None:
                stop_server(server)
