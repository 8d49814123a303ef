"""Every RPC of the service descriptor answers a minimal valid request through a real server.

Walks `MetadataStoreService` from the generated descriptor (52 methods), builds a minimal
valid request for each (creating what it needs first) and calls it over the wire: none may
answer UNIMPLEMENTED, and each answers OK. One SQLite server for the module.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.message import Message

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.proto.ml_metadata.proto.metadata_store_service_pb2 import DESCRIPTOR
from tests.conftest import LiveServer, start_server, stop_server

SERVICE = DESCRIPTOR.services_by_name["MetadataStoreService"]
Stub = svc_grpc.MetadataStoreServiceStub


@dataclass
class World:
    stub: Stub
    artifact_type: int
    execution_type: int
    context_type: int
    artifact: int
    execution: int
    context: int
    parent_context: int  # the parent of `context`


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(f"sqlite:///{tmp_path_factory.mktemp('all-rpcs') / 'lineagedb.db'}")
    yield live
    stop_server(live)


@pytest.fixture(scope="module")
def world(server: LiveServer) -> Iterator[World]:
    with server.channel() as channel:
        stub = Stub(channel)
        artifact_type = mlmd.ArtifactType(name="Data", external_id="data-type")
        a_type = stub.PutArtifactType(svc.PutArtifactTypeRequest(artifact_type=artifact_type)).type_id
        execution_type = mlmd.ExecutionType(name="Run", external_id="run-type")
        e_type = stub.PutExecutionType(svc.PutExecutionTypeRequest(execution_type=execution_type)).type_id
        context_type = mlmd.ContextType(name="Pipe", external_id="pipe-type")
        c_type = stub.PutContextType(svc.PutContextTypeRequest(context_type=context_type)).type_id
        artifact = mlmd.Artifact(type_id=a_type, name="a", uri="gs://a", external_id="a-x")
        [a] = stub.PutArtifacts(svc.PutArtifactsRequest(artifacts=[artifact])).artifact_ids
        execution = mlmd.Execution(type_id=e_type, name="e", external_id="e-x")
        [e] = stub.PutExecutions(svc.PutExecutionsRequest(executions=[execution])).execution_ids
        contexts = [
            mlmd.Context(type_id=c_type, name="c", external_id="c-x"),
            mlmd.Context(type_id=c_type, name="parent"),
        ]
        c, parent = stub.PutContexts(svc.PutContextsRequest(contexts=contexts)).context_ids
        stub.PutEvents(svc.PutEventsRequest(events=[mlmd.Event(artifact_id=a, execution_id=e, type=mlmd.Event.INPUT)]))
        stub.PutAttributionsAndAssociations(
            svc.PutAttributionsAndAssociationsRequest(
                attributions=[mlmd.Attribution(context_id=c, artifact_id=a)],
                associations=[mlmd.Association(context_id=c, execution_id=e)],
            )
        )
        stub.PutParentContexts(
            svc.PutParentContextsRequest(parent_contexts=[mlmd.ParentContext(child_id=c, parent_id=parent)])
        )
        yield World(stub, a_type, e_type, c_type, a, e, c, parent)


def _new_context_pair(w: World) -> tuple[int, int]:
    contexts = [
        mlmd.Context(type_id=w.context_type, name=_unique("child")),
        mlmd.Context(type_id=w.context_type, name=_unique("parent")),
    ]
    child, parent = w.stub.PutContexts(svc.PutContextsRequest(contexts=contexts)).context_ids
    return child, parent


def _new_event(w: World) -> mlmd.Event:
    [a] = w.stub.PutArtifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=w.artifact_type)])).artifact_ids
    return mlmd.Event(artifact_id=a, execution_id=w.execution, type=mlmd.Event.OUTPUT)


def _parent_link(w: World) -> svc.PutParentContextsRequest:
    child, parent = _new_context_pair(w)
    return svc.PutParentContextsRequest(parent_contexts=[mlmd.ParentContext(child_id=child, parent_id=parent)])


PAGE = mlmd.ListOperationOptions(max_result_size=10)

# A minimal valid request per RPC; each may create what it needs through the stub first.
REQUESTS: dict[str, Callable[[World], Message]] = {
    "PutArtifactType": lambda w: svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name=_unique("AT"))),
    "PutExecutionType": lambda w: svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name=_unique("ET"))),
    "PutContextType": lambda w: svc.PutContextTypeRequest(context_type=mlmd.ContextType(name=_unique("CT"))),
    "PutTypes": lambda w: svc.PutTypesRequest(artifact_types=[mlmd.ArtifactType(name=_unique("PT"))]),
    "PutArtifacts": lambda w: svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=w.artifact_type)]),
    "PutExecutions": lambda w: svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=w.execution_type)]),
    "PutEvents": lambda w: svc.PutEventsRequest(events=[_new_event(w)]),
    "PutExecution": lambda w: svc.PutExecutionRequest(execution=mlmd.Execution(type_id=w.execution_type)),
    "PutLineageSubgraph": lambda w: svc.PutLineageSubgraphRequest(
        executions=[mlmd.Execution(type_id=w.execution_type)],
        artifacts=[mlmd.Artifact(type_id=w.artifact_type)],
        event_edges=[
            svc.PutLineageSubgraphRequest.EventEdge(
                execution_index=0, artifact_index=0, event=mlmd.Event(type=mlmd.Event.OUTPUT)
            )
        ],
    ),
    "PutContexts": lambda w: svc.PutContextsRequest(contexts=[mlmd.Context(type_id=w.context_type, name=_unique("c"))]),
    "PutAttributionsAndAssociations": lambda w: svc.PutAttributionsAndAssociationsRequest(
        attributions=[mlmd.Attribution(context_id=w.context, artifact_id=w.artifact)]
    ),
    "PutParentContexts": _parent_link,
    "GetArtifactType": lambda w: svc.GetArtifactTypeRequest(type_name="Data"),
    "GetArtifactTypesByID": lambda w: svc.GetArtifactTypesByIDRequest(type_ids=[w.artifact_type]),
    "GetArtifactTypes": lambda w: svc.GetArtifactTypesRequest(),
    "GetExecutionType": lambda w: svc.GetExecutionTypeRequest(type_name="Run"),
    "GetExecutionTypesByID": lambda w: svc.GetExecutionTypesByIDRequest(type_ids=[w.execution_type]),
    "GetExecutionTypes": lambda w: svc.GetExecutionTypesRequest(),
    "GetContextType": lambda w: svc.GetContextTypeRequest(type_name="Pipe"),
    "GetContextTypesByID": lambda w: svc.GetContextTypesByIDRequest(type_ids=[w.context_type]),
    "GetContextTypes": lambda w: svc.GetContextTypesRequest(),
    "GetArtifacts": lambda w: svc.GetArtifactsRequest(options=PAGE),
    "GetExecutions": lambda w: svc.GetExecutionsRequest(options=PAGE),
    "GetContexts": lambda w: svc.GetContextsRequest(options=PAGE),
    "GetArtifactsByID": lambda w: svc.GetArtifactsByIDRequest(artifact_ids=[w.artifact]),
    "GetExecutionsByID": lambda w: svc.GetExecutionsByIDRequest(execution_ids=[w.execution]),
    "GetContextsByID": lambda w: svc.GetContextsByIDRequest(context_ids=[w.context]),
    "GetArtifactsByType": lambda w: svc.GetArtifactsByTypeRequest(type_name="Data", options=PAGE),
    "GetExecutionsByType": lambda w: svc.GetExecutionsByTypeRequest(type_name="Run", options=PAGE),
    "GetContextsByType": lambda w: svc.GetContextsByTypeRequest(type_name="Pipe", options=PAGE),
    "GetArtifactByTypeAndName": lambda w: svc.GetArtifactByTypeAndNameRequest(type_name="Data", artifact_name="a"),
    "GetExecutionByTypeAndName": lambda w: svc.GetExecutionByTypeAndNameRequest(type_name="Run", execution_name="e"),
    "GetContextByTypeAndName": lambda w: svc.GetContextByTypeAndNameRequest(type_name="Pipe", context_name="c"),
    "GetArtifactsByURI": lambda w: svc.GetArtifactsByURIRequest(uris=["gs://a"]),
    "GetEventsByExecutionIDs": lambda w: svc.GetEventsByExecutionIDsRequest(execution_ids=[w.execution]),
    "GetEventsByArtifactIDs": lambda w: svc.GetEventsByArtifactIDsRequest(artifact_ids=[w.artifact]),
    "GetArtifactsByExternalIds": lambda w: svc.GetArtifactsByExternalIdsRequest(external_ids=["a-x"]),
    "GetExecutionsByExternalIds": lambda w: svc.GetExecutionsByExternalIdsRequest(external_ids=["e-x"]),
    "GetContextsByExternalIds": lambda w: svc.GetContextsByExternalIdsRequest(external_ids=["c-x"]),
    "GetArtifactTypesByExternalIds": lambda w: svc.GetArtifactTypesByExternalIdsRequest(external_ids=["data-type"]),
    "GetExecutionTypesByExternalIds": lambda w: svc.GetExecutionTypesByExternalIdsRequest(external_ids=["run-type"]),
    "GetContextTypesByExternalIds": lambda w: svc.GetContextTypesByExternalIdsRequest(external_ids=["pipe-type"]),
    "GetContextsByArtifact": lambda w: svc.GetContextsByArtifactRequest(artifact_id=w.artifact),
    "GetContextsByExecution": lambda w: svc.GetContextsByExecutionRequest(execution_id=w.execution),
    "GetParentContextsByContext": lambda w: svc.GetParentContextsByContextRequest(context_id=w.context),
    "GetChildrenContextsByContext": lambda w: svc.GetChildrenContextsByContextRequest(context_id=w.parent_context),
    "GetParentContextsByContexts": lambda w: svc.GetParentContextsByContextsRequest(context_ids=[w.context]),
    "GetChildrenContextsByContexts": lambda w: svc.GetChildrenContextsByContextsRequest(context_ids=[w.parent_context]),
    "GetArtifactsByContext": lambda w: svc.GetArtifactsByContextRequest(context_id=w.context, options=PAGE),
    "GetExecutionsByContext": lambda w: svc.GetExecutionsByContextRequest(context_id=w.context, options=PAGE),
    "GetLineageGraph": lambda w: svc.GetLineageGraphRequest(
        options=mlmd.LineageGraphQueryOptions(artifacts_options=PAGE)
    ),
    "GetLineageSubgraph": lambda w: svc.GetLineageSubgraphRequest(
        lineage_subgraph_query_options=mlmd.LineageSubgraphQueryOptions(
            starting_artifacts=mlmd.LineageSubgraphQueryOptions.StartingNodes(filter_query=f"id = {w.artifact}"),
            max_num_hops=2,
        )
    ),
}


def test_the_request_table_covers_exactly_the_52_methods_of_the_descriptor() -> None:
    names = [method.name for method in SERVICE.methods]
    assert len(names) == 52
    assert sorted(REQUESTS) == sorted(names)
    for method in SERVICE.methods:
        assert not method.client_streaming and not method.server_streaming


@pytest.mark.parametrize("method", [method.name for method in SERVICE.methods])
def test_every_rpc_answers_a_minimal_valid_request(server: LiveServer, world: World, method: str) -> None:
    descriptor = SERVICE.methods_by_name[method]
    request = REQUESTS[method](world)
    assert request.DESCRIPTOR.full_name == descriptor.input_type.full_name
    response_class: type[Message] = getattr(svc, descriptor.output_type.name)
    with server.channel() as channel:
        call = channel.unary_unary(
            f"/{SERVICE.full_name}/{method}",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        try:
            response = call(request, timeout=30)
        except grpc.RpcError as error:
            assert error.code() is not grpc.StatusCode.UNIMPLEMENTED, f"{method} is UNIMPLEMENTED"
            pytest.fail(f"{method}: {error.code().name} {error.details()}")
    assert isinstance(response, response_class)
    assert response.ListFields() or method.startswith(("PutAttributions", "PutParentContexts", "PutEvents")), (
        f"{method} answered an empty response to a request that should find something"
    )
