"""T7: the database closes idle pooled connections; the next calls must still succeed (pre-ping).

PostgreSQL: `ALTER DATABASE <scratch> SET idle_session_timeout = '1s'` (only the scratch database).
MariaDB: `wait_timeout` is set per session through the URL's `init_command`, so only the server's
own connections are affected (a `SET GLOBAL` would change the shared service).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import grpc
import pytest
import sqlalchemy as sa

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.backends import scratch_database
from tests.ops.conftest import Server, require_backend, start
from tests.resilience.conftest import Workload, channel, check_invariants

IDLE_LIMIT_S = {"postgresql": 1, "mysql": 2}


def sessions(url: str) -> int:
    """Server sessions connected to the scratch database (ours excluded)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    name = engine.url.database
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"
        else:
            sql = "SELECT count(*) FROM information_schema.processlist WHERE db = :name AND id <> connection_id()"
        count = int(connection.execute(sa.text(sql), {"name": name}).scalar_one())
    engine.dispose()
    return count


def idle_rounds(backend: str, tmp_path: Path, servers: list[Server], rng: random.Random, rounds: int) -> None:
    require_backend(backend)
    with scratch_database(backend, str(tmp_path)) as url:
        if backend == "postgresql":
            name = sa.engine.make_url(url).database
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
            with admin.connect() as connection:
                connection.exec_driver_sql(f"ALTER DATABASE \"{name}\" SET idle_session_timeout = '1s'")
            admin.dispose()
            server_url = url
        else:
            server_url = f"{url}?init_command={quote('SET SESSION wait_timeout = 2')}"
        # A long health interval: only the RPCs themselves touch the pool while it idles.
        server = start(
            ["--host", "127.0.0.1", "--port", "0", "--database", server_url, "--health-interval-s", "3600"], tmp_path
        )
        servers.append(server)
        workload = Workload()
        statuses: Counter[str] = Counter()
        left_open: list[int] = []
        with channel(server.address) as ch:
            stub = svc_grpc.MetadataStoreServiceStub(ch)
            workload.create_types(stub)
            for _ in range(rounds):
                # Warm several pooled connections at once, then let them all idle past the limit.
                warm = [threading.Thread(target=workload.put, args=(stub,)) for _ in range(6)]
                for thread in warm:
                    thread.start()
                for thread in warm:
                    thread.join()
                time.sleep(IDLE_LIMIT_S[backend] + 1.0 + rng.uniform(0, 0.5))
                left_open.append(sessions(url))
                for i in range(50):
                    try:
                        if i % 2:
                            stub.GetExecutions(svc.GetExecutionsRequest(), timeout=10)
                            statuses["OK"] += 1
                        else:
                            statuses[workload.put(stub)] += 1
                    except grpc.RpcError as error:
                        statuses[error.code().name] += 1
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        report = check_invariants(url, workload.acked)
    assert left_open == [0] * rounds, f"the database did not close the idle sessions: {left_open}"
    print(
        f"T7 idle connections killed by {backend} ({IDLE_LIMIT_S[backend]}s): {rounds} rounds x 50 calls after idling: "
        f"{dict(statuses)}; warm-up {dict(workload.statuses)}; partial {len(report.partial)}"
    )
    assert statuses == Counter({"OK": 50 * rounds})
    report.assert_ok()


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_idle_connections_killed_by_the_database(
    backend: str, tmp_path: Path, servers: list[Server], rng: random.Random
) -> None:
    idle_rounds(backend, tmp_path, servers, rng, rounds=2)


@pytest.mark.soak
@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_idle_connections_soak(backend: str, tmp_path: Path, servers: list[Server], rng: random.Random) -> None:
    idle_rounds(backend, tmp_path, servers, rng, rounds=10)
