"""JSON over HTTP for every RPC: POST /api/v1/<full.Service.Name>/<Method>.

The methods are those of the service descriptors the server registers, so a new RPC is
reachable the moment it is served. Bodies use the protobuf JSON mapping (as grpc-gateway
does): requests may spell fields lowerCamel or as in the .proto, unknown fields are
refused; responses use the .proto names (preserving_proto_field_name, so a field reads
the same in the .proto, the Python client and the JSON), 64-bit integers as strings,
enums by name, fields at their default omitted.

Each request becomes a gRPC call to this process's own gRPC server over a private Unix
socket (a directory only this user can enter), carrying the caller's `Authorization`
and `X-LineageDB-Namespace` headers as metadata and the caller's address in an entry
only this process can sign (lineagedb.api.forwarding). Every interceptor applies as to
any gRPC call: authentication, authorization, namespaces, the readiness gate, metrics,
the audit log, the status mapping, the worker pool and the message size limits.

gRPC status codes map to HTTP as grpc-gateway maps them (FAILED_PRECONDITION is 400, as
there and in Google's API design guide: HTTP's 412 is about conditional headers), with
a JSON body {"code": <gRPC code number>, "status": "NOT_FOUND", "message": "..."}.

Requests must say `Content-Type: application/json`: a browser cannot send that to
another origin without a CORS preflight this API never grants, so a web page cannot make
its visitor's browser write into a server that runs without authentication.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from lineagedb.api.auth import NAMESPACE_METADATA
from lineagedb.api.forwarding import forwarded_peer_entry
from lineagedb.ops.http.openapi import document

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
OPENAPI_PATH = "/openapi.json"
NAMESPACE_HEADER = "x-lineagedb-namespace"
# Bodies and answers larger than this are converted in a worker thread, not on the event loop.
INLINE_CONVERSION_BYTES = 256 * 1024
MAX_MESSAGE_CHARS = 1024

# grpc-gateway's table (runtime.HTTPStatusFromCode).
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

# gRPC's timeout header syntax (grpc-gateway reads the same header): digits and a unit.
_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# gRPC metadata values: printable ASCII.
_METADATA_VALUE = re.compile(r"^[\x20-\x7e]*$")


class HttpError(Exception):
    """An answer other than 200, with the gRPC code that names it in the body."""

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = HTTP_STATUS.get(code, 500) if http_status is None else http_status
        self.headers: dict[str, str] = {}


def error_body(code: grpc.StatusCode, message: str) -> bytes:
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 16] + " ... (truncated)"
    return json.dumps({"code": code.value[0], "status": code.name, "message": message}).encode()


def error_response(error: HttpError) -> Response:
    return Response(
        error_body(error.code, error.message),
        status_code=error.http_status,
        media_type="application/json",
        headers=error.headers,
    )


@dataclass(frozen=True)
class RpcMethod:
    service: str  # full name, e.g. ml_metadata.MetadataStoreService
    name: str
    request: type[Message]
    response: type[Message]

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.name}"


def rpc_methods(services: Sequence[ServiceDescriptor]) -> dict[tuple[str, str], RpcMethod]:
    """(service, method) -> the method, for every unary method of `services` (streams have no JSON form here)."""
    methods: dict[tuple[str, str], RpcMethod] = {}
    for service in services:
        for method in service.methods:
            if method.client_streaming or method.server_streaming:
                continue
            methods[(service.full_name, method.name)] = RpcMethod(
                service.full_name,
                method.name,
                message_factory.GetMessageClass(method.input_type),
                message_factory.GetMessageClass(method.output_type),
            )
    return methods


def grpc_peer(request: Request) -> str:
    """The HTTP client in gRPC's spelling of peers, so audit records of both transports read alike."""
    client = request.client
    if client is None:
        return "unknown"
    host, port = client.host, client.port
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


def parse_timeout(value: str) -> float:
    match = _TIMEOUT.fullmatch(value.strip())
    if match is None:
        raise HttpError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Grpc-Timeout must be up to 8 digits and a unit (H, M, S, m, u, n), e.g. 30S or 500m",
        )
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]


def parse_request(body: bytes, message_class: type[Message]) -> Message:
    """The request message from a JSON body (empty: the default message); refusals are INVALID_ARGUMENT."""
    message = message_class()
    if not body.strip():
        return message
    try:
        value = json.loads(body)
    except UnicodeDecodeError:
        raise HttpError(grpc.StatusCode.INVALID_ARGUMENT, "the request body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise HttpError(grpc.StatusCode.INVALID_ARGUMENT, f"the request body is not valid JSON: {error}") from None
    except RecursionError:
        raise HttpError(grpc.StatusCode.INVALID_ARGUMENT, "the request body nests too deeply") from None
    if not isinstance(value, dict):
        raise HttpError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request body must be a JSON object (a {message_class.DESCRIPTOR.full_name}), "
            f"not {type(value).__name__}",
        )
    try:
        json_format.ParseDict(value, message)
    except (json_format.ParseError, ValueError, TypeError, RecursionError, OverflowError) as error:
        detail = str(error) or type(error).__name__
        raise HttpError(grpc.StatusCode.INVALID_ARGUMENT, f"the request does not fit the message: {detail}") from None
    return message


def render_response(data: bytes, message_class: type[Message]) -> bytes:
    try:
        message = message_class.FromString(data)
    except DecodeError:
        raise HttpError(grpc.StatusCode.INTERNAL, "the answer could not be decoded; see the server log") from None
    text = json_format.MessageToJson(message, preserving_proto_field_name=True, indent=None, ensure_ascii=False)
    return text.encode()


