"""Composition root: engine -> database -> store -> servicers -> grpc.Server, plus operations.

Startup: check the configuration (a bad one exits non-zero before binding), try to
prepare the database once, bind and announce the port. If the database is down,
the server still starts: health says NOT_SERVING, MetadataStoreService calls get
UNAVAILABLE, and a background thread keeps preparing it until it answers.
Shutdown (SIGTERM/SIGINT): health NOT_SERVING, optional drain delay, stop accepting
calls and let in-flight ones finish within the grace period, dispose the pool.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import ipaddress
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy import exc as sa_exc

from lineagedb import errors
from lineagedb.api.audit import AuditInterceptor
from lineagedb.api.auth import AuthInterceptor
from lineagedb.api.mlflow_registry import MlflowArtifactsServicer, MlflowRegistryServicer
from lineagedb.api.mlflow_tracking import MlflowTrackingServicer
from lineagedb.api.read_routing import ReadRouting
from lineagedb.api.servicer import AuditServicer, DeletionServicer, LineageServicer, MetadataStoreServicer
from lineagedb.config import ConfigurationError, Settings
from lineagedb.ops.audit import load_key as load_audit_key
from lineagedb.ops.database import ensure_database_exists, parse_url, redacted
from lineagedb.ops.encryption import check_database as check_encryption
from lineagedb.ops.encryption import server_protection
from lineagedb.ops.health import DatabaseSupervisor, describe
from lineagedb.ops.http import setup as http_setup
from lineagedb.ops.http.listener import HttpStartError
from lineagedb.ops.interceptors import CallObserver, GuardedCall, StatementScope
from lineagedb.ops.metrics import Metrics
from lineagedb.ops.read_replicas import build_replica_set, register_metrics
from lineagedb.ops.retention import RetentionSchedule
from lineagedb.ops.signalled import SignalledEvent
from lineagedb.ops.tls import server_credentials
from lineagedb.proto.lineagedb.v1 import audit_pb2, deletion_pb2, lineage_pb2, mlflow_artifacts_pb2, mlflow_registry_pb2
from lineagedb.proto.lineagedb.v1 import audit_pb2_grpc as audit_grpc
from lineagedb.proto.lineagedb.v1 import deletion_pb2_grpc as deletion_grpc
from lineagedb.proto.lineagedb.v1 import lineage_pb2_grpc as lineage_grpc
from lineagedb.proto.lineagedb.v1 import mlflow_artifacts_pb2_grpc as mlflow_artifacts_grpc
from lineagedb.proto.lineagedb.v1 import mlflow_registry_pb2_grpc as mlflow_registry_grpc
from lineagedb.proto.lineagedb.v1 import mlflow_tracking_pb2 as mlflow_tracking
from lineagedb.proto.lineagedb.v1 import mlflow_tracking_pb2_grpc as mlflow_tracking_grpc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.security.access_control import AccessControl, page_token_secret
from lineagedb.security.policy import PolicyError
from lineagedb.service.answers import conventions
from lineagedb.service.answers.service import LineageAnswers
from lineagedb.service.audit import AuditQueries
from lineagedb.service.deletion import Deletion
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.service.mlflow_artifacts import MlflowArtifactAccess
from lineagedb.service.mlflow_registry import MlflowRegistry
from lineagedb.service.mlflow_tracking import MlflowTracking
from lineagedb.service.retention import Retention
from lineagedb.store import statement_count
from lineagedb.store.audit_log import AuditLog, CallContext
from lineagedb.store.bootstrap import AUDIT_REVISION, prepare_database, upgrade_command
from lineagedb.store.engine import PoolSettings, create_engine
from lineagedb.store.replicas import ReplicaSet
from lineagedb.store.unit_of_work import Database

log = logging.getLogger(__name__)

READY_LINE = "LineageDB listening on {host}:{port}"
EXIT_CONFIG = 2
EXIT_DATABASE = 3


class StartupError(Exception):
    """The server cannot start (the database refused us, or a port is taken)."""


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    database: Database
    supervisor: DatabaseSupervisor
    plaintext_port: int | None = None
    metrics: Metrics | None = None
    fatal: list[BaseException] = field(default_factory=list)
    access: AccessControl | None = None
    statements: statement_count.StatementCounter | None = None
    retention: RetentionSchedule | None = None
    http: http_setup.HttpServer | None = None
    replicas: ReplicaSet | None = None  # --read-database (store.replicas)

    def reload_security(self) -> bool:
        """SIGHUP: re-read the policy and credential files; a bad file keeps the old ones."""
        if self.access is None or not self.access.enabled:
            return True
        try:
            self.access.reload()
        except (ConfigurationError, PolicyError, errors.LineageError) as error:
            log.error("reload refused, keeping the previous policy and credentials: %s", _reason(error))
            return False
        log.info("reloaded the authorization policy and credentials")
        return True

    def stop(self, grace: float | None = 5.0, drain_s: float = 0.0) -> None:
        # Each stage is logged (DEBUG) so that a shutdown that takes too long says where.
        self.supervisor.shutdown()  # NOT_SERVING first
        log.debug("shutdown: health NOT_SERVING")
        if self.retention is not None:
            self.retention.stop()
            log.debug("shutdown: retention schedule stopped")
        if drain_s > 0:
            time.sleep(drain_s)
        if self.http is not None:  # first: its requests in flight are answered by the gRPC server
            self.http.stop(grace)
            log.debug("shutdown: HTTP listener stopped")
        self.server.stop(grace).wait()
        log.debug("shutdown: gRPC server stopped")
        if self.http is not None:
            self.http.close()
        if self.replicas is not None:
            self.replicas.stop()
        self.database.dispose()
        log.debug("shutdown: database pool disposed")
        if self.statements is not None:
            self.statements.write()


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(error: BaseException) -> str:
    return error.message if isinstance(error, errors.LineageError) else str(error)


def build_access_control(settings: Settings) -> AccessControl:
    """Authentication and the policy from the flags; a bad file or combination stops startup."""
    security = settings.security
    if security.authz_policy and not (security.authentication_enabled or security.anonymous):
        raise ConfigurationError(
            "--authz-policy needs a way to authenticate callers: --auth-tokens, --auth-jwt-jwks, "
            "--auth-mtls-identity or --auth-anonymous"
        )
    try:
        access = AccessControl(security, page_token_secret(security, os.environ))
    except (PolicyError, errors.LineageError) as error:
        raise ConfigurationError(_reason(error)) from error
    # Under --workers, worker 0 (started alone first) says it for all of them.
    if not access.enabled and not is_loopback(settings.host) and settings.worker_index in (None, 0):
        log.warning(
            "authentication is off and the server listens on %s: anyone who can reach it may read and "
            "change all metadata (see README, Security)",
            settings.host or "all interfaces",
        )
    if access.enabled and settings.tls is None and not is_loopback(settings.host) and not settings.insecure_i_know:
        raise ConfigurationError(
            f"refusing to accept credentials in plaintext on {settings.host}:{settings.port}: configure TLS "
            "(--tls-cert/--tls-key), listen on loopback, or pass --insecure-i-know (e.g. behind a TLS proxy)"
        )
    return access


def _conventions(settings: Settings) -> conventions.Conventions:
    if settings.lineage_conventions is None:
        return conventions.DEFAULT
    try:
        return conventions.load(settings.lineage_conventions)
    except errors.InvalidArgumentError as error:
        raise ConfigurationError(str(error)) from error


def build_audit_log(settings: Settings) -> AuditLog | None:
    """The audit log, when a key is configured (a file, or LINEAGEDB_AUDIT_KEY)."""
    try:
        key = load_audit_key(settings.audit_key_file)
    except errors.LineageError as error:
        raise ConfigurationError(error.message) from error
    if key is None:
        if settings.audit_reads != "denied":
            raise ConfigurationError("--audit-reads needs the audit log: --audit-key-file or LINEAGEDB_AUDIT_KEY")
        return None
    return AuditLog(key, settings.audit_reads)


def _audit_append(database: Database) -> Callable[[CallContext, str, str], None]:
    def append(call: CallContext, kind: str, outcome: str) -> None:
        database.append_audit(call, kind, outcome)

    return append


def check_listen_policy(settings: Settings) -> None:
    """Fail closed: with TLS on, a plaintext listener must stay on loopback unless overridden."""
    if settings.tls is None or settings.plaintext_port is None:
        return
    if not is_loopback(settings.plaintext_host) and not settings.insecure_i_know:
        raise ConfigurationError(
            f"refusing to serve plaintext on non-loopback {settings.plaintext_host}:{settings.plaintext_port} "
            "while TLS is configured; use a loopback --plaintext-host or pass --insecure-i-know"
        )


# The services clients call: announced by reflection and served as JSON over HTTP.
SERVED_SERVICES = (
    svc.DESCRIPTOR.services_by_name["MetadataStoreService"],
    audit_pb2.DESCRIPTOR.services_by_name["AuditService"],
    lineage_pb2.DESCRIPTOR.services_by_name["LineageService"],
    deletion_pb2.DESCRIPTOR.services_by_name["DeletionService"],
    mlflow_registry_pb2.DESCRIPTOR.services_by_name["MlflowRegistryService"],
    mlflow_artifacts_pb2.DESCRIPTOR.services_by_name["MlflowArtifactsService"],
    mlflow_tracking.DESCRIPTOR.services_by_name["TrackingService"],
)


def grpc_options(settings: Settings) -> list[tuple[str, int | str]]:
    options: dict[str, int | str] = {
        "grpc.max_receive_message_length": settings.max_receive_message_bytes,
        "grpc.max_send_message_length": settings.max_send_message_bytes,
        "grpc.so_reuseport": 1 if settings.so_reuseport else 0,
    }
    options.update(settings.connection_policy.grpc_options())
    options.update(settings.grpc_channel_arguments)  # MLMD's --grpc_channel_arguments win
    return list(options.items())


def build_server(settings: Settings) -> RunningServer:
    """Everything up to (not including) `server.start()`. Raises ConfigurationError / StartupError."""
    url = parse_url(settings.database_url)
    check_listen_policy(settings)
    access = build_access_control(settings)
    protection = server_protection(settings.security)  # encryption at rest; None: off
    try:
        pool = PoolSettings(
            size=settings.pool_size, max_overflow=settings.pool_max_overflow, timeout_s=settings.pool_timeout_s
        )
        engine = create_engine(url, pool)
    except (sa_exc.ArgumentError, ImportError) as error:
        raise ConfigurationError(f"cannot use database URL {redacted(url)}: {error}") from error
    audit = build_audit_log(settings)
    replicas = build_replica_set(settings, engine, pool)
    database = Database(engine, require_tenancy=access.enabled, audit=audit)
    database.protection = protection

    def prepare() -> None:
        if settings.create_database:
            ensure_database_exists(url)
        state = prepare_database(engine, allow_upgrade=settings.enable_database_upgrade)
        access.namespaces_available = state.has_namespaces
        if access.enabled and not state.has_namespaces:
            raise errors.FailedPreconditionError(
                "namespaces need LineageDB's schema revision 0004 or later; run: "
                + upgrade_command(engine.url.render_as_string(hide_password=True))
            )
        if audit is not None and (state.revision is None or state.revision < AUDIT_REVISION):
            raise errors.FailedPreconditionError(
                f"the audit log needs LineageDB's schema revision {AUDIT_REVISION} or later; run: "
                + upgrade_command(engine.url.render_as_string(hide_password=True))
            )
        # Keys missing, or not the ones the database was encrypted with: refuse to serve.
        check_encryption(engine, state, protection)

    running_fatal: list[BaseException] = []
    stop_event = _STOP

    def on_fatal(error: BaseException) -> None:
        running_fatal.append(error)
        stop_event.set()

    supervisor = DatabaseSupervisor(engine, prepare, settings.health_interval_s, on_fatal)
    try:
        attempts = 1 + max(settings.connection_retries, 0) if settings.fail_fast else 1
        if not supervisor.prepare_with_retries(attempts):
            if settings.fail_fast:
                raise StartupError(f"the database at {redacted(url)} is not reachable (--fail-fast)")
            log.warning("starting without the database at %s; it is retried in the background", redacted(url))
    except (errors.LineageError, sa_exc.SQLAlchemyError) as error:
        database.dispose()
        raise StartupError(f"cannot prepare the database at {redacted(url)}: {describe(error)}") from error

    metrics = Metrics(engine, lambda: supervisor.healthy) if settings.metrics_port is not None else None
    if metrics is not None and replicas is not None:
        register_metrics(metrics.registry, replicas)
    store = MetadataStore(database)
    statements = statement_count.from_environment(engine)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.worker_threads, thread_name_prefix="rpc"),
        interceptors=[
            CallObserver(metrics),
            *([StatementScope(statements)] if statements is not None else []),
            *([AuditInterceptor(_audit_append(database), audit.read_audit)] if audit is not None else []),
            AuthInterceptor(access),
            # ReadinessGate, StatusInterceptor and AbortedRetry, in that order, in one wrapper.
            GuardedCall(supervisor.ready.is_set),
            *([ReadRouting(replicas)] if replicas is not None else []),
        ],
        options=grpc_options(settings),
    )
    svc_grpc.add_MetadataStoreServiceServicer_to_server(MetadataStoreServicer(store), server)
    audit_grpc.add_AuditServiceServicer_to_server(AuditServicer(AuditQueries(database)), server)
    conventions_in_use = _conventions(settings)
    answers = LineageAnswers(database, conventions_in_use)
    lineage_grpc.add_LineageServiceServicer_to_server(LineageServicer(answers), server)
    deletion = Deletion(database, store.clock, conventions_in_use)
    deletion_grpc.add_DeletionServiceServicer_to_server(DeletionServicer(deletion), server)
    mlflow_tracking_grpc.add_TrackingServiceServicer_to_server(
        MlflowTrackingServicer(MlflowTracking(database, store.types, store.clock)), server
    )
    mlflow_registry_grpc.add_MlflowRegistryServiceServicer_to_server(
        MlflowRegistryServicer(MlflowRegistry(database, store.clock, store.types)), server
    )
    mlflow_artifacts_grpc.add_MlflowArtifactsServiceServicer_to_server(
        MlflowArtifactsServicer(MlflowArtifactAccess(database)), server
    )
    health_pb2_grpc.add_HealthServicer_to_server(supervisor.servicer, server)
    reflection.enable_server_reflection(
        (
            *(service.full_name for service in SERVED_SERVICES),
            "grpc.health.v1.Health",
            reflection.SERVICE_NAME,
        ),
        server,
    )
    address = f"{settings.host}:{settings.port}"
    port = _bind(server, address, settings)
    plaintext_port = None
    if settings.plaintext_port is not None:
        plaintext_port = _bind(server, f"{settings.plaintext_host}:{settings.plaintext_port}", settings, plain=True)
    if settings.http_port is not None:
        http_host = settings.http_host if settings.http_host is not None else settings.host
        http_setup.check(settings, access.enabled, is_loopback(http_host))
    running = RunningServer(server, port, database, supervisor, plaintext_port, metrics)
    running.fatal = running_fatal
    running.access = access
    running.statements = statements
    running.replicas = replicas
    if settings.retention_policy is not None and settings.run_scheduled_jobs:
        if settings.retention_interval_s <= 0:
            raise ConfigurationError("--retention-interval must be a positive number of seconds")
        try:
            running.retention = RetentionSchedule(
                Retention(deletion),
                settings.retention_policy,
                settings.retention_interval_s,
                Path(settings.retention_archive) if settings.retention_archive else None,
            )
        except errors.InvalidArgumentError as error:
            raise ConfigurationError(str(error)) from error
    if settings.http_port is not None:  # last: nothing after it can fail and leave its socket behind
        try:
            running.http = http_setup.build(settings, SERVED_SERVICES)
        except HttpStartError as error:
            raise StartupError(str(error)) from error
        try:
            _bind(server, running.http.grpc_target, settings, plain=True)
        except StartupError:
            running.http.stop(0)
            running.http.close()
            raise
    return running


def _bind(server: grpc.Server, address: str, settings: Settings, plain: bool = False) -> int:
    try:
        if settings.tls is not None and not plain:
            port = server.add_secure_port(address, server_credentials(settings.tls))
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as error:
        raise StartupError(f"cannot listen on {address}: {error}") from error
    if port == 0:
        raise StartupError(f"cannot listen on {address}")
    return port


# Set by signals or by a fatal database error found in the background.
_STOP = SignalledEvent()


def serve(settings: Settings) -> int:
    _STOP.clear()
    # A crash in native code (gRPC core, a database driver) or SIGABRT from a supervisor
    # that gave up waiting leaves every thread's Python stack in the log (names and
    # lines only, never values). A stderr without a file descriptor cannot take them.
    with contextlib.suppress(ValueError, OSError):
        faulthandler.enable()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received signal %d, shutting down", signum)
        _STOP.set_from_signal()  # not set(): see lineagedb.ops.signalled

    # Before anything else: a SIGTERM during startup still means a clean stop.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    running = build_server(settings)
    # SIGHUP is acted on by the main thread's wait below, not in the handler (ops.signalled).
    reload_requested = SignalledEvent()
    signal.signal(signal.SIGHUP, lambda _signum, _frame: reload_requested.set_from_signal())
    if running.replicas is not None:  # before the ready line: reads use the replicas from the first call
        running.replicas.start()
    running.server.start()
    if running.metrics is not None and settings.metrics_port is not None:
        try:
            running.metrics.serve(settings.metrics_host, settings.metrics_port)
        except OSError as error:
            running.stop(grace=0)
            raise StartupError(
                f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: {error}"
            ) from error
    if running.http is not None:
        try:
            running.http.start()
        except HttpStartError as error:
            running.stop(grace=0)
            raise StartupError(str(error)) from error
    display_host = settings.host if settings.host not in ("", "0.0.0.0", "[::]") else "0.0.0.0"
    # Tests and tooling read this line to learn the port chosen for --port 0.
    print(READY_LINE.format(host=display_host, port=running.port), flush=True)
    if running.http is not None:
        log.info("%s (%s)", running.http.ready_line, running.http.listener.scheme.upper())
        # The second line, for --http-port 0 (after the first: tools read the gRPC port there).
        print(running.http.ready_line, flush=True)
    log.info(
        "serving %s on %s:%d (%s)",
        engine_label(running.database),
        display_host,
        running.port,
        "TLS" if settings.tls else "plaintext",
    )
    if running.plaintext_port is not None:
        log.info("plaintext listener on %s:%d", settings.plaintext_host, running.plaintext_port)

    running.supervisor.start()
    if running.retention is not None:
        running.retention.start()
    # Everything allocated so far (modules, descriptors, compiled statements, caches) lives
    # as long as the process. Moved out of the collector's reach, a full collection no
    # longer walks it: a 10,000-node Provenance answer allocates enough objects to trigger
    # several, which cost about a fifth of its time before.
    gc.freeze()
    # Woken every ops.signalled.POLL_S: the kernel may deliver SIGTERM to any thread (gRPC's and the
    # drivers' threads do not block it), and a main thread blocked in a wait without a
    # timeout then never runs the Python handler (a CI run waited 60 s for a stop that way);
    # and the handler's request is an attribute the wait does not watch (ops.signalled).
    while not _STOP.wait(timeout=1.0):
        if reload_requested.take():
            running.reload_security()
    started = time.monotonic()
    running.stop(grace=settings.shutdown_grace_s, drain_s=settings.shutdown_drain_s)
    if running.fatal:
        log.error("stopped: the database cannot be used: %s", describe(running.fatal[0]))
        return EXIT_DATABASE
    log.info("stopped in %.2fs", time.monotonic() - started)
    return 0


def engine_label(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=True)
