"""ops.signalled: what a signal handler may do without taking a lock the interrupted main thread
holds, and the main thread still seeing the request within POLL_S."""

from __future__ import annotations

import threading
import time

from lineagedb.ops.signalled import POLL_S, SignalledEvent


def test_a_handler_does_not_wait_for_the_lock_an_interrupted_wait_holds() -> None:
    """A handler runs between the main thread's bytecodes, possibly inside Event.wait while it
    holds the Event's lock; `set_from_signal` there must return (Event.set would never)."""
    event = SignalledEvent()
    returned = threading.Event()

    def interrupted_wait() -> None:
        with event._event._cond:  # held as Event.wait holds it, around its own checks
            event.set_from_signal()
        returned.set()

    threading.Thread(target=interrupted_wait, daemon=True).start()
    assert returned.wait(5)
    assert event.is_set()


def test_a_waiting_loop_sees_a_signalled_request_without_being_woken() -> None:
    """Nothing wakes the wait for a handler's request: the loop sees it at its next poll."""
    event = SignalledEvent()

    def main_loop() -> None:  # as lineagedb.server.serve waits
        while not event.wait(timeout=1.0):
            pass

    loop = threading.Thread(target=main_loop, daemon=True)
    loop.start()
    time.sleep(POLL_S / 4)
    event.set_from_signal()
    loop.join(5)
    assert not loop.is_alive()


def test_another_threads_set_wakes_the_wait_and_a_reload_is_taken_once() -> None:
    event = SignalledEvent()
    threading.Timer(0.05, event.set).start()
    assert event.wait(timeout=5.0)
    assert event.take() and not event.take() and not event.is_set()
    event.set_from_signal()
    assert event.take() and not event.is_set()
