"""MySQL/MariaDB: statements whose results nobody reads travel with the write's next statement
or its COMMIT (store.engine.defer, UnitOfWork.defer). They must behave as if sent at once:
later statements see their rows, a failure fails the transaction with nothing stored, a
rollback drops them, and they save round trips."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import tenancy
from lineagedb.store.engine import DEFERRED
from lineagedb.store.tenancy import Tenancy
from lineagedb.store.unit_of_work import Database

pytestmark = pytest.mark.parametrize("backend", ["mysql"], indirect=True)

_NOTE = "INSERT INTO `Type` (name, type_kind) VALUES (%s, %s)"


def _count(db: Database, sql: str) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(sa.text(sql)).scalar_one())


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The text of every query PyMySQL sends (one per round trip)."""
    sent: list[str] = []
    original = pymysql.connections.Connection.query

    def query(self: Any, sql: Any, unbuffered: bool = False) -> Any:
        sent.append(sql.decode() if isinstance(sql, bytes) else sql)
        return original(self, sql, unbuffered)

    monkeypatch.setattr(pymysql.connections.Connection, "query", query)
    yield sent


def test_a_deferred_insert_is_seen_by_the_next_statement_and_committed(database: Database) -> None:
    with database.transaction() as uow:
        uow.defer(_NOTE, ("deferred-type", 1))
        assert DEFERRED in uow.connection.info
        seen = uow.execute(sa.text("SELECT COUNT(*) FROM `Type` WHERE name = 'deferred-type'")).scalar_one()
        assert seen == 1 and DEFERRED not in uow.connection.info
        uow.defer(_NOTE, ("with-the-commit", 1))
    assert _count(database, "SELECT COUNT(*) FROM `Type` WHERE name IN ('deferred-type', 'with-the-commit')") == 2


def test_a_failing_deferred_statement_fails_the_commit_and_stores_nothing(database: Database) -> None:
    before = _count(database, "SELECT COUNT(*) FROM `Type`")
    with pytest.raises(errors.LineageError), database.transaction() as uow:
        uow.defer(_NOTE, ("stored-first", 1))
        uow.execute(sa.text("SELECT 1"))  # the first deferred INSERT went with this
        uow.defer("INSERT INTO `Type` (id, name, type_kind) VALUES (%s, %s, %s)", (1, "clash", 1))
    assert _count(database, "SELECT COUNT(*) FROM `Type`") == before
    # The connection goes back clean: the next transaction does not carry anything.
    with database.transaction() as uow:
        assert DEFERRED not in uow.connection.info
        uow.defer(_NOTE, ("after", 1))
    assert _count(database, "SELECT COUNT(*) FROM `Type`") == before + 1


def test_a_rolled_back_transaction_drops_its_deferred_statements(database: Database) -> None:
    before = _count(database, "SELECT COUNT(*) FROM `Type`")
    with pytest.raises(RuntimeError), database.transaction() as uow:
        uow.defer(_NOTE, ("never", 1))
        raise RuntimeError("the caller gave up")
    with database.transaction() as uow:
        uow.execute(sa.text("SELECT 1"))
    assert _count(database, "SELECT COUNT(*) FROM `Type`") == before


def test_a_large_statement_is_sent_at_once(database: Database, queries: list[str]) -> None:
    with database.transaction() as uow:
        uow.defer(_NOTE, ("small", 1))
        queries.clear()
        big = (
            "INSERT INTO `ArtifactProperty` (artifact_id, name, is_custom_property, string_value) "
            "VALUES (%s, %s, %s, %s)"
        )
        uow.defer(big, (1, "big", 1, "x" * 70_000))
        assert DEFERRED not in uow.connection.info
        # What was pending before it went in the same query, in order.
        assert len(queries) == 1 and queries[0].index("'small'") < queries[0].index("'xxx")
    assert _count(database, "SELECT COUNT(*) FROM `Type` WHERE name = 'small'") == 1
    assert _count(database, "SELECT CHAR_LENGTH(string_value) FROM `ArtifactProperty` WHERE name = 'big'") == 70_000


