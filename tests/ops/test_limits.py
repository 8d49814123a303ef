"""Limits: message sizes, client deadlines bound database statements, idle and abusive connections."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import sqlalchemy as sa

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.backends import scratch_database
from tests.ops.conftest import Server, free_port, health_status, require_backend, start, wait_for
from tests.ops.test_metrics_and_logs import _scrape

MIB = 1024 * 1024


def _sqlite(tmp_path: Path) -> list[str]:
    return ["--host", "127.0.0.1", "--port", "0", "--database", f"sqlite:///{tmp_path}/l.db"]


def test_oversized_request_is_resource_exhausted_and_harmless(tmp_path: Path, servers: list[Server]) -> None:
    server = start([*_sqlite(tmp_path), "--max-receive-message-bytes", str(MIB)], tmp_path)
    servers.append(server)
    with server.channel() as channel:
        stub = svc_grpc.MetadataStoreServiceStub(channel)
        type_id = stub.PutArtifactType(
            svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="big")), timeout=10
        ).type_id
        huge = svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, uri="x" * (2 * MIB))])
        for _ in range(5):
            try:
                stub.PutArtifacts(huge, timeout=10)
                raise AssertionError("an oversized request was accepted")
            except grpc.RpcError as error:
                assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert health_status(channel) == "SERVING"
        small = svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, uri="x" * 1000)])
        assert len(stub.PutArtifacts(small, timeout=10).artifact_ids) == 1
        listed = stub.GetArtifacts(svc.GetArtifactsRequest(), timeout=10).artifacts
        assert [len(a.uri) for a in listed] == [1000]
    assert server.stop() == 0


def test_client_deadline_cancels_the_database_statement_on_postgresql(tmp_path: Path, servers: list[Server]) -> None:
    """A call blocked on a lock ends at the client's deadline, and so does its statement on the server."""
    require_backend("postgresql")
    with scratch_database("postgresql", str(tmp_path)) as url:
        metrics_port = free_port()
        server = start(
            ["--host", "127.0.0.1", "--port", "0", "--database", url, "--metrics-port", str(metrics_port)], tmp_path
        )
        servers.append(server)
        locker = sa.create_engine(url)
        watcher = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        database = sa.engine.make_url(url).database

        def waiting_server_statements() -> int:
            with watcher.connect() as connection:
                return int(
                    connection.execute(
                        sa.text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND state = 'active' "
                            "AND pid <> pg_backend_pid() AND query ILIKE '%artifact%' AND query NOT ILIKE '%LOCK%'"
                        ),
                        {"db": database},
                    ).scalar_one()
                )

        try:
            with server.channel() as channel, locker.connect() as lock_connection:
                stub = svc_grpc.MetadataStoreServiceStub(channel)
                stub.GetArtifacts(svc.GetArtifactsRequest(), timeout=10)  # warm the pool
                lock_connection.exec_driver_sql("LOCK TABLE artifact IN ACCESS EXCLUSIVE MODE")
                for _ in range(3):
                    started = time.monotonic()
                    try:
                        stub.GetArtifacts(svc.GetArtifactsRequest(), timeout=1.0)
                        raise AssertionError("the call should have waited for the lock")
                    except grpc.RpcError as error:
                        assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
                    assert time.monotonic() - started < 5
                # While the lock is still held, the server's statements are already gone.
                assert wait_for(lambda: waiting_server_statements() == 0, 10)
                lock_connection.rollback()
            samples = _scrape(metrics_port)
            assert samples['lineagedb_db_pool_connections{state="checked_out"}'] == 0.0
            deadline_key = (
                'lineagedb_grpc_calls_total{code="DEADLINE_EXCEEDED",'
                'method="/ml_metadata.MetadataStoreService/GetArtifacts"}'
            )
            assert wait_for(lambda: _scrape(metrics_port).get(deadline_key) == 3.0, 10)
            with server.channel() as channel:
                stub = svc_grpc.MetadataStoreServiceStub(channel)
                assert list(stub.GetArtifacts(svc.GetArtifactsRequest(), timeout=10).artifacts) == []
            assert server.stop() == 0
        finally:
            locker.dispose()
            watcher.dispose()
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()


def _wait_state(channel: grpc.Channel, wanted: set[grpc.ChannelConnectivity], timeout: float) -> bool:
    seen = threading.Event()

    def on_change(state: grpc.ChannelConnectivity) -> None:
        if state in wanted:
            seen.set()

    channel.subscribe(on_change, try_to_connect=False)
    try:
        return seen.wait(timeout)
    finally:
        channel.unsubscribe(on_change)


def test_idle_connections_are_closed_by_the_server(tmp_path: Path, servers: list[Server]) -> None:
    server = start([*_sqlite(tmp_path), "--max-connection-idle-ms", "500"], tmp_path)
    servers.append(server)
    with server.channel() as channel:
        assert health_status(channel) == "SERVING"
        # The server sends GOAWAY after 0.5 s without calls; the client channel goes IDLE.
        assert _wait_state(channel, {grpc.ChannelConnectivity.IDLE}, 15)
        assert health_status(channel) == "SERVING"  # and reconnects on demand
    assert server.stop() == 0


def test_keepalive_abuse_gets_goaway_and_others_are_unaffected(tmp_path: Path, servers: list[Server]) -> None:
    server = start([*_sqlite(tmp_path), "--min-ping-interval-ms", "10000", "--max-ping-strikes", "1"], tmp_path)
    servers.append(server)
    abusive_options = [
        ("grpc.keepalive_time_ms", 100),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    with grpc.insecure_channel(server.address, options=abusive_options) as abusive, server.channel() as normal:
        assert health_status(abusive) == "SERVING"
        assert health_status(normal) == "SERVING"
        # Pings without calls, far more often than allowed: the server closes that connection.
        assert _wait_state(abusive, {grpc.ChannelConnectivity.IDLE, grpc.ChannelConnectivity.TRANSIENT_FAILURE}, 15)
        for _ in range(5):
            assert health_status(normal) == "SERVING"
    assert server.stop() == 0
