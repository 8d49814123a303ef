"""PutExecution (§4.5) and PutLineageSubgraph (§4.6): success paths, the §10 error rows, atomicity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.schema import schema_for
from tests.conftest import FakeClock
from tests.service.helpers import (
    get_artifact,
    get_context,
    get_execution,
    put_artifact_type,
    put_artifacts,
    put_context_type,
    put_contexts,
    put_execution_type,
    put_executions,
)

INPUT, OUTPUT = mlmd.Event.INPUT, mlmd.Event.OUTPUT
Pair = svc.PutExecutionRequest.ArtifactAndEvent
Edge = svc.PutLineageSubgraphRequest.EventEdge
ExecutionOptions = svc.PutExecutionRequest.Options
SubgraphOptions = svc.PutLineageSubgraphRequest.Options


@dataclass(frozen=True)
class Types:
    artifact: int
    execution: int
    context: int


@pytest.fixture
def types(store: MetadataStore) -> Types:
    return Types(
        put_artifact_type(store, "Data", size=mlmd.INT),
        put_execution_type(store, "Run", step=mlmd.INT),
        put_context_type(store, "Pipe", owner=mlmd.STRING),
    )


def artifact(types: Types, uri: str = "", **fields: Any) -> mlmd.Artifact:
    return mlmd.Artifact(type_id=types.artifact, uri=uri, **fields)


def execution(types: Types, **fields: Any) -> mlmd.Execution:
    return mlmd.Execution(type_id=types.execution, **fields)


def context(types: Types, name: str, **fields: Any) -> mlmd.Context:
    return mlmd.Context(type_id=types.context, name=name, **fields)


def _with_step(node: mlmd.Execution, step: int) -> mlmd.Execution:
    node.properties["step"].int_value = step
    return node


def put_execution(store: MetadataStore, request: svc.PutExecutionRequest) -> svc.PutExecutionResponse:
    return store.put_execution(request)


def put_subgraph(store: MetadataStore, request: svc.PutLineageSubgraphRequest) -> svc.PutLineageSubgraphResponse:
    return store.put_lineage_subgraph(request)


def table_rows(store: MetadataStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (sorted), read with direct SQL."""
    engine = store.db.engine
    schema = schema_for(engine.dialect.name)
    with engine.connect() as connection:
        return {
            table.name.lower(): sorted(tuple(row) for row in connection.execute(sa.select(table)))
            for table in schema.metadata.sorted_tables
        }


def counts(store: MetadataStore) -> dict[str, int]:
    return {name: len(rows) for name, rows in table_rows(store).items()}


def events_of_execution(store: MetadataStore, execution_id: int) -> list[tuple[int, int, int]]:
    request = svc.GetEventsByExecutionIDsRequest(execution_ids=[execution_id])
    return sorted((e.artifact_id, e.execution_id, e.type) for e in store.get_events_by_execution_ids(request).events)


def link_rows(store: MetadataStore, table: str) -> set[tuple[int, int]]:
    column = "artifact_id" if table == "Attribution" else "execution_id"
    engine = store.db.engine
    schema = schema_for(engine.dialect.name)
    target = schema.attribution if table == "Attribution" else schema.association
    with engine.connect() as connection:
        rows = connection.execute(sa.select(target.c.context_id, target.c[column]))
        return {(int(c), int(n)) for c, n in rows}


# == PutExecution: success paths =========================================================================


def test_put_execution_creates_everything_and_links_it(store: MetadataStore, types: Types) -> None:
    request = svc.PutExecutionRequest(
        execution=execution(types, name="run"),
        artifact_event_pairs=[
            Pair(artifact=artifact(types, "in"), event=mlmd.Event(type=INPUT)),
            Pair(artifact=artifact(types, "out"), event=mlmd.Event(type=OUTPUT)),
            Pair(artifact=artifact(types, "no-event")),
        ],
        contexts=[context(types, "c1"), context(types, "c2")],
    )
    response = put_execution(store, request)
    a_in, a_out, a_plain = response.artifact_ids
    [c1, c2] = response.context_ids
    e = response.execution_id
    assert get_execution(store, e).name == "run"
    assert [get_artifact(store, i).uri for i in (a_in, a_out, a_plain)] == ["in", "out", "no-event"]
    assert [get_context(store, c).name for c in (c1, c2)] == ["c1", "c2"]
    assert events_of_execution(store, e) == [(a_in, e, INPUT), (a_out, e, OUTPUT)]
    assert link_rows(store, "Association") == {(c1, e), (c2, e)}
    # Every artifact of the response is attributed, also the one without an event.
    assert link_rows(store, "Attribution") == {(c, a) for c in (c1, c2) for a in (a_in, a_out, a_plain)}


def test_put_execution_with_only_an_execution_creates_it(store: MetadataStore, types: Types) -> None:
    response = put_execution(store, svc.PutExecutionRequest(execution=execution(types)))
    assert response.execution_id > 0
    assert list(response.artifact_ids) == [] and list(response.context_ids) == []


