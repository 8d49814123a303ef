"""store.fast_read gives exactly the rows SQLAlchemy gives, for every statement routed through it.

On SQLite the rows come straight from the driver with the columns' result processors
applied by fast_read itself; elsewhere fast_read defers to SQLAlchemy. Either way the
values must be identical, including the ones that need conversion (base64 proto
values, booleans) and NULLs.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import struct_pb2

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.query.filter_ast import NodeKind as FilterKind
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import fast_read, filter_query
from lineagedb.store.repositories import edges as edge_repo
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.repositories import listing
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories import types as type_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.tenancy import VISIBLE_PARAMETER, Reach
from tests.service.helpers import put_artifact_type, put_artifacts, put_execution_type


def _populate(store: MetadataStore) -> tuple[list[int], list[int]]:
    type_id = put_artifact_type(store, n=mlmd.INT, d=mlmd.DOUBLE, s=mlmd.STRING, b=mlmd.BOOLEAN, p=mlmd.PROTO)
    execution_type = put_execution_type(store, step=mlmd.INT)
    artifacts = []
    for i in range(12):
        artifact = mlmd.Artifact(type_id=type_id, uri=f"u/{i}", name=f"a{i}" if i % 3 else None)
        artifact.properties["n"].int_value = i
        artifact.properties["d"].double_value = i / 4
        artifact.properties["s"].string_value = f"ünï-{i}"
        artifact.properties["b"].bool_value = i % 2 == 0
        artifact.properties["p"].proto_value.Pack(mlmd.Execution(id=i, name=f"packed-{i}"))
        artifact.custom_properties["st"].struct_value.CopyFrom(
            struct_pb2.Struct(fields={"k": struct_pb2.Value(number_value=i)})
        )
        if i % 4 == 0:
            artifact.state = mlmd.Artifact.LIVE
        artifacts.append(artifact)
    artifact_ids = put_artifacts(store, *artifacts)
    response = store.put_lineage_subgraph(
        svc.PutLineageSubgraphRequest(
            executions=[mlmd.Execution(type_id=execution_type, properties={"step": mlmd.Value(int_value=7)})],
            artifacts=store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=artifact_ids[:4])).artifacts,
            event_edges=[
                svc.PutLineageSubgraphRequest.EventEdge(
                    execution_index=0,
                    artifact_index=k,
                    event=mlmd.Event(
                        type=mlmd.Event.INPUT if k % 2 else mlmd.Event.OUTPUT,
                        path=mlmd.Event.Path(steps=[mlmd.Event.Path.Step(key=f"k{k}")]),
                    ),
                )
                for k in range(4)
            ],
        )
    )
    return artifact_ids, list(response.execution_ids)


def _cases(store: MetadataStore, artifact_ids: list[int], execution_ids: list[int]) -> list[tuple[Any, dict[str, Any]]]:
    schema = store.db.schema
    nodes, properties, _ = node_repo._statements(schema, NodeKind.ARTIFACT)
    executions, execution_properties, _ = node_repo._statements(schema, NodeKind.EXECUTION)
    return [
        (nodes, {"ids": artifact_ids}),
        (properties, {"ids": artifact_ids}),
        (nodes, {"ids": [artifact_ids[0]]}),
        (executions, {"ids": execution_ids}),
        (execution_properties, {"ids": execution_ids}),
        (lineage_repo._events_statement(schema, NodeKind.ARTIFACT, False, Reach.ALL), {"ids": artifact_ids}),
        (
            lineage_repo._events_statement(schema, NodeKind.EXECUTION, True, Reach.ALL),
            {"ids": execution_ids, "types": [3, 4]},
        ),
        # Namespace-scoped statements carry the readable namespaces as an expanding text list;
        # their reach says whether `default` is among them, as Tenancy.reach does (SQLite's
        # form of the check depends on it: store.tenancy.visible).
        (node_repo._statements(schema, NodeKind.ARTIFACT, _WITH_DEFAULT)[0], {"ids": artifact_ids, **_others}),
        (node_repo._statements(schema, NodeKind.ARTIFACT, Reach.RESTRICTED)[0], {"ids": artifact_ids, **_default}),
        (
            lineage_repo._events_statement(schema, NodeKind.ARTIFACT, False, _WITH_DEFAULT),
            {"ids": artifact_ids, **_others},
        ),
        (edge_repo._paths_statement(schema, store.db.dialect), {"ids": list(range(1, 10))}),
        (type_repo._by_ids_statement(schema), {"kind": 1, "ids": list(range(1, 20))}),
        # Page statements bind a filter's values (numbers, text, lists) by the shape's names.
        _page(schema, "properties.n.int_value > 3 AND uri LIKE 'u/%'", {"limit": 5, "after_value": 0}),
        _page(schema, f"id IN ({artifact_ids[1]}, {artifact_ids[5]}) OR name = 'a4'", {"limit": 50, "after_value": 0}),
        _page(schema, "properties.s.string_value = 'ünï-7'", {"limit": 50, "after_value": 0}),
        # NOT IN over a column with NULLs (names of every third artifact are NULL: never listed),
        # and IN over text.
        (_by_name(schema, negated=True), {"names": ["a1", "a2"]}),
        (_by_name(schema, negated=False), {"names": ["a1", "a4", "no such name"]}),
    ]


def _by_name(schema: Any, negated: bool) -> Any:
    artifact = schema.artifact
    names = sa.bindparam("names", expanding=True)
    where = artifact.c.name.not_in(names) if negated else artifact.c.name.in_(names)
    return sa.select(artifact.c.id, artifact.c.name).where(where).order_by(artifact.c.id)


_others = {VISIBLE_PARAMETER: ["default", "team-a", "team-b"]}  # `default` readable, and two more
_WITH_DEFAULT = Reach.RESTRICTED_WITH_DEFAULT  # the reach of a caller who can read _others
_default = {VISIBLE_PARAMETER: ["team-a"]}  # `default` not readable: nothing here is listed


def _page(schema: Any, filter_text: str, parameters: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A filtered page's statement (built per filter shape) and its parameters, the filter's values among them."""
    flt = filter_query.parse(filter_text, FilterKind.ARTIFACT)
    statement = listing._page_statement(schema, NodeKind.ARTIFACT, flt, 3, True, True, False, False, Reach.ALL)
    return statement, {**parameters, **flt.parameters}


