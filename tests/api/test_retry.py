"""Server-side retry of ABORTED calls, through a real in-process gRPC server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from lineagedb import errors
from lineagedb.api.retry import ATTEMPTS, AbortedRetry
from lineagedb.api.servicer import MetadataStoreServicer
from lineagedb.api.status import StatusInterceptor
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc


class _FlakyStore:
    """Answers every call with ABORTED `failures` times, then succeeds."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or errors.AbortedError("deadlock detected; retry")
        self.calls = 0

    def get_artifacts(self, request: Any) -> svc.GetArtifactsResponse:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return svc.GetArtifactsResponse()


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[grpc.Server] = []

    def start(store: _FlakyStore) -> svc_grpc.MetadataStoreServiceStub:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2),
            interceptors=[StatusInterceptor(), AbortedRetry(sleep=lambda _s: None)],
        )
        svc_grpc.add_MetadataStoreServiceServicer_to_server(MetadataStoreServicer(store), server)  # type: ignore[arg-type]
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return svc_grpc.MetadataStoreServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

    yield start
    for server in servers:
        server.stop(None)


def test_aborted_call_retried_on_the_server_succeeds(serve: Any) -> None:
    store = _FlakyStore(failures=ATTEMPTS - 1)
    serve(store).GetArtifacts(svc.GetArtifactsRequest())
    assert store.calls == ATTEMPTS


def test_call_aborted_on_every_attempt_reaches_the_client_as_aborted(serve: Any) -> None:
    store = _FlakyStore(failures=10)
    with pytest.raises(grpc.RpcError) as raised:
        serve(store).GetArtifacts(svc.GetArtifactsRequest())
    assert raised.value.code() is grpc.StatusCode.ABORTED
    assert store.calls == ATTEMPTS


def test_other_errors_are_not_retried(serve: Any) -> None:
    store = _FlakyStore(failures=10, error=errors.AlreadyExistsError("duplicate"))
    with pytest.raises(grpc.RpcError) as raised:
        serve(store).GetArtifacts(svc.GetArtifactsRequest())
    assert raised.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert store.calls == 1