def test_put_execution_updates_existing_nodes_as_whole_replacements(store: MetadataStore, types: Types) -> None:
    [a] = put_artifacts(store, artifact(types, "old", external_id="x"))
    [e] = put_executions(store, execution(types, name="old"))
    updated_execution = execution(types, id=e, name="new")
    updated_execution.properties["step"].int_value = 2
    request = svc.PutExecutionRequest(
        execution=updated_execution,
        artifact_event_pairs=[Pair(artifact=mlmd.Artifact(id=a, type_id=types.artifact, uri="new"))],
    )
    response = put_execution(store, request)
    assert (response.execution_id, list(response.artifact_ids)) == (e, [a])
    stored = get_artifact(store, a)
    assert stored.uri == "new" and not stored.HasField("external_id"), "unset fields are cleared (§3.3)"
    assert get_execution(store, e).name == "old", "an execution's name is never rewritten (§3.3)"
    assert get_execution(store, e).properties["step"].int_value == 2


def test_put_execution_empty_pair_answers_minus_one_and_links_nothing_for_it(
    store: MetadataStore, types: Types
) -> None:
    request = svc.PutExecutionRequest(
        execution=execution(types), artifact_event_pairs=[Pair()], contexts=[context(types, "c")]
    )
    response = put_execution(store, request)
    assert list(response.artifact_ids) == [-1]
    # Recommendation of §4.5: no junk (ctx, -1) attribution row.
    assert link_rows(store, "Attribution") == set()
    assert link_rows(store, "Association") == {(response.context_ids[0], response.execution_id)}


def test_put_execution_event_only_pair_uses_the_unchecked_artifact_id(store: MetadataStore, types: Types) -> None:
    [existing] = put_artifacts(store, artifact(types, "a"))
    request = svc.PutExecutionRequest(
        execution=execution(types),
        artifact_event_pairs=[
            Pair(event=mlmd.Event(artifact_id=existing, type=INPUT)),
            Pair(event=mlmd.Event(artifact_id=999, type=OUTPUT)),  # [quirk] not checked
        ],
        contexts=[context(types, "c")],
    )
    response = put_execution(store, request)
    e, [c] = response.execution_id, response.context_ids
    assert list(response.artifact_ids) == [existing, 999]
    assert events_of_execution(store, e) == [(existing, e, INPUT), (999, e, OUTPUT)]
    assert link_rows(store, "Attribution") == {(c, existing), (c, 999)}


def test_put_execution_event_ids_matching_the_pair_are_accepted(store: MetadataStore, types: Types) -> None:
    [a] = put_artifacts(store, artifact(types))
    [e] = put_executions(store, execution(types))
    request = svc.PutExecutionRequest(
        execution=execution(types, id=e),
        artifact_event_pairs=[
            Pair(artifact=artifact(types, id=a), event=mlmd.Event(artifact_id=a, execution_id=e, type=INPUT))
        ],
    )
    assert list(put_execution(store, request).artifact_ids) == [a]
    assert events_of_execution(store, e) == [(a, e, INPUT)]


def test_put_execution_event_path_is_stored(store: MetadataStore, types: Types) -> None:
    event = mlmd.Event(type=OUTPUT)
    event.path.steps.add().key = "model"
    event.path.steps.add().index = 3
    response = put_execution(
        store,
        svc.PutExecutionRequest(
            execution=execution(types), artifact_event_pairs=[Pair(artifact=artifact(types), event=event)]
        ),
    )
    request = svc.GetEventsByExecutionIDsRequest(execution_ids=[response.execution_id])
    [stored] = store.get_events_by_execution_ids(request).events
    assert stored.path == event.path


def test_put_execution_reuse_context_uses_the_stored_one_without_updating_it(
    store: MetadataStore, types: Types
) -> None:
    stored = context(types, "shared")
    stored.properties["owner"].string_value = "alice"
    [c] = put_contexts(store, stored)
    request_context = context(types, "shared")
    request_context.properties["owner"].string_value = "bob"
    request = svc.PutExecutionRequest(
        execution=execution(types),
        contexts=[request_context, context(types, "fresh")],
        options=ExecutionOptions(reuse_context_if_already_exist=True),
    )
    response = put_execution(store, request)
    assert response.context_ids[0] == c
    assert get_context(store, c).properties["owner"].string_value == "alice"
    assert get_context(store, response.context_ids[1]).name == "fresh"


def test_put_execution_same_new_context_twice_with_reuse_is_one_context(store: MetadataStore, types: Types) -> None:
    request = svc.PutExecutionRequest(
        execution=execution(types),
        contexts=[context(types, "twice"), context(types, "twice")],
        options=ExecutionOptions(reuse_context_if_already_exist=True),
    )
    response = put_execution(store, request)
    assert response.context_ids[0] == response.context_ids[1]


def test_put_execution_reuse_artifact_by_external_id_updates_the_stored_one(store: MetadataStore, types: Types) -> None:
    stored = artifact(types, "old-uri", external_id="ext", name="a")
    stored.properties["size"].int_value = 1
    [a] = put_artifacts(store, stored)
    request = svc.PutExecutionRequest(
        execution=execution(types),
        artifact_event_pairs=[
            Pair(artifact=artifact(types, "new-uri", external_id="ext"), event=mlmd.Event(type=OUTPUT))
        ],
        options=ExecutionOptions(reuse_artifact_if_already_exist_by_external_id=True),
    )
    response = put_execution(store, request)
    assert list(response.artifact_ids) == [a]
    updated = get_artifact(store, a)
    assert updated.uri == "new-uri"
    assert "size" not in updated.properties, "a reuse is a whole update: absent properties are cleared"
    assert len(store.get_artifacts(svc.GetArtifactsRequest()).artifacts) == 1


