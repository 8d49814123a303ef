"""Base class for interceptors that wrap unary handlers.

gRPC-Python asks every interceptor for a handler on every call. Handlers are static,
so each interceptor wraps a method's handler once and reuses the result: rebuilding
closures and handler objects per call was a measurable share of a trivial call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Continuation = Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None]
Behavior = Callable[[Any, grpc.ServicerContext], Any]


def unary_handler(
    handler: grpc.RpcMethodHandler,
    behavior: Behavior,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class UnaryWrapper(grpc.ServerInterceptor):
    """Wraps each unary method's handler once (see `wrap`); other handlers pass through
    unless `streaming` is set (then `wrap` receives every kind of handler)."""

    streaming = False

    def __init__(self) -> None:
        # Only methods that exist are cached, so unknown method names cannot grow it.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None:
            return cached
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        if (self.streaming or handler.unary_unary is not None) and self.applies(method):
            handler = self.wrap(method, handler)
        self._wrapped[method] = handler
        return handler

    def applies(self, method: str) -> bool:
        return True

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        raise NotImplementedError
