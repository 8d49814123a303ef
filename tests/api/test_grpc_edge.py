"""The gRPC edge: servicer coverage, error -> status mapping, and errors over the wire.

The wire tests share one real server (`python -m lineagedb serve`) on SQLite for
the whole module: starting one costs ~0.5 s, and the edge behaves the same on
every backend (the service tests cover the backends). Tests use distinct names,
so they do not depend on each other's data.
"""

from __future__ import annotations

import importlib
import pkgutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

import lineagedb
from lineagedb import errors
from lineagedb.api import status
from lineagedb.api.servicer import MetadataStoreServicer
from lineagedb.api.status import StatusInterceptor, status_for
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.service.metadata_store import MetadataStore
from tests.conftest import LiveServer, start_server, stop_server

SERVICE = svc.DESCRIPTOR.services_by_name["MetadataStoreService"]
SQL_FRAGMENTS = (
    "INSERT",
    "UPDATE ",
    "SELECT",
    "UNIQUE constraint",
    "sqlite3",
    "IntegrityError",
    "Traceback",
    "psycopg",
)
GENERIC_INTERNAL = "internal error; see the server log"

StatusCode = grpc.StatusCode


# -- servicer coverage ------------------------------------------------------------------------


def test_servicer_defines_every_rpc_of_the_service_descriptor() -> None:
    rpc_names = [method.name for method in SERVICE.methods]
    assert len(rpc_names) == 52
    missing = [name for name in rpc_names if name not in MetadataStoreServicer.__dict__]
    assert missing == [], "RPCs falling through to the generated base class (UNIMPLEMENTED)"
    public = {name for name in MetadataStoreServicer.__dict__ if name[:1].isupper()}
    assert public == set(rpc_names), "servicer methods that are not RPCs of the service"


