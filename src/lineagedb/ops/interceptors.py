"""Server interceptors for operations: call logs and metrics, readiness, deadlines.

Order (outermost first): CallObserver, ReadinessGate, then lineagedb.api.status's
StatusInterceptor, so the observer sees the final status code of every call,
including the ones the gate refuses. The server installs GuardedCall: the gate, the
status mapping and lineagedb.api.retry's AbortedRetry as one wrapper.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from lineagedb import errors
from lineagedb.api import retry, status
from lineagedb.api.forwarding import peer_of
from lineagedb.api.wrapping import UnaryWrapper, unary_handler
from lineagedb.ops.metrics import Metrics
from lineagedb.store.engine import STATEMENT_DEADLINE
from lineagedb.store.statement_count import StatementCounter

log = logging.getLogger("lineagedb.calls")

METADATA_SERVICE_PREFIX = "/ml_metadata.MetadataStoreService/"
# gRPC reports "no deadline" as a time remaining this large or larger.
NO_DEADLINE_S = 10 * 365 * 24 * 3600


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


class CallObserver(UnaryWrapper):
    """One debug log line and the metrics of every unary call."""

    def __init__(self, metrics: Metrics | None) -> None:
        super().__init__()
        self.metrics = metrics

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        metrics = self.metrics
        # Label children resolved once per method, not on every call.
        in_flight = metrics.in_flight.labels(method) if metrics is not None else None
        latency = metrics.latency.labels(method) if metrics is not None else None

        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            if in_flight is not None:
                in_flight.inc()
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
                if metrics is not None and in_flight is not None and latency is not None:
                    in_flight.dec()
                    metrics.calls.labels(method, code.name).inc()
                    latency.observe(elapsed)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("call %s %s %.1fms peer=%s", _short(method), code.name, elapsed * 1000, peer_of(context))

        if metrics is None:
            # Without metrics only the debug line needs the clock and the code: skip both
            # unless it is on (measured: 2.9k of a trivial call's 405.6k server instructions).
            def logged(request: Any, context: grpc.ServicerContext) -> Any:
                if log.isEnabledFor(logging.DEBUG):
                    return observed(request, context)
                return inner(request, context)

            return unary_handler(handler, logged)
        return unary_handler(handler, observed)


class StatementScope(UnaryWrapper):
    """Brackets each call for the statement counter (LINEAGEDB_COUNT_STATEMENTS; benchmark only)."""

    def __init__(self, counter: StatementCounter) -> None:
        super().__init__()
        self.counter = counter

    def applies(self, method: str) -> bool:
        return method.startswith(METADATA_SERVICE_PREFIX)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        counter, name = self.counter, _short(method)

        def counted(request: Any, context: grpc.ServicerContext) -> Any:
            token = counter.begin_call()
            try:
                return inner(request, context)
            finally:
                counter.end_call(name, token)

        return unary_handler(handler, counted)


def _pass_gate(ready: Callable[[], bool], context: grpc.ServicerContext) -> float | None:
    """The readiness gate of a MetadataStoreService call: UNAVAILABLE until the schema is ready,
    DEADLINE_EXCEEDED if the deadline has passed; else the deadline as a time.monotonic() value
    for the store (None: the client set none)."""
    if not ready():
        context.abort(grpc.StatusCode.UNAVAILABLE, "the database is not available yet; retry the call")
    remaining = context.time_remaining()
    if remaining is None or remaining >= NO_DEADLINE_S:
        return None
    if remaining <= 0:
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call started")
    return time.monotonic() + remaining


class ReadinessGate(UnaryWrapper):
    """MetadataStoreService calls: UNAVAILABLE until the schema is ready; honour client deadlines.

    The remaining deadline is handed to the store (STATEMENT_DEADLINE), which bounds
    the database statements with it.
    """

    def __init__(self, ready: Callable[[], bool]) -> None:
        super().__init__()
        self.ready = ready

    def applies(self, method: str) -> bool:
        return method.startswith(METADATA_SERVICE_PREFIX)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        ready = self.ready

        def gated(request: Any, context: grpc.ServicerContext) -> Any:
            token = STATEMENT_DEADLINE.set(_pass_gate(ready, context))
            try:
                return inner(request, context)
            finally:
                STATEMENT_DEADLINE.reset(token)

        return unary_handler(handler, gated)


class GuardedCall(UnaryWrapper):
    """ReadinessGate, StatusInterceptor and AbortedRetry, in that order, as one wrapper.

    The same behaviour as the three stacked (tests/api/test_interceptor_fusion.py holds them
    to it), in two Python frames per call instead of three (one for other services): a trivial call measured 405.6k
    instructions in the server with the three, of which the gate cost 7.4k, the status
    mapping 1.9k and the retry loop 1.8k (callgrind, ablation; see bench/README.md).
    """

    def __init__(
        self,
        ready: Callable[[], bool],
        attempts: int = retry.ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.ready = ready
        self.attempts = attempts
        self.sleep = sleep

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        ready, attempts, sleep = self.ready, self.attempts, self.sleep
        monotonic, aborted_error, undecodable = time.monotonic, errors.AbortedError, status.UndecodableRequest
        abort_for, gives_up, backoff_s = status.abort_for, retry.gives_up, retry.backoff_s

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            # StatusInterceptor and AbortedRetry (the gate's work is in `gated` below).
            if isinstance(request, undecodable):
                status.abort_undecodable(context, request)
            try:
                attempt = 0
                while True:
                    attempt += 1
                    started = monotonic()
                    try:
                        return inner(request, context)
                    except aborted_error:
                        if gives_up(attempt, attempts, started, context):
                            raise
                        sleep(backoff_s(attempt))
            except Exception as error:
                abort_for(method, context, error)
                raise  # unreachable: abort_for raises

        def gated(request: Any, context: grpc.ServicerContext) -> Any:
            # ReadinessGate, then `guarded`.
            token = STATEMENT_DEADLINE.set(_pass_gate(ready, context))
            try:
                return guarded(request, context)
            finally:
                STATEMENT_DEADLINE.reset(token)

        behavior = gated if method.startswith(METADATA_SERVICE_PREFIX) else guarded
        return unary_handler(handler, behavior, status.tolerant(handler.request_deserializer))
