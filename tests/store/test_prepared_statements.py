"""PostgreSQL: store.fast_read's statements run as prepared statements (store.prepared), and
every answer is what it was without them, also after the session loses its statements, a
migration changes a returned column's type, a reconnect, or the pool recycling a connection.

The store runs on a pool of one connection, so the test's own queries of
pg_prepared_statements see the session the store's reads used.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import fast_read, prepared, tenancy
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.tenancy import Tenancy
from lineagedb.store.unit_of_work import Database
from tests.service.helpers import put_artifact_type, put_context_type, put_execution_type
from tests.tenancy.world import acting_as

TEAM = Tenancy(namespace="team-a", readable=frozenset({"team-a"}), writable=frozenset({"team-a"}))
WIDE = Tenancy(namespace="team-a", readable=frozenset({"team-a", "default"}), writable=frozenset({"team-a"}))


@pytest.fixture
def store(one_session_store: MetadataStore) -> MetadataStore:
    return one_session_store


@pytest.fixture
def world(store: MetadataStore) -> dict[str, Any]:
    """A few dozen artifacts of team-a and of default, a 4-hop chain, a context."""
    with store.db.transaction() as uow:
        tenancy.create_namespace(uow, "team-a", 1)
    type_id = put_artifact_type(store, shard=mlmd.INT, split=mlmd.STRING)
    step = put_execution_type(store)
    run = put_context_type(store)
    ids: dict[str, list[int]] = {}
    for who, caller in (("default", None), ("team", TEAM)):
        with acting_as(caller):
            artifacts = [
                mlmd.Artifact(
                    type_id=type_id,
                    uri=f"s3://{who}/{i}",
                    properties={"shard": mlmd.Value(int_value=i % 5), "split": mlmd.Value(string_value="train")},
                )
                for i in range(30)
            ]
            ids[who] = list(store.put_artifacts(svc.PutArtifactsRequest(artifacts=artifacts)).artifact_ids)
    with acting_as(TEAM):
        context_id = store.put_contexts(
            svc.PutContextsRequest(contexts=[mlmd.Context(type_id=run, name="run")])
        ).context_ids[0]
        previous = ids["team"][0]
        for hop in range(4):
            request = svc.PutExecutionRequest(
                execution=mlmd.Execution(type_id=step, last_known_state=mlmd.Execution.COMPLETE),
                artifact_event_pairs=[
                    svc.PutExecutionRequest.ArtifactAndEvent(
                        event=mlmd.Event(artifact_id=previous, type=mlmd.Event.INPUT)
                    ),
                    svc.PutExecutionRequest.ArtifactAndEvent(
                        artifact=mlmd.Artifact(type_id=type_id, uri=f"s3://chain/{hop}"),
                        event=mlmd.Event(type=mlmd.Event.OUTPUT),
                    ),
                ],
                contexts=[mlmd.Context(id=context_id)],
                options=svc.PutExecutionRequest.Options(force_reuse_context=True),
            )
            previous = store.put_execution(request).artifact_ids[-1]
    return {"ids": ids, "context_id": context_id, "head": ids["team"][0]}


def _answers(store: MetadataStore, world: dict[str, Any]) -> list[Any]:
    """Every read shape fast_read serves, as each caller sees it.

    Compared as messages, not bytes: a node's properties are a map, and the order its
    entries are encoded in follows the order the database returns property rows, which
    its plan decides (an index scan gives name order, a sequential scan the stored order),
    prepared or not. PostgreSQL may change a plan when autovacuum analyzes a table between
    two reads, and byte comparisons here failed now and then for that reason."""
    everything = world["ids"]["default"] + world["ids"]["team"] + [10**12]
    out = []
    for caller in (None, TEAM, WIDE):
        with acting_as(caller):
            out.append(store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=everything)))
            # The filters' literals are written into the prepared text (a LIKE pattern's % too).
            for query in ("properties.shard.int_value = 3", "uri LIKE 's3://team/1%'", "uri LIKE 's3://default/2%'"):
                options = mlmd.ListOperationOptions(max_result_size=7, filter_query=query)
                while True:
                    page = store.get_artifacts(svc.GetArtifactsRequest(options=options))
                    out.append(page)
                    if not page.next_page_token:
                        break
                    options.next_page_token = page.next_page_token
            out.append(store.get_artifacts_by_context(svc.GetArtifactsByContextRequest(context_id=world["context_id"])))
            lineage = svc.GetLineageSubgraphRequest(
                lineage_subgraph_query_options=mlmd.LineageSubgraphQueryOptions(
                    starting_artifacts=mlmd.LineageSubgraphQueryOptions.StartingNodes(
                        filter_query=f"id = {world['head']}"
                    ),
                    max_num_hops=10,
                )
            )
            out.append(store.get_lineage_subgraph(lineage))
            out.append(store.get_executions(svc.GetExecutionsRequest()))
    return out


def _server_statements(db: Database) -> dict[str, int]:
    """name -> executions (generic + custom plans) of the session's prepared statements."""
    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT name, generic_plans + custom_plans FROM pg_prepared_statements WHERE name LIKE 'lineagedb_%%'"
        ).all()
        connection.rollback()
    return {name: int(runs) for name, runs in rows}


