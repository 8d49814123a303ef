"""The database backends the suite runs on, and scratch databases for them.

SQLite always runs. PostgreSQL and MySQL/MariaDB run when their server answers at
LINEAGEDB_TEST_POSTGRES_URL / LINEAGEDB_TEST_MYSQL_URL (defaults: the local
services). A backend that does not answer is skipped with a reason locally and is
an error under CI (CI=true), where every backend must run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("LINEAGEDB_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
MYSQL_URL = os.environ.get("LINEAGEDB_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/mysql")
SERVER_BACKENDS = {"postgresql": POSTGRES_URL, "mysql": MYSQL_URL}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def selected_backends() -> list[str]:
    """LINEAGEDB_TEST_BACKENDS narrows the matrix (comma-separated), e.g. for quick local runs."""
    wanted = os.environ.get("LINEAGEDB_TEST_BACKENDS", "sqlite,postgresql,mysql")
    return [name.strip() for name in wanted.split(",") if name.strip()]


@cache
def unreachable_reason(backend: str) -> str | None:
    """None if the backend's server answers, else why not."""
    if backend == "sqlite":
        return None
    engine = sa.create_engine(SERVER_BACKENDS[backend], connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return None
    except Exception as error:  # any failure to connect means "not reachable"
        return f"{backend} at {make_url(SERVER_BACKENDS[backend]).render_as_string()} is unreachable: {error}"
    finally:
        engine.dispose()


@contextmanager
def scratch_database(backend: str, directory: str) -> Iterator[str]:
    """A fresh, empty database; dropped afterwards. Yields its SQLAlchemy URL."""
    name = f"lineagedb_test_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        yield f"sqlite:///{directory}/{name}.db"
        return
    admin_url = make_url(SERVER_BACKENDS[backend])
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if backend == "postgresql":
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            else:
                connection.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            if backend == "postgresql":
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def require_backend(name: str) -> str:
    """`name`, if its server answers; otherwise the test fails in CI (a skipped backend
    is a failure there) and is skipped elsewhere."""
    import pytest

    reason = unreachable_reason(name)
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI requires every backend: {reason}")
        pytest.skip(reason)
    return name


@contextmanager
def open_database(url: str, pool: Any = None) -> Iterator[Any]:
    """A Database on `url` (with `pool`, a PoolSettings, if given), its schema prepared;
    disposed afterwards."""
    from lineagedb.store.bootstrap import prepare_database
    from lineagedb.store.engine import create_engine
    from lineagedb.store.unit_of_work import Database

    engine = create_engine(url) if pool is None else create_engine(url, pool)
    prepare_database(engine)
    database = Database(engine)
    try:
        yield database
    finally:
        database.dispose()


@contextmanager
def one_connection_database(backend: str, directory: str) -> Iterator[Any]:
    """A prepared scratch database of `backend` behind a pool of one connection, so every
    transaction of a test (and the test's own probes of the session) use the same one."""
    from lineagedb.store.engine import PoolSettings

    require_backend(backend)
    with scratch_database(backend, directory) as url, open_database(url, PoolSettings(size=1, max_overflow=0)) as db:
        yield db
