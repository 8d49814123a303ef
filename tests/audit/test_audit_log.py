"""The audit log in the store, on every backend: records in the write's own transaction,
what changed, and verification that catches each kind of tampering."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import audit_log, audit_store, prepared
from lineagedb.store.audit_log import CHAINS, HEAD_MARK, RECORD_NODES, RECORDS, AuditLog
from lineagedb.store.unit_of_work import Database
from tests.audit.conftest import KEY, as_call, chains, head_marks, node_rows, records, stored_head, tamper


def _types(store: MetadataStore) -> int:
    with as_call("PutArtifactType", principal="admin"):
        return store.put_artifact_type(
            svc.PutArtifactTypeRequest(
                artifact_type=mlmd.ArtifactType(name="Model", properties={"approved": mlmd.BOOLEAN})
            )
        ).type_id


def _artifacts(store: MetadataStore, type_id: int, count: int = 2, principal: str = "alice") -> list[int]:
    artifacts = [mlmd.Artifact(type_id=type_id, uri=f"s3://m/{i}") for i in range(count)]
    with as_call("PutArtifacts", principal=principal):
        return list(store.put_artifacts(svc.PutArtifactsRequest(artifacts=artifacts)).artifact_ids)


def _verify(db: Database) -> audit_store.Verification:
    with db.engine.connect() as connection:
        return audit_store.verify(connection, KEY)


def test_a_committed_write_has_its_record(audited_store: MetadataStore, audited_db: Database) -> None:
    type_id = _types(audited_store)
    ids = _artifacts(audited_store, type_id)
    found = records(audited_db)
    assert [r["method"].rsplit("/", 1)[1] for r in found] == ["PutArtifactType", "PutArtifacts"]
    write = found[1]
    assert (write["kind"], write["principal"], write["namespace"], write["outcome"]) == (
        "write",
        "alice",
        "default",
        "OK",
    )
    assert json.loads(write["detail"])["created"] == {"artifact": ids}
    assert json.loads(found[0]["detail"])["created"] == {"type": [type_id]}
    # The node index lets `history` and `query --node` find the record.
    assert [(kind, node) for kind, node, _, _ in node_rows(audited_db)] == [(1, ids[0]), (1, ids[1])]
    # Each record marks its chain's head; the chain's row keeps its first record's.
    chain = write["chain"]
    assert head_marks(audited_db) == [(chain, 1), (chain, 2)]
    assert (chains(audited_db)[chain].head_seq, stored_head(audited_db, chain)) == (2, (1, found[0]["mac"]))
    result = _verify(audited_db)
    assert result.ok and result.records == 2


def test_a_large_write_indexes_every_node_once(audited_store: MetadataStore, audited_db: Database) -> None:
    # 450 nodes: on MySQL the node rows go as three INSERTs (200 rows each at most).
    ids = _artifacts(audited_store, _types(audited_store), count=450)
    [write] = [r for r in records(audited_db) if r["method"].endswith("/PutArtifacts")]
    assert sorted((kind, node, chain, seq) for kind, node, chain, seq in node_rows(audited_db)) == [
        (1, node, write["chain"], write["seq"]) for node in sorted(ids)
    ]
    assert _verify(audited_db).ok


def test_a_write_rolled_back_after_its_record_leaves_none(
    audited_store: MetadataStore, audited_db: Database, audit: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault between the write (and its record) and the commit: nothing of it stays,
    and the writer's chain goes on from the last committed record."""
    type_id = _types(audited_store)
    append = AuditLog.append

    def append_then_fail(self: AuditLog, *args: Any, **kwargs: Any) -> Any:
        append(self, *args, **kwargs)
        raise errors.UnavailableError("injected fault before commit")

    monkeypatch.setattr(AuditLog, "append", append_then_fail)
    with pytest.raises(errors.UnavailableError):
        _artifacts(audited_store, type_id)
    monkeypatch.setattr(AuditLog, "append", append)
    with audited_db.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(audited_db.schema.artifact)).scalar() == 0
    assert len(records(audited_db)) == 1  # the type's
    _artifacts(audited_store, type_id)
    assert len(records(audited_db)) == 2
    assert _verify(audited_db).ok