def test_put_execution_sends_its_links_with_the_commit(store: MetadataStore, queries: list[str]) -> None:
    artifact_type = store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="D")))
    execution_type = store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="T")))
    context_type = store.put_context_type(svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="R")))
    [context_id] = store.put_contexts(
        svc.PutContextsRequest(contexts=[mlmd.Context(type_id=context_type.type_id, name="run")])
    ).context_ids
    request = svc.PutExecutionRequest(execution=mlmd.Execution(type_id=execution_type.type_id))
    pair = request.artifact_event_pairs.add()
    pair.artifact.type_id = artifact_type.type_id
    pair.event.type = mlmd.Event.OUTPUT
    pair.event.path.steps.add().key = "model"
    context = request.contexts.add()
    context.id, context.type_id, context.name = context_id, context_type.type_id, "run"
    queries.clear()
    response = store.put_execution(request)
    commits = [q for q in queries if q.rstrip().endswith("COMMIT")]
    assert len(commits) == 1
    # The links go with the COMMIT; the event's path with the next statement, not on its own.
    assert "`Association`" in commits[0] and "`Attribution`" in commits[0]
    [with_path] = [q for q in queries if "`EventPath`" in q]
    assert not with_path.lstrip().startswith("INSERT INTO `EventPath`") or ";" in with_path
    contexts = store.get_contexts_by_execution(svc.GetContextsByExecutionRequest(execution_id=response.execution_id))
    assert [c.id for c in contexts.contexts] == [context_id]
    [event] = store.get_events_by_execution_ids(
        svc.GetEventsByExecutionIDsRequest(execution_ids=[response.execution_id])
    ).events
    assert [s.key for s in event.path.steps] == ["model"]


def test_a_new_types_properties_go_with_the_commit(store: MetadataStore, queries: list[str]) -> None:
    properties = {"split": mlmd.STRING, "shard": mlmd.INT}
    request = svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Deferred", properties=properties))
    queries.clear()
    type_id = store.put_artifact_type(request).type_id
    [with_properties] = [q for q in queries if "`TypeProperty`" in q]
    assert with_properties.rstrip().endswith("COMMIT")
    assert len(queries) == 2  # the lock with the type's INSERT, then its properties with the COMMIT
    [stored] = store.get_artifact_types_by_id(svc.GetArtifactTypesByIDRequest(type_ids=[type_id])).artifact_types
    assert dict(stored.properties) == properties


def test_a_new_type_whose_properties_fail_stores_nothing(
    store: MetadataStore, database: Database, queries: list[str]
) -> None:
    before = _count(database, "SELECT COUNT(*) FROM `Type`")
    # A property name past its column fails the deferred INSERT at COMMIT: the type goes too.
    request = svc.PutArtifactTypeRequest(
        artifact_type=mlmd.ArtifactType(name="Doomed", properties={"p" * 300: mlmd.INT})
    )
    with pytest.raises(errors.InvalidArgumentError):
        store.put_artifact_type(request)
    assert any("`TypeProperty`" in q and q.rstrip().endswith("COMMIT") for q in queries)  # it failed there
    assert _count(database, "SELECT COUNT(*) FROM `Type`") == before
    assert _count(database, "SELECT COUNT(*) FROM `Type` WHERE name = 'Doomed'") == 0