def test_fast_rows_equal_sqlalchemy_rows(store: MetadataStore) -> None:
    artifact_ids, execution_ids = _populate(store)
    with store.db.transaction(write=False) as uow:
        for statement, parameters in _cases(store, artifact_ids, execution_ids):
            expected = [tuple(row) for row in uow.execute(statement, parameters).all()]
            got = [tuple(row) for row in fast_read.rows(uow, statement, parameters)]
            assert got == expected, statement
            if parameters is not _default and parameters.get(VISIBLE_PARAMETER) != _default[VISIBLE_PARAMETER]:
                assert expected, f"every case reads something: {statement}"


def test_an_empty_id_list_reads_nothing(store: MetadataStore) -> None:
    with store.db.transaction(write=False) as uow:
        nodes = node_repo._statements(store.db.schema, NodeKind.ARTIFACT)[0]
        assert fast_read.rows(uow, nodes, {"ids": []}) == []


def test_a_driver_error_is_classified(store: MetadataStore) -> None:
    # A statement over a table that is not there fails in the driver; the caller gets the
    # domain error every other statement produces, never the driver's exception.
    missing = sa.table("no_such_table", sa.column("id"))
    statement = sa.select(missing.c.id).where(missing.c.id.in_(sa.bindparam("ids", expanding=True)))
    with pytest.raises(Exception) as caught, store.db.transaction(write=False) as uow:
        fast_read.rows(uow, statement, {"ids": [1]})
    assert type(caught.value).__module__ == "lineagedb.errors"


def test_postgresql_sends_each_list_as_one_array(store: MetadataStore) -> None:
    # PostgreSQL gets `= ANY(array)` for integer and text lists (one parameter, whatever the
    # length); the other backends keep one placeholder per item.
    schema = store.db.schema
    nodes = node_repo._statements(schema, NodeKind.ARTIFACT, Reach.RESTRICTED)[0]
    with store.db.transaction(write=False) as uow:
        plan = fast_read._plan(nodes, uow.connection.dialect)
        negated = fast_read._plan(_by_name(schema, negated=True), uow.connection.dialect)
    assert plan is not None and negated is not None
    if store.db.dialect == "postgresql":
        assert plan.arrays == {"ids": "BIGINT[]", VISIBLE_PARAMETER: "TEXT[]"}
        assert " = ANY" in "".join(plan.pieces) and " IN " not in "".join(plan.pieces)
        assert negated.pieces[0].endswith(" <> ALL")
    else:
        assert plan.arrays == {} and negated.arrays == {}


def test_booleans_are_converted_unless_the_reader_only_tests_their_truth(store: MetadataStore) -> None:
    artifact_ids, _ = _populate(store)
    properties = node_repo._statements(store.db.schema, NodeKind.ARTIFACT)[1]
    assert properties.get_execution_options()[fast_read.TRUTHY_BOOLEANS]
    plain = properties.execution_options(**{fast_read.TRUTHY_BOOLEANS: False})
    with store.db.transaction(write=False) as uow:
        truthy = fast_read.rows(uow, properties, {"ids": artifact_ids})
        converted = fast_read.rows(uow, plain, {"ids": artifact_ids})
    bool_values = [row[7] for row in converted if row[7] is not None]
    assert bool_values and all(type(value) is bool for value in bool_values)
    assert {False, True} <= set(bool_values)
    # Same truth values either way; only the conversion is skipped.
    assert [[bool(v) if i in (2, 7) and v is not None else v for i, v in enumerate(r)] for r in truthy] == [
        list(r) for r in converted
    ]
    # What readers see is unchanged: booleans are booleans in the messages.
    with store.db.transaction(write=False) as uow:
        messages = node_repo.load_by_ids(uow, NodeKind.ARTIFACT, artifact_ids)
    assert [m.properties["b"].bool_value for m in messages] == [i % 2 == 0 for i in range(12)]
