"""Composition root: engine -> database -> store -> servicers -> grpc.Server."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc

from lineagedb.api.servicer import MetadataStoreServicer
from lineagedb.api.status import StatusInterceptor
from lineagedb.config import Settings
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import PoolSettings, create_engine
from lineagedb.store.unit_of_work import Database

log = logging.getLogger(__name__)


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    database: Database

    def stop(self, grace: float | None = 5.0) -> None:
        self.server.stop(grace).wait()
        self.database.dispose()


def build_server(settings: Settings) -> RunningServer:
    engine = create_engine(
        settings.database_url,
        PoolSettings(size=settings.pool_size, max_overflow=settings.pool_max_overflow),
    )
    database = Database(engine)
    prepare_database(engine, allow_upgrade=settings.enable_database_upgrade)
    store = MetadataStore(database)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.worker_threads, thread_name_prefix="rpc"),
        interceptors=[StatusInterceptor()],
        options=[
            ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
            ("grpc.max_send_message_length", settings.max_send_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    svc_grpc.add_MetadataStoreServiceServicer_to_server(MetadataStoreServicer(store), server)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"cannot listen on {settings.host}:{settings.port}")
    return RunningServer(server, port, database)


def serve(settings: Settings) -> int:
    running = build_server(settings)
    running.server.start()
    display_host = settings.host if settings.host not in ("", "0.0.0.0", "[::]") else "0.0.0.0"
    # Tests and tooling read this line to learn the port chosen for --port 0.
    print(f"LineageDB listening on {display_host}:{running.port}", flush=True)
    log.info("serving %s on %s:%d", engine_label(running.database), display_host, running.port)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received signal %d, shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    stop.wait()
    running.stop(grace=settings.shutdown_grace_s)
    log.info("stopped")
    return 0


def engine_label(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=True)
