"""GetLineageSubgraph (spec §7.1) and the deprecated GetLineageGraph (§7.3), on every backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.repositories import edges as edge_repo

Options = mlmd.LineageSubgraphQueryOptions
E = mlmd.Event
SYSTEM_ARTIFACT_TYPES = {"mlmd.Dataset", "mlmd.Model", "mlmd.Metrics", "mlmd.Statistics"}
SYSTEM_EXECUTION_TYPES = {"mlmd.Train", "mlmd.Transform", "mlmd.Process", "mlmd.Evaluate", "mlmd.Deploy"}


@pytest.fixture
def filters() -> None:
    """Starting/ending nodes are chosen by filter_query, compiled by lineagedb.store.filter_query."""
    pytest.importorskip("lineagedb.store.filter_query")


# -- builders ---------------------------------------------------------------------------------


class Graph:
    """Writes nodes and edges through the public API; ids are the ones the store assigned."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self.artifact_type = store.put_artifact_type(
            svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Data"))
        ).type_id
        self.execution_type = store.put_execution_type(
            svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="Step"))
        ).type_id
        self.context_type = store.put_context_type(
            svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="Run"))
        ).type_id

    def artifacts(self, count: int, uri: str = "") -> list[int]:
        nodes = [mlmd.Artifact(type_id=self.artifact_type, uri=uri) for _ in range(count)]
        return list(self.store.put_artifacts(svc.PutArtifactsRequest(artifacts=nodes)).artifact_ids)

    def executions(self, count: int) -> list[int]:
        nodes = [mlmd.Execution(type_id=self.execution_type) for _ in range(count)]
        return list(self.store.put_executions(svc.PutExecutionsRequest(executions=nodes)).execution_ids)

    def contexts(self, *names: str) -> list[int]:
        nodes = [mlmd.Context(type_id=self.context_type, name=name) for name in names]
        return list(self.store.put_contexts(svc.PutContextsRequest(contexts=nodes)).context_ids)

    def events(self, *edges: tuple[int, int, int]) -> None:
        """Edges as (artifact_id, event type, execution_id)."""
        events = [mlmd.Event(artifact_id=a, execution_id=e, type=t) for a, t, e in edges]
        self.store.put_events(svc.PutEventsRequest(events=events))

    def link(self, attributions: Sequence[tuple[int, int]] = (), associations: Sequence[tuple[int, int]] = ()) -> None:
        """attributions as (context, artifact), associations as (context, execution)."""
        self.store.put_attributions_and_associations(
            svc.PutAttributionsAndAssociationsRequest(
                attributions=[mlmd.Attribution(context_id=c, artifact_id=a) for c, a in attributions],
                associations=[mlmd.Association(context_id=c, execution_id=e) for c, e in associations],
            )
        )


def probed_example(store: MetadataStore) -> Graph:
    """a1 -INPUT-> e1 -OUTPUT-> a2 -INPUT-> e2 -OUTPUT-> a3, a4 -DECLARED_INPUT-> e2;
    c1 attributed to a1 and associated to e2 (spec §7.1)."""
    graph = Graph(store)
    assert graph.artifacts(4) == [1, 2, 3, 4]
    assert graph.executions(2) == [1, 2]
    assert graph.contexts("c1") == [1]
    graph.events((1, E.INPUT, 1), (2, E.OUTPUT, 1), (2, E.INPUT, 2), (3, E.OUTPUT, 2), (4, E.DECLARED_INPUT, 2))
    graph.link(attributions=[(1, 1)], associations=[(1, 2)])
    return graph


def subgraph(
    store: MetadataStore,
    start: str = "id = 1",
    *,
    executions: bool = False,
    hops: int | None = None,
    direction: int | None = None,
    mask: Sequence[str] = (),
    **ending: Any,
) -> mlmd.LineageGraph:
    options = Options(max_num_hops=hops, direction=direction, **ending)
    getattr(options, "starting_executions" if executions else "starting_artifacts").filter_query = start
    request = svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=options)
    if mask:
        request.read_mask.paths.extend(mask)
    return store.get_lineage_subgraph(request).lineage_subgraph


