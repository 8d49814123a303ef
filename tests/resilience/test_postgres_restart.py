"""T4: PostgreSQL crashes (`pg_ctl stop -m immediate`) and comes back while 8 clients write.

The server is never restarted: pre-ping and pool invalidation must bring it back by itself.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import pytest

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.ops.conftest import Server, health_status, start
from tests.resilience.conftest import PrivatePostgres, Workload, channel, check_invariants, start_writers

ALLOWED = {"OK", "UNAVAILABLE", "ABORTED"}
RECOVERY_LIMIT_S = 5.0


def restart_cycles(
    private_pg: PrivatePostgres, tmp_path: Path, servers: list[Server], rng: random.Random, cycles: int
) -> None:
    url = private_pg.create_database("lineagedb")
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", url, "--health-interval-s", "0.2"], tmp_path)
    servers.append(server)
    workload = Workload()
    with channel(server.address) as ch:
        workload.create_types(svc_grpc.MetadataStoreServiceStub(ch))
    stop = threading.Event()

    workers = start_writers(server.address, workload, stop, threads=8)
    recoveries: list[float] = []
    health_during_outage: list[str] = []
    try:
        for _ in range(cycles):
            time.sleep(rng.uniform(1.0, 2.0))  # writing under load
            private_pg.stop("immediate")
            time.sleep(0.5)
            with channel(server.address) as ch:
                deadline = time.monotonic() + 3
                status = health_status(ch)
                while status == "SERVING" and time.monotonic() < deadline:
                    time.sleep(0.05)
                    status = health_status(ch)
                health_during_outage.append(status)
            time.sleep(rng.uniform(0.5, 1.5))
            private_pg.start()  # returns once PostgreSQL accepts connections
            ready_at = time.monotonic()
            deadline = ready_at + 30
            while time.monotonic() < deadline:
                with workload.lock:
                    after = [t for t in workload.ok_times if t >= ready_at]
                if after:
                    recoveries.append(min(after) - ready_at)
                    break
                time.sleep(0.01)
            else:
                pytest.fail(f"no call succeeded within 30 s of the restart; statuses {workload.statuses}")
        time.sleep(1.0)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    with channel(server.address) as ch:
        final_health = health_status(ch)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    report = check_invariants(url, workload.acked)
    print(
        f"T4 PostgreSQL immediate restarts: cycles {len(recoveries)}/{cycles}; recovery (DB ready -> first OK) "
        f"{', '.join(f'{r:.3f}s' for r in recoveries)} (max {max(recoveries):.3f}s); "
        f"status histogram {dict(workload.statuses)}; acked {len(workload.acked)}; "
        f"present {report.batches_present}; lost acked {len(report.acked_missing)}; partial {len(report.partial)}; "
        f"health during outage {health_during_outage}; after {final_health}"
    )
    report.assert_ok()
    assert set(workload.statuses) <= ALLOWED, workload.statuses
    assert max(recoveries) <= RECOVERY_LIMIT_S
    assert all(status == "NOT_SERVING" for status in health_during_outage)
    assert final_health == "SERVING"


def test_postgres_restart_costs_only_calls_in_flight(
    private_pg: PrivatePostgres, tmp_path: Path, servers: list[Server], rng: random.Random
) -> None:
    restart_cycles(private_pg, tmp_path, servers, rng, cycles=3)


@pytest.mark.soak
def test_postgres_restart_soak(
    private_pg: PrivatePostgres, tmp_path: Path, servers: list[Server], rng: random.Random
) -> None:
    restart_cycles(private_pg, tmp_path, servers, rng, cycles=50)
