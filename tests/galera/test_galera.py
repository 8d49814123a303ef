"""LineageDB servers on the three nodes of a MariaDB Galera cluster (tests/galera/conftest.py).

Galera replicates rows, not locks: what one server serializes with a row lock on its node
another server on another node would not wait for. store.galera makes those locks rows the
cluster certifies. Here: the race suite (tests/concurrency/test_races.py's scenarios, one
server per node) gives one server's outcomes; a type created through two nodes at once is one
row; a node killed under load loses no acknowledged write and its clients go on through the
other servers.
"""

from __future__ import annotations

import inspect
import json
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import deletion_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.service.deletion import Deletion
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.engine import create_engine
from lineagedb.store.unit_of_work import Database
from tests.concurrency import test_races
from tests.concurrency.test_load_balancing import SERVICE_CONFIG
from tests.conftest import FakeClock, LiveServer
from tests.deletion.consistency import orphans
from tests.galera.conftest import Cluster
from tests.ops.conftest import health_status, wait_for


# Every race scenario that runs on servers already started (the cold start needs an empty
# database: on Galera the first start is done by one server, see README "Scaling out").
def _scenarios() -> list[Any]:
    params = []
    for name, function in vars(test_races).items():
        wanted = inspect.signature(function).parameters if name.startswith("test_") else {}
        if "stubs" not in wanted:
            continue
        for key in ("name", "external_id") if "key" in wanted else (None,):
            params.append(pytest.param(function, key, id=name if key is None else f"{name}[{key}]"))
    return params


@pytest.fixture(scope="module")
def stubs(node_servers: list[LiveServer]) -> Iterator[list[svc_grpc.MetadataStoreServiceStub]]:
    # As in the race suite: thread i calls server i % 3, so each race has every node in it.
    channels = [node_servers[i % len(node_servers)].channel() for i in range(test_races.THREADS)]
    yield [svc_grpc.MetadataStoreServiceStub(channel) for channel in channels]
    for channel in channels:
        channel.close()


@pytest.mark.parametrize(("scenario", "key"), _scenarios())
def test_race_suite_across_three_nodes(
    scenario: Callable[..., None], key: str | None, stubs: list[Any], cluster: Cluster
) -> None:
    arguments: dict[str, Any] = {"stubs": stubs, "database_url": cluster.nodes[0].url, "key": key}
    wanted = inspect.signature(scenario).parameters
    scenario(**{name: value for name, value in arguments.items() if name in wanted})


def test_a_type_created_through_two_nodes_at_once_is_one_row(node_servers: list[LiveServer], cluster: Cluster) -> None:
    pair = [svc_grpc.MetadataStoreServiceStub(node_servers[i].channel()) for i in (0, 1)]
    for round_ in range(test_races.ROUNDS):
        name = f"TwoNodes{round_}"
        outcomes = test_races.race(pair, lambda _i, stub, name=name: test_races.put_type(stub, name))
        assert test_races.codes(outcomes) == {"OK": 2}, outcomes
        assert len({type_id for _, type_id in outcomes}) == 1
        for node in cluster.nodes:  # every node holds the one row
            assert test_races.count_rows(node.url, "type", name=name) == 1