def test_put_execution_reuse_artifact_sees_artifacts_created_earlier_in_the_request(
    store: MetadataStore, types: Types
) -> None:
    request = svc.PutExecutionRequest(
        execution=execution(types),
        artifact_event_pairs=[
            Pair(artifact=artifact(types, "first", external_id="same"), event=mlmd.Event(type=INPUT)),
            Pair(artifact=artifact(types, "second", external_id="same"), event=mlmd.Event(type=OUTPUT)),
        ],
        options=ExecutionOptions(reuse_artifact_if_already_exist_by_external_id=True),
    )
    response = put_execution(store, request)
    first, second = response.artifact_ids
    assert first == second
    assert get_artifact(store, first).uri == "second"
    assert events_of_execution(store, response.execution_id) == [
        (first, response.execution_id, INPUT),
        (first, response.execution_id, OUTPUT),
    ]


def test_put_execution_without_reuse_the_same_new_external_id_twice_is_already_exists(
    store: MetadataStore, types: Types
) -> None:
    request = svc.PutExecutionRequest(
        execution=execution(types),
        artifact_event_pairs=[
            Pair(artifact=artifact(types, external_id="same")),
            Pair(artifact=artifact(types, external_id="same")),
        ],
    )
    with pytest.raises(errors.AlreadyExistsError):
        put_execution(store, request)


def test_put_execution_force_reuse_context_uses_it_as_is(store: MetadataStore, types: Types) -> None:
    [c] = put_contexts(store, context(types, "kept"))
    before = get_context(store, c)
    request = svc.PutExecutionRequest(
        execution=execution(types),
        artifact_event_pairs=[Pair(artifact=artifact(types))],
        contexts=[mlmd.Context(id=c)],  # no type_id, no name: fine with force_reuse_context
        options=ExecutionOptions(force_reuse_context=True),
    )
    response = put_execution(store, request)
    assert list(response.context_ids) == [c]
    assert get_context(store, c) == before
    assert link_rows(store, "Association") == {(c, response.execution_id)}
    assert link_rows(store, "Attribution") == {(c, response.artifact_ids[0])}


def test_put_execution_force_update_time_refreshes_an_unchanged_execution(
    store: MetadataStore, types: Types, clock: FakeClock
) -> None:
    [e] = put_executions(store, execution(types, name="same"))
    echoed = get_execution(store, e)  # exactly what a read returns: not a change (§3.6)
    first = echoed.last_update_time_since_epoch
    clock.now += 1_000
    put_execution(store, svc.PutExecutionRequest(execution=echoed))
    assert get_execution(store, e).last_update_time_since_epoch == first, "no change, no new time (§3.6)"
    put_execution(store, svc.PutExecutionRequest(execution=echoed, options=ExecutionOptions(force_update_time=True)))
    assert get_execution(store, e).last_update_time_since_epoch > first


def test_put_execution_existing_links_are_not_duplicated(store: MetadataStore, types: Types) -> None:
    [c] = put_contexts(store, context(types, "c"))
    [a] = put_artifacts(store, artifact(types))
    [e] = put_executions(store, execution(types))
    request = svc.PutExecutionRequest(
        execution=execution(types, id=e),
        artifact_event_pairs=[Pair(artifact=artifact(types, id=a))],
        contexts=[mlmd.Context(id=c, type_id=types.context, name="c")],
    )
    put_execution(store, request)
    put_execution(store, request)
    assert counts(store)["attribution"] == 1 and counts(store)["association"] == 1


# == PutExecution: errors (§10 row) =========================================================================


def _pe(types: Types, **kwargs: Any) -> svc.PutExecutionRequest:
    kwargs.setdefault("execution", execution(types))
    return svc.PutExecutionRequest(**kwargs)


def _bad_property_artifact(types: Types) -> mlmd.Artifact:
    bad = artifact(types)
    bad.properties["nope"].int_value = 1
    return bad


def _mistyped_property_artifact(types: Types) -> mlmd.Artifact:
    bad = artifact(types)
    bad.properties["size"].string_value = "big"
    return bad


