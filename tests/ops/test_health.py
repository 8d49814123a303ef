"""Health follows the database; reflection works without .proto files; starting without a database."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from sqlalchemy.engine import make_url

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from tests.backends import POSTGRES_URL, scratch_database
from tests.ops.conftest import Server, TcpProxy, free_port, health_status, require_backend, start, wait_for

METADATA_SERVICE = "ml_metadata.MetadataStoreService"
# Generous liveness bounds; the measured times are printed.
BECOME_SERVING_TIMEOUT_S = 20.0


def _status_or_error(server: Server, service: str = "") -> str:
    with server.channel() as channel:
        try:
            return health_status(channel, service, timeout=2)
        except grpc.RpcError as error:
            return f"error:{error.code().name}"


def _get_types_code(server: Server) -> grpc.StatusCode:
    with server.channel() as channel:
        stub = svc_grpc.MetadataStoreServiceStub(channel)
        try:
            stub.GetArtifactTypes(svc.GetArtifactTypesRequest(), timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as error:
            return error.code()


def test_health_serving_for_both_names(tmp_path: Path, servers: list[Server]) -> None:
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", f"sqlite:///{tmp_path}/h.db"], tmp_path)
    servers.append(server)
    assert _status_or_error(server, "") == "SERVING"
    assert _status_or_error(server, METADATA_SERVICE) == "SERVING"
    assert _status_or_error(server, "no.such.Service") == "error:NOT_FOUND"
    assert server.stop() == 0


def test_reflection_lists_and_calls_methods_without_proto_files(tmp_path: Path, servers: list[Server]) -> None:
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", f"sqlite:///{tmp_path}/r.db"], tmp_path)
    servers.append(server)
    with server.channel() as channel:
        reflection_db = ProtoReflectionDescriptorDatabase(channel)
        services = set(reflection_db.get_services())
        assert {METADATA_SERVICE, "grpc.health.v1.Health"} <= services
        # A fresh pool fed only by reflection: no generated code involved.
        pool = descriptor_pool.DescriptorPool(reflection_db)
        service = pool.FindServiceByName(METADATA_SERVICE)
        assert len(service.methods) == len(svc.DESCRIPTOR.services_by_name["MetadataStoreService"].methods)

        def call(method_name: str, fields: dict[str, object]) -> object:
            method = service.methods_by_name[method_name]
            request_class = message_factory.GetMessageClass(method.input_type)
            response_class = message_factory.GetMessageClass(method.output_type)
            request = request_class()
            for key, value in fields.items():
                sub = getattr(request, key)
                if isinstance(value, dict):
                    for k, v in value.items():
                        setattr(sub, k, v)
                else:
                    setattr(request, key, value)
            rpc = channel.unary_unary(
                f"/{METADATA_SERVICE}/{method_name}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_class.FromString,
            )
            return rpc(request, timeout=10)

        put = call("PutArtifactType", {"artifact_type": {"name": "reflected.Type"}})
        type_id = put.type_id  # type: ignore[attr-defined]
        assert type_id > 0
        got = call("GetArtifactType", {"type_name": "reflected.Type"})
        assert got.artifact_type.id == type_id  # type: ignore[attr-defined]
    assert server.stop() == 0


@pytest.fixture
def pg_behind_proxy(tmp_path: Path) -> tuple[str, TcpProxy]:
    require_backend("postgresql")
    target = make_url(POSTGRES_URL)
    proxy_port = free_port()
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432), proxy_port)
    return POSTGRES_URL, proxy


def test_start_without_database_then_database_appears_then_outage(
    pg_behind_proxy: tuple[str, TcpProxy], tmp_path: Path, servers: list[Server]
) -> None:
    _, proxy = pg_behind_proxy
    with scratch_database("postgresql", str(tmp_path)) as url:
        through_proxy = make_url(url).set(host="127.0.0.1", port=proxy.port)
        server = start(
            [
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--health-interval-s",
                "0.2",
                "--database",
                through_proxy.render_as_string(hide_password=False),
            ],
            tmp_path,
        )
        servers.append(server)
        try:
            # Up, but the database is not there: NOT_SERVING and UNAVAILABLE.
            assert _status_or_error(server) == "NOT_SERVING"
            assert _status_or_error(server, METADATA_SERVICE) == "NOT_SERVING"
            assert _get_types_code(server) is grpc.StatusCode.UNAVAILABLE
            assert server.process.poll() is None

            proxy.start()
            appeared = time.monotonic()
            assert wait_for(lambda: _status_or_error(server) == "SERVING", BECOME_SERVING_TIMEOUT_S)
            print(f"time to SERVING after the database appeared: {time.monotonic() - appeared:.2f}s")
            assert _get_types_code(server) is grpc.StatusCode.OK

            # Outage: NOT_SERVING, calls UNAVAILABLE; then back.
            proxy.stop()
            assert wait_for(lambda: _status_or_error(server) == "NOT_SERVING", BECOME_SERVING_TIMEOUT_S)
            assert _get_types_code(server) is grpc.StatusCode.UNAVAILABLE
            proxy.start()
            back = time.monotonic()
            assert wait_for(lambda: _status_or_error(server) == "SERVING", BECOME_SERVING_TIMEOUT_S)
            print(f"time to SERVING after the outage ended: {time.monotonic() - back:.2f}s")
            assert wait_for(lambda: _get_types_code(server) is grpc.StatusCode.OK, BECOME_SERVING_TIMEOUT_S)
            assert server.stop() == 0
        finally:
            proxy.stop()
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()
