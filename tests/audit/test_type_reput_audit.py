"""A re-put of an unchanged type is a successful write RPC: with the audit log on it gets its
record like any other, even when the server answers it from its type cache."""

from __future__ import annotations

from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.unit_of_work import Database
from tests.audit.conftest import records
from tests.audit.test_audit_log import _types


# A cached re-put is answered without a write transaction, which would record nothing;
# service.types.unchanged_put_id leaves it to the write path when the audit log is on.
def test_an_unchanged_type_put_again_is_recorded(audited_store: MetadataStore, audited_db: Database) -> None:
    first = _types(audited_store)
    again = _types(audited_store)  # answered from the cache (the type is unchanged)
    assert again == first
    found = records(audited_db)
    assert [(r["kind"], r["method"].rsplit("/", 1)[1], r["outcome"]) for r in found] == [
        ("write", "PutArtifactType", "OK"),
        ("write", "PutArtifactType", "OK"),
    ]