PUT_EXECUTION_ERRORS: list[
    tuple[str, type[errors.LineageError], Callable[[Types, int, int, int], svc.PutExecutionRequest]]
] = [
    ("no execution", errors.InvalidArgumentError, lambda t, a, e, c: svc.PutExecutionRequest()),
    ("execution without type_id", errors.InvalidArgumentError, lambda t, a, e, c: _pe(t, execution=mlmd.Execution())),
    ("unknown execution type", errors.NotFoundError, lambda t, a, e, c: _pe(t, execution=mlmd.Execution(type_id=999))),
    (
        "execution type id of an artifact type",
        errors.NotFoundError,
        lambda t, a, e, c: _pe(t, execution=mlmd.Execution(type_id=t.artifact)),
    ),
    ("execution id not found", errors.InvalidArgumentError, lambda t, a, e, c: _pe(t, execution=execution(t, id=999))),
    (
        "execution type_id mismatch on update",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(t, execution=mlmd.Execution(id=e, type_id=t.context)),
    ),
    (
        "artifact without type_id",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(t, artifact_event_pairs=[Pair(artifact=mlmd.Artifact(uri="u"))]),
    ),
    (
        "unknown artifact type",
        errors.NotFoundError,
        lambda t, a, e, c: _pe(t, artifact_event_pairs=[Pair(artifact=mlmd.Artifact(type_id=999))]),
    ),
    (
        "artifact unknown property",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(t, artifact_event_pairs=[Pair(artifact=_bad_property_artifact(t))]),
    ),
    (
        "artifact property type mismatch",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(t, artifact_event_pairs=[Pair(artifact=_mistyped_property_artifact(t))]),
    ),
    (
        "artifact id not found",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(t, artifact_event_pairs=[Pair(artifact=artifact(t, id=999))]),
    ),
    (
        "duplicate artifact name",
        errors.AlreadyExistsError,
        lambda t, a, e, c: _pe(t, artifact_event_pairs=[Pair(artifact=artifact(t, name="taken"))]),
    ),
    (
        "duplicate artifact external_id",
        errors.AlreadyExistsError,
        lambda t, a, e, c: _pe(t, artifact_event_pairs=[Pair(artifact=artifact(t, external_id="taken-x"))]),
    ),
    (
        "event execution_id mismatch",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(
            t, artifact_event_pairs=[Pair(artifact=artifact(t), event=mlmd.Event(execution_id=e + 50, type=INPUT))]
        ),
    ),
    (
        "event artifact_id mismatch",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(
            t, artifact_event_pairs=[Pair(artifact=artifact(t, id=a), event=mlmd.Event(artifact_id=a + 50, type=INPUT))]
        ),
    ),
    (
        "event-only pair without artifact_id",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(t, artifact_event_pairs=[Pair(event=mlmd.Event(type=INPUT))]),
    ),
    (
        "event type missing",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(t, artifact_event_pairs=[Pair(artifact=artifact(t), event=mlmd.Event())]),
    ),
    (
        "event type UNKNOWN",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(
            t, artifact_event_pairs=[Pair(artifact=artifact(t), event=mlmd.Event(type=mlmd.Event.UNKNOWN))]
        ),
    ),
    (
        "duplicate event",
        errors.AlreadyExistsError,
        lambda t, a, e, c: _pe(
            t,
            artifact_event_pairs=[
                Pair(artifact=artifact(t, id=a), event=mlmd.Event(type=INPUT)),
                Pair(event=mlmd.Event(artifact_id=a, type=INPUT)),
            ],
        ),
    ),
    (
        "context without type_id",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(t, contexts=[mlmd.Context(name="n")]),
    ),
    (
        "context without name",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(t, contexts=[mlmd.Context(type_id=t.context)]),
    ),
    ("context with empty name", errors.InvalidArgumentError, lambda t, a, e, c: _pe(t, contexts=[context(t, "")])),
    (
        "context with id but no name, without force_reuse",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _pe(t, contexts=[mlmd.Context(id=c, type_id=t.context)]),
    ),
    (
        "unknown context type",
        errors.NotFoundError,
        lambda t, a, e, c: _pe(t, contexts=[mlmd.Context(type_id=999, name="n")]),
    ),
    (
        "duplicate context without reuse",
        errors.AlreadyExistsError,
        lambda t, a, e, c: _pe(t, contexts=[context(t, "taken")]),
    ),
    (
        "force_reuse_context missing context",
        errors.NotFoundError,
        lambda t, a, e, c: _pe(t, contexts=[mlmd.Context(id=999)], options=ExecutionOptions(force_reuse_context=True)),
    ),
]


@dataclass(frozen=True)
class Existing:
    artifact: int
    execution: int
    context: int


@pytest.fixture
def existing(store: MetadataStore, types: Types) -> Existing:
    [a] = put_artifacts(store, artifact(types, "taken", name="taken", external_id="taken-x"))
    [e] = put_executions(store, execution(types, name="taken"))
    [c] = put_contexts(store, context(types, "taken"))
    return Existing(a, e, c)


@pytest.mark.parametrize(("case", "error", "build"), PUT_EXECUTION_ERRORS, ids=[c[0] for c in PUT_EXECUTION_ERRORS])
def test_put_execution_error_matrix_and_nothing_persists(
    store: MetadataStore,
    types: Types,
    existing: Existing,
    case: str,
    error: type[errors.LineageError],
    build: Callable[[Types, int, int, int], svc.PutExecutionRequest],
) -> None:
    before = table_rows(store)
    with pytest.raises(error) as raised:
        put_execution(store, build(types, existing.artifact, existing.execution, existing.context))
    assert type(raised.value) is error, f"{case}: {raised.value!r}"
    assert table_rows(store) == before


# == PutLineageSubgraph: success paths =======================================================================


def test_put_lineage_subgraph_empty_request_is_an_empty_response(store: MetadataStore) -> None:
    before = table_rows(store)
    response = put_subgraph(store, svc.PutLineageSubgraphRequest())
    assert response == svc.PutLineageSubgraphResponse()
    assert table_rows(store) == before


