"""MLflow's REST API (/api/2.0/mlflow and /ajax-api/2.0/mlflow) mapped onto LineageDB's RPCs.

Each MLflow endpoint (verb and path, as in the pinned client's service definitions) is a
route to one RPC of a LineageDB service (lineagedb.v1.mlflow.TrackingService here; the
model registry adds its own routes). A request becomes that RPC's message: GET query
parameters or the JSON body (the protobuf JSON mapping with .proto field names, unknown
fields ignored as MLflow's server does), plus the path's {parameters}. The call goes
through the listener's shared forwarding path (lineagedb.ops.http.forwarding), so auth,
the permission table, namespaces, audit and limits apply as to any gRPC call.

Answers are MLflow's JSON: .proto field names, 64-bit integers as JSON numbers, enums by
name. Errors are MLflow's {"error_code": ..., "message": ...} with MLflow's HTTP statuses.

Credentials: `Authorization: Bearer <token>` (MLFLOW_TRACKING_TOKEN) passes through.
`Authorization: Basic` (MLFLOW_TRACKING_USERNAME/PASSWORD) carries a LineageDB token as
the password; the user name goes along (metadata x-lineagedb-basic-user) and the auth
interceptor requires it to be the principal the token names.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from lineagedb.api.auth import BASIC_USER_METADATA
from lineagedb.ops.http.forwarding import ForwardError, GrpcForwarder
from lineagedb.proto.lineagedb.v1 import mlflow_tracking_pb2 as tracking

log = logging.getLogger(__name__)

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
MAX_MESSAGE_CHARS = 1024

# gRPC status -> MLflow's error_code and the HTTP status MLflow's server answers it with.
ERRORS: dict[grpc.StatusCode, tuple[str, int]] = {
    grpc.StatusCode.INVALID_ARGUMENT: ("INVALID_PARAMETER_VALUE", 400),
    grpc.StatusCode.OUT_OF_RANGE: ("INVALID_PARAMETER_VALUE", 400),
    grpc.StatusCode.NOT_FOUND: ("RESOURCE_DOES_NOT_EXIST", 404),
    grpc.StatusCode.ALREADY_EXISTS: ("RESOURCE_ALREADY_EXISTS", 400),
    grpc.StatusCode.FAILED_PRECONDITION: ("BAD_REQUEST", 400),
    grpc.StatusCode.PERMISSION_DENIED: ("PERMISSION_DENIED", 403),
    grpc.StatusCode.UNAUTHENTICATED: ("UNAUTHENTICATED", 401),
    grpc.StatusCode.RESOURCE_EXHAUSTED: ("RESOURCE_EXHAUSTED", 429),
    # A lost race the server already retried: 503, which the MLflow client retries again.
    grpc.StatusCode.ABORTED: ("TEMPORARILY_UNAVAILABLE", 503),
    grpc.StatusCode.UNAVAILABLE: ("TEMPORARILY_UNAVAILABLE", 503),
    grpc.StatusCode.DEADLINE_EXCEEDED: ("DEADLINE_EXCEEDED", 504),
    grpc.StatusCode.UNIMPLEMENTED: ("NOT_IMPLEMENTED", 501),
    grpc.StatusCode.CANCELLED: ("CANCELLED", 499),
}


def mlflow_error(code: grpc.StatusCode, message: str, http_status: int | None = None) -> Response:
    """MLflow's error answer for a gRPC status (INTERNAL_ERROR 500 for anything unlisted)."""
    error_code, status = ERRORS.get(code, ("INTERNAL_ERROR", 500))
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 16] + " ... (truncated)"
    body = json.dumps({"error_code": error_code, "message": message}).encode()
    return Response(body, status_code=http_status or status, media_type="application/json")


@dataclass(frozen=True)
class MlflowRoute:
    """One MLflow endpoint: `verb` and `path` (relative to /api/2.0/mlflow, {name} parameters
    filled into the request message) -> the RPC at `grpc_path` (/package.Service/Method)."""

    verb: str
    path: str
    grpc_path: str
    request: type[Message]
    response: type[Message]


def rpc_route(service: ServiceDescriptor, verb: str, path: str, rpc: str) -> MlflowRoute:
    """The route from MLflow's `verb` `path` to the method `rpc` of `service` (its message classes)."""
    method = service.methods_by_name[rpc]
    return MlflowRoute(
        verb,
        path,
        f"/{service.full_name}/{rpc}",
        message_factory.GetMessageClass(method.input_type),
        message_factory.GetMessageClass(method.output_type),
    )