def test_a_commit_whose_outcome_is_unknown_starts_a_new_chain(
    audited_store: MetadataStore, audited_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    type_id = _types(audited_store)
    dialect = audited_db.engine.dialect

    def failing_commit(dbapi_connection: Any) -> None:
        # The transaction ends without committing, and the caller cannot know it did.
        cursor = dbapi_connection.cursor()
        cursor.execute("ROLLBACK")
        cursor.close()
        raise sa_exc.OperationalError("COMMIT", {}, Exception("connection reset during commit"))

    with monkeypatch.context() as patch:
        patch.setattr(dialect, "do_commit", failing_commit)
        with pytest.raises(errors.LineageError):
            _artifacts(audited_store, type_id)
    _artifacts(audited_store, type_id)
    found = records(audited_db)
    assert len(found) == 2 and found[0]["chain"] != found[1]["chain"]
    assert _verify(audited_db).ok


def test_a_write_whose_commit_fails_is_left_to_be_recorded_as_failed(
    audited_store: MetadataStore, audited_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write's record went down with its commit: the call must not count as recorded,
    or the audit interceptor would skip the call's `failed` record and nothing would show it."""
    type_id = _types(audited_store)
    dialect = audited_db.engine.dialect

    def failing_commit(dbapi_connection: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("ROLLBACK")
        cursor.close()
        raise sa_exc.OperationalError("COMMIT", {}, Exception("connection reset during commit"))

    with monkeypatch.context() as patch:
        patch.setattr(dialect, "do_commit", failing_commit)
        with as_call("PutArtifacts") as failed, pytest.raises(errors.LineageError):
            audited_store.put_artifacts(
                svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, uri="s3://m/lost")])
            )
    assert failed.recorded is False
    assert len(records(audited_db)) == 1  # the type's
    with as_call("PutArtifacts") as committed:
        audited_store.put_artifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, uri="s3://m/0")]))
    assert committed.recorded is True


def test_an_update_keeps_the_previous_and_new_values(audited_store: MetadataStore, audited_db: Database) -> None:
    type_id = _types(audited_store)
    [artifact_id] = _artifacts(audited_store, type_id, count=1)
    with as_call("PutArtifacts", principal="reviewer"):
        audited_store.put_artifacts(
            svc.PutArtifactsRequest(
                artifacts=[
                    mlmd.Artifact(
                        id=artifact_id,
                        type_id=type_id,
                        uri="s3://m/0",
                        state=mlmd.Artifact.LIVE,
                        properties={"approved": mlmd.Value(bool_value=True)},
                    )
                ]
            )
        )
    with audited_db.engine.connect() as connection:
        entries = audit_store.history(connection, (1, artifact_id))
    assert [(e["principal"], e["created"]) for e in entries] == [("alice", True), ("reviewer", False)]
    assert entries[1]["changes"] == [
        {"field": "state", "from": None, "to": "LIVE"},
        {"field": "properties.approved", "from": None, "to": {"bool_value": True}},
    ]


def test_edges_are_recorded(audited_store: MetadataStore, audited_db: Database) -> None:
    type_id = _types(audited_store)
    [artifact_id] = _artifacts(audited_store, type_id, count=1)
    with as_call("PutExecutionType", principal="admin"):
        execution_type = audited_store.put_execution_type(
            svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="Train"))
        ).type_id
    with as_call("PutExecution"):
        execution_id = audited_store.put_execution(
            svc.PutExecutionRequest(
                execution=mlmd.Execution(type_id=execution_type),
                artifact_event_pairs=[
                    svc.PutExecutionRequest.ArtifactAndEvent(
                        event=mlmd.Event(artifact_id=artifact_id, type=mlmd.Event.INPUT)
                    )
                ],
            )
        ).execution_id
    detail = json.loads(records(audited_db)[-1]["detail"])
    assert detail["created"] == {"execution": [execution_id]}
    assert detail["edges"] == {"event": [[artifact_id, execution_id, mlmd.Event.INPUT]]}


# -- tampering ------------------------------------------------------------------------------------


@pytest.fixture
def chain_of_four(audited_store: MetadataStore, audited_db: Database) -> list[dict[str, Any]]:
    type_id = _types(audited_store)
    for _ in range(3):
        _artifacts(audited_store, type_id, count=1)
    found = records(audited_db)
    assert len(found) == 4 and len({r["chain"] for r in found}) == 1
    assert _verify(audited_db).ok
    return found


