"""Transactions, and the one place where driver errors become domain errors.

Every RPC runs in exactly one transaction opened by the service layer through
`Database.transaction()`. Statements go through `UnitOfWork.execute`, which
classifies driver errors by their numeric code (never by message text) into the
domain errors of `lineagedb.errors`, at the statement that failed, so the
service can decide what a unique violation means where it happened (MLMD answers
ALREADY_EXISTS on inserts, INTERNAL on updates, ABORTED on a context race).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, NoReturn, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from lineagedb import errors
from lineagedb.store import audit_log, galera, locks, prepared
from lineagedb.store.admission import Admission
from lineagedb.store.engine import (
    BEGIN_PENDING,
    COMMIT_EACH,
    COMMIT_RESULT,
    COMMIT_SUFFIX,
    EXCLUSIVE,
    SHARED,
    SQLITE_BUSY_TIMEOUT_MS,
    STATEMENT_PREFIX,
    ReadAhead,
    begin_prefix,
    defer,
    discard_prefix,
    is_sqlite_memory,
    left_open,
    prefixed_sql,
    skip_results,
    take_prefix,
)
from lineagedb.store.replicas import COMMIT_LSN_SQL, CURRENT_ROUTE, CallRoute
from lineagedb.store.schema import Schema, schema_for
from lineagedb.store.sensitive import PropertyProtection
from lineagedb.store.statement_count import count_driver_statement
from lineagedb.store.statistics import StatisticsKeeper
from lineagedb.store.tenancy import CURRENT_TENANCY, UNRESTRICTED, Tenancy

_T = TypeVar("_T")

log = logging.getLogger(__name__)

# SQLite extended result codes (sqlite3.h).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_CONSTRAINT_PRIMARYKEY = 1555
_SQLITE_CONSTRAINT_UNIQUE = 2067
# PostgreSQL SQLSTATEs.
_PG_UNIQUE = "23505"
_PG_FOREIGN_KEY = "23503"
_PG_RETRYABLE = {"40001", "40P01", "55P03"}
_PG_CANCELED = "57014"
_PG_TOO_LONG = "22001"  # string_data_right_truncation: a value longer than its VARCHAR column
# program_limit_exceeded: raised for a caller's value by an index entry over a B-tree page's
# third (MLMD's index of string property values holds ~2,700 bytes after compression).
_PG_LIMIT = "54000"
# MySQL / MariaDB error numbers.
_MYSQL_DUPLICATE = {1062, 1586}
_MYSQL_FOREIGN_KEY = {1216, 1452}  # no parent row for a child row being written
_MYSQL_RETRYABLE = {1205, 1213, 3058}  # lock wait timeout, deadlock, user-lock deadlock
# 1047: a Galera node outside the primary component ("WSREP has not yet prepared node").
_MYSQL_GONE = {2002, 2003, 2006, 2013, 2055, 1927, 1047}
_MYSQL_TIMEOUT = {3024, 1969}
_MYSQL_TOO_LONG = {1406}  # data too long for column (strict mode)
# MLMD's schema holds 255 characters in names, property names, external ids and type names on
# PostgreSQL and MySQL (SQLite has no limit), and MySQL 65,535 bytes in a URI: a longer value is
# the caller's to fix, not INTERNAL.
_TOO_LONG = (
    "a value is longer than its database column holds (names, property names, external ids and "
    "type names: 255 characters)"
)
_TOO_LARGE_TO_INDEX = (
    "a value is too large for the database's index of it (PostgreSQL indexes string property values "
    "up to about 2,700 bytes after compression); store a large value elsewhere and record its location"
)


class UniqueViolation(errors.AlreadyExistsError):
    """A unique or primary-key constraint rejected a write."""


class MissingParent(errors.FailedPreconditionError):
    """A foreign key found no parent row (only LineageDB's own tables declare them).
    Whoever wrote the child row catches this and says which parent is missing."""


def classify_driver_error(error: sa_exc.DBAPIError) -> errors.LineageError:
    """Map a driver error to a domain error, by driver code only."""
    orig = error.orig
    if error.connection_invalidated:
        return errors.UnavailableError("the database connection was lost; retry the call")
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if code in (_SQLITE_CONSTRAINT_UNIQUE, _SQLITE_CONSTRAINT_PRIMARYKEY):
            return UniqueViolation("a record with the same unique key already exists")
        if code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return errors.AbortedError("the database is busy; retry the call")
    pgcode = getattr(orig, "pgcode", None)
    if pgcode is not None:
        if pgcode == _PG_UNIQUE:
            return UniqueViolation("a record with the same unique key already exists")
        if pgcode == _PG_FOREIGN_KEY:
            return MissingParent("a record refers to one that does not exist")
        if pgcode in _PG_RETRYABLE:
            return errors.AbortedError("the transaction conflicted with another one; retry the call")
        if pgcode == _PG_TOO_LONG:
            return errors.InvalidArgumentError(_TOO_LONG)
        if pgcode == _PG_LIMIT:
            return errors.InvalidArgumentError(_TOO_LARGE_TO_INDEX)
        if pgcode == _PG_CANCELED:
            return errors.DeadlineExceededError("the database statement was cancelled")
        if pgcode.startswith("08") or pgcode.startswith("57P"):
            return errors.UnavailableError("the database is unavailable; retry the call")
    mysql_code = _mysql_code(orig)
    if mysql_code is not None:
        if mysql_code in _MYSQL_DUPLICATE:
            return UniqueViolation("a record with the same unique key already exists")
        if mysql_code in _MYSQL_FOREIGN_KEY:
            return MissingParent("a record refers to one that does not exist")
        if mysql_code in _MYSQL_RETRYABLE:
            return errors.AbortedError("the transaction conflicted with another one; retry the call")
        if mysql_code in _MYSQL_GONE:
            return errors.UnavailableError("the database is unavailable; retry the call")
        if mysql_code in _MYSQL_TOO_LONG:
            return errors.InvalidArgumentError(_TOO_LONG)
        if mysql_code in _MYSQL_TIMEOUT:
            return errors.DeadlineExceededError("the database statement took too long")
    server_error = isinstance(error, sa_exc.OperationalError) and not isinstance(orig, sqlite3.Error)
    if server_error and pgcode is None and mysql_code is None:
        return errors.UnavailableError("the database is unavailable; retry the call")
    return errors.InternalError("internal database error")


def _mysql_code(orig: BaseException | None) -> int | None:
    module = type(orig).__module__ if orig is not None else ""
    # PyMySQL's and mysqlclient's (MySQLdb, for mysql+mysqldb:// URLs) errors carry the number first.
    driver = module.startswith(("pymysql", "MySQLdb"))
    if orig is not None and driver and orig.args and isinstance(orig.args[0], int):
        return int(orig.args[0])
    return None


def _raise_domain(error: sa_exc.DBAPIError) -> NoReturn:
    """Raise the domain error for a failed statement; unexpected ones are logged."""
    domain = classify_driver_error(error)
    if isinstance(domain, errors.InternalError):
        log.error("database statement failed", exc_info=error)
    raise domain from error


# The largest statement (bound, in characters) that travels with another (UnitOfWork.defer).
_DEFER_MAX_CHARS = 64 * 1024


class UnitOfWork:
    """One open transaction. Repositories run their statements through it."""

    def __init__(
        self,
        connection: sa.Connection,
        schema: Schema,
        tenancy: Tenancy = UNRESTRICTED,
        changes: audit_log.Changes | None = None,
        protection: PropertyProtection | None = None,
    ) -> None:
        self.connection = connection
        # Encryption of sensitive property values (store.sensitive); None: no keys configured.
        self.protection = protection
        self.schema = schema
        # What this call may see and change: every node or edge read is scoped by it.
        self.tenancy = tenancy
        # Namespaces this transaction already found to exist (store.tenancy.require_creatable).
        self.checked_namespaces: set[str] = set()
        # (node kind number, node id) -> namespace (None: no such node), for nodes written
        # or looked up here (store.tenancy.locate_many).
        self.known_namespaces: dict[tuple[int, int], str | None] = {}
        # Lookups of known_namespaces sent ahead (tenancy.locate_ahead) whose rows have not come back.
        self.namespaces_ahead = 0
        self.dialect = connection.dialect.name
        # Ids per IN list of set-based reads: SQLite builds may allow only 999 bound
        # parameters, and on PostgreSQL lists of 1,000 and 5,000 ids made 10,000-node
        # lineage answers slower, not faster (planning long lists costs more than the
        # round trips saved), so one size serves every backend.
        self.id_chunk = 500
        self._after_commit: list[Callable[[], None]] = []
        self._releases: list[Callable[[], None]] = []
        # Rows inserted per table, for store.statistics once the transaction commits.
        self.inserted: Counter[str] = Counter()
        # What this write transaction changed, for its audit record (None: audit off or a read).
        self.changes = changes
        # (node kind, id, is_custom, name) of the property values this transaction read from an
        # envelope (store.sensitive): sensitive whatever the policy says now, so an update's
        # audit record shows them redacted (service.redaction).
        self.sealed_read: set[tuple[str, int, bool, str]] = set()
        # PostgreSQL (store.prepared): this transaction has set plan_cache_mode back to auto.
        self.custom_plans = False
        # What a foreign-key failure of a deferred INSERT (`defer`) means, said by its writer:
        # the failure surfaces in a later statement or the COMMIT, where nobody else can tell.
        self.missing_parent: errors.LineageError | None = None

    def execute(
        self, statement: sa.Executable, parameters: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None
    ) -> sa.CursorResult[Any]:
        return self._classified(self.connection.execute, statement, parameters)

    def execute_driver_sql(self, sql: str, parameters: Sequence[tuple[Any, ...]]) -> None:
        """Run SQL text SQLAlchemy compiled earlier (see store.bulk_insert) with positional
        rows, on the driver's own cursor (SQLite only: one `executemany` runs in process).
        SQLAlchemy's execution context cost more per statement than SQLite's work for the
        few-row INSERTs of a write call."""
        assert self.dialect == "sqlite", "psycopg2 and PyMySQL would send one statement per row"
        self.on_driver_cursor(sql, lambda cursor: cursor.executemany(sql, parameters), parameters)

    @property
    def can_defer(self) -> bool:
        """Whether statements whose results nobody reads may travel with the transaction's
        next statement or its COMMIT (store.engine.defer): MySQL/MariaDB through PyMySQL,
        in a write transaction (reads commit each statement, store.engine.COMMIT_EACH)."""
        return self.connection.dialect.driver == "pymysql" and not self.connection.info.get(COMMIT_EACH)

    def defer(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any]) -> None:
        """Send `sql` (the driver's %s or %(name)s placeholders) with `parameters`, bound by PyMySQL as
        for any statement, ahead of this transaction's next statement or with its COMMIT:
        a round trip less for a statement whose result nobody reads (see `can_defer`)."""
        self.defer_bound(self.bind(sql, parameters))

    def defer_bound(self, bound: str) -> None:
        """`defer` for SQL whose values are in it already (bound by `bind` or the driver)."""
        self._pend(bound, bound)

    def read_ahead(
        self,
        sql: str,
        parameters: Sequence[Any] | Mapping[str, Any],
        deliver: Callable[[list[tuple[Any, ...]], Sequence[Any] | None], None],
    ) -> None:
        """A read whose rows are wanted later in this write transaction (`can_defer` only):
        it travels with the transaction's next statement, in its round trip, and `deliver`
        gets its rows then (store.engine.ReadAhead). `send_pending` sends it sooner."""
        bound = self.bind(sql, parameters)
        self._pend(bound, ReadAhead(bound, deliver))

    def bind(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any]) -> str:
        """`sql` with `parameters` quoted into it by the driver (PyMySQL's placeholders): each
        value through the connection's `escape`, as the driver's `mogrify` does, without the
        cursor it needs (a cursor per bound statement cost a write a few microseconds each).
        Integers, and text of ASCII letters and digits only, are written as `escape` writes
        them without calling it (no quoting rule of any SQL mode touches those characters):
        most of an audit record's values (its chain, sequence, time, digest and MAC)."""
        dbapi_connection = self.connection.connection.dbapi_connection
        assert dbapi_connection is not None
        escape = dbapi_connection.escape

        def literal(value: Any) -> str:
            kind = type(value)
            if kind is int:
                return f"{value:d}"
            if kind is str and value.isascii() and value.isalnum():
                return f"'{value}'"
            return str(escape(value))

        if isinstance(parameters, Mapping):
            return str(sql % {name: literal(value) for name, value in parameters.items()})
        return str(sql % tuple(map(literal, parameters)))

    def _pend(self, bound: str, item: str | ReadAhead) -> None:
        defer(self.connection.info, item)
        if len(bound) <= _DEFER_MAX_CHARS:
            count_driver_statement(bound)
            return
        # A large statement goes now (with what is pending before it), so that no query grows
        # toward the server's max_allowed_packet by riding with another.
        self.send_pending()

    def send_pending(self) -> None:
        """Send what waits for this transaction's next statement now, in a query of its own
        (a read ahead's rows are wanted before another statement goes)."""
        prefix, prefixed = take_prefix(self.connection.info)
        if prefix is None:
            return

        def run(cursor: Any) -> None:
            cursor.execute(prefix)
            skip_results(cursor, prefixed)

        self.on_driver_cursor(prefix, run, ())

    def fetch_driver_sql(
        self, sql: str, parameters: Sequence[Any] | Mapping[str, Any]
    ) -> tuple[list[tuple[Any, ...]], Sequence[Any] | None]:
        """Rows of SQL text (compiled by SQLAlchemy, see store.fast_read) from the driver's
        own cursor, inside this transaction, and the cursor's description."""
        skipped: list[ReadAhead | None] = []
        commit = False
        if self.dialect == "postgresql":
            sql = begin_prefix(self.connection.info) + sql  # a write's first statement opens it
        elif self.dialect in ("mysql", "mariadb"):
            # A write's lock before it, a read's COMMIT after it (store.engine).
            sql, skipped, commit = prefixed_sql(self.connection.info, sql)

        def fetch(cursor: Any) -> tuple[list[tuple[Any, ...]], Sequence[Any] | None]:
            cursor.execute(sql, parameters)
            skip_results(cursor, skipped)
            found, description = list(cursor.fetchall()), cursor.description
            if commit:
                cursor.nextset()  # the COMMIT's result
            return found, description

        return self.on_driver_cursor(sql, fetch, parameters, commits=commit)

    def on_driver_cursor(self, sql: str, run: Callable[[Any], _T], parameters: Any, commits: bool = False) -> _T:
        """`run` on a cursor of the driver's own, inside this transaction. Driver errors are
        classified as everywhere else; a lost connection is invalidated, as SQLAlchemy
        would, so the pool drops it. `commits`: `sql` ends with the COMMIT of a MySQL read
        that commits each statement (store.engine.COMMIT_EACH)."""
        dialect = self.connection.dialect
        dbapi_connection = self.connection.connection.dbapi_connection
        assert dbapi_connection is not None
        if not commits and self.dialect in ("mysql", "mariadb"):
            left_open(self.connection.info)
        cursor = dbapi_connection.cursor()
        count_driver_statement(sql)
        try:
            return run(cursor)
        except dialect.loaded_dbapi.Error as error:
            if self.dialect in ("mysql", "mariadb") and not self.connection.invalidated:
                left_open(self.connection.info)  # the server stopped before the COMMIT
            lost = dialect.is_disconnect(error, dbapi_connection, cursor)
            wrapped = sa_exc.DBAPIError.instance(
                sql, parameters, error, dialect.loaded_dbapi.Error, connection_invalidated=lost
            )
            assert isinstance(wrapped, sa_exc.DBAPIError)
            if lost:
                self.connection.invalidate(error)
            _raise_domain(wrapped)
        finally:
            with contextlib.suppress(dialect.loaded_dbapi.Error):
                cursor.close()  # may fail once the connection is gone; the error above matters

    @staticmethod
    def _classified(run: Callable[..., sa.CursorResult[Any]], statement: Any, parameters: Any) -> sa.CursorResult[Any]:
        try:
            return run(statement, parameters)
        except sa_exc.DBAPIError as error:
            _raise_domain(error)
        except sa_exc.StatementError as error:
            # A column type rejected a parameter (schema.MLMDText: invalid UTF-8).
            if isinstance(error.orig, errors.LineageError):
                raise error.orig from None
            raise

    def note_inserted(self, table: sa.Table, rows: int) -> None:
        self.inserted[table.name] += rows

    def lock(self, name: str) -> None:
        """Hold the named lock until this transaction ends (see lineagedb.store.locks)."""
        if self.dialect in ("mysql", "mariadb"):
            if galera.is_galera(self.connection):
                # Row locks hold on one node only: a row write the cluster certifies.
                self.execute(galera.CLAIM, galera.claim_parameters(name))
                return
            # GET_LOCK outlives the transaction: releasing it after COMMIT cost two more round
            # trips (RELEASE_LOCK, and ending the transaction that statement opened). A row
            # lock on MLMDEnv's one row ends with the transaction. It serializes all callers
            # rather than those of one name; only type creation takes it, and it is rare.
            info = self.connection.info
            if info.get(STATEMENT_PREFIX) is not None:
                # The writers' lock has not been sent yet: take the row exclusively instead,
                # with the next statement (a share lock upgraded one statement later cost a
                # round trip, and two creators holding it shared deadlocked on the upgrade).
                info[STATEMENT_PREFIX] = _env_lock_sql(self.schema, self.connection.dialect, exclusive=True)
                return
            self.execute(_env_lock_statement(self.schema))
            return
        try:
            release = locks.acquire(self.connection, name)
        except sa_exc.DBAPIError as error:
            raise classify_driver_error(error) from error
        if release is not None:
            self._releases.append(release)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` only once the transaction has committed (cache fills)."""
        self._after_commit.append(callback)


@functools.cache
def _env_lock_statement(schema: Schema) -> sa.Select[Any]:
    env = schema.mlmd_env
    return sa.select(env.c.schema_version).with_for_update()


@functools.cache
def _env_lock_sql(schema: Schema, dialect: sa.Dialect, exclusive: bool) -> str:
    """MySQL/MariaDB: the lock of MLMDEnv's row as SQL text, for STATEMENT_PREFIX: shared (the
    writers' lock, store.locks.WRITERS_KEY) or exclusive (a deletion, a type write)."""
    statement = sa.select(schema.mlmd_env.c.schema_version).with_for_update(read=not exclusive)
    return str(statement.compile(dialect=dialect))


class Database:
    """The engine plus the schema of its dialect; opens units of work."""

    def __init__(
        self,
        engine: sa.Engine,
        require_tenancy: bool = False,
        audit: audit_log.AuditLog | None = None,
        protection: PropertyProtection | None = None,
    ) -> None:
        self.engine = engine
        # Seals and opens sensitive property values (store.sensitive); None: encryption off.
        self.protection = protection
        # With an audit log, every committed write transaction appends its record (store.audit_log).
        self.audit = audit
        # With authentication on, a transaction opened outside a call whose tenancy the
        # transport edge decided is refused rather than run unrestricted (fail closed).
        self.require_tenancy = require_tenancy
        self.dialect = engine.dialect.name
        self.schema = schema_for(self.dialect)
        self.statistics = StatisticsKeeper(engine)
        # A private in-memory SQLite database lives on one shared connection.
        self._serialize = threading.RLock() if is_sqlite_memory(engine.url) else None
        # A SQLite file: a few threads at a time inside it (store.admission).
        wait_s = SQLITE_BUSY_TIMEOUT_MS / 1000
        self._admission = Admission(wait_s) if self.dialect == "sqlite" and self._serialize is None else None
        # MySQL/MariaDB reads end each statement's transaction in its own query (store.engine.
        # COMMIT_EACH); PyMySQL reads past a result left behind before its next command.
        self._commit_each = self.dialect in ("mysql", "mariadb") and engine.dialect.driver == "pymysql"

    @contextmanager
    def transaction(
        self, write: bool = True, exclusive: bool = False, single_statement: bool = False
    ) -> Iterator[UnitOfWork]:
        """One transaction. `exclusive` (for deletions) holds the writers' lock exclusively:
        it waits for every write transaction in flight and holds new ones back until it
        ends (store.locks.WRITERS_KEY). `single_statement` (a read only): the caller sends
        one statement on the driver's cursor (store.fast_read), which is its own snapshot
        on every backend, so SQLite needs no BEGIN and COMMIT around it (two calls into
        SQLite, each releasing and retaking the GIL: a cached type's re-put spent more
        server CPU on them than on its read). PostgreSQL and MySQL reads send neither anyway."""
        tenancy = CURRENT_TENANCY.get()
        if tenancy is None:
            if self.require_tenancy:
                raise errors.PermissionDeniedError("the call's namespaces could not be determined")
            tenancy = UNRESTRICTED
        if self._admission is not None:
            lock: contextlib.AbstractContextManager[Any] = self._admission.admitted(write)
        else:
            lock = self._serialize if self._serialize is not None else nullcontext()
        with lock:
            uow = self._run(write, tenancy, exclusive, single_statement and not write)
            yield from uow

    @staticmethod
    def _connect(engine: sa.Engine) -> sa.Connection:
        try:
            return engine.connect()
        except sa_exc.TimeoutError as error:
            raise errors.ResourceExhaustedError("all database connections are busy; retry the call") from error
        except sa_exc.DBAPIError as error:
            raise classify_driver_error(error) from error

    def _connect_routed(self, route: CallRoute | None, write: bool) -> sa.Connection:
        """A connection to the primary, or to the read replica this call's route chose
        (store.replicas); a replica that refuses is skipped for the primary."""
        engine = route.read_engine(self.engine) if route is not None and not write else self.engine
        if engine is self.engine:
            return self._connect(engine)
        assert route is not None
        try:
            return self._connect(engine)
        except errors.LineageError as error:
            route.connect_failed(error)
            return self._connect(self.engine)

    def _run(
        self, write: bool, tenancy: Tenancy, exclusive: bool = False, single: bool = False
    ) -> Iterator[UnitOfWork]:
        route = CURRENT_ROUTE.get()
        connection = self._connect_routed(route, write)
        with connection:
            connection.info["lineagedb_write"] = write
            # PostgreSQL reads at READ COMMITTED, where every statement takes its own snapshot:
            # a read-only transaction adds nothing but its BEGIN and COMMIT, two round trips.
            # A write transaction sends its BEGIN with its first statement (store.engine's
            # _fold_begin). psycopg2's autocommit is a client-side flag; it is set back before
            # the pool gets the connection again.
            autocommit = self.dialect == "postgresql"
            dbapi_connection = connection.connection.dbapi_connection if autocommit else None
            if dbapi_connection is not None:
                dbapi_connection.autocommit = True
                if write:
                    connection.info[BEGIN_PENDING] = EXCLUSIVE if exclusive else SHARED
            try:
                if not write and self._commit_each and not galera.is_galera(connection):
                    # A MySQL read commits each statement with it: no COMMIT round trip at its
                    # end (store.engine.COMMIT_EACH; cleared in `finally` below).
                    connection.info[COMMIT_EACH] = True
                # SQLite, one statement (see `transaction`): autocommit mode (the engine leaves
                # transaction control to us), unless a statement through SQLAlchemy begins one.
                lazy = single and self.dialect == "sqlite"
                try:
                    transaction = None if lazy else connection.begin()
                except sa_exc.DBAPIError as error:
                    raise classify_driver_error(error) from error
                if write and self.dialect in ("mysql", "mariadb") and not galera.is_galera(connection):
                    # The writers' lock goes with the transaction's first statement, in its
                    # round trip (store.engine.STATEMENT_PREFIX); UnitOfWork.lock makes it
                    # exclusive if it comes first.
                    connection.info[STATEMENT_PREFIX] = _env_lock_sql(self.schema, connection.dialect, exclusive)
                elif write and self.dialect in ("mysql", "mariadb"):
                    try:
                        locks.hold_writers_lock(connection, self.schema.mlmd_env, exclusive)
                    except sa_exc.DBAPIError as error:
                        self._rollback(transaction)
                        raise classify_driver_error(error) from error
                audit = self.audit if write else None
                changes = audit_log.Changes() if audit is not None else None
                uow = UnitOfWork(connection, self.schema, tenancy, changes, self.protection)
                pending = None
                try:
                    try:
                        yield uow
                        if audit is not None:
                            pending = self._append_audit(audit, uow)
                    except BaseException:
                        self._rollback(transaction or connection.get_transaction())
                        raise
                    transaction = transaction or connection.get_transaction()
                    if route is not None and write and dbapi_connection is not None:
                        # Read your writes (store.replicas): the commit's WAL position, with COMMIT.
                        connection.info[COMMIT_SUFFIX] = COMMIT_LSN_SQL
                    try:
                        if transaction is not None:
                            transaction.commit()
                        if route is not None and write and dbapi_connection is not None:
                            lsn = connection.info.pop(COMMIT_RESULT, None)
                            route.committed(int(lsn) if lsn is not None else None)
                    except sa_exc.DBAPIError as error:
                        domain = classify_driver_error(error)
                        if pending is not None:
                            # The record may or may not be stored: continue in a new chain.
                            audit.abandon_chain()  # type: ignore[union-attr]
                            pending = None
                            if isinstance(domain, errors.AlreadyExistsError):
                                # Only the audit record travels with COMMIT (PostgreSQL): its chain
                                # position clashed, not the caller's data; the new chain makes a
                                # retry succeed, and ABORTED is retried (api.retry).
                                domain = errors.AbortedError("the write's audit record clashed; retry the call")
                            elif dbapi_connection is not None and prepared.recover_after(
                                connection.engine, dbapi_connection, error
                            ):
                                # Its prepared statement was not on the session (store.prepared):
                                # the string failed before its COMMIT; the retry prepares it again.
                                domain = errors.AbortedError("the write's audit statement was lost; retry the call")
                        if isinstance(domain, errors.InternalError):
                            # We cannot tell whether the commit reached the disk.
                            domain = errors.UnavailableError("the commit outcome is unknown; check before retrying")
                        raise domain from error
                except MissingParent as error:
                    if uow.missing_parent is None:
                        raise
                    raise uow.missing_parent from error
                finally:
                    self._release_locks(uow)
            finally:
                if self.dialect in ("mysql", "mariadb") and not connection.invalidated:
                    discard_prefix(connection.info)
                if dbapi_connection is not None and not connection.invalidated:
                    connection.info.pop(BEGIN_PENDING, None)
                    connection.info.pop(COMMIT_SUFFIX, None)
                    connection.info.pop(COMMIT_RESULT, None)
                    with contextlib.suppress(Exception):  # a broken connection is discarded anyway
                        dbapi_connection.autocommit = False
        if pending is not None:
            audit_log.AuditLog.commit_pending(pending)
            call = audit_log.CURRENT_CALL.get()
            if call is not None:
                # Only now: a record that went down with its commit leaves the call to the
                # audit interceptor, which records it as failed.
                call.recorded = True
        for callback in uow._after_commit:
            callback()
        self.statistics.record(uow.inserted)

    @staticmethod
    def _append_audit(audit: audit_log.AuditLog, uow: UnitOfWork) -> audit_log.PendingAppend | None:
        """The record of a write transaction about to commit: every one a call makes, and
        those outside calls (administration) that changed something."""
        call = audit_log.CURRENT_CALL.get()
        changes = uow.changes
        if call is None and not (changes is not None and changes.detail()):
            return None
        if call is not None and not call.namespace:
            call.namespace = uow.tenancy.namespace
        try:
            pending = audit.append(uow.connection, call, audit_log.WRITE, "OK", changes, uow=uow)
        except BaseException as error:
            # Whatever failed, the chain's state in memory is not to be trusted: start another.
            audit.abandon_chain()
            domain = classify_driver_error(error) if isinstance(error, sa_exc.DBAPIError) else error
            if isinstance(domain, errors.AlreadyExistsError):
                # The record's chain position clashed, not the caller's data: the new chain
                # makes a retry succeed, and ABORTED is retried (api.retry).
                raise errors.AbortedError("the write's audit record clashed; retry the call") from error
            if isinstance(error, sa_exc.DBAPIError):
                _raise_domain(error)
            raise
        return pending

    def append_audit(
        self, call: audit_log.CallContext | None, kind: str, outcome: str, detail: dict[str, Any] | None = None
    ) -> None:
        """A record in a transaction of its own: a refused or failed call, a read, a prune."""
        audit = self.audit
        if audit is None:
            return
        # A private in-memory database is one shared connection: wait for its open transaction.
        lock = self._serialize if self._serialize is not None else nullcontext()
        try:
            with lock, self.engine.connect() as connection:
                connection.info["lineagedb_write"] = True
                with connection.begin():
                    pending = audit.append(connection, call, kind, outcome, detail=detail)
        except sa_exc.TimeoutError as error:  # nothing was written: the chain stays as it is
            raise errors.ResourceExhaustedError("all database connections are busy; retry the call") from error
        except sa_exc.DBAPIError as error:
            audit.abandon_chain()
            raise classify_driver_error(error) from error
        audit.commit_pending(pending)

    @staticmethod
    def _release_locks(uow: UnitOfWork) -> None:
        for release in uow._releases:
            try:
                release()
            except sa_exc.DBAPIError:
                # The session is gone and its locks with it; the pool discards the connection.
                log.warning("releasing a named lock failed", exc_info=True)
        if uow._releases and uow.connection.in_transaction():
            uow.connection.rollback()

    @staticmethod
    def _rollback(transaction: sa.RootTransaction | None) -> None:
        try:
            if transaction is not None and transaction.is_active:
                transaction.rollback()
        except sa_exc.DBAPIError:
            log.warning("rollback failed; the connection will be discarded", exc_info=True)

    def dispose(self) -> None:
        self.statistics.wait(timeout=10)
        self.engine.dispose()
