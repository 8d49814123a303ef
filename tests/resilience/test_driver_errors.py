"""Deadlocks, serialization failures, lock timeouts and a busy SQLite file become ABORTED.

The driver exceptions are real: two raw connections actually deadlock on PostgreSQL and MariaDB.
Then the same happens to a server's own transaction, and the client sees ABORTED.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.store.schema import schema_for
from lineagedb.store.unit_of_work import classify_driver_error
from tests.backends import scratch_database
from tests.ops.conftest import Server, require_backend, start
from tests.resilience.conftest import Workload, channel, check_invariants


@pytest.fixture(params=["postgresql", "mysql"])
def server_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    require_backend(name)
    return name


@pytest.fixture
def scratch_url(server_backend: str, tmp_path: Path) -> Iterator[str]:
    with scratch_database(server_backend, str(tmp_path)) as url:
        yield url


@pytest.fixture
def engine(scratch_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(scratch_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
        connection.exec_driver_sql("INSERT INTO t VALUES (1, 0), (2, 0)")
    yield engine
    engine.dispose()


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # collected for the test
            failures.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, failures


def _deadlock(engine: sa.Engine) -> sa_exc.DBAPIError:
    """Two transactions lock rows 1 and 2 in opposite orders; returns the victim's error."""
    a, b = engine.connect(), engine.connect()
    try:
        if engine.dialect.name == "postgresql":
            for connection in (a, b):
                connection.exec_driver_sql("SET deadlock_timeout = '100ms'")
                connection.commit()
        a.exec_driver_sql("UPDATE t SET v = v + 1 WHERE id = 1")
        b.exec_driver_sql("UPDATE t SET v = v + 1 WHERE id = 2")
        thread, failures = _in_thread(lambda: a.exec_driver_sql("UPDATE t SET v = v + 1 WHERE id = 2"))
        time.sleep(0.3)  # a is now waiting for b
        try:
            b.exec_driver_sql("UPDATE t SET v = v + 1 WHERE id = 1")
        except sa_exc.DBAPIError as error:
            failures.append(error)
            b.rollback()
        thread.join(timeout=30)
        assert len(failures) == 1, failures
        victim = failures[0]
        assert isinstance(victim, sa_exc.DBAPIError), victim
        return victim
    finally:
        for connection in (a, b):
            connection.rollback()
            connection.close()


def test_a_real_deadlock_is_aborted(engine: sa.Engine) -> None:
    error = _deadlock(engine)
    code = getattr(error.orig, "pgcode", None) or (error.orig.args[0] if error.orig and error.orig.args else None)
    print(f"deadlock on {engine.dialect.name}: driver code {code}: {str(error.orig).splitlines()[0]}")
    assert code in ("40P01", 1213)
    assert isinstance(classify_driver_error(error), errors.AbortedError)


def test_a_lock_wait_timeout_or_serialization_failure_is_aborted(engine: sa.Engine) -> None:
    a, b = engine.connect(), engine.connect()
    try:
        if engine.dialect.name == "postgresql":
            # Serialization failure: both read in REPEATABLE READ, one updates and commits first.
            for connection in (a, b):
                connection.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                connection.commit()
            a.exec_driver_sql("SELECT v FROM t WHERE id = 1").all()
            b.exec_driver_sql("SELECT v FROM t WHERE id = 1").all()
            a.exec_driver_sql("UPDATE t SET v = 10 WHERE id = 1")
            a.commit()
            statement = "UPDATE t SET v = 20 WHERE id = 1"
        else:
            b.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")
            b.commit()
            a.exec_driver_sql("UPDATE t SET v = 10 WHERE id = 1")
            statement = "UPDATE t SET v = 20 WHERE id = 1"
        with pytest.raises(sa_exc.DBAPIError) as caught:
            b.exec_driver_sql(statement)
        orig = caught.value.orig
        code = getattr(orig, "pgcode", None) or (orig.args[0] if orig is not None and orig.args else None)
        print(f"{engine.dialect.name}: driver code {code}: {str(orig).splitlines()[0]}")
        assert code in ("40001", 1205)
        assert isinstance(classify_driver_error(caught.value), errors.AbortedError)
    finally:
        for connection in (a, b):
            connection.rollback()
            connection.close()