def ids(nodes: Any) -> list[int]:
    return [node.id for node in nodes]


def edges_of(graph: mlmd.LineageGraph) -> list[tuple[int, int]]:
    return [(e.artifact_id, e.execution_id) for e in graph.events]


@contextmanager
def counting_statements(store: MetadataStore) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(store.db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(store.db.engine, "before_cursor_execute", record)


# -- the probed example of §7.1 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("hops", "artifacts", "executions", "events"),
    [
        (0, [1], [], []),
        (1, [1], [1], [(1, 1)]),
        (2, [1, 2], [1], [(1, 1), (2, 1)]),
        (None, [1, 2, 3, 4], [1, 2], [(1, 1), (2, 1), (2, 2), (3, 2), (4, 2)]),
    ],
)
def test_get_lineage_subgraph_probed_example_grows_with_hops(store, filters, hops, artifacts, executions, events):
    probed_example(store)
    graph = subgraph(store, "id = 1", hops=hops)
    assert ids(graph.artifacts) == artifacts
    assert ids(graph.executions) == executions
    assert edges_of(graph) == events
    assert ids(graph.contexts) == [1]
    assert not graph.parent_contexts


def test_get_lineage_subgraph_nodes_are_dehydrated(store, filters):
    probed_example(store)
    graph = subgraph(store, "id = 1", hops=1)
    assert list(graph.artifacts) == [mlmd.Artifact(id=1)]
    assert list(graph.executions) == [mlmd.Execution(id=1)]
    assert list(graph.contexts) == [mlmd.Context(id=1)]


def test_get_lineage_subgraph_upstream_from_a3_two_hops(store, filters):
    probed_example(store)
    graph = subgraph(store, "id = 3", hops=2, direction=Options.UPSTREAM)
    assert ids(graph.artifacts) == [2, 3, 4]
    assert ids(graph.executions) == [2]
    assert edges_of(graph) == [(3, 2), (2, 2), (4, 2)]


def test_get_lineage_subgraph_ending_executions_excludes_ending_node_and_edge(store, filters):
    probed_example(store)
    graph = subgraph(store, "id = 1", ending_executions=Options.EndingNodes(filter_query="id = 2"))
    assert ids(graph.artifacts) == [1, 2]
    assert ids(graph.executions) == [1]
    assert edges_of(graph) == [(1, 1), (2, 1)]


def test_get_lineage_subgraph_ending_executions_included_but_not_expanded(store, filters):
    probed_example(store)
    ending = Options.EndingNodes(filter_query="id = 2", include_ending_nodes=True)
    graph = subgraph(store, "id = 1", ending_executions=ending)
    assert ids(graph.artifacts) == [1, 2]
    assert ids(graph.executions) == [1, 2]
    assert edges_of(graph) == [(1, 1), (2, 1), (2, 2)]
    # c1 is associated to the included ending execution e2.
    assert [(a.execution_id, a.context_id) for a in graph.associations] == [(2, 1)]


def test_get_lineage_subgraph_empty_ending_filter_matches_every_candidate(store, filters):
    probed_example(store)
    graph = subgraph(store, "id = 1", ending_executions=Options.EndingNodes(filter_query=""))
    assert ids(graph.artifacts) == [1] and not graph.executions and not graph.events
    ending = Options.EndingNodes(filter_query="", include_ending_nodes=True)
    graph = subgraph(store, "id = 1", ending_executions=ending)
    assert ids(graph.executions) == [1] and edges_of(graph) == [(1, 1)] and ids(graph.artifacts) == [1]


def test_get_lineage_subgraph_ending_without_filter_query_is_no_rule(store, filters):
    probed_example(store)
    graph = subgraph(store, "id = 1", ending_executions=Options.EndingNodes(include_ending_nodes=True))
    assert ids(graph.artifacts) == [1, 2, 3, 4] and ids(graph.executions) == [1, 2]


