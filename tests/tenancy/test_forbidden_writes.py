"""Writes a caller may not make fail without changing anything, and look exactly like
writes naming a missing node when they name a node the caller cannot read.

Each forbidden write runs as Alice (reads team-a and shared, writes team-a) against
the dataset of tests/tenancy/world.py; every table (MLMD's and the namespace tables)
is snapshotted before and after. Writes naming one of B's (or default's) nodes are
repeated with an id no node has: the error must be the same, class and message, but
for the id. The allowed cross-namespace links come last, with what each side sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf import field_mask_pb2

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service import composite
from lineagedb.store import tenancy
from lineagedb.store.tenancy import Tenancy
from tests.tenancy.world import ALICE, BOB, CAROL, MISSING_ID, World, acting_as, snapshot

Lineage = mlmd.LineageSubgraphQueryOptions
Request = tuple[str, Any]  # (MetadataStore method, request)
# Builds the request aimed at `target` (a node id; MISSING_ID for the missing-node twin).
Builder = Callable[[World, int], Request]

# Alice acting in a namespace she may only read, in one that does not exist but she
# could write, and in one that neither exists nor is hers.
ALICE_IN_SHARED = Tenancy(namespace="shared", readable=ALICE.readable, writable=ALICE.writable)
ALICE_IN_NEW = Tenancy(
    namespace="team-z", readable=frozenset({"team-a", "shared", "team-z"}), writable=frozenset({"team-a", "team-z"})
)
ALICE_IN_FOREIGN_NEW = Tenancy(namespace="team-z", readable=ALICE.readable, writable=ALICE.writable)
ALICE_IN_B = Tenancy(namespace="team-b", readable=ALICE.readable, writable=ALICE.writable)


@dataclass(frozen=True)
class Forbidden:
    name: str
    build: Builder
    error: type[errors.LineageError]
    # The node the request names that the caller cannot read (its twin names MISSING_ID
    # instead), or None when the request names no such node.
    invisible: str | None = None
    caller: Tenancy = ALICE


# -- request builders ------------------------------------------------------------------------


def new_artifact(w: World, name: str = "alice-new") -> mlmd.Artifact:
    return mlmd.Artifact(type_id=w.artifact_types["Dataset"], name=name, uri="s3://a/new")


def new_execution(w: World, name: str = "alice-run") -> mlmd.Execution:
    return mlmd.Execution(type_id=w.execution_types["Trainer"], name=name)


def put_artifacts(*artifacts: mlmd.Artifact, **options: Any) -> Request:
    return "put_artifacts", svc.PutArtifactsRequest(artifacts=artifacts, **options)


def put_executions(*executions: mlmd.Execution) -> Request:
    return "put_executions", svc.PutExecutionsRequest(executions=executions)


def put_contexts(*contexts: mlmd.Context) -> Request:
    return "put_contexts", svc.PutContextsRequest(contexts=contexts)


def put_event(artifact_id: int, execution_id: int) -> Request:
    event = mlmd.Event(artifact_id=artifact_id, execution_id=execution_id, type=mlmd.Event.INPUT)
    return "put_events", svc.PutEventsRequest(events=[event])


def attribute(context_id: int, artifact_id: int) -> Request:
    link = mlmd.Attribution(context_id=context_id, artifact_id=artifact_id)
    return "put_attributions_and_associations", svc.PutAttributionsAndAssociationsRequest(attributions=[link])


def associate(context_id: int, execution_id: int) -> Request:
    link = mlmd.Association(context_id=context_id, execution_id=execution_id)
    return "put_attributions_and_associations", svc.PutAttributionsAndAssociationsRequest(associations=[link])


def parent(child_id: int, parent_id: int) -> Request:
    link = mlmd.ParentContext(child_id=child_id, parent_id=parent_id)
    return "put_parent_contexts", svc.PutParentContextsRequest(parent_contexts=[link])


def put_execution(
    w: World,
    pairs: Sequence[svc.PutExecutionRequest.ArtifactAndEvent] = (),
    contexts: Sequence[mlmd.Context] = (),
    execution: mlmd.Execution | None = None,
    **options: bool,
) -> Request:
    request = svc.PutExecutionRequest(
        execution=execution or new_execution(w),
        artifact_event_pairs=pairs,
        contexts=contexts,
        options=svc.PutExecutionRequest.Options(**options),
    )
    return "put_execution", request


def pair(artifact: mlmd.Artifact | None = None, event: mlmd.Event | None = None) -> Any:
    result = svc.PutExecutionRequest.ArtifactAndEvent()
    if artifact is not None:
        result.artifact.CopyFrom(artifact)
    if event is not None:
        result.event.CopyFrom(event)
    return result


def subgraph(
    executions: Sequence[mlmd.Execution] = (),
    artifacts: Sequence[mlmd.Artifact] = (),
    contexts: Sequence[mlmd.Context] = (),
    edges: Sequence[svc.PutLineageSubgraphRequest.EventEdge] = (),
    **options: bool,
) -> Request:
    request = svc.PutLineageSubgraphRequest(
        executions=executions,
        artifacts=artifacts,
        contexts=contexts,
        event_edges=edges,
        options=svc.PutLineageSubgraphRequest.Options(**options),
    )
    return "put_lineage_subgraph", request


def edge(event: mlmd.Event, **indexes: int) -> svc.PutLineageSubgraphRequest.EventEdge:
    return svc.PutLineageSubgraphRequest.EventEdge(event=event, **indexes)


def context_like(w: World, key: str, target: int) -> mlmd.Context:
    """A context message naming `target` by id, otherwise as the stored node `key`."""
    spec = w.specs[key]
    return mlmd.Context(id=target, type_id=w.context_types[spec.type], name=spec.name)


INPUT, OUTPUT = mlmd.Event.INPUT, mlmd.Event.OUTPUT
Denied, Missing = errors.PermissionDeniedError, errors.InvalidArgumentError

CASES: tuple[Forbidden, ...] = (
    # -- creating nodes outside the namespaces the caller may write --------------------------
    Forbidden("create artifact in shared", lambda w, _: put_artifacts(new_artifact(w)), Denied, caller=ALICE_IN_SHARED),
    Forbidden(
        "create execution in shared", lambda w, _: put_executions(new_execution(w)), Denied, caller=ALICE_IN_SHARED
    ),
    Forbidden(
        "create context in shared",
        lambda w, _: put_contexts(mlmd.Context(type_id=w.context_types["Run"], name="alice-ctx")),
        Denied,
        caller=ALICE_IN_SHARED,
    ),
    Forbidden(
        "PutExecution in shared",
        lambda w, _: put_execution(w, [pair(new_artifact(w), mlmd.Event(type=OUTPUT))]),
        Denied,
        caller=ALICE_IN_SHARED,
    ),
    Forbidden(
        "PutLineageSubgraph in shared",
        lambda w, _: subgraph(
            [new_execution(w)],
            [new_artifact(w)],
            edges=[edge(mlmd.Event(type=OUTPUT), execution_index=0, artifact_index=0)],
        ),
        Denied,
        caller=ALICE_IN_SHARED,
    ),
    Forbidden("create in B", lambda w, _: put_artifacts(new_artifact(w)), Denied, caller=ALICE_IN_B),
    Forbidden(
        "create in a missing namespace",
        lambda w, _: put_artifacts(new_artifact(w)),
        errors.FailedPreconditionError,
        caller=ALICE_IN_NEW,
    ),
    Forbidden(
        "PutExecution in a missing namespace",
        lambda w, _: put_execution(w),
        errors.FailedPreconditionError,
        caller=ALICE_IN_NEW,
    ),
    Forbidden(
        "create in a missing namespace she may not write",
        lambda w, _: put_contexts(mlmd.Context(type_id=w.context_types["Run"], name="z")),
        Denied,
        caller=ALICE_IN_FOREIGN_NEW,
    ),
    # (type, name) and external ids are unique across namespaces: a clash with B's node is
    # refused, and must not turn into an update of it.
    Forbidden(
        "create a context with B's type and name",
        lambda w, _: put_contexts(mlmd.Context(type_id=w.context_types["Run"], name="a-pipeline")),
        errors.AlreadyExistsError,
    ),
    Forbidden(
        "create an artifact with B's external id",
        lambda w, _: put_artifacts(
            mlmd.Artifact(type_id=w.artifact_types["Dataset"], name="alice-x", external_id="ext-a-data-b")
        ),
        errors.AlreadyExistsError,
    ),
    # -- updating nodes the caller cannot read: as if the id did not exist ---------------------
    Forbidden(
        "update B's artifact",
        lambda w, t: put_artifacts(mlmd.Artifact(id=t, type_id=w.artifact_types["Dataset"], uri="s3://a/hijack")),
        Missing,
        "b_data",
    ),
    Forbidden(
        "update default's artifact",
        lambda w, t: put_artifacts(mlmd.Artifact(id=t, type_id=w.artifact_types["Dataset"], uri="s3://a/hijack")),
        Missing,
        "legacy_data",
    ),
    Forbidden(
        "masked update of B's artifact",
        lambda w, t: put_artifacts(
            mlmd.Artifact(id=t, uri="s3://a/hijack"), update_mask=field_mask_pb2.FieldMask(paths=["uri"])
        ),
        Missing,
        "b_model",
    ),
    Forbidden(
        "optimistic update of B's artifact",
        lambda w, t: put_artifacts(
            mlmd.Artifact(id=t, type_id=w.artifact_types["Model"], last_update_time_since_epoch=1),
            options=svc.PutArtifactsRequest.Options(abort_if_latest_updated_time_changed=True),
        ),
        Missing,
        "b_model",
    ),
    Forbidden(
        "a new A artifact, then B's artifact (all or nothing)",
        lambda w, t: put_artifacts(new_artifact(w), mlmd.Artifact(id=t, type_id=w.artifact_types["Dataset"])),
        Missing,
        "b_data",
    ),
    Forbidden(
        "update B's execution",
        lambda w, t: put_executions(
            mlmd.Execution(id=t, type_id=w.execution_types["Trainer"], last_known_state=mlmd.Execution.FAILED)
        ),
        Missing,
        "b_trainer",
    ),
    Forbidden("update B's context", lambda w, t: put_contexts(context_like(w, "b_pipeline", t)), Missing, "b_pipeline"),
    Forbidden(
        "update default's context",
        lambda w, t: put_contexts(context_like(w, "legacy_pipeline", t)),
        Missing,
        "legacy_pipeline",
    ),
    # -- updating nodes the caller may read but not write ------------------------------------------
    Forbidden(
        "update a shared artifact",
        lambda w, _: put_artifacts(
            mlmd.Artifact(id=w.artifacts["shared_census"], type_id=w.artifact_types["Dataset"], uri="s3://a/hijack")
        ),
        Denied,
    ),
    Forbidden(
        "update A's artifact, then a shared one (all or nothing)",
        lambda w, _: put_artifacts(
            mlmd.Artifact(id=w.artifacts["a_data"], type_id=w.artifact_types["Dataset"], uri="s3://a/moved"),
            mlmd.Artifact(id=w.artifacts["shared_holdout"], type_id=w.artifact_types["Dataset"], uri="s3://a/moved"),
        ),
        Denied,
    ),
    Forbidden(
        "update a shared execution",
        lambda w, _: put_executions(
            mlmd.Execution(id=w.executions["shared_ingest"], type_id=w.execution_types["Trainer"])
        ),
        Denied,
    ),
    Forbidden(
        "update a shared context",
        lambda w, _: put_contexts(context_like(w, "shared_pipeline", w.contexts["shared_pipeline"])),
        Denied,
    ),
    # -- edges with an end the caller cannot read (as if missing) or two ends it cannot write ----
    Forbidden("event from B's artifact", lambda w, t: put_event(t, w.executions["a_trainer"]), Missing, "b_data"),
    Forbidden(
        "event from default's artifact", lambda w, t: put_event(t, w.executions["a_eval"]), Missing, "legacy_model"
    ),
    Forbidden("event into B's execution", lambda w, t: put_event(w.artifacts["a_data"], t), Missing, "b_trainer"),
    Forbidden(
        "event between two shared nodes",
        lambda w, _: put_event(w.artifacts["shared_holdout"], w.executions["shared_ingest"]),
        Denied,
    ),
    # Edges that already exist, hidden: refused as missing, never "already exists".
    Forbidden("event duplicating a hidden one", lambda w, t: put_event(t, w.executions["a_eval"]), Missing, "b_model"),
    Forbidden(
        "attribution duplicating a hidden one",
        lambda w, t: attribute(t, w.artifacts["a_model"]),
        Missing,
        "b_pipeline",
    ),
    Forbidden(
        "parent link duplicating a hidden one", lambda w, t: parent(w.contexts["a_run"], t), Missing, "b_pipeline"
    ),
    Forbidden("attribution to B's context", lambda w, t: attribute(t, w.artifacts["a_data"]), Missing, "b_pipeline"),
    Forbidden("attribution of B's artifact", lambda w, t: attribute(w.contexts["a_run"], t), Missing, "b_data"),
    Forbidden("association to B's context", lambda w, t: associate(t, w.executions["a_eval"]), Missing, "b_run"),
    Forbidden("association of B's execution", lambda w, t: associate(w.contexts["a_run"], t), Missing, "b_evaluator"),
    Forbidden(
        "attribution between two shared nodes",
        lambda w, _: attribute(w.contexts["shared_archive"], w.artifacts["shared_holdout"]),
        Denied,
    ),
    Forbidden(
        "association between two shared nodes",
        lambda w, _: associate(w.contexts["shared_archive"], w.executions["shared_validate"]),
        Denied,
    ),
    Forbidden("A's context under B's", lambda w, t: parent(w.contexts["a_pipeline"], t), Missing, "b_run"),
    Forbidden("B's context under A's", lambda w, t: parent(t, w.contexts["a_run"]), Missing, "b_pipeline"),
    Forbidden("default's context under A's", lambda w, t: parent(t, w.contexts["a_run"]), Missing, "legacy_pipeline"),
    Forbidden(
        "shared context under shared context",
        lambda w, _: parent(w.contexts["shared_archive"], w.contexts["shared_pipeline"]),
        Denied,
    ),
    # -- PutExecution naming B's nodes ------------------------------------------------------------
    Forbidden(
        "PutExecution: event to B's artifact by id",
        lambda w, t: put_execution(w, [pair(event=mlmd.Event(artifact_id=t, type=INPUT))]),
        Missing,
        "b_data",
    ),
    # Carol reads `default`, where a node without a membership row would land: a hidden
    # id must still read exactly as a missing one (MLMD itself stores events to missing ids).
    Forbidden(
        "PutExecution: event to B's artifact by id, caller reading default",
        lambda w, t: put_execution(w, [pair(event=mlmd.Event(artifact_id=t, type=INPUT))]),
        Missing,
        "b_data",
        caller=CAROL,
    ),
    Forbidden(
        "PutExecution: B's artifact as a pair's artifact",
        lambda w, t: put_execution(
            w, [pair(mlmd.Artifact(id=t, type_id=w.artifact_types["Model"]), mlmd.Event(type=OUTPUT))]
        ),
        Missing,
        "b_model",
    ),
    Forbidden(
        "PutExecution: B's execution",
        lambda w, t: put_execution(w, execution=mlmd.Execution(id=t, type_id=w.execution_types["Trainer"])),
        Missing,
        "b_trainer",
    ),
    Forbidden(
        "PutExecution: B's context by id, force_reuse_context",
        lambda w, t: put_execution(w, contexts=[context_like(w, "b_pipeline", t)], force_reuse_context=True),
        errors.NotFoundError,
        "b_pipeline",
    ),
    Forbidden(
        "PutExecution: B's context by id",
        lambda w, t: put_execution(w, contexts=[context_like(w, "b_pipeline", t)]),
        Missing,
        "b_pipeline",
    ),
    Forbidden(
        "PutExecution: a shared artifact updated",
        lambda w, _: put_execution(
            w,
            [pair(mlmd.Artifact(id=w.artifacts["shared_census"], type_id=w.artifact_types["Dataset"], uri="s3://x"))],
        ),
        Denied,
    ),
    Forbidden(
        "PutExecution: a shared execution updated",
        lambda w, _: put_execution(
            w, execution=mlmd.Execution(id=w.executions["shared_ingest"], type_id=w.execution_types["Trainer"])
        ),
        Denied,
    ),
    # B's Run "a-pipeline" must not be reused (linked) and cannot be created again: the
    # unique (type, name) key is global. ALREADY_EXISTS, not ABORTED (a retry cannot help).
    Forbidden(
        "PutExecution: reuse a context name only B has",
        lambda w, _: put_execution(
            w,
            contexts=[mlmd.Context(type_id=w.context_types["Run"], name="a-pipeline")],
            reuse_context_if_already_exist=True,
        ),
        errors.AlreadyExistsError,
    ),
    Forbidden(
        "PutExecution: reuse an artifact external id only B has",
        lambda w, _: put_execution(
            w,
            [
                pair(
                    mlmd.Artifact(type_id=w.artifact_types["Dataset"], external_id="ext-a-data-b", uri="s3://a/x"),
                    mlmd.Event(type=OUTPUT),
                )
            ],
            reuse_artifact_if_already_exist_by_external_id=True,
        ),
        errors.AlreadyExistsError,
    ),
    # -- PutLineageSubgraph naming B's nodes --------------------------------------------------------
    Forbidden(
        "PutLineageSubgraph: event to B's artifact by id",
        lambda w, t: subgraph(
            [new_execution(w)], edges=[edge(mlmd.Event(artifact_id=t, type=INPUT), execution_index=0)]
        ),
        Missing,
        "b_data",
    ),
    Forbidden(
        "PutLineageSubgraph: event to B's execution by id",
        lambda w, t: subgraph(
            artifacts=[new_artifact(w)], edges=[edge(mlmd.Event(execution_id=t, type=OUTPUT), artifact_index=0)]
        ),
        Missing,
        "b_trainer",
    ),
    Forbidden(
        "PutLineageSubgraph: B's artifact by id",
        lambda w, t: subgraph(artifacts=[mlmd.Artifact(id=t, type_id=w.artifact_types["Model"])]),
        Missing,
        "b_model",
    ),
    Forbidden(
        "PutLineageSubgraph: B's context by id",
        lambda w, t: subgraph([new_execution(w)], contexts=[context_like(w, "b_pipeline", t)]),
        Missing,
        "b_pipeline",
    ),
    Forbidden(
        "PutLineageSubgraph: reuse a context name only B has",
        lambda w, _: subgraph(
            [new_execution(w)],
            contexts=[mlmd.Context(type_id=w.context_types["Run"], name="a-pipeline")],
            reuse_context_if_already_exist=True,
        ),
        errors.AlreadyExistsError,
    ),
    Forbidden(
        "PutLineageSubgraph: reuse an artifact external id only B has",
        lambda w, _: subgraph(
            artifacts=[mlmd.Artifact(type_id=w.artifact_types["Model"], external_id="ext-a-model-v2")],
            reuse_artifact_if_already_exist_by_external_id=True,
        ),
        errors.AlreadyExistsError,
    ),
    Forbidden(
        "PutLineageSubgraph: a shared execution updated",
        lambda w, _: subgraph([mlmd.Execution(id=w.executions["shared_ingest"], type_id=w.execution_types["Trainer"])]),
        Denied,
    ),
)


def _attempt(w: World, caller: Tenancy, request: Request) -> errors.LineageError:
    method, message = request
    with acting_as(caller), pytest.raises(errors.LineageError) as raised:
        getattr(w.store, method)(message)
    return raised.value


def _without_id(message: str, node_id: int) -> str:
    return re.sub(rf"\b{node_id}\b", "<id>", message)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_forbidden_write_changes_nothing(case: Forbidden, world: World) -> None:
    target = world.id(case.invisible) if case.invisible is not None else MISSING_ID
    engine = world.database.engine
    before = snapshot(engine)
    error = _attempt(world, case.caller, case.build(world, target))
    assert type(error) is case.error, f"{case.name}: {type(error).__name__}: {error.message}"
    assert snapshot(engine) == before, f"{case.name} changed the store"
    if case.invisible is None:
        return
    # The same request naming a node that does not exist at all: indistinguishable.
    missing = _attempt(world, case.caller, case.build(world, MISSING_ID))
    assert (type(missing), _without_id(missing.message, MISSING_ID)) == (
        type(error),
        _without_id(error.message, target),
    ), case.name
    assert snapshot(engine) == before


# -- allowed cross-namespace links ---------------------------------------------------------------


def _events(w: World, caller: Tenancy | None, artifact: str) -> set[tuple[int, int, int]]:
    with acting_as(caller):
        found = w.store.get_events_by_artifact_ids(
            svc.GetEventsByArtifactIDsRequest(artifact_ids=[w.artifacts[artifact]])
        )
    return {(e.artifact_id, e.execution_id, e.type) for e in found.events}


def _context_ids_of(w: World, caller: Tenancy | None, artifact: str) -> set[int] | type[errors.LineageError]:
    with acting_as(caller):
        try:
            found = w.store.get_contexts_by_artifact(
                svc.GetContextsByArtifactRequest(artifact_id=w.artifacts[artifact])
            )
        except errors.LineageError as error:
            return type(error)
    return {c.id for c in found.contexts}


def test_alice_links_her_work_to_shared_nodes(fresh_world: World) -> None:
    w = fresh_world
    a, e, c = w.artifacts, w.executions, w.contexts
    with acting_as(ALICE):
        # Her execution reads a shared dataset (one end writable: allowed).
        w.store.put_events(
            svc.PutEventsRequest(
                events=[mlmd.Event(artifact_id=a["shared_holdout"], execution_id=e["a_trainer"], type=INPUT)]
            )
        )
        # A new run of hers: reads the shared census, writes a new model, in her run context.
        response = w.store.put_execution(
            put_execution(
                w,
                [
                    pair(event=mlmd.Event(artifact_id=a["shared_census"], type=INPUT)),
                    pair(mlmd.Artifact(type_id=w.artifact_types["Model"], name="a-model-2"), mlmd.Event(type=OUTPUT)),
                ],
                contexts=[context_like(w, "a_run", c["a_run"])],
                execution=new_execution(w, "a-retrain"),
                force_reuse_context=True,
            )[1]
        )
        # The shared holdout joins her pipeline; her run goes under a shared context.
        w.store.put_attributions_and_associations(
            svc.PutAttributionsAndAssociationsRequest(
                attributions=[mlmd.Attribution(context_id=c["a_pipeline"], artifact_id=a["shared_holdout"])]
            )
        )
        w.store.put_parent_contexts(
            svc.PutParentContextsRequest(
                parent_contexts=[mlmd.ParentContext(child_id=c["a_run"], parent_id=c["shared_archive"])]
            )
        )
    retrain, new_model = response.execution_id, response.artifact_ids[1]
    with acting_as(None), w.database.transaction() as uow:
        assert tenancy.namespaces_of(uow, "execution", [retrain]) == {retrain: "team-a"}
        assert tenancy.namespaces_of(uow, "artifact", [new_model]) == {new_model: "team-a"}

    holdout_to_trainer = (a["shared_holdout"], e["a_trainer"], INPUT)
    census_to_retrain = (a["shared_census"], retrain, INPUT)
    # Alice sees the edges she made.
    assert holdout_to_trainer in _events(w, ALICE, "shared_holdout")
    assert census_to_retrain in _events(w, ALICE, "shared_census")
    assert c["a_pipeline"] in _context_ids_of(w, ALICE, "shared_holdout")  # type: ignore[operator]
    with acting_as(ALICE):
        children = w.store.get_children_contexts_by_context(
            svc.GetChildrenContextsByContextRequest(context_id=c["shared_archive"])
        )
        upstream = w.store.get_lineage_subgraph(
            svc.GetLineageSubgraphRequest(
                lineage_subgraph_query_options=Lineage(
                    starting_artifacts=Lineage.StartingNodes(filter_query=f"id = {new_model}"),
                    max_num_hops=2,
                    direction=Lineage.UPSTREAM,
                )
            )
        ).lineage_subgraph
    assert [ctx.id for ctx in children.contexts] == [c["a_run"]]
    assert {x.id for x in upstream.artifacts} == {new_model, a["shared_census"]}
    assert [x.id for x in upstream.executions] == [retrain]

    # Bob sees the shared nodes, but none of the edges into Alice's namespace.
    with acting_as(BOB):
        shared = w.store.get_artifacts_by_id(
            svc.GetArtifactsByIDRequest(artifact_ids=[a["shared_holdout"], a["shared_census"], new_model])
        )
        bob_children = w.store.get_children_contexts_by_context(
            svc.GetChildrenContextsByContextRequest(context_id=c["shared_archive"])
        )
        downstream = w.store.get_lineage_subgraph(
            svc.GetLineageSubgraphRequest(
                lineage_subgraph_query_options=Lineage(
                    starting_artifacts=Lineage.StartingNodes(filter_query=f"id = {a['shared_census']}"),
                    max_num_hops=4,
                    direction=Lineage.DOWNSTREAM,
                )
            )
        ).lineage_subgraph
    assert [x.id for x in shared.artifacts] == sorted([a["shared_holdout"], a["shared_census"]])
    assert _events(w, BOB, "shared_holdout") == {(a["shared_holdout"], e["shared_validate"], INPUT)}
    assert _events(w, BOB, "shared_census") == {
        (a["shared_census"], e["b_trainer"], INPUT),
        (a["shared_census"], e["shared_ingest"], OUTPUT),
    }
    assert _context_ids_of(w, BOB, "shared_holdout") is errors.NotFoundError
    assert list(bob_children.contexts) == []
    assert {x.id for x in downstream.executions} == {e["b_trainer"]}
    assert retrain not in {x.execution_id for x in downstream.events}
    # Unrestricted, every edge is there.
    assert holdout_to_trainer in _events(w, None, "shared_holdout")
    assert census_to_retrain in _events(w, None, "shared_census")


def test_reuse_race_in_her_own_namespace_is_retryable(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clash with a context the caller *can* read is a creation race (ABORTED, the
    client retries and reuses it); only a clash with an unreadable one is final."""
    w = world
    run = mlmd.Context(type_id=w.context_types["Run"], name="alice-race")
    with acting_as(ALICE):
        w.store.put_contexts(svc.PutContextsRequest(contexts=[run]))
        # As if the lookup ran just before the other writer committed this very context.
        with monkeypatch.context() as patched:
            patched.setattr(composite.node_repo, "load_by_type_and_name", lambda *_: None)
            with pytest.raises(errors.AbortedError):
                w.store.put_execution(put_execution(w, contexts=[run], reuse_context_if_already_exist=True)[1])
        retried = w.store.put_execution(put_execution(w, contexts=[run], reuse_context_if_already_exist=True)[1])
        found = w.store.get_context_by_type_and_name(
            svc.GetContextByTypeAndNameRequest(type_name="Run", context_name="alice-race")
        )
    assert list(retried.context_ids) == [found.context.id]


