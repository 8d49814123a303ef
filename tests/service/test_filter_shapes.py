"""The shapes a filtered page takes on SQLite (store.repositories.listing, PROBE_ROWS).

SQLite builds the whole `id IN (filter)` list before a page takes its first rows, so a
filtered page in ascending id order there first probes for at most PROBE_ROWS matches
and then reads the matches it found by id (IDS), walks the rows in id order testing each
one (ROWS), or falls back to `IN`. These tests lower the thresholds so that small stores take every shape, and
check that every shape returns what `IN` returns, and that the statements have the plans
the choice is for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import create_engine
from lineagedb.store.repositories import listing
from lineagedb.store.unit_of_work import Database
from tests.conftest import FakeClock
from tests.service import test_paging
from tests.service.helpers import put_artifact_type, put_artifacts

FilterShape = listing.FilterShape


@pytest.fixture
def shapes(monkeypatch: pytest.MonkeyPatch) -> Counter[FilterShape]:
    """Small thresholds (so ~100 matches take every shape), and a count of the shapes taken."""
    monkeypatch.setattr(listing, "PROBE_ROWS", 30)
    monkeypatch.setattr(listing, "SCAN_ROWS", 40)
    taken: Counter[FilterShape] = Counter()
    choose = listing._sqlite_shape

    def counting(*args: Any) -> tuple[FilterShape, list[int]]:
        shape, rest = choose(*args)
        taken[shape] += 1
        return shape, rest

    monkeypatch.setattr(listing, "_sqlite_shape", counting)
    return taken


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_shape_walks_a_filter_like_in_does(
    store: MetadataStore, clock: FakeClock, shapes: Counter[FilterShape]
) -> None:
    # test_paging's data (times that tie and are not monotonic in id, distractors of another
    # type) and its walk: every ordering and page size, each node once, in order.
    data = test_paging.build(store, clock)
    [filtered] = [item for item in test_paging.LISTINGS if item.filter_query]
    test_paging._check_walk(filtered, store, data, test_paging.PAGE_SIZES)
    # In ascending id order small pages walk (ROWS), the last pages read the probe's ids (IDS)
    # and big pages fall back to IN; other orders keep IN.
    assert set(shapes) == set(FilterShape), shapes


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[MetadataStore, list[str]]]:
    """A SQLite store and the statements its connections run (bound values inlined)."""
    statements: list[str] = []
    engine = create_engine(f"sqlite:///{tmp_path / 'traced.db'}")
    sa.event.listen(engine, "connect", lambda dbapi, _: dbapi.set_trace_callback(statements.append))
    prepare_database(engine)
    database = Database(engine)
    yield MetadataStore(database, clock=FakeClock()), statements
    database.dispose()


def _page_plan(store: MetadataStore, statements: list[str], query: str) -> list[str]:
    """EXPLAIN QUERY PLAN of the statement that read the first page of `query`."""
    statements.clear()
    options = mlmd.ListOperationOptions(max_result_size=20, filter_query=query)
    store.get_artifacts(svc.GetArtifactsRequest(options=options))
    [page] = [sql for sql in statements if sql.lstrip().startswith("SELECT") and 'LEFT OUTER JOIN "Type"' in sql]
    with store.db.engine.connect() as connection:
        return [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {page}")]


def test_sqlite_pages_a_broad_filter_without_listing_every_match(
    traced: tuple[MetadataStore, list[str]], shapes: Counter[FilterShape], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, statements = traced
    monkeypatch.setattr(listing, "SCAN_ROWS", 4 * 30)
    type_id = put_artifact_type(store, "Sized", k=mlmd.INT)
    for start in range(0, 400, 100):
        put_artifacts(
            store,
            *(
                mlmd.Artifact(type_id=type_id, uri=f"u{i}", properties={"k": mlmd.Value(int_value=i % 4)})
                for i in range(start, start + 100)
            ),
        )
    # 100 matches (more than PROBE_ROWS), one in every 4 ids: the page's 21 rows lie within
    # the first 84 ids (at most SCAN_ROWS), so it walks ids in order and stops there.
    broad = _page_plan(store, statements, "properties.k.int_value = 1")
    assert not any("LIST SUBQUERY" in step or "TEMP B-TREE" in step for step in broad), broad
    assert any(step.startswith("SCAN Artifact") for step in broad), broad
    assert shapes == {FilterShape.ROWS: 1}
    # 1 match: the page reads it by id, without scanning the table.
    narrow = _page_plan(store, statements, "uri = 'u77'")
    assert shapes[FilterShape.IDS] == 1
    assert not any(step.startswith("SCAN") for step in narrow), narrow