class _RecordingStore:
    """Stands in for MetadataStore: records which method got which request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.response = object()

    def __getattr__(self, name: str) -> Callable[[Any], Any]:
        def method(request: Any) -> Any:
            self.calls.append((name, request))
            return self.response

        return method


class _RecordingContext:
    def __init__(self) -> None:
        self.codes: list[Any] = []

    def set_code(self, code: Any) -> None:
        self.codes.append(code)

    def set_details(self, details: str) -> None:
        pass

    def abort(self, code: Any, details: str) -> None:
        self.codes.append(code)
        raise RuntimeError(details)


@pytest.mark.parametrize("rpc", [method.name for method in SERVICE.methods])
def test_servicer_method_delegates_to_the_matching_store_method(rpc: str) -> None:
    store = _RecordingStore()
    context = _RecordingContext()
    servicer = MetadataStoreServicer(store)  # type: ignore[arg-type]
    request = getattr(svc, SERVICE.methods_by_name[rpc].input_type.name)()
    assert getattr(servicer, rpc)(request, context) is store.response
    assert context.codes == [], "the generated base class sets UNIMPLEMENTED"
    [(called, passed)] = store.calls
    assert passed is request
    assert called.replace("_", "") == rpc.lower()
    assert callable(getattr(MetadataStore, called, None)), f"MetadataStore has no {called}"


# -- error -> status code ----------------------------------------------------------------------

EXPECTED_CODES: dict[type[errors.LineageError], grpc.StatusCode] = {
    errors.InvalidArgumentError: StatusCode.INVALID_ARGUMENT,
    errors.NotFoundError: StatusCode.NOT_FOUND,
    errors.AlreadyExistsError: StatusCode.ALREADY_EXISTS,
    errors.FailedPreconditionError: StatusCode.FAILED_PRECONDITION,
    errors.OutOfRangeError: StatusCode.OUT_OF_RANGE,
    errors.UnimplementedError: StatusCode.UNIMPLEMENTED,
    errors.AbortedError: StatusCode.ABORTED,
    errors.UnavailableError: StatusCode.UNAVAILABLE,
    errors.ResourceExhaustedError: StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExceededError: StatusCode.DEADLINE_EXCEEDED,
    errors.DataLossError: StatusCode.DATA_LOSS,
    errors.UnauthenticatedError: StatusCode.UNAUTHENTICATED,
    errors.PermissionDeniedError: StatusCode.PERMISSION_DENIED,
    errors.InternalError: StatusCode.INTERNAL,
}


def _import_every_module() -> None:
    """So that error subclasses defined anywhere in the package are registered."""
    for module in pkgutil.walk_packages(lineagedb.__path__, "lineagedb."):
        if ".proto" in module.name or ".migrations" in module.name or module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)


def _all_subclasses(cls: type[errors.LineageError]) -> list[type[errors.LineageError]]:
    found: list[type[errors.LineageError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


def test_status_for_maps_every_lineage_error_subclass() -> None:
    _import_every_module()
    unmapped: list[str] = []
    for cls in _all_subclasses(errors.LineageError):
        expected = next((EXPECTED_CODES[base] for base in cls.__mro__ if base in EXPECTED_CODES), None)
        if expected is None:
            unmapped.append(f"{cls.__module__}.{cls.__qualname__}")
            continue
        assert status_for(cls("message")) is expected, cls
    assert unmapped == [], "error classes without a status code; add them to api/status.py and this test"


def test_status_table_maps_each_direct_error_class_explicitly() -> None:
    direct = set(errors.LineageError.__subclasses__())
    assert direct <= set(status.STATUS_BY_ERROR)
    assert status.STATUS_BY_ERROR == EXPECTED_CODES


# -- the status interceptor, in process ----------------------------------------------------------


class _FailingStore:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Callable[[Any], Any]:
        def method(request: Any) -> Any:
            raise self.error

        return method


@pytest.fixture
def failing_server() -> Iterator[Callable[[Exception], svc_grpc.MetadataStoreServiceStub]]:
    """An in-process server with the real interceptor around a store that raises."""
    servers: list[grpc.Server] = []
    channels: list[grpc.Channel] = []

    def start(error: Exception) -> svc_grpc.MetadataStoreServiceStub:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=[StatusInterceptor()])
        svc_grpc.add_MetadataStoreServiceServicer_to_server(
            MetadataStoreServicer(_FailingStore(error)),  # type: ignore[arg-type]
            server,
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return svc_grpc.MetadataStoreServiceStub(channel)

    yield start
    for channel in channels:
        channel.close()
    for server in servers:
        server.stop(None)


def _rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def test_unexpected_exception_in_store_is_internal_with_generic_message(
    failing_server: Callable[[Exception], svc_grpc.MetadataStoreServiceStub],
) -> None:
    stub = failing_server(RuntimeError("SELECT secret FROM Artifact; sqlite3 said no"))
    error = _rpc_error(lambda: stub.GetArtifacts(svc.GetArtifactsRequest()))
    assert error.code() is StatusCode.INTERNAL
    assert error.details() == GENERIC_INTERNAL


def test_domain_error_in_store_keeps_its_code_and_message(
    failing_server: Callable[[Exception], svc_grpc.MetadataStoreServiceStub],
) -> None:
    stub = failing_server(errors.OutOfRangeError("edge index 7 is out of range"))
    error = _rpc_error(lambda: stub.PutLineageSubgraph(svc.PutLineageSubgraphRequest()))
    assert error.code() is StatusCode.OUT_OF_RANGE
    assert error.details() == "edge index 7 is out of range"


# -- errors over the wire, through the real server ---------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("grpc-edge") / "lineagedb.db"
    live = start_server(f"sqlite:///{path}")
    yield live
    stop_server(live)


@pytest.fixture(scope="module")
def channel(server: LiveServer) -> Iterator[grpc.Channel]:
    with server.channel() as opened:
        yield opened


@pytest.fixture
def wire(channel: grpc.Channel) -> svc_grpc.MetadataStoreServiceStub:
    return svc_grpc.MetadataStoreServiceStub(channel)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _put_type(wire: svc_grpc.MetadataStoreServiceStub) -> int:
    request = svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name=_unique("T")))
    type_id: int = wire.PutArtifactType(request).type_id
    return type_id


def _assert_clean(error: grpc.RpcError, code: grpc.StatusCode) -> None:
    assert error.code() is code, error.details()
    details = error.details() or ""
    assert details, "an error status should say what was wrong"
    leaked = [fragment for fragment in SQL_FRAGMENTS if fragment.lower() in details.lower()]
    assert leaked == [], details


def test_every_rpc_over_the_wire_is_served_by_lineagedb(wire: svc_grpc.MetadataStoreServiceStub) -> None:
    for method in SERVICE.methods:
        request = getattr(svc, method.input_type.name)()
        try:
            getattr(wire, method.name)(request, timeout=10)
        except grpc.RpcError as error:
            assert error.details() != "Method not implemented!", method.name
            assert error.code() is not StatusCode.UNKNOWN, (method.name, error.details())


def test_duplicate_artifact_over_the_wire_is_already_exists_without_sql(
    wire: svc_grpc.MetadataStoreServiceStub,
) -> None:
    type_id = _put_type(wire)
    request = svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, name="dup")])
    wire.PutArtifacts(request)
    _assert_clean(_rpc_error(lambda: wire.PutArtifacts(request)), StatusCode.ALREADY_EXISTS)


def test_update_clash_over_the_wire_is_internal_without_sql(wire: svc_grpc.MetadataStoreServiceStub) -> None:
    type_id = _put_type(wire)
    taken, mine = _unique("x"), _unique("x")
    created = wire.PutArtifacts(
        svc.PutArtifactsRequest(
            artifacts=[
                mlmd.Artifact(type_id=type_id, external_id=taken),
                mlmd.Artifact(type_id=type_id, external_id=mine),
            ]
        )
    )
    update = svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(id=created.artifact_ids[1], external_id=taken)])
    _assert_clean(_rpc_error(lambda: wire.PutArtifacts(update)), StatusCode.INTERNAL)


@pytest.mark.parametrize(
    ("rpc", "request_message", "code"),
    [
        ("GetArtifactType", svc.GetArtifactTypeRequest(type_name="no such type"), StatusCode.NOT_FOUND),
        ("PutArtifacts", svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=123456)]), StatusCode.NOT_FOUND),
        ("PutArtifacts", svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(id=123456)]), StatusCode.INVALID_ARGUMENT),
        ("PutArtifacts", svc.PutArtifactsRequest(artifacts=[mlmd.Artifact()]), StatusCode.INVALID_ARGUMENT),
        (
            "PutTypes",
            svc.PutTypesRequest(artifact_types=[mlmd.ArtifactType(name="t")], all_fields_match=False),
            StatusCode.UNIMPLEMENTED,
        ),
        ("GetContextsByArtifact", svc.GetContextsByArtifactRequest(artifact_id=123456), StatusCode.NOT_FOUND),
        (
            "GetArtifactsByExternalIds",
            svc.GetArtifactsByExternalIdsRequest(external_ids=[""]),
            StatusCode.INVALID_ARGUMENT,
        ),
        (
            "PutEvents",
            svc.PutEventsRequest(events=[mlmd.Event(artifact_id=123456, execution_id=123456, type=mlmd.Event.INPUT)]),
            StatusCode.INVALID_ARGUMENT,
        ),
        (
            "PutParentContexts",
            svc.PutParentContextsRequest(parent_contexts=[mlmd.ParentContext(child_id=5, parent_id=5)]),
            StatusCode.INVALID_ARGUMENT,
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_representative_errors_over_the_wire_have_their_codes(
    wire: svc_grpc.MetadataStoreServiceStub, rpc: str, request_message: Any, code: grpc.StatusCode
) -> None:
    _assert_clean(_rpc_error(lambda: getattr(wire, rpc)(request_message)), code)


def test_stale_optimistic_update_over_the_wire_is_failed_precondition(
    wire: svc_grpc.MetadataStoreServiceStub,
) -> None:
    type_id = _put_type(wire)
    [artifact_id] = wire.PutArtifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id)])).artifact_ids
    request = svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(id=artifact_id, last_update_time_since_epoch=1)])
    request.options.abort_if_latest_updated_time_changed = True
    _assert_clean(_rpc_error(lambda: wire.PutArtifacts(request)), StatusCode.FAILED_PRECONDITION)


def _raw_get_artifacts_by_uri(channel: grpc.Channel) -> Callable[[bytes], svc.GetArtifactsByURIResponse]:
    call: Callable[[bytes], svc.GetArtifactsByURIResponse] = channel.unary_unary(
        "/ml_metadata.MetadataStoreService/GetArtifactsByURI",
        request_serializer=lambda raw: raw,
        response_deserializer=svc.GetArtifactsByURIResponse.FromString,
    )
    return call


def test_get_artifacts_by_uri_with_deprecated_field_1_is_invalid_argument(
    wire: svc_grpc.MetadataStoreServiceStub, channel: grpc.Channel
) -> None:
    type_id = _put_type(wire)
    uri = _unique("uri")
    wire.PutArtifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, uri=uri)]))
    body = svc.GetArtifactsByURIRequest(uris=[uri]).SerializeToString()
    call = _raw_get_artifacts_by_uri(channel)
    assert [a.uri for a in call(body).artifacts] == [uri]
    field_1_string = b"\x0a\x03old"  # field 1, length-delimited, "old"
    error = _rpc_error(lambda: call(body + field_1_string))
    _assert_clean(error, StatusCode.INVALID_ARGUMENT)
    assert "uri" in (error.details() or "")
    field_1_varint = b"\x08\x01"
    _assert_clean(_rpc_error(lambda: call(field_1_varint + body)), StatusCode.INVALID_ARGUMENT)


def test_get_artifacts_by_uri_with_other_unknown_fields_ignores_them(
    wire: svc_grpc.MetadataStoreServiceStub, channel: grpc.Channel
) -> None:
    type_id = _put_type(wire)
    uri = _unique("uri")
    wire.PutArtifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, uri=uri)]))
    body = svc.GetArtifactsByURIRequest(uris=[uri]).SerializeToString()
    field_99_string = b"\x9a\x06\x01x"  # field 99, length-delimited, "x"
    assert [a.uri for a in _raw_get_artifacts_by_uri(channel)(body + field_99_string).artifacts] == [uri]


def test_corrupt_stored_value_over_the_wire_is_internal_with_generic_message(
    wire: svc_grpc.MetadataStoreServiceStub, server: LiveServer
) -> None:
    type_id = _put_type(wire)
    [artifact_id] = wire.PutArtifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id)])).artifact_ids
    path = Path(server.database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(path, timeout=10) as connection:
        connection.execute(
            "INSERT INTO ArtifactProperty (artifact_id, name, is_custom_property, proto_value) VALUES (?, ?, 1, ?)",
            (artifact_id, "broken", "////"),  # base64 of b"\xff\xff\xff": not a serialized Any
        )
    connection.close()
    error = _rpc_error(lambda: wire.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=[artifact_id])))
    assert error.code() is StatusCode.INTERNAL
    assert error.details() == GENERIC_INTERNAL
