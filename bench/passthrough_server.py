"""MLMD's own C++ store behind a minimal pass-through Python grpcio servicer.

Runs under the official client's interpreter (``.venv-mlmd``). Every one of the 52 methods
of ``ml_metadata.MetadataStoreService`` is registered through one generic handler built from
the wheel's own descriptors and ``*_pb2`` classes: grpcio deserializes the request into the
wheel's message class, the handler serializes it and hands it to the wheel's C++ store (the
same ``metadata_store_serialized`` entry points the in-process ``MetadataStore`` uses), parses
the answer into the response class and grpcio serializes it back. That is the transport
work any Python gRPC server pays, so LineageDB vs this server isolates the store itself.

The store is a SQLite file (``--sqlite-path``) or a PostgreSQL or MySQL/MariaDB database
(``--database-url postgresql://user@host:port/db`` or ``mysql://...``; the database must
exist): MLMD's C++ core then holds one kept connection, so LineageDB on a server backend is
compared with MLMD's core on the same database.

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
from urllib.parse import unquote, urlsplit

import grpc
from ml_metadata.metadata_store.pywrap.metadata_store_extension import (
    metadata_store as metadata_store_serialized,
)
from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

SERVICE = "ml_metadata.MetadataStoreService"
_STATUS_BY_CODE = {code.value[0]: code for code in grpc.StatusCode}


def connection_config(sqlite_path: str | None, database_url: str | None) -> Any:
    config = metadata_store_pb2.ConnectionConfig()
    if database_url is None:
        assert sqlite_path is not None
        config.sqlite.filename_uri = sqlite_path
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return config
    url = urlsplit(database_url)
    scheme = url.scheme.split("+", 1)[0]
    database = unquote(url.path.lstrip("/"))
    if scheme in ("postgresql", "postgres"):
        pg = config.postgresql
        pg.host = url.hostname or "127.0.0.1"
        pg.port = str(url.port or 5432)
        pg.user = unquote(url.username or "postgres")
        pg.password = unquote(url.password or "")
        pg.dbname = database
        pg.skip_db_creation = True
    elif scheme in ("mysql", "mariadb"):
        my = config.mysql
        my.host = url.hostname or "127.0.0.1"
        my.port = url.port or 3306
        my.user = unquote(url.username or "root")
        my.password = unquote(url.password or "")
        my.database = database
        my.skip_db_creation = True
    else:
        raise SystemExit(f"unsupported --database-url scheme: {url.scheme}")
    return config


def open_store(sqlite_path: str | None, database_url: str | None = None) -> Any:
    config = connection_config(sqlite_path, database_url)
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
        with lock:  # one connection inside the C++ store: calls go one at a time
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


def build_server(
    sqlite_path: str | None, host: str, port: int, workers: int, database_url: str | None = None
) -> tuple[grpc.Server, int]:
    store = open_store(sqlite_path, database_url)
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
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite-path")
    where.add_argument("--database-url", help="postgresql://user[:pw]@host:port/db or mysql://...")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--workers", type=int, default=16, help="gRPC worker threads (LineageDB's default)")
    args = p.parse_args()
    server, port = build_server(args.sqlite_path, args.host, args.port, args.workers, args.database_url)
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
