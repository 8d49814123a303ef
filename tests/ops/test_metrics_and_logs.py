"""Prometheus metrics on their own port; one JSON log line per call at debug level."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import grpc

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.ops.conftest import Server, free_port, start, wait_for

PREFIX = "/ml_metadata.MetadataStoreService/"


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics_and_json_call_logs(tmp_path: Path, servers: list[Server]) -> None:
    metrics_port = free_port()
    server = start(
        [
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--database",
            f"sqlite:///{tmp_path}/m.db",
            "--metrics-port",
            str(metrics_port),
            "--metrics-host",
            "127.0.0.1",
            "--log-format",
            "json",
            "--log-level",
            "DEBUG",
        ],
        tmp_path,
    )
    servers.append(server)
    with server.channel() as channel:
        stub = svc_grpc.MetadataStoreServiceStub(channel)
        for _ in range(3):
            stub.GetArtifactTypes(svc.GetArtifactTypesRequest(), timeout=10)
        try:
            stub.GetArtifactType(svc.GetArtifactTypeRequest(type_name="no.such.Type"), timeout=10)
            raise AssertionError("expected NOT_FOUND")
        except grpc.RpcError as error:
            assert error.code() is grpc.StatusCode.NOT_FOUND

    assert wait_for(lambda: _scrape(metrics_port), 10)
    samples = _scrape(metrics_port)
    ok_key = f'lineagedb_grpc_calls_total{{code="OK",method="{PREFIX}GetArtifactTypes"}}'
    nf_key = f'lineagedb_grpc_calls_total{{code="NOT_FOUND",method="{PREFIX}GetArtifactType"}}'
    assert samples[ok_key] == 3.0
    assert samples[nf_key] == 1.0
    assert samples[f'lineagedb_grpc_call_duration_seconds_count{{method="{PREFIX}GetArtifactTypes"}}'] == 3.0
    assert samples[f'lineagedb_grpc_calls_in_flight{{method="{PREFIX}GetArtifactTypes"}}'] == 0.0
    assert samples['lineagedb_db_pool_connections{state="checked_out"}'] == 0.0
    assert 'lineagedb_db_pool_connections{state="idle"}' in samples
    assert samples["lineagedb_database_healthy"] == 1.0
    assert server.stop() == 0

    records = [json.loads(line) for line in server.stderr().splitlines() if line.strip()]
    calls = [r for r in records if r["logger"] == "lineagedb.calls"]
    assert sum("GetArtifactTypes OK" in r["message"] for r in calls) == 3
    assert sum("GetArtifactType NOT_FOUND" in r["message"] for r in calls) == 1
    assert all({"time", "level", "message"} <= set(r) for r in records)
