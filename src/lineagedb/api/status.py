"""The single table from domain errors to gRPC status codes, applied by an interceptor.

Nothing else in LineageDB knows `grpc.StatusCode`. Unexpected exceptions become
INTERNAL with a generic message; the details go to the log with the method name,
never to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from lineagedb import errors
from lineagedb.api.wrapping import UnaryWrapper, unary_handler

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.LineageError], grpc.StatusCode] = {
    errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.OutOfRangeError: grpc.StatusCode.OUT_OF_RANGE,
    errors.UnimplementedError: grpc.StatusCode.UNIMPLEMENTED,
    errors.AbortedError: grpc.StatusCode.ABORTED,
    errors.UnavailableError: grpc.StatusCode.UNAVAILABLE,
    errors.ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.DataLossError: grpc.StatusCode.DATA_LOSS,
    errors.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.InternalError: grpc.StatusCode.INTERNAL,
}


def status_for(error: errors.LineageError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return grpc.StatusCode.INTERNAL


# Details travel percent-encoded in a header; clients drop headers over 8 KiB, which
# would turn the real status into RESOURCE_EXHAUSTED. 512 characters stay below that
# even when every character needs four UTF-8 bytes.
MAX_DETAILS_CHARS = 512


def _details(message: str) -> str:
    if len(message) <= MAX_DETAILS_CHARS:
        return message
    return message[: MAX_DETAILS_CHARS - 16] + " ... (truncated)"


@dataclass(frozen=True)
class UndecodableRequest:
    """Stands in for a request whose bytes do not parse, so the handler can answer
    INVALID_ARGUMENT instead of gRPC's own INTERNAL."""

    type_name: str


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    type_name = getattr(getattr(deserializer, "__self__", None), "__name__", "request")

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # a DecodeError, whatever the protobuf runtime calls it
            return UndecodableRequest(type_name)

    return parse


def abort_undecodable(context: grpc.ServicerContext, request: UndecodableRequest) -> None:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request bytes are not a valid {request.type_name} message")


def abort_for(method: str, context: grpc.ServicerContext, error: Exception) -> None:
    """Answers `error`, raised by `method`'s handler, with its status; always raises. Call it
    from the `except` clause that caught `error`."""
    if isinstance(error, errors.LineageError):
        code = status_for(error)
        if code is grpc.StatusCode.INTERNAL:
            log.error("%s failed: %s", method, error.message, exc_info=error.__cause__ is not None)
        else:
            log.debug("%s -> %s: %s", method, code.name, error.message)
        context.abort(code, _details(error.message))
    if isinstance(error, UnicodeDecodeError):
        # proto2 does not validate UTF-8 when parsing; invalid text (a map key, say)
        # only fails when read. The transaction has been rolled back by now.
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request contains text that is not valid UTF-8")
    if context.code() is not None:  # already aborted by the handler itself
        raise error
    log.exception("%s failed with an unexpected error", method)
    context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")


class StatusInterceptor(UnaryWrapper):
    """Turns exceptions raised by unary handlers into gRPC statuses."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, UndecodableRequest):
                abort_undecodable(context, request)
            try:
                return inner(request, context)
            except Exception as error:
                abort_for(method, context, error)
                raise  # unreachable: abort_for raises

        return unary_handler(handler, guarded, tolerant(handler.request_deserializer))
