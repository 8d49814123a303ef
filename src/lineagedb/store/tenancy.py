"""Namespaces in the data-access layer: which nodes a call may see, and where new ones go.

Every artifact, execution and context belongs to one namespace. MLMD's tables stay
unchanged; membership lives in LineageDB's own table `lineagedb_node_namespace`, which
holds a row only for nodes *outside* `default`. Nodes MLMD (or LineageDB before
namespaces) wrote have no row, so they belong to `default` without any backfill, and a
store that never uses namespaces pays nothing on writes.

The transport edge decides what a caller may read (the policy) and sets `CURRENT_TENANCY`
for the call; `Database.transaction()` hands it to the unit of work, and every
repository statement that returns nodes or edges adds `visible(...)` (on MySQL/MariaDB,
reads by id, listings and lineage take `readable_by_join`, the same truth as a join; on
PostgreSQL, reads by a dense list of ids take `visible_in_range`), so a forgotten check in
an edge cannot leak rows. A statement that forgot the namespace parameters
fails (an unbound parameter), it does not return more.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles

from lineagedb import errors

DEFAULT_NAMESPACE = "default"
# Kubernetes-namespace-like names: they end up in metadata headers and policy files.
NAMESPACE_PATTERN = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")
VISIBLE_PARAMETER = "tenancy_readable"

# Node kinds as stored in the membership table (MLMD's own type_kind numbers).
ARTIFACT_NODE, EXECUTION_NODE, CONTEXT_NODE = 1, 0, 2


def check_namespace_name(name: str) -> str:
    if not isinstance(name, str) or NAMESPACE_PATTERN.fullmatch(name) is None:
        raise errors.InvalidArgumentError(
            "a namespace name is 1-63 lower-case letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return name


class Reach(enum.Enum):
    """Whether statements need the namespace predicate (part of cached statements' keys)."""

    ALL = "all"  # no restriction (authentication off, cluster admins)
    RESTRICTED = "restricted"  # only the namespaces in VISIBLE_PARAMETER, `default` not among them
    # The same, `default` among them: SQLite's form of the predicate differs (see `visible`);
    # the other backends compile both alike.
    RESTRICTED_WITH_DEFAULT = "restricted_with_default"


@dataclass(frozen=True)
class Tenancy:
    """What one call may see and change, and where the nodes it creates go.

    `readable` / `writable` of None mean every namespace. `page_token_key` signs
    page tokens (store.pagination): a key derived from the server's secret, the
    principal and its readable namespaces, so a token only works for the caller it
    was issued to. None with authentication off, where MLMD's unsigned tokens are used.
    """

    namespace: str = DEFAULT_NAMESPACE
    readable: frozenset[str] | None = None
    writable: frozenset[str] | None = None
    page_token_key: bytes | None = None
    # Namespaces whose sensitive property values this call reads in clear (the policy's
    # secrets:read); None = every namespace. The default, nowhere, is what calls get with
    # authentication off: sensitive values read back redacted (store.sensitive).
    secrets_readable: frozenset[str] | None = frozenset()

    @functools.cached_property
    def reach(self) -> Reach:
        if self.readable is None:
            return Reach.ALL
        if DEFAULT_NAMESPACE in self.readable:
            return Reach.RESTRICTED_WITH_DEFAULT
        return Reach.RESTRICTED

    @functools.cached_property
    def parameters(self) -> dict[str, Any]:
        """Bound parameters for statements built with `visible(...)` under this reach."""
        if self.readable is None:
            return {}
        return {VISIBLE_PARAMETER: sorted(self.readable) or [""]}  # "" names no namespace

    def may_write(self, namespace: str) -> bool:
        return self.writable is None or namespace in self.writable

    def may_read(self, namespace: str) -> bool:
        return self.readable is None or namespace in self.readable


UNRESTRICTED = Tenancy()
# Set by the transport edge for the duration of one call (a contextvar, so each gRPC
# worker thread sees only its own call's tenancy).
CURRENT_TENANCY: contextvars.ContextVar[Tenancy | None] = contextvars.ContextVar("lineagedb_tenancy", default=None)


def kind_number(kind_value: str) -> int:
    return _KIND_NUMBERS[kind_value]


_KIND_NUMBERS = {"artifact": ARTIFACT_NODE, "execution": EXECUTION_NODE, "context": CONTEXT_NODE}


def visible(node_kind: int, node_id: sa.ColumnElement[Any], reach: Reach) -> sa.ColumnElement[bool]:
    """Whether the node `node_id` (of `node_kind`) is readable under `reach`.

    The node's namespace is read with a scalar subquery (a primary-key probe per
    candidate row; no row means `default`) and compared with the readable names, the
    expanding parameter VISIBLE_PARAMETER, so statements stay cacheable per reach.
    Not EXISTS: PostgreSQL turns that into a semi-join and, for a namespace it has no
    statistics on, drives it from the namespace's whole membership (measured: lineage
    hops 7x slower on a 500-node namespace, and growing with it).

    The comparison is wrapped as `NULLIF(..., false) IS NOT NULL` (true exactly when it
    is; it is never NULL itself, so NOT of it stays exact). Only for PostgreSQL's
    estimate: it cannot estimate `<subquery> = ANY(names)` and takes it to keep 0.5% of
    the rows, so a by-id read of 100 nodes was planned for one row (the type join became
    a nested loop scanning `type` once per node: 40% of what the predicate added to that
    statement, measured in the server's CPU). `IS NOT NULL` of an expression is taken to
    keep 99.5%, the right order for a reader's own nodes, and the plans are those of the
    statement without the predicate (which is evaluated where it was).

    SQLite and MySQL/MariaDB take the EXISTS form below instead. On MariaDB the scalar
    subquery cost ~5 us a row (by-id reads of 100 with auth on 1.18-1.23x auth off, the EXISTS
    form 1.13-1.16x, `bench/auth_overhead.py --backends mysql`).
    """
    if reach is Reach.ALL:
        return sa.true()
    m = MEMBERSHIP.alias()
    names: sa.BindParameter[list[str]] = sa.bindparam(VISIBLE_PARAMETER, expanding=True)
    row = _membership_row(m, node_kind, node_id)
    namespace = sa.select(m.c.namespace).where(row).scalar_subquery()
    readable = sa.func.coalesce(namespace, _DEFAULT_LITERAL).in_(names)
    probe = sa.func.nullif(readable, sa.false(), type_=sa.Boolean).is_not(None)
    # SQLite: the same truth as EXISTS, which SQLite runs as a cheaper subroutine than a
    # scalar subquery plus COALESCE and NULLIF (measured in SQLite alone, 100 nodes by id:
    # 99 us without namespaces, 148 with the scalar form, 133 with this one). A node without
    # a row is in `default`, so whether `default` is readable decides the form, and Reach
    # tells it apart.
    if reach is Reach.RESTRICTED_WITH_DEFAULT:
        # Readable unless it has a row naming a namespace outside the readable ones.
        exists = ~sa.exists().where(row, m.c.namespace.not_in(names))
    else:
        exists = sa.exists().where(row, m.c.namespace.in_(names))
    return _Visible(probe, exists)


class _Visible(sa.sql.expression.ColumnElement[bool]):
    """`visible`'s predicate: `probe` (the scalar subquery form) on PostgreSQL, `exists` (the
    same truth, never NULL either) on SQLite and MySQL/MariaDB."""

    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [
        ("probe", sa.sql.visitors.InternalTraversal.dp_clauseelement),
        ("exists", sa.sql.visitors.InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, probe: sa.ColumnElement[bool], exists: sa.ColumnElement[bool]) -> None:
        self.probe = probe
        self.exists = exists

    @property
    def _from_objects(self) -> list[Any]:
        return []  # both forms are subqueries correlated to the enclosing statement's FROM


@compiles(_Visible)
def _compile_probe(element: _Visible, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.probe, **kw))


@compiles(_Visible, "sqlite")
@compiles(_Visible, "mysql")
def _compile_exists(element: _Visible, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.exists, **kw))