def test_a_busy_sqlite_file_is_aborted(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'busy.db'}", connect_args={"timeout": 0})
    with engine.connect() as setup:
        setup.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        setup.commit()
    holder, other = engine.raw_connection(), engine.connect()
    try:
        holder.driver_connection.isolation_level = None  # type: ignore[union-attr]
        holder.cursor().execute("BEGIN IMMEDIATE")
        with pytest.raises(sa_exc.OperationalError) as caught:
            other.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert "database is locked" in str(caught.value.orig)
        assert isinstance(classify_driver_error(caught.value), errors.AbortedError)
    finally:
        holder.cursor().execute("ROLLBACK")
        holder.close()
        other.close()
        engine.dispose()


def _server_pid_waiting(connection: sa.Connection, name: str, own: int) -> bool:
    if connection.dialect.name == "postgresql":
        sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = :name AND pid <> :own AND wait_event_type = 'Lock'"
    else:
        sql = (
            "SELECT count(*) FROM information_schema.innodb_trx t JOIN information_schema.processlist p "
            "ON p.id = t.trx_mysql_thread_id WHERE p.db = :name AND p.id <> :own AND t.trx_state = 'LOCK WAIT'"
        )
    return int(connection.execute(sa.text(sql), {"name": name, "own": own}).scalar_one()) > 0


def test_a_deadlock_inside_put_execution_answers_aborted(
    server_backend: str, scratch_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    """An outside transaction deadlocks with the server's PutExecution. The server retries an
    ABORTED transaction itself (api/retry.py): depending on when the outside transaction lets
    go, the client sees OK from a server-side retry or, if every attempt lost, ABORTED. Never
    INTERNAL, never a partial write; a client retry succeeds."""
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", scratch_url], tmp_path)
    servers.append(server)
    workload = Workload()
    outside_engine = sa.create_engine(scratch_url, poolclass=sa.pool.NullPool)
    schema = schema_for(outside_engine.dialect.name)
    name = outside_engine.url.database or ""
    with channel(server.address) as ch:
        stub = svc_grpc.MetadataStoreServiceStub(ch)
        workload.create_types(stub)
        assert workload.put(stub) == "OK"
        outside = outside_engine.connect()
        if server_backend == "postgresql":
            # Let the server's backend find the deadlock (it starts waiting first).
            outside.exec_driver_sql("SET deadlock_timeout = '10s'")
            own = outside.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            outside.commit()
            # Events are written after the execution and its artifacts: block there.
            outside.exec_driver_sql(f'LOCK TABLE "{schema.event.name}" IN EXCLUSIVE MODE')
            second = f'LOCK TABLE "{schema.execution.name}" IN EXCLUSIVE MODE'
        else:
            own = outside.exec_driver_sql("SELECT connection_id()").scalar_one()
            outside.commit()
            # Weigh the outside transaction down so that InnoDB picks the server's as the victim.
            outside.exec_driver_sql("CREATE TABLE ballast (id INTEGER PRIMARY KEY)")
            outside.exec_driver_sql("INSERT INTO ballast SELECT seq FROM seq_1_to_5000")
            # A next-key lock past the last event blocks every new event.
            outside.exec_driver_sql(f"SELECT * FROM `{schema.event.name}` WHERE id > 0 FOR UPDATE").all()
            second = f"SELECT * FROM `{schema.execution.name}` FOR UPDATE"
        outcome: list[str] = []
        thread, _ = _in_thread(lambda: outcome.append(workload.put(stub)))
        with outside_engine.connect() as probe:
            deadline = time.monotonic() + 10
            while not _server_pid_waiting(probe, name, own) and time.monotonic() < deadline:
                probe.rollback()
                time.sleep(0.05)
        outside_error: BaseException | None = None
        try:
            outside.exec_driver_sql(second).all() if server_backend == "mysql" else outside.exec_driver_sql(second)
        except sa_exc.DBAPIError as error:
            outside_error = error
        outside.rollback()
        outside.close()
        thread.join(timeout=30)
        retried = workload.put(stub)
    outside_engine.dispose()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    report = check_invariants(scratch_url, workload.acked)
    print(
        f"deadlock through the server on {server_backend}: PutExecution -> {outcome}; outside transaction "
        f"{'was the victim' if outside_error else 'proceeded'}; retry -> {retried}; partial {len(report.partial)}"
    )
    assert outside_error is None, f"the database chose the outside transaction as the victim: {outside_error}"
    assert outcome in (["OK"], ["ABORTED"])
    assert retried == "OK"
    report.assert_ok()
    assert "INTERNAL" not in workload.statuses
