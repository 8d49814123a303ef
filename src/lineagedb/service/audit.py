"""AuditService: reading the audit log over gRPC (administrators only, see api.method_table)."""

from __future__ import annotations

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import audit_pb2
from lineagedb.store import audit_log, audit_store
from lineagedb.store.unit_of_work import Database

DEFAULT_PAGE = 100
MAX_PAGE = 1000


class AuditQueries:
    def __init__(self, database: Database) -> None:
        self.db = database

    def query_audit(self, request: audit_pb2.QueryAuditRequest) -> audit_pb2.QueryAuditResponse:
        if self.db.audit is None:
            raise errors.FailedPreconditionError(
                f"the audit log is off on this server (it needs --audit-key-file or {audit_log.KEY_ENV})"
            )
        size = request.max_results or DEFAULT_PAGE
        if not 0 < size <= MAX_PAGE:
            raise errors.InvalidArgumentError(f"max_results must be between 1 and {MAX_PAGE}, got {size}")
        query = audit_store.AuditQuery(
            principal=request.principal or None,
            method=request.method or None,
            node=audit_log.parse_node(request.node) if request.node else None,
            since_ms=request.since_ms or None,
            until_ms=request.until_ms or None,
            kind=request.kind or None,
            after_id=_after(request.page_token),
            limit=size + 1,
        )
        with self.db.transaction(write=False) as uow:
            rows = audit_store.query(uow.connection, query)
        response = audit_pb2.QueryAuditResponse()
        for row in rows[:size]:
            response.records.add(
                id=row["id"],
                chain=row["chain"],
                seq=row["seq"],
                time_ms=row["time_ms"],
                kind=row["kind"],
                principal=row["principal"],
                namespace=row["namespace"],
                method=row["method"],
                peer=row["peer"],
                outcome=row["outcome"],
                request_sha256=row["request_digest"],
                detail_json=row["detail"],
                mac=row["mac"],
            )
        if len(rows) > size:
            response.next_page_token = f"after:{rows[size - 1]['id']}"
        return response


def _after(token: str) -> int:
    if not token:
        return 0
    prefix, _, number = token.partition(":")
    if prefix != "after" or not (number.isascii() and number.isdigit()) or len(number) > 18:
        raise errors.InvalidArgumentError("page_token is not one this service returned")
    return int(number)