def test_put_lineage_subgraph_creates_nodes_events_and_every_membership(store: MetadataStore, types: Types) -> None:
    request = svc.PutLineageSubgraphRequest(
        executions=[execution(types, name="e0"), execution(types, name="e1")],
        artifacts=[artifact(types, "a0"), artifact(types, "a1"), artifact(types, "a2")],
        contexts=[context(types, "c0"), context(types, "c1")],
        event_edges=[
            Edge(execution_index=0, artifact_index=0, event=mlmd.Event(type=INPUT)),
            Edge(execution_index=0, artifact_index=1, event=mlmd.Event(type=OUTPUT)),
            Edge(execution_index=1, artifact_index=1, event=mlmd.Event(type=INPUT)),
            Edge(execution_index=1, artifact_index=2, event=mlmd.Event(type=OUTPUT)),
        ],
    )
    response = put_subgraph(store, request)
    e0, e1 = response.execution_ids
    a0, a1, a2 = response.artifact_ids
    c0, c1 = response.context_ids
    assert [get_artifact(store, a).uri for a in (a0, a1, a2)] == ["a0", "a1", "a2"]
    assert events_of_execution(store, e0) == [(a0, e0, INPUT), (a1, e0, OUTPUT)]
    assert events_of_execution(store, e1) == [(a1, e1, INPUT), (a2, e1, OUTPUT)]
    assert link_rows(store, "Association") == {(c, e) for c in (c0, c1) for e in (e0, e1)}
    assert link_rows(store, "Attribution") == {(c, a) for c in (c0, c1) for a in (a0, a1, a2)}


def test_put_lineage_subgraph_response_ids_are_packed(store: MetadataStore, types: Types) -> None:
    response = put_subgraph(store, svc.PutLineageSubgraphRequest(artifacts=[artifact(types), artifact(types)]))
    wire = response.SerializeToString()
    assert wire[:1] == b"\x12", "artifact_ids (field 2) as one length-delimited packed field"


def test_put_lineage_subgraph_edges_by_event_ids_and_updates_with_matching_indexes(
    store: MetadataStore, types: Types
) -> None:
    [a] = put_artifacts(store, artifact(types, "old"))
    [e] = put_executions(store, execution(types))
    request = svc.PutLineageSubgraphRequest(
        executions=[_with_step(execution(types, id=e), 5)],
        artifacts=[artifact(types, "new", id=a), artifact(types, "fresh")],
        event_edges=[
            Edge(execution_index=0, artifact_index=0, event=mlmd.Event(artifact_id=a, execution_id=e, type=INPUT)),
            Edge(event=mlmd.Event(artifact_id=a, execution_id=e, type=OUTPUT)),  # ids only, no indexes
            Edge(artifact_index=1, event=mlmd.Event(execution_id=e, type=OUTPUT)),
            Edge(execution_index=0, event=mlmd.Event(artifact_id=999, type=INPUT)),  # [quirk] unchecked id
        ],
    )
    response = put_subgraph(store, request)
    fresh = response.artifact_ids[1]
    assert list(response.execution_ids) == [e] and response.artifact_ids[0] == a
    assert get_artifact(store, a).uri == "new" and get_execution(store, e).properties["step"].int_value == 5
    assert events_of_execution(store, e) == sorted([(a, e, INPUT), (a, e, OUTPUT), (fresh, e, OUTPUT), (999, e, INPUT)])


def test_put_lineage_subgraph_reuse_context_uses_stored_without_updating(store: MetadataStore, types: Types) -> None:
    stored = context(types, "shared")
    stored.properties["owner"].string_value = "alice"
    [c] = put_contexts(store, stored)
    changed = context(types, "shared")
    changed.properties["owner"].string_value = "bob"
    request = svc.PutLineageSubgraphRequest(
        executions=[execution(types)],
        contexts=[changed],
        options=SubgraphOptions(reuse_context_if_already_exist=True),
    )
    response = put_subgraph(store, request)
    assert list(response.context_ids) == [c]
    assert get_context(store, c).properties["owner"].string_value == "alice"
    assert link_rows(store, "Association") == {(c, response.execution_ids[0])}


def test_put_lineage_subgraph_reuse_artifact_by_external_id_updates_stored_one(
    store: MetadataStore, types: Types
) -> None:
    stored = artifact(types, "old", external_id="ext", name="n")
    stored.properties["size"].int_value = 1
    [a] = put_artifacts(store, stored)
    request = svc.PutLineageSubgraphRequest(
        artifacts=[artifact(types, "new", external_id="ext"), artifact(types, "other", external_id="other")],
        options=SubgraphOptions(reuse_artifact_if_already_exist_by_external_id=True),
    )
    response = put_subgraph(store, request)
    assert response.artifact_ids[0] == a and response.artifact_ids[1] != a
    updated = get_artifact(store, a)
    assert updated.uri == "new" and "size" not in updated.properties, "a whole update clears properties"
    assert updated.name == "n", "the name is never rewritten (§3.3)"


def test_put_lineage_subgraph_two_new_artifacts_sharing_external_id_is_already_exists_even_with_reuse(
    store: MetadataStore, types: Types
) -> None:
    before = table_rows(store)
    request = svc.PutLineageSubgraphRequest(
        artifacts=[artifact(types, "1", external_id="same"), artifact(types, "2", external_id="same")],
        options=SubgraphOptions(reuse_artifact_if_already_exist_by_external_id=True),
    )
    with pytest.raises(errors.AlreadyExistsError):
        put_subgraph(store, request)
    assert table_rows(store) == before


