"""Type creation in few statements (store.repositories.types.insert_if_absent): what a put of a
new, an existing and a grown type sends, on every backend, and that the answers and stored
rows are those of the full path (a new MetadataStore has an empty type cache, as a second
server or a restarted one has)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import statement_count
from lineagedb.store.unit_of_work import Database

# Statements of a put of a new type with properties (BEGIN and COMMIT included):
# PostgreSQL one (lock, existence check, both INSERTs, implicit commit); MariaDB MLMDEnv's row
# locked exclusively (the writers' lock and the named lock in one) in the same query as
# INSERT ... WHERE NOT EXISTS ... RETURNING (store.engine.STATEMENT_PREFIX), the properties,
# COMMIT (the properties travel with the COMMIT: two round trips, tests/store/test_deferred_writes);
# SQLite BEGIN, the two INSERTs, COMMIT.
NEW_TYPE_STATEMENTS = {"postgresql": 1, "mysql": 3, "sqlite": 4}


def statements_of(database: Database, directory: Path, call: Callable[[], object]) -> int:
    """Statements `call` sent, as store.statement_count counts them for `make bench`."""
    if not getattr(database.engine, "_counting_installed", False):  # the engine may be shared
        statement_count.install(database.engine)
        database.engine._counting_installed = True  # type: ignore[attr-defined]
    counter = statement_count.StatementCounter(directory / "statements.json")
    token = counter.begin_call()
    try:
        call()
    finally:
        counter.end_call("call", token)
    counter.write()
    doc = json.loads((directory / "statements.json").read_text())["call"]
    [(count, calls)] = doc["per_call"].items()
    assert calls == 1
    # A PREPARE goes once per connection (store.prepared), on whichever of the pool's
    # connections first meets the statement: not a cost of the call.
    return int(count) - sum(1 for sql in doc["examples"][count] if sql.startswith("PREPARE "))


def dataset_type(name: str = "Dataset", **properties: Any) -> mlmd.ArtifactType:
    message = mlmd.ArtifactType(name=name)
    for key, data_type in (properties or {"split": mlmd.STRING, "rows": mlmd.INT}).items():
        message.properties[key] = data_type
    return message


def put(store: MetadataStore, message: mlmd.ArtifactType, **flags: bool) -> int:
    request = svc.PutArtifactTypeRequest(artifact_type=message)
    for flag, value in flags.items():
        setattr(request, flag, value)
    return store.put_artifact_type(request).type_id


def type_rows(database: Database) -> list[tuple[object, ...]]:
    schema = database.schema
    t, tp = schema.type, schema.type_property
    with database.engine.connect() as connection:
        types = connection.execute(sa.select(t.c.id, t.c.name, t.c.version).where(t.c.id >= 10).order_by(t.c.id))
        props = connection.execute(sa.select(tp.c.type_id, tp.c.name, tp.c.data_type).where(tp.c.type_id >= 10))
        return [tuple(row) for row in types] + sorted(tuple(row) for row in props)


def test_a_new_type_takes_the_statements_it_needs(store: MetadataStore, backend: str, tmp_path: Path) -> None:
    assert statements_of(store.db, tmp_path, lambda: put(store, dataset_type())) == NEW_TYPE_STATEMENTS[backend]
    assert put(store, dataset_type()) == 10
    assert type_rows(store.db) == [(10, "Dataset", None), (10, "rows", mlmd.INT), (10, "split", mlmd.STRING)]


def test_re_putting_an_unchanged_type_another_server_made_gives_its_id_and_writes_nothing(
    store: MetadataStore, backend: str, tmp_path: Path
) -> None:
    assert put(store, dataset_type()) == 10
    before = type_rows(store.db)
    other = MetadataStore(store.db, store.clock)  # empty cache: a second server
    sent = statements_of(store.db, tmp_path, lambda: put(other, dataset_type()))
    # PostgreSQL: the statement that found it, a read, COMMIT (the full path: three as well);
    # SQLite one more than the full path (the INSERT that found it), once per type and server:
    # a server then answers from its cache. MariaDB: the lock with the INSERT, a read, COMMIT.
    assert sent == {"postgresql": 3, "mysql": 3, "sqlite": 4}[backend]
    assert put(other, dataset_type()) == 10
    assert type_rows(store.db) == before
    # No id was taken by the INSERT that found the type already there.
    assert put(other, dataset_type("Model")) == 11


def test_a_versioned_type_is_its_own_identity(store: MetadataStore) -> None:
    first = put(store, dataset_type())
    versioned = dataset_type()
    versioned.version = "v2"
    second = put(store, versioned)
    assert second == first + 1
    other = MetadataStore(store.db, store.clock)
    assert put(other, versioned) == second
    assert put(other, dataset_type()) == first
    assert type_rows(store.db)[:2] == [(first, "Dataset", None), (second, "Dataset", "v2")]


def test_growing_a_type_another_server_made_follows_the_field_rules(store: MetadataStore) -> None:
    assert put(store, dataset_type(split=mlmd.STRING)) == 10
    other = MetadataStore(store.db, store.clock)
    with pytest.raises(errors.AlreadyExistsError, match="can_add_fields"):
        put(other, dataset_type(split=mlmd.STRING, rows=mlmd.INT))
    with pytest.raises(errors.AlreadyExistsError, match="stored as STRING"):
        put(other, dataset_type(split=mlmd.INT))
    assert put(other, dataset_type(split=mlmd.STRING, rows=mlmd.INT), can_add_fields=True) == 10
    with pytest.raises(errors.AlreadyExistsError, match="can_omit_fields"):
        put(other, dataset_type(rows=mlmd.INT))
    assert put(other, dataset_type(rows=mlmd.INT), can_omit_fields=True) == 10
    assert type_rows(store.db) == [(10, "Dataset", None), (10, "rows", mlmd.INT), (10, "split", mlmd.STRING)]
    # The first server's cached copy lacks "rows": it must not answer from it.
    with pytest.raises(errors.AlreadyExistsError, match="can_omit_fields"):
        put(store, dataset_type(split=mlmd.STRING))


def test_a_nul_in_a_property_name_is_refused_and_nothing_is_stored(store: MetadataStore) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="type property name"):
        put(store, dataset_type("Dataset", **{"sp\x00lit": mlmd.STRING}))
    with pytest.raises(errors.InvalidArgumentError, match="type name"):
        put(store, dataset_type("Data\x00set"))
    assert type_rows(store.db) == []
    assert put(store, dataset_type()) == 10


def test_a_type_with_no_properties_and_the_execution_type_fields(store: MetadataStore) -> None:
    empty = mlmd.ContextType(name="Run", description="a run")
    assert store.put_context_type(svc.PutContextTypeRequest(context_type=empty)).type_id == 10
    trainer = mlmd.ExecutionType(name="Trainer")
    trainer.properties["step"] = mlmd.INT
    trainer.input_type.any.SetInParent()
    assert store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=trainer)).type_id == 11
    other = MetadataStore(store.db, store.clock)
    got = other.get_context_type(svc.GetContextTypeRequest(type_name="Run")).context_type
    assert (got.id, got.description, dict(got.properties)) == (10, "a run", {})
    read = other.get_execution_type(svc.GetExecutionTypeRequest(type_name="Trainer")).execution_type
    assert read.id == 11 and dict(read.properties) == {"step": mlmd.INT} and read.input_type.HasField("any")
    assert other.put_context_type(svc.PutContextTypeRequest(context_type=empty)).type_id == 10