def test_restating_a_link_between_two_read_only_nodes_is_allowed(fresh_world: World) -> None:
    """PutExecution links every artifact of the call to every context, so a run of Alice's
    that reads a shared dataset in a shared pipeline context restates the shared
    attribution (both ends read-only for her). A link that exists already needs no right
    to write; a new one between two read-only nodes is still refused."""
    w = fresh_world
    a, c = w.artifacts, w.contexts
    attribution = mlmd.Attribution(context_id=c["shared_pipeline"], artifact_id=a["shared_census"])
    with acting_as(None):
        w.store.put_attributions_and_associations(svc.PutAttributionsAndAssociationsRequest(attributions=[attribution]))
    method, request = put_execution(
        w,
        [pair(event=mlmd.Event(artifact_id=a["shared_census"], type=INPUT))],
        contexts=[context_like(w, "shared_pipeline", c["shared_pipeline"])],
        execution=new_execution(w, "a-run-in-shared-pipeline"),
        force_reuse_context=True,
    )
    with acting_as(ALICE):
        response = getattr(w.store, method)(request)
    with acting_as(None), w.database.transaction() as uow:
        assert tenancy.namespaces_of(uow, "execution", [response.execution_id]) == {response.execution_id: "team-a"}
    # A new attribution between two read-only nodes is refused, and changes nothing.
    before = snapshot(w.database.engine)
    new_link = mlmd.Attribution(context_id=c["shared_pipeline"], artifact_id=a["shared_holdout"])
    with acting_as(ALICE), pytest.raises(errors.PermissionDeniedError):
        w.store.put_attributions_and_associations(svc.PutAttributionsAndAssociationsRequest(attributions=[new_link]))
    assert snapshot(w.database.engine) == before
