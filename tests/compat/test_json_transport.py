"""The official client's scenario answers the same over JSON as over gRPC.

The official ml-metadata client speaks only gRPC, so a bridge (a gRPC server inside this
test) turns each of its calls into `POST /api/v1/ml_metadata.MetadataStoreService/<Method>`
on a LineageDB server's HTTP listener, parses the JSON answer back into the response
message, and turns a JSON error into the same gRPC status and message. The scenario's
every step (values, errors and field presence) through the bridge must equal the same
scenario run over gRPC against another fresh server. The transport does not depend on
the backend, so this runs on SQLite only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from tests.compat.conftest import ScenarioRunner
from tests.compat.test_official_client import SUITES, compare_steps
from tests.conftest import start_server, stop_server
from tests.http.conftest import MLMD, CallError, JsonCaller, message_class, start_http

pytestmark = pytest.mark.compat

# The scenario packs a StringValue into a proto property: JSON names an Any's type, so the
# bridge, like any JSON client, must know it.
assert wrappers_pb2.StringValue

# Steps whose request cannot be said in JSON: the JSON mapping has no form for unknown
# fields, so the bridge's request arrives without them.
NOT_SAYABLE_IN_JSON = {
    "artifacts.get_by_uri_deprecated_field": "sends the removed field 1 as an unknown field, which gRPC refuses",
}


def _bridge_handler(caller: JsonCaller) -> grpc.GenericRpcHandler:
    service = svc.DESCRIPTOR.services_by_name["MetadataStoreService"]
    handlers: dict[str, grpc.RpcMethodHandler] = {}

    def forward(path: str) -> Callable[[Message, grpc.ServicerContext], Message]:
        def call(request: Message, context: grpc.ServicerContext) -> Message:
            try:
                return caller.call(path, request)
            except CallError as error:
                context.abort(error.code, error.message)
                raise  # unreachable: abort raises

        return call

    for method in service.methods:
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            forward(f"{MLMD}/{method.name}"),
            request_deserializer=message_class(method.input_type).FromString,
            response_serializer=lambda message: message.SerializeToString(),
        )
    return grpc.method_handlers_generic_handler(MLMD, handlers)


@pytest.fixture
def bridge_port(tmp_path: Path) -> Iterator[int]:
    """A gRPC port whose calls go to a fresh server's JSON API."""
    http = start_http(f"sqlite:///{tmp_path / 'json.sqlite'}", tmp_path)
    client = httpx.Client(timeout=60)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((_bridge_handler(JsonCaller(client, http.base)),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None)
        client.close()
        assert http.stop() == 0


@pytest.mark.parametrize("suite", SUITES)
def test_the_scenario_over_json_answers_as_over_grpc(
    scenario_runner: ScenarioRunner, bridge_port: int, tmp_path: Path, suite: str
) -> None:
    direct = start_server(f"sqlite:///{tmp_path / 'grpc.sqlite'}")
    try:
        host, port = direct.address.rsplit(":", 1)
        over_grpc = scenario_runner.grpc(host, int(port), suite=suite)
    finally:
        assert stop_server(direct) == 0
    over_json = scenario_runner.grpc("127.0.0.1", bridge_port, suite=suite)
    mismatches = [m for m in compare_steps(over_grpc, over_json) if m.name not in NOT_SAYABLE_IN_JSON]
    assert not mismatches, "\n\n".join(m.render() for m in mismatches[:10])
    assert len(over_json) > 50
