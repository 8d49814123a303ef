"""MLMD flags and config files, LINEAGEDB_* variables, secrets, and configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format

from lineagedb.cli import _parser, build_settings
from lineagedb.config import ConfigurationError
from lineagedb.ops import mlmd_flags
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from tests.ops.conftest import free_port, run_to_exit


def settings_for(*argv: str):  # type: ignore[no-untyped-def]
    normalized = mlmd_flags.normalize_argv(["serve", *argv])
    return build_settings(_parser().parse_args(normalized), normalized)


def _config(text: str) -> mlmd.MetadataStoreServerConfig:
    return text_format.Parse(text, mlmd.MetadataStoreServerConfig())


def test_config_file_connection_configs_become_urls() -> None:
    source = mlmd_flags.source_from_server_config(
        _config(
            'connection_config { mysql { host: "db" port: 3307 database: "mlmd" user: "u" password: "p" '
            'ssl_options { ca: "/ca.pem" verify_server_cert: true } } }'
        )
    )
    assert source.url is not None and source.create_database
    assert source.url.render_as_string(hide_password=False) == (
        "mysql+pymysql://u:p@db:3307/mlmd?ssl_ca=%2Fca.pem&ssl_check_hostname=true&ssl_verify_cert=true"
    )
    source = mlmd_flags.source_from_server_config(
        _config(
            'connection_config { postgresql { hostaddr: "10.0.0.5" port: "5433" user: "u" dbname: "mlmd" '
            'skip_db_creation: true ssloption { sslmode: "verify-full" sslrootcert: "/ca" } } }\n'
            "migration_options { enable_upgrade_migration: true }"
        )
    )
    assert source.url is not None and not source.create_database and source.enable_upgrade
    assert source.url.query == {"hostaddr": "10.0.0.5", "sslmode": "verify-full", "sslrootcert": "/ca"}
    assert (source.url.port, source.url.database) == (5433, "mlmd")
    sqlite = mlmd_flags.source_from_server_config(_config('connection_config { sqlite { filename_uri: "/x/m.db" } }'))
    assert str(sqlite.url) == "sqlite:////x/m.db"
    fake = mlmd_flags.source_from_server_config(_config("connection_config { fake_database {} }"))
    assert str(fake.url) == "sqlite://"


def test_channel_arguments_parse_ints_as_ints() -> None:
    assert mlmd_flags.parse_channel_arguments("grpc.max_connection_age_ms=2000,grpc.primary_user_agent=x,") == (
        ("grpc.max_connection_age_ms", 2000),
        ("grpc.primary_user_agent", "x"),
    )
    with pytest.raises(ConfigurationError):
        mlmd_flags.parse_channel_arguments("novalue")


def test_mlmd_flags_absl_spellings() -> None:
    settings = settings_for(
        "-grpc_port=9090",
        "--mysql_config_host=mysql",
        "--mysql_config_port=3306",
        "--mysql_config_database=mlmd",
        "--mysql_config_user=root",
        "--mysql_config_password=",
        "--enable_database_upgrade=true",
        "--grpc_channel_arguments=grpc.max_connection_age_ms=2000",
    )
    assert settings.port == 9090
    assert settings.database_url == "mysql+pymysql://root@mysql:3306/mlmd"
    assert settings.enable_database_upgrade and settings.create_database
    assert settings.grpc_channel_arguments == (("grpc.max_connection_age_ms", 2000),)
    assert not settings_for(
        "--mysql_config_host=h", "--mysql_config_port=1", "--mysql_config_database=d", "--mysql_config_skip_db_creation"
    ).create_database
    assert not settings_for("--noenable_database_upgrade").enable_database_upgrade
    with pytest.raises(ConfigurationError, match="mysql_config"):
        settings_for("--mysql_config_port=3306")  # incomplete, as MLMD refuses it
    with pytest.raises(ConfigurationError, match="exactly one"):
        settings_for("--metadata_source_config_type=postgresql", "--postgres_config_port=5432")


def test_environment_variables_and_password_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LINEAGEDB_PORT", "7070")
    monkeypatch.setenv("LINEAGEDB_MAX_RECEIVE_MESSAGE_BYTES", "1234")
    monkeypatch.setenv("LINEAGEDB_LOG_FORMAT", "json")
    monkeypatch.setenv("LINEAGEDB_ENABLE_DATABASE_UPGRADE", "true")
    monkeypatch.setenv("LINEAGEDB_DATABASE_URL", "postgresql://u@db/mlmd")
    monkeypatch.setenv("LINEAGEDB_DATABASE_PASSWORD", "from-env")
    settings = settings_for()
    assert (settings.port, settings.max_receive_message_bytes, settings.log_format) == (7070, 1234, "json")
    assert settings.enable_database_upgrade
    assert settings.database_url == "postgresql+psycopg2://u:from-env@db/mlmd"
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    monkeypatch.setenv("LINEAGEDB_DATABASE_PASSWORD_FILE", str(secret))
    assert settings_for().database_url == "postgresql+psycopg2://u:from-file@db/mlmd"
    assert settings_for("--port", "1").port == 1  # the command line wins


def test_help_documents_every_flag(tmp_path: Path) -> None:
    code, stdout, _ = run_to_exit(["serve", "--help"], tmp_path)
    assert code == 0
    for name, _, _ in mlmd_flags.ALL_FLAGS:
        assert f"--{name}" in stdout
    for flag in (
        "--grpc_port",
        "--enable_database_upgrade",
        "--tls-cert",
        "--tls-client-ca",
        "--metrics-port",
        "--log-format",
        "--max-receive-message-bytes",
        "--workers",
        "--insecure-i-know",
        "LINEAGEDB_DATABASE_PASSWORD",
    ):
        assert flag in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--database", "oracle://scott@db/x"], "unsupported database URL scheme"),
        (["--database", "not a url"], "invalid database URL"),
        (["--downgrade_db_schema_version=9"], "downgrades are not supported"),
        (["--metadata_source_config_type=cassandra"], "metadata_source_config_type"),
        (["--metadata_store_server_config_file=/nonexistent.pbtxt"], "cannot read"),
    ],
)
def test_configuration_errors_exit_non_zero_with_a_clear_message(args: list[str], message: str, tmp_path: Path) -> None:
    code, stdout, stderr = run_to_exit(["serve", "--port", "0", *args], tmp_path)
    assert code == 2
    assert "listening" not in stdout
    assert message in stderr


def test_password_on_the_command_line_is_warned_about_and_never_logged(tmp_path: Path) -> None:
    closed_port = free_port()
    code, _, stderr = run_to_exit(
        [
            "serve",
            "--port=0",
            "--fail-fast",
            "--metadata_store_connection_retries=0",
            "--mysql_config_host=127.0.0.1",
            f"--mysql_config_port={closed_port}",
            "--mysql_config_database=mlmd",
            "--mysql_config_user=root",
            "--mysql_config_password=hunter2-secret",
        ],
        tmp_path,
    )
    assert code == 3  # the database is not reachable and --fail-fast says so
    assert "password was given on the command line" in stderr
    assert "not reachable" in stderr and "root:***@127.0.0.1" in stderr
    assert "hunter2" not in stderr


@pytest.mark.parametrize("command", [["db", "current"], ["db", "upgrade"], ["namespace", "list"], ["audit", "query"]])
def test_administration_commands_report_an_unusable_database_in_one_line(command: list[str], tmp_path: Path) -> None:
    url = f"postgresql+psycopg2://admin:hunter2-secret@127.0.0.1:{free_port()}/mlmd"
    code, _, stderr = run_to_exit([*command, "--database", url], tmp_path)
    assert code == 3, stderr
    assert stderr.startswith("lineagedb: the database cannot be used:") and "Traceback" not in stderr
    assert "hunter2-secret" not in stderr
