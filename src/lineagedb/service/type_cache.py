"""A per-process cache of types, for validating and naming nodes on hot paths.

Why it is safe across processes: MLMD types only ever grow. A type's id, kind
and name never change, and its properties can only be added. A cached entry is
therefore a correct subset of the truth; when a node names a property the cached
entry lacks, or an id the cache has never seen, we reload from the database
before rejecting anything. Entries are filled only after the transaction that
read them commits, so a rolled-back type never enters the cache.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from lineagedb.store.repositories import types as type_repo
from lineagedb.store.repositories.types import TypeRecord
from lineagedb.store.unit_of_work import UnitOfWork


class TypeCache:
    def __init__(self) -> None:
        self._types: dict[int, TypeRecord] = {}
        self._by_identity: dict[tuple[int, str, str | None], int] = {}
        self._lock = threading.Lock()

    def by_identity(self, kind: int, name: str, version: str | None) -> TypeRecord | None:
        """The cached type with this (kind, name, version), if any. May lag other processes."""
        with self._lock:
            type_id = self._by_identity.get((kind, name, version))
            return self._types.get(type_id) if type_id is not None else None

    def remember(self, uow: UnitOfWork, record: TypeRecord) -> None:
        """Cache `record` once `uow` commits."""
        uow.after_commit(lambda: self._store([record]))

    def get_many(self, uow: UnitOfWork, kind: int, ids: Iterable[int], refresh: bool = False) -> dict[int, TypeRecord]:
        """Types of `kind` among `ids`; ids of another kind or unknown are absent."""
        wanted = set(ids)
        with self._lock:
            found = {} if refresh else {i: self._types[i] for i in wanted if i in self._types}
        missing = wanted - found.keys()
        if missing:
            loaded = type_repo.by_ids(uow, kind, missing)
            found.update(loaded)
            if loaded:
                uow.after_commit(lambda: self._store(loaded.values()))
        return {i: record for i, record in found.items() if record.kind == kind}

    def _store(self, records: Iterable[TypeRecord]) -> None:
        with self._lock:
            for record in records:
                self._types[record.id] = record
                self._by_identity[(record.kind, record.name, record.version)] = record.id
