"""One small MLMD workload, run through lineagedb.client remote and embedded alike."""

from __future__ import annotations

import pytest

from lineagedb.client import ListOptions, MetadataStore, OrderByField, errors, proto


def exercise(store: MetadataStore) -> None:
    dataset = proto.ArtifactType(name="DataSet")
    dataset.properties["rows"] = proto.INT
    dataset_id = store.put_artifact_type(dataset)
    assert store.put_artifact_type(dataset) == dataset_id  # the same type again: same id
    trainer_id = store.put_execution_type(proto.ExecutionType(name="Trainer"))
    pipeline_id = store.put_context_type(proto.ContextType(name="Pipeline"))

    data = proto.Artifact(type_id=dataset_id, uri="/data/train.csv", name="train")
    data.properties["rows"].int_value = 3
    [data_id] = store.put_artifacts([data])
    data.id = data_id
    execution = proto.Execution(type_id=trainer_id, last_known_state=proto.Execution.COMPLETE)
    model = proto.Artifact(type_id=dataset_id, uri="/models/1")
    execution_id, artifact_ids, context_ids = store.put_execution(
        execution,
        [
            (data, proto.Event(type=proto.Event.INPUT)),
            (model, proto.Event(type=proto.Event.OUTPUT)),
        ],
        [proto.Context(type_id=pipeline_id, name="churn")],
    )
    assert artifact_ids[0] == data_id and len(artifact_ids) == 2 and len(context_ids) == 1

    [stored] = store.get_artifacts_by_uri("/data/train.csv")
    assert stored.id == data_id and stored.properties["rows"].int_value == 3
    assert store.get_artifact_by_type_and_name("DataSet", "train") == stored
    assert store.get_artifact_by_type_and_name("DataSet", "missing") is None
    context = store.get_context_by_type_and_name("Pipeline", "churn")
    assert context is not None and context.id == context_ids[0]
    assert store.get_context_by_type_and_name("Pipeline", "missing") is None
    events = store.get_events_by_execution_ids([execution_id])
    assert sorted((e.artifact_id, e.type) for e in events) == sorted(
        [(data_id, proto.Event.INPUT), (artifact_ids[1], proto.Event.OUTPUT)]
    )
    assert [c.id for c in store.get_contexts_by_execution(execution_id)] == context_ids
    assert [e.id for e in store.get_executions_by_context(context_ids[0])] == [execution_id]
    assert store.get_artifact_type("DataSet").id == dataset_id
    assert [t.name for t in store.get_artifact_types_by_id([dataset_id])] == ["DataSet"]

    # Paging: 105 artifacts read back in pages of 100, a limit cuts across pages.
    store.put_artifacts([proto.Artifact(type_id=dataset_id, uri=f"/bulk/{i}") for i in range(105)])
    assert len(store.get_artifacts()) == 107
    newest = store.get_artifacts(ListOptions(limit=101, order_by=OrderByField.ID, is_asc=False))
    assert len(newest) == 101 and newest[0].id > newest[-1].id
    assert len(store.get_artifacts(ListOptions(filter_query="uri LIKE '/bulk/1%'"))) == 16

    with pytest.raises(errors.NotFoundError) as missing:
        store.get_artifact_type("NoSuchType")
    assert missing.value.error_code == errors.NOT_FOUND
    with pytest.raises(errors.AlreadyExistsError):
        store.put_artifacts([proto.Artifact(type_id=dataset_id, uri="/again", name="train")])
    with pytest.raises(errors.InvalidArgumentError):
        store.get_artifacts(ListOptions(limit=0))