def _first_problem(db: Database) -> tuple[str, int | None]:
    result = _verify(db)
    assert not result.ok
    return result.findings[0].problem, result.findings[0].record_id


def test_verify_catches_an_edited_record(audited_db: Database, chain_of_four: list[dict[str, Any]]) -> None:
    second = chain_of_four[1]
    tamper(audited_db, sa.update(RECORDS).where(RECORDS.c.id == second["id"]).values(principal="mallory"))
    assert _first_problem(audited_db) == ("edited", second["id"])


def test_verify_catches_a_deleted_record(audited_db: Database, chain_of_four: list[dict[str, Any]]) -> None:
    second, third = chain_of_four[1], chain_of_four[2]
    tamper(audited_db, sa.delete(RECORDS).where(RECORDS.c.id == second["id"]))
    assert _first_problem(audited_db) == ("deleted", third["id"])


def test_verify_catches_deleted_newest_records(audited_db: Database, chain_of_four: list[dict[str, Any]]) -> None:
    tamper(audited_db, sa.delete(RECORDS).where(RECORDS.c.id == chain_of_four[3]["id"]))
    assert _first_problem(audited_db) == ("deleted", chain_of_four[2]["id"])


def test_verify_catches_newest_records_deleted_with_their_chain_row_set_back(
    audited_db: Database, chain_of_four: list[dict[str, Any]]
) -> None:
    """The chain's row is no head: winding it back to the last record left does not hide
    the deletion while the head marks of the deleted records are still there."""
    third = chain_of_four[2]
    tamper(
        audited_db,
        sa.delete(RECORDS).where(RECORDS.c.id == chain_of_four[3]["id"]),
        sa.update(CHAINS).where(CHAINS.c.chain == third["chain"]).values(head_seq=3, head_mac=third["mac"]),
    )
    assert _first_problem(audited_db) == ("deleted", third["id"])


def test_a_chain_whose_row_holds_its_head_verifies(audited_db: Database, chain_of_four: list[dict[str, Any]]) -> None:
    """Earlier versions kept a chain's head in its row, updated by every record, and wrote no
    head marks: such a chain verifies, its newest records deleted are caught, and its head's
    MAC must be its last record's."""
    last = chain_of_four[3]
    chain = last["chain"]
    tamper(
        audited_db,
        sa.delete(RECORD_NODES).where(RECORD_NODES.c.node_kind == HEAD_MARK[0], RECORD_NODES.c.node_id == HEAD_MARK[1]),
        sa.update(CHAINS).where(CHAINS.c.chain == chain).values(head_seq=4, head_mac=last["mac"]),
    )
    assert head_marks(audited_db) == []
    assert _verify(audited_db).ok
    tamper(audited_db, sa.update(CHAINS).where(CHAINS.c.chain == chain).values(head_mac=chain_of_four[2]["mac"]))
    assert _first_problem(audited_db) == ("inserted", last["id"])
    tamper(
        audited_db,
        sa.update(CHAINS).where(CHAINS.c.chain == chain).values(head_mac=last["mac"]),
        sa.delete(RECORDS).where(RECORDS.c.id == last["id"]),
    )
    assert _first_problem(audited_db) == ("deleted", chain_of_four[2]["id"])


def test_verify_catches_an_inserted_record(audited_db: Database, chain_of_four: list[dict[str, Any]]) -> None:
    # A copy of a genuine record, slipped in with the next free sequence number.
    forged = {k: v for k, v in chain_of_four[1].items() if k != "id"} | {"seq": 5}
    tamper(audited_db, sa.insert(RECORDS).values(**forged))
    problem, record_id = _first_problem(audited_db)
    assert problem == "inserted" and record_id not in {r["id"] for r in chain_of_four}


def test_verify_catches_a_record_inserted_between_others(
    audited_db: Database, chain_of_four: list[dict[str, Any]]
) -> None:
    # A copy of record 2 under the same sequence number, stored after the genuine ones.
    forged = {k: v for k, v in chain_of_four[1].items() if k != "id"} | {"chain": chain_of_four[1]["chain"]}
    with pytest.raises(sa_exc.IntegrityError):  # (chain, seq) is unique: a plain copy is refused
        tamper(audited_db, sa.insert(RECORDS).values(**forged))
    stranger = forged | {"chain": "f" * 32}
    tamper(audited_db, sa.insert(RECORDS).values(**stranger))
    assert _first_problem(audited_db)[0] == "inserted"