def test_get_lineage_subgraph_starting_node_matching_ending_filter_is_not_expanded(store, filters):
    probed_example(store)
    ending = Options.EndingNodes(filter_query="id = 1")
    graph = subgraph(store, "id = 1", ending_artifacts=ending)
    assert not graph.artifacts and not graph.executions and not graph.events
    ending.include_ending_nodes = True
    graph = subgraph(store, "id = 1", ending_artifacts=ending)
    assert ids(graph.artifacts) == [1] and not graph.executions and not graph.events


# -- validation (§7.1 steps 1-5) ----------------------------------------------------------------


def test_get_lineage_subgraph_without_starting_nodes_is_invalid_argument(store):
    with pytest.raises(errors.InvalidArgumentError):
        store.get_lineage_subgraph(svc.GetLineageSubgraphRequest())
    request = svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=Options(max_num_hops=-1))
    with pytest.raises(errors.InvalidArgumentError, match="starting"):
        store.get_lineage_subgraph(request)


@pytest.mark.parametrize("field", ["starting_artifacts", "starting_executions"])
def test_get_lineage_subgraph_empty_starting_filter_is_invalid_argument(store, field):
    for starting in (Options.StartingNodes(), Options.StartingNodes(filter_query="")):
        options = Options(**{field: starting}, max_num_hops=-1)
        with pytest.raises(errors.InvalidArgumentError, match="filter_query"):
            store.get_lineage_subgraph(svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=options))


def test_get_lineage_subgraph_negative_hops_is_invalid_argument_before_the_filter_runs(store):
    # The starting filter would match nothing (NOT_FOUND), and would need the filter
    # compiler; the hop check comes first.
    options = Options(starting_artifacts=Options.StartingNodes(filter_query="id = 1"), max_num_hops=-1)
    with pytest.raises(errors.InvalidArgumentError, match="max_num_hops"):
        store.get_lineage_subgraph(svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=options))


def test_get_lineage_subgraph_empty_starting_set_is_not_found(store, filters):
    probed_example(store)
    with pytest.raises(errors.NotFoundError):
        subgraph(store, "id = 99")
    with pytest.raises(errors.NotFoundError):
        subgraph(store, "id = 99", mask=["bogus"])
    with pytest.raises(errors.NotFoundError):
        subgraph(store, "id = 3", executions=True)


def test_get_lineage_subgraph_bad_starting_filter_is_invalid_argument(store, filters):
    probed_example(store)
    with pytest.raises(errors.InvalidArgumentError):
        subgraph(store, "id = = 1")


def test_get_lineage_subgraph_bad_ending_filter_is_invalid_argument(store, filters):
    probed_example(store)
    with pytest.raises(errors.InvalidArgumentError):
        subgraph(store, "id = 1", ending_executions=Options.EndingNodes(filter_query="id = = 1"))


# -- direction ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "artifacts", "executions", "events"),
    [
        (Options.DOWNSTREAM, [2, 3], [2], [(2, 2), (3, 2)]),
        (Options.UPSTREAM, [1, 2], [1], [(2, 1), (1, 1)]),
        (Options.BIDIRECTIONAL, [1, 2, 3, 4], [1, 2], [(2, 1), (2, 2), (1, 1), (3, 2), (4, 2)]),
        (Options.DIRECTION_UNSPECIFIED, [1, 2, 3, 4], [1, 2], [(2, 1), (2, 2), (1, 1), (3, 2), (4, 2)]),
    ],
)
def test_get_lineage_subgraph_direction_from_artifact(store, filters, direction, artifacts, executions, events):
    probed_example(store)
    graph = subgraph(store, "id = 2", direction=direction)
    assert ids(graph.artifacts) == artifacts
    assert ids(graph.executions) == executions
    assert edges_of(graph) == events


@pytest.mark.parametrize(
    ("direction", "artifacts", "executions"),
    [
        (Options.DOWNSTREAM, [2, 3], [1, 2]),
        (Options.UPSTREAM, [1], [1]),
        (Options.BIDIRECTIONAL, [1, 2, 3, 4], [1, 2]),
    ],
)
def test_get_lineage_subgraph_direction_from_execution(store, filters, direction, artifacts, executions):
    probed_example(store)
    graph = subgraph(store, "id = 1", executions=True, direction=direction)
    assert ids(graph.artifacts) == artifacts
    assert ids(graph.executions) == executions