# PostgreSQL reads by a dense list of ids (`visible_in_range`): the id range a statement
# checks, a parameter [first, last], and the most ids one statement's range covers.
ID_RANGE_PARAMETER = "tenancy_id_range"
RANGE_SPAN_LIMIT = 2048


def visible_in_range(node_kind: int, node_id: sa.ColumnElement[Any], reach: Reach) -> sa.ColumnElement[bool]:
    """`visible`'s truth for a PostgreSQL read of nodes by a dense list of ids: the membership
    rows of the ids' range are read once, in one scan of the membership key, into a hashed
    subplan that each node row is looked up in, instead of a key probe per node row.

    Measured on 100 consecutive ids (the statement alone, as prepared): 156 us without the
    check, 270 with the probe per row, 179 with this (`default` readable; 194 for a reader of
    team namespaces only). A range reads every membership row between its ends, so it is only
    cheaper than probes when the ids are dense (the caller decides, `dense`); it is the same
    truth whatever the ids.

    The range is the parameter ID_RANGE_PARAMETER, [first, last]. It covers at most
    RANGE_SPAN_LIMIT ids (`last` is capped at first + limit - 1) and the statement returns no
    node outside it, so a range that misses some ids hides those nodes rather than leaving them
    unchecked. The subquery's LIMIT never cuts it short (a node kind's ids are unique, so at
    most RANGE_SPAN_LIMIT rows match); it tells the planner so. PostgreSQL hashes a subplan
    only when it expects the rows to fit in memory, and with the range's ends unknown to a
    generic plan it expects 0.5% of the membership table: beyond tens of millions of members
    it would otherwise scan the range once per node row.

    With `default` readable the subplan holds the range's nodes in other namespaces (NOT IN);
    without it, those in the readable ones, `IS true` keeping the IN a hashed subplan rather
    than a semi-join (measured 250 us as a join). Neither subquery returns NULL (node_id is
    part of the key), so NOT IN is exact."""
    if reach is Reach.ALL:
        return sa.true()
    # Parenthesized: PostgreSQL reads `$1::BIGINT[][1]` as a cast to a two-dimensional type.
    bounds = sa.sql.elements.Grouping(sa.bindparam(ID_RANGE_PARAMETER, type_=postgresql.ARRAY(sa.BigInteger)))
    first = bounds[sa.literal_column("1", sa.Integer)]
    beyond = sa.literal_column(str(RANGE_SPAN_LIMIT - 1), sa.BigInteger)
    last = sa.func.least(bounds[sa.literal_column("2", sa.Integer)], first + beyond)
    m = MEMBERSHIP.alias()
    names: sa.BindParameter[list[str]] = sa.bindparam(VISIBLE_PARAMETER, expanding=True)
    limit = sa.literal_column(str(RANGE_SPAN_LIMIT), sa.Integer)
    members = sa.select(m.c.node_id).where(m.c.node_kind == _kind_literal(node_kind), m.c.node_id.between(first, last))
    if reach is Reach.RESTRICTED_WITH_DEFAULT:
        check = node_id.not_in(members.where(m.c.namespace.not_in(names)).limit(limit))
    else:
        check = node_id.in_(members.where(m.c.namespace.in_(names)).limit(limit)).is_(sa.true())
    # As in `visible`: NULLIF(...) IS NOT NULL keeps PostgreSQL's row estimate (a range of
    # unknown ends is taken to keep 0.5% of the rows; the type join then became a nested loop).
    in_range = sa.func.nullif(node_id.between(first, last), sa.false(), type_=sa.Boolean).is_not(None)
    return sa.and_(in_range, check)


