"""Engines: one pooled engine per database URL, with per-backend connection setup."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from lineagedb.store import db_tls, galera
from lineagedb.store.locks import WRITERS_KEY

log = logging.getLogger(__name__)

# SQLite waits this long for a competing writer before reporting SQLITE_BUSY.
SQLITE_BUSY_TIMEOUT_MS = 5_000

# A pooled PostgreSQL/MariaDB connection idle longer than this is pinged before use. A ping on
# every checkout (pool_pre_ping) was one network round trip per RPC, as much as a statement;
# a connection used moments ago is alive but for a server restart within this window, which
# the call reports as UNAVAILABLE (the pool then drops the connection).
PING_IDLE_S = 2.0

# Statement bounds are re-sent only when the one in force falls outside
# [BOUND_SLACK x time left, time left]; a new one is BOUND_TARGET x time left.
BOUND_SLACK = 0.9
BOUND_TARGET = 0.95

# time.monotonic() by which the current call must be answered (set by the transport edge
# from the client's gRPC deadline). PostgreSQL transactions then get a statement_timeout,
# MariaDB ones a max_statement_time, so the database stops working when the client stops waiting.
STATEMENT_DEADLINE: ContextVar[float | None] = ContextVar("lineagedb_statement_deadline", default=None)


@dataclass(frozen=True)
class PoolSettings:
    size: int = 12
    max_overflow: int = 0
    timeout_s: float = 10.0
    recycle_s: int = 1800


def normalize_url(url: str | URL) -> URL:
    """Pick our drivers for bare backend names (postgresql://, mysql://), and serve
    MariaDB through SQLAlchemy's MySQL dialect: its own `mariadb` dialect differs in
    details our schema relies on (index key lengths), and the whole store speaks to
    MariaDB as MySQL (the protocol and SQL LineageDB uses are the same)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    elif parsed.drivername in ("mysql", "mariadb"):
        parsed = parsed.set(drivername="mysql+pymysql")
    elif parsed.drivername.startswith("mariadb+"):
        parsed = parsed.set(drivername="mysql+" + parsed.drivername.split("+", 1)[1])
    return parsed


def is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def create_engine(url: str | URL, pool: PoolSettings | None = None, connect_timeout_s: int = 10) -> sa.Engine:
    """Create the process-wide engine for `url`.

    SQLite: WAL journal, `synchronous=FULL` (a committed RPC survives power loss),
    a busy timeout, and explicit transaction control so that a write RPC takes the
    write lock up front (`BEGIN IMMEDIATE`) instead of failing when it upgrades a
    read snapshot later.
    """
    pool = pool or PoolSettings()
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _create_sqlite_engine(parsed, pool)
    kwargs: dict[str, object] = {
        "pool_size": pool.size,
        "max_overflow": pool.max_overflow,
        "pool_timeout": pool.timeout_s,
        "pool_recycle": pool.recycle_s,
    }
    # TLS (store.db_tls): for MySQL an SSLContext replaces what the dialect makes of the ssl_*
    # options; secret options (a client key's password) stay out of engine.url, which is logged.
    driver = db_tls.driver_arguments(parsed)
    if backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": connect_timeout_s, **driver.connect_args}
    elif backend in ("mysql", "mariadb"):
        kwargs["connect_args"] = {"connect_timeout": 10, "charset": "utf8mb4", **driver.connect_args}
        if driver.tls_required and not driver.tls_verified:
            log.warning(
                "TLS to the database at %s does not verify the server's certificate: "
                "add ssl_ca (or ssl_verify_cert=true for the system's CAs) to the URL",
                driver.url.render_as_string(hide_password=True),
            )
    if backend in ("mysql", "mariadb"):
        kwargs["pool_reset_on_return"] = None  # _roll_back_open_transactions_only does it
    engine = sa.create_engine(driver.url, **kwargs)
    if backend in ("mysql", "mariadb"):
        _roll_back_open_transactions_only(engine)
        _fold_prefix(engine)
    if driver.tls_required:
        event.listen(engine, "connect", lambda dbapi_connection, _record: db_tls.require_encrypted(dbapi_connection))
    _ping_when_idle(engine)
    _bound_statements_by_deadline(engine)
    if backend in ("mysql", "mariadb"):
        galera.watch(engine)  # connections to a Galera node lock through certified rows
    if backend == "postgresql":
        _fold_begin(engine)
        if SERIAL_PLANS:
            event.listen(engine, "connect", _plan_serially)
    return engine


# PostgreSQL: LineageDB's statements plan without parallel workers unless this is "on". Its
# statements are index-driven reads that stop at a page or an answer; a parallel plan starts
# worker processes, which on the 10^7-artifact benchmark store turned a filter's first page
# from 0.6 ms into 15-33 ms (a Gather Merge over an index that hands over the matches in
# order; store.property_indexes). Session level, so a database's own setting still applies
# to every other client, MLMD's included.
PARALLEL_PLANS_ENV = "LINEAGEDB_PG_PARALLEL_PLANS"
SERIAL_PLANS = os.environ.get(PARALLEL_PLANS_ENV, "off").strip().lower() in ("off", "0", "false", "no")


def _plan_serially(dbapi_connection: Any, _record: Any) -> None:
    # Once per new connection, outside any transaction (a SET in one that rolls back is undone);
    # one round trip. Not a libpq startup option: PgBouncer refuses unknown startup parameters.
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET max_parallel_workers_per_gather = 0")
    finally:
        dbapi_connection.autocommit = autocommit


# connection.info key: this transaction's BEGIN has not been sent yet (see _fold_begin).
BEGIN_PENDING = "lineagedb_begin_pending"
# connection.info key: SQL (parameters already bound) to send with this transaction's
# COMMIT, in the same round trip: the audit record (store.audit_log).
COMMIT_PREFIX = "lineagedb_commit_prefix"
# connection.info key: send this SQL after the transaction's COMMIT, in the same round trip,
# and keep its one value under COMMIT_RESULT (store.replicas: the commit's WAL position).
COMMIT_SUFFIX = "lineagedb_commit_suffix"
COMMIT_RESULT = "lineagedb_commit_result"
# libpq's PQtransactionStatus values for "in a transaction" and "in a failed transaction".
_PQ_INTRANS, _PQ_INERROR = 2, 3


# A write transaction's BEGIN also takes the writers' lock (store.locks.WRITERS_KEY), shared;
# a transaction that deletes nodes takes it exclusively (BEGIN_PENDING's value says which).
SHARED, EXCLUSIVE = "shared", "exclusive"


def begin_sql(mode: object) -> str:
    """BEGIN and the writers' lock of a PostgreSQL write transaction."""
    function = "pg_advisory_xact_lock" if mode == EXCLUSIVE else "pg_advisory_xact_lock_shared"
    return f"BEGIN; SELECT {function}({WRITERS_KEY}); "


def begin_prefix(info: dict[str, object]) -> str:
    """BEGIN (and the writers' lock) if the transaction of the connection with this info has
    yet to be opened; empty otherwise."""
    mode = info.pop(BEGIN_PENDING, None)
    return begin_sql(mode) if mode else ""


def _fold_begin(engine: sa.Engine) -> None:
    """PostgreSQL write transactions send BEGIN with their first statement.

    psycopg2 sends BEGIN on its own before a transaction's first statement: one round trip
    per write RPC that carries nothing. store.unit_of_work runs transactions on psycopg2's
    autocommit (a client-side flag) and marks the connection BEGIN_PENDING; the first
    statement then goes as "BEGIN; <statement>" (psycopg2 sends one simple query, whose
    result is the last statement's), and COMMIT/ROLLBACK are sent only when libpq reports
    an open transaction.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _prefix(conn, cursor, statement, parameters, _context, executemany):  # type: ignore[no-untyped-def]
        if conn.info.get(BEGIN_PENDING):
            if executemany:  # one execution per row: open the transaction on its own
                cursor.execute(begin_sql(conn.info.pop(BEGIN_PENDING)))
            else:
                statement = begin_prefix(conn.info) + statement
        return statement, parameters

    plain_commit, plain_rollback = dialect.do_commit, dialect.do_rollback

    def in_transaction(connection: Any) -> bool:
        # The pool may hand us its proxy, whose .info is the pool's own dict.
        raw = getattr(connection, "dbapi_connection", connection)
        return raw.info.transaction_status in (_PQ_INTRANS, _PQ_INERROR)

    def pending_sql(connection: Any) -> str | None:
        info = pool_info(connection)
        return info.pop(COMMIT_PREFIX, None) if info is not None else None

    def do_commit(dbapi_connection: Any) -> None:
        prefix = pending_sql(dbapi_connection)
        info = pool_info(dbapi_connection)
        suffix = info.pop(COMMIT_SUFFIX, None) if info is not None else None
        after = f"; {suffix}" if suffix else ""
        if not dbapi_connection.autocommit:
            plain_commit(dbapi_connection)
        elif prefix is not None:
            # "<statement>; COMMIT" as one simple query: if the statement fails, PostgreSQL
            # skips the COMMIT and the transaction is rolled back.
            begin = begin_prefix(info) if info is not None else ""
            try:
                with dbapi_connection.cursor() as cursor:
                    cursor.execute(f"{begin}{prefix}; COMMIT{after}")
                    if suffix and info is not None:
                        info[COMMIT_RESULT] = cursor.fetchone()[0]
            except Exception:
                # The failed transaction must not reach the pool's next user: SQLAlchemy
                # does not roll back a transaction whose commit it already attempted.
                with contextlib.suppress(Exception), dbapi_connection.cursor() as cursor:
                    cursor.execute("ROLLBACK")
                raise
        elif in_transaction(dbapi_connection):
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"COMMIT{after}")
                if suffix and info is not None:
                    info[COMMIT_RESULT] = cursor.fetchone()[0]

    def do_rollback(dbapi_connection: Any) -> None:
        pending_sql(dbapi_connection)  # never sent after a rollback
        if not dbapi_connection.autocommit:
            plain_rollback(dbapi_connection)
        elif in_transaction(dbapi_connection):
            with dbapi_connection.cursor() as cursor:
                cursor.execute("ROLLBACK")

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


# connection.info key (MySQL/MariaDB): SQL without parameters to send ahead of the connection's
# next statement, in that statement's round trip: a write transaction's lock of MLMDEnv's row
# (store.unit_of_work). Dropped unsent if the transaction ends without another statement.
STATEMENT_PREFIX = "lineagedb_statement_prefix"
# connection.info key (MySQL/MariaDB): statements of a write transaction whose results nobody
# reads (link rows, the audit record), bound by the driver, sent ahead of the transaction's
# next statement or with its COMMIT (see `defer`). Dropped unsent only when it rolls back.
DEFERRED = "lineagedb_deferred"
# connection.info key (MySQL/MariaDB with PyMySQL): this read transaction sends each statement
# as "<statement>; COMMIT", so that no transaction is left for its end to close: its COMMIT
# is not sent (a round trip per read call). As on PostgreSQL, where reads run in autocommit,
# each statement of a read sees the database as it is when it runs.
COMMIT_EACH = "lineagedb_commit_each"
# connection.info key: a statement of such a read ran without its COMMIT (streamed, executemany,
# failed, or sent on the driver's cursor without one): the transaction's COMMIT is sent.
_LEFT_OPEN = "lineagedb_left_open"
# The client capability that lets one COM_QUERY carry statements separated by ";"
# (CLIENT_MULTI_STATEMENTS of the MySQL protocol; the same bit for PyMySQL and mysqlclient).
MULTI_STATEMENTS = 1 << 16


def _fold_prefix(engine: sa.Engine) -> None:
    """MySQL/MariaDB: a pending STATEMENT_PREFIX travels with the next statement.

    Every write transaction starts by locking MLMDEnv's row (the writers' lock, or a type
    write's exclusive lock); sent on its own it was one network round trip per write RPC
    that carried nothing else (and each round trip costs PyMySQL its packet handling in
    Python). Connections allow several statements per query, as psycopg2's do on PostgreSQL;
    the lock then goes as "<lock>; <statement>" and its result is skipped (`nextset`), so
    SQLAlchemy and store.fast_read read the statement's own. The server runs them in order
    and stops at the first that fails, so the statement never runs without the lock. No SQL
    LineageDB sends is built from a caller's text (values are always bound), which is what
    keeps several statements per query from widening an injection.

    The prefix is added where the driver is called (the dialect's do_execute events), after
    every before_cursor_execute listener: those (store.statement_count, tests) see the
    statement as SQLAlchemy made it.
    """

    @event.listens_for(engine, "do_connect")
    def _allow_multiple_statements(_dialect, _record, _cargs, cparams):  # type: ignore[no-untyped-def]
        # SQLAlchemy's own flags (FOUND_ROWS) are kept.
        cparams["client_flag"] = int(cparams.get("client_flag", 0)) | MULTI_STATEMENTS

    @event.listens_for(engine, "do_execute")
    def _execute(cursor, statement, parameters, context):  # type: ignore[no-untyped-def]
        return _execute_folded(cursor, statement, (parameters,), context)

    @event.listens_for(engine, "do_execute_no_params")
    def _execute_no_params(cursor, statement, context):  # type: ignore[no-untyped-def]
        return _execute_folded(cursor, statement, (), context)

    @event.listens_for(engine, "do_executemany")
    def _execute_many(_cursor, _statement, _parameters, context):  # type: ignore[no-untyped-def]
        # The driver's executemany recognizes a plain INSERT only: the prefix goes alone.
        info = _info(context)
        if info is not None:
            prefix, prefixed = take_prefix(info)
            if prefix is not None:
                _send_alone(context, prefix, prefixed)
            if info.get(COMMIT_EACH):
                info[_LEFT_OPEN] = True
        return False


def _execute_folded(cursor: Any, statement: str, parameters: tuple[Any, ...], context: Any) -> bool:
    """Run `statement` with the connection's pending prefix and, in a read transaction that
    commits each statement, "; COMMIT" after it. False: nothing to add, the dialect runs it."""
    info = _info(context)
    if info is None:
        return False
    prefix, prefixed = take_prefix(info)
    commit_each = info.get(COMMIT_EACH, False)
    if prefix is None and not commit_each:
        return False
    if context._is_server_side:
        # A streamed result is read as it arrives: nothing may follow it in the same query.
        if prefix is not None:
            _send_alone(context, prefix, prefixed)
        if commit_each:
            info[_LEFT_OPEN] = True
        return False
    sql = statement if prefix is None else f"{prefix}; {statement}"
    if commit_each:
        # The COMMIT's result stays queued behind the statement's until PyMySQL reads past it
        # (when the cursor closes, or before the connection's next command).
        sql += "; COMMIT"
    try:
        cursor.execute(sql, *parameters)
        skip_results(cursor, prefixed)
    except Exception:
        if commit_each:
            info[_LEFT_OPEN] = True  # the server stopped before the COMMIT
        raise
    return True


def _send_alone(context: Any, prefix: str, prefixed: Sequence[ReadAhead | None]) -> None:
    """Send `prefix` as a query of its own, on a buffered cursor of the statement's connection."""
    cursor = context.root_connection.connection.dbapi_connection.cursor()
    try:
        cursor.execute(prefix)
        skip_results(cursor, prefixed)
    finally:
        cursor.close()


def _info(context: Any) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = context.root_connection.info
    except NotImplementedError:  # the dialect's first connection, outside the pool: nothing pending
        return None
    return info


def prefixed_sql(info: dict[str, Any], sql: str) -> tuple[str, list[ReadAhead | None], bool]:
    """For a statement sent on the driver's cursor (which SQLAlchemy's events do not see): `sql`
    with the connection's pending STATEMENT_PREFIX and, in a read that commits each statement,
    its COMMIT; the results that precede the statement's own (see `take_prefix`), and
    whether one follows it."""
    prefix, prefixed = take_prefix(info)
    commit = bool(info.get(COMMIT_EACH))
    if prefix is not None:
        sql = f"{prefix}; {sql}"
    return (f"{sql}; COMMIT" if commit else sql), prefixed, commit


@dataclass(frozen=True)
class ReadAhead:
    """A read of a write transaction (MySQL/MariaDB) whose rows are wanted, but not yet: it
    waits, as deferred statements do, for the transaction's next statement and travels in
    that statement's round trip; `deliver(rows, description)` gets its rows when they come
    back. Whoever needs them earlier sends what is pending alone (`send_pending`)."""

    sql: str  # bound by the driver, as a deferred statement's
    deliver: Callable[[list[tuple[Any, ...]], Sequence[Any] | None], None]


def defer(info: dict[str, Any], bound_sql: str | ReadAhead) -> None:
    """MySQL/MariaDB: send `bound_sql` (a statement with its values already bound by the
    driver, whose result nobody reads, or a `ReadAhead`) ahead of this transaction's next
    statement, in that statement's round trip, or with its COMMIT. The server runs them in
    order, so what follows sees their rows, and stops at the first that fails, so a failed
    deferred statement fails the statement (or COMMIT) it travels with, inside the same
    transaction."""
    info.setdefault(DEFERRED, []).append(bound_sql)


def take_prefix(info: dict[str, Any]) -> tuple[str | None, list[ReadAhead | None]]:
    """The SQL to send ahead of the next statement (the lock, then deferred statements and
    reads, in the order they were deferred) and, per statement it holds, its `ReadAhead`
    (None: a result to skip); nothing is pending afterwards."""
    parts: list[str] = []
    prefixed: list[ReadAhead | None] = []
    lock = info.pop(STATEMENT_PREFIX, None)
    if lock is not None:
        parts.append(lock)
        prefixed.append(None)
    for item in info.pop(DEFERRED, ()):
        if isinstance(item, ReadAhead):
            parts.append(item.sql)
            prefixed.append(item)
        else:
            parts.append(item)
            prefixed.append(None)
    return ("; ".join(parts) if parts else None), prefixed


def commit_skipped(info: dict[str, Any]) -> bool:
    """True if the COMMIT ending this connection's transaction is not sent: a read whose every
    statement committed itself (COMMIT_EACH) has nothing open (store.statement_count asks too)."""
    return bool(info.get(COMMIT_EACH)) and not info.get(_LEFT_OPEN)


def left_open(info: dict[str, Any]) -> None:
    """A statement of a COMMIT_EACH read ran without its COMMIT: the transaction's is sent."""
    if info.get(COMMIT_EACH):
        info[_LEFT_OPEN] = True


def skip_results(cursor: Any, prefixed: Sequence[ReadAhead | None]) -> None:
    """Move `cursor` past the results of the statements sent ahead of its own (`prefixed`,
    from `take_prefix`), delivering the rows of each `ReadAhead`; the error of a statement
    that failed after them is raised here."""
    for read in prefixed:
        if read is not None:
            read.deliver(list(cursor.fetchall()), cursor.description)
        cursor.nextset()


def discard_prefix(info: dict[str, Any]) -> None:
    """A transaction ended: a prefix it never sent, or how it committed, is not the next one's."""
    info.pop(STATEMENT_PREFIX, None)
    info.pop(DEFERRED, None)
    info.pop(COMMIT_EACH, None)
    info.pop(_LEFT_OPEN, None)


# pool info key: the connection's last transaction was ended by this dialect's COMMIT or
# ROLLBACK and nothing has run on it since (see _roll_back_open_transactions_only).
_ENDED = "lineagedb_transaction_ended"


def _roll_back_open_transactions_only(engine: sa.Engine) -> None:
    """MySQL/MariaDB: a connection returned to the pool is rolled back unless its transaction
    is known to be over.

    SQLAlchemy's reset-on-return rolls back after every call, committed ones included, and
    PyMySQL's rollback() always sends ROLLBACK: a round trip per call for nothing (psycopg2
    skips it by itself when no transaction is open; PyMySQL's server status cannot tell, it
    is not updated by result sets). A connection is known to be clean only right after a
    COMMIT or ROLLBACK that succeeded on it; checking it out, or beginning a transaction on
    it, makes it unknown again, so a raw connection, or one returned in a transaction, is
    rolled back as before."""
    dialect = engine.dialect
    plain_commit, plain_rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(connection: Any) -> None:
        info = pool_info(connection)
        if info is not None and info.get(DEFERRED):
            # Statements deferred since the last one sent (store.engine.defer) go with COMMIT;
            # if one fails the COMMIT does not run, and the connection is rolled back on its
            # return to the pool (it is not marked ended).
            prefix, prefixed = take_prefix(info)
            cursor = connection.cursor()
            try:
                cursor.execute(f"{prefix}; COMMIT")
                skip_results(cursor, prefixed)
            finally:
                cursor.close()
        elif info is None or not commit_skipped(info):
            plain_commit(connection)
        _mark_ended(info, True)

    def do_rollback(connection: Any) -> None:
        plain_rollback(connection)
        _mark_ended(pool_info(connection), True)

    dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]

    @event.listens_for(engine, "checkout")
    def _on_checkout(_dbapi_connection, record, _proxy):  # type: ignore[no-untyped-def]
        _mark_ended(record.info, False)

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        _mark_ended(pool_info(connection.connection), False)

    @event.listens_for(engine, "reset")
    def _on_reset(dbapi_connection, record, state):  # type: ignore[no-untyped-def]
        if state.terminate_only:
            return  # the connection is closed, which ends its transaction on the server
        info = record.info if record is not None else None
        if info is None or not info.get(_ENDED):
            plain_rollback(dbapi_connection)
        _mark_ended(info, False)


def _mark_ended(info: dict[str, Any] | None, ended: bool) -> None:
    if info is not None:
        info[_ENDED] = ended


def pool_info(connection: Any) -> dict[str, Any] | None:
    """The pool's dict of a connection: the pool's proxy has it; a raw connection has
    none (PyMySQL), or the driver's own info (libpq's)."""
    try:
        info = connection.info
    except (AttributeError, NotImplementedError):
        return None
    return info if isinstance(info, dict) else None


def _ping_when_idle(engine: sa.Engine) -> None:
    """Ping a connection at checkout only if it sat idle (see PING_IDLE_S)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):  # type: ignore[no-untyped-def]
        if record is not None:
            record.info["lineagedb_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):  # type: ignore[no-untyped-def]
        idle_since = record.info.get("lineagedb_idle_since")
        if idle_since is None or time.monotonic() - idle_since <= PING_IDLE_S:
            return  # a new connection, or one used moments ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if not engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            # The pool discards this connection and checks out (or opens) another.
            raise sa_exc.DisconnectionError("pooled connection is gone")


def remaining_ms() -> int | None:
    """Milliseconds left before STATEMENT_DEADLINE (at least 1), or None without a deadline."""
    deadline = STATEMENT_DEADLINE.get()
    if deadline is None:
        return None
    return max(1, int((deadline - time.monotonic()) * 1000))


def _bound_statements_by_deadline(engine: sa.Engine) -> None:
    """Bound every statement of a transaction by the caller's deadline (PostgreSQL, MariaDB).

    The bound is a session setting, sent only when the one in force is not between
    BOUND_SLACK and all of the time left: a client's deadline is about the same on every
    call, and a SET per transaction was one network round trip per RPC. A statement is
    therefore stopped a little before the client gives up, never after.
    """
    postgresql = engine.dialect.name == "postgresql"

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        left = remaining_ms()
        current = connection.info.get("lineagedb_statement_bound_ms", 0)  # 0: no bound
        if left is None:
            if current == 0:
                return
            bound = 0
        elif 0 < current <= left and current >= left * BOUND_SLACK:
            return
        else:
            bound = max(1, int(left * BOUND_TARGET))
        if postgresql:
            connection.exec_driver_sql(f"SET statement_timeout = {bound}")
        elif getattr(connection.dialect, "is_mariadb", False):
            connection.exec_driver_sql(f"SET SESSION max_statement_time = {bound / 1000:.3f}")
        else:
            return
        connection.info["lineagedb_statement_bound_ms"] = bound

    if postgresql:

        @event.listens_for(engine, "rollback")
        def _on_rollback(connection):  # type: ignore[no-untyped-def]
            # A PostgreSQL SET made in a transaction that rolls back is undone: send it again.
            # (An invalidated connection's replacement starts with empty info; touching .info
            # before the rollback completes would raise.)
            if not connection.invalidated:
                connection.info.pop("lineagedb_statement_bound_ms", None)


def _create_sqlite_engine(url: URL, pool: PoolSettings) -> sa.Engine:
    memory = is_sqlite_memory(url)
    connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if memory:
        # One shared connection: every checkout must see the same in-memory database.
        engine = sa.create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        engine = sa.create_engine(
            url,
            connect_args=connect_args,
            pool_size=pool.size,
            max_overflow=pool.max_overflow,
            pool_timeout=pool.timeout_s,
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Take transaction control away from the sqlite3 module; we BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        write = connection.info.get("lineagedb_write", True)
        # Straight to the driver: BEGIN has no parameters or result, and SQLAlchemy's
        # statement machinery cost more than SQLite's own work on every short call.
        statement = "BEGIN IMMEDIATE" if write else "BEGIN"
        try:
            connection.connection.dbapi_connection.execute(statement)
        except sqlite3.Error as error:  # e.g. SQLITE_BUSY: wrapped as SQLAlchemy would, for classification
            raise sa_exc.DBAPIError.instance(statement, None, error, sqlite3.Error) from error

    return engine
