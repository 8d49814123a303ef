"""MLMD's server flags and MetadataStoreServerConfig files, translated to our settings.

`metadata_store_server` (MLMD's gRPC server) is configured with absl flags such as
`--grpc_port=8080 --mysql_config_host=mysql --enable_database_upgrade=true`, or with
a text-format `MetadataStoreServerConfig` file. This module accepts both as MLMD
spells them and turns them into a SQLAlchemy URL, TLS settings and migration options.
The source is chosen as MLMD chooses it (`--metadata_source_config_type`):

* `default`: the config file if given, else the `--mysql_config_*` flags if given,
  else our own `--database` (MLMD would use a throwaway in-memory database there);
* `config_file`, `mysql`, `postgresql`: that source only; it must be complete.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from sqlalchemy.engine import URL

from lineagedb.config import ConfigurationError, TlsSettings
from lineagedb.ops.tls import load_tls
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd

log = logging.getLogger(__name__)

SOURCE_TYPES = ("default", "config_file", "mysql", "postgresql")

# (flag name, kind, help). kind: "str", "int" or "bool" (absl style: --flag, --flag=true|false).
MYSQL_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("mysql_config_host", "str", "MySQL/MariaDB host name (with --mysql_config_port and --mysql_config_database)"),
    ("mysql_config_port", "int", "MySQL/MariaDB port"),
    ("mysql_config_database", "str", "MySQL/MariaDB database (created unless --mysql_config_skip_db_creation)"),
    ("mysql_config_user", "str", "MySQL/MariaDB user"),
    (
        "mysql_config_password",
        "str",
        "MySQL/MariaDB password (visible to ps: prefer LINEAGEDB_DATABASE_PASSWORD[_FILE])",
    ),
    ("mysql_config_socket", "str", "MySQL/MariaDB Unix socket (LineageDB extension; MLMD has it in the config file)"),
    ("mysql_config_skip_db_creation", "bool", "do not create the database if it is missing"),
    ("mysql_config_sslcert", "str", "client certificate file for the database connection"),
    ("mysql_config_sslkey", "str", "client key file for the database connection"),
    ("mysql_config_sslrootcert", "str", "CA file that signed the database server's certificate"),
    ("mysql_config_sslcapath", "str", "directory of CA files"),
    ("mysql_config_sslcipher", "str", "permitted TLS ciphers"),
    (
        "mysql_config_verify_server_cert",
        "bool",
        "verify the database server's certificate and host name (against the system's CAs without sslrootcert)",
    ),
)
POSTGRES_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("postgres_config_host", "str", "PostgreSQL host name (or a Unix socket directory starting with /)"),
    ("postgres_config_hostaddr", "str", "PostgreSQL numeric host address (instead of --postgres_config_host)"),
    ("postgres_config_port", "str", "PostgreSQL port"),
    ("postgres_config_user", "str", "PostgreSQL user"),
    (
        "postgres_config_password",
        "str",
        "PostgreSQL password (visible to ps: prefer LINEAGEDB_DATABASE_PASSWORD[_FILE])",
    ),
    ("postgres_config_passfile", "str", "PostgreSQL password file (libpq passfile)"),
    ("postgres_config_dbname", "str", "PostgreSQL database (created unless --postgres_config_skip_db_creation)"),
    ("postgres_config_skip_db_creation", "bool", "do not create the database if it is missing"),
    ("postgres_config_sslmode", "str", "libpq sslmode: disable, allow, prefer, require, verify-ca, verify-full"),
    ("postgres_config_sslcert", "str", "client certificate file"),
    ("postgres_config_sslkey", "str", "client key file"),
    ("postgres_config_sslpassword", "str", "password of the client key"),
    ("postgres_config_sslrootcert", "str", "CA file that signed the database server's certificate"),
)
OTHER_FLAGS: tuple[tuple[str, str, str], ...] = (
    (
        "grpc_channel_arguments",
        "str",
        "comma-separated gRPC server arguments key=value (integers become ints), "
        "e.g. grpc.max_connection_age_ms=2000; applied after all other settings",
    ),
    ("metadata_source_config_type", "str", "where the connection comes from: default, config_file, mysql, postgresql"),
    (
        "metadata_store_server_config_file",
        "str",
        "text-format ml_metadata.MetadataStoreServerConfig file "
        "(connection_config for sqlite/mysql/postgresql, ssl_config, migration_options)",
    ),
    (
        "metadata_store_connection_retries",
        "int",
        "retries while another server holds the schema initialization (default 5)",
    ),
    ("downgrade_db_schema_version", "int", "not supported: LineageDB refuses to start when it is >= 0"),
)
ALL_FLAGS = MYSQL_FLAGS + POSTGRES_FLAGS + OTHER_FLAGS
PASSWORD_FLAGS = ("mysql_config_password", "postgres_config_password", "postgres_config_sslpassword")
_FLAG_NAMES = frozenset(name for name, _, _ in ALL_FLAGS) | {"grpc_port", "enable_database_upgrade"}


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "t", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "f", "no", "n", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """absl also accepts `-flag=value` and `--noflag`; argparse needs `--flag=value`."""
    out = []
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and arg[1:].split("=", 1)[0] in _FLAG_NAMES:
            arg = "-" + arg
        name = arg[2:].split("=", 1)[0] if arg.startswith("--no") else ""
        if name.startswith("no") and "=" not in arg and name[2:] in _BOOL_FLAGS:
            arg = f"--{name[2:]}=false"
        out.append(arg)
    return out


_BOOL_FLAGS = frozenset(name for name, kind, _ in ALL_FLAGS if kind == "bool") | {"enable_database_upgrade"}


def add_arguments(parser: argparse.ArgumentParser, env_default: object) -> None:
    """Register MLMD's flags. `env_default(dest)` returns the LINEAGEDB_* default for a flag."""
    group = parser.add_argument_group(
        "MLMD server flags", "accepted as MLMD's metadata_store_server spells them (absl style --flag=value)"
    )
    for name, kind, text in OTHER_FLAGS + MYSQL_FLAGS + POSTGRES_FLAGS:
        default = env_default(name)  # type: ignore[operator]
        if kind == "bool":
            group.add_argument(
                f"--{name}", nargs="?", const=True, type=parse_bool, default=_bool_default(default), help=text
            )
        elif kind == "int":
            group.add_argument(f"--{name}", type=int, default=int(default) if default else None, help=text)
        else:
            group.add_argument(f"--{name}", default=default, help=text)


