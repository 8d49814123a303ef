"""JSON over HTTP for every RPC: POST /api/v1/<full.Service.Name>/<Method>.

The methods are those of the service descriptors the server registers, so a new RPC is
reachable the moment it is served. Bodies use the protobuf JSON mapping (as grpc-gateway
does): requests may spell fields lowerCamel or as in the .proto, unknown fields are
refused; responses use the .proto names (preserving_proto_field_name, so a field reads
the same in the .proto, the Python client and the JSON), 64-bit integers as strings,
enums by name, fields at their default omitted.

Each request becomes a gRPC call to this process's own gRPC server through the
listener's shared forwarding path (lineagedb.ops.http.forwarding), so every interceptor
applies as to any gRPC call.

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
import time
from collections.abc import Sequence
from dataclasses import dataclass

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

from lineagedb.ops.http.any_fallback import message_to_json
from lineagedb.ops.http.forwarding import ForwardError, GrpcForwarder, call_metadata
from lineagedb.ops.http.openapi import document

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
OPENAPI_PATH = "/openapi.json"
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


class HttpError(ForwardError):
    """An answer other than 200, with the gRPC code that names it in the body."""

    http_status: int

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int | None = None) -> None:
        super().__init__(code, message, HTTP_STATUS.get(code, 500) if http_status is None else http_status)


def _as_http_error(error: ForwardError) -> HttpError:
    if isinstance(error, HttpError):
        return error
    converted = HttpError(error.code, error.message, error.http_status)
    converted.headers.update(error.headers)
    return converted


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
    return message_to_json(message).encode()


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
        self.forwarder = GrpcForwarder(grpc_target, max_request_bytes, max_response_bytes)
        self.openapi = json.dumps(document(services, PREFIX), indent=1).encode()
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
        await self.forwarder.startup()

    async def shutdown(self) -> None:
        await self.forwarder.shutdown()

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
        except ForwardError as error:
            return error_response(_as_http_error(error))
        except ClientDisconnect:
            return Response(status_code=499)
        except Exception:
            log.exception("HTTP %s %s failed with an unexpected error", request.method, request.url.path)
            return error_response(HttpError(grpc.StatusCode.INTERNAL, "internal error; see the server log"))

    async def _forward(self, method: RpcMethod, request: Request) -> Response:
        started = time.monotonic()
        _check_content_type(request)
        metadata, timeout = call_metadata(request)
        body = await self.forwarder.read_body(request)
        if len(body) > INLINE_CONVERSION_BYTES:
            message = await run_in_threadpool(parse_request, body, method.request)
        else:
            message = parse_request(body, method.request)
        if timeout is not None:
            # The deadline counts from the request's arrival: reading and parsing it took some of it.
            timeout -= time.monotonic() - started
            if timeout <= 0:
                raise HttpError(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call started")
        answer = await self.forwarder.call_bytes(method.grpc_path, message.SerializeToString(), metadata, timeout)
        if len(answer) > INLINE_CONVERSION_BYTES:
            content = await run_in_threadpool(render_response, answer, method.response)
        else:
            content = render_response(answer, method.response)
        return Response(content, media_type="application/json")


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
