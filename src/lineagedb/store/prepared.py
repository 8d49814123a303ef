"""PostgreSQL: store.fast_read's statements as server-side prepared statements.

With namespaces on, most of what a read added on PostgreSQL was planning, not running:
every statement that returns nodes or edges carries the namespace probe subquery
(store.tenancy.visible), and parsing and planning it cost 45-75 us of the server's CPU
per statement, 13 statements in a 10-hop lineage call. A prepared statement is parsed
once per connection and runs a cached plan (see _plan_mode for which statements): a
lineage hop took 67 us of the server's time instead of 185 with namespaces (50 instead
of 111 without), measured by hand. The INSERT of a node joining a namespace
(store.tenancy.insert_joining_namespace) goes through here too.

psycopg2 has no protocol-level prepare, so this is SQL: `PREPARE name (types) AS ...`
once per connection, then `EXECUTE name(values)`, with the values quoted by psycopg2 as
for any statement. The text is store.fast_read's (its id lists are already one array
parameter, so one text serves every list length). A statement's own constants are
written into the prepared text, so the planner still sees them; the call's values (ids,
namespaces, page position and size, a filter's literals) are parameters, and a statement
with a filter's is planned with its values on every execution (see _plan_mode).
Parameter types follow psycopg2's literals: an int is declared bigint, a float double
precision, a bool boolean, and text, NULL and arrays `unknown` (PostgreSQL infers them
where they are used, as for a quoted literal; arrays carry their cast).

When:
* PREPARE is sent on its own, a statement's first use on a connection paying that round
  trip (once per connection's life). A statement PostgreSQL will not prepare (a parameter
  whose type it cannot infer, say) is remembered as such in this process and runs
  unprepared from then on. Outside a transaction (reads: autocommit, idle) that costs one
  refused round trip and nothing else; inside a write transaction the refusal aborted the
  transaction, so the call fails ABORTED and the server retries it (api.retry), once per
  process and statement.
* EXECUTE runs whenever the statement is prepared on the connection; `SET
  plan_cache_mode` goes with it, in its round trip, when the statement wants another
  mode than the session has, and only outside transactions (a rollback would undo it).

The names prepared on each DBAPI connection are tracked here, keyed weakly by the
connection object: a reconnect, an invalidated connection or a connection the pool
recycles is a new object with nothing prepared. What can still go wrong, and what then:
* the session lost its statements (`DISCARD ALL`, `DEALLOCATE ALL`, a transaction-mode
  pooler handing us another server session): EXECUTE fails with 26000; the connection's
  names are forgotten, and the statement is prepared again and run, or, inside a
  transaction (which the error aborted), the call fails ABORTED, which the server
  retries (api.retry);
* a migration changed the type of a column the statement returns (PostgreSQL re-plans
  prepared statements after schema changes by itself, but refuses one whose result
  type changed: 0A000): the same, with DEALLOCATE first;
* after MAX_RECOVERIES such recoveries in one engine (a pooler that keeps swapping
  sessions), prepared statements are switched off for that engine, with a warning.
Set LINEAGEDB_PG_PREPARED=off to never prepare (a transaction-mode pooler, or to compare).

Each connection keeps at most MAX_PER_CONNECTION statements, least recently used
deallocated first (each compiled filter is its own statement).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from lineagedb import errors
from lineagedb.store.engine import begin_prefix
from lineagedb.store.statement_count import count_driver_statement

log = logging.getLogger(__name__)

ENV = "LINEAGEDB_PG_PREPARED"
ENABLED = os.environ.get(ENV, "on").strip().lower() not in ("off", "0", "false", "no")
MAX_PER_CONNECTION = 256
MAX_RECOVERIES = 50
# Parameters whose values the planner must see on every execution: a filter's literals
# (store.filter_query binds them under this prefix, one statement per filter shape).
PLANNED_WITH_VALUES = "filter_value_"

# psycopg2's placeholders in SQLAlchemy's pyformat text, and its escaped percent sign.
_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s")
# A call value's Python type -> its parameter's declared type (see the module doc). A
# value of any other type (bytes, a date) runs the statement unprepared.
_DECLARED = {
    int: "bigint",
    bool: "boolean",
    float: "double precision",
    str: "unknown",
    type(None): "unknown",
    list: "unknown",  # an array parameter; its SQL casts it
}
# SQLSTATEs: a prepared statement missing / already there; a cached plan whose result type changed.
_MISSING, _DUPLICATE, _RESULT_CHANGED = "26000", "42P05", "0A000"
# psycopg2.extensions.TRANSACTION_STATUS_IDLE: no transaction open on the session.
_IDLE = 0


class Statement:
    """One prepared form of a fast_read statement: its name, PREPARE and EXECUTE texts."""

    __slots__ = ("execute", "mode", "name", "parameters", "prepare")

    def __init__(self, name: str, prepare: str, execute: str, parameters: tuple[str, ...], mode: str) -> None:
        self.name = name
        self.prepare = prepare
        self.execute = execute  # positional %s placeholders, one per parameter
        self.parameters = parameters  # the call values' names, in $n order
        self.mode = mode  # the plan_cache_mode it runs under (see _plan_mode)


# A statement PostgreSQL refused to prepare (remembered per statement and signature).
REFUSED = Statement("", "", "", (), "")


class _Session:
    """What is prepared on one DBAPI connection (used by one thread at a time)."""

    __slots__ = ("__weakref__", "mode", "modes", "names", "stale")

    def __init__(self, server_version: int) -> None:
        self.names: OrderedDict[str, None] = OrderedDict()  # least recently used first
        self.stale: set[str] = set()  # prepared, but to be deallocated before preparing again
        self.mode: str | None = None  # the session's plan_cache_mode, if this module set it
        self.modes = server_version >= 120000  # plan_cache_mode exists from PostgreSQL 12


_sessions: weakref.WeakKeyDictionary[Any, _Session] = weakref.WeakKeyDictionary()
_recoveries: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def prepared_names(dbapi_connection: Any) -> list[str]:
    """The statement names this module believes are prepared on `dbapi_connection` (tests)."""
    session = _sessions.get(dbapi_connection)
    return list(session.names) if session is not None else []


def claim(dbapi_connection: Any, name: str) -> bool:
    """For a statement that goes out in a string with others, its PREPARE first (the audit
    record that travels with COMMIT, store.audit_log): whether the string must carry the
    PREPARE, i.e. `name` is not prepared on this connection yet. Either way it counts as
    prepared from now on: the PREPARE runs first in its string, and a prepared statement
    outlives the rollback of the transaction it was made in. If the session lost it, or
    had it when this module thought not, the string fails before its COMMIT; see
    `recover_after`."""
    session = _session(dbapi_connection)
    if name in session.names:
        session.names.move_to_end(name)
        return False
    session.names[name] = None
    return True


def recover_after(engine: Any, dbapi_connection: Any, error: BaseException) -> bool:
    """After a string carrying a `claim`ed statement failed: whether it failed because the
    session did not have what this module believed (the statement missing, or already
    there). A missing statement means the session lost what it had: that is forgotten, so
    the next string prepares again. Either way the call can be retried."""
    code = getattr(getattr(error, "orig", error), "pgcode", None)
    if code not in (_MISSING, _DUPLICATE):
        return False
    if code == _MISSING:  # the session lost its statements (DISCARD ALL, a pooler): prepare again
        session = _session(dbapi_connection)
        session.names.clear()
        session.stale.clear()
        session.mode = None
    # Already there: `claim` has marked it, so the next string only EXECUTEs it.
    _count_recovery(engine)
    return True


def in_use(engine: Any) -> bool:
    """Whether statements are prepared on `engine`'s connections (see the module doc)."""
    return ENABLED and _recoveries.get(engine, 0) <= MAX_RECOVERIES