def test_put_lineage_subgraph_existing_memberships_are_not_duplicated(store: MetadataStore, types: Types) -> None:
    request = svc.PutLineageSubgraphRequest(
        executions=[execution(types, name="e")],
        artifacts=[artifact(types, external_id="a")],
        contexts=[context(types, "c")],
        options=SubgraphOptions(
            reuse_context_if_already_exist=True, reuse_artifact_if_already_exist_by_external_id=True
        ),
    )
    first = put_subgraph(store, request)
    second = put_subgraph(
        store,
        svc.PutLineageSubgraphRequest(
            executions=[execution(types, id=first.execution_ids[0], name="e")],
            artifacts=[artifact(types, external_id="a")],
            contexts=[context(types, "c")],
            options=request.options,
        ),
    )
    assert list(second.context_ids) == list(first.context_ids)
    assert list(second.artifact_ids) == list(first.artifact_ids)
    assert counts(store)["attribution"] == 1 and counts(store)["association"] == 1


# == PutLineageSubgraph: errors (§10 row) ======================================================================


def _ls(types: Types, edges: list[Edge] | None = None, **kwargs: Any) -> svc.PutLineageSubgraphRequest:
    kwargs.setdefault("executions", [execution(types)])
    kwargs.setdefault("artifacts", [artifact(types)])
    return svc.PutLineageSubgraphRequest(event_edges=edges or [], **kwargs)


PUT_SUBGRAPH_ERRORS: list[
    tuple[str, type[errors.LineageError], Callable[[Types, int, int, int], svc.PutLineageSubgraphRequest]]
] = [
    (
        "edge without event",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(t, [Edge(execution_index=0, artifact_index=0)]),
    ),
    (
        "edge without execution side",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(t, [Edge(artifact_index=0, event=mlmd.Event(type=INPUT))]),
    ),
    (
        "edge without artifact side",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(t, [Edge(execution_index=0, event=mlmd.Event(type=INPUT))]),
    ),
    (
        "execution_index too large",
        errors.OutOfRangeError,
        lambda t, a, e, c: _ls(t, [Edge(execution_index=1, artifact_index=0, event=mlmd.Event(type=INPUT))]),
    ),
    (
        "execution_index negative",
        errors.OutOfRangeError,
        lambda t, a, e, c: _ls(t, [Edge(execution_index=-1, artifact_index=0, event=mlmd.Event(type=INPUT))]),
    ),
    (
        "artifact_index too large",
        errors.OutOfRangeError,
        lambda t, a, e, c: _ls(t, [Edge(execution_index=0, artifact_index=1, event=mlmd.Event(type=INPUT))]),
    ),
    (
        "artifact_index negative",
        errors.OutOfRangeError,
        lambda t, a, e, c: _ls(t, [Edge(execution_index=0, artifact_index=-5, event=mlmd.Event(type=INPUT))]),
    ),
    (
        "index with no nodes at all",
        errors.OutOfRangeError,
        lambda t, a, e, c: _ls(
            t, [Edge(execution_index=0, artifact_index=0, event=mlmd.Event(type=INPUT))], executions=[], artifacts=[]
        ),
    ),
    (
        "execution index and id but node has no id",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(
            t, [Edge(execution_index=0, artifact_index=0, event=mlmd.Event(execution_id=e, type=INPUT))]
        ),
    ),
    (
        "execution index and id differ",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(
            t,
            [Edge(execution_index=0, artifact_index=0, event=mlmd.Event(execution_id=e + 50, type=INPUT))],
            executions=[execution(t, id=e)],
        ),
    ),
    (
        "artifact index and id but node has no id",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(
            t, [Edge(execution_index=0, artifact_index=0, event=mlmd.Event(artifact_id=a, type=INPUT))]
        ),
    ),
    (
        "artifact index and id differ",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(
            t,
            [Edge(execution_index=0, artifact_index=0, event=mlmd.Event(artifact_id=a + 50, type=INPUT))],
            artifacts=[artifact(t, id=a)],
        ),
    ),
    (
        "new artifact without type_id",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(t, artifacts=[mlmd.Artifact(uri="u")]),
    ),
    (
        "updated artifact without type_id",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(t, artifacts=[mlmd.Artifact(id=a, uri="u")]),
    ),
    (
        "updated execution without type_id",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(t, executions=[mlmd.Execution(id=e)]),
    ),
    (
        "updated context without type_id",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(t, contexts=[mlmd.Context(id=c, name="taken")]),
    ),
    ("unknown artifact type", errors.NotFoundError, lambda t, a, e, c: _ls(t, artifacts=[mlmd.Artifact(type_id=999)])),
    (
        "unknown execution type",
        errors.NotFoundError,
        lambda t, a, e, c: _ls(t, executions=[mlmd.Execution(type_id=999)]),
    ),
    (
        "unknown context type",
        errors.NotFoundError,
        lambda t, a, e, c: _ls(t, contexts=[mlmd.Context(type_id=999, name="n")]),
    ),
    (
        "artifact unknown property",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(t, artifacts=[_bad_property_artifact(t)]),
    ),
    (
        "artifact property type mismatch",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(t, artifacts=[_mistyped_property_artifact(t)]),
    ),
    (
        "context without name",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(t, contexts=[mlmd.Context(type_id=t.context)]),
    ),
    (
        "event type missing",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(t, [Edge(execution_index=0, artifact_index=0, event=mlmd.Event())]),
    ),
    (
        "event type UNKNOWN",
        errors.InvalidArgumentError,
        lambda t, a, e, c: _ls(
            t, [Edge(execution_index=0, artifact_index=0, event=mlmd.Event(type=mlmd.Event.UNKNOWN))]
        ),
    ),
    (
        "duplicate event",
        errors.AlreadyExistsError,
        lambda t, a, e, c: _ls(t, [Edge(execution_index=0, artifact_index=0, event=mlmd.Event(type=INPUT))] * 2),
    ),
    (
        "duplicate artifact name",
        errors.AlreadyExistsError,
        lambda t, a, e, c: _ls(t, artifacts=[artifact(t, name="taken")]),
    ),
    (
        "duplicate execution name",
        errors.AlreadyExistsError,
        lambda t, a, e, c: _ls(t, executions=[execution(t, name="taken")]),
    ),
    (
        "duplicate context without reuse",
        errors.AlreadyExistsError,
        lambda t, a, e, c: _ls(t, contexts=[context(t, "taken")]),
    ),
    ("artifact id not found", errors.InvalidArgumentError, lambda t, a, e, c: _ls(t, artifacts=[artifact(t, id=999)])),
]