def test_a_new_executions_events_without_paths_ride_with_the_next_statement(
    store: MetadataStore, queries: list[str]
) -> None:
    artifact_type = store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="D")))
    execution_type = store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="T")))
    [stored] = store.put_artifacts(
        svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=artifact_type.type_id)])
    ).artifact_ids
    request = svc.PutExecutionRequest(execution=mlmd.Execution(type_id=execution_type.type_id))
    request.artifact_event_pairs.add().event.CopyFrom(mlmd.Event(artifact_id=stored, type=mlmd.Event.INPUT))
    output = request.artifact_event_pairs.add()
    output.artifact.type_id = artifact_type.type_id
    output.event.type = mlmd.Event.OUTPUT
    queries.clear()
    response = store.put_execution(request)
    [with_events] = [q for q in queries if "`Event`" in q]
    assert not with_events.lstrip().startswith("INSERT INTO `Event`") or with_events.rstrip().endswith("COMMIT")
    events = store.get_events_by_execution_ids(
        svc.GetEventsByExecutionIDsRequest(execution_ids=[response.execution_id])
    ).events
    assert sorted((e.artifact_id, e.type) for e in events) == [
        (stored, mlmd.Event.INPUT),
        (response.artifact_ids[1], mlmd.Event.OUTPUT),
    ]
    # The same event twice is refused before anything is sent, with what clashed.
    twice = svc.PutExecutionRequest(execution=mlmd.Execution(type_id=execution_type.type_id))
    for _ in range(2):
        twice.artifact_event_pairs.add().event.CopyFrom(mlmd.Event(artifact_id=stored, type=mlmd.Event.INPUT))
    with pytest.raises(errors.AlreadyExistsError, match="same artifact_id, execution_id and type"):
        store.put_execution(twice)


def test_memberships_ride_with_the_next_statement_and_a_missing_namespace_is_named(
    store: MetadataStore, database: Database, queries: list[str]
) -> None:
    artifact_type = store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="D")))
    with database.transaction() as uow:
        tenancy.create_namespace(uow, "team-a", 1)
    request = svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=artifact_type.type_id, uri="s3://a")])
    team_a = Tenancy(namespace="team-a", readable=frozenset({"team-a"}), writable=frozenset({"team-a"}))
    queries.clear()
    token = tenancy.CURRENT_TENANCY.set(team_a)
    try:
        [stored] = store.put_artifacts(request).artifact_ids
    finally:
        tenancy.CURRENT_TENANCY.reset(token)
    [with_membership] = [q for q in queries if "lineagedb_node_namespace" in q]
    assert with_membership.rstrip().endswith("COMMIT")  # not a round trip of its own
    assert _count(database, f"SELECT COUNT(*) FROM lineagedb_node_namespace WHERE node_id = {stored}") == 1
    # A namespace nobody created: the deferred INSERT fails the COMMIT, which says so.
    before = _count(database, "SELECT COUNT(*) FROM `Artifact`")
    nowhere = Tenancy(namespace="team-z", readable=frozenset({"team-z"}), writable=frozenset({"team-z"}))
    token = tenancy.CURRENT_TENANCY.set(nowhere)
    try:
        with pytest.raises(errors.FailedPreconditionError, match="namespace 'team-z' does not exist"):
            store.put_artifacts(request)
    finally:
        tenancy.CURRENT_TENANCY.reset(token)
    assert _count(database, "SELECT COUNT(*) FROM `Artifact`") == before


def test_a_read_ahead_rides_with_the_next_statement_and_sees_what_was_deferred_before_it(
    database: Database, queries: list[str]
) -> None:
    delivered: list[list[tuple[Any, ...]]] = []
    with database.transaction() as uow:
        uow.execute(sa.text("SELECT 1"))  # the writers' lock went with this
        uow.defer(_NOTE, ("before-the-read", 1))
        queries.clear()
        uow.read_ahead(
            "SELECT name FROM `Type` WHERE name = %s", ("before-the-read",), lambda rows, _: delivered.append(rows)
        )
        assert not queries and not delivered  # nothing sent yet
        assert uow.execute(sa.text("SELECT 2")).scalar_one() == 2  # its own result, after the read's
        assert len(queries) == 1 and queries[0].index("INSERT") < queries[0].index("SELECT name")
        assert delivered == [[("before-the-read",)]]


def test_a_read_ahead_is_sent_alone_when_wanted_first_or_with_the_commit(
    database: Database, queries: list[str]
) -> None:
    delivered: list[list[tuple[Any, ...]]] = []
    with database.transaction() as uow:
        uow.execute(sa.text("SELECT 1"))
        uow.read_ahead("SELECT 7", (), lambda rows, _: delivered.append(rows))
        queries.clear()
        uow.send_pending()
        assert delivered == [[(7,)]] and queries == ["SELECT 7"]
        uow.send_pending()  # nothing pending: nothing sent
        assert len(queries) == 1
        uow.read_ahead("SELECT 8", (), lambda rows, _: delivered.append(rows))
    assert delivered == [[(7,)], [(8,)]]
    assert queries[-1] == "SELECT 8; COMMIT"