def _session(dbapi_connection: Any) -> _Session:
    session = _sessions.get(dbapi_connection)
    if session is None:
        with _lock:
            session = _sessions.setdefault(dbapi_connection, _Session(dbapi_connection.server_version))
    return session


def fetch(
    uow: Any,
    cache: dict[tuple[Any, ...], Statement],
    sql: str,
    values: Mapping[str, Any],
    constants: Mapping[str, Any],
    parameters: Mapping[str, Any],
    arrays: Collection[str] = (),
) -> tuple[list[tuple[Any, ...]], Sequence[Any] | None] | None:
    """Rows and cursor description of `sql` (fast_read's pyformat text, `values` bound)
    run as a prepared statement; None when it is not to be (the caller runs it as before).

    `constants` are the statement's own values (SQLAlchemy's bound literals), written into
    the prepared text unless the call passes its own in `parameters`; `arrays` names the
    array parameters. `cache` (one per fast_read plan) keeps the prepared forms by the
    types of the call's values."""
    connection = uow.connection
    engine = connection.engine
    if not in_use(engine):
        return None
    if constants:
        key = tuple(
            "=" if name in constants and name not in parameters else _DECLARED.get(type(value))
            for name, value in values.items()
        )
    else:  # most statements: no constants of their own
        key = tuple(map(_DECLARED.get, map(type, values.values())))
    statement = cache.get(key)
    if statement is REFUSED or None in key:
        return None
    dbapi = connection.connection.dbapi_connection
    session = _session(dbapi)
    idle = dbapi.autocommit and dbapi.info.transaction_status == _IDLE
    if statement is None:
        statement = _build(dbapi, sql, values, key, arrays)
        cache[key] = statement
    prepared = statement.name in session.names
    if not prepared and not idle and statement.name in session.stale:
        return None  # to be deallocated first, which waits for a session without a transaction
    begin = begin_prefix(connection.info)  # a write transaction's BEGIN goes with its first statement
    arguments = tuple(values[name] for name in statement.parameters)
    # The plan cache mode is a session setting: switched only outside transactions (a SET
    # in one is undone by its rollback), with the statement, in its round trip.
    switch = ""
    if not statement.mode:
        pass  # no parameters: planned once whatever the mode (see _plan_mode)
    elif session.mode != statement.mode and session.modes and idle and not begin:
        switch = f"SET plan_cache_mode = {statement.mode}; "
    elif (begin or not idle) and session.mode == _GENERIC and uow.custom_plans != (statement.mode != _GENERIC):
        # A write transaction switches with SET LOCAL (a SET in it would outlast a rollback),
        # in the statement's round trip, and only when the statement wants the other mode:
        # `auto` for statements with other than array parameters (uow.custom_plans records
        # it), the session's generic plans again for array-only ones. Running all of a
        # write's statements under `auto` planned PutExecution's namespace lookup of its
        # inputs (tenancy.locate_many) on every call, a custom plan cheaper than the
        # generic one for two ids: 300 custom plans in 300 calls, ~0.25 ms each. (The
        # lookup's generic plan once grew with the store; see tenancy._locate_statement.)
        switch = f"SET LOCAL plan_cache_mode = {statement.mode}; "

    def run(cursor: Any) -> tuple[list[tuple[Any, ...]], Sequence[Any] | None]:
        if not prepared and not _prepare(cursor, session, statement, cache, key, idle):
            cursor.execute(begin + sql, values)  # refused: as it ran before
            return list(cursor.fetchall()), cursor.description
        try:
            cursor.execute(begin + switch + statement.execute, arguments)
        except uow.connection.dialect.loaded_dbapi.Error as error:
            code = getattr(error, "pgcode", None)
            if switch and not switch.startswith("SET LOCAL"):
                session.mode = None  # the SET went with the failed statement
            if code not in (_MISSING, _RESULT_CHANGED):
                raise
            _recovering(engine, session, statement, code)
            if begin or not idle:
                # The error aborted the transaction; the call is retried whole (api.retry).
                raise errors.AbortedError(
                    "a prepared statement changed under the transaction; retry the call"
                ) from None
            if not _prepare(cursor, session, statement, cache, key, idle):
                cursor.execute(sql, values)
                return list(cursor.fetchall()), cursor.description
            count_driver_statement(statement.execute)
            cursor.execute(statement.execute, arguments)
        else:
            if switch.startswith("SET LOCAL"):
                uow.custom_plans = statement.mode != _GENERIC
            elif switch:
                session.mode = statement.mode
        session.names.move_to_end(statement.name)
        return list(cursor.fetchall()), cursor.description

    # Counts the EXECUTE (store.statement_count); a PREPARE is counted where it is sent.
    found: tuple[list[tuple[Any, ...]], Sequence[Any] | None] = uow.on_driver_cursor(statement.execute, run, arguments)
    return found


