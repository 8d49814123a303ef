"""T1 (kill -9 of the server mid-batch) and T3 lite (two servers on one SQLite file)."""

from __future__ import annotations

import itertools
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.ops.conftest import Server, free_port, start
from tests.resilience.conftest import Workload, channel, check_invariants, start_writers, wait_serving

# Wall-clock caps: the smoke run is bounded tightly; the soak run gets the RELIABILITY
# budget (a restart costs ~1.5 s here, so 200 kills take about 8 minutes).
WALL_CAP_S = 90.0
SOAK_WALL_CAP_S = 900.0
BAD_CODES = {"INTERNAL", "UNKNOWN", "DATA_LOSS"}


def kill_loop(
    tmp_path: Path, servers: list[Server], rng: random.Random, kills: int, wall_cap_s: float = WALL_CAP_S
) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    port = free_port()
    args = ["--host", "127.0.0.1", "--port", str(port), "--database", url, "--health-interval-s", "0.5"]
    server = start(args, tmp_path)
    servers.append(server)
    workload = Workload()
    with channel(server.address) as ch:
        workload.create_types(svc_grpc.MetadataStoreServiceStub(ch))
    stop = threading.Event()
    workers = start_writers(server.address, workload, stop, threads=4)
    attempted, survived, restart_s, in_flight_codes = 0, 0, [], Counter[str]()
    began = time.monotonic()
    try:
        for _ in range(kills):
            if time.monotonic() - began > wall_cap_s:
                break
            attempted += 1
            acked_before = len(workload.acked)
            deadline = time.monotonic() + 10
            while len(workload.acked) == acked_before and time.monotonic() < deadline:
                time.sleep(0.005)  # the restarted server is taking writes again
            assert len(workload.acked) > acked_before, "no write succeeded after a restart"
            time.sleep(rng.uniform(0, 0.4))
            before = Counter(workload.statuses)
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            time.sleep(0.2)
            in_flight_codes += Counter(workload.statuses) - before
            t0 = time.monotonic()
            server = start(args, tmp_path)
            servers.append(server)
            wait_serving(server.address)
            restart_s.append(time.monotonic() - t0)
            survived += 1
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    report = check_invariants(url, workload.acked)
    print(
        f"T1 SQLite kill -9: kills survived {survived}/{attempted} ({kills} planned, wall cap {wall_cap_s:.0f}s); "
        f"acked {len(workload.acked)}; "
        f"batches present {report.batches_present}; acked-but-missing {len(report.acked_missing)}; "
        f"partial {len(report.partial)}; integrity_check {report.integrity}; "
        f"statuses {dict(workload.statuses)}; around kills {dict(in_flight_codes)}; "
        f"restart-to-serving max {max(restart_s):.2f}s"
    )
    report.assert_ok()
    assert survived == attempted and attempted > 0
    assert not BAD_CODES & set(workload.statuses), workload.statuses


def test_sigkill_mid_batch_loses_no_acknowledged_write(
    tmp_path: Path, servers: list[Server], rng: random.Random
) -> None:
    kill_loop(tmp_path, servers, rng, kills=5)


@pytest.mark.soak
def test_sigkill_mid_batch_soak(tmp_path: Path, servers: list[Server], rng: random.Random) -> None:
    kill_loop(tmp_path, servers, rng, kills=200, wall_cap_s=SOAK_WALL_CAP_S)


def two_servers_one_file(tmp_path: Path, servers: list[Server], rng: random.Random, seconds: float) -> None:
    """Both servers write; one is killed mid-run; the survivor keeps going. No INTERNAL, ever."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = start(["--host", "127.0.0.1", "--port", "0", "--database", url], tmp_path)
    servers.append(first)
    second = start(["--host", "127.0.0.1", "--port", "0", "--database", url], tmp_path)
    servers.append(second)
    workload = Workload()
    with channel(first.address) as ch:
        workload.create_types(svc_grpc.MetadataStoreServiceStub(ch))
    survivor = Workload(
        execution_type_id=workload.execution_type_id,
        artifact_type_id=workload.artifact_type_id,
        context_type_id=workload.context_type_id,
    )
    stop = threading.Event()
    workers = start_writers(first.address, survivor, stop, threads=4) + start_writers(
        second.address, workload, stop, threads=4
    )
    kill_at = rng.uniform(seconds * 0.3, seconds * 0.6)
    time.sleep(kill_at)
    killed_at = time.monotonic()
    second.process.send_signal(signal.SIGKILL)
    second.process.wait()
    time.sleep(seconds - kill_at)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    survivor_times = sorted(survivor.ok_times)
    after = [t for t in survivor_times if t >= killed_at]
    first_after = (after[0] - killed_at) if after else float("inf")
    gaps = [b - a for a, b in itertools.pairwise(survivor_times)]
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=30) == 0
    report = check_invariants(url, workload.acked | survivor.acked)
    print(
        f"T3 lite (2 servers, 1 SQLite file): survivor {dict(survivor.statuses)}; "
        f"killed peer {dict(workload.statuses)}; "
        f"survivor's first OK {first_after:.3f}s after the kill; max gap between survivor OKs "
        f"{max(gaps) if gaps else 0:.3f}s; partial {len(report.partial)}; integrity_check {report.integrity}"
    )
    report.assert_ok()
    assert not BAD_CODES & (set(survivor.statuses) | set(workload.statuses))
    assert set(survivor.statuses) <= {"OK", "ABORTED"}, survivor.statuses
    assert first_after <= 5.0 + 1.0  # busy_timeout + 1 s
    assert survivor.statuses["OK"] > 0


def test_two_servers_one_sqlite_file_never_internal(tmp_path: Path, servers: list[Server], rng: random.Random) -> None:
    two_servers_one_file(tmp_path, servers, rng, seconds=4.0)


@pytest.mark.soak
def test_two_servers_one_sqlite_file_soak(tmp_path: Path, servers: list[Server], rng: random.Random) -> None:
    two_servers_one_file(tmp_path, servers, rng, seconds=60.0)
