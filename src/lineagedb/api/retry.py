"""Server-side retry of calls that lost a race (ABORTED).

Deadlocks, serialization failures and a concurrent first creation of the same
context roll the whole transaction back, so running the call again is safe: no
handler mutates its request. A couple of quick retries here spare every client
the round trip; if the conflict persists, or the attempt itself was slow (a
busy SQLite file already waited out its busy timeout), the client gets ABORTED
and can retry as MLMD's clients do.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import grpc

from lineagedb import errors
from lineagedb.api.wrapping import UnaryWrapper, unary_handler

# Five: on MySQL, eight writers creating the same type at once deadlock on the
# name's gap lock (InnoDB picks one victim per cycle), and with three attempts a
# writer that lost three cycles in a row reached the client as ABORTED.
ATTEMPTS = 5
BASE_DELAY_S = 0.005
SLOW_ATTEMPT_S = 1.0
MIN_REMAINING_S = 0.5


def gives_up(attempt: int, attempts: int, started: float, context: grpc.ServicerContext) -> bool:
    """After an ABORTED attempt that began at `started` (time.monotonic): True when the
    error goes to the client (last attempt, too little of the deadline left, a slow attempt)."""
    if attempt >= attempts:
        return True
    remaining = context.time_remaining()
    if remaining is not None and remaining < MIN_REMAINING_S:
        return True
    return time.monotonic() - started > SLOW_ATTEMPT_S


def backoff_s(attempt: int) -> float:
    """Jittered exponential backoff, so racing writers do not collide again in step."""
    return BASE_DELAY_S * (2**attempt) * random.uniform(0.5, 1.5)


class AbortedRetry(UnaryWrapper):
    def __init__(self, attempts: int = ATTEMPTS, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        self.attempts = attempts
        self.sleep = sleep

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary

        def retrying(request: Any, context: grpc.ServicerContext) -> Any:
            for attempt in range(1, self.attempts + 1):
                started = time.monotonic()
                try:
                    return inner(request, context)
                except errors.AbortedError:
                    if gives_up(attempt, self.attempts, started, context):
                        raise
                    self.sleep(backoff_s(attempt))
            raise AssertionError("unreachable")

        return unary_handler(handler, retrying)
