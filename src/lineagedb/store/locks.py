"""Named locks that serialize work no unique constraint can protect.

MLMD's schema has no unique key on a type's identity (kind, name, version), and
creating the schema is not idempotent, so concurrent processes could create a type
twice or race on an empty database. We take a named lock first:
* PostgreSQL: a transaction-scoped advisory lock (released at COMMIT/ROLLBACK);
* MySQL/MariaDB: GET_LOCK, a session lock we release once the transaction ends;
* SQLite: nothing to do; every write transaction starts with BEGIN IMMEDIATE,
  which already serializes writers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import sqlalchemy as sa

from lineagedb import errors
from lineagedb.store import galera

LOCK_TIMEOUT_S = 30

# The writers' lock: every write transaction holds it shared, a transaction that deletes
# nodes holds it exclusively. A writer checks that the nodes it links to exist and then
# inserts its events and links; MLMD's schema has no foreign keys, so without this a
# deletion committing in between would leave the new rows pointing at nothing. Taken at
# BEGIN: PostgreSQL an advisory lock folded into BEGIN's round trip (store.engine),
# MySQL/MariaDB a share or exclusive lock of MLMDEnv's single row; SQLite needs none
# (BEGIN IMMEDIATE serializes writers). Deletions are batches of a few hundred nodes, so
# writers wait for one batch at most.
WRITERS_KEY = int.from_bytes(hashlib.sha256(b"lineagedb:writers").digest()[:8], "big", signed=True)


# Set while a write transaction opens whose first statement takes MLMDEnv's row exclusively
# (a type write on MySQL/MariaDB: UnitOfWork.lock, see service.types.put_type_record): the
# share lock at BEGIN would only be upgraded one statement later, a round trip for nothing
# (and two creators holding it shared deadlocked on the upgrade).
_ENV_EXCLUSIVE_FIRST: ContextVar[bool] = ContextVar("lineagedb_env_exclusive_first", default=False)


@contextmanager
def env_locked_exclusively_first() -> Iterator[None]:
    """Open write transactions in here only if their first statement is UnitOfWork.lock."""
    token = _ENV_EXCLUSIVE_FIRST.set(True)
    try:
        yield
    finally:
        _ENV_EXCLUSIVE_FIRST.reset(token)


def hold_writers_lock(connection: sa.Connection, mlmd_env: sa.Table, exclusive: bool) -> None:
    """MySQL/MariaDB: take the writers' lock at the start of a write transaction (on a
    Galera node, a row write the cluster certifies: store.galera)."""
    if galera.is_galera(connection):
        galera.hold_writers_guard(connection, exclusive)
        return
    if not exclusive and _ENV_EXCLUSIVE_FIRST.get():
        return  # the transaction's first statement locks the row exclusively
    statement = sa.select(mlmd_env.c.schema_version).with_for_update(read=not exclusive)
    connection.execute(statement)


def _digest(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def advisory_key(name: str) -> int:
    """PostgreSQL: the advisory lock key of the named lock `name`."""
    return int.from_bytes(_digest(name)[:8], "big", signed=True)


def acquire(connection: sa.Connection, name: str, timeout_s: int = LOCK_TIMEOUT_S) -> Callable[[], None] | None:
    """Take the lock `name`; returns how to release it early, or None if it ends with the transaction."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(name)})
        return None
    if dialect in ("mysql", "mariadb"):
        lock_name = "lineagedb:" + _digest(name).hex()[:48]  # GET_LOCK names are limited to 64 characters
        got = connection.execute(sa.text("SELECT GET_LOCK(:name, :timeout)"), {"name": lock_name, "timeout": timeout_s})
        if got.scalar() != 1:
            raise errors.AbortedError("timed out waiting for a concurrent writer; retry the call")

        def release() -> None:
            connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": lock_name})

        return release
    return None