def _build(dbapi: Any, sql: str, values: Mapping[str, Any], key: tuple[Any, ...], arrays: Collection[str]) -> Statement:
    """The prepared form of `sql` for calls whose values have the types in `key`."""
    declared = dict(zip(values, key, strict=True))
    numbers: dict[str, int] = {}
    with dbapi.cursor() as cursor:

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "%"
            if declared[name] == "=":
                # The statement's own constant, quoted by psycopg2 as it would be for the statement.
                return str(cursor.mogrify("%s", (values[name],)).decode())
            if name not in numbers:
                numbers[name] = len(numbers) + 1
            return f"${numbers[name]}"

        body = _PLACEHOLDER.sub(replace, sql)
    names = tuple(numbers)
    types = ", ".join(declared[name] for name in names)
    digest = hashlib.blake2b(f"{types}\n{body}".encode(), digest_size=12).hexdigest()
    name = f"lineagedb_{digest}"
    prepare = f"PREPARE {name} ({types}) AS {body}" if names else f"PREPARE {name} AS {body}"
    execute = f"EXECUTE {name}({', '.join(['%s'] * len(names))})" if names else f"EXECUTE {name}"
    return Statement(name, prepare, execute, names, _plan_mode(names, arrays))


_GENERIC = "force_generic_plan"
_CUSTOM = "force_custom_plan"
_ANY = ""  # a statement without parameters


