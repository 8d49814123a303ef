"""Settings: one frozen object built from command-line flags, then LINEAGEDB_* variables, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lineagedb.security.settings import SecuritySettings

DEFAULT_PORT = 8080
DEFAULT_SQLITE_FILE = "lineagedb.sqlite"
# KFP raised MLMD's 4 MiB inbound limit to 100 MiB for large lineage writes.
DEFAULT_MAX_MESSAGE_BYTES = 100 * 1024 * 1024
ENV_PREFIX = "LINEAGEDB_"


def default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"


DEFAULT_ARTIFACT_DIRECTORY = "mlartifacts"  # MLflow server's own default name


def default_artifact_root(database: str) -> str:
    """Where MLflow artifacts go without --artifact-root: next to a SQLite database file (so the
    two travel together), else under the working directory. Absolute, so every worker agrees."""
    if database.startswith("sqlite:///") and ":memory:" not in database and len(database) > len("sqlite:///"):
        path = database[len("sqlite:///") :].split("?", 1)[0]
        if path:
            return str(Path(path).absolute().parent / DEFAULT_ARTIFACT_DIRECTORY)
    return str(Path.cwd() / DEFAULT_ARTIFACT_DIRECTORY)


@dataclass(frozen=True)
class TlsSettings:
    """PEM material for the gRPC port (already read from files)."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None
    require_client_cert: bool = False
    origin: str = "flags"  # "flags" or "ssl_config": for messages only

    def __repr__(self) -> str:  # never print key material
        return (
            f"TlsSettings(client_ca={'yes' if self.client_ca else 'no'}, "
            f"require_client_cert={self.require_client_cert}, origin={self.origin})"
        )


@dataclass(frozen=True)
class ConnectionPolicy:
    """HTTP/2 keepalive and connection-age limits (gRPC core channel arguments)."""

    # Close a connection that has had no call for this long (reclaims idle clients).
    max_connection_idle_ms: int = 5 * 60 * 1000
    # Make clients reconnect periodically (spreads load after scaling); 0 disables.
    max_connection_age_ms: int = 0
    # In-flight calls get this long to finish after max_connection_age.
    max_connection_age_grace_ms: int = 60 * 1000
    # The server pings an idle client this often to find dead peers, and waits this long for the answer.
    keepalive_time_ms: int = 60 * 1000
    keepalive_timeout_ms: int = 20 * 1000
    # Clients may not ping more often than this without calls; past max_ping_strikes they get GOAWAY.
    min_recv_ping_interval_without_data_ms: int = 5 * 60 * 1000
    max_ping_strikes: int = 2

    def grpc_options(self) -> list[tuple[str, int]]:
        options = [
            ("grpc.max_connection_idle_ms", self.max_connection_idle_ms),
            ("grpc.max_connection_age_grace_ms", self.max_connection_age_grace_ms),
            ("grpc.keepalive_time_ms", self.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", 0),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", self.min_recv_ping_interval_without_data_ms),
            ("grpc.http2.max_ping_strikes", self.max_ping_strikes),
        ]
        if self.max_connection_age_ms > 0:
            options.append(("grpc.max_connection_age_ms", self.max_connection_age_ms))
        return options


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    database_url: str = field(default_factory=default_database_url)
    worker_threads: int = 16
    pool_size: int = 12
    pool_max_overflow: int = 0
    # Seconds a call waits for a free database connection before RESOURCE_EXHAUSTED.
    pool_timeout_s: float = 10.0
    enable_database_upgrade: bool = False
    max_receive_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_send_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    shutdown_grace_s: float = 10.0
    log_level: str = "INFO"
    # --- operations (issue 6) ---
    log_format: str = "text"  # "text" or "json"
    # MLMD: create the database named in the URL if it does not exist (MySQL / PostgreSQL).
    create_database: bool = False
    # MLMD: retries while schema preparation answers ABORTED (another server is initializing it).
    connection_retries: int = 5
    # Exit at startup when the database cannot be reached instead of waiting for it.
    fail_fast: bool = False
    tls: TlsSettings | None = None
    # An additional plaintext listener (e.g. for local health probes next to a TLS port).
    plaintext_port: int | None = None
    plaintext_host: str = "127.0.0.1"
    insecure_i_know: bool = False
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    health_interval_s: float = 1.0
    # Seconds between NOT_SERVING and closing the port on SIGTERM (load balancers notice first).
    shutdown_drain_s: float = 0.0
    connection_policy: ConnectionPolicy = field(default_factory=ConnectionPolicy)
    # Raw gRPC channel arguments (MLMD --grpc_channel_arguments); applied last, so they win.
    grpc_channel_arguments: tuple[tuple[str, int | str], ...] = ()
    workers: int = 1
    so_reuseport: bool = False
    # This process's index under `--workers` (ops.workers); None: the only process.
    worker_index: int | None = None
    # Authentication and authorization (off unless configured).
    security: SecuritySettings = field(default_factory=SecuritySettings)
    # The audit log (store.audit_log): on when a key is given, in this file or LINEAGEDB_AUDIT_KEY.
    audit_key_file: str | None = None
    audit_reads: str = "denied"  # off | denied | all
    # A JSON file naming the properties that hold digests, code versions, ... (service.answers.conventions).
    lineage_conventions: str | None = None
    # Retention run inside the server (ops.retention.RetentionSchedule); only by worker 0.
    retention_policy: str | None = None
    retention_interval_s: float = 3600.0
    retention_archive: str | None = None  # a directory: each scheduled run archives before it deletes
    run_scheduled_jobs: bool = True
    # JSON over HTTP (lineagedb.ops.http): off unless a port is given; the host defaults to `host`.
    http_port: int | None = None
    http_host: str | None = None
    # MLflow's proxied artifacts (lineagedb.ops.http.mlflow_artifacts): files under this directory.
    artifact_root: str = "mlartifacts"
    # PostgreSQL streaming replicas for read-only calls (store.replicas); none: all on the primary.
    read_database_urls: tuple[str, ...] = ()
    read_max_lag_s: float = 5.0


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"{ENV_PREFIX}{name}", default)


class ConfigurationError(Exception):
    """The server cannot start with these settings; the message says what to change."""
