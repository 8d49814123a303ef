"""Filters of one shape share one statement (store.filter_query.ParsedFilter), so one
compiled plan (store.fast_read._plan, kept per statement), and each text still runs with
its own values.

A client rarely sends the same filter text twice (the lineage of this node, a search for
that name), so a filter's statement is built and compiled once per shape, its literals
bound per call. What must hold: every text answers with its own values, in any order, on
every backend, and a different shape is a different statement.
"""

from __future__ import annotations

import pytest

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.query.filter_ast import NodeKind as FilterKind
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import fast_read, filter_query, prepared
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.schema import schema_for
from lineagedb.store.tenancy import Reach
from tests.service.helpers import put_artifact_type, put_artifacts, put_execution_type


def _uris(store: MetadataStore, query: str) -> list[str]:
    options = mlmd.ListOperationOptions(max_result_size=100, filter_query=query)
    return sorted(a.uri for a in store.get_artifacts(svc.GetArtifactsRequest(options=options)).artifacts)


@pytest.fixture
def artifacts(store: MetadataStore) -> list[int]:
    type_id = put_artifact_type(store, "Data", shard=mlmd.INT, split=mlmd.STRING)
    return put_artifacts(
        store,
        *(
            mlmd.Artifact(
                type_id=type_id,
                uri=f"s3://b/{i}",
                name=f"a{i}",
                properties={
                    "shard": mlmd.Value(int_value=i % 3),
                    "split": mlmd.Value(string_value="train" if i % 2 else "test"),
                },
            )
            for i in range(9)
        ),
    )


def test_texts_of_one_shape_answer_with_their_own_values(store: MetadataStore, artifacts: list[int]) -> None:
    # Interleaved and repeated, so a plan reused with another text's values would show.
    for i in [0, 5, 0, 8, 3, 5]:
        assert _uris(store, f"uri = 's3://b/{i}'") == [f"s3://b/{i}"]
        assert _uris(store, f"name = 'a{i}' AND uri = 's3://b/{i}'") == [f"s3://b/{i}"]
        assert _uris(store, f"name = 'a{i}' AND uri = 's3://b/{(i + 1) % 9}'") == []
    for shard in [2, 0, 1, 0]:
        expected = sorted(f"s3://b/{i}" for i in range(9) if i % 3 == shard)
        assert _uris(store, f"properties.shard.int_value = {shard}") == expected
    for split, parity in [("train", 1), ("test", 0), ("train", 1)]:
        expected = sorted(f"s3://b/{i}" for i in range(9) if i % 2 == parity)
        assert _uris(store, f"properties.split.string_value = '{split}'") == expected
    assert _uris(store, "properties.split.string_value = 'validation'") == []


def test_one_shape_is_compiled_once(store: MetadataStore, artifacts: list[int]) -> None:
    _uris(store, "uri = 's3://b/1'")  # the shape's plan, whatever ran before
    shapes = fast_read._plan.cache_info().misses  # a miss is a statement compiled
    for i in range(2, 9):
        _uris(store, f"uri = 's3://b/{i}'")
    assert fast_read._plan.cache_info().misses == shapes  # seven new texts, no new plan
    _uris(store, "uri = 's3://b/1' OR uri = 's3://b/2'")
    assert fast_read._plan.cache_info().misses > shapes  # another shape is another plan


def test_lineage_from_each_start_is_its_own(store: MetadataStore, artifacts: list[int]) -> None:
    # Starting filters `id = N` (one shape): each walk starts where its own text says.
    execution_type = put_execution_type(store, "Step")
    for source, output in [(0, 1), (2, 3)]:
        store.put_execution(
            svc.PutExecutionRequest(
                execution=mlmd.Execution(type_id=execution_type),
                artifact_event_pairs=[
                    svc.PutExecutionRequest.ArtifactAndEvent(
                        event=mlmd.Event(artifact_id=artifacts[source], type=mlmd.Event.INPUT)
                    ),
                    svc.PutExecutionRequest.ArtifactAndEvent(
                        event=mlmd.Event(artifact_id=artifacts[output], type=mlmd.Event.OUTPUT)
                    ),
                ],
            )
        )

    def reached(start: int) -> list[int]:
        options = mlmd.LineageSubgraphQueryOptions(
            starting_artifacts=mlmd.LineageSubgraphQueryOptions.StartingNodes(filter_query=f"id = {start}"),
            max_num_hops=2,
        )
        request = svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=options)
        return sorted(a.id for a in store.get_lineage_subgraph(request).lineage_subgraph.artifacts)

    for _ in range(2):
        assert reached(artifacts[0]) == [artifacts[0], artifacts[1]]
        assert reached(artifacts[3]) == [artifacts[2], artifacts[3]]
        assert reached(artifacts[5]) == [artifacts[5]]


def test_texts_of_one_shape_share_one_statement() -> None:
    # The statement is built once per shape (store.filter_query.ParsedFilter); each text
    # brings only its values.
    first, second = (filter_query.parse(f"uri = 's3://b/{i}' AND name = 'a{i}'", FilterKind.ARTIFACT) for i in (1, 2))
    assert first == second and hash(first) == hash(second)
    assert first.parameters != second.parameters
    schema = schema_for("sqlite")
    built = [lineage_repo._first_matching_statement(schema, NodeKind.ARTIFACT, f, Reach.ALL) for f in (first, second)]
    assert built[0] is built[1]
    # Another type of value, operator or structure is another shape.
    for other in ("uri = 's3://b/1' OR name = 'a1'", "uri LIKE 's3://b/1' AND name = 'a1'", "id = 1 AND name = 'a1'"):
        assert filter_query.parse(other, FilterKind.ARTIFACT) != first
    assert filter_query.parse("id = 1", FilterKind.ARTIFACT) != filter_query.parse("id = 1.5", FilterKind.ARTIFACT)


def test_postgresql_plans_a_filter_with_its_values() -> None:
    # Bound, a filter's values are still seen by the planner on every execution: one generic
    # plan per shape would serve a common value and a rare one alike.
    assert prepared._plan_mode(["filter_value_0", "limit"], ()) == "force_custom_plan"
    assert prepared._plan_mode(["limit", "after_value"], ()) == "auto"
    assert prepared._plan_mode(["ids"], ("ids",)) == "force_generic_plan"


@pytest.mark.parametrize(
    ("text", "keyed"),
    [
        ("id = 7", [True]),
        ("7 = id", [True]),
        ("id IN (7, 8)", [True, True]),
        ("id = 7 AND uri = 'x'", [True, False]),
        ("id != 7", [False]),
        ("id > 7", [False]),
        ("id NOT IN (7, 8)", [False, False]),
        ("type_id = 7", [False]),
        ("contexts_a.id = 7", [False]),
    ],
)
def test_only_a_nodes_own_id_asked_by_equality_may_keep_a_generic_plan(text: str, keyed: list[bool]) -> None:
    """`id = N` and `id IN (...)` are a primary-key probe whatever N: PostgreSQL may keep one
    plan for them (`auto`), while every other value a filter holds is planned with it."""
    parsed = filter_query.parse(text, FilterKind.ARTIFACT)
    assert [name.startswith(filter_query.KEY_VALUE) for name in parsed.parameters] == keyed
    assert list(parsed.parameters.values()) == list(parsed.values)
    mode = prepared._plan_mode([*parsed.parameters, "limit"], ())
    assert mode == ("auto" if all(keyed) else "force_custom_plan")
