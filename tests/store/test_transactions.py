"""SQLite transactions opened by Database: a write transaction that cannot take the lock is ABORTED."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lineagedb import errors
from lineagedb.store import engine as engine_module
from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import create_engine
from lineagedb.store.unit_of_work import Database


def test_begin_immediate_on_a_locked_file_is_aborted_and_reads_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    engine = create_engine(f"sqlite:///{tmp_path / 'locked.db'}")
    prepare_database(engine)
    database = Database(engine)
    holder = engine.raw_connection()
    try:
        holder.cursor().execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with pytest.raises(errors.AbortedError), database.transaction(write=True):
            pass
        with database.transaction(write=False) as uow:  # WAL readers are not blocked
            assert uow.connection.exec_driver_sql("SELECT count(*) FROM Type").scalar_one() > 0
    finally:
        holder.cursor().execute("ROLLBACK")
        holder.close()
    with database.transaction(write=True) as uow:  # and the pool is still usable
        uow.connection.exec_driver_sql("SELECT 1")
    database.dispose()


def _rollbacks(connection: Any) -> int:
    cursor = connection.cursor()
    cursor.execute("SHOW SESSION STATUS LIKE 'Com_rollback'")
    value = int(cursor.fetchone()[1])
    cursor.close()
    return value


def test_the_pool_rolls_back_only_connections_returned_inside_a_transaction(database_url: str) -> None:
    """A connection comes back from every call: one whose transaction committed needs no
    ROLLBACK (on MySQL/MariaDB PyMySQL would send one, a round trip per call), one returned
    inside a transaction must be rolled back before anyone else gets it."""
    engine = create_engine(database_url, engine_module.PoolSettings(size=1, max_overflow=0))
    try:
        prepare_database(engine)
        mysql = engine.dialect.name == "mysql"
        raw = engine.raw_connection()
        before = _rollbacks(raw.dbapi_connection) if mysql else 0
        raw.dbapi_connection.commit()
        raw.close()
        for _ in range(5):
            with engine.begin() as connection:  # commits
                connection.exec_driver_sql("SELECT 1")
        # Returned inside a transaction that holds a lock: the pool must end it.
        raw = engine.raw_connection()
        cursor = raw.cursor()
        locking = " FOR UPDATE" if engine.dialect.name != "sqlite" else ""
        if engine.dialect.name == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
        cursor.execute(f"SELECT schema_version FROM MLMDEnv{locking}")
        cursor.fetchall()
        cursor.close()
        raw.close()
        raw = engine.raw_connection()
        dbapi = raw.dbapi_connection
        if mysql:
            # The first raw connection (committed behind the pool's back: unknown to it) and
            # the one returned inside a transaction were rolled back; the five commits not.
            assert _rollbacks(dbapi) - before == 2
            assert not dbapi.server_status & 1
        elif engine.dialect.name == "postgresql":
            assert dbapi.get_transaction_status() == 0  # idle, not in a transaction
        else:
            assert not dbapi.in_transaction
        raw.close()
    finally:
        engine.dispose()
