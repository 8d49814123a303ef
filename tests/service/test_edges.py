"""Edge writes and relationship reads: spec §2.6-§2.7, §3.7, §3.8, §4.7, §4.9."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from tests.conftest import FakeClock
from tests.service.helpers import (
    put_artifact_type,
    put_artifacts,
    put_context_type,
    put_contexts,
    put_execution_type,
    put_executions,
)

INPUT, OUTPUT = mlmd.Event.INPUT, mlmd.Event.OUTPUT


@dataclass(frozen=True)
class Nodes:
    artifacts: list[int]
    executions: list[int]
    contexts: list[int]


def make_nodes(store: MetadataStore, artifacts: int = 3, executions: int = 2, contexts: int = 3) -> Nodes:
    artifact_type = put_artifact_type(store)
    execution_type = put_execution_type(store)
    context_type = put_context_type(store)
    return Nodes(
        put_artifacts(store, *(mlmd.Artifact(type_id=artifact_type, uri=f"a{i}") for i in range(artifacts))),
        put_executions(store, *(mlmd.Execution(type_id=execution_type, name=f"e{i}") for i in range(executions))),
        put_contexts(store, *(mlmd.Context(type_id=context_type, name=f"c{i}") for i in range(contexts))),
    )


def event(artifact_id: int, execution_id: int, kind: mlmd.Event.Type.ValueType = INPUT) -> mlmd.Event:
    return mlmd.Event(artifact_id=artifact_id, execution_id=execution_id, type=kind)


def put_events(store: MetadataStore, *events: mlmd.Event) -> None:
    store.put_events(svc.PutEventsRequest(events=events))


def events_by_artifacts(store: MetadataStore, *ids: int) -> list[mlmd.Event]:
    return list(store.get_events_by_artifact_ids(svc.GetEventsByArtifactIDsRequest(artifact_ids=ids)).events)


def events_by_executions(store: MetadataStore, *ids: int) -> list[mlmd.Event]:
    return list(store.get_events_by_execution_ids(svc.GetEventsByExecutionIDsRequest(execution_ids=ids)).events)


def key(e: mlmd.Event) -> tuple[int, int, int]:
    return (e.artifact_id, e.execution_id, e.type)


def link(store: MetadataStore, attributions: list[tuple[int, int]], associations: list[tuple[int, int]]) -> None:
    store.put_attributions_and_associations(
        svc.PutAttributionsAndAssociationsRequest(
            attributions=[mlmd.Attribution(context_id=c, artifact_id=a) for c, a in attributions],
            associations=[mlmd.Association(context_id=c, execution_id=e) for c, e in associations],
        )
    )


def put_parents(store: MetadataStore, *links: tuple[int, int]) -> None:
    """Each link is (child, parent)."""
    store.put_parent_contexts(
        svc.PutParentContextsRequest(parent_contexts=[mlmd.ParentContext(child_id=c, parent_id=p) for c, p in links])
    )


def parents_of(store: MetadataStore, context_id: int) -> list[int]:
    request = svc.GetParentContextsByContextRequest(context_id=context_id)
    return [c.id for c in store.get_parent_contexts_by_context(request).contexts]


def children_of(store: MetadataStore, context_id: int) -> list[int]:
    request = svc.GetChildrenContextsByContextRequest(context_id=context_id)
    return [c.id for c in store.get_children_contexts_by_context(request).contexts]


# -- PutEvents (§3.7, §4.7) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        mlmd.Event(execution_id=1, type=INPUT),
        mlmd.Event(artifact_id=1, type=INPUT),
        mlmd.Event(artifact_id=1, execution_id=1),
        mlmd.Event(artifact_id=1, execution_id=1, type=mlmd.Event.UNKNOWN),
    ],
    ids=["no-artifact-id", "no-execution-id", "no-type", "unknown-type"],
)
def test_put_events_incomplete_event_is_invalid_argument(store: MetadataStore, bad: mlmd.Event) -> None:
    make_nodes(store)
    with pytest.raises(errors.InvalidArgumentError):
        put_events(store, event(2, 2), bad)
    assert not events_by_artifacts(store, 1, 2)


def test_put_events_missing_artifact_or_execution_is_invalid_argument(store: MetadataStore) -> None:
    make_nodes(store)
    with pytest.raises(errors.InvalidArgumentError):
        put_events(store, event(1, 1), event(99, 1))
    with pytest.raises(errors.InvalidArgumentError):
        put_events(store, event(1, 99))
    assert not events_by_artifacts(store, 1, 99)


def test_put_events_duplicate_is_already_exists(store: MetadataStore) -> None:
    make_nodes(store)
    put_events(store, event(1, 1, INPUT))
    with pytest.raises(errors.AlreadyExistsError):
        put_events(store, event(2, 1), event(1, 1, INPUT))
    with pytest.raises(errors.AlreadyExistsError):
        put_events(store, event(3, 1), event(3, 1))
    assert [key(e) for e in events_by_executions(store, 1)] == [(1, 1, INPUT)]


def test_put_events_same_pair_with_another_type_is_ok(store: MetadataStore) -> None:
    make_nodes(store)
    put_events(store, event(1, 1, INPUT), event(1, 1, OUTPUT), event(1, 1, mlmd.Event.PENDING_OUTPUT))
    assert len(events_by_artifacts(store, 1)) == 3


def test_put_events_empty_request_is_ok(store: MetadataStore) -> None:
    assert store.put_events(svc.PutEventsRequest()) == svc.PutEventsResponse()


def test_put_events_timestamp_defaults_to_now_and_explicit_values_are_kept(
    store: MetadataStore, clock: FakeClock
) -> None:
    make_nodes(store)
    before = clock.now
    put_events(
        store,
        event(1, 1),
        mlmd.Event(artifact_id=2, execution_id=1, type=INPUT, milliseconds_since_epoch=0),
        mlmd.Event(artifact_id=3, execution_id=1, type=INPUT, milliseconds_since_epoch=1234),
    )
    defaulted, zero, explicit = events_by_executions(store, 1)
    assert before < defaulted.milliseconds_since_epoch <= clock.now
    assert zero.HasField("milliseconds_since_epoch") and zero.milliseconds_since_epoch == 0
    assert explicit.milliseconds_since_epoch == 1234


def test_put_events_path_steps_keep_order_and_drop_empty_steps(store: MetadataStore) -> None:
    make_nodes(store)
    with_path = event(1, 1)
    with_path.path.steps.add().index = 3
    with_path.path.steps.add()  # neither index nor key: dropped
    with_path.path.steps.add().key = "k"
    with_path.path.steps.add().index = 0
    with_path.path.steps.add().key = ""
    only_empty = event(2, 1)
    only_empty.path.steps.add()
    put_events(store, with_path, only_empty, event(3, 1))
    first, second, third = events_by_executions(store, 1)
    steps = [(s.WhichOneof("value"), s.index if s.HasField("index") else s.key) for s in first.path.steps]
    assert steps == [("index", 3), ("key", "k"), ("index", 0), ("key", "")]
    assert not second.HasField("path")
    assert not third.HasField("path")


def test_put_events_system_metadata_is_not_stored(store: MetadataStore) -> None:
    make_nodes(store)
    with_metadata = event(1, 1)
    with_metadata.system_metadata.Pack(mlmd.Artifact(id=1))
    put_events(store, with_metadata)
    [stored] = events_by_artifacts(store, 1)
    assert not stored.HasField("system_metadata")


# -- event reads (§4.8) --------------------------------------------------------------------------


def test_get_events_by_artifact_ids_orders_by_artifact_execution_type(store: MetadataStore) -> None:
    make_nodes(store)
    put_events(store, event(2, 2, OUTPUT), event(1, 2, INPUT), event(2, 1, OUTPUT), event(2, 1, INPUT))
    put_events(store, event(1, 1, OUTPUT), event(3, 1, INPUT))
    found = events_by_artifacts(store, 2, 1, 2)
    assert [key(e) for e in found] == [(1, 1, OUTPUT), (1, 2, INPUT), (2, 1, INPUT), (2, 1, OUTPUT), (2, 2, OUTPUT)]


def test_get_events_by_execution_ids_orders_by_execution_then_insertion(store: MetadataStore) -> None:
    make_nodes(store)
    put_events(store, event(3, 2, OUTPUT), event(2, 1, OUTPUT), event(1, 2, INPUT))
    put_events(store, event(1, 1, INPUT), event(2, 2, INPUT))
    found = events_by_executions(store, 2, 1, 1)
    assert [key(e) for e in found] == [(2, 1, OUTPUT), (1, 1, INPUT), (3, 2, OUTPUT), (1, 2, INPUT), (2, 2, INPUT)]


def test_get_events_nothing_found_or_empty_list_is_ok_and_empty(store: MetadataStore) -> None:
    make_nodes(store)
    put_events(store, event(1, 1))
    assert not events_by_artifacts(store)
    assert not events_by_artifacts(store, 2, 99)
    assert not events_by_executions(store)
    assert not events_by_executions(store, 2)


# -- attributions and associations (§3.8, §4.7) ------------------------------------------------------


def test_put_attributions_and_associations_links_nodes_to_contexts(store: MetadataStore) -> None:
    nodes = make_nodes(store)
    link(store, [(2, 3), (2, 1), (1, 1)], [(3, 2), (1, 2)])
    contexts = store.get_contexts_by_artifact(svc.GetContextsByArtifactRequest(artifact_id=1)).contexts
    assert [c.id for c in contexts] == [1, 2]
    assert contexts[0].name == "c0"
    by_execution = store.get_contexts_by_execution(svc.GetContextsByExecutionRequest(execution_id=2)).contexts
    assert [c.id for c in by_execution] == [1, 3]
    artifacts = store.get_artifacts_by_context(svc.GetArtifactsByContextRequest(context_id=2)).artifacts
    assert [(a.id, a.uri) for a in artifacts] == [(1, "a0"), (3, "a2")]
    executions = store.get_executions_by_context(svc.GetExecutionsByContextRequest(context_id=3)).executions
    assert [e.id for e in executions] == [nodes.executions[1]]


def test_put_attributions_and_associations_existing_pairs_are_accepted(store: MetadataStore) -> None:
    make_nodes(store)
    link(store, [(1, 1)], [(1, 1)])
    link(store, [(1, 1), (1, 1), (1, 2)], [(1, 1), (1, 1)])
    artifacts = store.get_artifacts_by_context(svc.GetArtifactsByContextRequest(context_id=1)).artifacts
    assert [a.id for a in artifacts] == [1, 2]
    executions = store.get_executions_by_context(svc.GetExecutionsByContextRequest(context_id=1)).executions
    assert [e.id for e in executions] == [1]


@pytest.mark.parametrize(
    ("attributions", "associations"),
    [
        ([(99, 1)], []),
        ([(1, 99)], []),
        ([], [(99, 1)]),
        ([], [(1, 99)]),
    ],
    ids=["attribution-context", "attribution-artifact", "association-context", "association-execution"],
)
def test_put_attributions_and_associations_missing_node_is_invalid_argument(
    store: MetadataStore, attributions: list[tuple[int, int]], associations: list[tuple[int, int]]
) -> None:
    make_nodes(store)
    with pytest.raises(errors.InvalidArgumentError):
        link(store, [(2, 2), *attributions], [(2, 2), *associations])
    assert not store.get_artifacts_by_context(svc.GetArtifactsByContextRequest(context_id=2)).artifacts
    assert not store.get_executions_by_context(svc.GetExecutionsByContextRequest(context_id=2)).executions


def test_put_attributions_and_associations_unset_ids_are_invalid_argument(store: MetadataStore) -> None:
    make_nodes(store)
    for request in (
        svc.PutAttributionsAndAssociationsRequest(attributions=[mlmd.Attribution(artifact_id=1)]),
        svc.PutAttributionsAndAssociationsRequest(attributions=[mlmd.Attribution(context_id=1)]),
        svc.PutAttributionsAndAssociationsRequest(associations=[mlmd.Association(context_id=1)]),
        svc.PutAttributionsAndAssociationsRequest(associations=[mlmd.Association(execution_id=1)]),
    ):
        with pytest.raises(errors.InvalidArgumentError):
            store.put_attributions_and_associations(request)


def test_put_attributions_and_associations_empty_request_is_ok(store: MetadataStore) -> None:
    response = store.put_attributions_and_associations(svc.PutAttributionsAndAssociationsRequest())
    assert response == svc.PutAttributionsAndAssociationsResponse()


def test_get_contexts_by_artifact_or_execution_without_links_is_not_found(store: MetadataStore) -> None:
    make_nodes(store)
    link(store, [(1, 1)], [(1, 1)])
    with pytest.raises(errors.NotFoundError):
        store.get_contexts_by_artifact(svc.GetContextsByArtifactRequest(artifact_id=2))
    with pytest.raises(errors.NotFoundError):
        store.get_contexts_by_artifact(svc.GetContextsByArtifactRequest(artifact_id=99))
    with pytest.raises(errors.NotFoundError):
        store.get_contexts_by_execution(svc.GetContextsByExecutionRequest(execution_id=2))
    with pytest.raises(errors.NotFoundError):
        store.get_contexts_by_execution(svc.GetContextsByExecutionRequest())


def test_get_nodes_by_context_unknown_or_unlinked_context_is_ok_and_empty(store: MetadataStore) -> None:
    make_nodes(store)
    link(store, [(1, 1)], [(1, 1)])
    for context_id in (2, 99):
        artifacts = store.get_artifacts_by_context(svc.GetArtifactsByContextRequest(context_id=context_id))
        assert artifacts == svc.GetArtifactsByContextResponse()
        executions = store.get_executions_by_context(svc.GetExecutionsByContextRequest(context_id=context_id))
        assert executions == svc.GetExecutionsByContextResponse()


def test_get_artifacts_by_context_with_options_pages_within_the_context(store: MetadataStore) -> None:
    make_nodes(store, artifacts=5)
    link(store, [(1, 5), (1, 2), (1, 4), (2, 1)], [])
    request = svc.GetArtifactsByContextRequest(context_id=1)
    request.options.max_result_size = 2
    first = store.get_artifacts_by_context(request)
    assert [a.id for a in first.artifacts] == [2, 4]
    assert first.next_page_token
    request.options.next_page_token = first.next_page_token
    second = store.get_artifacts_by_context(request)
    assert [a.id for a in second.artifacts] == [5]
    assert not second.HasField("next_page_token")


# -- parent contexts (§4.7, §4.9) ------------------------------------------------------------------


def test_put_parent_contexts_links_are_readable_both_ways(store: MetadataStore) -> None:
    make_nodes(store, contexts=4)
    put_parents(store, (1, 3), (1, 2), (4, 2))
    assert parents_of(store, 1) == [2, 3]
    assert children_of(store, 2) == [1, 4]
    assert children_of(store, 3) == [1]
    assert parents_of(store, 2) == []
    parents = store.get_parent_contexts_by_context(svc.GetParentContextsByContextRequest(context_id=4)).contexts
    assert [c.name for c in parents] == ["c1"]


def test_get_parent_and_children_contexts_return_direct_links_only(store: MetadataStore) -> None:
    make_nodes(store, contexts=3)
    put_parents(store, (3, 2), (2, 1))
    assert parents_of(store, 3) == [2]
    assert children_of(store, 1) == [2]
    assert parents_of(store, 99) == []
    assert children_of(store, 99) == []


def test_put_parent_contexts_self_link_is_invalid_argument(store: MetadataStore) -> None:
    make_nodes(store)
    with pytest.raises(errors.InvalidArgumentError):
        put_parents(store, (1, 1))


@pytest.mark.parametrize(
    "bad",
    [mlmd.ParentContext(child_id=1), mlmd.ParentContext(parent_id=1), mlmd.ParentContext()],
    ids=["no-parent", "no-child", "neither"],
)
def test_put_parent_contexts_unset_id_is_invalid_argument(store: MetadataStore, bad: mlmd.ParentContext) -> None:
    make_nodes(store)
    with pytest.raises(errors.InvalidArgumentError):
        store.put_parent_contexts(svc.PutParentContextsRequest(parent_contexts=[bad]))


def test_put_parent_contexts_missing_context_is_invalid_argument(store: MetadataStore) -> None:
    make_nodes(store)
    with pytest.raises(errors.InvalidArgumentError):
        put_parents(store, (1, 99))
    with pytest.raises(errors.InvalidArgumentError):
        put_parents(store, (99, 1))


def test_put_parent_contexts_cycle_is_invalid_argument(store: MetadataStore) -> None:
    make_nodes(store, contexts=3)
    put_parents(store, (2, 1), (3, 2))
    with pytest.raises(errors.InvalidArgumentError):
        put_parents(store, (1, 3))
    with pytest.raises(errors.InvalidArgumentError):
        put_parents(store, (1, 2))
    assert parents_of(store, 1) == []


def test_put_parent_contexts_cycle_within_one_request_is_invalid_argument(store: MetadataStore) -> None:
    make_nodes(store, contexts=3)
    with pytest.raises(errors.InvalidArgumentError):
        put_parents(store, (2, 1), (3, 2), (1, 3))
    assert children_of(store, 1) == []
    assert children_of(store, 2) == []


def test_put_parent_contexts_existing_link_is_already_exists(store: MetadataStore) -> None:
    make_nodes(store, contexts=3)
    put_parents(store, (2, 1))
    with pytest.raises(errors.AlreadyExistsError):
        put_parents(store, (3, 1), (2, 1))
    with pytest.raises(errors.AlreadyExistsError):
        put_parents(store, (3, 2), (3, 2))
    assert children_of(store, 1) == [2]
    assert parents_of(store, 3) == []


def test_put_parent_contexts_diamond_is_not_a_cycle(store: MetadataStore) -> None:
    make_nodes(store, contexts=4)
    put_parents(store, (2, 1), (3, 1), (4, 2), (4, 3))
    assert parents_of(store, 4) == [2, 3]


def test_get_parent_contexts_by_contexts_maps_only_ids_with_parents(store: MetadataStore) -> None:
    make_nodes(store, contexts=4)
    put_parents(store, (1, 3), (1, 2), (2, 4))
    request = svc.GetParentContextsByContextsRequest(context_ids=[1, 2, 3, 99])
    result = store.get_parent_contexts_by_contexts(request).contexts
    assert sorted(result) == [1, 2]
    assert [c.id for c in result[1].parent_contexts] == [2, 3]
    assert [c.name for c in result[2].parent_contexts] == ["c3"]


def test_get_children_contexts_by_contexts_maps_only_ids_with_children(store: MetadataStore) -> None:
    make_nodes(store, contexts=4)
    put_parents(store, (1, 3), (2, 3), (3, 4))
    request = svc.GetChildrenContextsByContextsRequest(context_ids=[3, 4, 1])
    result = store.get_children_contexts_by_contexts(request).contexts
    assert sorted(result) == [3, 4]
    assert [c.id for c in result[3].children_contexts] == [1, 2]
    assert [c.id for c in result[4].children_contexts] == [3]


def test_get_parent_and_children_contexts_by_contexts_empty_list_is_invalid_argument(store: MetadataStore) -> None:
    with pytest.raises(errors.InvalidArgumentError):
        store.get_parent_contexts_by_contexts(svc.GetParentContextsByContextsRequest())
    with pytest.raises(errors.InvalidArgumentError):
        store.get_children_contexts_by_contexts(svc.GetChildrenContextsByContextsRequest())


def test_get_parent_contexts_by_contexts_without_links_is_ok_and_empty(store: MetadataStore) -> None:
    make_nodes(store, contexts=2)
    request = svc.GetParentContextsByContextsRequest(context_ids=[1, 2, 99])
    assert not store.get_parent_contexts_by_contexts(request).contexts
