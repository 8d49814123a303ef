"""Drop-in replacement: started exactly as MLMD's server is started, the official client works."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.backends import MYSQL_URL, POSTGRES_URL, scratch_database
from tests.ops.conftest import Server, official_client, require_backend, start

pytestmark = pytest.mark.compat


@pytest.fixture
def mariadb_scratch_name() -> Iterator[str]:
    """A database name that does not exist yet (the server must create it, as MLMD does); dropped after."""
    require_backend("mysql")
    name = f"lineagedb_kfp_{uuid.uuid4().hex[:10]}"
    yield name
    admin = sa.create_engine(MYSQL_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    admin.dispose()


def test_kubeflow_pipelines_command_line_against_mariadb(
    mariadb_scratch_name: str, mlmd_python: Path, tmp_path: Path, servers: list[Server]
) -> None:
    mysql = make_url(MYSQL_URL)
    # The metadata-grpc-deployment container args of Kubeflow Pipelines, verbatim but for values.
    args = [
        "--grpc_port=0",
        f"--mysql_config_host={mysql.host}",
        f"--mysql_config_port={mysql.port or 3306}",
        f"--mysql_config_database={mariadb_scratch_name}",
        f"--mysql_config_user={mysql.username}",
        f"--mysql_config_password={mysql.password or ''}",
        "--enable_database_upgrade=true",
        "--host=127.0.0.1",
    ]
    server = start(args, tmp_path)
    servers.append(server)
    result = official_client(mlmd_python, server.port)
    assert result["ok"], result
    assert result["uris"] == ["s3://bucket/a"]
    assert server.stop() == 0
    # The server created the database and the MLMD schema in it.
    engine = sa.create_engine(make_url(MYSQL_URL).set(database=mariadb_scratch_name))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT schema_version FROM MLMDEnv").scalar_one() == 10
    engine.dispose()


def _config_text(backend: str, url: str) -> str:
    parsed = make_url(url)
    if backend == "sqlite":
        sqlite = f'filename_uri: "{parsed.database}" connection_mode: READWRITE_OPENCREATE'
        return f"connection_config {{ sqlite {{ {sqlite} }} }}"
    if backend == "mysql":
        password = f'password: "{parsed.password}" ' if parsed.password else ""
        return (
            f'connection_config {{ mysql {{ host: "{parsed.host}" port: {parsed.port or 3306} '
            f'database: "{parsed.database}" user: "{parsed.username}" {password}}} }}\n'
            "migration_options { enable_upgrade_migration: true }"
        )
    password = f'password: "{parsed.password}" ' if parsed.password else ""
    return (
        f'connection_config {{ postgresql {{ host: "{parsed.host}" port: "{parsed.port or 5432}" '
        f'dbname: "{parsed.database}" user: "{parsed.username}" {password}skip_db_creation: true }} }}'
    )


@pytest.mark.parametrize("backend_name", ["sqlite", "mysql", "postgresql"])
def test_server_config_file_for_each_backend(
    backend_name: str, mlmd_python: Path, tmp_path: Path, servers: list[Server]
) -> None:
    if backend_name != "sqlite":
        require_backend(backend_name)
    with scratch_database(backend_name, str(tmp_path)) as url:
        config = tmp_path / "server_config.pbtxt"
        config.write_text(_config_text(backend_name, url))
        server = start(
            [
                "--grpc_port=0",
                "--host=127.0.0.1",
                "--metadata_source_config_type=config_file",
                f"--metadata_store_server_config_file={config}",
            ],
            tmp_path,
        )
        servers.append(server)
        result = official_client(mlmd_python, server.port)
        assert result["ok"], result
        assert server.stop() == 0
        assert "password" not in server.stderr().lower() or "LINEAGEDB_DATABASE_PASSWORD" in server.stderr()


def test_postgres_flags_and_password_from_a_file(tmp_path: Path, servers: list[Server], mlmd_python: Path) -> None:
    """--metadata_source_config_type=postgresql with the --postgres_config_* family; the database is created."""
    require_backend("postgresql")
    pg = make_url(POSTGRES_URL)
    name = f"lineagedb_pgflags_{uuid.uuid4().hex[:10]}"
    env = {}
    if pg.password:
        secret = tmp_path / "pgpass"
        secret.write_text(pg.password + "\n")
        env["LINEAGEDB_DATABASE_PASSWORD_FILE"] = str(secret)
    try:
        server = start(
            [
                "--grpc_port=0",
                "--host=127.0.0.1",
                "--metadata_source_config_type=postgresql",
                f"--postgres_config_host={pg.host}",
                f"--postgres_config_port={pg.port or 5432}",
                f"--postgres_config_user={pg.username}",
                f"--postgres_config_dbname={name}",
            ],
            tmp_path,
            env,
        )
        servers.append(server)
        assert official_client(mlmd_python, server.port)["ok"]
        assert server.stop() == 0
    finally:
        admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
