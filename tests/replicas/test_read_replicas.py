"""Read replicas end to end: a private PostgreSQL primary, one streaming replica, a LineageDB server
with --read-database. Reads go to the replica; with its replay paused, a client that wrote reads
its own writes while other reads keep flowing to it; killing it under load loses no acknowledged
write and no call fails.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import uuid
from collections import Counter
from pathlib import Path

import grpc
import pytest

from lineagedb.client import MetadataStore
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.ops.conftest import Server, official_client
from tests.replicas.conftest import Cluster, reads, scrape, start_server, wait_until
from tests.resilience.conftest import Workload, check_invariants

LSN = "lineagedb-lsn"
TIMEOUT_S = 10.0


def replica_target(cluster: Cluster) -> str:
    return f"127.0.0.1:{cluster.standby.port}/lineagedb"


def artifact_type(stub: svc_grpc.MetadataStoreServiceStub) -> int:
    request = svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="replicas.Blob"), can_add_fields=True)
    return int(stub.PutArtifactType(request, timeout=TIMEOUT_S).type_id)


class EchoingClient:
    """A raw gRPC client that sends back the largest lineagedb-lsn it received (any language can)."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = svc_grpc.MetadataStoreServiceStub(self.channel)
        self.lsn: int | None = None

    def call(self, method: str, request: object) -> object:
        metadata = () if self.lsn is None else ((LSN, str(self.lsn)),)
        response, call = getattr(self.stub, method).with_call(request, metadata=metadata, timeout=TIMEOUT_S)
        for key, value in call.trailing_metadata() or ():
            if key == LSN:
                self.lsn = max(self.lsn or 0, int(value))
        return response

    def close(self) -> None:
        self.channel.close()


def put_artifact(call: object, type_id: int, name: str) -> int:
    request = svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, name=name, uri=f"mem://{name}")])
    response = call("PutArtifacts", request)  # type: ignore[operator]
    return int(response.artifact_ids[0])


def found(call: object, artifact_id: int) -> bool:
    response = call("GetArtifactsByID", svc.GetArtifactsByIDRequest(artifact_ids=[artifact_id]))  # type: ignore[operator]
    return len(response.artifacts) == 1


def test_writes_return_their_lsn_and_reads_are_served_by_the_replica(
    cluster: Cluster, server: tuple[Server, int]
) -> None:
    running, metrics_port = server
    client = EchoingClient(running.address)
    try:
        type_id = artifact_type(client.stub)
        artifact_id = put_artifact(client.call, type_id, f"a-{uuid.uuid4().hex}")
        assert client.lsn is not None and client.lsn > 0  # the write's commit position came back
        before = reads(metrics_port, replica_target(cluster))
        # The replica replays the write within moments; from then on the client's reads go there.
        wait_until(lambda: found(client.call, artifact_id) and reads(metrics_port, replica_target(cluster)) > before)
        before = reads(metrics_port, replica_target(cluster))
        for _ in range(20):
            assert found(client.call, artifact_id)
        assert reads(metrics_port, replica_target(cluster)) >= before + 20
        assert cluster.replica_connections() >= 1  # the server's pool on the replica, seen by the replica
        metrics = scrape(metrics_port)
        assert metrics[("lineagedb_read_replica_up", (("replica", replica_target(cluster)),))] == 1.0
    finally:
        client.close()


