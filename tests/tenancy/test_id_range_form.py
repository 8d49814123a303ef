"""PostgreSQL: reads of nodes by a dense list of ids check namespaces against the members of
the ids' range at once (store.tenancy.visible_in_range) instead of probing per node. The same
truth as the probe: for every reader, every window of ids (dense or not, with ids that do not
exist) returns exactly the nodes of the namespaces it may read; a range that misses ids hides
their nodes; the plan stays a hashed subplan at the smallest work_mem PostgreSQL allows.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import fast_read, prepared, tenancy
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.tenancy import DEFAULT_NAMESPACE, Reach, Tenancy
from lineagedb.store.unit_of_work import Database
from tests.service.helpers import put_artifact_type
from tests.tenancy.world import acting_as

READERS = {
    "team-a": frozenset({"team-a"}),
    "team-a+default": frozenset({"team-a", DEFAULT_NAMESPACE}),
    "team-b+default": frozenset({"team-b", DEFAULT_NAMESPACE}),
    "default": frozenset({DEFAULT_NAMESPACE}),
    "nothing": frozenset(),
}
# Batches written in turn, so the namespaces' ids interleave: (namespace, artifacts).
BATCHES = [("team-a", 5), (DEFAULT_NAMESPACE, 3), ("team-b", 4), ("team-a", 1), ("team-b", 2), (DEFAULT_NAMESPACE, 6)]


def _caller(namespace: str) -> Tenancy | None:
    if namespace == DEFAULT_NAMESPACE:
        return None
    return Tenancy(namespace=namespace, readable=frozenset({namespace}), writable=frozenset({namespace}))


def _reader(readable: frozenset[str]) -> Tenancy:
    return Tenancy(namespace="team-a", readable=readable, writable=frozenset())


@pytest.fixture
def store(one_session_store: MetadataStore) -> MetadataStore:
    return one_session_store


@pytest.fixture
def namespaces(store: MetadataStore) -> dict[int, str]:
    """artifact id -> its namespace, for artifacts written in interleaved batches."""
    with store.db.transaction() as uow:
        tenancy.create_namespace(uow, "team-a", 1)
        tenancy.create_namespace(uow, "team-b", 1)
    type_id = put_artifact_type(store)
    written: dict[int, str] = {}
    for number, (namespace, count) in enumerate(BATCHES):
        artifacts = [mlmd.Artifact(type_id=type_id, uri=f"s3://{namespace}/{number}/{i}") for i in range(count)]
        with acting_as(_caller(namespace)):
            ids = store.put_artifacts(svc.PutArtifactsRequest(artifacts=artifacts)).artifact_ids
        written.update(dict.fromkeys(ids, namespace))
    return written


def _read(store: MetadataStore, reader: Tenancy, ids: list[int]) -> list[int]:
    with acting_as(reader), store.db.transaction(write=False) as uow:
        return [node.id for node in node_repo.load_by_ids(uow, NodeKind.ARTIFACT, ids)]


def _range_statements(database: Database) -> list[tuple[int, int]]:
    """(generic plans, custom plans) of each range-form statement prepared on the session."""
    with database.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
        ).all()
        connection.rollback()
    return [(generic, custom) for text, generic, custom in rows if f"LIMIT {tenancy.RANGE_SPAN_LIMIT}" in text]


def test_dense_ids_return_what_each_reader_may_read(
    store: MetadataStore, namespaces: dict[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = sorted(namespaces)
    beyond = ids[-1] + 1  # ids that do not exist, inside a window's range
    windows = [ids, ids[3:9], ids[5:6], ids[::2], ids[::3], [*ids[-4:], beyond, beyond + 2], [beyond, beyond + 1]]
    windows.append([ids[0], ids[-1]])  # not dense: the per-node probe
    for readable in READERS.values():
        for window in windows:
            expected = [i for i in sorted(set(window)) if i in namespaces and namespaces[i] in readable]
            assert _read(store, _reader(readable), window) == expected, (sorted(readable), window)
            with monkeypatch.context() as patch:  # the same text, unprepared (LINEAGEDB_PG_PREPARED=off)
                patch.setattr(prepared, "ENABLED", False)
                assert _read(store, _reader(readable), window) == expected, (sorted(readable), window)
    # Both reaches (with and without `default`) ran the range form, not only the probe, on
    # generic plans only (its parameters are arrays: a custom plan per call would cost more
    # planning than the form saves).
    statements = _range_statements(store.db)
    assert len(statements) == 2
    assert all(generic > 5 and custom == 0 for generic, custom in statements), statements


def test_a_range_that_misses_ids_hides_their_nodes(
    store: MetadataStore, namespaces: dict[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement returns nothing outside the range it checked, whatever ids it is given:
    here a range of the first three ids, and a range wider than the span limit (which the
    statement cuts at the limit, here made 4)."""
    ids = sorted(namespaces)
    for readable in (READERS["team-b+default"], frozenset({"team-b"})):
        reach = _reader(readable).reach
        for span_limit, checked in ((tenancy.RANGE_SPAN_LIMIT, [ids[0], ids[2]]), (4, [ids[0], ids[-1]])):
            monkeypatch.setattr(tenancy, "RANGE_SPAN_LIMIT", span_limit)
            statement = _statement(store.db.schema, reach)
            reader = _reader(readable)
            with acting_as(reader), store.db.transaction(write=False) as uow:
                parameters = {"ids": ids, tenancy.ID_RANGE_PARAMETER: checked, **reader.parameters}
                found = [row[0] for row in fast_read.rows(uow, statement, parameters)]
            last = min(checked[1], checked[0] + span_limit - 1)
            assert found == [i for i in ids if checked[0] <= i <= last and namespaces[i] in readable]


