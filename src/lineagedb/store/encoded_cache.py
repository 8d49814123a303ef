"""Serialized messages of rows that have not changed, reused by later reads.

Building a node message in Python (a constructor call, then a map entry per property)
costs about 6 us; parsing the same message from its serialized bytes costs about 1 us,
and a node whose bytes are at hand needs no property rows at all. So node reads
(`repositories.nodes.hydrate`) and lineage answers' events
(`repositories.lineage.to_events`) keep the encoding of what they built, keyed by id, and
reuse it while the row they read is the same as the row it was built from:

* A node's row carries `last_update_time_since_epoch`, which every update moves (LineageDB
  writes `max(now, previous + 1)`; MLMD's C++ store writes its clock), properties included.
  The whole row (type name too) must be equal, so a changed name, state or URI is seen as
  well.
* Events never change once written; one is deleted only with one of its nodes. Its row
  (ends, type, time) must be equal.

What a row cannot show is a change within the millisecond it names: two writes in the same
millisecond (MLMD's store, or a tombstone right after an update) leave equal rows. So only
rows whose time is at least `SETTLED_MS` in the past by this process's clock are kept; a
row written since is built afresh on every read until then. Rows without a time (events
recorded without one by an older writer) are never kept.

Not used where a read depends on the caller: with property encryption configured
(`uow.protection`), whose values are decrypted or redacted per caller. Namespace filtering
happens in the statements that read the rows, before a cached encoding is looked up, so
a caller only ever gets encodings of rows it was allowed to read.

One cache per engine (so per database) and per kind of row, at most `MAX_ENTRIES` each; the
oldest tenth goes when one is full.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

MAX_ENTRIES = 100_000
SETTLED_MS = 2_000


class EncodedCache:
    """id -> (the row it was built from, as a tuple; the message's serialized bytes)."""

    def __init__(self, limit: int = MAX_ENTRIES) -> None:
        self.entries: dict[int, tuple[tuple[Any, ...], bytes]] = {}
        self.limit = limit
        self._lock = threading.Lock()

    def put(self, key: int, row: tuple[Any, ...], data: bytes) -> None:
        with self._lock:
            entries = self.entries
            if len(entries) >= self.limit and key not in entries:
                for old in list(itertools.islice(entries, max(1, self.limit // 10))):
                    del entries[old]
            entries[key] = (row, data)

    def __len__(self) -> int:
        return len(self.entries)


_caches: weakref.WeakKeyDictionary[sa.Engine, dict[str, EncodedCache]] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def for_engine(engine: sa.Engine, name: str) -> EncodedCache:
    """The cache named `name` (a node kind, "event") of the database behind `engine`."""
    per_engine = _caches.get(engine)
    if per_engine is None:
        with _registry_lock:
            per_engine = _caches.setdefault(engine, {})
    cache = per_engine.get(name)
    if cache is None:
        with _registry_lock:
            cache = per_engine.setdefault(name, EncodedCache())
    return cache


def settled_before() -> int:
    """Rows whose time is at most this (ms since the epoch) may be kept."""
    return int(time.time() * 1000) - SETTLED_MS


def parsed(message_class: Any, encodings: Sequence[bytes | None], into: Any | None) -> list[Any]:
    """Messages parsed from their encodings, in order (added to `into`, a repeated field of
    a response, when given). Every encoding is set by then; None only types the lists the
    callers fill in two passes."""
    if into is None:
        return [message_class.FromString(data) for data in encodings]
    add = into.add
    messages = []
    for data in encodings:
        message = add()
        message.MergeFromString(data)
        messages.append(message)
    return messages