def dense(ids: Sequence[int]) -> bool:
    """Whether the sorted `ids` are close enough together for `visible_in_range`: their range is
    at most three times their number, and within RANGE_SPAN_LIMIT. Measured on 100 ids: up to
    every third id the range costs less than the probes for both kinds of reader; at every
    fourth, more for a reader without `default` (308 against 286 us)."""
    span = ids[-1] - ids[0] + 1 if ids else 0
    return 0 < span <= min(3 * len(ids), RANGE_SPAN_LIMIT)


def joins_membership(dialect: str) -> bool:
    """Whether statements on `dialect` check namespaces by `readable_by_join` where they can
    (MySQL/MariaDB) rather than by `visible`'s subquery."""
    return dialect in ("mysql", "mariadb")


def readable_by_join(query: sa.Select[Any], table: sa.FromClause, column: str, node_kind: int) -> sa.Select[Any]:
    """`query` (over `table`) keeping the rows whose node `table.c[column]` (of `node_kind`) is
    readable: `visible`'s truth (COALESCE(namespace, 'default') among the readable names, the
    parameter VISIBLE_PARAMETER; no membership row means `default`) as an outer join to the
    membership row, for MySQL/MariaDB. The membership key is (node_kind, node_id), so the join
    matches at most one row per row of `table`: no row is repeated or lost.

    An outer join, with the test in COALESCE, for both reaches: MariaDB must then read `table`
    first and probe the membership key once per row (eq_ref). An inner join (or an outer join
    with `namespace IN (...)`, which it turns into one) let it start from the membership rows of
    the namespace instead: lineage's attributions statement read every context of `team-a` and
    all their attributions (rows examined 74 for 12 sent, in the bench), growing with the namespace.

    Why not `visible`'s EXISTS: SQLAlchemy renders that (a Boolean-typed element) as
    `EXISTS (...) = 1` on MySQL, which MariaDB cannot turn into a semi-join; it runs as a
    dependent subquery with its own optimization and subquery cache: a fixed ~100 us of server
    time per statement (slow log: a lineage hop of ~5 events ~260 us with auth on, ~130 off), and
    ~2 us per row (100 artifacts by id, in MariaDB alone: 696 us without namespaces, 890 with
    EXISTS, 776 with this join)."""
    m = MEMBERSHIP.alias("lineagedb_membership")
    on = _membership_row(m, node_kind, table.c[column])
    names: sa.BindParameter[list[str]] = sa.bindparam(VISIBLE_PARAMETER, expanding=True)
    return query.outerjoin_from(table, m, on).where(sa.func.coalesce(m.c.namespace, _DEFAULT_LITERAL).in_(names))