def _route(verb: str, path: str, rpc: str) -> MlflowRoute:
    return rpc_route(tracking.DESCRIPTOR.services_by_name["TrackingService"], verb, path, rpc)


TRACKING_ROUTES: list[MlflowRoute] = [
    _route("POST", "/experiments/create", "CreateExperiment"),
    _route("GET", "/experiments/get", "GetExperiment"),
    _route("GET", "/experiments/get-by-name", "GetExperimentByName"),
    _route("POST", "/experiments/search", "SearchExperiments"),
    _route("GET", "/experiments/search", "SearchExperiments"),
    _route("POST", "/experiments/update", "UpdateExperiment"),
    _route("POST", "/experiments/delete", "DeleteExperiment"),
    _route("POST", "/experiments/restore", "RestoreExperiment"),
    _route("POST", "/experiments/set-experiment-tag", "SetExperimentTag"),
    _route("POST", "/experiments/delete-experiment-tag", "DeleteExperimentTag"),
    _route("POST", "/runs/create", "CreateRun"),
    _route("GET", "/runs/get", "GetRun"),
    _route("POST", "/runs/update", "UpdateRun"),
    _route("POST", "/runs/delete", "DeleteRun"),
    _route("POST", "/runs/restore", "RestoreRun"),
    _route("POST", "/runs/search", "SearchRuns"),
    _route("POST", "/runs/log-metric", "LogMetric"),
    _route("POST", "/runs/log-parameter", "LogParam"),
    _route("POST", "/runs/set-tag", "SetTag"),
    _route("POST", "/runs/delete-tag", "DeleteTag"),
    _route("POST", "/runs/log-batch", "LogBatch"),
    _route("POST", "/runs/log-inputs", "LogInputs"),
    _route("POST", "/runs/outputs", "LogOutputs"),
    _route("GET", "/metrics/get-history", "GetMetricHistory"),
    _route("POST", "/logged-models", "CreateLoggedModel"),
    _route("POST", "/logged-models/search", "SearchLoggedModels"),
    _route("GET", "/logged-models/{model_id}", "GetLoggedModel"),
    _route("PATCH", "/logged-models/{model_id}", "FinalizeLoggedModel"),
    _route("PATCH", "/logged-models/{model_id}/tags", "SetLoggedModelTags"),
    _route("POST", "/logged-models/{model_id}/params", "LogLoggedModelParams"),
]


# ---------------------------------------------------------------------------- JSON codec


def _numbers(value: Any, descriptor: Any) -> Any:
    """64-bit integers as JSON numbers (MessageToDict writes them as strings), as MLflow answers."""
    for field in descriptor.fields:
        if field.name not in value:
            continue
        if field.message_type is not None:
            if field.is_repeated:
                value[field.name] = [_numbers(item, field.message_type) for item in value[field.name]]
            else:
                value[field.name] = _numbers(value[field.name], field.message_type)
        elif field.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64):
            item = value[field.name]
            value[field.name] = [int(v) for v in item] if isinstance(item, list) else int(item)
    return value


def render(message: Message) -> bytes:
    value = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return json.dumps(_numbers(value, message.DESCRIPTOR), allow_nan=True).encode()


def _query_value(field: Any, values: list[str]) -> Any:
    return values if field.is_repeated else values[-1]


def parse(route: MlflowRoute, request: Request, body: bytes) -> Message:
    """The RPC's request message from query parameters (GET) or the JSON body, plus path parameters."""
    descriptor = route.request.DESCRIPTOR
    value: dict[str, Any] = {}
    if request.method == "GET":
        for name in set(request.query_params.keys()):
            field = descriptor.fields_by_name.get(name)
            if field is not None:
                value[name] = _query_value(field, request.query_params.getlist(name))
    elif body.strip():
        try:
            loaded = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise ForwardError(grpc.StatusCode.INVALID_ARGUMENT, "the request body is not valid JSON") from None
        if not isinstance(loaded, dict):
            raise ForwardError(grpc.StatusCode.INVALID_ARGUMENT, "the request body must be a JSON object")
        value = loaded
    for name, given in request.path_params.items():
        value[name] = given
    message = route.request()
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError, OverflowError) as error:
        detail = str(error) or type(error).__name__
        raise ForwardError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid request: {detail}") from None
    return message


