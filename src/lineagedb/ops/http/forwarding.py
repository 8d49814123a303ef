"""HTTP -> this process's own gRPC server: the one forwarding path every HTTP API shares.

An HTTP API (the JSON API, MLflow's REST API, ...) decodes a request into a message and
hands it here; the call goes to the gRPC server over a private Unix socket (a directory
only this user can enter), carrying the caller's `Authorization` and
`X-LineageDB-Namespace` headers as metadata and the caller's address in an entry only
this process can sign (lineagedb.api.forwarding). Every interceptor applies as to any
gRPC call: authentication, authorization, namespaces, the readiness gate, metrics, the
audit log, the status mapping, the worker pool and the message size limits.

Failures are ForwardError(gRPC code, message); each API renders them in its own error
format with its own HTTP statuses.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from starlette.requests import Request

from lineagedb.api.auth import NAMESPACE_METADATA
from lineagedb.api.forwarding import forwarded_peer_entry

NAMESPACE_HEADER = "x-lineagedb-namespace"
# gRPC's timeout header syntax (grpc-gateway reads the same header): digits and a unit.
_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# gRPC metadata values: printable ASCII.
_METADATA_VALUE = re.compile(r"^[\x20-\x7e]*$")


class ForwardError(Exception):
    """A refused or failed call: the gRPC code that names it, and an HTTP status if not the API's default."""

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.headers: dict[str, str] = {}


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
        raise ForwardError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Grpc-Timeout must be up to 8 digits and a unit (H, M, S, m, u, n), e.g. 30S or 500m",
        )
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]


def call_metadata(
    request: Request, authorization: Sequence[str] | None = None
) -> tuple[list[tuple[str, str]], float | None]:
    """The gRPC metadata of the forwarded call and its timeout, from the request's headers
    (`authorization`: the values to send instead of the request's Authorization headers)."""
    metadata: list[tuple[str, str]] = []
    sent = request.headers.getlist("authorization") if authorization is None else list(authorization)
    headers = [("authorization", "authorization", value) for value in sent]
    headers += [(NAMESPACE_HEADER, NAMESPACE_METADATA, value) for value in request.headers.getlist(NAMESPACE_HEADER)]
    for header, key, value in headers:
        if _METADATA_VALUE.fullmatch(value) is None:
            raise ForwardError(grpc.StatusCode.INVALID_ARGUMENT, f"the {header} header must be printable ASCII")
        metadata.append((key, value))
    metadata.append(forwarded_peer_entry(grpc_peer(request)))
    timeout_header = request.headers.get("grpc-timeout")
    return metadata, parse_timeout(timeout_header) if timeout_header is not None else None


class GrpcForwarder:
    """The private channel to the gRPC server; create and close it in the listener's event loop."""

    def __init__(self, grpc_target: str, max_request_bytes: int, max_response_bytes: int) -> None:
        self.grpc_target = grpc_target
        self.max_request_bytes = max_request_bytes
        self.max_response_bytes = max_response_bytes
        self._channel: grpc.aio.Channel | None = None
        self._callables: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}

    async def startup(self) -> None:
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

    async def call_bytes(
        self, grpc_path: str, body: bytes, metadata: list[tuple[str, str]], timeout: float | None
    ) -> bytes:
        """The serialized answer of `grpc_path` (/package.Service/Method) to a serialized request."""
        try:
            answer: bytes = await self._callable(grpc_path)(body, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            refused = ForwardError(error.code(), error.details() or error.code().name)
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                refused.headers["WWW-Authenticate"] = 'Bearer realm="lineagedb"'
            raise refused from None
        return answer

    async def call(
        self,
        grpc_path: str,
        message: Message,
        response_class: type[Message],
        request: Request,
        authorization: Sequence[str] | None = None,
        started: float | None = None,
        extra_metadata: Sequence[tuple[str, str]] = (),
    ) -> Message:
        """Forward `message` for `request` (its headers give the credentials unless `authorization`
        replaces them) and decode the answer."""
        metadata, timeout = call_metadata(request, authorization)
        metadata.extend(extra_metadata)
        if timeout is not None and started is not None:
            # The deadline counts from the request's arrival: reading and parsing it took some of it.
            timeout -= time.monotonic() - started
            if timeout <= 0:
                raise ForwardError(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call started")
        answer = await self.call_bytes(grpc_path, message.SerializeToString(), metadata, timeout)
        try:
            return response_class.FromString(answer)
        except DecodeError:
            raise ForwardError(
                grpc.StatusCode.INTERNAL, "the answer could not be decoded; see the server log"
            ) from None

    def _callable(self, grpc_path: str) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        found = self._callables.get(grpc_path)
        if found is None:
            if self._channel is None:
                raise ForwardError(grpc.StatusCode.UNAVAILABLE, "the server is starting or stopping; retry")
            # Raw bytes both ways: the message classes are applied by the caller, outside gRPC.
            found = self._channel.unary_unary(grpc_path)
            self._callables[grpc_path] = found
        return found

    async def read_body(self, request: Request) -> bytes:
        """The request body, refused (RESOURCE_EXHAUSTED, HTTP 413) past the server's receive limit."""
        limit = self.max_request_bytes
        too_large = ForwardError(
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