def _bool_default(value: object) -> bool | None:
    return parse_bool(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class MlmdSource:
    """What MLMD's flags or config file said; None fields were not set there."""

    url: URL | None = None
    create_database: bool = False
    enable_upgrade: bool | None = None
    tls: TlsSettings | None = None
    connection_retries: int | None = None
    password_on_command_line: bool = False


def parse_channel_arguments(text: str | None) -> tuple[tuple[str, int | str], ...]:
    """MLMD's --grpc_channel_arguments: `k=v,k=v`; values that parse as integers are ints."""
    out: list[tuple[str, int | str]] = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"--grpc_channel_arguments: {item!r} is not key=value")
        value = value.strip()
        try:
            out.append((key.strip(), int(value)))
        except ValueError:
            out.append((key.strip(), value))
    return tuple(out)


def read_server_config(path: str) -> mlmd.MetadataStoreServerConfig:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigurationError(f"cannot read --metadata_store_server_config_file {path}: {error.strerror}") from error
    config = mlmd.MetadataStoreServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ConfigurationError(f"{path} is not a text-format MetadataStoreServerConfig: {error}") from error
    return config


def source_from_server_config(config: mlmd.MetadataStoreServerConfig) -> MlmdSource:
    url: URL | None = None
    create = False
    retries = None
    if config.HasField("connection_config"):
        connection = config.connection_config
        kind = connection.WhichOneof("config")
        if kind == "mysql":
            url, create = mysql_url(connection.mysql), not connection.mysql.skip_db_creation
        elif kind == "postgresql":
            url, create = postgresql_url(connection.postgresql), not connection.postgresql.skip_db_creation
        elif kind == "sqlite":
            url = sqlite_url(connection.sqlite)
        elif kind == "fake_database":
            url = URL.create("sqlite")
        if connection.HasField("retry_options"):
            retries = connection.retry_options.max_num_retries
    enable_upgrade = None
    if config.HasField("migration_options"):
        options = config.migration_options
        check_no_downgrade(
            options.downgrade_to_schema_version if options.HasField("downgrade_to_schema_version") else -1
        )
        if options.HasField("enable_upgrade_migration"):
            enable_upgrade = options.enable_upgrade_migration
    tls = None
    if config.HasField("ssl_config"):
        ssl = config.ssl_config
        if not ssl.server_key or not ssl.server_cert:
            raise ConfigurationError("ssl_config needs both server_key and server_cert")
        # MLMD: custom_ca alone does not ask clients for a certificate; client_verify does.
        tls = load_tls(ssl.server_cert, ssl.server_key, ssl.custom_ca or None, ssl.client_verify, origin="ssl_config")
    return MlmdSource(
        url=url, create_database=create, enable_upgrade=enable_upgrade, tls=tls, connection_retries=retries
    )