@pytest.mark.parametrize(("case", "error", "build"), PUT_SUBGRAPH_ERRORS, ids=[c[0] for c in PUT_SUBGRAPH_ERRORS])
def test_put_lineage_subgraph_error_matrix_and_nothing_persists(
    store: MetadataStore,
    types: Types,
    existing: Existing,
    case: str,
    error: type[errors.LineageError],
    build: Callable[[Types, int, int, int], svc.PutLineageSubgraphRequest],
) -> None:
    before = table_rows(store)
    with pytest.raises(error) as raised:
        put_subgraph(store, build(types, existing.artifact, existing.execution, existing.context))
    assert type(raised.value) is error, f"{case}: {raised.value!r}"
    assert table_rows(store) == before


# == atomicity: a late member fails after the others were written =============================================


def _rich_execution_request(
    types: Types,
    last_pair: Pair | None = None,
    last_context: mlmd.Context | None = None,
    options: ExecutionOptions | None = None,
) -> svc.PutExecutionRequest:
    """A request whose early members (artifacts, execution, events, a context) are all valid."""
    pairs = [
        Pair(artifact=artifact(types, "ok-in", external_id="ok-in"), event=mlmd.Event(type=INPUT)),
        Pair(artifact=artifact(types, "ok-out"), event=mlmd.Event(type=OUTPUT)),
    ]
    if last_pair is not None:
        pairs.append(last_pair)
    contexts = [context(types, "ok-context")]
    if last_context is not None:
        contexts.append(last_context)
    return svc.PutExecutionRequest(
        execution=execution(types, name="ok-run"),
        artifact_event_pairs=pairs,
        contexts=contexts,
        options=options or ExecutionOptions(),
    )


LATE_EXECUTION_FAILURES: list[
    tuple[str, type[errors.LineageError], Callable[[Types, Existing], svc.PutExecutionRequest]]
] = [
    (
        "bad event type on the last pair",
        errors.InvalidArgumentError,
        lambda t, x: _rich_execution_request(
            t, Pair(artifact=artifact(t, "late"), event=mlmd.Event(type=mlmd.Event.UNKNOWN))
        ),
    ),
    (
        "duplicate event on the last pair",
        errors.AlreadyExistsError,
        lambda t, x: _rich_execution_request(
            t,
            Pair(artifact=artifact(t, "ok-in", external_id="ok-in"), event=mlmd.Event(type=INPUT)),
            options=ExecutionOptions(reuse_artifact_if_already_exist_by_external_id=True),
        ),
    ),
    (
        "dangling event with mismatched execution",
        errors.InvalidArgumentError,
        lambda t, x: _rich_execution_request(
            t, Pair(event=mlmd.Event(artifact_id=x.artifact, execution_id=x.execution, type=INPUT))
        ),
    ),
    (
        "bad property on the last artifact",
        errors.InvalidArgumentError,
        lambda t, x: _rich_execution_request(t, Pair(artifact=_bad_property_artifact(t))),
    ),
    (
        "duplicate name on the last artifact",
        errors.AlreadyExistsError,
        lambda t, x: _rich_execution_request(t, Pair(artifact=artifact(t, name="taken"))),
    ),
    (
        "unknown context type",
        errors.NotFoundError,
        lambda t, x: _rich_execution_request(t, last_context=mlmd.Context(type_id=999, name="late")),
    ),
    (
        "duplicate context without reuse",
        errors.AlreadyExistsError,
        lambda t, x: _rich_execution_request(t, last_context=context(t, "taken")),
    ),
    (
        "last context without name",
        errors.InvalidArgumentError,
        lambda t, x: _rich_execution_request(t, last_context=mlmd.Context(type_id=t.context)),
    ),
    (
        "last context has a bad property",
        errors.InvalidArgumentError,
        lambda t, x: _rich_execution_request(t, last_context=_bad_property_context(t)),
    ),
    (
        "force_reuse of a missing context",
        errors.NotFoundError,
        lambda t, x: _rich_execution_request(
            t, last_context=mlmd.Context(id=999), options=ExecutionOptions(force_reuse_context=True)
        ),
    ),
    (
        "last context updates a missing id",
        errors.InvalidArgumentError,
        lambda t, x: _rich_execution_request(t, last_context=context(t, "ghost", id=999)),
    ),
]


