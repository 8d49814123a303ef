"""MySQL/MariaDB with PyMySQL: a read transaction sends each statement as "<statement>; COMMIT"
(store.engine.COMMIT_EACH), so its end sends no COMMIT. What must hold: one query per statement
and none at the end; answers are the statement's own; no transaction is left open on the pooled
connection (whatever path the read took); writes and transactions opened outside Database
(engine.begin()) stay atomic on a connection a read used before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa

from lineagedb.store.engine import COMMIT_EACH
from lineagedb.store.unit_of_work import Database
from tests.backends import one_connection_database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with one_connection_database("mysql", str(tmp_path)) as database:
        yield database


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every query PyMySQL sends (one network round trip each), in order."""
    sent: list[str] = []
    original = pymysql.connections.Connection._execute_command

    def execute_command(self: Any, command: int, sql: Any) -> Any:
        if command == pymysql.constants.COMMAND.COM_QUERY:  # queries, COMMIT and ROLLBACK
            sent.append(sql.decode() if isinstance(sql, bytes) else sql)
        return original(self, command, sql)

    monkeypatch.setattr(pymysql.connections.Connection, "_execute_command", execute_command)
    return sent


def _in_transaction(database: Database) -> int:
    """MariaDB's @@in_transaction of the pooled connection, read outside any transaction."""
    raw = database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT @@in_transaction")
        (value,) = cursor.fetchone()
        cursor.close()
        return int(value)
    finally:
        raw.close()  # SQLAlchemy rolls a raw connection back: read the value before that


def test_a_read_is_one_query_per_statement_and_none_at_its_end(database: Database, queries: list[str]) -> None:
    with database.transaction(write=False) as uow:
        count = uow.connection.execute(sa.text("SELECT count(*) FROM Type")).scalar_one()
        rows, description = uow.fetch_driver_sql("SELECT name FROM Type WHERE id = %(id)s", {"id": 1})
    assert count > 0 and len(rows) == 1 and description is not None and description[0][0] == "name"
    assert len(queries) == 2, queries
    assert all(sql.endswith("; COMMIT") for sql in queries)
    assert _in_transaction(database) == 0


def test_no_transaction_is_left_open_by_a_read_on_any_path(database: Database, queries: list[str]) -> None:
    with database.transaction(write=False) as uow:  # streamed: sent without its COMMIT
        streamed = uow.connection.execute(sa.text("SELECT id FROM Type"), execution_options={"yield_per": 2})
        assert len(list(streamed)) > 2
    assert queries[-1] == "COMMIT", "the transaction's COMMIT is sent when a statement went without one"
    assert _in_transaction(database) == 0
    with pytest.raises(sa.exc.OperationalError), database.transaction(write=False) as uow:  # a failing statement
        uow.connection.execute(sa.text("SELECT no_such_column FROM Type"))
    assert _in_transaction(database) == 0
    with database.transaction(write=False) as uow:  # a result left unread
        uow.connection.execute(sa.text("SELECT id FROM Type"))
    assert _in_transaction(database) == 0
    with database.transaction(write=False) as uow:
        assert COMMIT_EACH in uow.connection.info
    with database.transaction() as uow:
        assert COMMIT_EACH not in uow.connection.info, "a write is one transaction"


def test_writes_after_a_read_stay_atomic(database: Database) -> None:
    insert = sa.text("INSERT INTO Type (name, type_kind) VALUES (:name, 1)")
    with database.transaction(write=False) as uow:
        uow.connection.execute(sa.text("SELECT count(*) FROM Type")).scalar_one()
    with pytest.raises(RuntimeError), database.transaction() as uow:
        uow.connection.execute(insert, {"name": "rolled-back-1"})
        uow.connection.execute(insert, {"name": "rolled-back-2"})
        raise RuntimeError("abandon the write")
    with database.transaction(write=False) as uow:
        uow.connection.execute(sa.text("SELECT 1")).all()
    with pytest.raises(RuntimeError), database.engine.begin() as connection:  # outside Database
        connection.execute(insert, {"name": "rolled-back-3"})
        raise RuntimeError("abandon the engine's transaction")
    with database.transaction(write=False) as uow:
        left = uow.connection.execute(sa.text("SELECT count(*) FROM Type WHERE name LIKE 'rolled-back-%'"))
        assert left.scalar_one() == 0


def test_mysqlclient_errors_are_classified_by_number() -> None:
    """mysql+mysqldb:// URLs: mysqlclient's errors carry the server's number as PyMySQL's do."""
    from lineagedb import errors
    from lineagedb.store.unit_of_work import UniqueViolation, classify_driver_error

    def mysqldb_error(number: int) -> sa.exc.DBAPIError:
        # The class mysqlclient raises (MySQLdb._exceptions.OperationalError), without the module.
        error_class = type("OperationalError", (Exception,), {"__module__": "MySQLdb._exceptions"})
        return sa.exc.OperationalError("SELECT 1", None, error_class(number, "message"))

    assert isinstance(classify_driver_error(mysqldb_error(1213)), errors.AbortedError)  # deadlock, Galera conflict
    assert isinstance(classify_driver_error(mysqldb_error(1205)), errors.AbortedError)  # lock wait timeout
    assert isinstance(classify_driver_error(mysqldb_error(1062)), UniqueViolation)
    assert isinstance(classify_driver_error(mysqldb_error(2013)), errors.UnavailableError)
