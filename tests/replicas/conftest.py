"""A private PostgreSQL primary with one streaming replica (pg_basebackup -R), once per module,
and a LineageDB server reading from the replica.

The PostgreSQL binaries missing is a skip locally and a failure in CI (tests.backends.IN_CI).
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests.backends import IN_CI
from tests.ops.conftest import Server, free_port, mlmd_python, start, wait_for
from tests.resilience.conftest import PG_BIN, PrivatePostgres

__all__ = ["mlmd_python"]  # the official client's interpreter, a fixture

# application_name of the server's replica connections: pg_stat_activity on the replica shows them.
REPLICA_APPLICATION = "lineagedb-replica-reads"


def require_postgres_binaries() -> None:
    missing = [name for name in ("initdb", "pg_ctl", "pg_basebackup") if not (PG_BIN / name).exists()]
    if missing or shutil.which("runuser") is None:
        reason = f"PostgreSQL server binaries missing in {PG_BIN} ({', '.join(missing) or 'runuser'})"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


class Standby(PrivatePostgres):
    """A streaming replica of `primary`, copied by pg_basebackup -R (standby.signal + primary_conninfo)."""

    def __init__(self, primary: PrivatePostgres) -> None:  # no initdb: the data comes from the primary
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="lineagedb-pg-standby-"))
        shutil.chown(self.root, "postgres")
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.password = None
        self.settings = {**primary.settings, "unix_socket_directories": str(self.root), "hot_standby": "on"}
        self._run(
            [
                str(PG_BIN / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(self.data),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "--checkpoint=fast",
            ]
        )


class Cluster:
    def __init__(self) -> None:
        self.primary = PrivatePostgres(
            {"wal_level": "replica", "max_wal_senders": "5", "max_connections": "80", "fsync": "off"}
        )
        try:
            self.primary.start()
            self.primary_url = self.primary.create_database("lineagedb")
            self.standby = Standby(self.primary)
        except BaseException:
            self.primary.destroy()
            raise
        try:
            self.standby.start()
        except BaseException:
            self.destroy()
            raise
        self.replica_url = f"{self.standby.url('lineagedb')}?application_name={REPLICA_APPLICATION}"

    def replica_sql(self, sql: str) -> object:
        engine = sa.create_engine(self.standby.url("lineagedb"), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                return connection.exec_driver_sql(sql).scalar()
        finally:
            engine.dispose()

    def pause_replay(self) -> None:
        self.replica_sql("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.replica_sql("SELECT pg_wal_replay_resume()")

    def replica_connections(self) -> int:
        count = self.replica_sql(
            f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{REPLICA_APPLICATION}'"
        )
        return int(count)  # type: ignore[call-overload]

    def standby_processes(self) -> list[int]:
        """The standby's postmaster and every process it started (backends, WAL receiver, ...)."""
        postmaster = int((self.standby.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(postmaster)], capture_output=True, text=True)
        return [postmaster, *(int(pid) for pid in children.stdout.split())]

    def kill_standby(self) -> None:
        self.standby.stop("immediate")

    def start_standby(self) -> None:
        self.standby.start()

    def destroy(self) -> None:
        self.standby.destroy()
        self.primary.destroy()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    require_postgres_binaries()
    made = Cluster()
    yield made
    made.destroy()


def start_server(cluster: Cluster, tmp_path: Path, max_lag_s: float, audited: bool = False) -> tuple[Server, int]:
    """A server on the primary, reading from the replica; returns it and its metrics port.
    `audited`: with the audit log, whose record goes with each write's COMMIT (and its LSN query)."""
    metrics_port = free_port()
    server = start(
        [
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--database",
            cluster.primary_url,
            "--read-database",
            cluster.replica_url,
            "--read-max-lag-s",
            str(max_lag_s),
            "--metrics-port",
            str(metrics_port),
            "--metrics-host",
            "127.0.0.1",
            "--enable-database-upgrade",
        ],
        tmp_path,
        env={"LINEAGEDB_AUDIT_KEY": "replicas-test-audit-key-" + "k" * 16} if audited else None,
    )
    return server, metrics_port


@pytest.fixture(scope="module")
def server(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    """Allows a replica a long lag: paused replay keeps it serving reads."""
    running, metrics_port = start_server(cluster, tmp_path_factory.mktemp("server"), max_lag_s=600, audited=True)
    yield running, metrics_port
    running.stop()


def scrape(metrics_port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def reads(metrics_port: int, target: str) -> float:
    return scrape(metrics_port).get(("lineagedb_read_calls_total", (("target", target),)), 0.0)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `condition` until true; a hang guard, not a timing assertion."""
    assert wait_for(condition, timeout, interval=0.05), f"timed out waiting for {what}"


def run_as_postgres(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True, check=True)
