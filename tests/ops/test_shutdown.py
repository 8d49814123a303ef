"""Graceful shutdown on SIGTERM, and several worker processes on one port."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import grpc
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.backends import scratch_database
from tests.ops.conftest import READY, Server, health_status, require_backend, start, wait_for

GRACE_S = 20


def test_sigterm_not_serving_first_in_flight_call_finishes_new_calls_refused_exit_0(
    tmp_path: Path, servers: list[Server]
) -> None:
    require_backend("postgresql")
    with scratch_database("postgresql", str(tmp_path)) as url:
        server = start(
            ["--host", "127.0.0.1", "--port", "0", "--database", url, "--shutdown-grace-s", str(GRACE_S)], tmp_path
        )
        servers.append(server)
        locker = sa.create_engine(url)
        try:
            with server.channel() as channel, locker.connect() as lock_connection:
                stub = svc_grpc.MetadataStoreServiceStub(channel)
                type_id = stub.PutArtifactType(
                    svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="t")), timeout=10
                ).type_id
                watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
                assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

                # An in-flight write, blocked on a table lock until we release it.
                lock_connection.exec_driver_sql("LOCK TABLE artifact IN ACCESS EXCLUSIVE MODE")
                outcome: dict[str, object] = {}

                def in_flight() -> None:
                    request = svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, uri="in-flight")])
                    try:
                        outcome["ids"] = list(stub.PutArtifacts(request, timeout=60).artifact_ids)
                    except grpc.RpcError as error:
                        outcome["error"] = error.code()

                caller = threading.Thread(target=in_flight)
                caller.start()
                time.sleep(0.5)  # let it reach the lock
                assert caller.is_alive()
                signalled = time.monotonic()
                server.process.send_signal(signal.SIGTERM)

                # 1. Health goes NOT_SERVING first.
                assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
                watch.cancel()
                # 2. New calls are refused while the in-flight one is still running.
                with grpc.insecure_channel(server.address) as fresh:

                    def refused() -> bool:
                        try:
                            health_status(fresh, timeout=1)
                            return False
                        except grpc.RpcError as error:
                            return error.code() is grpc.StatusCode.UNAVAILABLE

                    assert wait_for(refused, 10)
                assert caller.is_alive() and server.process.poll() is None
                # 3. The in-flight call completes once the lock goes.
                lock_connection.rollback()
                caller.join(timeout=30)
                assert outcome.get("ids") and "error" not in outcome, outcome
            # 4. Exit code 0, well within the grace period.
            assert server.process.wait(timeout=GRACE_S + 10) == 0
            print(f"shutdown took {time.monotonic() - signalled:.2f}s (including the held lock)")
            assert "stopped in" in server.stderr()
            # The committed write is there.
            with locker.connect() as connection:
                uris = connection.exec_driver_sql("SELECT uri FROM artifact").scalars().all()
            assert uris == ["in-flight"]
        finally:
            locker.dispose()
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()


def test_idle_server_stops_quickly_on_sigterm(tmp_path: Path, servers: list[Server]) -> None:
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", f"sqlite:///{tmp_path}/s.db"], tmp_path)
    servers.append(server)
    started = time.monotonic()
    assert server.stop() == 0
    print(f"idle shutdown: {time.monotonic() - started:.2f}s")


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def test_workers_share_one_port_and_stop_together(tmp_path: Path, servers: list[Server]) -> None:
    server = start(
        ["--host", "127.0.0.1", "--port", "0", "--workers", "3", "--database", f"sqlite:///{tmp_path}/w.db"], tmp_path
    )
    servers.append(server)
    children = _children(server.process.pid)
    assert len(children) == 3
    for index in range(12):
        with server.channel() as channel:  # a new connection each time: the kernel spreads them
            stub = svc_grpc.MetadataStoreServiceStub(channel)
            stub.PutArtifactType(
                svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name=f"w{index}")), timeout=10
            )
    with server.channel() as channel:
        names = {
            t.name
            for t in svc_grpc.MetadataStoreServiceStub(channel)
            .GetArtifactTypes(svc.GetArtifactTypesRequest(), timeout=10)
            .artifact_types
        }
    assert {f"w{i}" for i in range(12)} <= names
    assert server.stop() == 0
    assert sum(1 for line in server.stdout if READY.match(line.strip())) == 1
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_sigabrt_leaves_every_thread_stack_in_the_log(tmp_path: Path, servers: list[Server]) -> None:
    """What a supervisor (or the test harness) gets when it gives up on a shutdown: where it hung."""
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", f"sqlite:///{tmp_path / 'a.db'}"], tmp_path)
    servers.append(server)
    # A server that has answered, as one a supervisor gives up on would have: faulthandler
    # walks every thread's frames without the GIL, and a thread still starting up (changing
    # its frames as it is walked) can crash the dump itself (CPython's documented risk).
    with server.channel() as channel:
        svc_grpc.MetadataStoreServiceStub(channel).GetArtifactTypes(svc.GetArtifactTypesRequest(), timeout=10)
    server.process.send_signal(signal.SIGABRT)
    assert server.process.wait(timeout=30) == -signal.SIGABRT
    log = server.stderr()
    assert "Fatal Python error: Aborted" in log
    assert 'File "' in log and "serve" in log, log[-2000:]
