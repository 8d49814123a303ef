"""Node and event encodings kept across reads (store.encoded_cache): a read parses a
node or event from the encoding of an earlier read only while its row is unchanged, and
answers equal those of a database read without any kept encoding."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.answers.service import LineageAnswers
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import encoded_cache
from lineagedb.store.engine import create_engine
from lineagedb.store.unit_of_work import Database
from tests.conftest import FakeClock


def _cache(database: Database, name: str) -> encoded_cache.EncodedCache:
    return encoded_cache.for_engine(database.engine, name)


def _kept(database: Database, name: str) -> int:
    """Rows with an encoding kept (a row read once is only recorded)."""
    return sum(1 for _, data in _cache(database, name).entries.values() if data is not None)


def _type(store: MetadataStore) -> int:
    artifact_type = mlmd.ArtifactType(name="Dataset")
    artifact_type.properties["span"] = mlmd.INT
    return store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=artifact_type)).type_id


def _artifact(type_id: int, name: str, span: int, **custom: str) -> mlmd.Artifact:
    artifact = mlmd.Artifact(type_id=type_id, name=name, uri=f"/data/{name}")
    artifact.properties["span"].int_value = span
    for key, value in custom.items():
        artifact.custom_properties[key].string_value = value
    return artifact


def _by_id(store: MetadataStore, ids: list[int]) -> list[Any]:
    return list(store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=ids)).artifacts)


@pytest.fixture
def uncached(database: Database) -> Any:
    """A second engine on the same database: its reads start without kept encodings."""
    engines = []

    def store() -> MetadataStore:
        engine = create_engine(database.engine.url)
        engines.append(engine)
        return MetadataStore(Database(engine))

    yield store
    for engine in engines:
        engine.dispose()


def test_unchanged_nodes_come_from_kept_encodings_and_changes_are_read(
    store: MetadataStore, database: Database, uncached: Any
) -> None:
    type_id = _type(store)
    put = svc.PutArtifactsRequest(artifacts=[_artifact(type_id, f"a{i}", i, digest=f"d{i}") for i in range(3)])
    ids = list(store.put_artifacts(put).artifact_ids)
    first = _by_id(store, ids)
    assert len(_cache(database, "artifact")) == 3  # the fake clock's rows are long settled
    assert _kept(database, "artifact") == 0  # recorded, encoded from the second read on
    assert _by_id(store, ids) == first
    assert _kept(database, "artifact") == 3
    assert _by_id(store, ids) == first  # parsed from the kept encodings
    # Every update moves last_update_time: a changed property, name or URI is read again.
    changed = mlmd.Artifact()
    changed.CopyFrom(first[1])
    changed.properties["span"].int_value = 42
    del changed.custom_properties["digest"]
    changed.uri = "/data/moved"
    store.put_artifacts(svc.PutArtifactsRequest(artifacts=[changed]))
    after = _by_id(store, ids)
    assert after[1].properties["span"].int_value == 42
    assert "digest" not in after[1].custom_properties
    assert after[1].uri == "/data/moved"
    assert after[0] == first[0] and after[2] == first[2]
    assert after == _by_id(uncached(), ids)


def test_kept_and_new_nodes_keep_their_order(store: MetadataStore, database: Database, uncached: Any) -> None:
    type_id = _type(store)
    ids = list(
        store.put_artifacts(
            svc.PutArtifactsRequest(artifacts=[_artifact(type_id, f"a{i}", i) for i in range(6)])
        ).artifact_ids
    )
    _by_id(store, ids[1::2])
    _by_id(store, ids[1::2])  # every other one kept
    assert _kept(database, "artifact") == 3
    mixed = _by_id(store, ids)
    assert [a.id for a in mixed] == sorted(ids)
    assert mixed == _by_id(uncached(), ids)
    # The same through a listing read and one without a response to build in.
    listed = store.get_artifacts(svc.GetArtifactsRequest()).artifacts
    assert list(listed) == mixed


def test_recently_written_rows_are_not_kept(database: Database) -> None:
    # The wall clock: a row written within SETTLED_MS may still change within its millisecond.
    store = MetadataStore(database)
    type_id = _type(store)
    ids = list(store.put_artifacts(svc.PutArtifactsRequest(artifacts=[_artifact(type_id, "a", 1)])).artifact_ids)
    for _ in range(3):
        assert [a.name for a in _by_id(store, ids)] == ["a"]
    assert len(_cache(database, "artifact")) == 0


def test_a_full_cache_drops_its_oldest_entries() -> None:
    cache = encoded_cache.EncodedCache(limit=10)
    for key in range(10):
        cache.put(key, (key,), b"x")
    cache.put(10, (10,), b"y")
    assert len(cache) == 10 and 0 not in cache.entries and 10 in cache.entries
    cache.put_many([(key, ((key,), None)) for key in range(20, 25)])
    assert len(cache) <= 10 and all(key in cache.entries for key in range(20, 25))


def test_delimited_encodings_parse_into_a_field() -> None:
    # A repeated field on the wire: each element after the field's tag, its length first.
    sizes = [0, 1, 127, 128, 4095, 4096, 20000]
    artifacts = [mlmd.Artifact(uri="u" * n) if n else mlmd.Artifact() for n in sizes]
    response = svc.GetArtifactsByIDResponse()
    field = encoded_cache.Field(response, "artifacts")
    field.append([encoded_cache.delimited(a.SerializeToString()) for a in artifacts])
    assert list(response.artifacts) == artifacts
    parsed = encoded_cache.parsed(
        mlmd.Artifact, [encoded_cache.delimited(a.SerializeToString()) for a in artifacts], None
    )
    assert parsed == artifacts


def _pipeline(store: MetadataStore) -> tuple[int, int]:
    """A chain dataset -> train -> model -> eval -> report, in a run context; (dataset, report)."""
    type_id = _type(store)
    execution_type = store.put_execution_type(
        svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="Step"))
    ).type_id
    context_type = store.put_context_type(svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="Run"))).type_id
    run = mlmd.Context(type_id=context_type, name="run-1")
    first = store.put_artifacts(svc.PutArtifactsRequest(artifacts=[_artifact(type_id, "dataset", 0)])).artifact_ids[0]
    upstream = first
    for step in range(2):
        request = svc.PutExecutionRequest(execution=mlmd.Execution(type_id=execution_type), contexts=[run])
        request.options.reuse_context_if_already_exist = True
        pair = request.artifact_event_pairs.add(artifact=mlmd.Artifact(id=upstream, type_id=type_id))
        pair.event.type = mlmd.Event.INPUT
        pair.event.path.steps.add(key="examples")
        pair = request.artifact_event_pairs.add(artifact=_artifact(type_id, f"out{step}", step))
        pair.event.type = mlmd.Event.OUTPUT
        pair.event.path.steps.add(key="model")
        pair.event.path.steps.add(index=step)
        upstream = store.put_execution(request).artifact_ids[1]
    return first, upstream


def test_lineage_answers_from_kept_encodings_equal_fresh_ones(
    store: MetadataStore, database: Database, uncached: Any
) -> None:
    first, last = _pipeline(store)
    answers = LineageAnswers(database)
    provenance = pb.ClosureRequest(node=pb.NodeRef(artifact_id=last))
    impact = pb.ImpactRequest(node=pb.NodeRef(artifact_id=first))
    cold = answers.provenance(provenance), answers.impact(impact)
    assert _kept(database, "event") == 4  # events are kept from their first read (encoded from the rows)
    assert _kept(database, "artifact") == 3 and _kept(database, "execution") == 2
    warm = answers.provenance(provenance), answers.impact(impact)
    fresh = LineageAnswers(uncached().db)
    assert warm == cold == (fresh.provenance(provenance), fresh.impact(impact))
    assert [list(e.path.steps) for e in warm[0].events][1] == [
        mlmd.Event.Path.Step(key="model"),
        mlmd.Event.Path.Step(index=0),
    ]
    assert len(warm[0].attributions) == 3 and len(warm[0].associations) == 2
    assert [c.name for c in warm[1].contexts] == ["run-1"]


def test_events_without_a_time_are_not_kept(database: Database) -> None:
    store = MetadataStore(database, clock=FakeClock())
    _, last = _pipeline(store)
    with database.engine.begin() as connection:
        connection.execute(sa.update(database.schema.event).values(milliseconds_since_epoch=None))
    for _ in range(2):
        answer = LineageAnswers(database).provenance(pb.ClosureRequest(node=pb.NodeRef(artifact_id=last)))
    assert len(answer.events) == 4 and not any(e.HasField("milliseconds_since_epoch") for e in answer.events)
    assert len(_cache(database, "event")) == 0
