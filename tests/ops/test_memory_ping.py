"""An in-memory SQLite database is one connection every call shares (StaticPool): the health
ping, from its own thread, must not check it out, or returning it to the pool rolls back the
transaction a call has open on it (a flaky INTERNAL in CI before the fix)."""

from __future__ import annotations

import sqlalchemy as sa

from lineagedb.ops.health import DatabaseSupervisor
from lineagedb.store.engine import create_engine


def test_the_ping_leaves_a_calls_open_transaction_alone() -> None:
    engine = create_engine("sqlite://")
    supervisor = DatabaseSupervisor(engine, prepare=lambda: None)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            connection.commit()
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")  # a call's open transaction
            assert supervisor.ping()
            connection.commit()
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT COUNT(*) FROM t")).scalar_one() == 1
    finally:
        engine.dispose()