def test_verify_catches_reordered_records(audited_db: Database, chain_of_four: list[dict[str, Any]]) -> None:
    second, third = chain_of_four[1], chain_of_four[2]
    columns = [c for c in second if c != "id"]
    # Swap the two records' places (their ids), keeping each one's content and MAC.
    tamper(
        audited_db,
        sa.update(RECORDS).where(RECORDS.c.id == second["id"]).values(seq=-1),
        sa.update(RECORDS).where(RECORDS.c.id == third["id"]).values(**{c: second[c] for c in columns}),
        sa.update(RECORDS).where(RECORDS.c.id == second["id"]).values(**{c: third[c] for c in columns}),
    )
    assert _first_problem(audited_db) == ("reordered", second["id"])


def test_postgresql_refuses_update_and_delete_of_records(
    audited_db: Database, chain_of_four: list[dict[str, Any]]
) -> None:
    """PostgreSQL's trigger refuses both, of records and of head marks; elsewhere (no
    trigger) the hash chain shows them."""
    change = sa.update(RECORDS).where(RECORDS.c.id == chain_of_four[1]["id"]).values(principal="mallory")
    delete = sa.delete(RECORDS).where(RECORDS.c.id == chain_of_four[3]["id"])
    unmark = sa.delete(RECORD_NODES).where(RECORD_NODES.c.node_kind == HEAD_MARK[0], RECORD_NODES.c.seq == 4)
    if audited_db.dialect == "postgresql":
        for statement in (change, delete, unmark):
            with pytest.raises(sa_exc.DBAPIError, match="append-only"), audited_db.engine.begin() as connection:
                connection.execute(statement)
        assert _verify(audited_db).ok
    else:
        with audited_db.engine.begin() as connection:
            connection.execute(change)
        assert _first_problem(audited_db) == ("edited", chain_of_four[1]["id"])


# -- retention ------------------------------------------------------------------------------------


def test_prune_deletes_old_records_and_keeps_the_log_verifiable(
    audited_db: Database, chain_of_four: list[dict[str, Any]], audit: AuditLog
) -> None:
    before = chain_of_four[2]["time_ms"]  # the first two are older
    with audited_db.engine.connect() as connection, connection.begin():
        result = audit_store.prune(connection, AuditLog(KEY), before, "ops")
    audit.commit_pending(result["pending"])
    assert result["deleted"] == 2
    left = records(audited_db)
    assert [r["seq"] for r in left if r["kind"] != "prune"] == [3, 4]
    assert [r["kind"] for r in left][-1] == "prune"
    assert _verify(audited_db).ok
    # Deleting more old records without a retention record is still caught.
    tamper(audited_db, sa.delete(RECORDS).where(RECORDS.c.id == chain_of_four[2]["id"]))
    assert _first_problem(audited_db)[0] == "deleted"


def test_pruning_by_hand_is_caught(audited_db: Database, chain_of_four: list[dict[str, Any]]) -> None:
    """Deleting the oldest records and moving the chain's start, without the key."""
    first = chain_of_four[0]
    tamper(
        audited_db,
        sa.delete(RECORDS).where(RECORDS.c.id == first["id"]),
        sa.update(CHAINS).where(CHAINS.c.chain == first["chain"]).values(base_seq=1, base_mac=first["mac"]),
    )
    assert _first_problem(audited_db) == ("deleted", chain_of_four[1]["id"])


def test_emptying_a_chain_by_hand_is_caught(audited_db: Database, chain_of_four: list[dict[str, Any]]) -> None:
    """All of a chain's records deleted and its start moved to its head, without the key:
    no record is left to check, but no retention record states that start either."""
    chain = chain_of_four[0]["chain"]
    tamper(
        audited_db,
        sa.delete(RECORD_NODES).where(RECORD_NODES.c.chain == chain),
        sa.delete(RECORDS).where(RECORDS.c.chain == chain),
        sa.update(CHAINS).where(CHAINS.c.chain == chain).values(base_seq=4, base_mac=chain_of_four[3]["mac"]),
    )
    assert _first_problem(audited_db) == ("deleted", None)


