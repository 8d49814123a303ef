"""MySQL/MariaDB: a write transaction's lock of MLMDEnv's row travels with its first statement
(store.engine.STATEMENT_PREFIX, several statements per query). What must hold: the lock is
held once the first statement ran, whichever path sent it (SQLAlchemy, the driver's cursor,
executemany); the statement's own result, row count and errors are what callers see; a
prefix never sent is not carried into the connection's next transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lineagedb import errors
from lineagedb.store.engine import STATEMENT_PREFIX
from lineagedb.store.unit_of_work import Database, UniqueViolation
from tests.backends import one_connection_database

# MariaDB's answer to a NOWAIT lock request that would have to wait.
_LOCK_WAIT = 1205


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with one_connection_database("mysql", str(tmp_path)) as database:
        yield database


@pytest.fixture
def other(database: Database) -> Iterator[Any]:
    """A raw connection of another session, to probe the locks the tested one holds."""
    engine = sa.create_engine(database.engine.url)
    connection = engine.raw_connection()
    yield connection
    connection.close()
    engine.dispose()


def _lock_error(other: Any, mode: str) -> int | None:
    """The error number of taking MLMDEnv's row in `mode` without waiting; None if it was free."""
    cursor = other.cursor()
    try:
        cursor.execute(f"SELECT schema_version FROM MLMDEnv {mode} NOWAIT")
        cursor.fetchall()
        return None
    except Exception as error:  # the driver's OperationalError
        return int(error.args[0])
    finally:
        cursor.close()
        other.rollback()


def test_the_writers_lock_is_held_once_the_first_statement_ran(database: Database, other: Any) -> None:
    with database.transaction() as uow:
        assert uow.connection.info.get(STATEMENT_PREFIX) is not None, "sent with the first statement"
        assert _lock_error(other, "FOR UPDATE") is None
        rows = uow.connection.execute(sa.text("SELECT count(*) FROM Type")).scalar_one()
        assert rows > 0, "the statement's own result, not the lock's"
        assert STATEMENT_PREFIX not in uow.connection.info
        assert _lock_error(other, "FOR UPDATE") == _LOCK_WAIT  # shared: an exclusive taker waits
        assert _lock_error(other, "LOCK IN SHARE MODE") is None  # writers do not exclude each other
    assert _lock_error(other, "FOR UPDATE") is None


def test_the_driver_cursor_path_sends_the_lock_and_reads_its_own_rows(database: Database, other: Any) -> None:
    with database.transaction() as uow:
        rows, description = uow.fetch_driver_sql("SELECT name FROM Type WHERE id = %(id)s", {"id": 1})
        assert len(rows) == 1 and description is not None and description[0][0] == "name"
        assert _lock_error(other, "FOR UPDATE") == _LOCK_WAIT


def test_a_type_write_takes_the_row_exclusively_in_the_same_round_trip(database: Database, other: Any) -> None:
    with database.transaction() as uow:
        uow.lock("type:Dataset")
        assert "FOR UPDATE" in uow.connection.info[STATEMENT_PREFIX]
        assert "SHARE" not in uow.connection.info[STATEMENT_PREFIX], "not shared, then upgraded"
        uow.connection.execute(sa.text("SELECT 1")).all()
        assert _lock_error(other, "LOCK IN SHARE MODE") == _LOCK_WAIT


def test_a_deletion_takes_the_row_exclusively(database: Database, other: Any) -> None:
    with database.transaction(exclusive=True) as uow:
        uow.connection.execute(sa.text("SELECT 1")).all()
        assert _lock_error(other, "LOCK IN SHARE MODE") == _LOCK_WAIT


def test_an_executemany_first_statement_inserts_every_row_under_the_lock(database: Database, other: Any) -> None:
    statement = sa.text("INSERT INTO Type (name, type_kind) VALUES (:name, 1)")
    with database.transaction() as uow:
        result = uow.connection.execute(statement, [{"name": "many-1"}, {"name": "many-2"}, {"name": "many-3"}])
        assert result.rowcount == 3
        assert _lock_error(other, "FOR UPDATE") == _LOCK_WAIT
    with database.transaction(write=False) as uow:
        found = uow.connection.execute(sa.text("SELECT count(*) FROM Type WHERE name LIKE 'many-%'")).scalar_one()
    assert found == 3


def test_a_failing_first_statement_is_classified_and_the_connection_goes_on(database: Database) -> None:
    with database.transaction() as uow:
        [type_id] = uow.connection.execute(sa.text("SELECT min(id) FROM Type")).one()
    duplicate = sa.text("INSERT INTO Type (id, name, type_kind) VALUES (:id, 'clash', 1)")
    with pytest.raises(UniqueViolation), database.transaction() as uow:
        uow.execute(duplicate, {"id": type_id})
    with pytest.raises(errors.AlreadyExistsError), database.transaction() as uow:
        uow.fetch_driver_sql("INSERT INTO Type (id, name, type_kind) VALUES (%(id)s, 'clash', 1)", {"id": type_id})
    with database.transaction() as uow:  # the same (only) connection, in step with the server
        inserted = uow.connection.execute(sa.text("INSERT INTO Type (name, type_kind) VALUES ('after', 1)"))
        assert inserted.rowcount == 1 and inserted.lastrowid > type_id


def test_a_prefix_never_sent_is_not_carried_into_the_next_transaction(database: Database, other: Any) -> None:
    with database.transaction():
        pass  # a write that sent nothing
    with database.transaction(write=False) as uow:
        assert STATEMENT_PREFIX not in uow.connection.info
        uow.connection.execute(sa.text("SELECT count(*) FROM Type")).all()
        assert _lock_error(other, "FOR UPDATE") is None, "a read holds no lock"
    with pytest.raises(RuntimeError), database.transaction():
        raise RuntimeError("rolled back before its first statement")
    with database.transaction(write=False) as uow:
        assert STATEMENT_PREFIX not in uow.connection.info


def test_a_streamed_first_statement_reads_every_row_under_the_lock(database: Database, other: Any) -> None:
    with database.transaction() as uow:
        expected = uow.connection.info[STATEMENT_PREFIX]
        assert expected
        result = uow.connection.execute(sa.text("SELECT id FROM Type ORDER BY id"), execution_options={"yield_per": 2})
        streamed = [row[0] for row in result]
        assert _lock_error(other, "FOR UPDATE") == _LOCK_WAIT
        assert streamed == [row[0] for row in uow.connection.execute(sa.text("SELECT id FROM Type ORDER BY id"))]
        assert len(streamed) > 2
