"""Text containing NUL (U+0000), through the real server, on every backend.

PostgreSQL text cannot hold NUL (the driver refused the statement: INTERNAL), SQLite and
MySQL stored it, and MLMD keeps only the text before it. LineageDB answers the same on
every backend: INVALID_ARGUMENT naming the field, and nothing stored. Reads that take text
(URIs, names, external ids, type names, filter queries) answer INVALID_ARGUMENT too: such
a value matches nothing that can be stored, and one rule for reads and writes is simpler.

Each case runs against a seeded server and compares every table's contents before and after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.message import Message

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.backends import IN_CI, scratch_database, selected_backends, unreachable_reason
from tests.conftest import LiveServer, start_server, stop_server

NUL = "\x00"
Pair = svc.PutExecutionRequest.ArtifactAndEvent
Edge = svc.PutLineageSubgraphRequest.EventEdge
Starting = mlmd.LineageSubgraphQueryOptions.StartingNodes


@dataclass
class Seeded:
    server: LiveServer
    stub: svc_grpc.MetadataStoreServiceStub
    engine: sa.Engine
    artifact_type: int
    execution_type: int
    context_type: int
    artifact: int
    execution: int
    context: int


@pytest.fixture(scope="module", params=selected_backends())
def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """One server per backend for every case of this module, with a node of each kind."""
    backend: str = request.param
    reason = unreachable_reason(backend)
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI requires every backend: {reason}")
        pytest.skip(reason)
    with scratch_database(backend, str(tmp_path_factory.mktemp(f"nul-{backend}"))) as url:
        server = start_server(url)
        engine = sa.create_engine(url)
        try:
            with server.channel() as channel:
                stub = svc_grpc.MetadataStoreServiceStub(channel)
                yield _seed(server, stub, engine)
        finally:
            engine.dispose()
            stop_server(server)


def _seed(server: LiveServer, stub: svc_grpc.MetadataStoreServiceStub, engine: sa.Engine) -> Seeded:
    a_type = stub.PutArtifactType(
        svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Data", properties={"p": mlmd.STRING}))
    ).type_id
    e_type = stub.PutExecutionType(
        svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="Run", properties={"p": mlmd.STRING}))
    ).type_id
    c_type = stub.PutContextType(
        svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="Pipe", properties={"p": mlmd.STRING}))
    ).type_id
    [artifact] = stub.PutArtifacts(
        svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=a_type, name="a", uri="u", external_id="ax")])
    ).artifact_ids
    [execution] = stub.PutExecutions(
        svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=e_type, name="e", external_id="ex")])
    ).execution_ids
    [context] = stub.PutContexts(
        svc.PutContextsRequest(contexts=[mlmd.Context(type_id=c_type, name="c", external_id="cx")])
    ).context_ids
    return Seeded(server, stub, engine, a_type, e_type, c_type, artifact, execution, context)


def table_contents(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (MLMD's and LineageDB's own), in a stable order."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {
            name: sorted((tuple(row) for row in connection.execute(sa.select(table))), key=repr)
            for name, table in metadata.tables.items()
        }


def _string(value: str) -> mlmd.Value:
    return mlmd.Value(string_value=value)


def _event_with_key(artifact_id: int | None, execution_id: int | None, key: str) -> mlmd.Event:
    event = mlmd.Event(type=mlmd.Event.INPUT)
    if artifact_id is not None:
        event.artifact_id = artifact_id
    if execution_id is not None:
        event.execution_id = execution_id
    event.path.steps.add().index = 0
    event.path.steps.add().key = key
    return event


def _lineage(filter_query: str) -> svc.GetLineageSubgraphRequest:
    query = mlmd.LineageSubgraphQueryOptions(starting_artifacts=Starting(filter_query=filter_query))
    return svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=query)


# (case id, RPC, request builder, words the error message must contain: the field)
Case = tuple[str, str, Callable[[Seeded], Message], str]

WRITES: list[Case] = [
    (
        "artifact_type.name",
        "PutArtifactType",
        lambda s: svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name=f"T{NUL}x")),
        "type name",
    ),
    (
        "artifact_type.version",
        "PutArtifactType",
        lambda s: svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="T", version=f"v{NUL}1")),
        "type version",
    ),
    (
        "artifact_type.description",
        "PutArtifactType",
        lambda s: svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="T", description=f"d{NUL}")),
        "type description",
    ),
    (
        "artifact_type.external_id",
        "PutArtifactType",
        lambda s: svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="T", external_id=f"{NUL}x")),
        "type external_id",
    ),
    (
        "artifact_type.external_id_on_existing",
        "PutArtifactType",
        lambda s: svc.PutArtifactTypeRequest(
            artifact_type=mlmd.ArtifactType(name="Data", properties={"p": mlmd.STRING}, external_id=f"x{NUL}")
        ),
        "type external_id",
    ),
    (
        "artifact_type.property_name",
        "PutArtifactType",
        lambda s: svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="T", properties={f"p{NUL}": 1})),
        "type property name",
    ),
    (
        "artifact_type.property_name_added",
        "PutArtifactType",
        lambda s: svc.PutArtifactTypeRequest(
            artifact_type=mlmd.ArtifactType(name="Data", properties={"p": mlmd.STRING, f"q{NUL}": mlmd.INT}),
            can_add_fields=True,
        ),
        "type property name",
    ),
    (
        "execution_type.name",
        "PutExecutionType",
        lambda s: svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name=f"E{NUL}")),
        "type name",
    ),
    (
        "context_type.name",
        "PutContextType",
        lambda s: svc.PutContextTypeRequest(context_type=mlmd.ContextType(name=f"C{NUL}")),
        "type name",
    ),
    (
        "put_types.second_type",
        "PutTypes",
        lambda s: svc.PutTypesRequest(
            artifact_types=[mlmd.ArtifactType(name="Fine")],
            context_types=[mlmd.ContextType(name="Fine", properties={f"k{NUL}": mlmd.INT})],
        ),
        "type property name",
    ),
    (
        "artifact.uri",
        "PutArtifacts",
        lambda s: svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=s.artifact_type, uri=f"gs://b/{NUL}")]),
        "artifact uri",
    ),
    (
        "artifact.name_after_a_good_one",
        "PutArtifacts",
        lambda s: svc.PutArtifactsRequest(
            artifacts=[
                mlmd.Artifact(type_id=s.artifact_type, name="ok"),
                mlmd.Artifact(type_id=s.artifact_type, name=NUL),
            ]
        ),
        "artifact name",
    ),
    (
        "artifact.external_id",
        "PutArtifacts",
        lambda s: svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=s.artifact_type, external_id=f"x{NUL}y")]),
        "artifact external_id",
    ),
    (
        "artifact.property_value",
        "PutArtifacts",
        lambda s: svc.PutArtifactsRequest(
            artifacts=[mlmd.Artifact(type_id=s.artifact_type, properties={"p": _string(f"v{NUL}")})]
        ),
        "artifact property string_value",
    ),
    (
        "artifact.custom_property_name",
        "PutArtifacts",
        lambda s: svc.PutArtifactsRequest(
            artifacts=[mlmd.Artifact(type_id=s.artifact_type, custom_properties={f"c{NUL}": _string("v")})]
        ),
        "artifact property name",
    ),
    (
        "artifact.update_uri",
        "PutArtifacts",
        lambda s: svc.PutArtifactsRequest(
            artifacts=[mlmd.Artifact(id=s.artifact, type_id=s.artifact_type, name="a", uri=f"u{NUL}")]
        ),
        "artifact uri",
    ),
    (
        "artifact.update_custom_property",
        "PutArtifacts",
        lambda s: svc.PutArtifactsRequest(
            artifacts=[mlmd.Artifact(id=s.artifact, custom_properties={"c": _string(NUL)})],
            update_mask={"paths": ["custom_properties.c"]},
        ),
        "artifact property string_value",
    ),
    (
        "execution.name",
        "PutExecutions",
        lambda s: svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=s.execution_type, name=f"{NUL}")]),
        "execution name",
    ),
    (
        "execution.external_id",
        "PutExecutions",
        lambda s: svc.PutExecutionsRequest(
            executions=[mlmd.Execution(type_id=s.execution_type, external_id=f"e{NUL}")]
        ),
        "execution external_id",
    ),
    (
        "execution.custom_property_value",
        "PutExecutions",
        lambda s: svc.PutExecutionsRequest(
            executions=[mlmd.Execution(type_id=s.execution_type, custom_properties={"c": _string(f"{NUL}")})]
        ),
        "execution property string_value",
    ),
    (
        "context.name",
        "PutContexts",
        lambda s: svc.PutContextsRequest(contexts=[mlmd.Context(type_id=s.context_type, name=f"c{NUL}2")]),
        "context name",
    ),
    (
        "context.update_name",
        "PutContexts",
        lambda s: svc.PutContextsRequest(contexts=[mlmd.Context(id=s.context, type_id=s.context_type, name=f"{NUL}")]),
        "context name",
    ),
    (
        "context.external_id",
        "PutContexts",
        lambda s: svc.PutContextsRequest(
            contexts=[mlmd.Context(type_id=s.context_type, name="c2", external_id=f"{NUL}")]
        ),
        "context external_id",
    ),
    (
        "context.property_value",
        "PutContexts",
        lambda s: svc.PutContextsRequest(
            contexts=[mlmd.Context(type_id=s.context_type, name="c2", properties={"p": _string(f"a{NUL}b")})]
        ),
        "context property string_value",
    ),
    (
        "event.path_step_key",
        "PutEvents",
        lambda s: svc.PutEventsRequest(events=[_event_with_key(s.artifact, s.execution, f"k{NUL}")]),
        "event path step key",
    ),
    (
        "put_execution.execution_name",
        "PutExecution",
        lambda s: svc.PutExecutionRequest(execution=mlmd.Execution(type_id=s.execution_type, name=f"run{NUL}")),
        "execution name",
    ),
    (
        "put_execution.artifact_uri",
        "PutExecution",
        lambda s: svc.PutExecutionRequest(
            execution=mlmd.Execution(type_id=s.execution_type),
            artifact_event_pairs=[
                Pair(
                    artifact=mlmd.Artifact(type_id=s.artifact_type, uri=f"u{NUL}"),
                    event=mlmd.Event(type=mlmd.Event.OUTPUT),
                )
            ],
        ),
        "artifact uri",
    ),
    (
        "put_execution.event_path_step_key",
        "PutExecution",
        lambda s: svc.PutExecutionRequest(
            execution=mlmd.Execution(type_id=s.execution_type),
            artifact_event_pairs=[
                Pair(artifact=mlmd.Artifact(type_id=s.artifact_type), event=_event_with_key(None, None, NUL))
            ],
        ),
        "event path step key",
    ),
    (
        "put_execution.context_name",
        "PutExecution",
        lambda s: svc.PutExecutionRequest(
            execution=mlmd.Execution(type_id=s.execution_type),
            contexts=[mlmd.Context(type_id=s.context_type, name=f"ctx{NUL}")],
        ),
        "context name",
    ),
    (
        "put_execution.reused_context_name",
        "PutExecution",
        lambda s: svc.PutExecutionRequest(
            execution=mlmd.Execution(type_id=s.execution_type),
            contexts=[mlmd.Context(type_id=s.context_type, name=f"c{NUL}")],
            options=svc.PutExecutionRequest.Options(reuse_context_if_already_exist=True),
        ),
        "context name",
    ),
    (
        "put_lineage_subgraph.artifact_external_id",
        "PutLineageSubgraph",
        lambda s: svc.PutLineageSubgraphRequest(
            executions=[mlmd.Execution(type_id=s.execution_type)],
            artifacts=[mlmd.Artifact(type_id=s.artifact_type, external_id=f"x{NUL}")],
        ),
        "artifact external_id",
    ),
    (
        "put_lineage_subgraph.context_property",
        "PutLineageSubgraph",
        lambda s: svc.PutLineageSubgraphRequest(
            contexts=[mlmd.Context(type_id=s.context_type, name="ls", properties={"p": _string(NUL)})]
        ),
        "context property string_value",
    ),
    (
        "put_lineage_subgraph.event_path_step_key",
        "PutLineageSubgraph",
        lambda s: svc.PutLineageSubgraphRequest(
            executions=[mlmd.Execution(type_id=s.execution_type)],
            artifacts=[mlmd.Artifact(type_id=s.artifact_type)],
            event_edges=[Edge(execution_index=0, artifact_index=0, event=_event_with_key(None, None, f"{NUL}k"))],
        ),
        "event path step key",
    ),
]

READS: list[Case] = [
    ("by_uri", "GetArtifactsByURI", lambda s: svc.GetArtifactsByURIRequest(uris=["u", f"u{NUL}"]), "artifact uri"),
    (
        "artifacts_by_external_ids",
        "GetArtifactsByExternalIds",
        lambda s: svc.GetArtifactsByExternalIdsRequest(external_ids=[f"ax{NUL}"]),
        "artifact external_id",
    ),
    (
        "executions_by_external_ids",
        "GetExecutionsByExternalIds",
        lambda s: svc.GetExecutionsByExternalIdsRequest(external_ids=["ex", f"{NUL}"]),
        "execution external_id",
    ),
    (
        "contexts_by_external_ids",
        "GetContextsByExternalIds",
        lambda s: svc.GetContextsByExternalIdsRequest(external_ids=[f"c{NUL}x"]),
        "context external_id",
    ),
    (
        "types_by_external_ids",
        "GetArtifactTypesByExternalIds",
        lambda s: svc.GetArtifactTypesByExternalIdsRequest(external_ids=[f"t{NUL}"]),
        "type external_id",
    ),
    ("type", "GetArtifactType", lambda s: svc.GetArtifactTypeRequest(type_name=f"Data{NUL}"), "type name"),
    (
        "type_version",
        "GetContextType",
        lambda s: svc.GetContextTypeRequest(type_name="Pipe", type_version=f"{NUL}"),
        "type version",
    ),
    (
        "nodes_by_type",
        "GetExecutionsByType",
        lambda s: svc.GetExecutionsByTypeRequest(type_name=f"Run{NUL}"),
        "type name",
    ),
    (
        "by_type_and_name",
        "GetArtifactByTypeAndName",
        lambda s: svc.GetArtifactByTypeAndNameRequest(type_name="Data", artifact_name=f"a{NUL}"),
        "artifact name",
    ),
    (
        "by_unknown_type_and_name",
        "GetContextByTypeAndName",
        lambda s: svc.GetContextByTypeAndNameRequest(type_name="Nope", context_name=f"c{NUL}"),
        "context name",
    ),
    (
        "by_type_name_and_name",
        "GetExecutionByTypeAndName",
        lambda s: svc.GetExecutionByTypeAndNameRequest(type_name=f"Run{NUL}", execution_name="e"),
        "type name",
    ),
    (
        "filter_literal",
        "GetArtifacts",
        lambda s: svc.GetArtifactsRequest(options=mlmd.ListOperationOptions(filter_query=f"uri = 'u{NUL}'")),
        "filter_query",
    ),
    (
        "filter_outside_literal",
        "GetContextsByType",
        lambda s: svc.GetContextsByTypeRequest(
            type_name="Pipe", options=mlmd.ListOperationOptions(filter_query=f"name = 'c'{NUL}")
        ),
        "filter_query",
    ),
    (
        "filter_property_name",
        "GetExecutions",
        lambda s: svc.GetExecutionsRequest(
            options=mlmd.ListOperationOptions(filter_query=f"properties.`p{NUL}`.string_value = 'x'")
        ),
        "filter_query",
    ),
    ("lineage_filter", "GetLineageSubgraph", lambda s: _lineage(f"uri = '{NUL}'"), "filter_query"),
]


@pytest.mark.parametrize(("rpc", "build", "field"), [c[1:] for c in WRITES], ids=[c[0] for c in WRITES])
def test_nul_in_written_text_is_invalid_argument_and_stores_nothing(
    seeded: Seeded, rpc: str, build: Callable[[Seeded], Message], field: str
) -> None:
    before = table_contents(seeded.engine)
    with pytest.raises(grpc.RpcError) as raised:
        getattr(seeded.stub, rpc)(build(seeded), timeout=30)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    assert field in raised.value.details() and "NUL" in raised.value.details(), raised.value.details()
    assert table_contents(seeded.engine) == before


@pytest.mark.parametrize(("rpc", "build", "field"), [c[1:] for c in READS], ids=[c[0] for c in READS])
def test_nul_in_read_text_is_invalid_argument(
    seeded: Seeded, rpc: str, build: Callable[[Seeded], Message], field: str
) -> None:
    before = table_contents(seeded.engine)
    with pytest.raises(grpc.RpcError) as raised:
        getattr(seeded.stub, rpc)(build(seeded), timeout=30)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    assert field in raised.value.details(), raised.value.details()
    assert table_contents(seeded.engine) == before


IGNORED: list[Case] = [
    (
        "artifact.name_on_update",  # MLMD never changes an artifact's name on update
        "PutArtifacts",
        lambda s: svc.PutArtifactsRequest(
            artifacts=[mlmd.Artifact(id=s.artifact, type_id=s.artifact_type, name=f"a{NUL}", uri="u", external_id="ax")]
        ),
        "",
    ),
    (
        "artifact_type.description_when_it_exists",  # a re-put never changes the description
        "PutArtifactType",
        lambda s: svc.PutArtifactTypeRequest(
            artifact_type=mlmd.ArtifactType(name="Data", properties={"p": mlmd.STRING}, description=NUL)
        ),
        "",
    ),
    (
        "artifact.outside_update_mask",
        "PutArtifacts",
        lambda s: svc.PutArtifactsRequest(
            artifacts=[mlmd.Artifact(id=s.artifact, uri=f"u{NUL}", custom_properties={"c": _string(f"{NUL}")})],
            update_mask={"paths": ["external_id"]},
        ),
        "",
    ),
]


@pytest.mark.parametrize(("rpc", "build"), [c[1:3] for c in IGNORED], ids=[c[0] for c in IGNORED])
def test_nul_in_text_a_write_ignores_stays_ignored(
    seeded: Seeded, rpc: str, build: Callable[[Seeded], Message]
) -> None:
    """Fields MLMD's write semantics ignore are ignored whatever they hold: OK, no NUL stored."""
    getattr(seeded.stub, rpc)(build(seeded), timeout=30)
    stored = table_contents(seeded.engine)
    assert not [row for rows in stored.values() for row in rows if any(NUL in str(value) for value in row)]
