"""GetLineageSubgraph walked in one statement (MariaDB's recursive WITH, lineage_repo.walk_events)
answers exactly as the hop-by-hop walk does: the same nodes, events in the same order, for
random graphs of several namespaces, every direction, hop counts that cut the walk at every
level, and callers who read everything, some namespaces with `default`, or some without."""

from __future__ import annotations

import random
from typing import Any

import pytest

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import tenancy
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.tenancy import Tenancy
from lineagedb.store.unit_of_work import Database
from tests.tenancy.world import acting_as

Options = mlmd.LineageSubgraphQueryOptions
E = mlmd.Event
EVENT_TYPES = [E.INPUT, E.OUTPUT, E.DECLARED_INPUT, E.DECLARED_OUTPUT, E.INTERNAL_INPUT, E.PENDING_OUTPUT]
NAMESPACES = ("default", "team-a", "team-b")
CALLERS = {
    "everyone": None,
    "team-a with default": Tenancy(namespace="team-a", readable=frozenset({"default", "team-a"})),
    "team-a and team-b": Tenancy(namespace="team-a", readable=frozenset({"team-a", "team-b"})),
}


def _types(store: MetadataStore) -> tuple[int, int]:
    artifact_type = store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="D")))
    execution_type = store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="S")))
    return artifact_type.type_id, execution_type.type_id


def _random_graph(store: MetadataStore, database: Database, seed: int) -> tuple[list[int], list[int]]:
    """A few dozen nodes spread over three namespaces, joined by random events of every kind
    (several per pair, repeated pairs, cycles), so that walks branch, meet and hide."""
    rng = random.Random(seed)
    with database.transaction() as uow:
        for name in NAMESPACES[1:]:
            tenancy.create_namespace(uow, name, 1)
    artifact_type, execution_type = _types(store)
    artifacts: list[int] = []
    executions: list[int] = []
    for namespace in NAMESPACES:
        with acting_as(Tenancy(namespace=namespace)):
            artifacts += store.put_artifacts(
                svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=artifact_type) for _ in range(12)])
            ).artifact_ids
            executions += store.put_executions(
                svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=execution_type) for _ in range(8)])
            ).execution_ids
    events = {
        (rng.choice(artifacts), rng.choice(executions), rng.choice(EVENT_TYPES)) for _ in range(rng.randint(60, 110))
    }
    store.put_events(
        svc.PutEventsRequest(events=[mlmd.Event(artifact_id=a, execution_id=x, type=t) for a, x, t in sorted(events)])
    )
    return artifacts, executions


def _subgraph(store: MetadataStore, start_kind: str, start: str, hops: int, direction: int) -> Any:
    options = Options(max_num_hops=hops, direction=direction)
    getattr(options, f"starting_{start_kind}").filter_query = start
    request = svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=options)
    try:
        return store.get_lineage_subgraph(request).lineage_subgraph
    except errors.LineageError as error:  # the same refusal both ways is an answer too
        return (type(error).__name__, str(error))


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_walking_in_one_statement_answers_as_walking_by_hops(
    store: MetadataStore, database: Database, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    artifacts, executions = _random_graph(store, database, seed)
    rng = random.Random(seed * 7919)
    walked_at_once = 0
    original = lineage_repo.walk_events

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal walked_at_once
        found = original(*args, **kwargs)
        walked_at_once += found is not None
        return found

    answers: list[Any] = []
    queries = []
    for _ in range(40):
        start_kind, pool = rng.choice([("artifacts", artifacts), ("executions", executions)])
        chosen = rng.sample(pool, rng.randint(1, 3))
        start = " OR ".join(f"id = {node}" for node in chosen)
        queries.append((start_kind, start, rng.randint(0, 7), rng.choice(list(Options.Direction.values()))))
    for caller in CALLERS.values():
        for start_kind, start, hops, direction in queries:
            with acting_as(caller):
                monkeypatch.setattr(lineage_repo, "walk_events", counted)
                at_once = _subgraph(store, start_kind, start, hops, direction)
                monkeypatch.setattr(lineage_repo, "walk_events", lambda *args, **kwargs: None)
                by_hops = _subgraph(store, start_kind, start, hops, direction)
            assert at_once == by_hops, (caller, start_kind, start, hops, direction)
            answers.append(at_once)
    # The comparison did compare the two ways (hops >= 1, a start found), on real answers.
    assert walked_at_once > 60
    assert sum(not isinstance(answer, tuple) and len(answer.events) > 0 for answer in answers) > 60


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
@pytest.mark.parametrize("hops", [1, 2, 3, 4])
def test_a_wide_walk_stops_after_whole_levels(store: MetadataStore, hops: int) -> None:
    """Each level of a tree fans out eight ways: a walk cut after `hops` levels holds all of
    the last level and nothing of the next (MariaDB stops between iterations)."""
    artifact_type, execution_type = _types(store)
    levels = [
        [store.put_artifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=artifact_type)])).artifact_ids[0]]
    ]
    events = []
    for depth in range(1, 6):
        parents = levels[-1]
        count = len(parents) * 8 if depth < 3 else len(parents)
        if depth % 2:
            made = store.put_executions(
                svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=execution_type) for _ in range(count)])
            ).execution_ids
            events += [
                mlmd.Event(artifact_id=parents[i % len(parents)], execution_id=x, type=E.INPUT)
                for i, x in enumerate(made)
            ]
        else:
            made = store.put_artifacts(
                svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=artifact_type) for _ in range(count)])
            ).artifact_ids
            events += [
                mlmd.Event(artifact_id=a, execution_id=parents[i % len(parents)], type=E.OUTPUT)
                for i, a in enumerate(made)
            ]
        levels.append(list(made))
    store.put_events(svc.PutEventsRequest(events=events))
    graph = _subgraph(store, "artifacts", f"id = {levels[0][0]}", hops, Options.DOWNSTREAM)
    assert not isinstance(graph, tuple), graph
    reached = sorted([a.id for a in graph.artifacts]) + sorted([x.id for x in graph.executions])
    expected = [node for level in levels[: hops + 1] for node in level]
    assert sorted(reached) == sorted(expected)
    assert len(graph.events) == sum(len(level) for level in levels[1 : hops + 1])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_other_databases_walk_by_hops(store: MetadataStore, database: Database) -> None:
    with database.transaction() as uow:
        assert lineage_repo.walk_events(uow, lineage_repo.NodeKind.ARTIFACT, [1], 3, {}) is None
