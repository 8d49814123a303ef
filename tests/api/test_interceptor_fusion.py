"""GuardedCall (the server's one wrapper) answers exactly as ReadinessGate, StatusInterceptor and
AbortedRetry stacked in that order, through real in-process gRPC servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from lineagedb import errors
from lineagedb.api.retry import ATTEMPTS, AbortedRetry
from lineagedb.api.servicer import MetadataStoreServicer
from lineagedb.api.status import StatusInterceptor
from lineagedb.ops.interceptors import GuardedCall, ReadinessGate
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.store.engine import STATEMENT_DEADLINE

OTHER_METHOD = "/test.Other/GetArtifacts"  # not MetadataStoreService: no readiness gate


class _ScriptedStore:
    """Raises the scripted errors in turn, then answers; notes whether a deadline was set."""

    def __init__(self, raises: list[BaseException]) -> None:
        self.raises = list(raises)
        self.calls = 0
        self.deadlines: list[bool] = []

    def get_artifacts(self, request: Any) -> svc.GetArtifactsResponse:
        self.calls += 1
        self.deadlines.append(STATEMENT_DEADLINE.get() is not None)
        if self.raises:
            raise self.raises.pop(0)
        return svc.GetArtifactsResponse(next_page_token="ok")


Stack = Callable[[Callable[[], bool]], list[grpc.ServerInterceptor]]


def _stacked(ready: Callable[[], bool]) -> list[grpc.ServerInterceptor]:
    return [ReadinessGate(ready), StatusInterceptor(), AbortedRetry(sleep=lambda _s: None)]


def _fused(ready: Callable[[], bool]) -> list[grpc.ServerInterceptor]:
    return [GuardedCall(ready, sleep=lambda _s: None)]


@pytest.fixture
def serve() -> Iterator[Callable[[Stack, _ScriptedStore, bool], grpc.Channel]]:
    servers: list[grpc.Server] = []
    channels: list[grpc.Channel] = []

    def start(stack: Stack, store: _ScriptedStore, ready: bool) -> grpc.Channel:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=stack(lambda: ready))
        servicer = MetadataStoreServicer(store)  # type: ignore[arg-type]
        svc_grpc.add_MetadataStoreServiceServicer_to_server(servicer, server)
        other = grpc.unary_unary_rpc_method_handler(
            servicer.GetArtifacts,
            request_deserializer=svc.GetArtifactsRequest.FromString,
            response_serializer=svc.GetArtifactsResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Other", {"GetArtifacts": other}),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return channel

    yield start
    for channel in channels:
        channel.close()
    for server in servers:
        server.stop(None)


SCENARIOS: dict[str, list[BaseException]] = {
    "answers": [],
    "aborted then answers": [errors.AbortedError("deadlock")] * (ATTEMPTS - 1),
    "aborted every attempt": [errors.AbortedError("deadlock")] * ATTEMPTS,
    "not found": [errors.NotFoundError("no such artifact")],
    "internal domain error": [errors.InternalError("broken")],
    "invalid utf-8": [UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")],
    "unexpected error": [RuntimeError("SELECT secret; sqlite3 said no")],
    "aborted then unexpected": [errors.AbortedError("deadlock"), RuntimeError("boom")],
}


def _outcome(channel: grpc.Channel, method: str, payload: bytes, timeout: float | None) -> tuple[Any, ...]:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        answer = call(payload, timeout=timeout)
    except grpc.RpcError as error:
        return (error.code(), error.details())
    return (grpc.StatusCode.OK, svc.GetArtifactsResponse.FromString(answer).next_page_token)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("method", ["/ml_metadata.MetadataStoreService/GetArtifacts", OTHER_METHOD])
@pytest.mark.parametrize("ready", [True, False])
@pytest.mark.parametrize("timeout", [None, 30.0])
@pytest.mark.parametrize("payload", [b"", b"\xff\xff"], ids=["valid", "undecodable"])
def test_fused_wrapper_answers_as_the_stacked_interceptors(
    serve: Any, scenario: str, method: str, ready: bool, timeout: float | None, payload: bytes
) -> None:
    seen = []
    for stack in (_stacked, _fused):
        store = _ScriptedStore(SCENARIOS[scenario])
        outcome = _outcome(serve(stack, store, ready), method, payload, timeout)
        seen.append((outcome, store.calls, store.deadlines))
    assert seen[0] == seen[1]
    outcome, calls, deadlines = seen[1]
    if not ready and method != OTHER_METHOD:
        assert outcome[0] is grpc.StatusCode.UNAVAILABLE and calls == 0
    elif payload != b"":
        assert outcome[0] is grpc.StatusCode.INVALID_ARGUMENT and calls == 0
    else:
        # the deadline reaches the store only through the gate (MetadataStoreService calls)
        assert deadlines == [timeout is not None and method != OTHER_METHOD] * calls
