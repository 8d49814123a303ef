"""A fixed dataset written and read through the official ml-metadata client.

Runs under the official client's interpreter (.venv-mlmd). Used by
test_two_way.py to prove in-place compatibility in both directions:

    dataset.py fill  STORE   write the dataset
    dataset.py dump  STORE   print everything the store holds, as JSON

STORE is `grpc:HOST:PORT` (a LineageDB server), `sqlite:PATH`, or a
`mysql://user@host:port/db` / `postgresql://user@host:port/db` URL for MLMD's own
in-process store on that database.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from google.protobuf import json_format, wrappers_pb2
from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd
from scenario import server_connection  # type: ignore[import-not-found]


def open_store(spec: str) -> metadata_store.MetadataStore:
    if spec.startswith("grpc:"):
        _, host, port = spec.split(":")
        return metadata_store.MetadataStore(mlmd.MetadataStoreClientConfig(host=host, port=int(port)))
    if spec.startswith("sqlite:"):
        connection = mlmd.ConnectionConfig()
        connection.sqlite.filename_uri = spec[len("sqlite:") :]
        connection.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return metadata_store.MetadataStore(connection)
    return metadata_store.MetadataStore(server_connection(spec))


def _set(target: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        slot = target[name]
        if isinstance(value, bool):
            slot.bool_value = value
        elif isinstance(value, int):
            slot.int_value = value
        elif isinstance(value, float):
            slot.double_value = value
        elif isinstance(value, str):
            slot.string_value = value
        elif isinstance(value, dict):
            slot.struct_value.update(value)
        else:
            slot.proto_value.Pack(value)


ALL_KINDS = {"i": mlmd.INT, "d": mlmd.DOUBLE, "s": mlmd.STRING, "st": mlmd.STRUCT, "p": mlmd.PROTO, "b": mlmd.BOOLEAN}
ALL_VALUES = {
    "i": -123456,
    "d": 2.5,
    "s": "text ✓",
    "st": {"k": [1, "two", True, None], "n": {"x": 1.5}},
    "p": wrappers_pb2.StringValue(value="packed"),
    "b": False,
}


def fill(store: metadata_store.MetadataStore) -> None:
    dataset = mlmd.ArtifactType(name="Dataset", version="v1", description="training data", external_id="t-ds")
    dataset.properties.update(ALL_KINDS)
    dataset.base_type = mlmd.ArtifactType.DATASET
    dataset_id = store.put_artifact_type(dataset)
    model_id = store.put_artifact_type(mlmd.ArtifactType(name="Model"))
    trainer = mlmd.ExecutionType(name="Trainer", external_id="t-tr")
    trainer.properties.update(ALL_KINDS)
    trainer.base_type = mlmd.ExecutionType.TRAIN
    trainer_id = store.put_execution_type(trainer)
    run = mlmd.ContextType(name="Run", description="a pipeline run")
    run.properties.update(ALL_KINDS)
    run_id = store.put_context_type(run)

    artifacts = []
    for index in range(4):
        artifact = mlmd.Artifact(type_id=dataset_id, uri=f"s3://bucket/{index}", name=f"data-{index}")
        if index % 2 == 0:
            artifact.external_id = f"a-{index}"
            artifact.state = mlmd.Artifact.LIVE
        _set(artifact.properties, ALL_VALUES)
        _set(artifact.custom_properties, {"owner": "team", "score": 0.75, "flag": True, "meta": {"a": 1}})
        artifacts.append(artifact)
    artifacts.append(mlmd.Artifact(type_id=model_id, name="model"))
    artifact_ids = store.put_artifacts(artifacts)

    executions = []
    for index in range(2):
        execution = mlmd.Execution(type_id=trainer_id, name=f"train-{index}", last_known_state=mlmd.Execution.COMPLETE)
        _set(execution.properties, ALL_VALUES)
        _set(execution.custom_properties, {"attempt": index})
        executions.append(execution)
    execution_ids = store.put_executions(executions)

    contexts = []
    for index in range(3):
        context = mlmd.Context(type_id=run_id, name=f"run-{index}", external_id=f"c-{index}")
        _set(context.properties, ALL_VALUES)
        contexts.append(context)
    context_ids = store.put_contexts(contexts)

    events = []
    for position, artifact_id in enumerate(artifact_ids[:4]):
        event = mlmd.Event(artifact_id=artifact_id, execution_id=execution_ids[0], type=mlmd.Event.INPUT)
        event.path.steps.add().key = "examples"
        event.path.steps.add().index = position
        event.milliseconds_since_epoch = 1000 + position
        events.append(event)
    events.append(mlmd.Event(artifact_id=artifact_ids[4], execution_id=execution_ids[0], type=mlmd.Event.OUTPUT))
    events.append(mlmd.Event(artifact_id=artifact_ids[4], execution_id=execution_ids[1], type=mlmd.Event.INPUT))
    store.put_events(events)
    store.put_attributions_and_associations(
        [mlmd.Attribution(context_id=context_ids[0], artifact_id=a) for a in artifact_ids],
        [mlmd.Association(context_id=context_ids[0], execution_id=e) for e in execution_ids],
    )
    store.put_parent_contexts(
        [
            mlmd.ParentContext(child_id=context_ids[1], parent_id=context_ids[0]),
            mlmd.ParentContext(child_id=context_ids[2], parent_id=context_ids[1]),
        ]
    )


def _messages(items: Any) -> list[Any]:
    return [json_format.MessageToDict(item, preserving_proto_field_name=True) for item in items]


def dump(store: metadata_store.MetadataStore) -> dict[str, Any]:
    artifacts = sorted(store.get_artifacts(), key=lambda a: a.id)
    executions = sorted(store.get_executions(), key=lambda e: e.id)
    contexts = sorted(store.get_contexts(), key=lambda c: c.id)
    artifact_ids = [a.id for a in artifacts]
    execution_ids = [e.id for e in executions]

    def contexts_of(read: Any, node_id: int) -> list[int]:
        try:
            return sorted(c.id for c in read(node_id))
        except errors.NotFoundError:
            return []

    return {
        "artifact_types": _messages(sorted(store.get_artifact_types(), key=lambda t: t.id)),
        "execution_types": _messages(sorted(store.get_execution_types(), key=lambda t: t.id)),
        "context_types": _messages(sorted(store.get_context_types(), key=lambda t: t.id)),
        "system_types": _messages(store.get_artifact_types_by_id(range(1, 5))),
        "artifacts": _messages(artifacts),
        "executions": _messages(executions),
        "contexts": _messages(contexts),
        "events": _messages(
            sorted(
                store.get_events_by_artifact_ids(artifact_ids),
                key=lambda e: (e.artifact_id, e.execution_id, e.type),
            )
        ),
        "attributions": {a: contexts_of(store.get_contexts_by_artifact, a) for a in artifact_ids},
        "associations": {e: contexts_of(store.get_contexts_by_execution, e) for e in execution_ids},
        "parents": {c.id: sorted(p.id for p in store.get_parent_contexts_by_context(c.id)) for c in contexts},
        "children": {c.id: sorted(p.id for p in store.get_children_contexts_by_context(c.id)) for c in contexts},
    }


def main() -> int:
    action, spec = sys.argv[1], sys.argv[2]
    store = open_store(spec)
    if action == "fill":
        fill(store)
    else:
        json.dump(dump(store), sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
