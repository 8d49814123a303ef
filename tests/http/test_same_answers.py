"""Every RPC over JSON answers what it answers over gRPC, on every backend.

Two fresh servers: A is written through gRPC, B through JSON, with the same requests
(two TFX-shaped runs as the official client writes them, then a write of every other
MLMD kind: types with external ids, nodes with every property kind, events,
attributions, parent contexts, a lineage subgraph, a masked update). Each write answers
the same over both transports. Then every read of MLMD and LineageDB's own services is
asked of A over gRPC and over JSON (the JSON parsed back into the message must equal
the gRPC answer, and validate against the OpenAPI document's schema), and of B over gRPC
(the stores must hold the same nodes: equal up to the times they were written).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from google.protobuf import any_pb2, field_mask_pb2, struct_pb2
from google.protobuf.message import Message

from lineagedb.proto.lineagedb.v1 import audit_pb2, deletion_pb2, lineage_pb2
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from tests.answers import tfx_pipeline
from tests.audit.conftest import KEY
from tests.backends import scratch_database
from tests.http.conftest import (
    MLMD,
    SERVICES,
    GrpcCaller,
    HttpServer,
    JsonCaller,
    PipelineClient,
    method_descriptor,
    start_http,
)

LINEAGE = "lineagedb.v1.LineageService"
AUDIT = "lineagedb.v1.AuditService"
DELETION = "lineagedb.v1.DeletionService"

Request = tuple[str, Message]


def _value(**kind: Any) -> mlmd.Value:
    return mlmd.Value(**kind)


def _struct() -> mlmd.Value:
    value = mlmd.Value()
    value.struct_value.update({"labels": ["a", "b"], "threshold": 0.25, "nested": {"ok": True, "none": None}})
    return value


def _proto_value() -> mlmd.Value:
    packed = any_pb2.Any()
    packed.Pack(struct_pb2.Value(string_value="packed"))
    return mlmd.Value(proto_value=packed)


def _writes() -> list[Callable[[dict[str, Any]], Request]]:
    """Every MLMD write the pipeline does not make, each built from the answers before it."""

    def put_types(_: dict[str, Any]) -> Request:
        return f"{MLMD}/PutTypes", svc.PutTypesRequest(
            artifact_types=[
                mlmd.ArtifactType(
                    name="http.Dataset",
                    external_id="ext-type-dataset",
                    properties={"day": mlmd.INT, "split": mlmd.STRING, "weight": mlmd.DOUBLE, "meta": mlmd.STRUCT},
                    base_type=mlmd.ArtifactType.DATASET,
                )
            ],
            execution_types=[mlmd.ExecutionType(name="http.Step", external_id="ext-type-step")],
            context_types=[mlmd.ContextType(name="http.Group", external_id="ext-type-group")],
        )

    def put_artifact_type(_: dict[str, Any]) -> Request:
        artifact_type = mlmd.ArtifactType(name="http.Model", properties={"accuracy": mlmd.DOUBLE})
        return f"{MLMD}/PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=artifact_type)

    def put_execution_type(_: dict[str, Any]) -> Request:
        return f"{MLMD}/PutExecutionType", svc.PutExecutionTypeRequest(
            execution_type=mlmd.ExecutionType(name="http.Train", properties={"steps": mlmd.INT})
        )

    def put_context_type(_: dict[str, Any]) -> Request:
        return f"{MLMD}/PutContextType", svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="http.Run"))

    def put_artifacts(seen: dict[str, Any]) -> Request:
        dataset = seen["PutTypes"].artifact_type_ids[0]
        first = mlmd.Artifact(
            type_id=dataset,
            name="dataset-1",
            uri="s3://bucket/data/1",
            external_id="ext-artifact-1",
            state=mlmd.Artifact.LIVE,
            properties={"day": _value(int_value=-9007199254740993), "split": _value(string_value="tr\u00e4in \u2603")},
        )
        first.properties["weight"].double_value = 0.5
        first.properties["meta"].CopyFrom(_struct())
        first.custom_properties["blessed"].bool_value = True
        first.custom_properties["packed"].CopyFrom(_proto_value())
        second = mlmd.Artifact(type_id=dataset, name="dataset-2", uri="s3://bucket/data/2", state=mlmd.Artifact.PENDING)
        second.custom_properties["tiny"].double_value = 5e-324
        return f"{MLMD}/PutArtifacts", svc.PutArtifactsRequest(artifacts=[first, second])

    def update_artifact(seen: dict[str, Any]) -> Request:
        artifact = mlmd.Artifact(
            id=seen["PutArtifacts"].artifact_ids[0], properties={"split": _value(string_value="eval")}
        )
        artifact.type_id = seen["PutTypes"].artifact_type_ids[0]
        mask = field_mask_pb2.FieldMask(paths=["properties.split"])
        return f"{MLMD}/PutArtifacts", svc.PutArtifactsRequest(artifacts=[artifact], update_mask=mask)

    def put_executions(seen: dict[str, Any]) -> Request:
        step = seen["PutTypes"].execution_type_ids[0]
        execution = mlmd.Execution(
            type_id=step, name="step-1", external_id="ext-execution-1", last_known_state=mlmd.Execution.RUNNING
        )
        return f"{MLMD}/PutExecutions", svc.PutExecutionsRequest(executions=[execution])

    def put_contexts(seen: dict[str, Any]) -> Request:
        group = seen["PutTypes"].context_type_ids[0]
        return f"{MLMD}/PutContexts", svc.PutContextsRequest(
            contexts=[
                mlmd.Context(type_id=group, name="parent", external_id="ext-context-parent"),
                mlmd.Context(type_id=group, name="child"),
            ]
        )

    def put_events(seen: dict[str, Any]) -> Request:
        event = mlmd.Event(
            artifact_id=seen["PutArtifacts"].artifact_ids[0],
            execution_id=seen["PutExecutions"].execution_ids[0],
            type=mlmd.Event.INPUT,
        )
        event.path.steps.add().key = "data"
        event.path.steps.add().index = 3
        return f"{MLMD}/PutEvents", svc.PutEventsRequest(events=[event])

    def put_attributions(seen: dict[str, Any]) -> Request:
        parent, child = seen["PutContexts"].context_ids
        return f"{MLMD}/PutAttributionsAndAssociations", svc.PutAttributionsAndAssociationsRequest(
            attributions=[mlmd.Attribution(artifact_id=seen["PutArtifacts"].artifact_ids[0], context_id=child)],
            associations=[mlmd.Association(execution_id=seen["PutExecutions"].execution_ids[0], context_id=parent)],
        )

    def put_parent_contexts(seen: dict[str, Any]) -> Request:
        parent, child = seen["PutContexts"].context_ids
        return f"{MLMD}/PutParentContexts", svc.PutParentContextsRequest(
            parent_contexts=[mlmd.ParentContext(child_id=child, parent_id=parent)]
        )

    def put_lineage_subgraph(seen: dict[str, Any]) -> Request:
        model_type = seen["PutArtifactType"].type_id
        train_type = seen["PutExecutionType"].type_id
        run_type = seen["PutContextType"].type_id
        model = mlmd.Artifact(
            type_id=model_type, uri="s3://bucket/model", properties={"accuracy": _value(double_value=0.9)}
        )
        train = mlmd.Execution(type_id=train_type, name="train", last_known_state=mlmd.Execution.COMPLETE)
        train.properties["steps"].int_value = 100
        request = svc.PutLineageSubgraphRequest(
            executions=[train],
            artifacts=[mlmd.Artifact(type_id=seen["PutTypes"].artifact_type_ids[0], uri="s3://bucket/data/3"), model],
            contexts=[mlmd.Context(type_id=run_type, name="http-run")],
            event_edges=[
                svc.PutLineageSubgraphRequest.EventEdge(
                    execution_index=0, artifact_index=0, event=mlmd.Event(type=mlmd.Event.INPUT)
                ),
                svc.PutLineageSubgraphRequest.EventEdge(
                    execution_index=0, artifact_index=1, event=mlmd.Event(type=mlmd.Event.OUTPUT)
                ),
            ],
        )
        request.options.reuse_context_if_already_exist = True
        return f"{MLMD}/PutLineageSubgraph", request

    def put_execution(seen: dict[str, Any]) -> Request:
        execution = mlmd.Execution(type_id=seen["PutExecutionType"].type_id, last_known_state=mlmd.Execution.FAILED)
        request = svc.PutExecutionRequest(execution=execution)
        pair = request.artifact_event_pairs.add(artifact=mlmd.Artifact(id=seen["PutLineageSubgraph"].artifact_ids[1]))
        pair.event.type = mlmd.Event.INPUT
        return f"{MLMD}/PutExecution", request

    return [
        put_types,
        put_artifact_type,
        put_execution_type,
        put_context_type,
        put_artifacts,
        update_artifact,
        put_executions,
        put_contexts,
        put_events,
        put_attributions,
        put_parent_contexts,
        put_lineage_subgraph,
        put_execution,
    ]


def _reads(ids: dict[str, dict[str, int]], seen: dict[str, Any]) -> list[Request]:
    run1, run2 = ids["run-1"], ids["run-2"]
    artifact_ids = [run1["examples"], run1["model"], seen["PutArtifacts"].artifact_ids[0]]
    execution_ids = [run1["Trainer"], run2["Trainer"], seen["PutExecutions"].execution_ids[0]]
    parent, child = seen["PutContexts"].context_ids
    context_ids = [run1["run"], run1["pipeline"], parent]
    type_ids = list(seen["PutTypes"].artifact_type_ids)
    page = mlmd.ListOperationOptions(
        max_result_size=4,
        order_by_field=mlmd.ListOperationOptions.OrderByField(
            field=mlmd.ListOperationOptions.OrderByField.ID, is_asc=False
        ),
    )
    filtered = mlmd.ListOperationOptions(filter_query="type = 'Examples' AND uri LIKE 'gs://pipelines/%'")
    subgraph = mlmd.LineageSubgraphQueryOptions(
        starting_artifacts=mlmd.LineageSubgraphQueryOptions.StartingNodes(filter_query=f"id = {run1['model']}"),
        max_num_hops=4,
        direction=mlmd.LineageSubgraphQueryOptions.BIDIRECTIONAL,
    )
    graph = mlmd.LineageGraphQueryOptions(
        artifacts_options=mlmd.ListOperationOptions(filter_query="uri LIKE '%run-1%'")
    )
    graph.stop_conditions.max_num_hops = 2
    return [
        (f"{MLMD}/GetArtifactType", svc.GetArtifactTypeRequest(type_name="http.Dataset")),
        (f"{MLMD}/GetArtifactTypesByID", svc.GetArtifactTypesByIDRequest(type_ids=type_ids)),
        (f"{MLMD}/GetArtifactTypes", svc.GetArtifactTypesRequest()),
        (f"{MLMD}/GetExecutionType", svc.GetExecutionTypeRequest(type_name="Trainer")),
        (
            f"{MLMD}/GetExecutionTypesByID",
            svc.GetExecutionTypesByIDRequest(type_ids=list(seen["PutTypes"].execution_type_ids)),
        ),
        (f"{MLMD}/GetExecutionTypes", svc.GetExecutionTypesRequest()),
        (f"{MLMD}/GetContextType", svc.GetContextTypeRequest(type_name="pipeline_run")),
        (
            f"{MLMD}/GetContextTypesByID",
            svc.GetContextTypesByIDRequest(type_ids=list(seen["PutTypes"].context_type_ids)),
        ),
        (f"{MLMD}/GetContextTypes", svc.GetContextTypesRequest()),
        (f"{MLMD}/GetArtifacts", svc.GetArtifactsRequest()),
        (f"{MLMD}/GetArtifacts", svc.GetArtifactsRequest(options=page)),
        (f"{MLMD}/GetArtifacts", svc.GetArtifactsRequest(options=filtered)),
        (f"{MLMD}/GetExecutions", svc.GetExecutionsRequest(options=page)),
        (f"{MLMD}/GetContexts", svc.GetContextsRequest()),
        (f"{MLMD}/GetArtifactsByID", svc.GetArtifactsByIDRequest(artifact_ids=artifact_ids)),
        (f"{MLMD}/GetExecutionsByID", svc.GetExecutionsByIDRequest(execution_ids=execution_ids)),
        (f"{MLMD}/GetContextsByID", svc.GetContextsByIDRequest(context_ids=context_ids)),
        (f"{MLMD}/GetArtifactsByType", svc.GetArtifactsByTypeRequest(type_name="Examples")),
        (f"{MLMD}/GetExecutionsByType", svc.GetExecutionsByTypeRequest(type_name="Trainer")),
        (f"{MLMD}/GetContextsByType", svc.GetContextsByTypeRequest(type_name="node")),
        (
            f"{MLMD}/GetArtifactByTypeAndName",
            svc.GetArtifactByTypeAndNameRequest(type_name="http.Dataset", artifact_name="dataset-1"),
        ),
        (
            f"{MLMD}/GetExecutionByTypeAndName",
            svc.GetExecutionByTypeAndNameRequest(type_name="Trainer", execution_name="run-1.Trainer"),
        ),
        (
            f"{MLMD}/GetContextByTypeAndName",
            svc.GetContextByTypeAndNameRequest(type_name="pipeline_run", context_name="run-2"),
        ),
        (f"{MLMD}/GetArtifactsByURI", svc.GetArtifactsByURIRequest(uris=["s3://bucket/data/1", "s3://bucket/model"])),
        (f"{MLMD}/GetEventsByExecutionIDs", svc.GetEventsByExecutionIDsRequest(execution_ids=execution_ids)),
        (f"{MLMD}/GetEventsByArtifactIDs", svc.GetEventsByArtifactIDsRequest(artifact_ids=artifact_ids)),
        (f"{MLMD}/GetArtifactsByExternalIds", svc.GetArtifactsByExternalIdsRequest(external_ids=["ext-artifact-1"])),
        (
            f"{MLMD}/GetExecutionsByExternalIds",
            svc.GetExecutionsByExternalIdsRequest(external_ids=["ext-execution-1"]),
        ),
        (f"{MLMD}/GetContextsByExternalIds", svc.GetContextsByExternalIdsRequest(external_ids=["ext-context-parent"])),
        (
            f"{MLMD}/GetArtifactTypesByExternalIds",
            svc.GetArtifactTypesByExternalIdsRequest(external_ids=["ext-type-dataset"]),
        ),
        (
            f"{MLMD}/GetExecutionTypesByExternalIds",
            svc.GetExecutionTypesByExternalIdsRequest(external_ids=["ext-type-step"]),
        ),
        (
            f"{MLMD}/GetContextTypesByExternalIds",
            svc.GetContextTypesByExternalIdsRequest(external_ids=["ext-type-group"]),
        ),
        (f"{MLMD}/GetContextsByArtifact", svc.GetContextsByArtifactRequest(artifact_id=run1["model"])),
        (f"{MLMD}/GetContextsByExecution", svc.GetContextsByExecutionRequest(execution_id=run1["Trainer"])),
        (f"{MLMD}/GetParentContextsByContext", svc.GetParentContextsByContextRequest(context_id=child)),
        (f"{MLMD}/GetChildrenContextsByContext", svc.GetChildrenContextsByContextRequest(context_id=parent)),
        (f"{MLMD}/GetParentContextsByContexts", svc.GetParentContextsByContextsRequest(context_ids=[child, parent])),
        (
            f"{MLMD}/GetChildrenContextsByContexts",
            svc.GetChildrenContextsByContextsRequest(context_ids=[child, parent]),
        ),
        (f"{MLMD}/GetArtifactsByContext", svc.GetArtifactsByContextRequest(context_id=run1["run"])),
        (f"{MLMD}/GetExecutionsByContext", svc.GetExecutionsByContextRequest(context_id=run1["pipeline"])),
        (f"{MLMD}/GetLineageGraph", svc.GetLineageGraphRequest(options=graph)),
        (f"{MLMD}/GetLineageSubgraph", svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=subgraph)),
        (
            f"{LINEAGE}/Provenance",
            lineage_pb2.ClosureRequest(node=lineage_pb2.NodeRef(artifact_id=run1["pushed_model"])),
        ),
        (f"{LINEAGE}/Impact", lineage_pb2.ImpactRequest(node=lineage_pb2.NodeRef(artifact_id=run1["examples"]))),
        (
            f"{LINEAGE}/Diff",
            lineage_pb2.DiffRequest(
                a=lineage_pb2.NodeRef(context_id=run1["run"]),
                b=lineage_pb2.NodeRef(context_id=run2["run"]),
                upstream=True,
            ),
        ),
        (f"{LINEAGE}/Manifest", lineage_pb2.ManifestRequest(artifact_id=run1["model"])),
        (
            f"{LINEAGE}/Completeness",
            lineage_pb2.CompletenessRequest(node=lineage_pb2.NodeRef(artifact_id=run1["model"])),
        ),
        (f"{LINEAGE}/Report", lineage_pb2.ReportRequest(artifact_id=run1["model"], format="json")),
        (f"{AUDIT}/QueryAudit", audit_pb2.QueryAuditRequest(method="PutArtifacts", max_results=3)),
        (
            f"{DELETION}/Delete",
            deletion_pb2.DeleteRequest(
                artifact_ids=[run1["examples"]], mode=deletion_pb2.DeleteRequest.CASCADE_DOWNSTREAM
            ),
        ),
    ]


def _timeless(message: Message) -> Message:
    """A copy without the times nodes were written at (the two stores were written at different times)."""
    copy = type(message)()
    copy.CopyFrom(message)

    def strip(node: Message) -> None:
        for field, value in list(node.ListFields()):
            if field.name.endswith("_since_epoch") or field.name in ("time_ms",):
                node.ClearField(field.name)
            elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
                for item in value if field.is_repeated else [value]:
                    strip(item)
            elif field.message_type is not None:
                for item in value.values():
                    if isinstance(item, Message):
                        strip(item)

    strip(copy)
    return copy


def _stable(message: Message) -> Message:
    """The message, less the one field that changes between two asks of the same question (a report's time)."""
    if not isinstance(message, lineage_pb2.ReportResponse):
        return message
    document = json.loads(message.content)
    assert document.pop("generated_at_ms") > 0
    return lineage_pb2.ReportResponse(content_type=message.content_type, content=json.dumps(document).encode())


def _validator(document: dict[str, Any], message: Message) -> jsonschema.protocols.Validator:
    name = message.DESCRIPTOR.full_name
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.timeout(600)
def test_every_rpc_answers_the_same_over_json_as_over_grpc(backend: str, tmp_path: Path) -> None:
    env = {"LINEAGEDB_AUDIT_KEY": KEY.decode()}
    servers: list[HttpServer] = []
    with scratch_database(backend, str(tmp_path)) as url_a, scratch_database(backend, str(tmp_path)) as url_b:
        try:
            servers = [start_http(url_a, tmp_path, env=env), start_http(url_b, tmp_path, env=env)]
            a, b = servers
            with a.server.channel() as channel_a, b.server.channel() as channel_b, httpx.Client(timeout=60) as http:
                _compare(
                    GrpcCaller(channel_a),
                    JsonCaller(http, a.base),
                    GrpcCaller(channel_b),
                    JsonCaller(http, b.base, proto_names=True),
                    http,
                    a,
                )
        finally:
            for server in servers:
                assert server.stop() == 0


def _compare(
    grpc_a: GrpcCaller, json_a: JsonCaller, grpc_b: GrpcCaller, json_b: JsonCaller, http: httpx.Client, a: HttpServer
) -> None:
    called: set[str] = set()

    class Recording(PipelineClient):
        def _call(self, method: str, request: Message) -> Any:
            called.add(f"{MLMD}/{method}")
            return super()._call(method, request)

    ids_a = tfx_pipeline.write_two_runs(mlmd, Recording(grpc_a))
    ids_b = tfx_pipeline.write_two_runs(mlmd, Recording(json_b))
    assert ids_a == ids_b

    seen: dict[str, Any] = {}
    for build in _writes():
        path, request = build(seen)
        over_grpc = grpc_a.call(path, request)
        over_json = json_b.call(path, request)
        assert over_json == over_grpc, path
        seen[path.rsplit("/", 1)[1]] = over_grpc
        called.add(path)

    document = http.get(f"{a.base}/api/v1/openapi.json").json()
    for path, request in _reads(ids_a, seen):
        over_grpc = grpc_a.call(path, request)
        over_json = json_a.call(path, request)
        assert _stable(over_json) == _stable(over_grpc), path
        # The JSON as sent validates against the OpenAPI document's schema of the response.
        errors = list(_validator(document, over_grpc).iter_errors(json.loads(json_a.last_text)))
        assert not errors, (path, [error.message for error in errors[:3]])
        if path not in (f"{AUDIT}/QueryAudit", f"{LINEAGE}/Report"):  # from the audit logs: other times and peers
            assert _timeless(_stable(grpc_b.call(path, request))) == _timeless(_stable(over_grpc)), path
        called.add(path)

    every = {f"{service.full_name}/{method.name}" for service in SERVICES for method in service.methods}
    assert called == every, sorted(every - called)
    # Some answers checked above are not empty (a comparison of two empty answers proves little).
    sample = json.loads(json_a.post(f"{MLMD}/GetArtifactsByExternalIds", {"external_ids": ["ext-artifact-1"]}).text)
    artifact = sample["artifacts"][0]
    assert artifact["properties"]["day"] == {"int_value": "-9007199254740993"}  # int64 as a string, exactly
    assert artifact["properties"]["split"] == {"string_value": "eval"}  # the masked update
    assert artifact["properties"]["meta"]["struct_value"]["nested"] == {"ok": True, "none": None}
    assert artifact["custom_properties"]["packed"]["proto_value"] == {
        "@type": "type.googleapis.com/google.protobuf.Value",
        "value": "packed",
    }
    assert artifact["state"] == "LIVE" and artifact["type"] == "http.Dataset"
    assert method_descriptor(f"{MLMD}/GetArtifacts").output_type.full_name == "ml_metadata.GetArtifactsResponse"
