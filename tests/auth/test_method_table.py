"""Every method the server serves needs a permission from api.method_table; anything else is denied.

A new RPC (a new MLMD method, another service) that nobody added to the table must fail
here, and if it ever reached a running server it would be refused, not served unguarded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lineagedb import server as server_module
from lineagedb.api import method_table
from lineagedb.api.method_table import METHOD_PERMISSIONS, Permission, permission_for
from lineagedb.config import Settings
from lineagedb.security.settings import SecuritySettings
from tests.auth.conftest import (
    MLMD_METHODS,
    MLMD_SERVICE,
    AuthServer,
    bearer,
    make_callers,
    reflect,
    request_for,
    sqlite_url,
    start_auth_server,
    write_tokens,
)

POLICY = 'cluster_admins = ["root"]\n\n[namespaces.team-a]\nviewer = ["carol"]\n'
MLMD_PREFIX = f"/{MLMD_SERVICE.full_name}/"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    directory = tmp_path_factory.mktemp("method-table")
    running = start_auth_server(directory, make_callers({"root": (), "carol": ()}), POLICY, ["team-a"])
    yield running
    running.close()


def test_every_method_the_server_reflects_is_in_the_table(live: AuthServer) -> None:
    reflected = reflect(live.channel, bearer(live.token("carol")))
    assert MLMD_SERVICE.full_name in reflected
    assert "grpc.health.v1.Health" in reflected
    methods = [method for service in reflected.values() for method in service]
    assert len(methods) >= len(MLMD_METHODS) + 2
    missing = sorted(method for method in methods if permission_for(method) is None)
    assert not missing, f"served but not in METHOD_PERMISSIONS (they are denied to everyone): {missing}"
    live.assert_log_has_no_secret()


def test_every_mlmd_method_is_in_the_table_and_writes_are_never_reads() -> None:
    assert len(MLMD_METHODS) == 52
    for name in MLMD_METHODS:
        permission = permission_for(MLMD_PREFIX + name)
        assert permission is not None, name
        if name.startswith("Put"):
            assert permission in (Permission.WRITE, Permission.WRITE_TYPES), (name, permission)
        else:
            assert name.startswith("Get"), name
            assert permission is Permission.READ, (name, permission)
    for name in ("PutArtifactType", "PutExecutionType", "PutContextType", "PutTypes"):
        assert permission_for(MLMD_PREFIX + name) is Permission.WRITE_TYPES
    # Nothing outside health and reflection is public or merely "authenticated".
    for method, permission in METHOD_PERMISSIONS.items():
        if permission is Permission.PUBLIC:
            assert method.startswith("/grpc.health.v1.Health/"), method
        if permission is Permission.AUTHENTICATED:
            assert "/grpc.reflection." in method, method


def test_an_unknown_method_has_no_permission() -> None:
    for method in (
        "/x.Y/Z",
        "",
        MLMD_PREFIX + "getartifacts",  # lookups are exact: no case folding
        MLMD_PREFIX + "GetArtifacts/",
        MLMD_PREFIX.rstrip("/"),
        "/ml_metadata.MetadataStoreService/PutArtifactsX",
        "ml_metadata.MetadataStoreService/GetArtifacts",  # no leading slash
    ):
        assert permission_for(method) is None, method


# ----------------------------------------------------------------------- in process


class RecordingServer:
    """A grpc.Server that remembers which services and methods were registered on it."""

    def __init__(self, inner: grpc.Server) -> None:
        self._inner = inner
        self.registered: dict[str, set[str]] = {}
        self.generic: list[grpc.GenericRpcHandler] = []

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.registered.setdefault(service, set()).update(handlers)
        self._inner.add_registered_method_handlers(service, handlers)

    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        self.generic.extend(handlers)
        self._inner.add_generic_rpc_handlers(handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass
class InProcess:
    recorder: RecordingServer
    port: int
    root_token: str

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.port}")


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    directory = tmp_path_factory.mktemp("in-process")
    callers = make_callers({"root": ()})
    tokens = write_tokens(directory / "tokens", callers.values())
    policy = directory / "policy.toml"
    policy.write_text(POLICY)
    settings = Settings(
        host="127.0.0.1",
        port=0,
        database_url=sqlite_url(directory),
        worker_threads=4,
        security=SecuritySettings(tokens_file=str(tokens), authz_policy=str(policy)),
    )
    recorders: list[RecordingServer] = []
    real_server = grpc.server

    def recording(*args: Any, **kwargs: Any) -> Any:
        recorders.append(RecordingServer(real_server(*args, **kwargs)))
        return recorders[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(grpc, "server", recording)
        running = server_module.build_server(settings)
    assert len(recorders) == 1
    running.server.start()
    try:
        yield InProcess(recorders[0], running.port, callers["root"].token)
    finally:
        running.stop(grace=0)


def test_every_registered_method_is_in_the_table_and_reflected(in_process: InProcess) -> None:
    recorder = in_process.recorder
    registered = {f"/{service}/{method}" for service, methods in recorder.registered.items() for method in methods}
    assert len(registered) >= len(MLMD_METHODS) + 2
    missing = sorted(method for method in registered if permission_for(method) is None)
    assert not missing, f"registered but not in METHOD_PERMISSIONS: {missing}"
    # Every generic handler belongs to a service registered by name, so nothing is served
    # that the listing above did not see.
    for handler in recorder.generic:
        service_name = getattr(handler, "service_name", None)
        assert callable(service_name), f"a generic handler without a service name: {handler!r}"
        assert service_name() in recorder.registered, service_name()
    # And reflection (what the live-server test enumerates) lists exactly these services and methods.
    with in_process.channel() as channel:
        reflected = reflect(channel, bearer(in_process.root_token))
    assert set(reflected) == set(recorder.registered)
    assert {method for methods in reflected.values() for method in methods} == registered


def test_the_interceptor_denies_a_served_method_missing_from_the_table(
    in_process: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc

    removed = MLMD_PREFIX + "GetArtifactTypes"
    with in_process.channel() as channel:
        stub = svc_grpc.MetadataStoreServiceStub(channel)
        metadata = bearer(in_process.root_token)
        # Served and allowed while it is in the table (the cluster admin may do anything).
        stub.GetArtifactTypes(request_for("GetArtifactTypes"), metadata=metadata, timeout=10)
        monkeypatch.delitem(method_table.METHOD_PERMISSIONS, removed)
        monkeypatch.delitem(method_table.METHOD_PERMISSIONS, "/grpc.health.v1.Health/Check")
        with pytest.raises(grpc.RpcError) as denied:
            stub.GetArtifactTypes(request_for("GetArtifactTypes"), metadata=metadata, timeout=10)
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "not in the method table" in (denied.value.details() or "")
        # A public method is denied as well once it is missing, with or without credentials.
        health = health_pb2_grpc.HealthStub(channel)
        for md in ((), metadata):
            with pytest.raises(grpc.RpcError) as health_denied:
                health.Check(health_pb2.HealthCheckRequest(), metadata=md, timeout=10)
            assert health_denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
        # Other methods are unaffected.
        stub.GetContextTypes(request_for("GetContextTypes"), metadata=metadata, timeout=10)
        monkeypatch.undo()
        stub.GetArtifactTypes(request_for("GetArtifactTypes"), metadata=metadata, timeout=10)
        assert (
            health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        )
