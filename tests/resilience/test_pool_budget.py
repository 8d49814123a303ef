"""T8: the connection budget. Two servers with small pools against PostgreSQL max_connections=20.

Load outruns the pools (32 client threads, and periods where a table lock stalls every write), so
calls queue on the pool and, past --pool-timeout, answer RESOURCE_EXHAUSTED; the database itself
never runs out of connections.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg2
import pytest
import sqlalchemy as sa

from lineagedb.config import Settings
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.ops.conftest import Server, start
from tests.resilience.conftest import PrivatePostgres, Workload, channel, check_invariants

POOL_SIZE, MAX_OVERFLOW, SERVERS = 5, 2, 2
BUDGET = SERVERS * (POOL_SIZE + MAX_OVERFLOW)
ALLOWED = {"OK", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "ABORTED", "DEADLINE_EXCEEDED"}


@pytest.fixture
def small_pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres({"max_connections": "20", "superuser_reserved_connections": "0"})
    cluster.start()
    yield cluster
    cluster.destroy()


def budget_run(
    small_pg: PrivatePostgres, tmp_path: Path, servers: list[Server], rng: random.Random, seconds: float
) -> None:
    url = small_pg.create_database("lineagedb")
    pool_args = ["--pool-size", str(POOL_SIZE), "--pool-max-overflow", str(MAX_OVERFLOW), "--pool-timeout", "0.5"]
    for _ in range(SERVERS):
        servers.append(start(["--host", "127.0.0.1", "--port", "0", "--database", url, *pool_args], tmp_path))
    workload = Workload()
    with channel(servers[0].address) as ch:
        workload.create_types(svc_grpc.MetadataStoreServiceStub(ch))
    reads: dict[str, int] = {}
    reads_lock = threading.Lock()
    stop = threading.Event()

    def client(index: int) -> None:
        local = random.Random(rng.random())
        with channel(servers[index % SERVERS].address) as ch:
            stub = svc_grpc.MetadataStoreServiceStub(ch)
            while not stop.is_set():
                if local.random() < 0.5:
                    workload.put(stub)
                    continue
                try:
                    stub.GetExecutions(svc.GetExecutionsRequest(), timeout=10)
                    code = "OK"
                except grpc.RpcError as error:
                    code = error.code().name
                with reads_lock:
                    reads[code] = reads.get(code, 0) + 1

    # One connection samples pg_stat_activity, another stalls writers with a table lock now and then.
    dsn = f"host=127.0.0.1 port={small_pg.port} user=postgres dbname=lineagedb"
    sampler, locker = psycopg2.connect(dsn), psycopg2.connect(dsn)
    sampler.autocommit = True
    samples: list[int] = []
    own = [sampler.get_backend_pid(), locker.get_backend_pid()]

    def sample() -> None:
        with sampler.cursor() as cursor:
            while not stop.is_set():
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                    "AND NOT (pid = ANY(%s))",
                    (own,),
                )
                row = cursor.fetchone()
                samples.append(int(row[0]) if row else 0)
                time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(32)]
    threads.append(threading.Thread(target=sample, daemon=True))
    for thread in threads:
        thread.start()
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        time.sleep(rng.uniform(1.0, 2.0))
        with locker.cursor() as cursor:
            cursor.execute('LOCK TABLE "execution" IN EXCLUSIVE MODE')
            time.sleep(rng.uniform(1.0, 1.5))
        locker.rollback()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    sampler.close()
    locker.close()
    for server in servers:
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
    report = check_invariants(url, workload.acked)
    refused = small_pg.log_text().count("too many clients")
    print(
        f"T8 pool budget: {SERVERS} servers x (pool {POOL_SIZE} + overflow {MAX_OVERFLOW}), 32 clients, "
        f"{seconds:.0f}s: peak DB connections {max(samples)} (budget {BUDGET}, max_connections 20, "
        f"{len(samples)} samples); 'too many clients' {refused}; writes {dict(workload.statuses)}; reads {reads}; "
        f"partial {len(report.partial)}"
    )
    report.assert_ok()
    assert max(samples) <= BUDGET
    assert refused == 0
    assert set(workload.statuses) | set(reads) <= ALLOWED, (workload.statuses, reads)
    assert workload.statuses["RESOURCE_EXHAUSTED"] + reads.get("RESOURCE_EXHAUSTED", 0) > 0, "the pools never ran out"
    for server in servers:
        assert "too many" not in server.stderr()


def test_pool_exhaustion_is_resource_exhausted_and_stays_in_budget(
    small_pg: PrivatePostgres, tmp_path: Path, servers: list[Server], rng: random.Random
) -> None:
    budget_run(small_pg, tmp_path, servers, rng, seconds=10.0)


@pytest.mark.soak
def test_pool_budget_soak(small_pg: PrivatePostgres, tmp_path: Path, servers: list[Server], rng: random.Random) -> None:
    budget_run(small_pg, tmp_path, servers, rng, seconds=60.0)


def test_pool_flags_and_variables_reach_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from lineagedb.cli import _parser, build_settings
    from lineagedb.config import ConfigurationError
    from lineagedb.ops import mlmd_flags
    from lineagedb.store.engine import PoolSettings, create_engine

    def settings_for(*argv: str) -> Settings:
        normalized = mlmd_flags.normalize_argv(["serve", *argv])
        return build_settings(_parser().parse_args(normalized), normalized)

    settings = settings_for(
        "--database", "postgresql://u@db/x", "--pool-size=3", "--pool-max-overflow=1", "--pool-timeout=0.25"
    )
    assert (settings.pool_size, settings.pool_max_overflow, settings.pool_timeout_s) == (3, 1, 0.25)
    monkeypatch.setenv("LINEAGEDB_POOL_SIZE", "6")
    monkeypatch.setenv("LINEAGEDB_POOL_TIMEOUT", "2.5")
    settings = settings_for("--database", "postgresql://u@db/x")
    assert (settings.pool_size, settings.pool_max_overflow, settings.pool_timeout_s) == (6, 0, 2.5)
    for bad in ("--pool-size=0", "--pool-max-overflow=-1", "--pool-timeout=0"):
        with pytest.raises(ConfigurationError, match="pool"):
            settings_for("--database", "postgresql://u@db/x", bad)
    engine = create_engine(settings.database_url, PoolSettings(size=3, max_overflow=1, timeout_s=0.25, recycle_s=60))
    pool = engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    # No ping on every checkout (a round trip per call): store.engine pings connections left idle.
    assert (pool.size(), pool._max_overflow, pool._timeout, pool._recycle, pool._pre_ping) == (3, 1, 0.25, 60, False)
    assert len(pool.dispatch.checkout) == 1
    engine.dispose()
