"""T4 on MariaDB, approximated: the shared MariaDB sits behind a TCP proxy that drops every
connection (mid-transaction ones included) and refuses new ones for a while, then comes back.

The shared service itself is never stopped; to the server it looks like a database restart.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.backends import MYSQL_URL, scratch_database
from tests.ops.conftest import Server, TcpProxy, free_port, require_backend, start
from tests.resilience.conftest import Workload, channel, check_invariants, start_writers

ALLOWED = {"OK", "UNAVAILABLE", "ABORTED"}


def outage_cycles(tmp_path: Path, servers: list[Server], rng: random.Random, cycles: int) -> None:
    require_backend("mysql")
    target = make_url(MYSQL_URL)
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 3306), free_port())
    proxy.start()
    try:
        with scratch_database("mysql", str(tmp_path)) as url:
            through_proxy = make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
            server = start(
                ["--host", "127.0.0.1", "--port", "0", "--database", through_proxy, "--health-interval-s", "0.2"],
                tmp_path,
            )
            servers.append(server)
            workload = Workload()
            with channel(server.address) as ch:
                workload.create_types(svc_grpc.MetadataStoreServiceStub(ch))
            stop = threading.Event()

            workers = start_writers(server.address, workload, stop, threads=8)
            recoveries: list[float] = []
            try:
                for _ in range(cycles):
                    time.sleep(rng.uniform(1.0, 2.0))
                    proxy.stop()
                    time.sleep(rng.uniform(1.0, 2.0))
                    proxy.start()
                    back_at = time.monotonic()
                    deadline = back_at + 30
                    while time.monotonic() < deadline:
                        with workload.lock:
                            after = [t for t in workload.ok_times if t >= back_at]
                        if after:
                            recoveries.append(min(after) - back_at)
                            break
                        time.sleep(0.01)
                    else:
                        pytest.fail(f"no call succeeded within 30 s; statuses {workload.statuses}")
                time.sleep(1.0)
            finally:
                stop.set()
                for worker in workers:
                    worker.join(timeout=30)
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(timeout=30) == 0
            report = check_invariants(url, workload.acked)
    finally:
        proxy.stop()
    print(
        f"T4 (proxy) MariaDB outages: cycles {len(recoveries)}/{cycles}; recovery (DB back -> first OK) "
        f"{', '.join(f'{r:.3f}s' for r in recoveries)}; status histogram {dict(workload.statuses)}; "
        f"acked {len(workload.acked)}; present {report.batches_present}; lost acked {len(report.acked_missing)}; "
        f"partial {len(report.partial)}"
    )
    report.assert_ok()
    assert set(workload.statuses) <= ALLOWED, workload.statuses
    assert max(recoveries) <= 5.0


def test_mariadb_outage_costs_only_calls_in_flight(tmp_path: Path, servers: list[Server], rng: random.Random) -> None:
    outage_cycles(tmp_path, servers, rng, cycles=2)


@pytest.mark.soak
def test_mariadb_outage_soak(tmp_path: Path, servers: list[Server], rng: random.Random) -> None:
    outage_cycles(tmp_path, servers, rng, cycles=30)
