"""PostgreSQL: LineageDB's connections plan without parallel workers (store.engine
SERIAL_PLANS), so a filter's page is not put under a Gather that starts processes; the
database's own setting is left to every other session, and LINEAGEDB_PG_PARALLEL_PLANS=on
leaves LineageDB's alone too."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lineagedb.store import engine as engine_module

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _setting(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        return str(connection.exec_driver_sql("SHOW max_parallel_workers_per_gather").scalar())


def test_lineagedb_connections_plan_serially_and_others_keep_the_databases_setting(database_url: str) -> None:
    engine = engine_module.create_engine(database_url)
    other = sa.create_engine(database_url)  # any other client of the same database
    try:
        default = _setting(other)
        assert default != "0"  # PostgreSQL's default is 2; the test needs a database that allows them
        # Every pooled connection, not only the first: open several at once.
        connections = [engine.connect() for _ in range(3)]
        try:
            found = {str(c.exec_driver_sql("SHOW max_parallel_workers_per_gather").scalar()) for c in connections}
        finally:
            for connection in connections:
                connection.close()
        assert found == {"0"}
        assert _setting(other) == default
    finally:
        engine.dispose()
        other.dispose()


def test_parallel_plans_on_leaves_the_setting_alone(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "SERIAL_PLANS", False)
    engine = engine_module.create_engine(database_url)
    other = sa.create_engine(database_url)
    try:
        assert _setting(engine) == _setting(other) != "0"
    finally:
        engine.dispose()
        other.dispose()


def test_a_transaction_on_a_fresh_connection_still_rolls_back(database_url: str) -> None:
    """The SET runs outside any transaction: the connection's first transaction is the caller's."""
    engine = engine_module.create_engine(database_url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("CREATE TABLE serial_plans_probe (n integer)")
            connection.commit()
            connection.exec_driver_sql("INSERT INTO serial_plans_probe VALUES (1)")
            connection.rollback()
            assert connection.exec_driver_sql("SELECT count(*) FROM serial_plans_probe").scalar() == 0
            assert str(connection.exec_driver_sql("SHOW max_parallel_workers_per_gather").scalar()) == "0"
    finally:
        engine.dispose()
