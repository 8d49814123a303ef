"""Locks a MariaDB Galera cluster certifies.

Galera replicates row changes, not locks: `GET_LOCK` and `SELECT ... FOR UPDATE` / `LOCK IN
SHARE MODE` hold on the node that took them, and a transaction on another node never waits
for them. What the cluster does see are the keys of the rows a transaction writes (and, for
a row written with a foreign key, a reference key on its parent row): two transactions on
different nodes whose keys conflict cannot both commit; the one certified second is rolled
back with a deadlock error (1213), which the store classifies as ABORTED and the server
retries (api.retry). So on a Galera node (detected per connection, `wsrep_on`):

* a named lock (type creation, store.unit_of_work.UnitOfWork.lock) writes the lock's row in
  `lineagedb_galera_claim` (INSERT ... ON DUPLICATE KEY UPDATE): creators of the same type on
  two nodes write the same key; on one node the row lock serializes them as before;
* the writers' lock (store.locks.WRITERS_KEY) is a foreign key. Every write transaction moves
  its connection's row in `lineagedb_galera_slot` from one guard row to the other; the foreign
  key check puts a reference key on a guard row into its write set (and locks that row
  shared on its node). A deletion updates both guard rows: it conflicts with every writer
  in flight on any node, while writers, each on its own slot row, never conflict with each
  other. One statement per transaction either way, as the row locks it replaces.

Every connection also reads causally (`wsrep_sync_wait = 1`): a read waits until its node
has applied every write the cluster committed before it, so a client sees its own writes
whichever node its next call reaches.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

# connection.info keys: this connection is to a Galera node; its slot row's key.
GALERA = "lineagedb_galera"
SLOT = "lineagedb_galera_slot"
SLOT_TABLE = "lineagedb_galera_slot"
# The tables are created by migration 0008 (MySQL/MariaDB only); two guard rows, 1 and 2.
# Statements written as SQL text once: they carry only bound values.
CLAIM = sa.text(
    "INSERT INTO lineagedb_galera_claim (name_hash, claims) VALUES (:h, 1) ON DUPLICATE KEY UPDATE claims = claims + 1"
)
_WRITER = sa.text(
    "INSERT INTO lineagedb_galera_slot (slot, guard) VALUES (:slot, 1) ON DUPLICATE KEY UPDATE guard = 3 - guard"
)
_DELETER = sa.text("UPDATE lineagedb_galera_guard SET epoch = epoch + 1")


class _Slots:
    """Slot keys of this process: one per open connection, reused once it closes, so the
    slot table holds at most the peak number of connections per server start."""

    def __init__(self) -> None:
        self._base = secrets.randbits(40) << 20
        self._counter = itertools.count(1)
        self._free: list[int] = []
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            return self._free.pop() if self._free else self._base + next(self._counter)

    def give_back(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)


_SLOTS = _Slots()


def watch(engine: sa.Engine) -> None:
    """MySQL/MariaDB engines: mark connections to a Galera node when they open."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")
            row = cursor.fetchone()
            if row is None or str(row[1]).upper() != "ON":
                return
            cursor.execute("SET SESSION wsrep_sync_wait = 1")
        finally:
            cursor.close()
        record.info[GALERA] = True
        record.info[SLOT] = _SLOTS.take()

    @event.listens_for(engine, "close")
    def _on_close(_dbapi_connection: Any, record: Any) -> None:
        slot = record.info.pop(SLOT, None)
        if slot is not None:
            _SLOTS.give_back(slot)


def is_galera(connection: sa.Connection) -> bool:
    return bool(connection.info.get(GALERA))


def claim_parameters(name: str) -> dict[str, bytes]:
    """CLAIM's parameters for the named lock `name` (held until the transaction ends)."""
    return {"h": hashlib.sha256(name.encode()).digest()[:16]}


def hold_writers_guard(connection: sa.Connection, exclusive: bool) -> None:
    """The writers' lock on a Galera node (see the module docstring)."""
    if exclusive:
        connection.execute(_DELETER)
    else:
        connection.execute(_WRITER, {"slot": connection.info[SLOT]})
