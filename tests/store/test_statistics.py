"""Bulk writes refresh PostgreSQL's planner statistics without waiting for autovacuum."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import statistics
from lineagedb.store.unit_of_work import Database


def _load(store: MetadataStore, batches: int) -> None:
    type_id = store.put_artifact_type(
        svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Bulk", properties={"n": mlmd.INT}))
    ).type_id
    for batch in range(batches):
        artifacts = [
            mlmd.Artifact(type_id=type_id, uri=f"bulk/{batch}/{i}", properties={"n": mlmd.Value(int_value=i)})
            for i in range(100)
        ]
        store.put_artifacts(svc.PutArtifactsRequest(artifacts=artifacts))


def _manually_analyzed(database: Database) -> set[str]:
    with database.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL")
        ).scalars()
        return set(rows)


def test_a_bulk_load_analyzes_the_tables_it_grew(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statistics, "MIN_ROWS", 1_000)
    store = MetadataStore(database)
    keeper = database.statistics
    if database.dialect != "postgresql":
        # InnoDB and SQLite need no help; nothing is counted or run.
        _load(store, 2)
        assert not keeper.enabled and keeper._running is None
        return
    assert _manually_analyzed(database) == set()  # last_analyze is ours alone: autovacuum sets last_autoanalyze
    _load(store, 4)  # 400 artifacts, 400 property rows: below the threshold
    keeper.wait(30)
    assert _manually_analyzed(database) == set()
    _load(store, 8)  # now 1,200 of each
    keeper.wait(30)
    assert {"artifact", "artifactproperty"} <= _manually_analyzed(database)
