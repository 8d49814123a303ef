"""Keys on every backend: rotation in batches (every value reads back, raw SQL shows only the
new key id), and the startup check that refuses a missing or wrong key."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.store import encryption
from lineagedb.store.sensitive import property_aad
from tests.encryption.conftest import (
    READER,
    Protected,
    assert_plaintext,
    new_keys,
    protection,
    sample_artifact,
)
from tests.tenancy.world import acting_as


def envelopes(protected: Protected) -> list[str]:
    texts = []
    for table in ("artifact", "execution", "context"):
        texts += [
            row[5]
            for row in protected.raw_rows(table)
            if isinstance(row[5], str) and row[5].startswith("lineagedb:enc:")
        ]
    return texts


def registered(protected: Protected) -> list[str]:
    with protected.engine.connect() as connection:
        return encryption.registered_keys(connection)


def test_rotate_reencrypts_every_value_in_batches_and_every_value_reads_back(fresh_protected: Protected) -> None:
    protected = fresh_protected
    store = protected.store
    old = [sample_artifact(store) for _ in range(3)]
    context_type = store.put_context_type(svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="enc.Run")))
    context = mlmd.Context(type_id=context_type.type_id, name="run-1")
    context.custom_properties["deploy_token"].string_value = "context-secret"
    [context_id] = store.put_contexts(svc.PutContextsRequest(contexts=[context])).context_ids
    under_k1 = len(envelopes(protected))
    assert under_k1 == 3 * 7 + 1

    # A new active key (k1 kept to read older values), as after `lineagedb keys generate` and a restart.
    protected.use("k2", {**protected.keys, **new_keys("k2")})
    new = sample_artifact(store)
    report = encryption.rotate(protected.database, protected.database.protection.keyring, property_aad, batch_size=4)
    assert report.rotated == under_k1
    assert report.batches >= under_k1 // 4
    assert (report.changed_meanwhile, report.failed, report.remaining) == (0, {}, {})
    stored = envelopes(protected)
    assert len(stored) == under_k1 + 7 and all(text.startswith("lineagedb:enc:v1:k2:") for text in stored)
    assert registered(protected) == ["k1", "k2"]  # forgotten only once a server starts without k1

    # A server with only k2: the check finds nothing left under k1 and forgets it; everything reads back.
    protected.use("k2", {"k2": protected.keys["k2"]})
    encryption.check_database_keys(protected.engine, protected.database.protection.keyring, protected.url)
    assert registered(protected) == ["k2"]
    with acting_as(READER):
        for sample in [*old, new]:
            [artifact] = store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[sample.node_id])).artifacts
            assert_plaintext(artifact, sample)
        [read] = store.get_contexts_by_id(svc.GetContextsByIDRequest(context_ids=[context_id])).contexts
        assert read.custom_properties["deploy_token"].string_value == "context-secret"

    # Rotating again changes nothing.
    again = encryption.rotate(protected.database, protected.database.protection.keyring, property_aad)
    assert (again.rotated, again.remaining) == (0, {})


def test_rotate_counts_values_it_cannot_decrypt_and_goes_on(fresh_protected: Protected) -> None:
    protected = fresh_protected
    first, second = sample_artifact(protected.store), sample_artifact(protected.store)
    table = protected.database.schema.artifact_property
    moved = protected.raw_values("artifact", first.node_id)[(True, "db_password")][2]
    with protected.engine.begin() as connection:  # a ciphertext copied into another row
        connection.execute(
            sa.update(table)
            .where(table.c.artifact_id == second.node_id, table.c.name == "db_password")
            .values(string_value=moved)
        )
    protected.use("k2", {**protected.keys, **new_keys("k2")})
    report = encryption.rotate(protected.database, protected.database.protection.keyring, property_aad, batch_size=3)
    assert report.rotated == 2 * 7 - 1
    assert sum(report.failed.values()) == 1 and all("k1" in reason for reason in report.failed)
    assert report.remaining == {"k1": 1}


def test_a_key_with_other_bytes_under_a_registered_id_refuses_startup(fresh_protected: Protected) -> None:
    sample_artifact(fresh_protected.store)
    impostor = protection({"k1": os.urandom(32)}, "k1")
    with pytest.raises(errors.FailedPreconditionError, match="'k1' is not the key"):
        encryption.check_database_keys(fresh_protected.engine, impostor.keyring, fresh_protected.url)


def test_a_missing_key_the_database_holds_values_under_refuses_startup(fresh_protected: Protected) -> None:
    sample_artifact(fresh_protected.store)
    other = protection(new_keys("k9"), "k9")
    with pytest.raises(errors.FailedPreconditionError, match="under key 'k1', which is not in the configured key set"):
        encryption.check_database_keys(fresh_protected.engine, other.keyring, fresh_protected.url)
    with pytest.raises(errors.FailedPreconditionError, match="no encryption keys are configured"):
        encryption.check_database_keys(fresh_protected.engine, None, fresh_protected.url)
    assert registered(fresh_protected) == ["k1"]  # nothing registered or forgotten by a refused start
