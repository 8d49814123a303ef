"""SQLite transactions opened by Database: a write transaction that cannot take the lock is ABORTED."""

from __future__ import annotations

from pathlib import Path

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