def test_malformed_lsn_metadata_is_invalid_argument(server: tuple[Server, int]) -> None:
    running, _ = server
    with grpc.insecure_channel(running.address) as channel:
        stub = svc_grpc.MetadataStoreServiceStub(channel)
        for bad in ("0/16B3748", "-1", "x", "1" * 25):
            with pytest.raises(grpc.RpcError) as raised:
                stub.GetArtifactTypes(svc.GetArtifactTypesRequest(), metadata=((LSN, bad),), timeout=TIMEOUT_S)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_paused_replay_reads_own_writes_while_other_reads_use_the_replica(
    cluster: Cluster, server: tuple[Server, int]
) -> None:
    running, metrics_port = server
    target = replica_target(cluster)
    echoing = EchoingClient(running.address)
    unaware = grpc.insecure_channel(running.address)  # sends nothing: the server remembers its address
    unaware_stub = svc_grpc.MetadataStoreServiceStub(unaware)

    def unaware_call(method: str, request: object) -> object:
        return getattr(unaware_stub, method)(request, timeout=TIMEOUT_S)

    # Another client, which has written nothing new: it declares position 0 and may read any replica.
    other = EchoingClient(running.address)
    other.lsn = 0
    store = MetadataStore(running.address, timeout=TIMEOUT_S)
    try:
        type_id = artifact_type(echoing.stub)
        seen_before = put_artifact(echoing.call, type_id, f"before-{uuid.uuid4().hex}")
        wait_until(
            lambda: reads_after_found(other, seen_before, metrics_port, target),
            what="the replica to replay the first write and serve the other client",
        )
        cluster.pause_replay()
        try:
            written: list[int] = []
            for round_ in range(10):
                # Each writer reads back what it just wrote, at once.
                (store_id,) = store.put_artifacts([mlmd.Artifact(type_id=type_id, uri=f"mem://s{round_}")])
                assert store._transport._lsn is not None  # type: ignore[attr-defined]  # it sends its position
                assert [a.id for a in store.get_artifacts_by_id([store_id])] == [store_id]
                echo_id = put_artifact(echoing.call, type_id, f"echo-{round_}-{uuid.uuid4().hex}")
                assert echoing.lsn is not None  # with its position sent, the server ignores its address
                assert found(echoing.call, echo_id)
                unaware_id = put_artifact(unaware_call, type_id, f"unaware-{round_}-{uuid.uuid4().hex}")
                assert found(unaware_call, unaware_id)
                written += [store_id, echo_id, unaware_id]
            # The other client reads the paused replica: older data yes, the new writes not yet.
            replica_reads = reads(metrics_port, target)
            assert found(other.call, seen_before)
            assert not any(found(other.call, artifact_id) for artifact_id in written)
            assert reads(metrics_port, target) >= replica_reads + 1 + len(written)
            primary_reads = scrape(metrics_port)[("lineagedb_read_primary_total", (("reason", "behind_caller_write"),))]
            assert primary_reads >= 3 * 10  # the writers' reads, each from the primary
        finally:
            cluster.resume_replay()
        wait_until(lambda: all(found(other.call, artifact_id) for artifact_id in written), what="replay to resume")
    finally:
        store.close()
        echoing.close()
        other.close()
        unaware.close()


def test_official_client_reads_its_own_writes_with_replay_paused(
    cluster: Cluster, server: tuple[Server, int], mlmd_python: Path
) -> None:
    # ml-metadata's client sends no position: the server remembers its address's latest write.
    running, metrics_port = server
    cluster.pause_replay()
    try:
        primary_reads = reads(metrics_port, "primary")
        result = official_client(mlmd_python, running.port, host="127.0.0.1")
        assert result["ok"], result
        assert result["uris"] == ["s3://bucket/a"]  # written, then read back by id at once
        assert reads(metrics_port, "primary") >= primary_reads + 1
    finally:
        cluster.resume_replay()


def test_replica_lagging_beyond_the_bound_is_skipped(cluster: Cluster, tmp_path: Path) -> None:
    running, metrics_port = start_server(cluster, tmp_path, max_lag_s=0.5)
    target = replica_target(cluster)
    client = EchoingClient(running.address)
    try:
        type_id = artifact_type(client.stub)
        first = put_artifact(client.call, type_id, f"lag-{uuid.uuid4().hex}")
        wait_until(lambda: found(client.call, first) and reads(metrics_port, target) > 0, what="replica reads")
        cluster.pause_replay()
        try:
            client.lsn = 0  # reads as a client that wrote nothing: only the lag bound keeps it off the replica
            newer = put_artifact(grpc_call(running), type_id, f"lag-new-{uuid.uuid4().hex}")
            lag_key = ("lineagedb_read_replica_lag_seconds", (("replica", target),))
            wait_until(lambda: scrape(metrics_port).get(lag_key, 0.0) > 0.5, what="the replica to fall behind")
            replica_reads = reads(metrics_port, target)
            client.lsn = 0
            assert found(client.call, newer)  # fresh data: the primary answered
            assert reads(metrics_port, target) == replica_reads
            reasons = scrape(metrics_port)
            assert reasons[("lineagedb_read_primary_total", (("reason", "replica_lagging"),))] >= 1
        finally:
            cluster.resume_replay()
        wait_until(lambda: reads_after_found(client, newer, metrics_port, target), what="the replica to serve again")
    finally:
        client.close()
        assert running.stop() == 0


