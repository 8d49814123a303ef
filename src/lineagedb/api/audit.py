"""The audit interceptor: who called what, and what came of it (see lineagedb.store.audit_log).

It sits outside the auth interceptor, so it sees refused calls too. Per call it sets
the call's CallContext (method, peer, a SHA-256 of the request bytes as received;
lineagedb.security fills in the principal and namespace once it knows them). A write
that commits gets its record inside its own transaction (the store does that); here,
after the call, a write that ended in an error, a refused read, and with
`--audit-reads all` every read, get a record in a transaction of their own.
Calls refused because the database is unavailable or its connections are all busy are
not recorded: writing a record then would only wait for the same database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from lineagedb import errors
from lineagedb.api.forwarding import peer_of
from lineagedb.api.method_table import Permission, permission_for
from lineagedb.api.status import status_for
from lineagedb.api.wrapping import UnaryWrapper, unary_handler
from lineagedb.store import audit_log
from lineagedb.store.audit_log import CURRENT_CALL, CallContext

log = logging.getLogger("lineagedb.audit")

_REFUSED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
_NOT_RECORDED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
_WRITES = (Permission.WRITE, Permission.WRITE_TYPES)

# Appends one record in a transaction of its own (Database.append_audit).
Append = Callable[[CallContext, str, str], None]


class AuditInterceptor(UnaryWrapper):
    def __init__(self, append: Append, read_audit: str) -> None:
        super().__init__()
        self.append = append
        self.read_audit = read_audit

    def applies(self, method: str) -> bool:
        return permission_for(method) in (*_WRITES, Permission.READ, Permission.ADMIN)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        write = permission_for(method) in _WRITES
        parse = handler.request_deserializer
        after = self._after

        def digesting(payload: bytes) -> tuple[str, Any]:
            # The digest of exactly the bytes received, without serializing the request again.
            return audit_log.request_digest(payload), parse(payload) if parse is not None else payload

        def audited(received: tuple[str, Any], context: grpc.ServicerContext) -> Any:
            digest, request = received
            call = CallContext(method=method, peer=peer_of(context), request_digest=digest)
            token = CURRENT_CALL.set(call)
            try:
                response = inner(request, context)
            except BaseException:
                after(call, write, context.code() or grpc.StatusCode.UNKNOWN, context)
                raise
            finally:
                CURRENT_CALL.reset(token)
            after(call, write, context.code() or grpc.StatusCode.OK, context)
            return response

        return unary_handler(handler, audited, request_deserializer=digesting)

    def _after(self, call: CallContext, write: bool, code: grpc.StatusCode, context: grpc.ServicerContext) -> None:
        if code in _NOT_RECORDED or (write and call.recorded):
            return
        if code == grpc.StatusCode.OK:
            if write or self.read_audit != "all":
                return
            kind = audit_log.READ
        elif code in _REFUSED:
            if not write and self.read_audit == "off":
                return
            kind = audit_log.REFUSED
        else:
            if not write and self.read_audit != "all":
                return
            kind = audit_log.FAILED
        try:
            self.append(call, kind, code.name)
        except Exception as error:  # the call's own outcome must survive any failure to record it
            reason = error.message if isinstance(error, errors.LineageError) else type(error).__name__
            log.error("the audit record of %s (%s) could not be written: %s", call.method, code.name, reason)
            if code == grpc.StatusCode.OK:
                # A read whose record cannot be kept is not answered (--audit-reads all).
                status = status_for(error) if isinstance(error, errors.LineageError) else grpc.StatusCode.UNAVAILABLE
                context.abort(status, "the audit record of this call could not be written; retry")