def _put_execution_with_an_input(store: MetadataStore, stored: int, types: tuple[int, int], context: int) -> Any:
    artifact_type, execution_type = types
    request = svc.PutExecutionRequest(
        execution=mlmd.Execution(type_id=execution_type),
        contexts=[mlmd.Context(id=context)],
        options=svc.PutExecutionRequest.Options(force_reuse_context=True),
    )
    request.artifact_event_pairs.add().event.CopyFrom(mlmd.Event(artifact_id=stored, type=mlmd.Event.INPUT))
    output = request.artifact_event_pairs.add()
    output.artifact.type_id = artifact_type
    output.event.type = mlmd.Event.OUTPUT
    return store.put_execution(request)


def test_put_execution_in_a_namespace_costs_no_round_trip_and_a_hidden_input_stores_nothing(
    store: MetadataStore, database: Database, queries: list[str]
) -> None:
    artifact_type = store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="D")))
    execution_type = store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="T")))
    context_type = store.put_context_type(svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="R")))
    types = (artifact_type.type_id, execution_type.type_id)
    with database.transaction() as uow:
        for name in ("team-a", "team-b"):
            tenancy.create_namespace(uow, name, 1)
    team = {
        name: Tenancy(namespace=name, readable=frozenset({name, "default"}), writable=frozenset({name}))
        for name in ("team-a", "team-b")
    }

    def as_team(name: str | None, call: Any) -> Any:
        token = tenancy.CURRENT_TENANCY.set(team[name] if name else None)
        try:
            return call()
        finally:
            tenancy.CURRENT_TENANCY.reset(token)

    made = iter(range(100))

    def setup(name: str | None) -> tuple[int, int]:
        [artifact] = as_team(
            name,
            lambda: (
                store.put_artifacts(
                    svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=artifact_type.type_id)])
                ).artifact_ids
            ),
        )
        [context] = as_team(
            name,
            lambda: (
                store.put_contexts(
                    svc.PutContextsRequest(
                        contexts=[mlmd.Context(type_id=context_type.type_id, name=f"run-{next(made)}")]
                    )
                ).context_ids
            ),
        )
        return artifact, context

    sent: dict[str | None, list[str]] = {}
    for name in (None, "team-a"):
        artifact, context = setup(name)
        queries.clear()
        response = as_team(name, lambda a=artifact, c=context: _put_execution_with_an_input(store, a, types, c))
        sent[name] = list(queries)
        assert response.artifact_ids[0] == artifact
    # The namespaces of the input and the context went with the first INSERT, not on their own.
    [lookup] = [q for q in sent["team-a"] if "SELECT 1 AS kind" in q]
    assert "INSERT INTO `Artifact`" in lookup and lookup.index("SELECT 1 AS kind") < lookup.index("INSERT")
    assert len(sent["team-a"]) <= len(sent[None])
    # team-b's artifact is hidden from team-a: the check after the INSERTs refuses the call as
    # for an id that exists nowhere, and the rollback takes what was written before it.
    hidden, _ = setup("team-b")
    _, context = setup("team-a")
    tables = ("`Artifact`", "`Execution`", "`Event`", "lineagedb_node_namespace")
    before = {table: _count(database, f"SELECT COUNT(*) FROM {table}") for table in tables}
    for missing in (hidden, 10**9):
        with pytest.raises(errors.InvalidArgumentError) as refused:
            as_team("team-a", lambda m=missing: _put_execution_with_an_input(store, m, types, context))
        assert str(refused.value) == f"event refers to artifact {missing}, which does not exist"
    assert {table: _count(database, f"SELECT COUNT(*) FROM {table}") for table in tables} == before