def test_a_deletion_and_writers_on_other_nodes_never_orphan_rows(cluster: Cluster, node_servers: list[Any]) -> None:
    # Deletions run on node 1 while writers on nodes 2 and 3 link new executions to the
    # artifacts being deleted. Row locks would not hold across nodes: here the writers' guard
    # (store.galera) makes the cluster abort whichever of a deletion and a writer certifies
    # second, so no event is left pointing at a deleted artifact.
    databases = [Database(create_engine(node.url)) for node in cluster.nodes]
    try:
        stores = [MetadataStore(database) for database in databases]
        blob = stores[0].put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Blob")))
        step = stores[0].put_execution_type(svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="Step")))
        seeds = list(
            stores[0]
            .put_artifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=blob.type_id)] * 40))
            .artifact_ids
        )
        deletion = Deletion(databases[0], FakeClock())
        stop = threading.Event()
        unexpected: list[BaseException] = []
        linked = [0]

        def writer(store: MetadataStore, seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                # PutEvents only links: it writes no row of the artifacts it names.
                execution = mlmd.Execution(type_id=step.type_id)
                try:
                    created = store.put_executions(svc.PutExecutionsRequest(executions=[execution]))
                    events = [
                        mlmd.Event(
                            artifact_id=artifact_id, execution_id=created.execution_ids[0], type=mlmd.Event.INPUT
                        )
                        for artifact_id in rng.sample(seeds, 2)
                    ]
                    store.put_events(svc.PutEventsRequest(events=events))
                    linked[0] += 1
                except (errors.InvalidArgumentError, errors.FailedPreconditionError, errors.AbortedError):
                    pass  # an input already deleted, or the loser of a certification conflict
                except BaseException as error:
                    unexpected.append(error)

        threads = [threading.Thread(target=writer, args=(stores[i], i)) for i in (1, 2)]
        for thread in threads:
            thread.start()
        outcomes: list[str] = []
        try:
            for artifact_id in seeds[:20]:
                try:
                    deletion.delete(
                        pb.DeleteRequest(
                            artifact_ids=[artifact_id], mode=pb.DeleteRequest.CASCADE_DOWNSTREAM, confirm=True
                        )
                    )
                    outcomes.append("deleted")
                except errors.NotFoundError:
                    outcomes.append("gone")
                except (errors.FailedPreconditionError, errors.AbortedError) as error:
                    outcomes.append(type(error).__name__)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert not unexpected, unexpected[:3]
        assert "deleted" in outcomes and linked[0] > 0, (outcomes, linked)
        for database in databases:
            assert orphans(database.engine) == {}
    finally:
        for database in databases:
            database.dispose()


WRITERS = 4
WRITES_AFTER_KILL = 15  # each writer's successful writes after its server's node died


def test_killing_a_node_under_load_loses_no_acknowledged_write(
    node_servers: list[LiveServer], cluster: Cluster
) -> None:
    type_id = test_races.put_type(svc_grpc.MetadataStoreServiceStub(node_servers[0].channel()), "Survivor")
    target = "ipv4:" + ",".join(server.address for server in node_servers)
    options = [("grpc.service_config", json.dumps(SERVICE_CONFIG))]
    acknowledged: list[str] = []
    failures: list[str] = []
    killed = threading.Event()
    after_kill = [0] * WRITERS
    stop = threading.Event()
    lock = threading.Lock()

    def writer(index: int) -> None:
        # Round robin over the three servers with health checks, as README "Scaling out" says.
        with grpc.insecure_channel(target, options=options) as channel:
            stub = svc_grpc.MetadataStoreServiceStub(channel)
            sequence = 0
            while not stop.is_set():
                sequence += 1
                name = f"w{index}-{sequence}"
                artifact = mlmd.Artifact(type_id=type_id, name=name, uri=f"s3://x/{name}")
                try:
                    stub.PutArtifacts(svc.PutArtifactsRequest(artifacts=[artifact]), timeout=20)
                except grpc.RpcError as error:
                    with lock:
                        failures.append(error.code().name)
                    continue
                with lock:
                    acknowledged.append(name)
                    if killed.is_set():
                        after_kill[index] += 1
                        if all(count >= WRITES_AFTER_KILL for count in after_kill):
                            stop.set()

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    try:
        assert wait_for(lambda: len(acknowledged) >= 30, 60)
        cluster.nodes[2].kill()  # SIGKILL: the node's server loses its database mid-call
        killed.set()
        finished = stop.wait(120)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert finished, f"writers stalled after the kill: {after_kill}, failures {failures[-5:]}"
        # Calls in flight on the killed node may fail (UNAVAILABLE: outcome unknown); nothing else.
        assert set(failures) <= {"UNAVAILABLE", "ABORTED", "DEADLINE_EXCEEDED"}, failures
        # Every acknowledged write is on both surviving nodes.
        for node in cluster.nodes[:2]:
            stored = _artifact_names(node.url, type_id)
            missing = set(acknowledged) - stored
            assert not missing, f"node {node.index} lost acknowledged writes: {sorted(missing)[:10]}"
        assert cluster.nodes[0].status("wsrep_cluster_size") == "2"
    finally:
        stop.set()
        cluster.nodes[2].start()  # rejoins (IST), so the module's other tests keep three nodes
        assert wait_for(lambda: _serving(node_servers[2]), 60)


def _artifact_names(url: str, type_id: int) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT name FROM Artifact WHERE type_id = :t"), {"t": type_id})
            return {str(name) for (name,) in rows}
    finally:
        engine.dispose()


def _serving(server: LiveServer) -> bool:
    with server.channel() as channel:
        try:
            return health_status(channel) == "SERVING"
        except grpc.RpcError:
            return False


def test_a_database_without_the_lock_tables_is_refused_on_galera(cluster: Cluster) -> None:
    from alembic import command

    from lineagedb.store.bootstrap import alembic_config, prepare_database

    admin = sa.create_engine(cluster.nodes[0].url.rsplit("/", 1)[0] + "/mysql", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text("CREATE DATABASE before_galera CHARACTER SET utf8mb4"))
    engine = create_engine(cluster.nodes[1].url.rsplit("/", 1)[0] + "/before_galera")
    try:
        prepare_database(engine)
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0007")  # as a store made before Galera support
        with pytest.raises(errors.FailedPreconditionError, match=r"Galera cluster.*revision 0008"):
            prepare_database(engine)
        assert prepare_database(engine, allow_upgrade=True).current
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text("DROP DATABASE before_galera"))
        admin.dispose()