def _dbapi(db: Database) -> Any:
    with db.engine.connect() as connection:
        return connection.connection.dbapi_connection


def _on_session(db: Database, sql: str) -> None:
    """Run `sql` on the pool's one session, behind the store's back."""
    dbapi = _dbapi(db)
    autocommit = dbapi.autocommit
    dbapi.autocommit = True
    try:
        with dbapi.cursor() as cursor:
            cursor.execute(sql)
    finally:
        dbapi.autocommit = autocommit


def _fresh(store: MetadataStore, world: dict[str, Any]) -> tuple[list[Any], dict[str, int]]:
    """The answers read on a session with nothing prepared, and the statements they prepared
    (not those the dataset's writes prepared)."""
    _reconnect(store.db)
    answers = _answers(store, world)
    return answers, _server_statements(store.db)


def _reconnect(db: Database) -> None:
    with db.engine.connect() as connection:
        connection.invalidate()  # as after a lost connection: the pool opens another


def _unprepared(store: MetadataStore, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    with monkeypatch.context() as patch:
        patch.setattr(prepared, "ENABLED", False)
        return _answers(store, world)


def test_reads_run_prepared_statements_and_answer_as_unprepared(
    store: MetadataStore, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _reconnect(store.db)
    expected = _unprepared(store, world, monkeypatch)
    assert _server_statements(store.db) == {}
    first = _answers(store, world)
    statements = _server_statements(store.db)
    # By id (nodes, properties), pages, by context, lineage hops, each per reach.
    assert len(statements) >= 10
    assert sorted(statements) == sorted(prepared.prepared_names(_dbapi(store.db)))
    again = _answers(store, world)
    runs = _server_statements(store.db)
    assert sorted(runs) == sorted(statements)  # nothing prepared twice
    assert all(runs[name] > statements[name] for name in statements)  # all of them executed again
    assert first == again == expected


def test_statement_postgresql_will_not_prepare_runs_unprepared(store: MetadataStore) -> None:
    # substr has no bigint form: prepared with its int declared bigint, PostgreSQL refuses it.
    statement = sa.select(sa.func.substr(sa.literal_column("'lineage'"), sa.bindparam("start", type_=sa.Integer)))
    for start in (2, 3, 2):
        with store.db.transaction(write=False) as uow:
            assert fast_read.rows(uow, statement, {"start": start}) == [("lineage"[start - 1 :],)]
    assert _server_statements(store.db) == {}


def test_discarded_statements_are_prepared_again(
    store: MetadataStore, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _unprepared(store, world, monkeypatch)
    answers, before = _fresh(store, world)
    assert answers == expected
    _on_session(store.db, "DISCARD ALL")  # what a pooler's reset query does
    assert _server_statements(store.db) == {}
    assert _answers(store, world) == expected
    assert sorted(_server_statements(store.db)) == sorted(before)


def test_result_type_changed_by_a_migration_is_prepared_again(
    store: MetadataStore, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _unprepared(store, world, monkeypatch)
    assert _answers(store, world) == expected
    # Node reads return the type's name: a new column type makes PostgreSQL refuse their
    # cached plans ("cached plan must not change result type").
    dsn = store.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with contextlib.closing(psycopg2.connect(dsn)) as other:
        other.autocommit = True
        with other.cursor() as cursor:
            cursor.execute("ALTER TABLE type ALTER COLUMN name TYPE varchar(300)")
    assert _answers(store, world) == expected
    assert _answers(store, world) == expected


def test_lost_statement_inside_a_write_transaction_is_aborted_then_works(
    store: MetadataStore, world: dict[str, Any]
) -> None:
    ids = world["ids"]["team"][:5]
    with acting_as(TEAM), store.db.transaction(write=False) as uow:
        expected = [a for a in node_repo.load_by_ids(uow, NodeKind.ARTIFACT, ids)]
    _on_session(store.db, "DISCARD ALL")
    with acting_as(TEAM):
        with pytest.raises(errors.AbortedError), store.db.transaction(write=True) as uow:
            node_repo.load_by_ids(uow, NodeKind.ARTIFACT, ids)  # the transaction's first statement
        with store.db.transaction(write=True) as uow:  # the retry
            assert [a for a in node_repo.load_by_ids(uow, NodeKind.ARTIFACT, ids)] == expected
        with store.db.transaction(write=False) as uow:
            assert [a for a in node_repo.load_by_ids(uow, NodeKind.ARTIFACT, ids)] == expected


def _new_connection_keeps_answers(
    store: MetadataStore, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, replace: Callable[[], None]
) -> None:
    expected = _unprepared(store, world, monkeypatch)
    answers, statements = _fresh(store, world)
    assert answers == expected
    old = _dbapi(store.db)
    old_pid = old.get_backend_pid()
    replace()
    assert _answers(store, world) == expected
    new = _dbapi(store.db)
    assert new is not old and new.get_backend_pid() != old_pid
    assert sorted(_server_statements(store.db)) == sorted(statements)  # prepared on the new session
    assert sorted(prepared.prepared_names(new)) == sorted(statements)


def test_reconnect_prepares_on_the_new_connection(
    store: MetadataStore, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _new_connection_keeps_answers(store, world, monkeypatch, lambda: _reconnect(store.db))


def test_recycled_connection_prepares_again(
    store: MetadataStore, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def age() -> None:
        with store.db.engine.connect() as connection:
            record = connection.connection._connection_record
            assert record is not None
            record.starttime = 0  # older than pool_recycle: the pool replaces it at checkout

    _new_connection_keeps_answers(store, world, monkeypatch, age)


def test_least_recently_used_statements_are_deallocated(
    store: MetadataStore, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _unprepared(store, world, monkeypatch)
    monkeypatch.setattr(prepared, "MAX_PER_CONNECTION", 3)
    assert _answers(store, world) == expected
    names = prepared.prepared_names(_dbapi(store.db))
    assert len(names) == 3
    assert sorted(_server_statements(store.db)) == sorted(names)


def test_statements_with_only_array_parameters_run_generic_plans(store: MetadataStore, world: dict[str, Any]) -> None:
    _reconnect(store.db)
    for _ in range(3):
        _answers(store, world)
    with store.db.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT parameter_types::text[], generic_plans, custom_plans FROM pg_prepared_statements"
        ).all()
        connection.rollback()
    arrays_only = [(g, c) for types, g, c in rows if types and all(t.endswith("[]") for t in types)]
    # The lineage hops' events, attributions and associations among them: under `auto` these
    # got a custom plan (planned again) at every execution.
    assert len(arrays_only) >= 6
    assert all(custom == 0 and generic > 0 for generic, custom in arrays_only)
    others = [(g, c) for types, g, c in rows if types and not all(t.endswith("[]") for t in types)]
    assert others and all(custom > 0 for _, custom in others)  # auto: custom plans first


def test_a_node_joining_a_namespace_is_inserted_by_a_prepared_statement(store: MetadataStore) -> None:
    with store.db.transaction() as uow:
        tenancy.create_namespace(uow, "team-a", 1)
    type_id = put_artifact_type(store)
    _reconnect(store.db)
    with acting_as(TEAM):
        ids = [
            store.put_artifacts(
                svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, uri=f"u{i}")])
            ).artifact_ids[0]
            for i in range(3)
        ]
        read = store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=ids)).artifacts
    assert [a.uri for a in read] == ["u0", "u1", "u2"]
    with store.db.engine.connect() as connection:
        runs = connection.exec_driver_sql(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%%lineagedb_new_node%%'"
        ).all()
        members = connection.exec_driver_sql(
            "SELECT node_id, namespace FROM lineagedb_node_namespace WHERE node_kind = 1 ORDER BY node_id"
        ).all()
        connection.rollback()
    assert runs == [(3,)]  # prepared by the first write, executed by all three
    assert members == [(node_id, "team-a") for node_id in ids]


def test_statement_refused_inside_a_write_transaction_is_aborted_then_runs_unprepared(store: MetadataStore) -> None:
    statement = sa.select(sa.func.substr(sa.literal_column("'lineage'"), sa.bindparam("start", type_=sa.Integer)))
    other = sa.select(sa.literal_column("1"))
    with pytest.raises(errors.AbortedError), store.db.transaction(write=True) as uow:
        fast_read.rows(uow, other, {})  # opens the transaction
        fast_read.rows(uow, statement, {"start": 4})
    with store.db.transaction(write=True) as uow:  # the retry
        fast_read.rows(uow, other, {})
        assert fast_read.rows(uow, statement, {"start": 4}) == [("eage",)]


def test_a_write_transaction_switches_plan_modes_per_statement_with_set_local(
    store: MetadataStore, world: dict[str, Any]
) -> None:
    """Reads switch the session to generic plans for their array-only statements. In a write
    transaction a SET would outlast a rollback, so a statement that wants the other mode
    sets it for the transaction (SET LOCAL, in its round trip): `auto` for one with other
    than array parameters, generic again for an array-only one, which would otherwise be
    planned again on every call. The session's setting is unchanged once it ends."""
    _reconnect(store.db)
    _answers(store, world)  # reads: the session is left on generic plans
    session = prepared._sessions[_dbapi(store.db)]
    assert session.mode == prepared._GENERIC
    ids = [world["head"]]
    seen = []

    def mode_now(uow: Any) -> str:
        [(mode,)] = uow.connection.exec_driver_sql("SHOW plan_cache_mode").all()
        return str(mode)

    with store.db.transaction(write=True) as uow:
        assert fast_read.rows(uow, _ids_of_artifacts(uow.schema.artifact), {"ids": ids})
        seen.append((uow.custom_plans, mode_now(uow)))
        assert fast_read.rows(uow, _artifact_by_id(uow.schema.artifact), {"id": ids[0]})
        seen.append((uow.custom_plans, mode_now(uow)))
        assert fast_read.rows(uow, _ids_of_artifacts(uow.schema.artifact), {"ids": ids})
        seen.append((uow.custom_plans, mode_now(uow)))
    assert seen == [(False, prepared._GENERIC), (True, "auto"), (False, prepared._GENERIC)]
    with store.db.engine.connect() as connection:
        [(mode,)] = connection.exec_driver_sql("SHOW plan_cache_mode").all()
        connection.rollback()
    assert mode == prepared._GENERIC and session.mode == prepared._GENERIC


def test_a_statement_without_parameters_keeps_the_sessions_plan_mode(
    store: MetadataStore, world: dict[str, Any]
) -> None:
    """PostgreSQL plans a statement without parameters once under any plan_cache_mode, so it
    runs prepared under whatever the session has: no SET before it, in a read or in a write
    transaction (a lineage call's type read between its generic hops and links switched the
    session to `auto` and back)."""
    _reconnect(store.db)
    _answers(store, world)
    session = prepared._sessions[_dbapi(store.db)]
    assert session.mode == prepared._GENERIC
    statement = _count_of_artifacts(store.db.schema.artifact)
    with store.db.transaction() as uow:
        count = fast_read.rows(uow, statement, {})
        [(mode,)] = uow.connection.exec_driver_sql("SHOW plan_cache_mode").all()
    assert count == [(len(world["ids"]["default"]) + len(world["ids"]["team"]) + 4,)]
    assert mode == prepared._GENERIC and session.mode == prepared._GENERIC
    with store.db.transaction(write=True) as uow:
        assert fast_read.rows(uow, statement, {}) == count
        assert uow.custom_plans is False
        [(mode,)] = uow.connection.exec_driver_sql("SHOW plan_cache_mode").all()
    assert mode == prepared._GENERIC
    with store.db.engine.connect() as connection:
        runs = connection.exec_driver_sql(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%%count(*)%%'"
        ).all()
        connection.rollback()
    assert runs == [(2, 0)]  # both ran prepared, planned once


@functools.cache
def _count_of_artifacts(artifact: sa.Table) -> sa.Select[Any]:
    return sa.select(sa.func.count()).select_from(artifact)


@functools.cache
def _artifact_by_id(artifact: sa.Table) -> sa.Select[Any]:
    return sa.select(artifact.c.id).where(artifact.c.id == sa.bindparam("id", type_=sa.Integer))


@functools.cache
def _ids_of_artifacts(artifact: sa.Table) -> sa.Select[Any]:
    return sa.select(artifact.c.id).where(artifact.c.id.in_(sa.bindparam("ids", expanding=True)))