def test_a_chain_emptied_by_prune_verifies(
    audited_db: Database, chain_of_four: list[dict[str, Any]], audit: AuditLog
) -> None:
    with audited_db.engine.connect() as connection, connection.begin():
        result = audit_store.prune(connection, AuditLog(KEY), chain_of_four[3]["time_ms"] + 1, "ops")
    audit.commit_pending(result["pending"])
    assert result["deleted"] == 4
    assert [r["kind"] for r in records(audited_db)] == ["prune"]
    assert _verify(audited_db).ok


def test_two_writers_keep_two_chains_that_both_verify(audited_db: Database, clock: Any) -> None:
    """Two threads (two writers) of one server append concurrently without waiting for
    each other; processes are covered end to end in test_audit_e2e."""
    import threading

    store = MetadataStore(audited_db, clock=clock)
    type_id = _types(store)
    failures: list[BaseException] = []

    def write(name: str) -> None:
        try:
            for _ in range(10):
                _artifacts(store, type_id, count=2, principal=name)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=write, args=(name,)) for name in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    retried = [f for f in failures if isinstance(f, errors.AbortedError)]
    assert failures == retried
    result = _verify(audited_db)
    assert result.ok, result.findings
    assert result.records == 1 + 20 - len(retried)
    assert len(chains(audited_db)) == 3  # the test thread's, and one per writer thread


def test_a_transaction_outside_any_call_that_changes_nothing_leaves_no_record(audited_db: Database) -> None:
    with audited_db.transaction() as uow:
        assert uow.changes is not None
    assert records(audited_db) == []


def test_genesis_depends_on_key_and_chain() -> None:
    assert audit_log.genesis_mac(KEY, "a" * 32) != audit_log.genesis_mac(KEY, "b" * 32)
    assert audit_log.genesis_mac(KEY, "a" * 32) != audit_log.genesis_mac(b"x" * 32, "a" * 32)


def test_a_record_the_database_refuses_rolls_the_write_back(
    audited_store: MetadataStore, audited_db: Database, audit: AuditLog
) -> None:
    """The record fails as it is stored (on PostgreSQL: together with the COMMIT): the
    write is not committed either, and the next write starts a chain that verifies."""
    type_id = _types(audited_store)
    audit._chain().stored = False  # makes the record insert its chain's head row a second time
    with pytest.raises(errors.LineageError):
        _artifacts(audited_store, type_id)
    with audited_db.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(audited_db.schema.artifact)).scalar() == 0
    _artifacts(audited_store, type_id)
    assert len(records(audited_db)) == 2
    assert _verify(audited_db).ok


def test_changed_values_of_every_kind_are_recorded(audited_store: MetadataStore, audited_db: Database) -> None:
    """Including a packed message the server has no descriptor for: it stays packed."""
    from google.protobuf import any_pb2, struct_pb2

    type_id = _types(audited_store)
    [artifact_id] = _artifacts(audited_store, type_id, count=1)
    packed = any_pb2.Any(type_url="type.googleapis.com/example.Unknown", value=b"\x08\x01")
    struct = struct_pb2.Struct()
    struct.update({"k": "v"})
    values = {
        "i": mlmd.Value(int_value=7),
        "d": mlmd.Value(double_value=0.5),
        "s": mlmd.Value(string_value="x"),
        "p": mlmd.Value(proto_value=packed),
        "st": mlmd.Value(struct_value=struct),
    }
    with as_call("PutArtifacts"):
        audited_store.put_artifacts(
            svc.PutArtifactsRequest(
                artifacts=[mlmd.Artifact(id=artifact_id, type_id=type_id, uri="s3://m/0", custom_properties=values)]
            )
        )
    changes = {c["field"]: c["to"] for c in json.loads(records(audited_db)[-1]["detail"])["changes"]}
    assert changes == {
        "custom_properties.d": {"double_value": 0.5},
        "custom_properties.i": {"int_value": 7},
        "custom_properties.p": {"proto_value": {"type_url": "type.googleapis.com/example.Unknown", "value": "CAE="}},
        "custom_properties.s": {"string_value": "x"},
        "custom_properties.st": {"struct_value": {"k": "v"}},
    }


