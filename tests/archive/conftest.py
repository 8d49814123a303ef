"""Archive tests: a varied store, every MLMD read of it, and databases on other backends.

`write_varied_store` writes the two TFX-shaped runs of the lineage tests (through the
official client's method names, tests/answers/conftest.py's LocalClient) plus nodes that
use everything the schema can hold: types with properties of every kind, a base type,
versions, descriptions, external ids and execution input/output types; property values of
every kind (int64 extremes, doubles, non-ASCII text, STRUCT, PROTO, booleans); events
with and without paths; attributions, associations, parent contexts; nodes in a
namespace, and edges between namespaces.

`views` reads a store back through every read RPC of MetadataStore that an official
client has, as text: two stores hold the same data for a client exactly when their views
are equal.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import any_pb2, struct_pb2, text_format, wrappers_pb2

from lineagedb import errors
from lineagedb.ops import archive as ops_archive
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import tenancy
from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import create_engine
from lineagedb.store.tenancy import Tenancy
from lineagedb.store.unit_of_work import Database
from tests.answers import tfx_pipeline
from tests.answers.conftest import LocalClient
from tests.backends import require_backend, scratch_database
from tests.conftest import FakeClock
from tests.tenancy.world import acting_as

# Each backend's archive goes to the next one: SQLite -> PostgreSQL -> MariaDB -> SQLite.
NEXT_BACKEND = {"sqlite": "postgresql", "postgresql": "mysql", "mysql": "sqlite"}
TEAM = "team-a"
TEAM_WRITER = Tenancy(namespace=TEAM)


@dataclass
class Store:
    url: str
    database: Database
    store: MetadataStore


@contextmanager
def open_store(url: str, clock: FakeClock | None = None) -> Iterator[Store]:
    engine = create_engine(url)
    prepare_database(engine)
    database = Database(engine)
    try:
        yield Store(url, database, MetadataStore(database, clock=clock or FakeClock(1_800_000_000_000)))
    finally:
        database.dispose()


@contextmanager
def scratch_store(backend: str, directory: Path) -> Iterator[Store]:
    """A fresh database of `backend` (skipped if its server does not answer)."""
    require_backend(backend)
    directory.mkdir(parents=True, exist_ok=True)
    with scratch_database(backend, str(directory)) as url, open_store(url) as opened:
        yield opened


@pytest.fixture
def other_backend(backend: str) -> str:
    return NEXT_BACKEND[backend]


# -- writing --------------------------------------------------------------------------------------


def _value(value: Any) -> mlmd.Value:
    result = mlmd.Value()
    if isinstance(value, bool):
        result.bool_value = value
    elif isinstance(value, int):
        result.int_value = value
    elif isinstance(value, float):
        result.double_value = value
    elif isinstance(value, str):
        result.string_value = value
    elif isinstance(value, struct_pb2.Struct):
        result.struct_value.CopyFrom(value)
    elif isinstance(value, any_pb2.Any):
        result.proto_value.CopyFrom(value)
    else:
        raise TypeError(value)
    return result


def _fill(node: Any, properties: dict[str, Any], custom: dict[str, Any]) -> Any:
    for name, value in properties.items():
        node.properties[name].CopyFrom(_value(value))
    for name, value in custom.items():
        node.custom_properties[name].CopyFrom(_value(value))
    return node


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(data)
    return result


def _packed(text: str) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.StringValue(value=text))
    return packed


EVERY_KIND = {"i": mlmd.INT, "d": mlmd.DOUBLE, "s": mlmd.STRING, "st": mlmd.STRUCT, "p": mlmd.PROTO, "b": mlmd.BOOLEAN}


def every_value(seed: int) -> dict[str, Any]:
    return {
        "i": -(2**62) + seed,
        "d": 0.1 + 0.2 + seed,
        "s": f"naïve ✓ 中文 'quoted' \"double\" \\ {seed}",
        "st": _struct({"a": [1, "x", True, None], "b": {"c": 2.5 + seed}}),
        "p": _packed(f"packed-{seed}"),
        "b": seed % 2 == 0,
    }


def write_varied_store(store: MetadataStore) -> dict[str, Any]:
    """The varied store; returns a few of its ids by name."""
    client = LocalClient(store)
    runs = tfx_pipeline.write_two_runs(mlmd, client)
    everything = mlmd.ArtifactType(
        name="Everything",
        version="v2",
        description="a property of every kind",
        external_id="type-everything",
        base_type=mlmd.ArtifactType.DATASET,
    )
    for name, kind in EVERY_KIND.items():
        everything.properties[name] = kind
    artifact_type = store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=everything)).type_id
    step = mlmd.ExecutionType(
        name="Step",
        description="with input and output types",
        input_type=mlmd.ArtifactStructType(simple=mlmd.ArtifactType(name="Examples")),
        output_type=mlmd.ArtifactStructType(any=mlmd.AnyArtifactStructType()),
        base_type=mlmd.ExecutionType.TRAIN,
    )
    for name, kind in EVERY_KIND.items():
        step.properties[name] = kind
    execution_type = store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=step)).type_id
    group = mlmd.ContextType(name="Group", version="1", external_id="type-group")
    for name, kind in EVERY_KIND.items():
        group.properties[name] = kind
    context_type = store.put_context_type(svc.PutContextTypeRequest(context_type=group)).type_id

    artifacts = [
        _fill(
            mlmd.Artifact(
                type_id=artifact_type,
                uri=f"s3://every/{n}",
                name=f"every-{n}" if n != 2 else "",
                state=(mlmd.Artifact.PENDING, mlmd.Artifact.LIVE, mlmd.Artifact.DELETED)[n % 3],
                external_id=f"ext-every-{n}" if n % 2 == 0 else "",
            ),
            every_value(n),
            {"big": 2**63 - 1, "small": -(2**63), "flag": False, "tiny": 1e-7, "empty": "", "many": 1234.5678},
        )
        for n in range(3)
    ]
    for artifact in artifacts:
        if not artifact.external_id:
            artifact.ClearField("external_id")
        if not artifact.name:
            artifact.ClearField("name")
    artifact_ids = list(store.put_artifacts(svc.PutArtifactsRequest(artifacts=artifacts)).artifact_ids)
    executions = [
        _fill(
            mlmd.Execution(
                type_id=execution_type,
                name=f"step-{n}",
                last_known_state=(mlmd.Execution.RUNNING, mlmd.Execution.FAILED)[n],
            ),
            every_value(10 + n),
            {"note": f"exécution {n}", "on": True},
        )
        for n in range(2)
    ]
    execution_ids = list(store.put_executions(svc.PutExecutionsRequest(executions=executions)).execution_ids)
    contexts = [
        _fill(
            mlmd.Context(type_id=context_type, name=f"group-{n}", external_id=f"ext-group-{n}"), every_value(20 + n), {}
        )
        for n in range(3)
    ]
    context_ids = list(store.put_contexts(svc.PutContextsRequest(contexts=contexts)).context_ids)

    path = mlmd.Event.Path()
    for step_value in ("a", 3, "b", 0, ""):
        if isinstance(step_value, str):
            path.steps.add().key = step_value
        else:
            path.steps.add().index = step_value
    events = [
        mlmd.Event(artifact_id=artifact_ids[0], execution_id=execution_ids[0], type=mlmd.Event.INPUT, path=path),
        mlmd.Event(artifact_id=artifact_ids[1], execution_id=execution_ids[0], type=mlmd.Event.OUTPUT),
        mlmd.Event(
            artifact_id=artifact_ids[1],
            execution_id=execution_ids[1],
            type=mlmd.Event.DECLARED_INPUT,
            milliseconds_since_epoch=42,
        ),
        mlmd.Event(artifact_id=runs["run-1"]["model"], execution_id=execution_ids[1], type=mlmd.Event.INPUT),
    ]
    store.put_events(svc.PutEventsRequest(events=events))
    store.put_attributions_and_associations(
        svc.PutAttributionsAndAssociationsRequest(
            attributions=[mlmd.Attribution(context_id=context_ids[0], artifact_id=a) for a in artifact_ids]
            + [mlmd.Attribution(context_id=context_ids[1], artifact_id=runs["run-2"]["model"])],
            associations=[mlmd.Association(context_id=context_ids[0], execution_id=e) for e in execution_ids],
        )
    )
    store.put_parent_contexts(
        svc.PutParentContextsRequest(
            parent_contexts=[
                mlmd.ParentContext(child_id=context_ids[1], parent_id=context_ids[0]),
                mlmd.ParentContext(child_id=context_ids[2], parent_id=context_ids[0]),
                mlmd.ParentContext(child_id=context_ids[2], parent_id=context_ids[1]),
                mlmd.ParentContext(child_id=runs["run-1"]["run"], parent_id=context_ids[0]),
            ]
        )
    )
    team = write_team_nodes(store, artifact_type, execution_type, context_type, artifact_ids[0])
    return {
        "runs": runs,
        "artifacts": artifact_ids,
        "executions": execution_ids,
        "contexts": context_ids,
        "types": (artifact_type, execution_type, context_type),
        "team": team,
    }


def write_team_nodes(
    store: MetadataStore, artifact_type: int, execution_type: int, context_type: int, outside_artifact: int
) -> dict[str, list[int]]:
    """Nodes in namespace TEAM (created here), linked among themselves and, by one event
    and one attribution, to a node of `default`."""
    with store.db.transaction() as uow:
        tenancy.create_namespace(uow, TEAM, 1_700_000_000_000)
    with acting_as(TEAM_WRITER):
        artifacts = store.put_artifacts(
            svc.PutArtifactsRequest(
                artifacts=[
                    _fill(
                        mlmd.Artifact(type_id=artifact_type, uri=f"s3://team/{n}", name=f"team-{n}"),
                        every_value(30 + n),
                        {},
                    )
                    for n in range(2)
                ]
            )
        ).artifact_ids
        executions = store.put_executions(
            svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=execution_type, name="team-step")])
        ).execution_ids
        contexts = store.put_contexts(
            svc.PutContextsRequest(
                contexts=[mlmd.Context(type_id=context_type, name=f"team-group-{n}") for n in range(2)]
            )
        ).context_ids
    store.put_events(
        svc.PutEventsRequest(
            events=[
                mlmd.Event(artifact_id=artifacts[0], execution_id=executions[0], type=mlmd.Event.INPUT),
                mlmd.Event(artifact_id=artifacts[1], execution_id=executions[0], type=mlmd.Event.OUTPUT),
                mlmd.Event(artifact_id=outside_artifact, execution_id=executions[0], type=mlmd.Event.INPUT),
            ]
        )
    )
    store.put_attributions_and_associations(
        svc.PutAttributionsAndAssociationsRequest(
            attributions=[mlmd.Attribution(context_id=contexts[0], artifact_id=a) for a in artifacts]
            + [mlmd.Attribution(context_id=contexts[0], artifact_id=outside_artifact)],
            associations=[mlmd.Association(context_id=contexts[0], execution_id=executions[0])],
        )
    )
    store.put_parent_contexts(
        svc.PutParentContextsRequest(parent_contexts=[mlmd.ParentContext(child_id=contexts[1], parent_id=contexts[0])])
    )
    return {"artifacts": list(artifacts), "executions": list(executions), "contexts": list(contexts)}


# -- reading --------------------------------------------------------------------------------------


def _text(message: Any) -> str:
    return text_format.MessageToString(message, as_utf8=True)


def views(store: MetadataStore, with_types: bool = True) -> dict[str, str]:
    """Every read RPC's answer (as text) over every node of the store the caller can read."""
    result: dict[str, str] = {}
    artifacts = store.get_artifacts(svc.GetArtifactsRequest())
    executions = store.get_executions(svc.GetExecutionsRequest())
    contexts = store.get_contexts(svc.GetContextsRequest())
    result["GetArtifacts"] = _text(artifacts)
    result["GetExecutions"] = _text(executions)
    result["GetContexts"] = _text(contexts)
    artifact_ids = [a.id for a in artifacts.artifacts]
    execution_ids = [e.id for e in executions.executions]
    context_ids = [c.id for c in contexts.contexts]
    nodes: list[Any] = [*artifacts.artifacts, *executions.executions, *contexts.contexts]
    type_ids = sorted({n.type_id for n in nodes})
    if with_types:
        result["GetArtifactTypes"] = _text(store.get_artifact_types(svc.GetArtifactTypesRequest()))
        result["GetExecutionTypes"] = _text(store.get_execution_types(svc.GetExecutionTypesRequest()))
        result["GetContextTypes"] = _text(store.get_context_types(svc.GetContextTypesRequest()))
    result["GetArtifactTypesByID"] = _text(
        store.get_artifact_types_by_id(svc.GetArtifactTypesByIDRequest(type_ids=type_ids))
    )
    result["GetExecutionTypesByID"] = _text(
        store.get_execution_types_by_id(svc.GetExecutionTypesByIDRequest(type_ids=type_ids))
    )
    result["GetContextTypesByID"] = _text(
        store.get_context_types_by_id(svc.GetContextTypesByIDRequest(type_ids=type_ids))
    )
    result["GetArtifactsByID"] = _text(
        store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=artifact_ids, populate_artifact_types=True))
    )
    result["GetExecutionsByID"] = _text(
        store.get_executions_by_id(svc.GetExecutionsByIDRequest(execution_ids=execution_ids))
    )
    result["GetContextsByID"] = _text(store.get_contexts_by_id(svc.GetContextsByIDRequest(context_ids=context_ids)))
    result["GetEventsByArtifactIDs"] = _text(
        store.get_events_by_artifact_ids(svc.GetEventsByArtifactIDsRequest(artifact_ids=artifact_ids))
    )
    result["GetEventsByExecutionIDs"] = _text(
        store.get_events_by_execution_ids(svc.GetEventsByExecutionIDsRequest(execution_ids=execution_ids))
    )
    for artifact_id in artifact_ids:
        result[f"GetContextsByArtifact {artifact_id}"] = _or_status(
            lambda artifact_id=artifact_id: store.get_contexts_by_artifact(
                svc.GetContextsByArtifactRequest(artifact_id=artifact_id)
            )
        )
    for execution_id in execution_ids:
        result[f"GetContextsByExecution {execution_id}"] = _or_status(
            lambda execution_id=execution_id: store.get_contexts_by_execution(
                svc.GetContextsByExecutionRequest(execution_id=execution_id)
            )
        )
    for context_id in context_ids:
        result[f"GetParentContextsByContext {context_id}"] = _text(
            store.get_parent_contexts_by_context(svc.GetParentContextsByContextRequest(context_id=context_id))
        )
        result[f"GetChildrenContextsByContext {context_id}"] = _text(
            store.get_children_contexts_by_context(svc.GetChildrenContextsByContextRequest(context_id=context_id))
        )
        result[f"GetArtifactsByContext {context_id}"] = _text(
            store.get_artifacts_by_context(svc.GetArtifactsByContextRequest(context_id=context_id))
        )
        result[f"GetExecutionsByContext {context_id}"] = _text(
            store.get_executions_by_context(svc.GetExecutionsByContextRequest(context_id=context_id))
        )
    if context_ids:
        result["GetParentContextsByContexts"] = _text(
            store.get_parent_contexts_by_contexts(svc.GetParentContextsByContextsRequest(context_ids=context_ids))
        )
        result["GetChildrenContextsByContexts"] = _text(
            store.get_children_contexts_by_contexts(svc.GetChildrenContextsByContextsRequest(context_ids=context_ids))
        )
    return result


