"""Database URLs: our drivers for bare backend names, and MariaDB served as MySQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import create_engine, normalize_url
from lineagedb.store.unit_of_work import Database
from tests.backends import require_backend, scratch_database


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg2"),
        ("postgres://u@h/db", "postgresql+psycopg2"),
        ("mysql://u@h/db", "mysql+pymysql"),
        ("mariadb://u@h/db", "mysql+pymysql"),
        ("mariadb+pymysql://u@h/db", "mysql+pymysql"),
        ("mysql+pymysql://u@h/db", "mysql+pymysql"),
        ("sqlite:///x.db", "sqlite"),
    ],
)
def test_bare_and_mariadb_urls_get_our_drivers(given: str, driver: str) -> None:
    assert normalize_url(given).drivername == driver


def test_a_mariadb_url_creates_and_serves_the_store(tmp_path: object) -> None:
    require_backend("mysql")
    with scratch_database("mysql", str(tmp_path)) as url:
        engine = create_engine(sa.make_url(url).set(drivername="mariadb"))
        try:
            assert engine.dialect.name == "mysql"
            prepare_database(engine)
            with Database(engine).transaction() as uow:
                assert uow.dialect == "mysql"
        finally:
            engine.dispose()