def _bad_property_context(types: Types) -> mlmd.Context:
    bad = context(types, "late-bad")
    bad.properties["owner"].int_value = 3  # declared STRING
    return bad


@pytest.mark.parametrize(
    ("case", "error", "build"), LATE_EXECUTION_FAILURES, ids=[c[0] for c in LATE_EXECUTION_FAILURES]
)
def test_put_execution_late_failure_leaves_no_trace(
    store: MetadataStore,
    types: Types,
    existing: Existing,
    case: str,
    error: type[errors.LineageError],
    build: Callable[[Types, Existing], svc.PutExecutionRequest],
) -> None:
    # The same request without its last member succeeds elsewhere: the early members are valid.
    before = table_rows(store)
    with pytest.raises(error):
        put_execution(store, build(types, existing))
    assert table_rows(store) == before, case
    put_execution(store, _rich_execution_request(types))
    assert counts(store)["event"] == 2


def _rich_subgraph_request(
    types: Types,
    artifacts: list[mlmd.Artifact] | None = None,
    contexts: list[mlmd.Context] | None = None,
    edges: list[Edge] | None = None,
    options: SubgraphOptions | None = None,
) -> svc.PutLineageSubgraphRequest:
    return svc.PutLineageSubgraphRequest(
        executions=[execution(types, name="ok-e0"), execution(types, name="ok-e1")],
        artifacts=[artifact(types, "ok-a0"), artifact(types, "ok-a1"), *(artifacts or [])],
        contexts=[context(types, "ok-c0"), *(contexts or [])],
        event_edges=[
            Edge(execution_index=0, artifact_index=0, event=mlmd.Event(type=INPUT)),
            Edge(execution_index=1, artifact_index=1, event=mlmd.Event(type=OUTPUT)),
            *(edges or []),
        ],
        options=options or SubgraphOptions(),
    )


LATE_SUBGRAPH_FAILURES: list[
    tuple[str, type[errors.LineageError], Callable[[Types, Existing], svc.PutLineageSubgraphRequest]]
] = [
    (
        "bad event type on the last edge",
        errors.InvalidArgumentError,
        lambda t, x: _rich_subgraph_request(
            t, edges=[Edge(execution_index=1, artifact_index=0, event=mlmd.Event(type=mlmd.Event.UNKNOWN))]
        ),
    ),
    (
        "duplicate event on the last edge",
        errors.AlreadyExistsError,
        lambda t, x: _rich_subgraph_request(
            t, edges=[Edge(execution_index=0, artifact_index=0, event=mlmd.Event(type=INPUT))]
        ),
    ),
    (
        "duplicate of a stored event by ids",
        errors.AlreadyExistsError,
        lambda t, x: _rich_subgraph_request(
            t, edges=[Edge(event=mlmd.Event(artifact_id=x.artifact, execution_id=x.execution, type=INPUT))]
        ),
    ),
    (
        "last edge index out of range",
        errors.OutOfRangeError,
        lambda t, x: _rich_subgraph_request(
            t, edges=[Edge(execution_index=2, artifact_index=0, event=mlmd.Event(type=INPUT))]
        ),
    ),
    (
        "unknown context type",
        errors.NotFoundError,
        lambda t, x: _rich_subgraph_request(t, contexts=[mlmd.Context(type_id=999, name="late")]),
    ),
    (
        "duplicate context without reuse",
        errors.AlreadyExistsError,
        lambda t, x: _rich_subgraph_request(t, contexts=[context(t, "taken")]),
    ),
    (
        "bad property on the last artifact",
        errors.InvalidArgumentError,
        lambda t, x: _rich_subgraph_request(t, artifacts=[_bad_property_artifact(t)]),
    ),
    (
        "duplicate name on the last artifact",
        errors.AlreadyExistsError,
        lambda t, x: _rich_subgraph_request(t, artifacts=[artifact(t, name="taken")]),
    ),
    (
        "two new artifacts sharing an external_id",
        errors.AlreadyExistsError,
        lambda t, x: _rich_subgraph_request(
            t,
            artifacts=[artifact(t, external_id="twin"), artifact(t, external_id="twin")],
            options=SubgraphOptions(reuse_artifact_if_already_exist_by_external_id=True),
        ),
    ),
    (
        "last artifact updates a missing id",
        errors.InvalidArgumentError,
        lambda t, x: _rich_subgraph_request(t, artifacts=[artifact(t, id=999)]),
    ),
]


@pytest.mark.parametrize(("case", "error", "build"), LATE_SUBGRAPH_FAILURES, ids=[c[0] for c in LATE_SUBGRAPH_FAILURES])
def test_put_lineage_subgraph_late_failure_leaves_no_trace(
    store: MetadataStore,
    types: Types,
    existing: Existing,
    case: str,
    error: type[errors.LineageError],
    build: Callable[[Types, Existing], svc.PutLineageSubgraphRequest],
) -> None:
    if case == "duplicate of a stored event by ids":
        store.put_events(
            svc.PutEventsRequest(
                events=[mlmd.Event(artifact_id=existing.artifact, execution_id=existing.execution, type=INPUT)]
            )
        )
    before = table_rows(store)
    with pytest.raises(error):
        put_subgraph(store, build(types, existing))
    assert table_rows(store) == before, case
    response = put_subgraph(store, _rich_subgraph_request(types))
    assert len(response.artifact_ids) == 2
