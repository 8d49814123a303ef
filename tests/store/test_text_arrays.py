"""PostgreSQL: store.fast_read sends a list of strings as one array literal in text form
(`{"a","b"}`); every string must read back as itself, whatever characters it holds."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lineagedb.store import fast_read
from lineagedb.store.unit_of_work import Database

AWKWARD = ["plain", "NULL", "null", "", " padded ", "a,b", "{braces}", 'say "hi"', "back\\slash", "\\", '"', "é ü ✓"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_text_arrays_keep_every_string(database: Database) -> None:
    value = sa.column("value", sa.Text)
    source = sa.values(value, name="candidates").data([(text,) for text in [*AWKWARD, "not asked for"]])
    statement = sa.select(source.c.value).where(source.c.value.in_(sa.bindparam("wanted", expanding=True)))
    with database.transaction() as uow:
        plan = fast_read._plan(statement, uow.connection.dialect)
        assert plan is not None and plan.arrays == {"wanted": "TEXT[]"}  # the path under test
        found = fast_read.rows(uow, statement, {"wanted": AWKWARD})
        assert sorted(row[0] for row in found) == sorted(AWKWARD)
        # The same statement with one string at a time: each matches exactly itself.
        for text in AWKWARD:
            assert [row[0] for row in fast_read.rows(uow, statement, {"wanted": [text]})] == [text]