def check_no_downgrade(version: int | None) -> None:
    if version is not None and version >= 0:
        raise ConfigurationError(
            f"schema downgrades are not supported (downgrade_db_schema_version={version}); "
            "LineageDB serves MLMD schema v10 only. Restore a backup or use MLMD's own tool to downgrade."
        )


def mysql_url(config: mlmd.MySQLDatabaseConfig) -> URL:
    query: dict[str, str] = {}
    if config.socket:
        query["unix_socket"] = config.socket
    if config.HasField("ssl_options"):
        ssl = config.ssl_options
        for key, value in (
            ("ssl_key", ssl.key),
            ("ssl_cert", ssl.cert),
            ("ssl_ca", ssl.ca),
            ("ssl_capath", ssl.capath),
            ("ssl_cipher", ssl.cipher),
        ):
            if value:
                query[key] = value
        # As in MLMD's MySQL client (MariaDB Connector/C): a CA verifies the server's certificate
        # chain, and verify_server_cert also checks that it names the host. verify_server_cert
        # without a CA verifies against the system's trusted CAs (store.db_tls).
        if ssl.verify_server_cert:
            query["ssl_verify_cert"] = "true"
            query["ssl_check_hostname"] = "true"
        else:
            query["ssl_check_hostname"] = "false"
    return URL.create(
        "mysql+pymysql",
        username=config.user or None,
        password=config.password or None,
        host=config.host or None,
        port=int(config.port) if config.port else None,
        database=config.database or None,
        query=query,
    )


def postgresql_url(config: mlmd.PostgreSQLDatabaseConfig) -> URL:
    query: dict[str, str] = {}
    if config.hostaddr:
        query["hostaddr"] = config.hostaddr
    if config.passfile:
        query["passfile"] = config.passfile
    host = config.host or None
    if host and host.startswith("/"):
        query["host"] = host  # Unix socket directory
        host = None
    if config.HasField("ssloption"):
        ssl = config.ssloption
        for key, value in (
            ("sslmode", ssl.sslmode),
            ("sslcert", ssl.sslcert),
            ("sslkey", ssl.sslkey),
            ("sslpassword", ssl.sslpassword),
            ("sslrootcert", ssl.sslrootcert),
        ):
            if value:
                query[key] = value
    port = config.port or None
    if port is not None and not port.isdigit():
        raise ConfigurationError(f"postgresql port must be a number, got {port!r}")
    return URL.create(
        "postgresql+psycopg2",
        username=config.user or None,
        password=config.password or None,
        host=host,
        port=int(port) if port else None,
        database=config.dbname or None,
        query=query,
    )


def sqlite_url(config: mlmd.SqliteMetadataSourceConfig) -> URL:
    name = config.filename_uri
    if not name:
        return URL.create("sqlite")  # MLMD: an empty filename is an in-memory database
    readonly = config.connection_mode == mlmd.SqliteMetadataSourceConfig.READONLY
    if name.startswith("file:") or readonly:
        if not name.startswith("file:"):
            name = f"file:{name}"
        query = {"uri": "true"}
        if readonly and "mode=" not in name:
            query["mode"] = "ro"
        return URL.create("sqlite", database=name, query=query)
    return URL.create("sqlite", database=name)


