"""Server interceptors for operations: call logs and metrics, readiness, deadlines.

Order (outermost first): CallObserver, ReadinessGate, then lineagedb.api.status's
StatusInterceptor, so the observer sees the final status code of every call,
including the ones the gate refuses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from lineagedb.ops.metrics import Metrics
from lineagedb.store.engine import STATEMENT_DEADLINE

log = logging.getLogger("lineagedb.calls")

METADATA_SERVICE_PREFIX = "/ml_metadata.MetadataStoreService/"
# gRPC reports "no deadline" as a time remaining this large or larger.
NO_DEADLINE_S = 10 * 365 * 24 * 3600

Continuation = Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None]


def _wrap_unary(handler: grpc.RpcMethodHandler, behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Any:
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


class CallObserver(grpc.ServerInterceptor):
    """One debug log line and the metrics of every unary call."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        inner = handler.unary_unary
        metrics = self.metrics

        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            if metrics is not None:
                metrics.in_flight.labels(method).inc()
            code = grpc.StatusCode.OK
            try:
                response = inner(request, context)
                code = context.code() or grpc.StatusCode.OK
                return response
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                elapsed = time.perf_counter() - start
                if metrics is not None:
                    metrics.in_flight.labels(method).dec()
                    metrics.calls.labels(method, code.name).inc()
                    metrics.latency.labels(method).observe(elapsed)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("call %s %s %.1fms peer=%s", _short(method), code.name, elapsed * 1000, context.peer())

        return _wrap_unary(handler, observed)


class ReadinessGate(grpc.ServerInterceptor):
    """MetadataStoreService calls: UNAVAILABLE until the schema is ready; honour client deadlines.

    The remaining deadline is handed to the store (STATEMENT_DEADLINE), which bounds
    the database statements with it.
    """

    def __init__(self, ready: Callable[[], bool]) -> None:
        self.ready = ready

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or not method.startswith(METADATA_SERVICE_PREFIX):
            return handler
        inner = handler.unary_unary
        ready = self.ready

        def gated(request: Any, context: grpc.ServicerContext) -> Any:
            if not ready():
                context.abort(grpc.StatusCode.UNAVAILABLE, "the database is not available yet; retry the call")
            remaining = context.time_remaining()
            deadline: float | None = None
            if remaining is not None and remaining < NO_DEADLINE_S:
                if remaining <= 0:
                    context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call started")
                deadline = time.monotonic() + remaining
            token = STATEMENT_DEADLINE.set(deadline)
            try:
                return inner(request, context)
            finally:
                STATEMENT_DEADLINE.reset(token)

        return _wrap_unary(handler, gated)
