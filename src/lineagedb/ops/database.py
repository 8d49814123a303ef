"""Database-side startup chores: passwords from env/files, creating the database, bounded pings."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from lineagedb.config import ENV_PREFIX, ConfigurationError
from lineagedb.store import db_tls
from lineagedb.store.engine import normalize_url

log = logging.getLogger(__name__)

PASSWORD_ENV = f"{ENV_PREFIX}DATABASE_PASSWORD"
PASSWORD_FILE_ENV = f"{ENV_PREFIX}DATABASE_PASSWORD_FILE"


def parse_url(url: str | URL) -> URL:
    """Parse and check a database URL; a bad one is a configuration error."""
    try:
        parsed = normalize_url(url)
    except sa_exc.ArgumentError as error:
        raise ConfigurationError(f"invalid database URL: {error}") from error
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise ConfigurationError(
            f"unsupported database URL scheme {parsed.drivername!r}: use sqlite://, postgresql:// or mysql://"
        )
    return parsed


def password_from_environment(password_file: str | None) -> str | None:
    """The database password from --database-password-file, LINEAGEDB_DATABASE_PASSWORD_FILE or ..._PASSWORD."""
    path = password_file or os.environ.get(PASSWORD_FILE_ENV)
    if path:
        try:
            return Path(path).read_text().rstrip("\r\n")
        except OSError as error:
            raise ConfigurationError(f"cannot read the database password file {path}: {error.strerror}") from error
    return os.environ.get(PASSWORD_ENV)


def with_password(url: URL, password: str | None) -> URL:
    return url if password is None else url.set(password=password)


def ensure_database_exists(url: URL) -> None:
    """MLMD creates a missing MySQL/PostgreSQL database at startup (unless skip_db_creation).

    Give it the URL the engine was created from: engine.url lacks a client key's password
    (store.db_tls keeps secrets out of engine.url).
    """
    backend = url.get_backend_name()
    name = url.database
    if backend == "sqlite" or not name:
        return
    if backend == "postgresql":
        admin_url = url.set(database="postgres")
        exists_sql = sa.text("SELECT 1 FROM pg_database WHERE datname = :name")
        create_sql = 'CREATE DATABASE "{}"'.format(name.replace('"', '""'))
    else:
        admin_url = url._replace(database=None)  # URL.set() ignores None
        exists_sql = sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :name")
        create_sql = "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4".format(name.replace("`", "``"))
    # The same TLS options as the server's own connections (see store.db_tls).
    driver = db_tls.driver_arguments(admin_url)
    engine = sa.create_engine(
        driver.url, connect_args=driver.connect_args, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    if driver.tls_required:
        sa.event.listen(engine, "connect", lambda dbapi_connection, _record: db_tls.require_encrypted(dbapi_connection))
    try:
        with engine.connect() as connection:
            if connection.execute(exists_sql, {"name": name}).first() is not None:
                return
            log.info("creating database %s", name)
            try:
                connection.exec_driver_sql(create_sql)
            except sa_exc.DBAPIError:
                # Another server (or worker) may have created it meanwhile.
                if connection.execute(exists_sql, {"name": name}).first() is None:
                    raise
    finally:
        engine.dispose()


def redacted(url: str | URL) -> str:
    """The URL to show: password and secret options (a client key's password) masked."""
    return db_tls.mask_secrets(make_url(url)).render_as_string(hide_password=True)