class JsonApi:
    """The /api/v1 component of the HTTP listener (see lineagedb.ops.http.app)."""

    prefix = PREFIX

    def __init__(
        self,
        services: Sequence[ServiceDescriptor],
        grpc_target: str,
        max_request_bytes: int,
        max_response_bytes: int,
    ) -> None:
        self.methods = rpc_methods(services)
        self.grpc_target = grpc_target
        self.max_request_bytes = max_request_bytes
        self.max_response_bytes = max_response_bytes
        self.openapi = json.dumps(document(services, PREFIX), indent=1).encode()
        self._channel: grpc.aio.Channel | None = None
        self._callables: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}
        everything = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        self._app = Starlette(
            routes=[
                Route(OPENAPI_PATH, self._openapi, methods=everything),
                Route("/{service}/{method}", self._call, methods=everything),
                Route("/{path:path}", self._unknown, methods=everything),
            ]
        )

    @property
    def app(self) -> ASGIApp:
        return self._app

    async def startup(self) -> None:
        # Created in the listener's event loop, the one every call runs in.
        self._channel = grpc.aio.insecure_channel(
            self.grpc_target,
            options=[
                ("grpc.max_send_message_length", self.max_request_bytes),
                ("grpc.max_receive_message_length", self.max_response_bytes),
                ("grpc.enable_http_proxy", 0),
            ],
        )

    async def shutdown(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        self._callables.clear()

    # ------------------------------------------------------------------ endpoints

    async def _openapi(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return error_response(_not_allowed("GET"))
        return Response(self.openapi, media_type="application/json")

    async def _unknown(self, request: Request) -> Response:
        return error_response(
            HttpError(
                grpc.StatusCode.NOT_FOUND,
                f"no such endpoint: {request.url.path}; methods are POST {PREFIX}/<package.Service>/<Method> "
                f"(see GET {PREFIX}{OPENAPI_PATH})",
            )
        )

    async def _call(self, request: Request) -> Response:
        service, name = request.path_params["service"], request.path_params["method"]
        method = self.methods.get((service, name))
        try:
            if method is None:
                raise HttpError(
                    grpc.StatusCode.NOT_FOUND,
                    f"no method {service}/{name}; the methods are listed in GET {PREFIX}{OPENAPI_PATH}",
                )
            if request.method != "POST":
                raise _not_allowed("POST")
            return await self._forward(method, request)
        except HttpError as error:
            return error_response(error)
        except ClientDisconnect:
            return Response(status_code=499)
        except Exception:
            log.exception("HTTP %s %s failed with an unexpected error", request.method, request.url.path)
            return error_response(HttpError(grpc.StatusCode.INTERNAL, "internal error; see the server log"))

    async def _forward(self, method: RpcMethod, request: Request) -> Response:
        started = time.monotonic()
        _check_content_type(request)
        metadata, timeout = _metadata(request)
        body = await self._body(request)
        if len(body) > INLINE_CONVERSION_BYTES:
            message = await run_in_threadpool(parse_request, body, method.request)
        else:
            message = parse_request(body, method.request)
        if timeout is not None:
            # The deadline counts from the request's arrival: reading and parsing it took some of it.
            timeout -= time.monotonic() - started
            if timeout <= 0:
                raise HttpError(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call started")
        try:
            answer: bytes = await self._callable(method.grpc_path)(
                message.SerializeToString(), metadata=metadata, timeout=timeout
            )
        except grpc.aio.AioRpcError as error:
            refused = HttpError(error.code(), error.details() or error.code().name)
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                refused.headers["WWW-Authenticate"] = 'Bearer realm="lineagedb"'
            raise refused from None
        if len(answer) > INLINE_CONVERSION_BYTES:
            content = await run_in_threadpool(render_response, answer, method.response)
        else:
            content = render_response(answer, method.response)
        return Response(content, media_type="application/json")

    def _callable(self, grpc_path: str) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        found = self._callables.get(grpc_path)
        if found is None:
            if self._channel is None:
                raise HttpError(grpc.StatusCode.UNAVAILABLE, "the server is starting or stopping; retry")
            # Raw bytes both ways: the message classes are applied here, outside gRPC.
            found = self._channel.unary_unary(grpc_path)
            self._callables[grpc_path] = found
        return found

    async def _body(self, request: Request) -> bytes:
        limit = self.max_request_bytes
        too_large = HttpError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the request body is larger than the server's limit of {limit} bytes (--max-receive-message-bytes)",
            http_status=413,
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)


def _not_allowed(allowed: str) -> HttpError:
    error = HttpError(grpc.StatusCode.UNIMPLEMENTED, f"this endpoint answers {allowed} only", http_status=405)
    error.headers["Allow"] = allowed
    return error


def _check_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise HttpError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"send the request as Content-Type: application/json (got {content_type or 'none'})",
            http_status=415,
        )


def _metadata(request: Request) -> tuple[list[tuple[str, str]], float | None]:
    """The gRPC metadata of the forwarded call and its timeout, from the request's headers."""
    metadata: list[tuple[str, str]] = []
    for header, key in (("authorization", "authorization"), (NAMESPACE_HEADER, NAMESPACE_METADATA)):
        for value in request.headers.getlist(header):
            if _METADATA_VALUE.fullmatch(value) is None:
                raise HttpError(grpc.StatusCode.INVALID_ARGUMENT, f"the {header} header must be printable ASCII")
            metadata.append((key, value))
    metadata.append(forwarded_peer_entry(grpc_peer(request)))
    timeout_header = request.headers.get("grpc-timeout")
    return metadata, parse_timeout(timeout_header) if timeout_header is not None else None