def _or_status(call: Any) -> str:
    try:
        return _text(call())
    except errors.NotFoundError as error:
        return f"NOT_FOUND {error.message}"


def assert_same_views(expected: dict[str, str], actual: dict[str, str]) -> None:
    assert sorted(expected) == sorted(actual)
    different = [name for name in expected if expected[name] != actual[name]]
    assert not different, (
        f"{len(different)} views differ, first {different[0]}:\n{expected[different[0]]}\n---\n{actual[different[0]]}"
    )


# -- commands -------------------------------------------------------------------------------------


@dataclass
class Output:
    out: io.StringIO
    err: io.StringIO

    @property
    def text(self) -> str:
        return self.out.getvalue()


def export(url: str, path: Path, namespace: str | None = None) -> Output:
    output = Output(io.StringIO(), io.StringIO())
    ops_archive.export_archive(url, path, namespace, False, output.out, output.err)
    return output


def import_(url: str, path: Path, keys_file: str | None = None) -> Output:
    output = Output(io.StringIO(), io.StringIO())
    ops_archive.import_archive(url, path, keys_file, output.out, output.err)
    return output


def verify(url: str, path: Path) -> tuple[bool, str]:
    output = Output(io.StringIO(), io.StringIO())
    equal = ops_archive.verify_archive(url, path, output.out, output.err)
    return equal, output.text


def body_lines(path: Path) -> list[bytes]:
    """The archive's row lines (without header and trailer, which name the source and time)."""
    import gzip

    with gzip.open(path, "rb") as file:
        lines = file.read().splitlines()
    return lines[1:-1]