def source_from_args(args: argparse.Namespace, argv: Sequence[str]) -> MlmdSource:
    """Resolve MLMD's connection flags as MLMD resolves them."""
    kind = args.metadata_source_config_type or "default"
    if kind not in SOURCE_TYPES:
        raise ConfigurationError(f"--metadata_source_config_type must be one of {', '.join(SOURCE_TYPES)}: {kind!r}")
    check_no_downgrade(args.downgrade_db_schema_version)
    on_command_line = any(_given(argv, name) for name in PASSWORD_FLAGS)
    retries = args.metadata_store_connection_retries
    config_file = args.metadata_store_server_config_file
    source: MlmdSource | None = None
    if kind == "config_file" and not config_file:
        raise ConfigurationError("--metadata_source_config_type=config_file needs --metadata_store_server_config_file")
    if kind in ("default", "config_file") and config_file:
        source = source_from_server_config(read_server_config(config_file))
    elif kind == "mysql" or (kind == "default" and _mysql_given(args)):
        source = _mysql_from_flags(args)
    elif kind == "postgresql":
        source = _postgres_from_flags(args)
    if source is None:
        return MlmdSource(connection_retries=retries, password_on_command_line=on_command_line)
    return MlmdSource(
        url=source.url,
        create_database=source.create_database,
        enable_upgrade=source.enable_upgrade,
        tls=source.tls,
        connection_retries=retries if retries is not None else source.connection_retries,
        password_on_command_line=on_command_line,
    )


def _given(argv: Sequence[str], name: str) -> bool:
    """True if `--name` was given a non-empty value on the command line."""
    for index, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return bool(arg.split("=", 1)[1])
        if arg == f"--{name}":
            return index + 1 < len(argv) and bool(argv[index + 1])
    return False


def _mysql_given(args: argparse.Namespace) -> bool:
    return bool(args.mysql_config_host or args.mysql_config_database or args.mysql_config_port)


def _mysql_from_flags(args: argparse.Namespace) -> MlmdSource:
    if not ((args.mysql_config_host or args.mysql_config_socket) and args.mysql_config_database):
        raise ConfigurationError(
            "to use MySQL, give all of --mysql_config_host, --mysql_config_port and --mysql_config_database"
        )
    config = mlmd.MySQLDatabaseConfig(
        host=args.mysql_config_host or "",
        port=args.mysql_config_port or 0,
        database=args.mysql_config_database,
        user=args.mysql_config_user or "",
        password=args.mysql_config_password or "",
        socket=args.mysql_config_socket or "",
        skip_db_creation=bool(args.mysql_config_skip_db_creation),
    )
    ssl_values = (
        args.mysql_config_sslcert,
        args.mysql_config_sslkey,
        args.mysql_config_sslrootcert,
        args.mysql_config_sslcapath,
        args.mysql_config_sslcipher,
        args.mysql_config_verify_server_cert,
    )
    if any(ssl_values):
        config.ssl_options.CopyFrom(
            mlmd.MySQLDatabaseConfig.SSLOptions(
                cert=args.mysql_config_sslcert or "",
                key=args.mysql_config_sslkey or "",
                ca=args.mysql_config_sslrootcert or "",
                capath=args.mysql_config_sslcapath or "",
                cipher=args.mysql_config_sslcipher or "",
                verify_server_cert=bool(args.mysql_config_verify_server_cert),
            )
        )
    return MlmdSource(url=mysql_url(config), create_database=not config.skip_db_creation)


def _postgres_from_flags(args: argparse.Namespace) -> MlmdSource:
    host, hostaddr = args.postgres_config_host, args.postgres_config_hostaddr
    if bool(host) == bool(hostaddr):
        raise ConfigurationError("give exactly one of --postgres_config_host and --postgres_config_hostaddr")
    for flag in ("port", "dbname", "user"):
        if not getattr(args, f"postgres_config_{flag}"):
            raise ConfigurationError(f"--postgres_config_{flag} must not be empty")
    config = mlmd.PostgreSQLDatabaseConfig(
        host=host or "",
        hostaddr=hostaddr or "",
        port=str(args.postgres_config_port),
        user=args.postgres_config_user,
        password=args.postgres_config_password or "",
        passfile=args.postgres_config_passfile or "",
        dbname=args.postgres_config_dbname,
        skip_db_creation=bool(args.postgres_config_skip_db_creation),
    )
    ssl = mlmd.PostgreSQLDatabaseConfig.SSLOptions(
        sslmode=args.postgres_config_sslmode or "",
        sslcert=args.postgres_config_sslcert or "",
        sslkey=args.postgres_config_sslkey or "",
        sslpassword=args.postgres_config_sslpassword or "",
        sslrootcert=args.postgres_config_sslrootcert or "",
    )
    if ssl.ListFields():
        config.ssloption.CopyFrom(ssl)
    url = postgresql_url(config)
    if hostaddr and not host:
        url = url.set(host=hostaddr)  # psycopg2 needs a host or hostaddr; keep both consistent
    return MlmdSource(url=url, create_database=not config.skip_db_creation)
