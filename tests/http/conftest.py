"""JSON over HTTP tests: real `lineagedb serve --http-port 0` processes, called over HTTP and gRPC.

`start_http` starts a server and reads the HTTP port from its second stdout line
("http listening on HOST:PORT"). `GrpcCaller` and `JsonCaller` call any method of any
served service by its full name with a request message and return the response message
(JSON answers parsed back with the message's own class), or raise `CallError` with the
gRPC code (and, over HTTP, the HTTP status and the error body). `PipelineClient` gives
either caller the official client's four methods that tests/answers/tfx_pipeline.py uses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.message import Message

from lineagedb.proto.lineagedb.v1 import audit_pb2, deletion_pb2, lineage_pb2
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from tests.ops.conftest import Server, start

SERVICES = (
    svc.DESCRIPTOR.services_by_name["MetadataStoreService"],
    lineage_pb2.DESCRIPTOR.services_by_name["LineageService"],
    audit_pb2.DESCRIPTOR.services_by_name["AuditService"],
    deletion_pb2.DESCRIPTOR.services_by_name["DeletionService"],
)
MLMD = "ml_metadata.MetadataStoreService"
HTTP_LINE = "http listening on "
JSON = {"Content-Type": "application/json"}
TIMEOUT_S = 30.0


def method_descriptor(path: str) -> MethodDescriptor:
    """ "ml_metadata.MetadataStoreService/GetArtifacts" -> its descriptor."""
    service_name, method = path.split("/")
    for service in SERVICES:
        if service.full_name == service_name:
            return service.methods_by_name[method]
    raise KeyError(path)


def message_class(descriptor: Descriptor) -> type[Message]:
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    return cls


@dataclass
class HttpServer:
    server: Server
    http_port: int
    scheme: str = "http"

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    def url(self, path: str) -> str:
        return f"{self.base}/api/v1/{path}"

    def log(self) -> str:
        return self.server.stderr()

    def stop(self) -> int:
        return self.server.stop()


def wait_http_port(server: Server, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in list(server.stdout):
            if line.startswith(HTTP_LINE):
                return int(line.strip().rsplit(":", 1)[1])
        if server.process.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"no {HTTP_LINE!r} line; stdout {server.stdout}\n{server.stderr()[-3000:]}")


def start_http(
    database_url: str, directory: Path, *extra: str, env: dict[str, str] | None = None, scheme: str = "http"
) -> HttpServer:
    args = ["--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--database", database_url, *extra]
    server = start(args, directory, env)
    return HttpServer(server, wait_http_port(server), scheme)


@pytest.fixture
def http_servers() -> Iterator[list[HttpServer]]:
    """Servers appended here are stopped after the test."""
    started: list[HttpServer] = []
    yield started
    for running in started:
        if running.server.process.poll() is None:
            running.server.process.kill()
            running.server.process.wait()


class CallError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, http_status: int | None = None, body: Any = None):
        super().__init__(f"{code.name} ({http_status}): {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.body = body


_CODES = {code.value[0]: code for code in grpc.StatusCode}


class GrpcCaller:
    def __init__(self, channel: grpc.Channel, metadata: Sequence[tuple[str, str]] = ()) -> None:
        self.channel = channel
        self.metadata = list(metadata)

    def call(self, path: str, request: Message) -> Message:
        method = method_descriptor(path)
        response_class = message_class(method.output_type)
        stub = self.channel.unary_unary(
            f"/{path}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        try:
            response: Message = stub(request, metadata=self.metadata, timeout=TIMEOUT_S)
        except grpc.RpcError as error:
            raise CallError(error.code(), error.details() or "") from None
        return response


class JsonCaller:
    """POSTs the request in the JSON mapping: lowerCamel names (json_format's default), or the .proto's."""

    def __init__(
        self, client: httpx.Client, base: str, headers: dict[str, str] | None = None, proto_names: bool = False
    ) -> None:
        self.client = client
        self.base = base
        self.proto_names = proto_names
        self.headers = {**JSON, **(headers or {})}
        self.last_text = ""

    def post(self, path: str, body: Any) -> httpx.Response:
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.client.post(f"{self.base}/api/v1/{path}", content=content, headers=self.headers)

    def call(self, path: str, request: Message) -> Message:
        method = method_descriptor(path)
        answer = self.post(path, json_format.MessageToDict(request, preserving_proto_field_name=self.proto_names))
        self.last_text = answer.text
        if answer.status_code != 200:
            body = answer.json()
            raise CallError(_CODES[body["code"]], body["message"], answer.status_code, body)
        assert answer.headers["content-type"] == "application/json"
        return json_format.Parse(answer.text, message_class(method.output_type)())


class PipelineClient:
    """The official client's methods tfx_pipeline calls, over either caller."""

    def __init__(self, caller: GrpcCaller | JsonCaller) -> None:
        self.caller = caller

    def _call(self, method: str, request: Message) -> Any:
        return self.caller.call(f"{MLMD}/{method}", request)

    def put_artifact_type(self, artifact_type: Any) -> int:
        request = svc.PutArtifactTypeRequest(artifact_type=artifact_type, can_add_fields=True)
        return int(self._call("PutArtifactType", request).type_id)

    def put_execution_type(self, execution_type: Any) -> int:
        request = svc.PutExecutionTypeRequest(execution_type=execution_type, can_add_fields=True)
        return int(self._call("PutExecutionType", request).type_id)

    def put_context_type(self, context_type: Any) -> int:
        request = svc.PutContextTypeRequest(context_type=context_type, can_add_fields=True)
        return int(self._call("PutContextType", request).type_id)

    def put_execution(
        self, execution: Any, artifact_and_events: Any, contexts: Any, reuse_context_if_already_exist: bool = False
    ) -> tuple[int, list[int], list[int]]:
        request = svc.PutExecutionRequest(execution=execution, contexts=contexts)
        for artifact, event in artifact_and_events:
            pair = request.artifact_event_pairs.add(artifact=artifact)
            if event is not None:
                pair.event.CopyFrom(event)
        request.options.reuse_context_if_already_exist = reuse_context_if_already_exist
        response: Any = self._call("PutExecution", request)
        return response.execution_id, list(response.artifact_ids), list(response.context_ids)