def test_verify_reads_one_snapshot_while_servers_write(
    audited_store: MetadataStore,
    audited_db: Database,
    database_url: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`lineagedb audit verify` next to running servers: a write that commits between its
    reading the chain heads and the records is not reported as inserted (PostgreSQL reads
    at READ COMMITTED otherwise), and it does not hold SQLite's write lock, which would
    make that write wait and fail."""
    from lineagedb.ops import audit as audit_ops

    type_id = _types(audited_store)
    _artifacts(audited_store, type_id)
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(KEY)
    bases = audit_store._prune_bases

    def bases_then_a_write(connection: sa.Connection, key: bytes) -> dict[str, tuple[int, str]]:
        found = bases(connection, key)
        _artifacts(audited_store, type_id)  # a server's write commits meanwhile
        return found

    monkeypatch.setattr(audit_store, "_prune_bases", bases_then_a_write)
    out = io.StringIO()
    assert audit_ops.verify(database_url, str(key_file), out=out) == 0, out.getvalue()
    assert out.getvalue() == "ok: 2 records in 1 chains verify\n"
    assert len(records(audited_db)) == 3


@pytest.mark.parametrize(
    "request_fields",
    [
        {"node": "artifact:\u00b2"},  # str.isdigit() says yes, int() says no
        {"node": "artifact:1\u00b9"},
        {"node": "artifact:"},
        {"node": "artifact:-1"},
        {"node": "model:1"},
        {"node": "artifact:" + "9" * 19},
        {"page_token": "after:\u00b2"},
        {"page_token": "after:"},
        {"page_token": "before:5"},
    ],
)
def test_query_audit_refuses_a_malformed_node_or_page_token(
    audited_db: Database, request_fields: dict[str, str]
) -> None:
    """A caller's mistake is INVALID_ARGUMENT, never INTERNAL (a ValueError from int())."""
    from lineagedb.proto.lineagedb.v1 import audit_pb2
    from lineagedb.service.audit import AuditQueries

    with pytest.raises(errors.InvalidArgumentError):
        AuditQueries(audited_db).query_audit(audit_pb2.QueryAuditRequest(**request_fields))


@pytest.mark.parametrize("text", ["artifact:\u00b2", "execution:\u0663", "context:", "artifact:" + "9" * 19, "x:1"])
def test_the_audit_commands_refuse_a_malformed_node(text: str) -> None:
    from lineagedb.ops import audit as audit_ops

    with pytest.raises(errors.InvalidArgumentError, match="a node is artifact:ID, execution:ID or context:ID"):
        audit_ops.parse_node(text)


def test_nodes_parse_the_same_for_the_commands_and_the_service() -> None:
    from lineagedb.ops import audit as audit_ops

    assert audit_ops.parse_node("artifact:5") == audit_log.parse_node("artifact:5") == (1, 5)
    assert audit_log.parse_node("execution:0") == (0, 0)
    assert audit_log.parse_node("context:" + "9" * 18) == (2, 10**18 - 1)


def test_the_audit_commands_take_the_database_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """As `lineagedb db`, `namespace` and `keys` do: LINEAGEDB_DATABASE_PASSWORD, so the
    password need not be written into a URL on the command line."""
    from lineagedb.ops import audit as audit_ops

    used: list[Any] = []

    def capture(url: Any, *_: Any, **__: Any) -> Any:
        used.append(url)
        raise RuntimeError("stop here")

    monkeypatch.setenv("LINEAGEDB_DATABASE_PASSWORD", "from-the-environment")
    monkeypatch.setattr(audit_ops, "create_engine", capture)
    with pytest.raises(RuntimeError, match="stop here"):
        audit_ops.history("postgresql://auditor@db.example/mlmd", "artifact:1", "table")
    assert [url.password for url in used] == ["from-the-environment"]


def test_a_record_that_finds_every_connection_busy_is_resource_exhausted(
    audited_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused call's record under load: the audit interceptor handles LineageErrors (it
    logs them and the call keeps its own status); a bare pool timeout would replace the
    call's PERMISSION_DENIED with UNKNOWN."""

    def busy() -> Any:
        raise sa_exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached")

    monkeypatch.setattr(audited_db.engine, "connect", busy)
    with as_call("GetArtifacts") as call, pytest.raises(errors.ResourceExhaustedError):
        audited_db.append_audit(call, audit_log.REFUSED, "PERMISSION_DENIED")


def test_a_principal_with_a_lone_surrogate_is_recorded_replaced(
    audited_store: MetadataStore, audited_db: Database
) -> None:
    """A JWT's `sub` may hold an escaped lone surrogate (JSON allows it, UTF-8 cannot encode
    it): the write is still recorded, with U+FFFD in its place, and the chain verifies."""
    type_id = _types(audited_store)
    _artifacts(audited_store, type_id, count=1, principal="mallory\ud800!")
    assert records(audited_db)[-1]["principal"] == "mallory\ufffd!"
    assert _verify(audited_db).ok


@pytest.mark.parametrize(
    ("principal", "namespace"),
    [
        ("o'brien\\\" %s %(x)s --", "team-a"),  # quotes, a backslash, placeholders, a comment
        ("abc123", "Team9"),  # letters and digits only: written as they are on MySQL/MariaDB
        ("x' ); DROP TABLE lineagedb_audit; --", "\u00e9quipe"),  # an injection attempt, non-ASCII
    ],
)
def test_a_records_text_is_stored_as_given(
    audited_store: MetadataStore, audited_db: Database, principal: str, namespace: str
) -> None:
    """Whatever a principal or namespace holds, the record stores exactly it (MySQL/MariaDB
    writes the record's values into its SQL: escaped, or as they are when only letters and
    digits), and the chain verifies."""
    type_id = _types(audited_store)
    with as_call("PutArtifacts", principal, namespace):
        audited_store.put_artifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id)]))
    last = records(audited_db)[-1]
    assert (last["principal"], last["namespace"], last["kind"], last["outcome"]) == (
        principal,
        namespace,
        "write",
        "OK",
    )
    assert _verify(audited_db).ok


