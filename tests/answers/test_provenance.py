"""Provenance and Impact: exact closures of a TFX-shaped pipeline, random DAGs against a
brute-force closure, budgets, deadlines, as_of, and bad requests."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.answers.service import LineageAnswers
from lineagedb.service.metadata_store import MetadataStore
from tests.answers.conftest import LocalClient, ids_of
from tests.answers.tfx_pipeline import STEPS

Runs = dict[str, dict[str, int]]

UPSTREAM_OF_PUSHED_MODEL = (
    "examples",
    "statistics",
    "schema",
    "transform_graph",
    "transformed_examples",
    "model",
    "blessing",
    "pushed_model",
)


def artifact(node_id: int) -> pb.NodeRef:
    return pb.NodeRef(artifact_id=node_id)


def provenance(answers: LineageAnswers, node: pb.NodeRef, **options: Any) -> pb.ClosureResponse:
    return answers.provenance(pb.ClosureRequest(node=node, **options))


def test_provenance_of_a_pushed_model_is_its_whole_upstream_and_nothing_of_the_other_run(
    answers: LineageAnswers, two_runs: Runs
) -> None:
    run = two_runs["run-1"]
    got = provenance(answers, artifact(run["pushed_model"]))
    assert ids_of(got.artifacts) == sorted(run[key] for key in UPSTREAM_OF_PUSHED_MODEL)
    assert ids_of(got.executions) == sorted(run[step] for step in STEPS)
    # The evaluation is an output of the Evaluator, not an input of anything upstream.
    assert run["evaluation"] not in ids_of(got.artifacts)
    # Every event among the closure's nodes that points upstream: 19 of the run's 20 (the
    # evaluation's output event is not upstream of the pushed model).
    assert len(got.events) == 19
    assert {(e.artifact_id, e.execution_id) for e in got.events} >= {
        (run["pushed_model"], run["Pusher"]),
        (run["model"], run["Pusher"]),
        (run["examples"], run["ExampleGen"]),
    }
    # Pipeline, run and one node context per step; properties come along.
    assert sorted(c.name for c in got.contexts) == sorted(["taxi", "run-1", *(f"taxi.{step}" for step in STEPS)])
    # PutExecution attributes every artifact of a step, inputs too, to the step's three contexts:
    # 8 artifacts x (pipeline, run) + the node contexts of each artifact's producer and consumers
    # (examples 4, statistics 2, schema 3, transform_graph 2, transformed_examples 2, model 3,
    # blessing 2, pushed_model 1).
    assert len(got.attributions) == 16 + 19
    trainer = next(e for e in got.executions if e.id == run["Trainer"])
    assert trainer.custom_properties["train_args"].string_value == '{"num_steps": 100}'
    assert trainer.type == "Trainer"
    # Levels of the breadth-first walk: Pusher; model, blessing; Trainer, Evaluator; their inputs;
    # Transform, SchemaGen, ExampleGen; statistics; StatisticsGen.
    assert got.depth == 7
    assert got.truncated == pb.TRUNCATION_UNSPECIFIED
    assert not got.frontier


def test_provenance_of_an_execution_starts_from_its_inputs(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-2"]
    got = provenance(answers, pb.NodeRef(execution_id=run["SchemaGen"]))
    assert ids_of(got.executions) == sorted([run["SchemaGen"], run["StatisticsGen"], run["ExampleGen"]])
    assert ids_of(got.artifacts) == sorted([run["statistics"], run["examples"]])


def test_provenance_of_a_run_starts_from_all_its_nodes(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    got = provenance(answers, pb.NodeRef(context_id=run["run"]))
    assert len(got.artifacts) == 9  # every artifact of the run, the evaluation included
    assert ids_of(got.executions) == sorted(run[step] for step in STEPS)
    assert len(got.events) == 20  # every event of the run


def test_impact_of_a_dataset_groups_what_it_affects(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    got = answers.impact(pb.ImpactRequest(node=artifact(run["examples"])))
    affected = {run[key] for key in UPSTREAM_OF_PUSHED_MODEL if key != "examples"} | {run["evaluation"]}
    assert ids_of(got.artifacts) == sorted(affected)
    assert ids_of(got.executions) == sorted(run[step] for step in STEPS if step != "ExampleGen")
    assert {(g.type, g.state, g.count) for g in got.groups} == {
        ("ExampleStatistics", "LIVE", 1),
        ("Schema", "LIVE", 1),
        ("TransformGraph", "LIVE", 1),
        ("Examples", "LIVE", 1),
        ("Model", "LIVE", 1),
        ("ModelEvaluation", "LIVE", 1),
        ("ModelBlessing", "LIVE", 1),
        ("PushedModel", "LIVE", 1),
    }
    assert sorted(c.name for c in got.contexts) == sorted(["taxi", "run-1", *(f"taxi.{step}" for step in STEPS)])
    paths = {target: path_to(got, ("artifact", target)) for target in affected}
    # The tree has a step for every node reached beyond the start.
    assert len(got.tree) == len(affected) + len(got.executions)
    # Shortest paths: the Evaluator reads the examples directly.
    assert paths[run["evaluation"]] == [
        ("artifact", run["examples"]),
        ("execution", run["Evaluator"]),
        ("artifact", run["evaluation"]),
    ]
    # examples, Evaluator, blessing, Pusher, pushed_model: shorter than through the Trainer.
    assert paths[run["pushed_model"]] == [
        ("artifact", run["examples"]),
        ("execution", run["Evaluator"]),
        ("artifact", run["blessing"]),
        ("execution", run["Pusher"]),
        ("artifact", run["pushed_model"]),
    ]


def test_impact_filters_by_type_and_state(answers: LineageAnswers, two_runs: Runs, store: MetadataStore) -> None:
    run = two_runs["run-1"]
    models = answers.impact(pb.ImpactRequest(node=artifact(run["examples"]), artifact_types=["Model", "PushedModel"]))
    assert ids_of(models.artifacts) == sorted([run["model"], run["pushed_model"]])
    assert [(g.type, g.count) for g in models.groups] == [("Model", 1), ("PushedModel", 1)]
    # The tree covers the whole walk, whatever the filters show.
    assert len(models.tree) == 14
    store.put_artifacts(
        svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(id=run["model"], state=mlmd.Artifact.DELETED)])
    )
    live = answers.impact(
        pb.ImpactRequest(node=artifact(run["examples"]), artifact_types=["Model"], artifact_states=["LIVE"])
    )
    assert not live.artifacts and not live.groups
    deleted = answers.impact(pb.ImpactRequest(node=artifact(run["examples"]), artifact_states=["DELETED"]))
    assert [(g.type, g.state, g.count) for g in deleted.groups] == [("Model", "DELETED", 1)]


def path_to(impact: pb.ImpactResponse, node: tuple[str, int]) -> list[tuple[str, int]]:
    """Follow the tree back from `node` to the start: the path, start first."""
    parent = {_key(step.node): _key(step.reached_from) for step in impact.tree}
    path = [node]
    while path[-1] in parent:
        path.append(parent[path[-1]])
    return path[::-1]


def _key(ref: pb.NodeRef) -> tuple[str, int]:
    which = ref.WhichOneof("node")
    assert which is not None
    return which.removesuffix("_id"), getattr(ref, which)


# -- limits -----------------------------------------------------------------------------------


def test_a_node_budget_cuts_the_walk_short_and_says_where(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    got = provenance(answers, artifact(run["pushed_model"]), max_nodes=4)
    assert got.truncated == pb.NODE_BUDGET
    assert len(got.artifacts) + len(got.executions) == 4
    # pushed_model, Pusher, then the Pusher's inputs model and blessing fill the budget; their
    # producers (Trainer, Evaluator) find no room, so the walk stops at them.
    assert ids_of(got.artifacts) == sorted([run["pushed_model"], run["model"], run["blessing"]])
    assert {_key(n) for n in got.frontier} == {("artifact", run["model"]), ("artifact", run["blessing"])}
    # Events only among the nodes returned.
    returned = {a.id for a in got.artifacts}
    assert all(e.artifact_id in returned for e in got.events)


def test_a_level_larger_than_the_room_left_admits_the_lowest_ids(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    got = provenance(answers, artifact(run["pushed_model"]), max_nodes=3)
    assert got.truncated == pb.NODE_BUDGET
    # Room for one of the Pusher's two inputs: the lower id. The Pusher's expansion was cut and
    # the admitted input was never expanded: both are where the walk would go on.
    admitted = min(run["model"], run["blessing"])
    assert ids_of(got.artifacts) == sorted([run["pushed_model"], admitted])
    assert {_key(n) for n in got.frontier} == {("execution", run["Pusher"]), ("artifact", admitted)}


def test_a_deadline_already_near_stops_before_the_first_level(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    got = answers.provenance(pb.ClosureRequest(node=artifact(run["pushed_model"])), deadline=time.monotonic())
    assert got.truncated == pb.DEADLINE
    assert ids_of(got.artifacts) == [run["pushed_model"]]
    assert [_key(n) for n in got.frontier] == [("artifact", run["pushed_model"])]


def test_a_far_deadline_changes_nothing(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    node = artifact(run["pushed_model"])
    without = answers.provenance(pb.ClosureRequest(node=node))
    assert answers.provenance(pb.ClosureRequest(node=node), deadline=time.monotonic() + 60) == without


# -- bad requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "error", "text"),
    [
        (pb.ClosureRequest(), errors.InvalidArgumentError, "node must set artifact_id or execution_id or context_id"),
        (pb.ClosureRequest(node=pb.NodeRef(artifact_id=-3)), errors.InvalidArgumentError, "positive id"),
        (pb.ClosureRequest(node=pb.NodeRef(artifact_id=1), max_nodes=-1), errors.InvalidArgumentError, "max_nodes"),
        (
            pb.ClosureRequest(node=pb.NodeRef(artifact_id=1), max_nodes=2_000_000),
            errors.InvalidArgumentError,
            "between 1 and 1000000",
        ),
        (pb.ClosureRequest(node=pb.NodeRef(artifact_id=1), as_of_ms=-5), errors.InvalidArgumentError, "as_of_ms"),
        (pb.ClosureRequest(node=pb.NodeRef(artifact_id=999)), errors.NotFoundError, "artifact 999 does not exist"),
        (pb.ClosureRequest(node=pb.NodeRef(context_id=999)), errors.NotFoundError, "context 999 does not exist"),
    ],
)
def test_bad_closure_requests_are_refused_clearly(
    answers: LineageAnswers, two_runs: Runs, request_: pb.ClosureRequest, error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        answers.provenance(request_)


def test_an_unknown_state_filter_names_the_known_ones(answers: LineageAnswers, two_runs: Runs) -> None:
    request = pb.ImpactRequest(node=artifact(two_runs["run-1"]["examples"]), artifact_states=["ALIVE"])
    with pytest.raises(errors.InvalidArgumentError, match="unknown state 'ALIVE'; known: UNKNOWN, PENDING, LIVE"):
        answers.impact(request)


# -- random graphs against a brute-force closure ------------------------------------------------


@st.composite
def random_dags(draw: st.DrawFn) -> tuple[int, list[tuple[int, list[int], list[int]]]]:
    """A DAG: n artifacts, and executions each reading some earlier artifacts and writing
    some artifacts no execution has written yet (so artifacts have at most one producer,
    as in pipelines), with a few extra reads of later artifacts (graphs need not be layered)."""
    artifacts = draw(st.integers(min_value=2, max_value=14))
    executions: list[tuple[int, list[int], list[int]]] = []
    unwritten = list(range(artifacts))
    for index in range(draw(st.integers(min_value=1, max_value=10))):
        inputs = draw(st.lists(st.integers(0, artifacts - 1), max_size=4, unique=True))
        outputs = draw(st.lists(st.sampled_from(unwritten), max_size=3, unique=True)) if unwritten else []
        outputs = [o for o in outputs if o not in inputs]
        unwritten = [a for a in unwritten if a not in outputs]
        executions.append((index, inputs, outputs))
    return artifacts, executions


def _write_dag(
    store: MetadataStore, dag: tuple[int, list[tuple[int, list[int], list[int]]]]
) -> tuple[list[int], list[int]]:
    artifact_count, executions = dag
    type_id = store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Blob"))).type_id
    exec_type = store.put_execution_type(
        svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="Step"))
    ).type_id
    artifact_ids = list(
        store.put_artifacts(
            svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id) for _ in range(artifact_count)])
        ).artifact_ids
    )
    execution_ids = list(
        store.put_executions(
            svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=exec_type) for _ in executions])
        ).execution_ids
    )
    events = []
    for index, inputs, outputs in executions:
        events += [
            mlmd.Event(artifact_id=artifact_ids[a], execution_id=execution_ids[index], type=mlmd.Event.INPUT)
            for a in inputs
        ]
        events += [
            mlmd.Event(artifact_id=artifact_ids[a], execution_id=execution_ids[index], type=mlmd.Event.OUTPUT)
            for a in outputs
        ]
    if events:
        store.put_events(svc.PutEventsRequest(events=events))
    return artifact_ids, execution_ids


def _brute_force(
    dag: tuple[int, list[tuple[int, list[int], list[int]]]], start: tuple[str, int], upstream: bool
) -> set[tuple[str, int]]:
    """Reachability by repeated relaxation over the edge list, no cleverness at all."""
    _, executions = dag
    edges: set[tuple[tuple[str, int], tuple[str, int]]] = set()  # (from, to) in the walk's direction
    for index, inputs, outputs in executions:
        for a in inputs:  # artifact -> execution downstream
            edges.add((("a", a), ("e", index)) if not upstream else (("e", index), ("a", a)))
        for a in outputs:  # execution -> artifact downstream
            edges.add((("e", index), ("a", a)) if not upstream else (("a", a), ("e", index)))
    reached = {start}
    changed = True
    while changed:
        changed = False
        for source, target in edges:
            if source in reached and target not in reached:
                reached.add(target)
                changed = True
    return reached


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dag=random_dags(), data=st.data())
def test_closures_of_random_dags_match_a_brute_force_closure(
    store: MetadataStore, answers: LineageAnswers, dag: Any, data: st.DataObject
) -> None:
    # Every example writes a fresh, disconnected graph into the same store.
    artifact_ids, execution_ids = _write_dag(store, dag)
    artifact_count, executions = dag
    kind = data.draw(st.sampled_from(["a", "e"]))
    index = data.draw(st.integers(0, (artifact_count if kind == "a" else len(executions)) - 1))
    node = pb.NodeRef(artifact_id=artifact_ids[index]) if kind == "a" else pb.NodeRef(execution_id=execution_ids[index])
    for upstream in (True, False):
        expected = _brute_force(dag, (kind, index), upstream)
        got = (
            answers.provenance(pb.ClosureRequest(node=node))
            if upstream
            else _impact_as_closure(answers.impact(pb.ImpactRequest(node=node)), node)
        )
        assert ids_of(got.artifacts) == sorted(artifact_ids[i] for k, i in expected if k == "a")
        assert ids_of(got.executions) == sorted(execution_ids[i] for k, i in expected if k == "e")
        # Exactly the events between reached nodes: in a directed closure each reached node is
        # expanded once along its events of the walk's direction, and an event whose two ends
        # are reached is one of those (its type decides from which end it is followed).
        wanted_events = sorted(
            (artifact_ids[a], execution_ids[i], event_type)
            for i, inputs, outputs in executions
            for a, event_type in [(a, mlmd.Event.INPUT) for a in inputs] + [(a, mlmd.Event.OUTPUT) for a in outputs]
            if ("a", a) in expected and ("e", i) in expected
        )
        assert sorted((e.artifact_id, e.execution_id, e.type) for e in got.events) == wanted_events


def _impact_as_closure(impact: pb.ImpactResponse, start: pb.NodeRef) -> pb.ClosureResponse:
    """Impact leaves the starting node out of its lists; put it back to compare closures."""
    closure = pb.ClosureResponse(artifacts=impact.artifacts, executions=impact.executions, events=impact.events)
    if start.WhichOneof("node") == "artifact_id":
        closure.artifacts.add(id=start.artifact_id)
    else:
        closure.executions.add(id=start.execution_id)
    return closure


# -- as_of -------------------------------------------------------------------------------------


def test_as_of_leaves_out_what_was_recorded_later(
    answers: LineageAnswers, client: LocalClient, clock: Any, store: MetadataStore
) -> None:
    from tests.answers import tfx_pipeline

    first = tfx_pipeline.write_run(mlmd, client, "run-1")
    cut = clock.now
    # Later: another consumer of the model, and a property change on the model.
    second = tfx_pipeline.write_run(mlmd, client, "run-2")
    store.put_events(
        svc.PutEventsRequest(
            events=[mlmd.Event(artifact_id=first["model"], execution_id=second["Pusher"], type=mlmd.Event.INPUT)]
        )
    )
    now = answers.impact(pb.ImpactRequest(node=artifact(first["model"])))
    assert second["pushed_model"] in ids_of(now.artifacts)
    then = answers.impact(pb.ImpactRequest(node=artifact(first["model"]), as_of_ms=cut))
    assert second["pushed_model"] not in ids_of(then.artifacts)
    assert second["Pusher"] not in ids_of(then.executions)
    assert then.as_of.time_ms == cut
    # Nothing changed after the cut: nothing to restore.
    assert not then.as_of.restored and not then.as_of.current_values
    with pytest.raises(errors.NotFoundError, match="did not exist at as_of_ms"):
        answers.provenance(pb.ClosureRequest(node=artifact(second["model"]), as_of_ms=cut))