def test_get_lineage_subgraph_directed_traversal_ignores_unknown_events(store, filters):
    graph = Graph(store)
    graph.artifacts(2)
    graph.executions(1)
    graph.events((2, E.PENDING_OUTPUT, 1))
    # PutEvents rejects UNKNOWN; older writers left such rows behind.
    with store.db.transaction() as uow:
        edge_repo.insert_events(uow, [mlmd.Event(artifact_id=1, execution_id=1, type=E.UNKNOWN)], 0)
    assert ids(subgraph(store, "id = 1", direction=Options.DOWNSTREAM).executions) == []
    assert ids(subgraph(store, "id = 2", direction=Options.UPSTREAM).executions) == [1]
    assert ids(subgraph(store, "id = 1").artifacts) == [1, 2]


# -- termination (T23) ---------------------------------------------------------------------------


@pytest.mark.parametrize("direction", [Options.UPSTREAM, Options.DOWNSTREAM, Options.BIDIRECTIONAL])
def test_get_lineage_subgraph_self_loop_terminates_without_duplicate_events(store, filters, direction):
    graph = Graph(store)
    graph.artifacts(1)
    graph.executions(1)
    graph.events((1, E.INPUT, 1), (1, E.OUTPUT, 1))
    result = subgraph(store, "id = 1", direction=direction, hops=100)
    assert ids(result.artifacts) == [1] and ids(result.executions) == [1]
    assert sorted((e.artifact_id, e.execution_id, e.type) for e in result.events) == [(1, 1, E.INPUT), (1, 1, E.OUTPUT)]


@pytest.mark.parametrize("direction", [Options.UPSTREAM, Options.DOWNSTREAM, Options.BIDIRECTIONAL])
def test_get_lineage_subgraph_cycle_terminates(store, filters, direction):
    # a1 -> e1 -> a2 -> e2 -> a1
    graph = Graph(store)
    graph.artifacts(2)
    graph.executions(2)
    graph.events((1, E.INPUT, 1), (2, E.OUTPUT, 1), (2, E.INPUT, 2), (1, E.OUTPUT, 2))
    result = subgraph(store, "id = 1", direction=direction)
    assert ids(result.artifacts) == [1, 2] and ids(result.executions) == [1, 2]
    assert len(result.events) == 4
    assert len({(e.artifact_id, e.execution_id, e.type) for e in result.events}) == 4


# -- limits -----------------------------------------------------------------------------------------


def test_get_lineage_subgraph_hops_are_clamped_to_100_on_a_300_node_chain(store, filters):
    graph = Graph(store)
    artifacts = graph.artifacts(150)
    executions = graph.executions(150)
    edges: list[tuple[int, int, int]] = []
    for i, execution in enumerate(executions):
        edges.append((artifacts[i], E.INPUT, execution))
        if i + 1 < len(artifacts):
            edges.append((artifacts[i + 1], E.OUTPUT, execution))
    graph.events(*edges)
    # 100 hops from a1: executions on the even hops, artifacts on the odd ones.
    for hops in (None, 100, 101, 10_000):
        result = subgraph(store, f"id = {artifacts[0]}", hops=hops, mask=["artifacts", "executions"])
        assert ids(result.artifacts) == artifacts[:51]
        assert ids(result.executions) == executions[:50]
    assert len(subgraph(store, f"id = {artifacts[0]}", hops=7).artifacts) == 4


def test_get_lineage_subgraph_starting_set_is_capped_at_101(store, filters):
    graph = Graph(store)
    graph.artifacts(150, uri="same")
    result = subgraph(store, "uri = 'same'", hops=0)
    assert ids(result.artifacts) == list(range(1, 102))


# -- read_mask ----------------------------------------------------------------------------------