def basic_to_bearer(request: Request) -> tuple[list[str] | None, str | None]:
    """(Authorization values to forward, the Basic user name) for the request's credentials."""
    values = request.headers.getlist("authorization")
    if len(values) != 1 or values[0][:6].lower() != "basic ":
        return None, None
    try:
        decoded = base64.b64decode(values[0][6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ForwardError(grpc.StatusCode.UNAUTHENTICATED, "the Basic credentials are not valid base64") from None
    user, colon, password = decoded.partition(":")
    if not colon or not password:
        raise ForwardError(
            grpc.StatusCode.UNAUTHENTICATED, "HTTP Basic credentials need a LineageDB token as the password"
        )
    return [f"Bearer {password}"], user


# ---------------------------------------------------------------------------- component


class MlflowRestApi:
    """MLflow's REST API under one prefix (see lineagedb.ops.http.app); one instance per prefix."""

    def __init__(self, prefix: str, routes: Sequence[MlflowRoute], forwarder: GrpcForwarder) -> None:
        self.prefix = prefix
        self.forwarder = forwarder
        by_path: dict[str, dict[str, MlflowRoute]] = {}
        for route in routes:
            by_path.setdefault(route.path, {})[route.verb] = route
        # Fixed paths before parameterised ones (/logged-models/search before /logged-models/{model_id}).
        ordered = sorted(by_path.items(), key=lambda item: ("{" in item[0], item[0]))
        verbs = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        starlette_routes = [Route(path, self._endpoint(verbs_of), methods=verbs) for path, verbs_of in ordered]
        starlette_routes.append(Route("/{path:path}", self._unknown, methods=verbs))
        self._app = Starlette(routes=starlette_routes)

    @property
    def app(self) -> ASGIApp:
        return self._app

    async def startup(self) -> None:
        await self.forwarder.startup()

    async def shutdown(self) -> None:
        await self.forwarder.shutdown()

    async def _unknown(self, request: Request) -> Response:
        body = {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No endpoint {request.method} {request.url.path}"}
        return Response(json.dumps(body).encode(), status_code=404, media_type="application/json")

    def _endpoint(self, routes: dict[str, MlflowRoute]) -> Any:
        async def endpoint(request: Request) -> Response:
            route = routes.get(request.method)
            if route is None:
                allowed = ", ".join(sorted(routes))
                body = {"error_code": "BAD_REQUEST", "message": f"{request.url.path} answers {allowed}"}
                return Response(
                    json.dumps(body).encode(),
                    status_code=405,
                    media_type="application/json",
                    headers={"Allow": allowed},
                )
            return await self._call(route, request)

        return endpoint

    async def _call(self, route: MlflowRoute, request: Request) -> Response:
        started = time.monotonic()
        try:
            body = b"" if request.method == "GET" else await self.forwarder.read_body(request)
            _check_content_type(request, body)
            message = parse(route, request, body)
            authorization, user = basic_to_bearer(request)
            extra = [(BASIC_USER_METADATA, user)] if user is not None else []
            answer = await self.forwarder.call(
                route.grpc_path, message, route.response, request, authorization, started, extra
            )
            return Response(render(answer), media_type="application/json")
        except ForwardError as error:
            response = mlflow_error(error.code, error.message, error.http_status)
            response.headers.update(error.headers)
            return response
        except ClientDisconnect:
            return Response(status_code=499)
        except Exception:
            log.exception("MLflow %s %s failed with an unexpected error", request.method, request.url.path)
            return mlflow_error(grpc.StatusCode.INTERNAL, "internal error; see the server log")


_JSON = re.compile(r"^application/(?:[\w.+-]+\+)?json$")


def _check_content_type(request: Request, body: bytes) -> None:
    """A body must be JSON: a browser cannot send that cross-origin without a preflight we never grant."""
    if not body.strip():
        return
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if _JSON.fullmatch(media_type) is None:
        raise ForwardError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"send the request as Content-Type: application/json (got {media_type or 'none'})",
            http_status=415,
        )


def components(routes: Sequence[MlflowRoute], grpc_target: str, max_request: int, max_response: int) -> list[Any]:
    """The MLflow REST API under each of MLflow's prefixes (the client's and the web UI's)."""
    return [MlflowRestApi(prefix, routes, GrpcForwarder(grpc_target, max_request, max_response)) for prefix in PREFIXES]
