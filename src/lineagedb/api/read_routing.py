"""Read replicas at the transport edge: which calls may read a replica, and the write positions
that travel with calls (store.replicas holds the routing itself).

* Every call that may write ends with trailing metadata `lineagedb-lsn: <decimal WAL
  position>` once a transaction of it has committed. A client that sends the largest value
  it has received back as request metadata `lineagedb-lsn` reads its own writes on every
  server of the same primary (LineageDB's Python client does).
* A call without the entry is read as if it had sent the latest write position of its
  address (IP, not port: a reconnecting client or another process on the same host is
  covered too; behind a proxy or NAT every client shares one, which only sends more reads
  to the primary). Per server process: see the README for what a load balancer needs.
* A read that fails on a replica (connection lost, recovery conflict, timeout, pool full)
  runs again on the primary; the replica rests until the monitor finds it answering.

Placed innermost (after AbortedRetry), so every attempt routes afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from lineagedb import errors
from lineagedb.api.forwarding import peer_of
from lineagedb.api.method_table import METHOD_PERMISSIONS, Permission
from lineagedb.api.wrapping import UnaryWrapper, unary_handler
from lineagedb.store.replicas import CURRENT_ROUTE, REPLICA_FAILED, CallRoute, ReplicaSet

LSN_METADATA = "lineagedb-lsn"
_MAX_LSN = 2**64 - 1

# Read-only RPCs: every method the permission table lets a reader call.
READ_METHODS = frozenset(method for method, permission in METHOD_PERMISSIONS.items() if permission is Permission.READ)
# A replica's failure these stand for is not the caller's: the read runs again on the primary.
_REPLICA_ERRORS = (
    errors.UnavailableError,
    errors.AbortedError,  # e.g. canceled by a conflict with recovery (SQLSTATE 40001 on a standby)
    errors.DeadlineExceededError,
    errors.ResourceExhaustedError,
    errors.InternalError,  # e.g. a statement a standby refuses (25006: read-only transaction)
)
# ... and these also rest the replica until a probe finds it answering again.
_REPLICA_DOWN = (errors.UnavailableError, errors.DeadlineExceededError)


def caller_lsn(context: grpc.ServicerContext) -> int | None:
    """The write position the caller sent, or None if it sent none."""
    found: int | None = None
    for key, value in context.invocation_metadata() or ():
        if key != LSN_METADATA:
            continue
        text = value if isinstance(value, str) else ""
        if not text.isascii() or not text.isdigit() or len(text) > 20 or int(text) > _MAX_LSN:
            raise errors.InvalidArgumentError(
                f"{LSN_METADATA} metadata must be a WAL position as a decimal number, as the server sent it"
            )
        found = int(text) if found is None else max(found, int(text))
    return found


def peer_address(context: grpc.ServicerContext) -> str:
    """The caller's host: ipv4:10.0.0.1:5678 -> ipv4:10.0.0.1, ipv6:[::1]:5678 -> ipv6:[::1]."""
    peer = peer_of(context)
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer


class ReadRouting(UnaryWrapper):
    def __init__(self, replicas: ReplicaSet) -> None:
        super().__init__()
        self.replicas = replicas

    def applies(self, method: str) -> bool:
        return not method.startswith("/grpc.")

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        replicas = self.replicas
        read_only = method in READ_METHODS

        def run(route: CallRoute, request: Any, context: grpc.ServicerContext) -> Any:
            token = CURRENT_ROUTE.set(route)
            try:
                return inner(request, context)
            finally:
                CURRENT_ROUTE.reset(token)

        def routed_read(request: Any, context: grpc.ServicerContext) -> Any:
            sent = caller_lsn(context)
            min_lsn = sent if sent is not None else replicas.peer_lsn(peer_address(context))
            route = CallRoute(replicas, min_lsn, read_only=True)
            try:
                return run(route, request, context)
            except _REPLICA_ERRORS as error:
                if route.replica is None:
                    raise
                if isinstance(error, _REPLICA_DOWN):
                    replicas.mark_failed(route.replica, error)
                again = CallRoute(replicas, min_lsn, read_only=True, primary_only=True, reason=REPLICA_FAILED)
                return run(again, request, context)

        def routed_write(request: Any, context: grpc.ServicerContext) -> Any:
            caller_lsn(context)  # a malformed entry is refused whatever the method
            route = CallRoute(replicas)
            try:
                return run(route, request, context)
            finally:
                if route.commit_lsn is not None:
                    replicas.note_peer_write(peer_address(context), route.commit_lsn)
                    context.set_trailing_metadata(((LSN_METADATA, str(route.commit_lsn)),))

        behavior: Callable[[Any, grpc.ServicerContext], Any] = routed_read if read_only else routed_write
        return unary_handler(handler, behavior)
