"""Batched writes: the ids a batch returns name the rows written from each request entry.

On SQLite a batch is one executemany and its ids are derived from last_insert_rowid()
(store.bulk_insert); these tests pin that mapping, including the cases where SQLite's id
allocation could surprise: the newest row deleted just before, and interleaved batches.
"""

from __future__ import annotations

import sqlalchemy as sa

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from tests.service.helpers import put_artifact_type, put_artifacts, put_execution_type


def _artifacts(type_id: int, prefix: str, count: int) -> list[mlmd.Artifact]:
    return [
        mlmd.Artifact(
            type_id=type_id,
            uri=f"{prefix}/{i}",
            properties={"n": mlmd.Value(int_value=i), "s": mlmd.Value(string_value=f"{prefix}-{i}")},
            custom_properties={"flag": mlmd.Value(bool_value=i % 2 == 0)},
        )
        for i in range(count)
    ]


def _check_mapping(store: MetadataStore, ids: list[int], sent: list[mlmd.Artifact]) -> None:
    assert len(set(ids)) == len(ids) == len(sent)
    stored = {a.id: a for a in store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=ids)).artifacts}
    for artifact_id, artifact in zip(ids, sent, strict=True):
        got = stored[artifact_id]
        assert got.uri == artifact.uri
        assert got.properties["n"].int_value == artifact.properties["n"].int_value
        assert got.properties["s"].string_value == artifact.properties["s"].string_value
        assert got.custom_properties["flag"].bool_value == artifact.custom_properties["flag"].bool_value


def test_a_batch_returns_the_id_of_each_entry_in_request_order(store: MetadataStore) -> None:
    type_id = put_artifact_type(store, n=mlmd.INT, s=mlmd.STRING)
    first = _artifacts(type_id, "a", 120)
    _check_mapping(store, put_artifacts(store, *first), first)
    second = _artifacts(type_id, "b", 7)
    _check_mapping(store, put_artifacts(store, *second), second)


def test_ids_stay_right_after_the_newest_row_was_deleted(store: MetadataStore) -> None:
    # SQLite reuses the largest rowid once its row is gone; the batch must still map.
    type_id = put_artifact_type(store, n=mlmd.INT, s=mlmd.STRING)
    before = put_artifacts(store, *_artifacts(type_id, "old", 3))
    with store.db.transaction() as uow:
        artifact, props = uow.schema.artifact, uow.schema.artifact_property
        uow.execute(sa.delete(props).where(props.c.artifact_id == before[-1]))
        uow.execute(sa.delete(artifact).where(artifact.c.id == before[-1]))
    batch = _artifacts(type_id, "new", 25)
    ids = put_artifacts(store, *batch)
    _check_mapping(store, ids, batch)
    assert (
        before[-1]
        not in store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=before[:-1] + ids)).artifacts
    )


def test_a_lineage_batch_links_each_event_to_its_own_nodes(store: MetadataStore) -> None:
    artifact_type = put_artifact_type(store, n=mlmd.INT, s=mlmd.STRING)
    execution_type = put_execution_type(store)
    artifacts = _artifacts(artifact_type, "x", 6)
    executions = [mlmd.Execution(type_id=execution_type, name=f"run-{i}") for i in range(3)]
    edges = [
        svc.PutLineageSubgraphRequest.EventEdge(
            execution_index=i // 2,
            artifact_index=i,
            event=mlmd.Event(type=mlmd.Event.OUTPUT if i % 2 else mlmd.Event.INPUT, path=_path(i)),
        )
        for i in range(6)
    ]
    response = store.put_lineage_subgraph(
        svc.PutLineageSubgraphRequest(executions=executions, artifacts=artifacts, event_edges=edges)
    )
    _check_mapping(store, list(response.artifact_ids), artifacts)
    events = store.get_events_by_artifact_ids(
        svc.GetEventsByArtifactIDsRequest(artifact_ids=response.artifact_ids)
    ).events
    by_artifact = {event.artifact_id: event for event in events}
    for i, artifact_id in enumerate(response.artifact_ids):
        event = by_artifact[artifact_id]
        assert event.execution_id == response.execution_ids[i // 2]
        assert event.path == _path(i)


def _path(i: int) -> mlmd.Event.Path:
    return mlmd.Event.Path(steps=[mlmd.Event.Path.Step(key=f"k{i}"), mlmd.Event.Path.Step(index=i)])
