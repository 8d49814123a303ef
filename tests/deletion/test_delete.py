"""Delete: each mode on the TFX-shaped runs, the order and consistency guarantees, and
random DAGs against a brute-force reference."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import deletion_pb2 as pb
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as lpb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.answers.service import LineageAnswers
from lineagedb.service.deletion import TOMBSTONE_MARKER, Deletion
from lineagedb.service.metadata_store import MetadataStore
from tests.answers.test_provenance import _brute_force, _write_dag, random_dags
from tests.answers.tfx_pipeline import ARTIFACTS, STEPS

Runs = dict[str, dict[str, int]]
Mode = pb.DeleteRequest.Mode


def stored_artifacts(store: MetadataStore, ids: list[int]) -> list[int]:
    return sorted(a.id for a in store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=ids)).artifacts)


def stored_executions(store: MetadataStore, ids: list[int]) -> list[int]:
    found = store.get_executions_by_id(svc.GetExecutionsByIDRequest(execution_ids=ids)).executions
    return sorted(e.id for e in found)


def events_of(store: MetadataStore, artifact_ids: list[int]) -> list[tuple[int, int]]:
    found = store.get_events_by_artifact_ids(svc.GetEventsByArtifactIDsRequest(artifact_ids=artifact_ids)).events
    return sorted((e.artifact_id, e.execution_id) for e in found)


def run_view(store: MetadataStore, run: dict[str, int]) -> Any:
    """Everything the official client would see of one run."""
    artifacts = store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[run[k] for k in ARTIFACTS]))
    executions = store.get_executions_by_id(svc.GetExecutionsByIDRequest(execution_ids=[run[s] for s in STEPS]))
    events = store.get_events_by_execution_ids(
        svc.GetEventsByExecutionIDsRequest(execution_ids=[run[s] for s in STEPS])
    )
    contexts = store.get_contexts_by_artifact(svc.GetContextsByArtifactRequest(artifact_id=run["model"]))
    return artifacts, executions, events, contexts


def test_every_delete_is_a_dry_run_unless_confirmed(deletion: Deletion, store: MetadataStore, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    plan = deletion.delete(pb.DeleteRequest(artifact_ids=[run["pushed_model"]]))
    assert plan.dry_run
    assert [n.artifact_id for n in plan.nodes] == [run["pushed_model"]]
    assert (plan.artifacts, plan.executions, plan.contexts) == (1, 0, 0)
    assert (plan.events, plan.attributions, plan.associations) == (1, 3, 0)
    assert stored_artifacts(store, [run["pushed_model"]]) == [run["pushed_model"]]

    done = deletion.delete(pb.DeleteRequest(artifact_ids=[run["pushed_model"]], confirm=True))
    assert not done.dry_run and done.nodes == plan.nodes and done.events == 1 and done.attributions == 3
    assert stored_artifacts(store, [run["pushed_model"]]) == []
    assert events_of(store, [run["pushed_model"]]) == []
    # The producer stays: it does not depend on its output.
    assert stored_executions(store, [run["Pusher"]]) == [run["Pusher"]]
    pusher_events = store.get_events_by_execution_ids(svc.GetEventsByExecutionIDsRequest(execution_ids=[run["Pusher"]]))
    assert sorted(e.artifact_id for e in pusher_events.events) == sorted([run["model"], run["blessing"]])


def test_a_node_something_depends_on_is_refused_by_default(
    deletion: Deletion, store: MetadataStore, two_runs: Runs
) -> None:
    run = two_runs["run-1"]
    for confirm in (False, True):
        with pytest.raises(errors.FailedPreconditionError) as refused:
            deletion.delete(pb.DeleteRequest(artifact_ids=[run["model"]], confirm=confirm))
        assert refused.value.message == (
            f"nodes outside the selection depend on it: execution {run['Evaluator']} (depends on artifact "
            f"{run['model']}), execution {run['Pusher']} (depends on artifact {run['model']}); delete them too "
            "(CASCADE_DOWNSTREAM) or keep tombstones (TOMBSTONE)"
        )
    assert stored_artifacts(store, [run["model"]]) == [run["model"]]
    # An execution's outputs depend on it.
    with pytest.raises(errors.FailedPreconditionError, match=f"artifact {run['pushed_model']} \\(depends on execution"):
        deletion.delete(pb.DeleteRequest(execution_ids=[run["Pusher"]]))


def test_cascade_deletes_the_downstream_dependents_first_and_nothing_of_the_other_run(
    deletion: Deletion, store: MetadataStore, two_runs: Runs
) -> None:
    run, other = two_runs["run-1"], two_runs["run-2"]
    before = run_view(store, other)
    plan = deletion.delete(pb.DeleteRequest(artifact_ids=[run["examples"]], mode=Mode.CASCADE_DOWNSTREAM))
    order = [("a", n.artifact_id) if n.HasField("artifact_id") else ("e", n.execution_id) for n in plan.nodes]
    assert sorted(i for k, i in order if k == "a") == sorted(run[k] for k in ARTIFACTS)
    assert sorted(i for k, i in order if k == "e") == sorted(run[s] for s in STEPS if s != "ExampleGen")
    # Dependents first: every consumer before its inputs, every output before its producer.
    position = {node: index for index, node in enumerate(order)}
    for event in store.get_events_by_execution_ids(
        svc.GetEventsByExecutionIDsRequest(execution_ids=[run[s] for s in STEPS if s != "ExampleGen"])
    ).events:
        artifact, execution = ("a", event.artifact_id), ("e", event.execution_id)
        if event.type == mlmd.Event.INPUT:
            assert position[execution] < position[artifact]
        else:
            assert position[artifact] < position[execution]
    assert (plan.artifacts, plan.executions, plan.events) == (9, 6, 20)

    deletion.delete(pb.DeleteRequest(artifact_ids=[run["examples"]], mode=Mode.CASCADE_DOWNSTREAM, confirm=True))
    assert stored_artifacts(store, [run[k] for k in ARTIFACTS]) == []
    assert stored_executions(store, [run[s] for s in STEPS]) == [run["ExampleGen"]]
    assert run_view(store, other) == before


def test_tombstones_keep_the_graph_connected(
    deletion: Deletion, store: MetadataStore, answers: LineageAnswers, two_runs: Runs, clock: Any
) -> None:
    run = two_runs["run-1"]
    deletion.delete(
        pb.DeleteRequest(
            artifact_ids=[run["examples"]], execution_ids=[run["Trainer"]], mode=Mode.TOMBSTONE, confirm=True
        )
    )
    [examples] = store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[run["examples"]])).artifacts
    assert examples.state == mlmd.Artifact.DELETED
    assert examples.uri == "gs://pipelines/taxi/run-1/ExampleGen/examples"
    # The content digest stays; every other property goes; the marker says when.
    assert sorted(examples.custom_properties) == sorted(["input_fingerprint", TOMBSTONE_MARKER])
    assert examples.custom_properties["input_fingerprint"].string_value == "sha256:1111"
    assert examples.custom_properties[TOMBSTONE_MARKER].int_value == examples.last_update_time_since_epoch
    [trainer] = store.get_executions_by_id(svc.GetExecutionsByIDRequest(execution_ids=[run["Trainer"]])).executions
    assert sorted(trainer.custom_properties) == [TOMBSTONE_MARKER]
    assert trainer.last_known_state == mlmd.Execution.COMPLETE
    provenance = answers.provenance(lpb.ClosureRequest(node=lpb.NodeRef(artifact_id=run["pushed_model"])))
    assert run["examples"] in {a.id for a in provenance.artifacts}
    assert run["Trainer"] in {e.id for e in provenance.executions}
    with pytest.raises(errors.InvalidArgumentError, match="contexts have none to keep"):
        deletion.delete(pb.DeleteRequest(context_ids=[run["run"]], mode=Mode.TOMBSTONE))


def test_deleting_a_run_context_keeps_its_nodes(deletion: Deletion, store: MetadataStore, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    done = deletion.delete(pb.DeleteRequest(context_ids=[run["run"]], confirm=True))
    assert (done.contexts, done.attributions, done.associations) == (1, 9, 7)
    assert not store.get_contexts_by_id(svc.GetContextsByIDRequest(context_ids=[run["run"]])).contexts
    assert stored_artifacts(store, [run[k] for k in ARTIFACTS]) == sorted(run[k] for k in ARTIFACTS)
    names = {
        c.name
        for c in store.get_contexts_by_artifact(svc.GetContextsByArtifactRequest(artifact_id=run["model"])).contexts
    }
    assert "run-1" not in names and "taxi" in names


def test_filters_select_and_the_budget_refuses_rather_than_cuts(
    deletion: Deletion, store: MetadataStore, two_runs: Runs
) -> None:
    pushed = sorted(r["pushed_model"] for r in two_runs.values())
    plan = deletion.delete(pb.DeleteRequest(artifacts_filter="type = 'PushedModel'"))
    assert sorted(n.artifact_id for n in plan.nodes) == pushed
    with pytest.raises(errors.FailedPreconditionError, match="more than max_nodes=1 nodes"):
        deletion.delete(pb.DeleteRequest(artifacts_filter="type = 'PushedModel'", max_nodes=1, confirm=True))
    with pytest.raises(errors.FailedPreconditionError, match="downstream would delete more than max_nodes=5"):
        deletion.delete(
            pb.DeleteRequest(artifact_ids=[two_runs["run-1"]["examples"]], mode=Mode.CASCADE_DOWNSTREAM, max_nodes=5)
        )
    assert stored_artifacts(store, pushed) == pushed


@pytest.mark.parametrize(
    ("request_", "error", "text"),
    [
        (pb.DeleteRequest(), errors.InvalidArgumentError, "name what to delete"),
        (pb.DeleteRequest(artifact_ids=[0]), errors.InvalidArgumentError, "artifact_ids must be positive"),
        (pb.DeleteRequest(artifact_ids=[4242]), errors.NotFoundError, "artifact 4242 does not exist"),
        (pb.DeleteRequest(artifact_ids=[1], mode=7), errors.InvalidArgumentError, "mode must be one of"),
        (pb.DeleteRequest(artifact_ids=[1], max_nodes=-2), errors.InvalidArgumentError, "max_nodes"),
        (pb.DeleteRequest(artifacts_filter="uri ="), errors.InvalidArgumentError, "filter_query"),
    ],
)
def test_bad_requests_change_nothing(
    deletion: Deletion, two_runs: Runs, request_: pb.DeleteRequest, error: type[Exception], text: str
) -> None:
    request_.confirm = True
    with pytest.raises(error, match=text):
        deletion.delete(request_)


def test_a_dependent_linked_during_the_deletion_stops_it_consistently(
    deletion: Deletion, store: MetadataStore, two_runs: Runs
) -> None:
    run, other = two_runs["run-1"], two_runs["run-2"]
    request = pb.DeleteRequest(artifact_ids=[run["pushed_model"], run["evaluation"]], confirm=True)
    with deletion.db.transaction(write=False) as uow:
        plan = deletion._plan(uow, request, 10)
    # Between planning and deleting, run-2's Pusher starts consuming run-1's evaluation.
    store.put_events(
        svc.PutEventsRequest(
            events=[mlmd.Event(artifact_id=run["evaluation"], execution_id=other["Pusher"], type=mlmd.Event.INPUT)]
        )
    )
    with pytest.raises(errors.FailedPreconditionError, match="came to depend on artifact"):
        deletion.carry_out(plan)
    assert stored_artifacts(store, [run["evaluation"], run["pushed_model"]]) == sorted(
        [run["evaluation"], run["pushed_model"]]
    )


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dag=random_dags(), data=st.data())
def test_cascade_on_random_dags_deletes_exactly_the_downstream_closure(
    store: MetadataStore, deletion: Deletion, dag: Any, data: st.DataObject
) -> None:
    artifact_ids, execution_ids = _write_dag(store, dag)
    artifact_count, executions = dag
    start = data.draw(st.integers(0, artifact_count - 1))
    downstream = _brute_force(dag, ("a", start), upstream=False)
    # Refusal exactly when something outside the selection depends on it.
    consumers = [i for i, inputs, _ in executions if start in inputs]
    if consumers:
        with pytest.raises(errors.FailedPreconditionError):
            deletion.delete(pb.DeleteRequest(artifact_ids=[artifact_ids[start]], confirm=True))
    else:
        assert deletion.delete(pb.DeleteRequest(artifact_ids=[artifact_ids[start]])).artifacts == 1
    deletion.delete(pb.DeleteRequest(artifact_ids=[artifact_ids[start]], mode=Mode.CASCADE_DOWNSTREAM, confirm=True))
    survivors = set(stored_artifacts(store, artifact_ids)) | set(stored_executions(store, execution_ids))
    expected = {artifact_ids[i] for k, i in {("a", a) for a in range(artifact_count)} - downstream if k == "a"}
    expected |= {execution_ids[i] for k, i in {("e", e) for e in range(len(executions))} - downstream if k == "e"}
    assert survivors == expected
    # No event points at a deleted node.
    remaining = store.get_events_by_execution_ids(svc.GetEventsByExecutionIDsRequest(execution_ids=execution_ids))
    assert all(e.artifact_id in survivors and e.execution_id in survivors for e in remaining.events)
