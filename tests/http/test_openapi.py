"""The OpenAPI document: valid OpenAPI 3.1, a path for every method the server serves, and schemas
that say what the JSON mapping writes (checked on a service made up here, with every kind of field)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    field_mask_pb2,
    json_format,
    message_factory,
    struct_pb2,
    timestamp_pb2,
)
from openapi_spec_validator import validate

from lineagedb.ops.http.json_api import rpc_methods
from lineagedb.ops.http.openapi import ERROR_SCHEMA, document
from lineagedb.server import SERVED_SERVICES
from tests.auth.conftest import reflect
from tests.http.conftest import SERVICES, HttpServer, start_http

NOT_JSON = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    directory = tmp_path_factory.mktemp("openapi")
    running = start_http(f"sqlite:///{directory}/openapi.db", directory)
    yield running
    assert running.stop() == 0


def test_the_served_document_is_valid_and_lists_every_served_method(server: HttpServer) -> None:
    answer = httpx.get(f"{server.base}/api/v1/openapi.json", timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    spec = answer.json()
    validate(spec)
    assert spec["openapi"] == "3.1.0"
    with server.server.channel() as channel:
        served = reflect(channel, [])
    expected = {
        f"/api/v1{method}" for service, methods in served.items() if service not in NOT_JSON for method in methods
    }
    # Every served service's methods (MLMD's and LineageDB's own 60, plus the MLflow services').
    assert sum(len(service.methods) for service in SERVICES) == 60
    assert len(expected) == sum(len(service.methods) for service in SERVED_SERVICES)
    assert set(spec["paths"]) == expected
    for path, item in spec["paths"].items():
        assert set(item) == {"post"}, path
        operation = item["post"]
        assert operation["responses"]["default"]["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{ERROR_SCHEMA}"
        }
    operation_ids = [item["post"]["operationId"] for item in spec["paths"].values()]
    assert len(set(operation_ids)) == len(operation_ids)
    get_artifacts = spec["paths"]["/api/v1/ml_metadata.MetadataStoreService/GetArtifacts"]["post"]
    assert get_artifacts["operationId"] == "MetadataStoreService_GetArtifacts"
    assert get_artifacts["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ml_metadata.GetArtifactsRequest"
    }


def test_mlmd_schemas(server: HttpServer) -> None:
    schemas = httpx.get(f"{server.base}/api/v1/openapi.json", timeout=30).json()["components"]["schemas"]
    artifact = schemas["ml_metadata.Artifact"]["properties"]
    assert artifact["id"] == {"type": "string", "format": "int64"}
    assert artifact["properties"] == {
        "type": "object",
        "additionalProperties": {"$ref": "#/components/schemas/ml_metadata.Value"},
    }
    assert artifact["state"] == {"$ref": "#/components/schemas/ml_metadata.Artifact.State"}
    assert schemas["ml_metadata.Artifact.State"]["enum"] == [
        "UNKNOWN",
        "PENDING",
        "LIVE",
        "MARKED_FOR_DELETION",
        "DELETED",
        "ABANDONED",
        "REFERENCE",
    ]
    value = schemas["ml_metadata.Value"]["properties"]
    assert value["struct_value"]["type"] == "object" and value["proto_value"]["required"] == ["@type"]
    steps = schemas["ml_metadata.Event.Path"]["properties"]["steps"]
    assert steps == {"type": "array", "items": {"$ref": "#/components/schemas/ml_metadata.Event.Path.Step"}}
    mask = schemas["ml_metadata.PutArtifactsRequest"]["properties"]["update_mask"]
    assert mask["type"] == "string"
    ref = schemas["lineagedb.v1.NodeRef"]
    assert ref["allOf"][0]["description"] == "at most one of: artifact_id, execution_id, context_id"


# ------------------------------------------------------- a made-up service, every field kind


def _made_up_service() -> Any:
    pool = descriptor_pool.DescriptorPool()
    for module in (struct_pb2, any_pb2, field_mask_pb2, timestamp_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(name="madeup/v1/madeup.proto", package="madeup.v1", syntax="proto3")
    proto.dependency.extend(
        [
            "google/protobuf/struct.proto",
            "google/protobuf/any.proto",
            "google/protobuf/field_mask.proto",
            "google/protobuf/timestamp.proto",
        ]
    )
    color = proto.enum_type.add(name="Color")
    for number, name in enumerate(("COLOR_UNSPECIFIED", "RED", "GREEN")):
        color.value.add(name=name, number=number)
    F = descriptor_pb2.FieldDescriptorProto
    node = proto.message_type.add(name="Node")
    node.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    node.field.add(name="children", number=2, type=F.TYPE_MESSAGE, type_name=".madeup.v1.Node", label=F.LABEL_REPEATED)
    entry = node.nested_type.add(name="LabelsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_UINT64, label=F.LABEL_OPTIONAL)
    node.field.add(
        name="labels", number=3, type=F.TYPE_MESSAGE, type_name=".madeup.v1.Node.LabelsEntry", label=F.LABEL_REPEATED
    )
    node.oneof_decl.add(name="shape")
    node.field.add(name="round", number=4, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL, oneof_index=0)
    node.field.add(name="sides", number=5, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL, oneof_index=0)
    node.field.add(name="color", number=6, type=F.TYPE_ENUM, type_name=".madeup.v1.Color", label=F.LABEL_OPTIONAL)
    node.field.add(name="raw", number=7, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    node.field.add(name="weight", number=8, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    node.field.add(
        name="meta", number=9, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Struct", label=F.LABEL_OPTIONAL
    )
    node.field.add(
        name="extra", number=10, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Any", label=F.LABEL_OPTIONAL
    )
    node.field.add(
        name="mask", number=11, type=F.TYPE_MESSAGE, type_name=".google.protobuf.FieldMask", label=F.LABEL_OPTIONAL
    )
    node.field.add(
        name="at", number=12, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=F.LABEL_OPTIONAL
    )
    node.field.add(
        name="note", number=13, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, proto3_optional=True, oneof_index=1
    )
    node.oneof_decl.add(name="_note")
    service = proto.service.add(name="Garden")
    service.method.add(name="Plant", input_type=".madeup.v1.Node", output_type=".madeup.v1.Node")
    service.method.add(name="Watch", input_type=".madeup.v1.Node", output_type=".madeup.v1.Node", server_streaming=True)
    pool.Add(proto)
    return pool.FindServiceByName("madeup.v1.Garden")


def test_a_new_service_gets_its_paths_and_schemas_from_its_descriptor() -> None:
    garden = _made_up_service()
    spec = document([garden], "/api/v1")
    validate(spec)
    assert list(spec["paths"]) == ["/api/v1/madeup.v1.Garden/Plant"]  # streams have no JSON form
    assert list(rpc_methods([garden])) == [("madeup.v1.Garden", "Plant")]
    schemas = spec["components"]["schemas"]
    node = schemas["madeup.v1.Node"]
    properties = node["properties"]
    assert properties["id"] == {"type": "string", "format": "int64"}
    assert properties["children"] == {"type": "array", "items": {"$ref": "#/components/schemas/madeup.v1.Node"}}
    assert properties["labels"] == {"type": "object", "additionalProperties": {"type": "string", "format": "uint64"}}
    assert properties["color"] == {"$ref": "#/components/schemas/madeup.v1.Color"}
    assert schemas["madeup.v1.Color"] == {
        "type": "string",
        "title": "Color",
        "enum": ["COLOR_UNSPECIFIED", "RED", "GREEN"],
    }
    assert properties["raw"]["format"] == "byte"
    assert properties["meta"]["type"] == "object" and properties["mask"]["type"] == "string"
    assert properties["at"] == {"type": "string", "format": "date-time"}
    assert properties["note"] == {"type": "string"}
    assert len(node["allOf"]) == 1  # the real oneof; proto3 `optional` makes no constraint

    # What the JSON mapping writes for a full message validates; two members of a oneof do not.
    Node = message_factory.GetMessageClass(garden.methods_by_name["Plant"].input_type)
    message = Node(id=-(2**63), color=2, raw=b"\x00\xff", weight=float("nan"), sides=3, note="n")
    message.labels["a"] = 2**64 - 1
    message.children.add(id=7, round=True)
    message.meta.update({"k": [1, "v", None]})
    message.mask.paths.extend(["labels", "children"])
    message.at.FromMilliseconds(1_700_000_000_123)
    written = json_format.MessageToDict(message, preserving_proto_field_name=True)
    assert written["id"] == "-9223372036854775808" and written["labels"] == {"a": "18446744073709551615"}
    assert written["weight"] == "NaN" and written["color"] == "GREEN"
    validator = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/madeup.v1.Node", **spec})
    assert not list(validator.iter_errors(written))
    assert list(validator.iter_errors({**written, "round": True}))  # sides and round
    assert list(validator.iter_errors({"id": 5}))  # int64 is written as a string
    assert list(validator.iter_errors({"color": "BLUE"}))
