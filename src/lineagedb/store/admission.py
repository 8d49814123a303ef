"""How many of a process's threads may be inside a SQLite transaction at once.

Python's sqlite3 module lets go of the GIL around every step of a statement (every row),
and takes it back after. With many RPC threads inside SQLite at once, each of those
hand-offs can mean waking another thread and waiting for it: measured at 16 concurrent
clients of GetArtifactsByID(100), the server spent 2.6 ms of CPU per call against 1.4 ms
with at most two readers inside SQLite, and served 390 instead of 610 calls per second.
Writers are one at a time in SQLite anyway; queued on a lock here they are handed the
database as soon as the previous one commits, instead of polling SQLite's busy handler,
whose sleeps grow to 100 ms.

Only a thread's outermost transaction is admitted: a transaction opened inside another
one (an audit record, a nested read) is already in. So a thread holds at most one gate
and never waits for a second one while holding the first: no deadlock between the gates.
Server databases (PostgreSQL, MySQL) run statements in their own processes and are not
gated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from lineagedb import errors

# Two readers: one long read (a large Provenance, an export) does not hold back every
# other read, and the hand-offs stay between two threads.
SQLITE_READERS = 2
# A read waits this long for a place, then goes in anyway: the gate saves CPU, it must not
# make short reads wait for long ones.
READ_WAIT_S = 0.1


class Admission:
    """Gates for read and write transactions (see the module docstring). A writer waits
    as long as SQLite's busy timeout would have, `write_wait_s`, and is then refused with
    the error SQLite's own timeout gives (ABORTED: the server retries it)."""

    def __init__(self, write_wait_s: float, readers: int = SQLITE_READERS) -> None:
        self._readers = threading.BoundedSemaphore(readers)
        self._writer = threading.Lock()
        self._write_wait_s = write_wait_s
        self._inside = threading.local()

    @contextmanager
    def admitted(self, write: bool) -> Iterator[None]:
        if getattr(self._inside, "depth", 0):
            self._inside.depth += 1
            try:
                yield
            finally:
                self._inside.depth -= 1
            return
        if write:
            if not self._writer.acquire(timeout=self._write_wait_s):
                raise errors.AbortedError("the database is busy; retry the call")
            release = self._writer.release
        else:
            release = self._readers.release if self._readers.acquire(timeout=READ_WAIT_S) else _nothing
        self._inside.depth = 1
        try:
            yield
        finally:
            self._inside.depth = 0
            release()


def _nothing() -> None:
    pass
