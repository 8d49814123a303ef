"""`lineagedb audit verify|history|query|export|prune` and the audit key's loading."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TextIO

import sqlalchemy as sa

from lineagedb import errors
from lineagedb.ops.database import parse_url, password_from_environment, with_password
from lineagedb.store import audit_log, audit_store
from lineagedb.store.audit_log import AuditLog
from lineagedb.store.audit_store import AuditQuery
from lineagedb.store.bootstrap import AUDIT_REVISION, inspect_schema, upgrade_command
from lineagedb.store.engine import PoolSettings, create_engine


def load_key(key_file: str | None, environ: Mapping[str, str] = os.environ) -> bytes | None:
    """The audit key from a file, else from LINEAGEDB_AUDIT_KEY; None: the audit log is off."""
    if key_file:
        try:
            with open(key_file, "rb") as handle:
                key = handle.read().strip()
        except OSError as error:
            raise errors.FailedPreconditionError(
                f"cannot read the audit key file {key_file}: {error.strerror or error}"
            ) from error
        if not key:
            raise errors.FailedPreconditionError(f"the audit key file {key_file} is empty")
    else:
        key = environ.get(audit_log.KEY_ENV, "").encode()
        if not key:
            return None
    if len(key) < audit_log.MIN_KEY_BYTES:
        raise errors.FailedPreconditionError(f"the audit key must be at least {audit_log.MIN_KEY_BYTES} bytes")
    return key


def required_key(key_file: str | None) -> bytes:
    key = load_key(key_file)
    if key is None:
        raise errors.FailedPreconditionError(
            f"the audit key is needed: --audit-key-file FILE or {audit_log.KEY_ENV} (the key the servers use)"
        )
    return key


parse_node = audit_log.parse_node  # 'artifact:5' -> (1, 5), as the AuditService reads it


def parse_time(text: str) -> int:
    """An ISO date or time (UTC unless it says otherwise) as milliseconds since the epoch."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise errors.InvalidArgumentError(
            f"not an ISO date or time: {text!r} (e.g. 2026-01-31 or 2026-01-31T12:00)"
        ) from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


@contextmanager
def _connected(database_url: str, write: bool = False) -> Iterator[sa.Connection]:
    """A connection to a database that has the audit log's tables, disposed of after.

    Reads (verify, history, query, export) see one snapshot, so records and chain heads
    that servers write meanwhile do not look like tampering (PostgreSQL would read each
    statement at READ COMMITTED), and on SQLite they take no write lock (BEGIN IMMEDIATE
    would hold off every server's writes for as long as a verify or an export runs)."""
    engine = _engine(database_url)
    try:
        with engine.connect() as connection:
            connection.info["lineagedb_write"] = write  # SQLite: BEGIN IMMEDIATE only to write
            if not write and connection.dialect.name in ("postgresql", "mysql", "mariadb"):
                connection.execution_options(isolation_level="REPEATABLE READ")
            yield connection
    finally:
        engine.dispose()


def _engine(database_url: str) -> sa.Engine:
    url = with_password(parse_url(database_url), password_from_environment(None))  # as the other commands
    engine = create_engine(url, PoolSettings(size=1, max_overflow=0, timeout_s=30))
    with engine.connect() as connection:
        connection.info["lineagedb_write"] = False
        state = inspect_schema(connection)
    if state.revision is None or state.revision < AUDIT_REVISION:
        engine.dispose()
        raise errors.FailedPreconditionError(
            f"this database has no audit log tables (schema revision {AUDIT_REVISION}); run: "
            + upgrade_command(engine.url.render_as_string(hide_password=True))
        )
    return engine


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")


def verify(database_url: str, key_file: str | None, out: TextIO = sys.stdout) -> int:
    key = required_key(key_file)
    with _connected(database_url) as connection:
        result = audit_store.verify(connection, key)
    if result.ok:
        print(f"ok: {result.records} records in {result.chains} chains verify", file=out)
        return 0
    first = result.findings[0]
    print(f"FAILED: {first.problem}: {first.message}", file=out)
    for finding in result.findings[1:]:
        print(f"  also {finding.problem}: {finding.message}", file=out)
    print(f"{result.records} records in {result.chains} chains checked", file=out)
    return 1


def _record_json(row: Mapping[str, Any]) -> dict[str, Any]:
    record = {key: row[key] for key in ("id", "chain", "seq", "kind", "principal", "namespace", "method", "peer")}
    record.update(
        time=_iso(int(row["time_ms"])),
        time_ms=int(row["time_ms"]),
        outcome=row["outcome"],
        request_sha256=row["request_digest"],
        detail=json.loads(row["detail"]),
        mac=row["mac"],
    )
    return record


