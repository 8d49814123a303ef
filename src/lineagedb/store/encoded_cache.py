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

A node row is encoded from its second read on (the first only records it): serializing
costs about a sixth of building, which a node read once never earns back. Events are
encoded from their rows directly (store.repositories.lineage.to_events), with no message
built, so they are kept from the first read. Kept encodings are
joined and parsed by one call per response field where the caller passes a `Field`
(lineage answers); elsewhere parsed one by one into the response's repeated field.

The premise is that an id and an equal row name the same content within one database. A
process that empties a database and writes it again under a live engine (a test harness
reusing one database with a fake clock) must call `forget`.

Not used where a read depends on the caller: with property encryption configured
(`uow.protection`), whose values are decrypted or redacted per caller. Namespace filtering
happens in the statements that read the rows, before a cached encoding is looked up, so
a caller only ever gets encodings of rows it was allowed to read.

One cache per engine (so per database) and per kind of row, at most `MAX_ENTRIES` each; the
oldest tenth goes when one is full (about 300 bytes an entry: 30 MB per full cache).
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from google.protobuf.message import Message

MAX_ENTRIES = 100_000
SETTLED_MS = 2_000


class EncodedCache:
    """id -> (the row it was built from, as a tuple; the message's encoding, `delimited`,
    or None for a row read once so far)."""

    def __init__(self, limit: int = MAX_ENTRIES) -> None:
        self.entries: dict[int, tuple[tuple[Any, ...], bytes | None]] = {}
        self.limit = limit
        self._lock = threading.Lock()

    def put(self, key: int, row: tuple[Any, ...], data: bytes | None) -> None:
        self.put_many([(key, (row, data))])

    def put_many(self, items: list[tuple[int, tuple[tuple[Any, ...], bytes | None]]]) -> None:
        """Keep (id, (row, encoding)) pairs (one lock for all)."""
        if not items:
            return
        with self._lock:
            entries = self.entries
            if len(entries) + len(items) > self.limit:
                drop = max(len(entries) + len(items) - self.limit, self.limit // 10)
                for old in list(itertools.islice(entries, drop)):
                    del entries[old]
            entries.update(items)

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


def forget(engine: sa.Engine) -> None:
    """Drop every kept encoding of `engine`'s database: for whoever empties or replaces
    its tables in place under a live engine (a test harness reusing one database), where
    rows written again could equal earlier ones with other properties."""
    with _registry_lock:
        _caches.pop(engine, None)


def settled_before() -> int:
    """Rows whose time is at most this (ms since the epoch) may be kept."""
    return int(time.time() * 1000) - SETTLED_MS


def varint(value: int) -> bytes:
    """The base-128 varint of a non-negative integer (protobuf's lengths and ids)."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def delimited(data: bytes) -> bytes:
    """An encoding as the cache keeps it: its length (a varint), then its bytes, as it
    follows a field's tag inside a message."""
    size = len(data)
    return (_LENGTHS[size] if size < len(_LENGTHS) else varint(size)) + data


# The varints of the lengths most encodings have (a table lookup instead of a loop).
_LENGTHS = [varint(n) for n in range(4096)]


def _body(data: bytes) -> bytes:
    """The encoding inside a `delimited` one."""
    start = 1
    while data[start - 1] & 0x80:
        start += 1
    return data[start:]


@dataclass(frozen=True)
class Field:
    """A repeated message field of a response (its message and field name) to append
    kept encodings to: joined, they are parsed by one call, with no Python object per
    element (a repeated field on the wire is its elements, each after the field's tag)."""

    message: Message
    name: str

    @property
    def repeated(self) -> Any:
        return getattr(self.message, self.name)

    def append(self, encodings: Sequence[bytes]) -> None:
        tag = varint(self.message.DESCRIPTOR.fields_by_name[self.name].number << 3 | 2)
        if encodings:
            self.message.MergeFromString(tag + tag.join(encodings))


def parsed(message_class: Any, encodings: Sequence[bytes], into: Any | None) -> list[Any]:
    """Messages parsed from their (`delimited`) encodings, in order: appended to `into`
    (a repeated field of a response, or a Field) when given. Appended to a Field, they are
    not returned (read them there)."""
    if isinstance(into, Field):
        into.append(encodings)
        return []
    if into is None:
        return [message_class.FromString(_body(data)) for data in encodings]
    add = into.add
    messages = []
    for data in encodings:
        message = add()
        message.MergeFromString(_body(data))
        messages.append(message)
    return messages


def read_through(
    cache: EncodedCache,
    rows: Sequence[tuple[Any, ...]],
    time_column: int,
    build: Callable[[Sequence[tuple[Any, ...]], Any | None], list[Any]],
    message_class: Any,
    into: Any | None,
) -> list[Any]:
    """The messages of `rows` (tuples whose first column is the id), in order: parsed from
    kept encodings where the row is the same, built by `build(rows, into)` otherwise.

    A row is kept once its time (`time_column`) is settled; its encoding only from its
    second read on (the first records the row): serializing costs about a sixth of
    building, which a node read once never earns back. `into` as in `parsed`; where
    nothing is kept, messages are built in place there (appended to a Field's repeated
    field) and returned."""
    field = into if isinstance(into, Field) else None
    target = field.repeated if field is not None else into
    entries = cache.entries
    # Each row's kept encoding (taken now: another thread may replace or drop it later).
    encodings: list[bytes | None] = []
    missing = []
    seen = set()
    for row in rows:
        entry = entries.get(row[0])
        if entry is not None and entry[0] == row:
            data = entry[1]
            if data is not None:
                encodings.append(data)
                continue
            seen.add(row[0])
        missing.append(row)
        encodings.append(None)
    settled = settled_before()
    lengths = _LENGTHS
    if len(missing) == len(rows):  # nothing kept: build in place
        messages = build(rows, target)
        keep = []
        for row, message in zip(rows, messages, strict=True):
            time_ms = row[time_column]
            if time_ms is not None and time_ms <= settled:
                if row[0] in seen:
                    data = message.SerializeToString()
                    data = (lengths[len(data)] if len(data) < len(lengths) else varint(len(data))) + data
                    keep.append((row[0], (row, data)))
                else:
                    keep.append((row[0], (row, None)))
        cache.put_many(keep)
        return messages
    if missing:
        built = {}
        keep = []
        for row, message in zip(missing, build(missing, None), strict=True):
            data = built[row[0]] = delimited(message.SerializeToString())
            time_ms = row[time_column]
            if time_ms is not None and time_ms <= settled:
                keep.append((row[0], (row, data)))
        cache.put_many(keep)
        encodings = [built[row[0]] if data is None else data for row, data in zip(rows, encodings, strict=True)]
    return parsed(message_class, cast(list[bytes], encodings), field or into)
