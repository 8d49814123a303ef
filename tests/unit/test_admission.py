"""store.admission: how many threads are inside a SQLite transaction at once."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lineagedb import errors
from lineagedb.store import admission
from lineagedb.store.admission import Admission


def _run(*targets: Callable[[], None]) -> None:
    """Run each target on its own thread; an exception in any of them fails the test."""
    failures: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as error:  # handed to the test's thread
            failures.append(error)

    threads = [threading.Thread(target=guarded, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a thread is stuck at the gate"
    assert not failures, failures


def test_at_most_two_readers_are_inside_while_they_get_a_place() -> None:
    gate = Admission(write_wait_s=5)
    inside, most = 0, 0
    lock = threading.Lock()

    def read() -> None:
        nonlocal inside, most
        with gate.admitted(write=False):
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.02)  # far shorter than READ_WAIT_S: every reader gets a place in time
            with lock:
                inside -= 1

    _run(*[read] * 4)
    assert most == admission.SQLITE_READERS


@contextlib.contextmanager
def _held_by_another_thread(gate: Admission, write: bool) -> Iterator[threading.Event]:
    """Another thread inside the gate (a read or a write) until the block ends; yields the
    event that lets it out."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with gate.admitted(write=write):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        yield release
    finally:
        release.set()
        holder.join(10)


def test_a_reader_that_waited_too_long_goes_in_anyway() -> None:
    gate = Admission(write_wait_s=5, readers=1)
    with _held_by_another_thread(gate, write=False) as done:
        began = time.monotonic()
        with gate.admitted(write=False):  # no place: in after READ_WAIT_S, not after the long read
            assert not done.is_set()
        assert time.monotonic() - began >= admission.READ_WAIT_S * 0.9


def test_one_writer_at_a_time_and_a_writer_kept_waiting_is_aborted() -> None:
    gate = Admission(write_wait_s=0.2)
    with _held_by_another_thread(gate, write=True), pytest.raises(errors.AbortedError), gate.admitted(write=True):
        pass
    with gate.admitted(write=True):  # free again, and the refused writer left nothing held
        pass


def test_nested_transactions_pass_the_gate_they_are_already_behind() -> None:
    # A thread inside a read opens a write, and one inside a write opens reads, while other
    # threads hold every place: a second gate is never waited for, so nothing deadlocks.
    gate = Admission(write_wait_s=1, readers=1)
    outer_in, others_waiting = threading.Barrier(2), threading.Event()

    def read_then_write() -> None:
        with gate.admitted(write=False):
            outer_in.wait(5)
            others_waiting.wait(5)
            with gate.admitted(write=True), gate.admitted(write=False):
                pass

    def write_then_read() -> None:
        with gate.admitted(write=True):
            outer_in.wait(5)
            others_waiting.wait(5)
            with gate.admitted(write=False), gate.admitted(write=True):
                pass

    def release_soon() -> None:
        time.sleep(0.05)
        others_waiting.set()

    _run(read_then_write, write_then_read, release_soon)
    with gate.admitted(write=True), gate.admitted(write=False):
        pass  # every place was given back