def test_get_lineage_subgraph_read_mask_selects_fields(store, filters):
    probed_example(store)
    full = subgraph(store, "id = 1")
    masked = subgraph(store, "id = 1", mask=["artifacts", "events"])
    expected = mlmd.LineageGraph(artifacts=full.artifacts, events=full.events)
    assert masked == expected
    masked = subgraph(store, "id = 1", mask=["contexts", "associations", "context_types"])
    expected = mlmd.LineageGraph(
        contexts=full.contexts, associations=full.associations, context_types=full.context_types
    )
    assert masked == expected


def test_get_lineage_subgraph_read_mask_ignores_unknown_and_nested_paths(store, filters):
    probed_example(store)
    assert subgraph(store, "id = 1", mask=["bogus", "artifacts.id", "parent_contexts"]) == mlmd.LineageGraph()
    full = subgraph(store, "id = 1")
    assert subgraph(store, "id = 1", mask=["bogus", "executions"]) == mlmd.LineageGraph(executions=full.executions)


def test_get_lineage_subgraph_events_carry_paths_and_times(store, filters):
    graph = Graph(store)
    graph.artifacts(1)
    graph.executions(1)
    step = mlmd.Event(artifact_id=1, execution_id=1, type=E.INPUT, milliseconds_since_epoch=42)
    step.path.steps.add().key = "in"
    step.path.steps.add().index = 3
    store.put_events(svc.PutEventsRequest(events=[step]))
    (got,) = subgraph(store, "id = 1", mask=["events"]).events
    assert got == step


# -- contexts, attributions, associations, types -----------------------------------------------


def test_get_lineage_subgraph_contexts_and_links_of_result_nodes_only(store, filters):
    graph = probed_example(store)
    assert graph.contexts("c2", "c3") == [2, 3]
    graph.link(attributions=[(2, 1), (3, 3)], associations=[(2, 1), (3, 2)])
    result = subgraph(store, "id = 1", hops=1)
    assert ids(result.contexts) == [1, 2]
    assert [(a.artifact_id, a.context_id) for a in result.attributions] == [(1, 1), (1, 2)]
    assert [(a.execution_id, a.context_id) for a in result.associations] == [(1, 2)]
    result = subgraph(store, "id = 1")
    assert ids(result.contexts) == [1, 2, 3]
    assert [(a.artifact_id, a.context_id) for a in result.attributions] == [(1, 1), (1, 2), (3, 3)]
    assert [(a.execution_id, a.context_id) for a in result.associations] == [(1, 2), (2, 1), (2, 3)]


def test_get_lineage_subgraph_types_include_system_types_with_lineage_fields(store, filters):
    artifact_type = mlmd.ArtifactType(
        name="Model", version="v1", external_id="ext-a", base_type=mlmd.ArtifactType.MODEL
    )
    artifact_type.properties["p"] = mlmd.INT
    store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=artifact_type))
    execution_type = mlmd.ExecutionType(name="Trainer", external_id="ext-e", base_type=mlmd.ExecutionType.TRAIN)
    execution_type.input_type.any.SetInParent()
    store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=execution_type))
    store.put_context_type(svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="Run", external_id="ext-c")))
    (type_id,) = [t.id for t in store.get_artifact_types(svc.GetArtifactTypesRequest()).artifact_types]
    store.put_artifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id)]))
    result = subgraph(store, "id = 1")
    assert {t.name for t in result.artifact_types} == SYSTEM_ARTIFACT_TYPES | {"Model"}
    assert {t.name for t in result.execution_types} == SYSTEM_EXECUTION_TYPES | {"Trainer"}
    assert [t.name for t in result.context_types] == ["Run"]
    assert ids(result.artifact_types) == sorted(ids(result.artifact_types))
    for t in [*result.artifact_types, *result.execution_types, *result.context_types]:
        assert not t.HasField("external_id")
        assert "base_type" not in t.DESCRIPTOR.fields_by_name or not t.HasField("base_type")
    (model,) = [t for t in result.artifact_types if t.name == "Model"]
    assert model.version == "v1" and dict(model.properties) == {"p": mlmd.INT}
    (trainer,) = [t for t in result.execution_types if t.name == "Trainer"]
    assert trainer.input_type.HasField("any")