def query(
    database_url: str,
    q: audit_store.AuditQuery,
    output_format: str,
    out: TextIO = sys.stdout,
) -> int:
    """Records matching `q` as a table, a JSON array, or JSON Lines (for a SIEM: every
    record with its chain, sequence and MAC, so the copy can be verified later)."""
    with _connected(database_url) as connection:
        if output_format == "jsonl":
            # All of it, in pages: an export may be large.
            after = q.after_id
            while True:
                rows = audit_store.query(connection, replace(q, after_id=after, limit=audit_store.BATCH))
                for row in rows:
                    print(json.dumps(_record_json(row), ensure_ascii=False), file=out)
                if len(rows) < audit_store.BATCH:
                    return 0
                after = rows[-1]["id"]
        rows = audit_store.query(connection, q)
    if output_format == "json":
        json.dump([_record_json(row) for row in rows], out, indent=1, ensure_ascii=False)
        print(file=out)
        return 0
    _table(
        out,
        [_summary(row) for row in rows],
        ("id", "time", "kind", "principal", "namespace", "method", "outcome", "what"),
    )
    return 0


def _summary(row: Mapping[str, Any]) -> dict[str, str]:
    detail = json.loads(row["detail"])
    parts = [
        f"{verb} {kind} {_ids(ids)}" for verb in ("created", "updated") for kind, ids in detail.get(verb, {}).items()
    ]
    parts += [f"{len(ends)} {kind}" for kind, ends in detail.get("edges", {}).items()]
    return {
        "id": str(row["id"]),
        "time": _iso(int(row["time_ms"])),
        "kind": row["kind"],
        "principal": row["principal"],
        "namespace": row["namespace"],
        "method": row["method"].rsplit("/", 1)[-1],
        "outcome": row["outcome"],
        "what": "; ".join(parts),
    }


def _ids(ids: Sequence[int]) -> str:
    return ",".join(str(i) for i in ids[:5]) + (f",... ({len(ids)})" if len(ids) > 5 else "")


def _table(out: TextIO, rows: list[dict[str, str]], columns: Sequence[str]) -> None:
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip(), file=out)
    for row in rows:
        print("  ".join(_printable(row[c]).ljust(widths[c]) for c in columns).rstrip(), file=out)


def _printable(text: str) -> str:
    # Principals and values come from callers: no terminal control characters.
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def history(database_url: str, node_text: str, output_format: str, out: TextIO = sys.stdout) -> int:
    node = parse_node(node_text)
    with _connected(database_url) as connection:
        entries = audit_store.history(connection, node)
    if output_format == "json":
        json.dump(
            [
                {
                    "id": e["id"],
                    "time": _iso(int(e["time_ms"])),
                    "principal": e["principal"],
                    "method": e["method"],
                    "created": e["created"],
                    "changes": e["changes"],
                }
                for e in entries
            ],
            out,
            indent=1,
            ensure_ascii=False,
        )
        print(file=out)
        return 0
    if not entries:
        print(f"no audit records name {node_text}", file=out)
    for entry in entries:
        what = "created" if entry["created"] else "updated"
        print(
            f"{_iso(int(entry['time_ms']))}  {_printable(entry['principal'])}  "
            f"{entry['method'].rsplit('/', 1)[-1]}  {what}",
            file=out,
        )
        for change in entry["changes"]:
            before = json.dumps(change["from"], ensure_ascii=False)
            after = json.dumps(change["to"], ensure_ascii=False)
            print(f"    {_printable(change['field'])}: {_printable(before)} -> {_printable(after)}", file=out)
    return 0


def prune(database_url: str, key_file: str | None, before: str, out: TextIO = sys.stdout) -> int:
    log = AuditLog(required_key(key_file))
    before_ms = parse_time(before)
    principal = f"{os.environ.get('USER') or 'unknown'}@lineagedb-cli"
    with _connected(database_url, write=True) as connection, connection.begin():
        result = audit_store.prune(connection, log, before_ms, principal)
    log.commit_pending(result["pending"])
    print(f"pruned {result['deleted']} records older than {_iso(before_ms)} from {result['chains']} chains", file=out)
    return 0


__all__ = ["AuditQuery", "history", "load_key", "parse_node", "parse_time", "prune", "query", "verify"]
