"""Errors over HTTP: each gRPC status the server gives, as its HTTP status and JSON body, and the
HTTP-level refusals (bad JSON, unknown fields, wrong method, media type, size), never a 500."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import any_pb2, wrappers_pb2

from lineagedb.ops.http.json_api import HTTP_STATUS
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.http.conftest import JSON, MLMD, HttpServer, start_http

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    directory = tmp_path_factory.mktemp("http-errors")
    running = start_http(
        f"sqlite:///{directory}/errors.db",
        directory,
        "--max-receive-message-bytes",
        str(LIMIT),
        "--max-send-message-bytes",
        str(LIMIT),
    )
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def client(server: HttpServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.base}/api/v1", timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def dataset_type(client: httpx.Client) -> int:
    answer = client.post(
        f"{MLMD}/PutArtifactType",
        json={"artifact_type": {"name": "errors.Dataset", "properties": {"day": "INT"}}},
    )
    assert answer.status_code == 200, answer.text
    return int(answer.json()["type_id"])


def post(client: httpx.Client, path: str, body: Any, headers: dict[str, Any] | None = None) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(path, content=content, headers={**JSON, **(headers or {})})


def assert_error(answer: httpx.Response, http_status: int, code: grpc.StatusCode, *words: str) -> dict[str, Any]:
    assert answer.status_code == http_status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    assert set(body) == {"code", "status", "message"}
    assert (body["code"], body["status"]) == (code.value[0], code.name), body
    for word in words:
        assert word in body["message"], body
    return body


def test_the_status_table_is_grpc_gateways() -> None:
    expected = {
        "OK": 200,
        "CANCELLED": 499,
        "UNKNOWN": 500,
        "INVALID_ARGUMENT": 400,
        "DEADLINE_EXCEEDED": 504,
        "NOT_FOUND": 404,
        "ALREADY_EXISTS": 409,
        "PERMISSION_DENIED": 403,
        "UNAUTHENTICATED": 401,
        "RESOURCE_EXHAUSTED": 429,
        "FAILED_PRECONDITION": 400,
        "ABORTED": 409,
        "OUT_OF_RANGE": 400,
        "UNIMPLEMENTED": 501,
        "INTERNAL": 500,
        "UNAVAILABLE": 503,
        "DATA_LOSS": 500,
    }
    assert {code.name: status for code, status in HTTP_STATUS.items()} == expected
    assert set(HTTP_STATUS) == set(grpc.StatusCode)


# --------------------------------------------------------------- statuses from the server


def test_invalid_argument_is_400(client: httpx.Client) -> None:
    answer = post(client, f"{MLMD}/GetArtifacts", {"options": {"filter_query": "uri = = 'x'"}})
    assert_error(answer, 400, grpc.StatusCode.INVALID_ARGUMENT, "filter_query")


def test_not_found_is_404(client: httpx.Client) -> None:
    answer = post(client, f"{MLMD}/GetArtifactType", {"type_name": "no.such.type"})
    assert_error(answer, 404, grpc.StatusCode.NOT_FOUND, "no.such.type")


def test_already_exists_is_409(client: httpx.Client, dataset_type: int) -> None:
    artifact = {"type_id": str(dataset_type), "name": "twice", "uri": "file:///twice"}
    first = post(client, f"{MLMD}/PutArtifacts", {"artifacts": [artifact]})
    assert first.status_code == 200, first.text
    again = post(client, f"{MLMD}/PutArtifacts", {"artifacts": [artifact]})
    assert_error(again, 409, grpc.StatusCode.ALREADY_EXISTS, "already exists")


def test_failed_precondition_is_400(client: httpx.Client) -> None:
    # This server has no audit key: asking its audit log is a precondition failure.
    answer = post(client, "lineagedb.v1.AuditService/QueryAudit", {})
    assert_error(answer, 400, grpc.StatusCode.FAILED_PRECONDITION, "audit log is off")


def test_unimplemented_is_501(client: httpx.Client) -> None:
    body = {"artifact_type": {"name": "errors.Other"}, "all_fields_match": False}
    answer = post(client, f"{MLMD}/PutArtifactType", body)
    assert_error(answer, 501, grpc.StatusCode.UNIMPLEMENTED, "all_fields_match")


def test_an_answer_over_the_send_limit_is_429(client: httpx.Client, dataset_type: int) -> None:
    uri = "file:///" + "u" * 1000
    artifacts = [{"type_id": str(dataset_type), "uri": f"{uri}/{i}"} for i in range(40)]
    for start in range(0, 120, 40):
        chunk = [{**artifact, "name": f"big-{start}-{i}"} for i, artifact in enumerate(artifacts)]
        assert post(client, f"{MLMD}/PutArtifacts", {"artifacts": chunk}).status_code == 200
    answer = post(client, f"{MLMD}/GetArtifactsByType", {"type_name": "errors.Dataset"})
    assert_error(answer, 429, grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_a_passed_deadline_is_504(client: httpx.Client) -> None:
    answer = post(client, f"{MLMD}/GetArtifacts", {}, headers={"Grpc-Timeout": "1n"})
    assert_error(answer, 504, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert post(client, f"{MLMD}/GetArtifactTypes", {}, headers={"Grpc-Timeout": "30S"}).status_code == 200


def test_an_unavailable_database_is_503(tmp_path: Path) -> None:
    # Nothing listens on port 1: the server starts NOT_SERVING and MLMD calls are UNAVAILABLE.
    server = start_http("postgresql+psycopg2://postgres@127.0.0.1:1/nothing", tmp_path)
    try:
        answer = httpx.post(server.url(f"{MLMD}/GetArtifactTypes"), content="{}", headers=JSON, timeout=30)
        assert_error(answer, 503, grpc.StatusCode.UNAVAILABLE, "database")
    finally:
        assert server.stop() == 0


# ------------------------------------------------------------------ refused by HTTP itself


def test_a_body_over_the_receive_limit_is_413_before_it_is_read(client: httpx.Client) -> None:
    body = json.dumps({"artifact_ids": ["1"] * (LIMIT // 4)})
    assert len(body) > LIMIT
    body_error = assert_error(
        post(client, f"{MLMD}/GetArtifactsByID", body), 413, grpc.StatusCode.RESOURCE_EXHAUSTED, str(LIMIT)
    )
    assert "--max-receive-message-bytes" in body_error["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096].encode()

    streamed = client.post(f"{MLMD}/GetArtifactsByID", content=chunks(), headers=JSON)
    assert_error(streamed, 413, grpc.StatusCode.RESOURCE_EXHAUSTED)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("{", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"text"', "must be a JSON object"),
        ("null", "must be a JSON object"),
        ('{"no_such_field": 1}', "no_such_field"),
        ('{"artifact_ids": "x"}', "does not fit the message"),
        ('{"artifact_ids": [1.5]}', "does not fit the message"),
        ('{"artifact_ids": ["99999999999999999999999"]}', "does not fit the message"),
        ("[" * 10_000 + "]" * 10_000, "nests too deeply"),
        (b'{"x": "\xff"}', "not UTF-8"),
    ],
)
def test_malformed_bodies_are_400(client: httpx.Client, body: str | bytes, words: str) -> None:
    assert_error(post(client, f"{MLMD}/GetArtifactsByID", body), 400, grpc.StatusCode.INVALID_ARGUMENT, words)


def test_deeply_nested_struct_values_are_400(client: httpx.Client, dataset_type: int) -> None:
    nested: Any = 1
    for _ in range(200):
        nested = {"a": nested}
    artifact = {"type_id": str(dataset_type), "custom_properties": {"deep": {"struct_value": nested}}}
    answer = post(client, f"{MLMD}/PutArtifacts", {"artifacts": [artifact]})
    assert_error(answer, 400, grpc.StatusCode.INVALID_ARGUMENT)


def test_an_empty_body_is_the_default_request(client: httpx.Client) -> None:
    answer = client.post(f"{MLMD}/GetArtifactTypes", content=b"", headers=JSON)
    assert answer.status_code == 200
    assert "artifact_types" in answer.json()


def test_both_field_spellings_are_accepted(client: httpx.Client, dataset_type: int) -> None:
    # An artifact of its own: the module's other tests may run in another worker, or not at all.
    stored = post(client, f"{MLMD}/PutArtifacts", {"artifacts": [{"type_id": str(dataset_type), "uri": "s3://b/x"}]})
    assert stored.status_code == 200, stored.text
    camel = post(client, f"{MLMD}/GetArtifactsByType", {"typeName": "errors.Dataset", "options": {"maxResultSize": 1}})
    proto = post(
        client, f"{MLMD}/GetArtifactsByType", {"type_name": "errors.Dataset", "options": {"max_result_size": 1}}
    )
    assert camel.status_code == proto.status_code == 200, (camel.text, proto.text)
    assert camel.json() == proto.json()
    (artifact,) = proto.json()["artifacts"]
    assert artifact["type_id"] == str(dataset_type) and isinstance(artifact["id"], str)  # int64 as strings
    assert "typeId" not in artifact  # answers use the .proto names


def test_unknown_services_methods_and_paths_are_404(client: httpx.Client) -> None:
    for path in (f"{MLMD}/NoSuchMethod", "no.Service/GetArtifacts", "grpc.health.v1.Health/Check", "a/b/c", ""):
        assert_error(post(client, path, {}), 404, grpc.StatusCode.NOT_FOUND)


def test_other_http_methods_are_405_with_allow(client: httpx.Client) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        answer = client.request(method, f"{MLMD}/GetArtifacts")
        assert_error(answer, 405, grpc.StatusCode.UNIMPLEMENTED, "POST")
        assert answer.headers["allow"] == "POST"
    answer = client.post("openapi.json", content="{}", headers=JSON)
    assert_error(answer, 405, grpc.StatusCode.UNIMPLEMENTED)
    assert answer.headers["allow"] == "GET"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"])
def test_bodies_must_say_they_are_json(client: httpx.Client, content_type: str | None) -> None:
    # A browser sends these cross-origin without a CORS preflight: refused, so a web page cannot
    # make its visitor's browser write into a server running without authentication.
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post(f"{MLMD}/GetArtifactTypes", content=b"{}", headers=headers)
    assert_error(answer, 415, grpc.StatusCode.INVALID_ARGUMENT, "application/json")
    charset = client.post(
        f"{MLMD}/GetArtifactTypes", content=b"{}", headers={"Content-Type": "Application/JSON; charset=utf-8"}
    )
    assert charset.status_code == 200


@pytest.mark.parametrize("value", ["10", "1X", "123456789S", "-1S", "S"])
def test_a_malformed_timeout_is_400(client: httpx.Client, value: str) -> None:
    answer = post(client, f"{MLMD}/GetArtifactTypes", {}, headers={"Grpc-Timeout": value})
    assert_error(answer, 400, grpc.StatusCode.INVALID_ARGUMENT, "Grpc-Timeout")


def test_headers_that_cannot_be_metadata_are_400(client: httpx.Client) -> None:
    answer = post(client, f"{MLMD}/GetArtifactTypes", {}, headers={"Authorization": "Bearer caf\u00e9".encode()})
    assert_error(answer, 400, grpc.StatusCode.INVALID_ARGUMENT, "authorization")
    answer = post(client, f"{MLMD}/GetArtifactTypes", {}, headers={"X-LineageDB-Namespace": "Not A Namespace"})
    assert_error(answer, 400, grpc.StatusCode.INVALID_ARGUMENT, "namespace")


def test_a_proto_value_of_a_type_the_server_does_not_know(server: HttpServer, client: httpx.Client) -> None:
    """Written over gRPC (as bytes), read over JSON: the Any is shown with its bytes, not an
    INTERNAL error; a well-known type in the same answer keeps the mapping's own form; the
    unknown type cannot be written over JSON (INVALID_ARGUMENT naming it)."""
    channel = grpc.insecure_channel(server.server.address)
    stub = svc_grpc.MetadataStoreServiceStub(channel)
    type_id = stub.PutArtifactType(
        svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="errors.Opaque"))
    ).type_id
    artifact = mlmd.Artifact(type_id=type_id, uri="file:///opaque")
    artifact.custom_properties["custom"].proto_value.CopyFrom(
        any_pb2.Any(type_url="type.googleapis.com/acme.Custom", value=b"\x08\x01\x12\x02hi")
    )
    artifact.custom_properties["known"].proto_value.Pack(wrappers_pb2.StringValue(value="packed"))
    [artifact_id] = stub.PutArtifacts(svc.PutArtifactsRequest(artifacts=[artifact])).artifact_ids
    channel.close()
    answer = post(client, f"{MLMD}/GetArtifactsByID", {"artifact_ids": [str(artifact_id)]})
    assert answer.status_code == 200, answer.text
    properties = answer.json()["artifacts"][0]["custom_properties"]
    assert properties["custom"]["proto_value"] == {
        "@type": "type.googleapis.com/acme.Custom",
        "value_base64": base64.b64encode(b"\x08\x01\x12\x02hi").decode(),
    }
    assert properties["known"]["proto_value"] == {
        "@type": "type.googleapis.com/google.protobuf.StringValue",
        "value": "packed",
    }
    opaque = {"proto_value": {"@type": "type.googleapis.com/acme.Custom"}}
    body = {"artifacts": [{"type_id": str(type_id), "custom_properties": {"x": opaque}}]}
    written = post(client, f"{MLMD}/PutArtifacts", body)
    assert_error(written, 400, grpc.StatusCode.INVALID_ARGUMENT, "acme.Custom")