# -- set-based traversal ------------------------------------------------------------------------


def fan_out(store: MetadataStore, width: int, name: str) -> tuple[int, int]:
    """A root artifact that is an input of `width` executions, each producing one artifact,
    all in one context. Returns the root's id and the id of the first produced artifact."""
    graph = Graph(store)
    root, *outputs = graph.artifacts(width + 1)
    executions = graph.executions(width)
    (context,) = graph.contexts(name)
    edges = [(root, E.INPUT, e) for e in executions] + [
        (a, E.OUTPUT, e) for a, e in zip(outputs, executions, strict=True)
    ]
    graph.events(*edges)
    graph.link(attributions=[(context, a) for a in outputs], associations=[(context, e) for e in executions])
    return root, outputs[0]


def test_get_lineage_subgraph_statement_count_does_not_grow_with_nodes(store, filters):
    wide_root, wide_output = fan_out(store, 200, "wide")
    narrow_root, narrow_output = fan_out(store, 20, "narrow")

    def run(root: int, ending_artifact: int) -> tuple[mlmd.LineageGraph, int]:
        ending = Options.EndingNodes(filter_query=f"id = {ending_artifact}", include_ending_nodes=True)
        with counting_statements(store) as statements:
            result = subgraph(store, f"id = {root}", hops=2, ending_artifacts=ending)
        return result, len(statements)

    wide, wide_count = run(wide_root, wide_output)
    assert len(wide.artifacts) == 201 and len(wide.executions) == 200 and len(wide.events) == 400
    assert len(wide.attributions) == 200 and len(wide.associations) == 200 and len(wide.contexts) == 1
    narrow, narrow_count = run(narrow_root, narrow_output)
    assert len(narrow.artifacts) == 21 and len(narrow.events) == 40
    # Ten times the nodes, the same statements: one events query per hop, not one per node.
    assert wide_count == narrow_count
    assert wide_count <= 30


def test_get_lineage_subgraph_links_come_back_per_side_in_key_order(store):
    """Attributions and associations are read together (one statement on every backend);
    each side keeps its own order, (node, context), whatever order they were written in."""
    graph = Graph(store)
    a1, a2, a3 = graph.artifacts(3)
    e1, e2 = graph.executions(2)
    c1, c2, c3 = graph.contexts("c1", "c2", "c3")
    graph.events((a1, E.INPUT, e1), (a2, E.OUTPUT, e1), (a2, E.INPUT, e2), (a3, E.OUTPUT, e2))
    graph.link(attributions=[(c3, a2), (c1, a3), (c2, a2), (c1, a1)], associations=[(c2, e2), (c3, e1), (c1, e2)])

    result = subgraph(store, f"id = {a1}", hops=4)
    attributions = [(link.artifact_id, link.context_id) for link in result.attributions]
    associations = [(link.execution_id, link.context_id) for link in result.associations]
    assert attributions == [(a1, c1), (a2, c2), (a2, c3), (a3, c1)]
    assert associations == [(e1, c3), (e2, c1), (e2, c2)]
    assert ids(result.contexts) == [c1, c2, c3]

    # Only one side asked for: the other is not read, and what is read is the same.
    only_attributions = subgraph(store, f"id = {a1}", hops=4, mask=["attributions"])
    assert [(link.artifact_id, link.context_id) for link in only_attributions.attributions] == attributions
    assert not only_attributions.associations


# -- GetLineageGraph (deprecated, pre-1.15 library semantics) -----------------------------------


def lineage_graph(store: MetadataStore, options: mlmd.LineageGraphQueryOptions) -> mlmd.LineageGraph:
    return store.get_lineage_graph(svc.GetLineageGraphRequest(options=options)).subgraph


def test_get_lineage_graph_without_artifacts_options_is_invalid_argument(store):
    with pytest.raises(errors.InvalidArgumentError):
        lineage_graph(store, mlmd.LineageGraphQueryOptions())


