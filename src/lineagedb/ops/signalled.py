"""An event that a signal handler may set: a stop or a reload asked for by a signal (or, for a
stop, by another thread), waited for by the main thread.

A Python signal handler runs in the main thread, between two bytecodes of whatever the main
thread was doing, and that may be `threading.Event.wait` itself: it holds the Event's lock
around its own checks, before it blocks and after it wakes. A handler that calls `Event.set()`
there waits for a lock its own thread holds, forever (CI saw it: the supervisor of two workers
logged the SIGTERM and never stopped them). The same goes for any lock the handler's work
takes that the main thread may hold, a reload's own lock included when a second SIGHUP arrives
during the first one's reload. So a handler only records the request in an attribute (one
store, no lock), and the main thread, waiting, looks at it every POLL_S and does the work
itself; another thread's `set()` (a fatal database error found in the background) wakes it at
once.
"""

from __future__ import annotations

import threading

# How long a signal's request can wait for the main thread to notice it.
POLL_S = 0.2


class SignalledEvent:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._signalled = False

    def set_from_signal(self) -> None:
        """From a signal handler: takes no lock."""
        self._signalled = True

    def set(self) -> None:
        """From another thread: wakes the waiting main thread now."""
        self._event.set()

    def is_set(self) -> bool:
        return self._signalled or self._event.is_set()

    def clear(self) -> None:
        self._signalled = False
        self._event.clear()

    def take(self) -> bool:
        """Whether it was set, clearing it (a request to act on once: a reload)."""
        was_set = self.is_set()
        if was_set:
            self.clear()
        return was_set

    def wait(self, timeout: float) -> bool:
        """Whether it is set, after waiting for that at most `timeout` seconds (or POLL_S, if
        shorter: the caller waits in a loop)."""
        if not self.is_set():
            self._event.wait(min(timeout, POLL_S))
        return self.is_set()
