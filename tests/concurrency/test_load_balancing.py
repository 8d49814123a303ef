"""Client-side load balancing over several servers on one database, as README "Scaling out"
describes it: gRPC's `round_robin` with health checking in the service config. Calls spread
over every server, and a server that starts shutting down (NOT_SERVING during its drain) stops
getting calls before it closes its port, so no call fails. About 10 s, on SQLite (the
balancing is the client's; the database does not matter to it).
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.conftest import LiveServer, start_server, stop_server
from tests.ops.conftest import free_port

SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "healthCheckConfig": {"serviceName": "ml_metadata.MetadataStoreService"},
}
CALLED = 'lineagedb_grpc_calls_total{code="OK",method="/ml_metadata.MetadataStoreService/GetArtifactTypes"}'
DRAIN_S = 4


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[tuple[LiveServer, int]]]:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    started = []
    for _ in range(3):
        metrics = free_port()
        server = start_server(url, "--metrics-port", str(metrics), "--shutdown-drain-s", str(DRAIN_S))
        started.append((server, metrics))
    yield started
    for server, _ in started:
        if server.process.poll() is None:
            stop_server(server)


def _calls(metrics_port: int) -> float:
    """GetArtifactTypes calls the server answered OK, from its Prometheus metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            name, _, value = line.rpartition(" ")
            if name == CALLED:
                return float(value)
    return 0.0


def test_round_robin_with_health_checks_spreads_calls_and_skips_a_draining_server(
    three: list[tuple[LiveServer, int]],
) -> None:
    target = "ipv4:" + ",".join(server.address for server, _ in three)
    options = [("grpc.service_config", json.dumps(SERVICE_CONFIG))]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = svc_grpc.MetadataStoreServiceStub(channel)
        for _ in range(30):
            stub.GetArtifactTypes(svc.GetArtifactTypesRequest(), timeout=10)
        spread = [_calls(metrics) for _, metrics in three]
        assert all(count >= 5 for count in spread), f"calls per server: {spread}"

        draining = three[2][0]
        draining.process.send_signal(signal.SIGTERM)  # NOT_SERVING, then DRAIN_S before the port closes
        time.sleep(1.5)  # the client's health watch sees NOT_SERVING
        healthy_before = sum(_calls(metrics) for _, metrics in three[:2])
        made, failures = 0, 0
        deadline = time.monotonic() + DRAIN_S + 3  # through the rest of the drain and past the exit
        while time.monotonic() < deadline:
            try:
                stub.GetArtifactTypes(svc.GetArtifactTypesRequest(), timeout=10)
                made += 1
            except grpc.RpcError:
                failures += 1
        assert draining.process.wait(timeout=30) == 0
        assert failures == 0
        # Every call made while it drained went to the two healthy servers.
        assert sum(_calls(metrics) for _, metrics in three[:2]) - healthy_before == made > 0