def test_a_record_of_its_own_waits_for_the_open_transaction_of_an_in_memory_database(audit: AuditLog) -> None:
    """A private in-memory SQLite database is one shared connection, which Database
    serializes transactions on: a refused call's record written meanwhile must wait too,
    not run its BEGIN inside (or its COMMIT for) another thread's open transaction."""
    import threading
    import time

    from lineagedb.store.bootstrap import prepare_database
    from lineagedb.store.engine import create_engine
    from lineagedb.store.tenancy import NAMESPACES

    engine = create_engine("sqlite://")
    prepare_database(engine)
    db = Database(engine, audit=audit)
    inside = threading.Event()
    outcome: list[BaseException | None] = []

    def refused_call() -> None:
        inside.wait(10)
        try:
            with as_call("GetArtifacts") as call:
                db.append_audit(call, audit_log.REFUSED, "PERMISSION_DENIED")
            outcome.append(None)
        except BaseException as error:  # reported by the assertion below
            outcome.append(error)

    thread = threading.Thread(target=refused_call)
    thread.start()
    with pytest.raises(RuntimeError, match="rolled back"), db.transaction() as uow:
        uow.execute(sa.insert(NAMESPACES).values(name="never", create_time_since_epoch=1))
        inside.set()
        time.sleep(0.3)  # the other thread tries to write its record now
        raise RuntimeError("rolled back")
    thread.join(10)
    assert outcome == [None]
    assert [r["kind"] for r in records(db)] == ["denied"]
    with engine.connect() as connection:
        assert connection.execute(sa.select(NAMESPACES.c.name)).all() == []
    db.dispose()


def test_a_record_clashing_with_a_stored_one_aborts_the_write_and_the_retry_succeeds(
    audited_store: MetadataStore, audited_db: Database
) -> None:
    """Someone wrote a record at the position this writer's next one takes (or a bug did):
    the caller's data is not at fault, so the write is ABORTED (retried by the server),
    not ALREADY_EXISTS, and the writer's next try goes into a new chain."""
    type_id = audited_store.put_artifact_type(
        svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Clash"))
    ).type_id
    [(chain, head)] = [(name, row.head_seq) for name, row in chains(audited_db).items()]
    first = next(r for r in records(audited_db) if r["chain"] == chain and r["seq"] == head)
    tamper(audited_db, sa.insert(RECORDS).values({**{k: v for k, v in first.items() if k != "id"}, "seq": head + 1}))
    with pytest.raises(errors.AbortedError, match="audit record clashed"):
        audited_store.put_artifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id)]))
    assert audited_store.put_artifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id)])).artifact_ids
    assert len(chains(audited_db)) == 2