def test_the_plan_stays_a_hashed_subplan_at_the_smallest_work_mem(
    store: MetadataStore, namespaces: dict[int, str]
) -> None:
    """A subplan PostgreSQL expects not to fit in memory is run again for every node row; the
    LIMIT tells the planner the range's members fit, also under a generic plan (which knows
    nothing of the range's ends), at work_mem's minimum, in a huge membership table."""
    ids = sorted(namespaces)
    for readable in (READERS["team-a"], READERS["team-a+default"]):
        reader = _reader(readable)
        assert _read(store, reader, ids)  # prepares the statement on the pool's one session
        statement = node_repo._by_id_range(store.db.schema, NodeKind.ARTIFACT, reader.reach)
        plan = fast_read._plan(statement, store.db.engine.dialect)
        assert plan is not None
        (form,) = [form for form in plan.prepared_forms.values() if form is not prepared.REFUSED]
        values = {"ids": _array(ids), tenancy.ID_RANGE_PARAMETER: _array([ids[0], ids[-1]]), **reader.parameters}
        arguments = [values[name] for name in form.parameters]
        with store.db.engine.connect() as connection:
            dbapi = connection.connection.dbapi_connection
            with dbapi.cursor() as cursor:
                # In a transaction rolled back afterwards: the smallest work_mem, generic plans,
                # and statistics saying the membership table holds a billion rows (so the
                # planner's guess for a range of unknown ends is 5 million of them).
                cursor.execute("SET LOCAL work_mem = '64kB'; SET LOCAL plan_cache_mode = force_generic_plan")
                cursor.execute(
                    "UPDATE pg_class SET reltuples = 1e9, relpages = 1 WHERE oid = 'lineagedb_node_namespace'::regclass"
                )
                cursor.execute("EXPLAIN " + form.execute, arguments)
                explained = "\n".join(row[0] for row in cursor.fetchall())
            connection.rollback()
        assert "hashed SubPlan" in explained, explained
        assert "lineagedb_node_namespace_pkey" in explained


def _statement(schema: Any, reach: Reach) -> sa.Select[Any]:
    """The range form of artifacts by ids, built afresh (with the span limit of the moment)."""
    table = NodeKind.ARTIFACT.table(schema)
    check = tenancy.visible_in_range(tenancy.ARTIFACT_NODE, table.c.id, reach)
    return sa.select(table.c.id).where(table.c.id.in_(sa.bindparam("ids", expanding=True)), check).order_by(table.c.id)


def _array(values: list[Any]) -> str:
    return "{" + ",".join(str(value) if isinstance(value, int) else f'"{value}"' for value in values) + "}"


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([], False),
        ([7], True),
        ([1, 2, 3], True),
        ([1, 6], True),  # a range of 6 for 2 ids: three times their number
        ([1, 7], False),
        (list(range(1, 1400, 2)), True),  # 700 ids over 1,399
        (list(range(1, 4200, 3)), False),  # 1,400 ids over 4,198: beyond the span limit
    ],
)
def test_dense(ids: list[int], expected: bool) -> None:
    assert tenancy.dense(ids) is expected
