"""Database.transaction(write=False, single_statement=True): one read on the driver's cursor
with no BEGIN and COMMIT around it on SQLite, and still a proper transaction if a statement
through SQLAlchemy runs in it anyway (committed, or rolled back on an error)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lineagedb.store import fast_read
from lineagedb.store.unit_of_work import Database


def _count_types(database: Database) -> sa.Select[tuple[int]]:
    return sa.select(sa.func.count()).select_from(database.schema.type)


# SQLite only: PostgreSQL and MySQL reads send no BEGIN or COMMIT of their own anyway.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_driver_read_needs_no_begin_and_commit_on_sqlite(database: Database) -> None:
    begun: list[str] = []

    def read() -> int:
        with database.transaction(write=False, single_statement=True) as uow:
            dbapi = uow.connection.connection.dbapi_connection
            [(count,)] = fast_read.rows(uow, _count_types(database), {})
            begun.append("in transaction" if dbapi.in_transaction else "autocommit")  # type: ignore[union-attr]
            return int(count)

    assert read() == 9  # the system types
    assert begun == ["autocommit"]
    with database.transaction(write=False) as uow:  # the default still opens a transaction
        assert uow.connection.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]


def test_a_statement_through_sqlalchemy_still_runs_in_a_transaction(database: Database) -> None:
    with database.transaction(write=False, single_statement=True) as uow:
        assert uow.execute(_count_types(database)).scalar_one() == 9
        connection = uow.connection
    assert not connection.in_transaction()
    with database.transaction(write=False, single_statement=True) as uow:
        assert fast_read.rows(uow, _count_types(database), {})[0][0] == 9


def test_an_error_rolls_back_and_leaves_the_connection_usable(database: Database) -> None:
    with pytest.raises(RuntimeError), database.transaction(write=False, single_statement=True) as uow:
        uow.execute(_count_types(database))
        raise RuntimeError("the caller failed")
    with database.transaction(write=False, single_statement=True) as uow:
        assert fast_read.rows(uow, _count_types(database), {})[0][0] == 9
    with database.transaction() as uow:  # a write after it begins normally
        assert uow.execute(_count_types(database)).scalar_one() == 9