def _plan_mode(parameters: Sequence[str], arrays: Collection[str]) -> str:
    """Generic plans for statements whose only parameters are arrays (ids, namespaces).

    Under PostgreSQL's default (auto), a statement gets five custom plans, then its generic
    plan if that is estimated to cost about as much. An array parameter is estimated at 10
    elements, so a lineage hop's events of one or two nodes cost 8x less as custom plans,
    and PostgreSQL planned every execution of them again: 100 of 100 custom plans for the
    hops' events, attributions and associations, and with them 45-60 us of planning each,
    for the same plan (a bitmap scan of the id index, the namespace probe per row). The
    generic plan of such a statement has the same shape at every array length. Statements
    with other parameters (a page's size and position, a scope's id) keep `auto`: a page's
    best plan can depend on them (walk the id index or sort the matches).

    Statements with a filter's values (PLANNED_WITH_VALUES) are planned with them on every
    execution (`force_custom_plan`), as when the values were written into each text's own
    prepared statement: a filter on a value most nodes have and one on a value few have
    want different plans (walking the id index to the page's end, or sorting the few
    matches), and one generic plan for the shape would serve one of them badly. What the
    shape saves is the PREPARE of every new text (its parse and analysis, and a statement
    kept per text on the connection).

    A statement without parameters (the type reads, say) has one plan under every mode:
    PostgreSQL only considers custom plans when there are values to plan with. It runs
    under whatever mode the session has (`_ANY`), with no SET: a lineage call's type read
    between its event hops (generic) and its links (generic) switched the session to `auto`
    and back, two of the four SETs each call sent."""
    if not parameters:
        return _ANY
    if any(name.startswith(PLANNED_WITH_VALUES) for name in parameters):
        return _CUSTOM
    if all(name in arrays for name in parameters):
        return _GENERIC
    return "auto"


def _prepare(
    cursor: Any,
    session: _Session,
    statement: Statement,
    cache: dict[tuple[Any, ...], Statement],
    key: tuple[Any, ...],
    idle: bool,
) -> bool:
    """PREPARE `statement` on the session, deallocating what must go first; False if
    PostgreSQL refused it (it then runs unprepared, from now on).

    Inside a transaction (`idle` false: a write's later statements) nothing is deallocated,
    and a PREPARE that fails has aborted the transaction: the call fails ABORTED, which the
    server retries (api.retry), then with the statement unprepared or known prepared."""
    evict: list[str] = []
    if idle:
        evict = list(session.stale)
        session.stale.clear()
        while len(session.names) >= MAX_PER_CONNECTION:
            evict.append(session.names.popitem(last=False)[0])
    sql = "".join(f"DEALLOCATE {name}; " for name in evict) + statement.prepare
    count_driver_statement(sql)
    try:
        cursor.execute(sql)
    except cursor.connection.Error as error:  # psycopg2's, as DB-API connections expose it
        code = getattr(error, "pgcode", None) or ""
        if evict and code == _MISSING:
            session.names.clear()  # the session lost its statements: nothing to deallocate
            session.stale.clear()
            return _prepare(cursor, session, statement, cache, key, idle)
        if code == _DUPLICATE:
            session.names[statement.name] = None  # prepared already (the name is the text's digest)
        elif code[:2] in ("42", "22"):
            # Not preparable as written (a type PostgreSQL cannot infer, a function with no
            # bigint form): this statement runs unprepared from now on.
            log.debug("PostgreSQL did not prepare a statement (%s): %s", code, error)
            cache[key] = REFUSED
        else:
            raise
        if not idle:
            raise errors.AbortedError("a statement could not be prepared in the transaction; retry the call") from None
        return code == _DUPLICATE
    session.names[statement.name] = None
    return True


def _recovering(engine: Any, session: _Session, statement: Statement, code: str) -> None:
    """Forget what the session no longer has (see the module doc), counting recoveries."""
    if code == _MISSING:
        session.names.clear()
        session.stale.clear()
        session.mode = None  # DISCARD ALL also resets settings
    else:
        session.names.pop(statement.name, None)
        session.stale.add(statement.name)
    _count_recovery(engine)


def _count_recovery(engine: Any) -> None:
    with _lock:
        count = _recoveries[engine] = _recoveries.get(engine, 0) + 1
    if count == MAX_RECOVERIES + 1:
        log.warning(
            "prepared statements keep disappearing from the database's sessions (a pooler in "
            "transaction mode?): %d recoveries; statements run unprepared from now on (set %s=off "
            "to skip this)",
            MAX_RECOVERIES,
            ENV,
        )