def test_hung_replica_is_set_aside_by_its_probe_and_comes_back(cluster: Cluster, tmp_path: Path) -> None:
    # Every standby process stopped (SIGSTOP): connections stay open, nothing answers.
    running, metrics_port = start_server(cluster, tmp_path, max_lag_s=0.5)
    target = replica_target(cluster)
    up = ("lineagedb_read_replica_up", (("replica", target),))
    client = EchoingClient(running.address)
    try:
        type_id = artifact_type(client.stub)
        artifact_id = put_artifact(client.call, type_id, f"hung-{uuid.uuid4().hex}")
        wait_until(lambda: reads_after_found(client, artifact_id, metrics_port, target), what="replica reads")
        stopped = cluster.standby_processes()
        try:
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            wait_until(lambda: scrape(metrics_port)[up] == 0.0, what="the probe to give up")
            replica_reads = reads(metrics_port, target)
            for _ in range(10):
                client.lsn = 0
                assert found(client.call, artifact_id)
            assert reads(metrics_port, target) == replica_reads
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
        wait_until(lambda: reads_after_found(client, artifact_id, metrics_port, target), what="the replica back")
    finally:
        client.close()
        assert running.stop() == 0


def grpc_call(running: Server) -> object:
    channel = grpc.insecure_channel(running.address)
    stub = svc_grpc.MetadataStoreServiceStub(channel)
    return lambda method, request: getattr(stub, method)(request, timeout=TIMEOUT_S)


def reads_after_found(client: EchoingClient, artifact_id: int, metrics_port: int, target: str) -> bool:
    before = reads(metrics_port, target)
    client.lsn = 0
    return found(client.call, artifact_id) and reads(metrics_port, target) > before


def test_killing_the_replica_under_load_fails_no_call_and_loses_no_write(
    cluster: Cluster, server: tuple[Server, int]
) -> None:
    running, metrics_port = server
    target = replica_target(cluster)
    workload = Workload()
    with grpc.insecure_channel(running.address) as channel:
        workload.create_types(svc_grpc.MetadataStoreServiceStub(channel))
    type_id = artifact_type(svc_grpc.MetadataStoreServiceStub(grpc.insecure_channel(running.address)))
    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    failures: list[str] = []

    def writer() -> None:
        with grpc.insecure_channel(running.address) as channel:
            stub = svc_grpc.MetadataStoreServiceStub(channel)
            while not stop.is_set():
                code = workload.put(stub)
                with lock:
                    outcomes[f"write {code}"] += 1

    def reader() -> None:
        # Writes one artifact, then reads it and the whole type page, again and again.
        with MetadataStore(running.address, timeout=TIMEOUT_S, max_retries=1) as store:
            while not stop.is_set():
                try:
                    (artifact_id,) = store.put_artifacts([mlmd.Artifact(type_id=type_id, uri="mem://r")])
                    for _ in range(5):
                        got = store.get_artifacts_by_id([artifact_id])
                        if [a.id for a in got] != [artifact_id]:
                            failures.append(f"read {artifact_id}: {got}")
                        store.get_artifact_types()
                    with lock:
                        outcomes["read OK"] += 6
                except Exception as error:
                    with lock:
                        outcomes[f"read {type(error).__name__}"] += 1

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(3)]
    threads += [threading.Thread(target=reader, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        replica_reads = reads(metrics_port, target)
        wait_until(lambda: reads(metrics_port, target) > replica_reads + 50, what="reads on the replica under load")
        cluster.kill_standby()
        with lock:
            ok_at_kill = outcomes["read OK"] + outcomes["write OK"]
        wait_until(lambda: outcomes["read OK"] + outcomes["write OK"] > ok_at_kill + 200, what="calls after the kill")
        up_key = ("lineagedb_read_replica_up", (("replica", target),))
        assert scrape(metrics_port)[up_key] == 0.0
        cluster.start_standby()
        replica_reads = reads(metrics_port, target)
        wait_until(lambda: reads(metrics_port, target) > replica_reads + 50, timeout=60, what="the replica back")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    print(f"replica killed under load: outcomes {dict(outcomes)}; metrics {replica_metrics(metrics_port)}")
    assert set(outcomes) <= {"read OK", "write OK"}, outcomes
    # The replica is named by host:port/database and the error by its class: no user, no driver text.
    failed = [line for line in running.stderr().splitlines() if f"read replica {target} failed" in line]
    assert failed and all(re.search(r"failed \((\w+|no answer)\); reads go to the primary", line) for line in failed)
    assert not any("@" in line for line in failed), failed
    assert not failures, failures[:5]
    check_invariants(cluster.primary_url, workload.acked).assert_ok()


def replica_metrics(metrics_port: int) -> dict[str, float]:
    return {
        f"{name}{dict(labels)}": value
        for (name, labels), value in scrape(metrics_port).items()
        if name.startswith("lineagedb_read")
    }