def test_prepared_and_unprepared_appends_store_the_same_records(
    audited_store: MetadataStore, audited_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL appends a record with one statement that travels with COMMIT, prepared
    on the connection the first time (PREPARE and EXECUTE in one string) and executed
    afterwards, or with its values written in when prepared statements are off
    (LINEAGEDB_PG_PREPARED=off). One chain written both ways, a new chain's first record
    included, stores the same rows and verifies. Other backends ignore the setting."""
    type_id = _types(audited_store)  # the chain's first record: its head row is inserted
    written: list[int] = []
    for enabled in (True, False, True, False):
        monkeypatch.setattr(prepared, "ENABLED", enabled)
        written += _artifacts(audited_store, type_id, count=3)
    audited_db.audit.abandon_chain()  # type: ignore[union-attr]
    monkeypatch.setattr(prepared, "ENABLED", False)
    written += _artifacts(audited_store, type_id, count=1)  # a new chain's head, unprepared
    audited_db.audit.abandon_chain()  # type: ignore[union-attr]
    monkeypatch.setattr(prepared, "ENABLED", True)
    written += _artifacts(audited_store, type_id, count=1)  # and prepared
    found = records(audited_db)
    assert [json.loads(r["detail"]).get("created") for r in found[1:]] == [
        {"artifact": written[i : i + 3]} for i in range(0, 12, 3)
    ] + [{"artifact": written[12:13]}, {"artifact": written[13:]}]
    by_record = {(r["chain"], r["seq"]) for r in found}
    assert sorted((kind, node) for kind, node, *_ in node_rows(audited_db)) == [(1, node) for node in written]
    assert {(chain, seq) for _, _, chain, seq in node_rows(audited_db)} <= by_record
    heads = {chain: row.head_seq for chain, row in chains(audited_db).items()}
    assert heads == {chain: max(seq for c, seq in by_record if c == chain) for chain, _ in by_record}
    result = _verify(audited_db)
    assert result.ok and result.records == 7


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_lost_prepared_append_aborts_the_write_and_the_retry_prepares_it_again(
    audited_store: MetadataStore, audited_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session lost the append statement (DISCARD ALL, a pooler handing over another
    session): the EXECUTE fails before the COMMIT, so the write is not stored and is
    ABORTED (api.retry retries it); the next write prepares the statement again."""
    type_id = _types(audited_store)
    _artifacts(audited_store, type_id, count=1)
    before = len(records(audited_db))
    with audited_db.engine.connect() as connection:
        artifacts_before = connection.execute(
            sa.select(sa.func.count()).select_from(audited_db.schema.artifact)
        ).scalar()
    # Every pooled session loses its statements, while this server believes each holds the append.
    pooled = [audited_db.engine.raw_connection() for _ in range(audited_db.engine.pool.checkedin())]  # type: ignore[attr-defined]
    for proxy in pooled:
        with proxy.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")
        prepared.claim(proxy.dbapi_connection, audit_log._APPEND.name)
        proxy.close()
    with pytest.raises(errors.AbortedError, match="audit statement was lost"):
        _artifacts(audited_store, type_id, count=2)
    assert len(records(audited_db)) == before
    with audited_db.engine.connect() as connection:
        stored = connection.execute(sa.select(sa.func.count()).select_from(audited_db.schema.artifact)).scalar()
    assert stored == artifacts_before
    # As api.retry would: each pooled session that still believes it fails once, then prepares again.
    for _ in range(len(pooled)):
        try:
            written = _artifacts(audited_store, type_id, count=2)
            break
        except errors.AbortedError:
            continue
    else:
        written = _artifacts(audited_store, type_id, count=2)
    assert json.loads(records(audited_db)[-1]["detail"])["created"] == {"artifact": written}
    assert _verify(audited_db).ok
