"""Command line: `lineagedb serve`, `lineagedb db upgrade|current` and `lineagedb token create`.

Every `serve` option also comes from a LINEAGEDB_* environment variable (shown in
`--help`); the command line wins. MLMD's server flags are accepted as MLMD spells
them (`--grpc_port=8080 --mysql_config_host=...`), see lineagedb.ops.mlmd_flags.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from lineagedb import errors
from lineagedb.config import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ENV_PREFIX,
    ConfigurationError,
    ConnectionPolicy,
    Settings,
    TlsSettings,
    default_artifact_root,
    default_database_url,
    env,
)
from lineagedb.ops import mlmd_flags
from lineagedb.ops.logs import LOG_FORMATS, configure_logging
from lineagedb.security.settings import DEFAULT_JWT_ALGORITHMS, MTLS_IDENTITY_SOURCES, SecuritySettings
from lineagedb.store.audit_log import READ_AUDIT_MODES

log = logging.getLogger("lineagedb.cli")

EXIT_CONFIG = 2
EXIT_STARTUP = 3
PASSWORD_WARNING = (
    "a database password was given on the command line, where other local users can read it (ps, /proc); "
    "use LINEAGEDB_DATABASE_PASSWORD or LINEAGEDB_DATABASE_PASSWORD_FILE instead"
)


def _env_default(name: str, convert: Callable[[str], Any], default: Any) -> Any:
    raw = os.environ.get(f"{ENV_PREFIX}{name}")
    if raw is None or raw == "":
        return default
    try:
        return convert(raw)
    except (ValueError, argparse.ArgumentTypeError) as error:
        raise ConfigurationError(f"{ENV_PREFIX}{name}={raw!r} is not valid: {error}") from error


def _option(
    group: Any,
    *flags: str,
    env_name: str,
    help: str,
    type: Callable[[str], Any] = str,
    default: Any = None,
    boolean: bool = False,
    **kwargs: Any,
) -> None:
    convert = mlmd_flags.parse_bool if boolean else type
    value = _env_default(env_name, convert, default)
    shown = f"; default {default}" if default not in (None, "", False) else ""
    text = f"{help} [env {ENV_PREFIX}{env_name}{shown}]"
    if boolean:
        group.add_argument(
            *flags, nargs="?", const=True, type=mlmd_flags.parse_bool, default=value, help=text, **kwargs
        )
    else:
        group.add_argument(*flags, type=type, default=value, help=text, **kwargs)


def _workers_value(text: str) -> int | str:
    from lineagedb.ops.workers import parse_workers

    try:
        return parse_workers(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _serve_parser(sub: Any) -> argparse.ArgumentParser:
    serve: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the gRPC server",
        description="Run the MLMD-compatible gRPC server. Booleans accept --flag, --flag=true and --flag=false.",
    )
    net = serve.add_argument_group("listening")
    _option(net, "--host", env_name="HOST", default="0.0.0.0", help="address to listen on")
    _option(
        net,
        "--port",
        "--grpc_port",
        dest="port",
        env_name="PORT",
        type=int,
        default=8080,
        help="gRPC port (0 picks a free one; --grpc_port is MLMD's spelling)",
    )
    _option(
        net,
        "--http-port",
        env_name="HTTP_PORT",
        type=int,
        help="also serve JSON over HTTP (HTTPS with --tls-cert) on this port: POST /api/v1/<Service>/<Method> "
        "for every RPC, the OpenAPI document at /api/v1/openapi.json (off unless set; 0 picks a free one)",
    )
    _option(net, "--http-host", env_name="HTTP_HOST", help="address of the HTTP listener (default: --host)")
    _option(
        net,
        "--artifact-root",
        env_name="ARTIFACT_ROOT",
        help="where the MLflow artifacts uploaded through /api/2.0/mlflow-artifacts on the HTTP listener live: a "
        "directory, or s3://bucket[/prefix] (endpoint from MLFLOW_S3_ENDPOINT_URL or AWS_ENDPOINT_URL, credentials "
        "from the AWS chain; needs lineagedb[s3]) (default: mlartifacts next to a SQLite database file, else "
        "./mlartifacts)",
    )
    _option(
        net,
        "--workers",
        env_name="WORKERS",
        type=_workers_value,
        default="auto",
        help="server processes sharing the port (SO_REUSEPORT): a positive number, or auto for one per usable "
        "CPU (1 with an in-memory SQLite database); worker i serves metrics on --metrics-port + i",
    )
    _option(
        net,
        "--worker-threads",
        "--workers-threads",
        dest="worker_threads",
        env_name="WORKER_THREADS",
        type=int,
        default=16,
        help="RPC threads per process",
    )
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--worker-port", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--worker-http-port", type=int, default=None, help=argparse.SUPPRESS)

    db = serve.add_argument_group("database")
    db.add_argument(
        "--database",
        default=None,
        help="SQLAlchemy URL: sqlite:////abs/path.db, postgresql://user@host/db, mysql://user@host/db "
        f"[env {ENV_PREFIX}DATABASE_URL; default lineagedb.sqlite in the working directory; "
        "MLMD connection flags take precedence over the variable]",
    )
    _option(
        db,
        "--database-password-file",
        env_name="DATABASE_PASSWORD_FILE",
        help=f"file holding the database password (replaces any in the URL); or set {ENV_PREFIX}DATABASE_PASSWORD",
    )
    _option(
        db,
        "--enable-database-upgrade",
        "--enable_database_upgrade",
        dest="enable_database_upgrade",
        env_name="ENABLE_DATABASE_UPGRADE",
        boolean=True,
        default=False,
        help="apply pending schema migrations at startup",
    )
    db.add_argument(
        "--read-database",
        action="append",
        default=None,
        metavar="URL",
        help="a PostgreSQL streaming replica of --database for read-only calls (repeat for several); a "
        "client reads its own writes, a lagging or failed replica is skipped (see README, Scaling out) "
        f"[env {ENV_PREFIX}READ_DATABASE, comma-separated]",
    )
    _option(
        db,
        "--read-max-lag-s",
        env_name="READ_MAX_LAG_S",
        type=float,
        default=5.0,
        help="a replica further behind the primary than this many seconds serves no reads",
    )
    # 12 kept open and none opened under load: with an overflow, a busy server's pool (fewer
    # connections than its 16 RPC threads) closed and reopened connections hundreds of times a
    # minute, each a new database backend and its prepared statements again.
    _option(db, "--pool-size", env_name="POOL_SIZE", type=int, default=12, help="database connections kept open")
    _option(
        db,
        "--pool-max-overflow",
        env_name="POOL_MAX_OVERFLOW",
        type=int,
        default=0,
        help="extra connections opened under load (at most --pool-size + this many per process)",
    )
    _option(
        db,
        "--pool-timeout",
        env_name="POOL_TIMEOUT",
        type=float,
        default=10.0,
        help="seconds a call waits for a free database connection before RESOURCE_EXHAUSTED",
    )
    _option(
        db,
        "--fail-fast",
        env_name="FAIL_FAST",
        boolean=True,
        default=False,
        help="exit at startup if the database cannot be reached (after --metadata_store_connection_retries), "
        "instead of starting NOT_SERVING and waiting for it",
    )
    _option(
        db,
        "--health-interval-s",
        env_name="HEALTH_INTERVAL_S",
        type=float,
        default=1.0,
        help="seconds between database health pings",
    )

    tls = serve.add_argument_group("TLS (or MLMD's ssl_config in --metadata_store_server_config_file)")
    _option(tls, "--tls-cert", env_name="TLS_CERT", help="server certificate chain (PEM file)")
    _option(tls, "--tls-key", env_name="TLS_KEY", help="server private key (PEM file, unencrypted)")
    _option(
        tls,
        "--tls-client-ca",
        env_name="TLS_CLIENT_CA",
        help="CA for client certificates; with it, clients must present a certificate it signed (mTLS)",
    )
    _option(
        tls,
        "--tls-require-client-cert",
        env_name="TLS_REQUIRE_CLIENT_CERT",
        boolean=True,
        default=None,
        help="require client certificates (default: true when --tls-client-ca is given)",
    )
    _option(
        tls,
        "--plaintext-port",
        env_name="PLAINTEXT_PORT",
        type=int,
        help="also listen without TLS on this port (e.g. for local health probes)",
    )
    _option(
        tls,
        "--plaintext-host",
        env_name="PLAINTEXT_HOST",
        default="127.0.0.1",
        help="address of the plaintext listener; non-loopback needs --insecure-i-know when TLS is on",
    )
    _option(
        tls,
        "--insecure-i-know",
        env_name="INSECURE_I_KNOW",
        boolean=True,
        default=False,
        help="allow a plaintext listener on a non-loopback address next to TLS",
    )

    ops = serve.add_argument_group("observability")
    _option(
        ops,
        "--log-level",
        env_name="LOG_LEVEL",
        default="INFO",
        help="DEBUG (one line per call), INFO, WARNING or ERROR",
    )
    _option(
        ops,
        "--log-format",
        env_name="LOG_FORMAT",
        default="text",
        choices=LOG_FORMATS,
        help="text or json (one JSON object per line)",
    )
    _option(
        ops,
        "--metrics-port",
        env_name="METRICS_PORT",
        type=int,
        help="serve Prometheus metrics at http://HOST:PORT/metrics (off unless set)",
    )
    _option(ops, "--metrics-host", env_name="METRICS_HOST", default="0.0.0.0", help="address of the metrics server")

    limits = serve.add_argument_group("limits")
    _option(
        limits,
        "--max-receive-message-bytes",
        env_name="MAX_RECEIVE_MESSAGE_BYTES",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest request accepted (larger: RESOURCE_EXHAUSTED)",
    )
    _option(
        limits,
        "--max-send-message-bytes",
        env_name="MAX_SEND_MESSAGE_BYTES",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest response sent (larger: RESOURCE_EXHAUSTED)",
    )
    policy = ConnectionPolicy()
    _option(
        limits,
        "--max-connection-idle-ms",
        env_name="MAX_CONNECTION_IDLE_MS",
        type=int,
        default=policy.max_connection_idle_ms,
        help="close connections without calls after this long",
    )
    _option(
        limits,
        "--max-connection-age-ms",
        env_name="MAX_CONNECTION_AGE_MS",
        type=int,
        default=policy.max_connection_age_ms,
        help="ask clients to reconnect after this long (0: never)",
    )
    _option(
        limits,
        "--keepalive-time-ms",
        env_name="KEEPALIVE_TIME_MS",
        type=int,
        default=policy.keepalive_time_ms,
        help="ping idle clients this often to detect dead peers",
    )
    _option(
        limits,
        "--min-ping-interval-ms",
        env_name="MIN_PING_INTERVAL_MS",
        type=int,
        default=policy.min_recv_ping_interval_without_data_ms,
        help="clients pinging more often without calls get strikes",
    )
    _option(
        limits,
        "--max-ping-strikes",
        env_name="MAX_PING_STRIKES",
        type=int,
        default=policy.max_ping_strikes,
        help="strikes before a GOAWAY (too_many_pings)",
    )
    _option(
        limits,
        "--shutdown-grace-s",
        env_name="SHUTDOWN_GRACE_S",
        type=float,
        default=10.0,
        help="on SIGTERM, seconds in-flight calls get to finish",
    )
    _option(
        limits,
        "--shutdown-drain-s",
        env_name="SHUTDOWN_DRAIN_S",
        type=float,
        default=0.0,
        help="on SIGTERM, seconds between NOT_SERVING and closing the port",
    )

    _security_arguments(serve)
    from lineagedb.ops.encryption import add_serve_arguments as add_encryption_arguments

    add_encryption_arguments(serve, _option)
    mlmd_flags.add_arguments(serve, lambda name: os.environ.get(f"{ENV_PREFIX}{name.upper()}") or None)
    return serve


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _security_arguments(serve: argparse.ArgumentParser) -> None:
    # JWT flags default to None (not SecuritySettings' defaults) so that giving one without
    # --auth-jwt-jwks can be refused instead of silently doing nothing.
    auth = serve.add_argument_group("authentication and authorization", "off unless a credential source is given")
    _option(auth, "--auth-tokens", env_name="AUTH_TOKENS", metavar="FILE", help="static bearer tokens (SHA-256 hashes)")
    _option(
        auth,
        "--auth-jwt-jwks",
        env_name="AUTH_JWT_JWKS",
        metavar="FILE_OR_URL",
        help="accept JWT bearer tokens signed by a key in this JSON Web Key Set (file or http(s) URL)",
    )
    _option(auth, "--auth-jwt-issuer", env_name="AUTH_JWT_ISSUER", metavar="ISSUER", help="required 'iss' of JWTs")
    _option(
        auth, "--auth-jwt-audience", env_name="AUTH_JWT_AUDIENCE", metavar="AUDIENCE", help="required 'aud' of JWTs"
    )
    _option(
        auth,
        "--auth-jwt-principal-claim",
        env_name="AUTH_JWT_PRINCIPAL_CLAIM",
        metavar="CLAIM",
        help="claim naming the caller; dotted paths reach nested claims (default sub)",
    )
    _option(
        auth,
        "--auth-jwt-groups-claim",
        env_name="AUTH_JWT_GROUPS_CLAIM",
        metavar="CLAIM",
        help="claim listing groups (default groups)",
    )
    _option(
        auth,
        "--auth-jwt-namespace-claim",
        env_name="AUTH_JWT_NAMESPACE_CLAIM",
        metavar="CLAIM",
        help="claim giving the caller's default namespace, e.g. kubernetes.io.namespace",
    )
    _option(
        auth,
        "--auth-jwt-algorithms",
        env_name="AUTH_JWT_ALGORITHMS",
        metavar="ALG,...",
        type=_comma_list,
        help=f"comma-separated JWT algorithms accepted (default {','.join(DEFAULT_JWT_ALGORITHMS)})",
    )
    _option(
        auth,
        "--auth-jwt-leeway-s",
        env_name="AUTH_JWT_LEEWAY_S",
        metavar="SECONDS",
        type=float,
        help="clock skew tolerated on exp/nbf, in seconds (default 30)",
    )
    _option(
        auth,
        "--auth-mtls-identity",
        env_name="AUTH_MTLS_IDENTITY",
        choices=MTLS_IDENTITY_SOURCES,
        help="name callers by this field of their verified client certificate (needs --tls-client-ca)",
    )
    _option(
        auth,
        "--auth-anonymous",
        env_name="AUTH_ANONYMOUS",
        metavar="ROLE@NAMESPACE",
        help="grant calls without credentials this role (viewer, editor or admin) in this namespace",
    )
    _option(auth, "--authz-policy", env_name="AUTHZ_POLICY", metavar="FILE", help="authorization policy file")
    _option(
        auth,
        "--page-token-key-file",
        env_name="PAGE_TOKEN_KEY_FILE",
        metavar="FILE",
        help=f"key that signs page tokens (or {ENV_PREFIX}PAGE_TOKEN_KEY)",
    )
    audit = serve.add_argument_group("audit log", f"on when a key is given (--audit-key-file or {ENV_PREFIX}AUDIT_KEY)")
    _option(
        audit,
        "--audit-key-file",
        env_name="AUDIT_KEY_FILE",
        metavar="FILE",
        help=f"key of the audit log's hash chains, at least 32 bytes (or {ENV_PREFIX}AUDIT_KEY)",
    )
    _option(
        audit,
        "--audit-reads",
        env_name="AUDIT_READS",
        choices=READ_AUDIT_MODES,
        default="denied",
        help="which reads get an audit record: none, refused ones (default) or all",
    )
    _option(
        serve,
        "--lineage-conventions",
        env_name="LINEAGE_CONVENTIONS",
        metavar="FILE",
        help="JSON file naming the properties that hold content digests, versions, code versions and "
        "environments, for the lineage answers (default: what TFX and Kubeflow Pipelines record)",
    )
    _option(
        serve,
        "--retention-policy",
        env_name="RETENTION_POLICY",
        metavar="FILE",
        help="apply this retention policy (TOML, see `lineagedb retention`) every --retention-interval",
    )
    _option(
        serve,
        "--retention-interval",
        env_name="RETENTION_INTERVAL",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="seconds between retention runs",
    )
    _option(
        serve,
        "--retention-archive",
        env_name="RETENTION_ARCHIVE",
        metavar="DIR",
        help="before each scheduled retention run deletes, write what it deletes to an archive in DIR",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lineagedb", description="ML metadata and lineage store (MLMD-compatible).")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    db = sub.add_parser("db", help="schema migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    for name, text in (("upgrade", "create or upgrade the schema"), ("current", "print the schema state")):
        cmd = db_sub.add_parser(name, help=text)
        cmd.add_argument("--database", default=env("DATABASE_URL"), help="SQLAlchemy URL")
    _token_parser(sub)
    from lineagedb.ops.encryption import add_keys_parser

    add_keys_parser(sub)
    namespace = sub.add_parser("namespace", help="namespaces (tenancy): create, list, delete when empty")
    namespace_sub = namespace.add_subparsers(dest="namespace_command", required=True)
    for name, text in (("create", "create a namespace"), ("delete", "delete an empty namespace"), ("list", "list")):
        cmd = namespace_sub.add_parser(name, help=text)
        if name != "list":
            cmd.add_argument("name", help="namespace name (lower-case letters, digits, '-', '_', '.')")
        cmd.add_argument("--database", default=env("DATABASE_URL"), help="SQLAlchemy URL")
    authz = sub.add_parser("authz", help="authorization policy tools")
    authz_sub = authz.add_subparsers(dest="authz_command", required=True)
    check = authz_sub.add_parser("check", help="validate a policy file and print what each principal and group may do")
    check.add_argument("--policy", required=True, help="the --authz-policy TOML file")
    check.add_argument("--principal", action="append", default=[], help="also show this principal (repeat)")
    check.add_argument("--anonymous", default=None, help="the --auth-anonymous ROLE@NAMESPACE to check too")
    _audit_parser(sub)
    from lineagedb.ops.lineage_cli import add_parser as add_lineage_parser

    add_lineage_parser(sub)
    from lineagedb.ops.retention import add_parser as add_retention_parser

    add_retention_parser(sub)
    from lineagedb.ops.archive import add_parser as add_archive_parser

    add_archive_parser(sub)
    from lineagedb.ops.track_cli import add_parser as add_track_parser

    add_track_parser(sub)
    return parser


def _audit_parser(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the audit log: verify, history, query, export, prune")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    key_help = f"the servers' audit key (or {ENV_PREFIX}AUDIT_KEY)"
    verify = audit_sub.add_parser("verify", help="walk the hash chains and report the first tampered record")
    history = audit_sub.add_parser("history", help="who created and changed a node, when, and from what")
    history.add_argument("node", help="artifact:ID, execution:ID or context:ID")
    history.add_argument("--format", choices=("table", "json"), default="table")
    query = audit_sub.add_parser("query", help="records by principal, method, node and time")
    export = audit_sub.add_parser("export", help="records as JSON Lines, with their MACs (for a SIEM)")
    for command in (query, export):
        command.add_argument("--principal")
        command.add_argument("--method", help="e.g. PutArtifacts")
        command.add_argument("--node", help="artifact:ID, execution:ID or context:ID")
        command.add_argument("--kind", choices=("write", "denied", "failed", "read", "prune"))
        command.add_argument("--since", help="ISO date or time, UTC unless it says (inclusive)")
        command.add_argument("--until", help="ISO date or time (exclusive)")
    query.add_argument("--format", choices=("table", "json"), default="table")
    query.add_argument("--limit", type=int, default=100)
    prune = audit_sub.add_parser("prune", help="delete records older than a date; the chains stay verifiable")
    prune.add_argument("--before", required=True, help="ISO date or time, UTC unless it says")
    for command in (verify, history, query, export, prune):
        command.add_argument("--database", default=env("DATABASE_URL"), help="SQLAlchemy URL")
    for command in (verify, prune):
        command.add_argument("--audit-key-file", default=env("AUDIT_KEY_FILE"), metavar="FILE", help=key_help)


def _checked_name(what: str) -> Callable[[str], str]:
    from lineagedb.security.static_tokens import check_name

    def convert(text: str) -> str:
        try:
            return check_name(text, what)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    return convert


def _token_parser(sub: Any) -> None:
    token = sub.add_parser("token", help="static bearer tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser(
        "create",
        help="make a new bearer token",
        description="Print a new random token (once) and the line that makes it valid in the --auth-tokens file.",
    )
    create.add_argument(
        "--principal",
        required=True,
        type=_checked_name("principal"),
        help="who the token authenticates (no whitespace; ':' is fine, e.g. system:serviceaccount:ns:name)",
    )
    create.add_argument(
        "--group", action="append", default=[], type=_checked_name("group"), help="a group of the principal (repeat)"
    )


def build_settings(args: argparse.Namespace, argv: Sequence[str]) -> Settings:
    """Resolve flags, MLMD flags, config files and environment into Settings (no I/O but reading files)."""
    from lineagedb.ops.database import parse_url, password_from_environment, with_password
    from lineagedb.ops.tls import load_tls

    source = mlmd_flags.source_from_args(args, argv)
    if args.database and source.url is not None:
        raise ConfigurationError("give either --database or MLMD connection flags/config file, not both")
    url = parse_url(args.database or source.url or env("DATABASE_URL") or default_database_url())
    # Said by the parent of --workers alone (or the only process), not again by each worker.
    first = args.worker_index is None
    if first and (source.password_on_command_line or (args.database and url.password)):
        log.warning(PASSWORD_WARNING)
    password = password_from_environment(args.database_password_file)
    url = with_password(url, password)
    read_urls = args.read_database or [part.strip() for part in (env("READ_DATABASE") or "").split(",") if part.strip()]
    replicas = [parse_url(read_url) for read_url in read_urls]
    if first and args.read_database and any(replica.password for replica in replicas):
        log.warning(PASSWORD_WARNING)
    # A replica URL without a password uses the primary's from the environment or file.
    replicas = [replica if replica.password else with_password(replica, password) for replica in replicas]

    tls = source.tls
    if args.tls_cert or args.tls_key or args.tls_client_ca:
        if not (args.tls_cert and args.tls_key):
            raise ConfigurationError("TLS needs both --tls-cert and --tls-key")
        if tls is not None:
            raise ConfigurationError("TLS is configured twice: by --tls-* flags and by ssl_config; keep one")
        tls = load_tls(args.tls_cert, args.tls_key, args.tls_client_ca, args.tls_require_client_cert)

    port, so_reuseport, metrics_port, workers = args.port, False, args.metrics_port, 1
    if args.worker_index is not None:
        port, so_reuseport = args.worker_port, True
        if metrics_port:
            metrics_port += args.worker_index
    else:
        from lineagedb.ops.workers import resolve_workers

        workers = resolve_workers(args.workers, url)
    if args.pool_size < 1 or args.pool_max_overflow < 0 or args.pool_timeout <= 0:
        raise ConfigurationError(
            "--pool-size must be at least 1, --pool-max-overflow at least 0, --pool-timeout positive"
        )
    security = build_security_settings(args, tls)
    enable_upgrade = bool(args.enable_database_upgrade) or bool(source.enable_upgrade)
    retries = source.connection_retries if source.connection_retries is not None else 5
    return Settings(
        host=args.host,
        port=port,
        database_url=url.render_as_string(hide_password=False),
        worker_threads=args.worker_threads,
        pool_size=args.pool_size,
        pool_max_overflow=args.pool_max_overflow,
        pool_timeout_s=args.pool_timeout,
        enable_database_upgrade=enable_upgrade,
        max_receive_message_bytes=args.max_receive_message_bytes,
        max_send_message_bytes=args.max_send_message_bytes,
        shutdown_grace_s=args.shutdown_grace_s,
        log_level=args.log_level,
        log_format=args.log_format,
        create_database=source.create_database,
        connection_retries=retries,
        fail_fast=bool(args.fail_fast),
        tls=tls,
        plaintext_port=args.plaintext_port,
        plaintext_host=args.plaintext_host,
        insecure_i_know=bool(args.insecure_i_know),
        metrics_port=metrics_port,
        metrics_host=args.metrics_host,
        health_interval_s=args.health_interval_s,
        shutdown_drain_s=args.shutdown_drain_s,
        connection_policy=ConnectionPolicy(
            max_connection_idle_ms=args.max_connection_idle_ms,
            max_connection_age_ms=args.max_connection_age_ms,
            keepalive_time_ms=args.keepalive_time_ms,
            min_recv_ping_interval_without_data_ms=args.min_ping_interval_ms,
            max_ping_strikes=args.max_ping_strikes,
        ),
        grpc_channel_arguments=mlmd_flags.parse_channel_arguments(args.grpc_channel_arguments),
        workers=workers,
        so_reuseport=so_reuseport,
        worker_index=args.worker_index,
        security=security,
        audit_key_file=args.audit_key_file or None,
        audit_reads=args.audit_reads,
        lineage_conventions=args.lineage_conventions or None,
        retention_policy=args.retention_policy or None,
        retention_interval_s=args.retention_interval,
        retention_archive=args.retention_archive or None,
        run_scheduled_jobs=args.worker_index in (None, 0),
        http_port=args.worker_http_port if args.worker_index is not None else args.http_port,
        http_host=args.http_host or None,
        artifact_root=args.artifact_root or default_artifact_root(url.render_as_string(hide_password=True)),
        read_database_urls=tuple(replica.render_as_string(hide_password=False) for replica in replicas),
        read_max_lag_s=args.read_max_lag_s,
    )


def build_security_settings(args: argparse.Namespace, tls: TlsSettings | None) -> SecuritySettings:
    """The authentication flags as SecuritySettings, refusing combinations that cannot work."""
    jwt_flags = {
        "--auth-jwt-issuer": args.auth_jwt_issuer,
        "--auth-jwt-audience": args.auth_jwt_audience,
        "--auth-jwt-principal-claim": args.auth_jwt_principal_claim,
        "--auth-jwt-groups-claim": args.auth_jwt_groups_claim,
        "--auth-jwt-namespace-claim": args.auth_jwt_namespace_claim,
        "--auth-jwt-algorithms": args.auth_jwt_algorithms,
        "--auth-jwt-leeway-s": args.auth_jwt_leeway_s,
    }
    given = [flag for flag, value in jwt_flags.items() if value is not None]
    if given and not args.auth_jwt_jwks:
        raise ConfigurationError(f"{', '.join(given)} need --auth-jwt-jwks (the key set that verifies JWTs)")
    defaults = SecuritySettings()
    try:
        security = SecuritySettings(
            tokens_file=args.auth_tokens or None,
            jwt_jwks=args.auth_jwt_jwks or None,
            jwt_issuer=args.auth_jwt_issuer or None,
            jwt_audience=args.auth_jwt_audience or None,
            jwt_principal_claim=args.auth_jwt_principal_claim or defaults.jwt_principal_claim,
            jwt_groups_claim=args.auth_jwt_groups_claim or defaults.jwt_groups_claim,
            jwt_namespace_claim=args.auth_jwt_namespace_claim or None,
            jwt_algorithms=defaults.jwt_algorithms if args.auth_jwt_algorithms is None else args.auth_jwt_algorithms,
            jwt_leeway_s=defaults.jwt_leeway_s if args.auth_jwt_leeway_s is None else args.auth_jwt_leeway_s,
            mtls_identity=args.auth_mtls_identity or None,
            anonymous=args.auth_anonymous or None,
            authz_policy=args.authz_policy or None,
            page_token_key_file=args.page_token_key_file or None,
            encryption_keys_file=args.encryption_keys_file or None,
            sensitive_properties_file=args.sensitive_properties or None,
        )
    except ValueError as error:
        raise ConfigurationError(str(error)) from error
    # The certificate names the caller only if gRPC verified it, i.e. it was required and checked against a CA.
    if security.mtls_identity and (tls is None or tls.client_ca is None or not tls.require_client_cert):
        raise ConfigurationError("--auth-mtls-identity needs TLS with --tls-client-ca and client certificates required")
    return security


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    normalized = mlmd_flags.normalize_argv(raw)
    try:
        args = _parser().parse_args(normalized)
    except ConfigurationError as error:  # a bad LINEAGEDB_* variable
        print(f"lineagedb: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(getattr(args, "log_level", "INFO"), getattr(args, "log_format", "text"))
    try:
        if args.command == "serve":
            return _serve(args, normalized)
        if args.command == "token":
            return _token_create(args.principal, args.group)
        if args.command == "keys":
            from lineagedb.ops.encryption import run_keys_command

            return run_keys_command(args, default_database_url())
        if args.command == "namespace":
            return _namespace_command(args)
        if args.command == "authz":
            return _authz_check(args.policy, args.principal, args.anonymous)
        if args.command == "audit":
            return _audit_command(args)
        if args.command == "lineage":
            from lineagedb.ops.lineage_cli import run as run_lineage

            return run_lineage(args)
        if args.command == "retention":
            from lineagedb.ops.retention import run as run_retention

            return run_retention(args)
        if args.command == "track":
            from lineagedb.ops.track_cli import run as run_track

            return run_track(args)
        if args.command in ("export", "import"):
            from lineagedb.ops.archive import run as run_archive

            return run_archive(args)
        return _db_command(args.db_command, args.database or default_database_url())
    except ConfigurationError as error:
        print(f"lineagedb: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except errors.LineageError as error:
        print(f"lineagedb: {error.message}", file=sys.stderr)
        return EXIT_CONFIG
    except SQLAlchemyError as error:
        # The administration commands (db, namespace, audit, keys) meeting a database that
        # is unreachable, refuses us, or fails TLS: one line, never a traceback or a password.
        from lineagedb.ops.health import describe

        print(f"lineagedb: the database cannot be used: {describe(error)}", file=sys.stderr)
        return EXIT_STARTUP


def _serve(args: argparse.Namespace, argv: list[str]) -> int:
    settings = build_settings(args, argv)
    if settings.workers > 1 and args.worker_index is None:
        # The parent of the workers serves nothing: it does not import the server (grpc, the
        # protos, the store): 9 MiB less resident in it (97 -> 88 MiB RSS).
        from lineagedb.ops.workers import run_workers

        serve_argv = argv[argv.index("serve") + 1 :]
        display = settings.host if settings.host not in ("", "0.0.0.0", "[::]") else "0.0.0.0"
        http = None
        if settings.http_port is not None:
            http = (settings.http_host if settings.http_host is not None else settings.host, settings.http_port)
        return run_workers(settings.workers, settings.host, settings.port, serve_argv, display, http)
    from lineagedb.server import StartupError, serve

    try:
        return serve(settings)
    except StartupError as error:
        print(f"lineagedb: {error}", file=sys.stderr)
        return EXIT_STARTUP


def _token_create(principal: str, groups: list[str]) -> int:
    from lineagedb.security.static_tokens import new_token, tokens_file_line

    token = new_token()
    print(f"token: {token}")
    print(f"tokens file line: {tokens_file_line(token, principal, groups)}")
    print("# The token is shown only this once: give it to the client (metadata 'authorization: Bearer <token>').")
    print("# Add the line to the --auth-tokens file, then reload or restart the server. The file holds only the hash.")
    return 0


def _audit_command(args: argparse.Namespace) -> int:
    from lineagedb.ops import audit

    database = args.database or default_database_url()
    command = args.audit_command
    if command == "verify":
        return audit.verify(database, args.audit_key_file)
    if command == "history":
        return audit.history(database, args.node, args.format)
    if command == "prune":
        return audit.prune(database, args.audit_key_file, args.before)
    query = audit.AuditQuery(
        principal=args.principal,
        method=args.method,
        node=audit.parse_node(args.node) if args.node else None,
        since_ms=audit.parse_time(args.since) if args.since else None,
        until_ms=audit.parse_time(args.until) if args.until else None,
        kind=args.kind,
        limit=max(1, getattr(args, "limit", 100)),
    )
    return audit.query(database, query, "jsonl" if command == "export" else args.format)


def _namespace_command(args: argparse.Namespace) -> int:
    from lineagedb.ops import namespaces

    lines = namespaces.run(args.namespace_command, args.database or default_database_url(), getattr(args, "name", None))
    print("\n".join(lines))
    return 0


def _authz_check(path: str, principals: list[str], anonymous: str | None) -> int:
    from lineagedb.security.policy import PolicyError, describe, load_policy
    from lineagedb.security.settings import parse_anonymous

    try:
        policy = load_policy(path, parse_anonymous(anonymous) if anonymous else None)
    except (PolicyError, ValueError) as error:
        print(f"lineagedb: invalid policy: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{path}: valid")
    print("\n".join(describe(policy, principals)))
    return 0


def _db_command(command: str, url: str) -> int:
    from lineagedb.ops.database import password_from_environment, with_password
    from lineagedb.store.bootstrap import inspect_schema, prepare_database
    from lineagedb.store.engine import create_engine

    engine = create_engine(with_password(make_url(url), password_from_environment(None)))
    try:
        if command == "upgrade":
            state = prepare_database(engine, allow_upgrade=True)
        else:
            with engine.connect() as connection:
                state = inspect_schema(connection)
        print(f"mlmd_schema_version={state.mlmd_version} revision={state.revision} head={state.head}")
        return 0
    finally:
        engine.dispose()
