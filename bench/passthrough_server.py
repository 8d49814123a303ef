"""MLMD's own C++ store behind a minimal pass-through Python grpcio servicer.

Runs under the official client's interpreter (``.venv-mlmd``). Every one of the 52 methods
of ``ml_metadata.MetadataStoreService`` is registered through one generic handler built from
the wheel's own descriptors and ``*_pb2`` classes: grpcio deserializes the request into the
wheel's message class, the handler serializes it and hands it to the wheel's C++ store (the
same ``metadata_store_serialized`` entry points the in-process ``MetadataStore`` uses), parses
the answer into the response class and grpcio serializes it back. That is the transport
work any Python gRPC server pays, so LineageDB vs this server isolates the store itself.

The three methods the wheel's C++ layer does not export answer UNIMPLEMENTED, as MLMD's own
server does. Prints ``passthrough listening on HOST:PORT`` when ready; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from ml_metadata.metadata_store.pywrap.metadata_store_extension import (
    metadata_store as metadata_store_serialized,
)
from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

SERVICE = "ml_metadata.MetadataStoreService"
_STATUS_BY_CODE = {code.value[0]: code for code in grpc.StatusCode}


def open_store(sqlite_path: str) -> Any:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = sqlite_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    migration = metadata_store_pb2.MigrationOptions()
    return metadata_store_serialized.CreateMetadataStore(config.SerializeToString(), migration.SerializeToString())


def make_handler(store: Any, lock: threading.Lock, method: Any) -> grpc.RpcMethodHandler:
    request_class = getattr(metadata_store_service_pb2, method.input_type.name)
    response_class = getattr(metadata_store_service_pb2, method.output_type.name)
    cc_method: Callable[[Any, bytes], tuple[bytes, bytes, int]] | None = getattr(
        metadata_store_serialized, method.name, None
    )

    def unimplemented(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method.name} is not implemented")

    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        assert cc_method is not None
        with lock:  # one SQLite connection inside the C++ store: calls go one at a time
            payload, message, code = cc_method(store, request.SerializeToString())
        if code != 0:
            context.abort(_STATUS_BY_CODE.get(code, grpc.StatusCode.UNKNOWN), message.decode("utf-8", "replace"))
        response = response_class()
        response.ParseFromString(payload)
        return response

    return grpc.unary_unary_rpc_method_handler(
        handle if cc_method is not None else unimplemented,
        request_deserializer=request_class.FromString,
        response_serializer=response_class.SerializeToString,
    )


def build_server(sqlite_path: str, host: str, port: int, workers: int) -> tuple[grpc.Server, int]:
    store = open_store(sqlite_path)
    lock = threading.Lock()
    service = metadata_store_service_pb2.DESCRIPTOR.services_by_name["MetadataStoreService"]
    handlers = {m.name: make_handler(store, lock, m) for m in service.methods}
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        handlers=[grpc.method_handlers_generic_handler(SERVICE, handlers)],
        options=[("grpc.so_reuseport", 0)],
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    return server, bound


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqlite-path", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--workers", type=int, default=16, help="gRPC worker threads (LineageDB's default)")
    args = p.parse_args()
    server, port = build_server(args.sqlite_path, args.host, args.port, args.workers)
    server.start()
    print(f"passthrough listening on {args.host}:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(2).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