def _membership_row(m: sa.FromClause, node_kind: int, node_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """The condition on `m` (an alias of MEMBERSHIP) matching the row of node `node_id`."""
    return sa.and_(m.c.node_kind == _kind_literal(node_kind), m.c.node_id == node_id)


# The namespace checks' and lookups' own constants are written into their SQL, not bound: as
# parameters they went through every execution's binding (a lineage call's 13 statements, each
# with a node kind and 'default'), and PostgreSQL's prepared forms wrote them back into the text
# anyway. Both are this module's values, never a caller's: a node kind number, and
# DEFAULT_NAMESPACE, which matches NAMESPACE_PATTERN (no quote or backslash to escape).
_DEFAULT_LITERAL = sa.literal_column(f"'{DEFAULT_NAMESPACE}'", sa.String)


def _kind_literal(node_kind: int) -> sa.ColumnElement[int]:
    return sa.literal_column(str(int(node_kind)), sa.SmallInteger)


def locate(uow: Any, kind_value: str, ids: Collection[int]) -> dict[int, str]:
    """The namespace of each *existing* node among `ids` (missing ids are left out),
    whatever the caller may read: for the write rules, which must tell "hidden" from
    "missing" without saying so. See `locate_many`."""
    return locate_many(uow, {kind_value: ids})[kind_value]


def locate_many(uow: Any, wanted: Mapping[str, Collection[int]]) -> dict[str, dict[int, str]]:
    """`locate` for several node kinds in one statement (per 500 ids), so a composite
    write can learn every stored node it names at once. Nodes this transaction created or
    already looked up (found or not) are answered from the unit of work's memory, so a
    write checking the edges to the nodes it just wrote costs nothing."""
    if uow.namespaces_ahead:
        uow.send_pending()  # what `locate_ahead` asked for is wanted now
    known: dict[tuple[int, int], str | None] = uow.known_namespaces
    lookups = _lookups(uow, wanted)
    if lookups:
        from lineagedb.store import fast_read  # unit_of_work (which fast_read needs) imports this module

        for statement, parameters in lookups:
            _learn(uow, fast_read.rows(uow, statement, parameters))
    result: dict[str, dict[int, str]] = {}
    for kind_value, ids in wanted.items():
        number = _KIND_NUMBERS[kind_value]
        found = result[kind_value] = {}
        for node_id in ids:
            namespace = known[(number, node_id)]
            if namespace is not None:
                found[node_id] = namespace
    return result


def locate_ahead(uow: Any, wanted: Mapping[str, Collection[int]]) -> None:
    """`locate_many` for answers wanted later in this write: on MySQL/MariaDB the lookup waits
    for the transaction's next statement and goes in its round trip (PutExecution's checks
    come after its first INSERT: a round trip less per call). The first `locate_many` that
    needs an answer before then sends it alone; elsewhere the lookup runs now."""
    from lineagedb.store import fast_read  # unit_of_work (which fast_read needs) imports this module

    for statement, parameters in _lookups(uow, wanted):
        if fast_read.read_ahead(uow, statement, parameters, functools.partial(_learn_ahead, uow)):
            uow.namespaces_ahead += 1
        else:
            _learn(uow, fast_read.rows(uow, statement, parameters))


def _lookups(uow: Any, wanted: Mapping[str, Collection[int]]) -> list[tuple[Any, dict[str, list[int]]]]:
    """The lookups (statement, parameters) of the nodes among `wanted` this transaction does
    not know yet, 500 per statement; each is taken as missing until its lookup finds it.
    Usually none: a write's checks ask again about the nodes it looked up or created."""
    known: dict[tuple[int, int], str | None] = uow.known_namespaces
    pending = {
        (number, node_id)
        for kind_value, ids in wanted.items()
        for number in (_KIND_NUMBERS[kind_value],)
        for node_id in ids
        if (number, node_id) not in known
    }
    if not pending:
        return []
    ordered = sorted(pending)
    joined = joins_membership(uow.dialect)
    lookups = []
    for start in range(0, len(ordered), 500):
        by_kind: dict[int, list[int]] = {}
        for number, node_id in ordered[start : start + 500]:
            by_kind.setdefault(number, []).append(node_id)
            known[(number, node_id)] = None  # until the statement finds it
        kinds = tuple(sorted(by_kind))
        statement = _locate_statement(uow.schema, kinds, joined)
        lookups.append((statement, {f"ids_{number}": by_kind[number] for number in kinds}))
    return lookups


def _learn(uow: Any, rows: Iterable[Sequence[Any]]) -> None:
    known: dict[tuple[int, int], str | None] = uow.known_namespaces
    for number, node_id, namespace in rows:
        known[(int(number), int(node_id))] = namespace if namespace is not None else DEFAULT_NAMESPACE


def _learn_ahead(uow: Any, rows: Iterable[Sequence[Any]]) -> None:
    _learn(uow, rows)
    uow.namespaces_ahead -= 1


_KIND_TABLES = {ARTIFACT_NODE: "artifact", EXECUTION_NODE: "execution", CONTEXT_NODE: "context"}


@functools.cache
def _locate_statement(schema: Any, kinds: tuple[int, ...], joined: bool = False) -> sa.Select[Any] | sa.CompoundSelect:
    """(kind, id, namespace or NULL) of the stored nodes among the `ids_<kind>` parameters,
    one statement for every kind (PyMySQL parses each result's column descriptions in
    Python, ~40 us of the client's time for a second result).

    PostgreSQL and SQLite: the namespace is a scalar subquery (a probe of the membership key
    per node), not an outer join: PostgreSQL runs the statement with a generic plan
    (store.prepared: its only parameters are arrays), planned once per connection, and a
    join's generic plan can be a hash join over the whole membership table if it was planned
    when that was small, which then grows with the store. The probe stays a probe. As a
    custom plan, which write transactions used to run it under, it was planned again on
    every call: 300 of 300 in pg_prepared_statements, about 0.25 ms of PutExecution's
    ~0.3 ms over auth off.

    MySQL/MariaDB (`joined`): each kind's nodes outer-joined to their membership key (eq_ref:
    one probe per node; the join cannot repeat a row). MariaDB runs the scalar subquery as a
    dependent subquery, optimized on its own: for two inputs and a context, ~120 us of server
    time against ~100 for the join (by hand, `SELECT 1`'s round trip subtracted), and
    PutExecution with namespaces +145 -> +125 us over without (in process, three runs of 400
    calls each way)."""
    selects = []
    for number in kinds:
        node = getattr(schema, _KIND_TABLES[number])
        m = MEMBERSHIP.alias(f"membership_{number}")
        row = _membership_row(m, number, node.c.id)
        kind = sa.literal_column(str(number), sa.Integer).label("kind")
        if joined:
            query = sa.select(kind, node.c.id, m.c.namespace).select_from(node.outerjoin(m, row))
        else:
            namespace = sa.select(m.c.namespace).where(row).scalar_subquery()
            query = sa.select(kind, node.c.id, namespace.label("namespace"))
        selects.append(query.where(node.c.id.in_(sa.bindparam(f"ids_{number}", expanding=True))))
    return selects[0] if len(selects) == 1 else sa.union_all(*selects)


def namespaces_of(uow: Any, kind_value: str, ids: Collection[int]) -> dict[int, str]:
    """The namespace of each of `ids`; a node that does not exist counts as `default`."""
    located = locate(uow, kind_value, ids)
    return {node_id: located.get(node_id, DEFAULT_NAMESPACE) for node_id in ids}


def require_creatable(uow: Any) -> None:
    """Nodes may be created only in a namespace the call may write and that exists.

    Checked here, where every node insert passes, so no write path can skip it. That the
    namespace exists, and stays until this write commits (a shared lock holds off
    delete_namespace), is checked by the membership INSERT itself on PostgreSQL and
    MySQL (see record_membership); SQLite, whose writers are serialized anyway, reads the
    namespace table once per transaction."""
    namespace = uow.tenancy.namespace
    if not uow.tenancy.may_write(namespace):
        raise errors.PermissionDeniedError(f"you may not create metadata in namespace {namespace!r}")
    if namespace == DEFAULT_NAMESPACE or namespace in uow.checked_namespaces or uow.dialect != "sqlite":
        return
    from lineagedb.store import fast_read  # unit_of_work (which fast_read needs) imports this module

    if not fast_read.rows(uow, _NAMESPACE_EXISTS, {"name": namespace}):
        raise _missing_namespace(namespace)
    uow.checked_namespaces.add(namespace)


def _missing_namespace(namespace: str) -> errors.FailedPreconditionError:
    return errors.FailedPreconditionError(
        f"namespace {namespace!r} does not exist; an administrator creates it with "
        f"`lineagedb namespace create {namespace}`"
    )


def record_membership(uow: Any, kind_value: str, ids: Iterable[int]) -> None:
    """New nodes join the call's namespace (no row for `default`, see the module doc).

    PostgreSQL inserts the rows with a SELECT that share-locks the namespace row, so a
    missing namespace inserts nothing (one statement; a foreign key would cost a trigger
    call per row, 2.7 us each, measured). MySQL has a foreign key for it (migration 0004;
    InnoDB checks it in the index, no trigger)."""
    from lineagedb.store.unit_of_work import MissingParent  # unit_of_work imports this module

    namespace = uow.tenancy.namespace
    number = kind_number(kind_value)
    ids = list(ids)
    uow.known_namespaces.update(((number, node_id), namespace) for node_id in ids)
    if namespace == DEFAULT_NAMESPACE or not ids:
        return
    if uow.dialect == "postgresql":
        inserted = uow.execute(_LOCKED_MEMBERSHIP_INSERT, {"kind": number, "ids": ids, "namespace": namespace})
        if inserted.rowcount != len(ids):
            raise _missing_namespace(namespace)
        return
    from lineagedb.store import bulk_insert  # it imports unit_of_work, which imports this module

    if uow.can_defer:
        # MySQL/MariaDB: nothing reads these rows' result, so they ride with the next statement
        # or the COMMIT; if the namespace is gone, that one fails, and says this.
        uow.missing_parent = _missing_namespace(namespace)
        rows = [(number, node_id) for node_id in ids]
        bulk_insert.defer_integer_rows(uow, MEMBERSHIP, ("node_kind", "node_id"), rows, {"namespace": namespace})
        return
    try:
        bulk_insert.insert_rows(
            uow, MEMBERSHIP, [{"node_kind": number, "node_id": n, "namespace": namespace} for n in ids]
        )
    except MissingParent as error:  # MySQL's foreign key to lineagedb_namespace
        raise _missing_namespace(namespace) from error


def insert_joining_namespace(
    uow: Any, table: sa.Table, kind_value: str, rows: list[dict[str, Any]]
) -> list[int] | None:
    """PostgreSQL, one new node going into a namespace other than `default`: the node's INSERT
    and its membership's as one statement (a data-modifying WITH), one round trip instead of
    two (PutExecution creates an execution and its outputs this way). The membership row
    is inserted only if, and while, the namespace exists (a share lock on its row, as in
    `record_membership`); when it does not, the node's row goes away with the rolled-back
    transaction. None: not this case; the caller inserts and calls `record_membership`."""
    namespace = uow.tenancy.namespace
    if uow.dialect != "postgresql" or namespace == DEFAULT_NAMESPACE or len(rows) != 1:
        return None
    from lineagedb.store import fast_read  # unit_of_work (which fast_read needs) imports this module

    number = kind_number(kind_value)
    row = rows[0]
    # On the driver's cursor, so a prepared statement (store.prepared): planning this one
    # (a data-modifying WITH, a locked join) was about half of its time in the database.
    statement = _joined_insert(table, tuple(row), number)
    found = fast_read.rows(uow, statement, {**row, _NAMESPACE_PARAMETER: namespace})
    uow.note_inserted(table, 1)
    if not found:
        raise _missing_namespace(namespace)
    uow.note_inserted(MEMBERSHIP, 1)
    node_id = int(found[0][0])
    uow.known_namespaces[(number, node_id)] = namespace
    return [node_id]


_NAMESPACE_PARAMETER = "lineagedb_namespace"


@functools.cache
def _joined_insert(table: sa.Table, columns: tuple[str, ...], number: int) -> sa.Insert:
    """INSERT one node row (the `columns` parameters) and its membership row; returns its id."""
    new_node = (
        sa.insert(table)
        .values({column: sa.bindparam(column, type_=table.c[column].type) for column in columns})
        .returning(table.c.id)
        .cte("lineagedb_new_node")
    )
    namespace = (
        sa.select(NAMESPACES.c.name)
        .where(NAMESPACES.c.name == sa.bindparam(_NAMESPACE_PARAMETER))
        .with_for_update(read=True)
        .subquery("lineagedb_target_namespace")
    )
    member = sa.select(sa.literal_column(str(number), sa.SmallInteger), new_node.c.id, namespace.c.name)
    return (
        sa.insert(MEMBERSHIP)
        .from_select(["node_kind", "node_id", "namespace"], member.select_from(new_node.join(namespace, sa.true())))
        .returning(MEMBERSHIP.c.node_id)
    )


def forget_membership(uow: Any, kind_value: str, ids: Iterable[int]) -> None:
    """Deleted nodes leave their namespace (nodes of `default` have no row to delete)."""
    number = kind_number(kind_value)
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        uow.execute(sa.delete(MEMBERSHIP).where(MEMBERSHIP.c.node_kind == number, MEMBERSHIP.c.node_id.in_(chunk)))
    for node_id in ordered:
        uow.known_namespaces.pop((number, node_id), None)


# -- administration (lineagedb namespace create|list|delete) ----------------------------


def create_namespace(uow: Any, name: str, now_ms: int) -> None:
    check_namespace_name(name)
    if name == DEFAULT_NAMESPACE or uow.execute(sa.select(NAMESPACES.c.name).where(NAMESPACES.c.name == name)).first():
        raise errors.AlreadyExistsError(f"namespace {name!r} already exists")
    uow.execute(sa.insert(NAMESPACES).values(name=name, create_time_since_epoch=now_ms))


def list_namespaces(uow: Any) -> list[tuple[str, int]]:
    """(name, number of nodes) of every namespace, `default` first (its count is not kept)."""
    counts = dict(
        uow.execute(sa.select(MEMBERSHIP.c.namespace, sa.func.count()).group_by(MEMBERSHIP.c.namespace)).all()
    )
    names = uow.execute(sa.select(NAMESPACES.c.name).order_by(NAMESPACES.c.name)).scalars().all()
    return [(DEFAULT_NAMESPACE, -1)] + [(name, int(counts.get(name, 0))) for name in names]


def delete_namespace(uow: Any, name: str) -> None:
    """Delete an empty namespace; one that still holds nodes is refused."""
    check_namespace_name(name)
    if name == DEFAULT_NAMESPACE:
        raise errors.FailedPreconditionError("the default namespace always exists")
    row = sa.select(NAMESPACES.c.name).where(NAMESPACES.c.name == name).with_for_update()
    if uow.execute(row).first() is None:
        raise errors.NotFoundError(f"namespace {name!r} does not exist")
    members = uow.execute(sa.select(sa.func.count()).where(MEMBERSHIP.c.namespace == name)).scalar_one()
    if members:
        raise errors.FailedPreconditionError(
            f"namespace {name!r} still holds {members} nodes; it can only be deleted when empty"
        )
    uow.execute(sa.delete(NAMESPACES).where(NAMESPACES.c.name == name))


# LineageDB's own tables (migration 0003), kept out of MLMD's MetaData so that the
# baseline migration and the MLMD schema checks never see them. Lower-case names,
# the same on every backend.
METADATA = sa.MetaData()
NAMESPACES = sa.Table(
    "lineagedb_namespace",
    METADATA,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("create_time_since_epoch", sa.BigInteger, nullable=False),
)
MEMBERSHIP = sa.Table(
    "lineagedb_node_namespace",
    METADATA,
    sa.Column("node_kind", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("node_id", sa.Integer, primary_key=True, autoincrement=False),
    # The foreign key exists on MySQL only (see migration 0004).
    sa.Column(
        "namespace",
        sa.String(63),
        sa.ForeignKey(NAMESPACES.c.name, name="fk_lineagedb_node_namespace_namespace", ondelete="RESTRICT"),
        nullable=False,
    ),
    sqlite_with_rowid=False,  # one B-tree, written and probed by its key (migration 0009)
)
# Finding a namespace's nodes (and refusing to delete a namespace that has any).
sa.Index("idx_lineagedb_node_namespace_namespace", MEMBERSHIP.c.namespace, MEMBERSHIP.c.node_kind)

# SQLite: whether the namespace new nodes go to exists (built once: building a statement
# per write cost more than SQLite's lookup).
_NAMESPACE_EXISTS = sa.select(NAMESPACES.c.name).where(NAMESPACES.c.name == sa.bindparam("name"))

# PostgreSQL: INSERT the new nodes' memberships if, and while, their namespace exists.
_new_ids = (
    sa.func.unnest(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Integer))).table_valued("id").render_derived("new_ids")
)
_LOCKED_MEMBERSHIP_INSERT = sa.insert(MEMBERSHIP).from_select(
    ["node_kind", "node_id", "namespace"],
    sa.select(sa.bindparam("kind", type_=sa.SmallInteger), _new_ids.c.id, NAMESPACES.c.name)
    .select_from(NAMESPACES.join(_new_ids, sa.true()))
    .where(NAMESPACES.c.name == sa.bindparam("namespace"))
    .with_for_update(read=True, of=NAMESPACES),
)
