"""Racing writers on one database: three server processes, many client threads.

Every outcome is asserted exactly as one server gives it (one winner, the others
ALREADY_EXISTS, one row): several stateless servers on one database behave as one.

Each round releases all threads at once through a barrier. Round counts are small
("smoke") by default; LINEAGEDB_RACE_ROUNDS raises them for soak runs.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.store.engine import create_engine
from lineagedb.store.schema import schema_for
from tests.conftest import LiveServer, start_server, stop_server

ROUNDS = int(os.environ.get("LINEAGEDB_RACE_ROUNDS", "12"))
SERVERS = 3
THREADS = 9  # three per server
Outcome = tuple[str, Any]  # ("OK", response) or (status name, details)


@pytest.fixture
def servers(database_url: str) -> Iterator[list[LiveServer]]:
    started = [start_server(database_url)]  # creates the schema
    started += [start_server(database_url) for _ in range(SERVERS - 1)]
    yield started
    for server in started:
        assert stop_server(server) == 0


@pytest.fixture
def stubs(servers: list[LiveServer]) -> Iterator[list[svc_grpc.MetadataStoreServiceStub]]:
    # Thread i calls server i % SERVERS: each race has every server in it.
    channels = [servers[i % SERVERS].channel() for i in range(THREADS)]
    yield [svc_grpc.MetadataStoreServiceStub(channel) for channel in channels]
    for channel in channels:
        channel.close()


def race(stubs: list[svc_grpc.MetadataStoreServiceStub], call: Callable[[int, Any], Any]) -> list[Outcome]:
    """Run `call(thread_index, stub)` on every stub at the same moment."""
    barrier = threading.Barrier(len(stubs))

    def one(index: int) -> Outcome:
        barrier.wait(timeout=30)
        try:
            return "OK", call(index, stubs[index])
        except grpc.RpcError as error:
            return error.code().name, error.details()

    with ThreadPoolExecutor(len(stubs)) as pool:
        return list(pool.map(one, range(len(stubs))))


def count_rows(database_url: str, table: str, **where: Any) -> int:
    engine = create_engine(database_url)
    try:
        schema = schema_for(engine.dialect.name)
        t = getattr(schema, table)
        clause = sa.and_(*(t.c[k] == v for k, v in where.items())) if where else sa.true()
        with engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(t).where(clause)).scalar_one())
    finally:
        engine.dispose()


def codes(outcomes: list[Outcome]) -> Counter[str]:
    return Counter(code for code, _ in outcomes)


def put_type(stub: svc_grpc.MetadataStoreServiceStub, name: str, data_type: int = mlmd.INT) -> int:
    artifact_type = mlmd.ArtifactType(name=name)
    artifact_type.properties["p"] = data_type
    return int(stub.PutArtifactType(svc.PutArtifactTypeRequest(artifact_type=artifact_type)).type_id)


def test_identical_type_puts_racing_get_one_id_and_one_row(stubs, database_url):
    for round_ in range(ROUNDS):
        name = f"T{round_}"
        outcomes = race(stubs, lambda _i, stub, name=name: put_type(stub, name))
        assert codes(outcomes) == {"OK": THREADS}, outcomes
        assert len({type_id for _, type_id in outcomes}) == 1
        assert count_rows(database_url, "type", name=name) == 1


def test_conflicting_type_puts_racing_leave_one_definition(stubs, database_url):
    for round_ in range(ROUNDS):
        name = f"C{round_}"
        outcomes = race(
            stubs, lambda i, stub, name=name: (i % 2, put_type(stub, name, mlmd.INT if i % 2 else mlmd.STRING))
        )
        assert set(codes(outcomes)) <= {"OK", "ALREADY_EXISTS"}, outcomes
        winners = {value[0] for code, value in outcomes if code == "OK"}
        assert len(winners) == 1, f"both definitions were accepted: {outcomes}"
        assert count_rows(database_url, "type", name=name) == 1


def _context_type(stub: svc_grpc.MetadataStoreServiceStub) -> int:
    return int(stub.PutContextType(svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="Run"))).type_id)


def test_same_context_name_racing_creates_exactly_one(stubs, database_url):
    type_id = _context_type(stubs[0])
    for round_ in range(ROUNDS):
        context = mlmd.Context(type_id=type_id, name=f"run-{round_}")
        outcomes = race(stubs, lambda _i, stub, c=context: stub.PutContexts(svc.PutContextsRequest(contexts=[c])))
        assert codes(outcomes) == {"OK": 1, "ALREADY_EXISTS": THREADS - 1}, outcomes
        assert count_rows(database_url, "context", name=f"run-{round_}") == 1


def test_put_execution_reusing_context_racing_all_get_the_same_context(stubs, database_url):
    context_type = _context_type(stubs[0])
    execution_type = (
        stubs[0].PutExecutionType(svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="Step"))).type_id
    )
    options = svc.PutExecutionRequest.Options(reuse_context_if_already_exist=True)

    def put_with_retry(_i: int, stub: svc_grpc.MetadataStoreServiceStub, name: str) -> int:
        request = svc.PutExecutionRequest(
            execution=mlmd.Execution(type_id=execution_type),
            contexts=[mlmd.Context(type_id=context_type, name=name)],
            options=options,
        )
        for _attempt in range(5):  # what the official client does with ABORTED
            try:
                return int(stub.PutExecution(request).context_ids[0])
            except grpc.RpcError as error:
                if error.code() is not grpc.StatusCode.ABORTED:
                    raise
        raise AssertionError("still ABORTED after 5 attempts")

    for round_ in range(ROUNDS):
        name = f"pipeline-{round_}"
        outcomes = race(stubs, lambda i, stub, name=name: put_with_retry(i, stub, name))
        assert codes(outcomes) == {"OK": THREADS}, outcomes
        assert len({context_id for _, context_id in outcomes}) == 1
        assert count_rows(database_url, "context", name=name) == 1


@pytest.mark.parametrize("key", ["name", "external_id"])
def test_same_artifact_key_racing_creates_exactly_one(stubs, database_url, key):
    type_id = put_type(stubs[0], "Dataset")
    for round_ in range(ROUNDS):
        artifact = mlmd.Artifact(type_id=type_id, **{key: f"{key}-{round_}"})
        outcomes = race(stubs, lambda _i, stub, a=artifact: stub.PutArtifacts(svc.PutArtifactsRequest(artifacts=[a])))
        assert codes(outcomes) == {"OK": 1, "ALREADY_EXISTS": THREADS - 1}, outcomes
        assert count_rows(database_url, "artifact", **{key: f"{key}-{round_}"}) == 1


def test_duplicate_events_racing_store_one_row(stubs, database_url):
    artifact_type = put_type(stubs[0], "Data")
    execution_type = (
        stubs[0].PutExecutionType(svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="Job"))).type_id
    )
    for _round in range(ROUNDS):
        artifact_id = (
            stubs[0]
            .PutArtifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=artifact_type)]))
            .artifact_ids[0]
        )
        execution_id = (
            stubs[0]
            .PutExecutions(svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=execution_type)]))
            .execution_ids[0]
        )
        event = mlmd.Event(artifact_id=artifact_id, execution_id=execution_id, type=mlmd.Event.INPUT)
        outcomes = race(stubs, lambda _i, stub, e=event: stub.PutEvents(svc.PutEventsRequest(events=[e])))
        assert codes(outcomes) == {"OK": 1, "ALREADY_EXISTS": THREADS - 1}, outcomes
        assert count_rows(database_url, "event", artifact_id=artifact_id, execution_id=execution_id) == 1


def test_optimistic_updates_racing_never_both_succeed(stubs):
    type_id = put_type(stubs[0], "Model")
    pair = [stubs[0], stubs[1]]  # clients of two different servers
    for round_ in range(ROUNDS):
        artifact_id = (
            pair[0].PutArtifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id)])).artifact_ids[0]
        )
        stored = pair[0].GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=[artifact_id])).artifacts[0]

        def update(
            i: int, stub: svc_grpc.MetadataStoreServiceStub, stored: mlmd.Artifact = stored, round_: int = round_
        ) -> None:
            changed = mlmd.Artifact()
            changed.CopyFrom(stored)
            changed.uri = f"writer-{i}-round-{round_}"
            stub.PutArtifacts(
                svc.PutArtifactsRequest(
                    artifacts=[changed],
                    options=svc.PutArtifactsRequest.Options(abort_if_latest_updated_time_changed=True),
                )
            )

        outcomes = race(pair, update)
        assert codes(outcomes) == {"OK": 1, "FAILED_PRECONDITION": 1}, outcomes


def test_cold_start_of_three_servers_on_an_empty_database(database_url):
    barrier = threading.Barrier(3)

    def start(_i: int) -> LiveServer:
        barrier.wait(timeout=30)
        return start_server(database_url)

    with ThreadPoolExecutor(3) as pool:
        servers = list(pool.map(start, range(3)))
    try:
        for server in servers:
            with server.channel() as channel:
                stub = svc_grpc.MetadataStoreServiceStub(channel)
                assert (
                    len(
                        stub.GetArtifactTypesByID(svc.GetArtifactTypesByIDRequest(type_ids=[1, 2, 3, 4])).artifact_types
                    )
                    == 4
                )
        assert count_rows(database_url, "mlmd_env") == 1
        assert count_rows(database_url, "type") == 9
    finally:
        for server in servers:
            stop_server(server)


def test_a_type_grown_on_one_server_is_used_at_once_on_the_others(stubs):
    # Each server caches types; a property added through one server must be usable and
    # visible through every other server on its next call.
    model = mlmd.ArtifactType(name="Grown", properties={"p": mlmd.INT})
    type_id = stubs[0].PutArtifactType(svc.PutArtifactTypeRequest(artifact_type=model)).type_id
    for server in range(SERVERS):  # every server has the type cached now
        artifact = mlmd.Artifact(type_id=type_id, properties={"p": mlmd.Value(int_value=server)})
        stubs[server].PutArtifacts(svc.PutArtifactsRequest(artifacts=[artifact]))
    grown = mlmd.ArtifactType(name="Grown", properties={"p": mlmd.INT, "q": mlmd.STRING})
    stubs[0].PutArtifactType(svc.PutArtifactTypeRequest(artifact_type=grown, can_add_fields=True))
    for server in range(1, SERVERS):
        artifact = mlmd.Artifact(type_id=type_id, properties={"q": mlmd.Value(string_value=f"on {server}")})
        stubs[server].PutArtifacts(svc.PutArtifactsRequest(artifacts=[artifact]))
        seen = stubs[server].GetArtifactType(svc.GetArtifactTypeRequest(type_name="Grown")).artifact_type
        assert dict(seen.properties) == {"p": mlmd.INT, "q": mlmd.STRING}
