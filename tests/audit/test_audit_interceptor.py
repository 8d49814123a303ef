"""The audit interceptor keeps a call's own outcome whatever happens to its record."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from lineagedb.api.audit import AuditInterceptor
from lineagedb.api.servicer import MetadataStoreServicer
from lineagedb.api.status import StatusInterceptor
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import create_engine
from lineagedb.store.unit_of_work import Database


def _broken_append(*_: Any) -> None:
    raise RuntimeError("the audit table is gone")


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[svc_grpc.MetadataStoreServiceStub]:
    engine = create_engine(f"sqlite:///{tmp_path}/audit.db")
    prepare_database(engine)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        interceptors=[AuditInterceptor(_broken_append, "all"), StatusInterceptor()],
    )
    svc_grpc.add_MetadataStoreServiceServicer_to_server(MetadataStoreServicer(MetadataStore(Database(engine))), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield svc_grpc.MetadataStoreServiceStub(channel)
    finally:
        server.stop(None)
        engine.dispose()


def test_a_failed_call_keeps_its_status_when_its_record_cannot_be_written(
    stub: svc_grpc.MetadataStoreServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        stub.PutArtifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=4242)]), timeout=10)
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert failed.value.details() == "no artifact type with id 4242"


def test_an_answered_read_is_withheld_when_its_record_cannot_be_written(
    stub: svc_grpc.MetadataStoreServiceStub,
) -> None:
    # --audit-reads all: a read nobody can account for is not answered (fail closed).
    with pytest.raises(grpc.RpcError) as withheld:
        stub.GetArtifacts(svc.GetArtifactsRequest(), timeout=10)
    assert withheld.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "could not be written" in (withheld.value.details() or "")
    assert "audit table is gone" not in (withheld.value.details() or "")
