"""A re-put of an unchanged type answered from the type cache (service.types.unchanged_put_id):
the answer is the one the full write path gives, on every backend, including after another
server grew the type; with can_omit_fields it needs no statement at all; with the audit log
on it leaves the call to the write path, which records it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service import types as type_rules
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.audit_log import AuditLog
from lineagedb.store.schema import ARTIFACT_KIND
from lineagedb.store.unit_of_work import Database
from tests.service.test_type_round_trips import dataset_type, put, statements_of


def unchanged(store: MetadataStore, message: mlmd.ArtifactType, can_omit: bool = False) -> int | None:
    return type_rules.unchanged_put_id(store.db, store.types, ARTIFACT_KIND, message, can_omit)


def test_an_uncached_type_takes_the_write_path(store: MetadataStore) -> None:
    put(MetadataStore(store.db, store.clock), dataset_type())  # made by another server
    assert unchanged(store, dataset_type()) is None
    assert unchanged(store, dataset_type(), can_omit=True) is None


def test_a_cached_unchanged_type_is_one_read_or_none_with_can_omit_fields(
    store: MetadataStore, backend: str, tmp_path: Path
) -> None:
    type_id = put(store, dataset_type())
    assert statements_of(store.db, tmp_path, lambda: unchanged(store, dataset_type(), can_omit=True)) == 0
    assert unchanged(store, dataset_type(), can_omit=True) == type_id
    # Without can_omit_fields the stored type's property count is read, and nothing else is
    # sent (SQLite: no BEGIN and COMMIT around the one statement).
    read = statements_of(store.db, tmp_path, lambda: unchanged(store, dataset_type()))
    assert read == 1
    assert unchanged(store, dataset_type()) == type_id


@pytest.mark.parametrize(
    "changed",
    [
        dataset_type(split=mlmd.STRING),  # omits a property
        dataset_type(split=mlmd.STRING, rows=mlmd.INT, bytes=mlmd.INT),  # adds one
        dataset_type(split=mlmd.INT, rows=mlmd.INT),  # changes a data type
    ],
)
def test_a_request_that_differs_from_the_cached_type_takes_the_write_path(
    store: MetadataStore, changed: mlmd.ArtifactType
) -> None:
    put(store, dataset_type(split=mlmd.STRING, rows=mlmd.INT))
    assert unchanged(store, changed) is None
    assert unchanged(store, changed, can_omit=True) is None
    with_external_id = dataset_type(split=mlmd.STRING, rows=mlmd.INT)
    with_external_id.external_id = "dataset"
    assert unchanged(store, with_external_id, can_omit=True) is None
    with_base_type = dataset_type(split=mlmd.STRING, rows=mlmd.INT)
    with_base_type.base_type = mlmd.ArtifactType.DATASET
    assert unchanged(store, with_base_type, can_omit=True) is None


def test_after_another_server_grew_the_type_the_answer_is_the_full_paths(store: MetadataStore) -> None:
    type_id = put(store, dataset_type(split=mlmd.STRING))  # cached here without "rows"
    other = MetadataStore(store.db, store.clock)
    assert put(other, dataset_type(split=mlmd.STRING, rows=mlmd.INT), can_add_fields=True) == type_id
    # The request omits "rows", which the stored type now has: only can_omit_fields allows it.
    assert unchanged(store, dataset_type(split=mlmd.STRING)) is None
    with pytest.raises(errors.AlreadyExistsError, match="can_omit_fields"):
        put(store, dataset_type(split=mlmd.STRING))
    assert unchanged(store, dataset_type(split=mlmd.STRING), can_omit=True) == type_id
    fresh = MetadataStore(store.db, store.clock)  # the full path, as MLMD answers
    assert put(fresh, dataset_type(split=mlmd.STRING), can_omit_fields=True) == type_id


def test_with_the_audit_log_on_a_re_put_takes_the_write_path(store: MetadataStore) -> None:
    put(store, dataset_type())
    audited = Database(store.db.engine, audit=AuditLog(b"k" * 40))
    assert type_rules.unchanged_put_id(audited, store.types, ARTIFACT_KIND, dataset_type(), True) is None