def test_get_lineage_graph_negative_hops_is_invalid_argument(store):
    options = mlmd.LineageGraphQueryOptions(artifacts_options=mlmd.ListOperationOptions())
    options.stop_conditions.max_num_hops = -1
    with pytest.raises(errors.InvalidArgumentError):
        lineage_graph(store, options)


def test_get_lineage_graph_without_query_artifacts_is_not_found(store):
    with pytest.raises(errors.NotFoundError):
        lineage_graph(store, mlmd.LineageGraphQueryOptions(artifacts_options=mlmd.ListOperationOptions()))


def test_get_lineage_graph_returns_hydrated_nodes_events_and_user_types(store, filters):
    probed_example(store)
    options = mlmd.LineageGraphQueryOptions(artifacts_options=mlmd.ListOperationOptions(filter_query="id = 1"))
    graph = lineage_graph(store, options)
    assert ids(graph.artifacts) == [1, 2, 3, 4] and ids(graph.executions) == [1, 2]
    assert all(a.type == "Data" and a.HasField("create_time_since_epoch") for a in graph.artifacts)
    assert all(e.type == "Step" for e in graph.executions)
    assert edges_of(graph) == [(1, 1), (2, 1), (2, 2), (3, 2), (4, 2)]
    assert [t.name for t in graph.artifact_types] == ["Data"]
    assert [t.name for t in graph.execution_types] == ["Step"]
    assert [t.name for t in graph.context_types] == ["Run"]
    assert not graph.contexts


def test_get_lineage_graph_node_quota_and_hops(store):
    probed_example(store)
    options = mlmd.LineageGraphQueryOptions(artifacts_options=mlmd.ListOperationOptions(max_result_size=1))
    options.max_node_size = 3
    graph = lineage_graph(store, options)
    assert ids(graph.artifacts) == [1, 2] and ids(graph.executions) == [1]
    options.max_node_size = 0  # unlimited
    options.stop_conditions.max_num_hops = 2
    graph = lineage_graph(store, options)
    assert ids(graph.artifacts) == [1, 2] and ids(graph.executions) == [1]
    # The quota also truncates the query artifacts themselves.
    options = mlmd.LineageGraphQueryOptions(artifacts_options=mlmd.ListOperationOptions(), max_node_size=2)
    options.stop_conditions.max_num_hops = 0
    assert ids(lineage_graph(store, options).artifacts) == [1, 2]


def test_get_lineage_graph_boundary_prunes_nodes(store, filters):
    probed_example(store)
    options = mlmd.LineageGraphQueryOptions(artifacts_options=mlmd.ListOperationOptions(filter_query="id = 1"))
    options.stop_conditions.boundary_executions = "id = 1"
    graph = lineage_graph(store, options)
    assert ids(graph.artifacts) == [1, 2] and ids(graph.executions) == [1]
    assert edges_of(graph) == [(1, 1), (2, 1)]


def test_get_lineage_subgraph_types_follow_every_type_change(store, filters):
    # The answer's types are reused between calls while the type rows are unchanged: a new
    # type, a property added to a type and a new version must each show at once.
    probed_example(store)
    before = subgraph(store, "id = 1")
    names = [t.name for t in before.artifact_types]
    put_type = store.put_artifact_type
    put_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Fresh")))
    assert [t.name for t in subgraph(store, "id = 1").artifact_types] == [*names, "Fresh"]
    grown = mlmd.ArtifactType(name="Fresh", properties={"size": mlmd.INT})
    put_type(svc.PutArtifactTypeRequest(artifact_type=grown, can_add_fields=True))
    [fresh] = [t for t in subgraph(store, "id = 1").artifact_types if t.name == "Fresh"]
    assert dict(fresh.properties) == {"size": mlmd.INT}
    put_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Fresh", version="v2")))
    answer = subgraph(store, "id = 1", mask=["artifact_types"])
    assert [(t.name, t.version) for t in answer.artifact_types][-2:] == [("Fresh", ""), ("Fresh", "v2")]
    assert answer == mlmd.LineageGraph(artifact_types=answer.artifact_types)  # the mask still holds
