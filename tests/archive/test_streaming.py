"""Export streams: every read goes through yield_per, and the memory it peaks at does not grow
with the store (measured with tracemalloc, no timing). The control run, which fetches each
table whole, shows the measurement would see it if it did."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from lineagedb.store import archive
from lineagedb.store.schema import ARTIFACT_KIND
from lineagedb.store.unit_of_work import Database

FETCH = 100


def _fill(database: Database, first: int, count: int) -> None:
    """`count` artifacts (ids from `first`) with three properties each, straight into the tables."""
    schema = database.schema
    with database.engine.begin() as connection:
        type_id = connection.execute(
            sa.select(schema.type.c.id).where(schema.type.c.name == "Bulk", schema.type.c.type_kind == ARTIFACT_KIND)
        ).scalar()
        if type_id is None:
            type_id = connection.execute(
                sa.insert(schema.type).values(name="Bulk", type_kind=ARTIFACT_KIND).returning(schema.type.c.id)
            ).scalar_one()
        ids = range(first, first + count)
        connection.execute(
            sa.insert(schema.artifact),
            [
                {"id": i, "type_id": type_id, "uri": f"s3://bulk/{i:08d}/" + "x" * 200, "name": f"bulk-{i}", "state": 2}
                for i in ids
            ],
        )
        connection.execute(
            sa.insert(schema.artifact_property),
            [
                {"artifact_id": i, "name": name, "is_custom_property": True, "string_value": f"{name}-{i}" * 10}
                for i in ids
                for name in ("a", "b", "c")
            ],
        )


def _peak_export(database: Database) -> tuple[int, int]:
    """(peak bytes traced while exporting, rows exported)."""
    with database.engine.connect() as connection, connection.begin(), open(os.devnull, "wb") as sink:
        tracemalloc.start()
        try:
            _, trailer = archive.write_archive(connection, sink, archive.Scope(), 0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return peak, int(trailer["rows"])


@contextmanager
def _selects(engine: sa.Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, context.execution_options.get("yield_per")))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_every_row_read_is_streamed(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "FETCH_ROWS", FETCH)
    _fill(database, 1, 500)
    with _selects(database.engine) as seen, database.engine.connect() as connection, connection.begin():
        tally = archive.tally_database(connection, archive.Scope())
    assert tally.counts["artifact"] == 500 and tally.counts["artifact_property"] == 1500
    streamed = [statement for statement, yield_per in seen if yield_per == FETCH]
    # One streamed statement per section whose table exists (all of them in a current database).
    assert len(streamed) == len(archive.STORED_SECTIONS)
    others = [statement for statement, yield_per in seen if yield_per is None]
    # The rest read the catalog and the schema state, never a section's rows.
    for statement in others:
        for section in archive.STORED_SECTIONS:
            table = archive.table_for(database.schema, section.tag).name
            assert (
                f'FROM "{table}"' not in statement
                and f"FROM `{table}`" not in statement
                and (f"FROM {table}\n" not in statement)
            ), statement


def test_export_memory_does_not_grow_with_the_store(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "FETCH_ROWS", FETCH)
    _fill(database, 1, 1000)
    _peak_export(database)  # warm caches (compiled statements, the dialect's first-use state)
    small, small_rows = _peak_export(database)
    _fill(database, 1001, 3000)
    large, large_rows = _peak_export(database)
    assert large_rows > 3.5 * small_rows
    # Four times the rows, about the same peak (a streamed page is 100 rows, ~70 KB).
    assert large < small + 512 * 1024, (small, large)
    # Control: fetching each table whole, the same measurement grows with the store.
    monkeypatch.setattr(archive, "FETCH_ROWS", 10**9)
    whole, _ = _peak_export(database)
    assert whole > large + 2 * 1024 * 1024, (large, whole)
