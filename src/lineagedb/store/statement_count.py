"""Statements per RPC, for the benchmark (``LINEAGEDB_COUNT_STATEMENTS=FILE``).

On PostgreSQL and MariaDB every statement is a network round trip, so the number of
statements an RPC sends decides its latency more than anything done in Python. With
the variable set, the server counts, per RPC method and per call, what reaches the
driver: SQLAlchemy's statements (``before_cursor_execute``), the driver-direct reads of
store.fast_read and INSERTs of store.bulk_insert (SQLite), BEGIN (explicit on SQLite;
psycopg2 sends it before a transaction's first statement; PyMySQL sends none, MariaDB
opens the transaction implicitly), COMMIT, ROLLBACK and the pool's liveness pings.
psycopg2's ``executemany`` is one round trip per row and is counted so; PyMySQL rewrites
an INSERT's ``executemany`` into one multi-row statement. At shutdown the counts are written to FILE as JSON:
``{method: {"calls": n, "per_call": {"statements": calls_with_that_count}, "kinds": {...},
"example": [sql, ...]}}``. Counting is off (nothing is installed) without the variable.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from lineagedb.store.engine import commit_skipped

ENV = "LINEAGEDB_COUNT_STATEMENTS"

# The statements of the current call; None outside a counted call.
_CURRENT: ContextVar[_Call | None] = ContextVar("lineagedb_statement_call", default=None)


class _Call:
    __slots__ = ("kinds", "sql")

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.sql: list[str] = []

    def add(self, kind: str, sql: str, times: int = 1) -> None:
        self.kinds[kind] += times
        self.sql.append(sql if times == 1 else f"{sql}  [x{times}]")


class StatementCounter:
    """Counts per RPC method; `begin_call`/`end_call` bracket one call (see ops.interceptors)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._methods: dict[str, dict[str, Any]] = {}

    def begin_call(self) -> object:
        return _CURRENT.set(_Call())

    def end_call(self, method: str, token: object) -> None:
        call = _CURRENT.get()
        _CURRENT.reset(token)  # type: ignore[arg-type]
        if call is None:
            return
        total = sum(call.kinds.values())
        with self._lock:
            record = self._methods.setdefault(
                method, {"calls": 0, "per_call": Counter(), "kinds": Counter(), "examples": {}}
            )
            record["calls"] += 1
            record["per_call"][total] += 1
            record["kinds"].update(call.kinds)
            # One example call per distinct count: what a new type costs differs from an existing one.
            record["examples"].setdefault(total, call.sql)

    def write(self) -> None:
        with self._lock:
            doc = {
                method: {
                    "calls": r["calls"],
                    "per_call": {str(k): v for k, v in sorted(r["per_call"].items())},
                    "kinds": dict(r["kinds"]),
                    "examples": {str(k): v for k, v in sorted(r["examples"].items())},
                }
                for method, r in sorted(self._methods.items())
            }
        self.path.write_text(json.dumps(doc, indent=1) + "\n")


def count_driver_statement(sql: str) -> None:
    """A statement sent on the driver's own cursor (store.fast_read)."""
    call = _CURRENT.get()
    if call is not None:
        call.add("driver", sql)


def from_environment(engine: sa.Engine) -> StatementCounter | None:
    """A counter installed on `engine` when LINEAGEDB_COUNT_STATEMENTS names a file, else None."""
    target = os.environ.get(ENV)
    if not target:
        return None
    install(engine)
    return StatementCounter(Path(target))


def install(engine: sa.Engine) -> None:
    dialect = engine.dialect.name

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(_conn, _cursor, statement, parameters, _context, executemany):  # type: ignore[no-untyped-def]
        call = _CURRENT.get()
        if call is None:
            return
        rows = len(parameters) if executemany and isinstance(parameters, (list, tuple)) else 1
        # psycopg2's executemany sends one statement per row; sqlite3 runs them in-process and
        # PyMySQL folds an INSERT's rows into one multi-row statement.
        times = rows if executemany and dialect == "postgresql" else 1
        call.add("sql", " ".join(statement.split())[:300], times)

    def autocommit(conn: sa.Connection) -> bool:
        # psycopg2 in autocommit mode (see unit_of_work, engine._fold_begin) sends no BEGIN of its
        # own (a write's goes with its first statement, counted there) and a COMMIT or
        # ROLLBACK only when a transaction is open.
        dbapi = conn.connection.dbapi_connection
        if dialect != "postgresql" or not getattr(dbapi, "autocommit", False):
            return False
        status = getattr(getattr(dbapi, "info", None), "transaction_status", 0)
        return status not in (2, 3)  # libpq: not in a (failed) transaction

    @event.listens_for(engine, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        call = _CURRENT.get()
        dbapi = conn.connection.dbapi_connection
        folded = dialect == "postgresql" and getattr(dbapi, "autocommit", False)
        if call is not None and dialect in ("sqlite", "postgresql") and not folded:
            call.add("begin", "BEGIN")

    @event.listens_for(engine, "commit")
    def _commit(conn):  # type: ignore[no-untyped-def]
        call = _CURRENT.get()
        # A MySQL read that committed each statement with it sends no COMMIT at its end.
        skipped = dialect == "mysql" and commit_skipped(conn.info)
        if call is not None and not autocommit(conn) and not skipped:
            call.add("commit", "COMMIT")

    @event.listens_for(engine, "rollback")
    def _rollback(conn):  # type: ignore[no-untyped-def]
        call = _CURRENT.get()
        if call is not None and not autocommit(conn):
            call.add("rollback", "ROLLBACK")

    ping = engine.dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        call = _CURRENT.get()
        if call is not None:
            call.add("ping", "ping")
        return bool(ping(dbapi_connection))

    engine.dialect.do_ping = counted_ping  # type: ignore[method-assign]
