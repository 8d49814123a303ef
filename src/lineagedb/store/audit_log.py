"""The audit log: LineageDB's own tables and the keyed hash chains that make them tamper-evident.

Every committed write transaction appends one record in the same transaction (so a
rolled-back write leaves none); refused and failed calls, and reads when asked, append
one in a transaction of their own. A record holds who (principal, peer), where
(namespace), what (method, a SHA-256 of the request bytes, the node ids created and
updated, and the previous and new values of what an update changed) and the outcome.

Order and tamper evidence: records form hash chains, one chain per writer, a writer
being one thread of one server process (a chain id is random, so processes on any
number of hosts never share one). Within its chain a record has a sequence number and
a MAC, HMAC-SHA256 under the audit key over the previous record's MAC and the record's
canonical encoding; the first record's predecessor is derived from the chain id. One
writer writes sequentially, so appending needs no lock and no read: the chain's head
lives in the writer's memory. `lineagedb_audit_chain` holds a row per chain, inserted
with its first record; every record also adds a head mark, a row of its own in the node
index (HEAD_MARK), in the same transaction, so the newest mark of a chain says how far
its records must reach and deleting a chain's newest records is caught too. (Earlier
LineageDB versions updated the chain's row with every record instead, and may share the
database: verify takes whichever reaches further. Marks are inserted, not updated: on
MySQL/MariaDB the UPDATE of the chain's row cost a write ~100 us of wall time.)
Writers never wait for one another; the records' `id` gives a global insertion order for
reading. When a commit's outcome is unknown the writer abandons its chain and starts
another, so a chain never forks.

Retention deletes each chain's oldest records (store.audit_store.prune) and records the
new starting point of every chain (sequence and MAC of the last deleted record) in a
record of its own, which `verify` requires.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lineagedb import errors
from lineagedb.store import prepared
from lineagedb.store.engine import COMMIT_PREFIX
from lineagedb.store.statement_count import count_driver_statement

KEY_ENV = "LINEAGEDB_AUDIT_KEY"
MIN_KEY_BYTES = 32

# Record kinds.
WRITE, REFUSED, FAILED, READ, PRUNE = "write", "denied", "failed", "read", "prune"
READ_AUDIT_MODES = ("off", "denied", "all")

# Node kinds as stored in lineagedb_audit_node (MLMD's type_kind numbers, as in tenancy).
NODE_KINDS = {"execution": 0, "artifact": 1, "context": 2}
KIND_NAMES = {number: name for name, number in NODE_KINDS.items()}
# The (node kind, node id) of the row every record adds to lineagedb_audit_node under its
# (chain, seq): the chain's head marks, which no node query matches (no node kind is negative).
HEAD_MARK = (-1, 0)

METADATA = sa.MetaData()
RECORDS = sa.Table(
    "lineagedb_audit",
    METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("chain", sa.String(32), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("time_ms", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("principal", sa.String(255), nullable=False),
    sa.Column("namespace", sa.String(63), nullable=False),
    sa.Column("method", sa.String(255), nullable=False),
    sa.Column("peer", sa.String(255), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("request_digest", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("mac", sa.String(64), nullable=False),
    sa.UniqueConstraint("chain", "seq", name="uq_lineagedb_audit_chain_seq"),
)
# No index by time or principal: each index is a page more per write's commit (migration
# 0010); PostgreSQL keeps a BRIN summary of time_ms, which appending does not write.
# Which records touched a node: `lineagedb audit history artifact:5`, `query --node`.
RECORD_NODES = sa.Table(
    "lineagedb_audit_node",
    METADATA,
    sa.Column("node_kind", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("node_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("chain", sa.String(32), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,  # one B-tree to write per transaction, not two (migration 0009)
)
CHAINS = sa.Table(
    "lineagedb_audit_chain",
    METADATA,
    sa.Column("chain", sa.String(32), primary_key=True),
    sa.Column("head_seq", sa.BigInteger, nullable=False),
    sa.Column("head_mac", sa.String(64), nullable=False),
    # After retention: the records up to base_seq are gone; base_mac links to the first kept.
    sa.Column("base_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("base_mac", sa.String(64), nullable=True),
)


# -- what the transport edge knows about a call ------------------------------------------------


@dataclass
class CallContext:
    """Set per call by the transport edge (lineagedb.api.audit); the auth interceptor
    fills in who the caller is once it knows."""

    method: str
    peer: str
    request_digest: str
    principal: str = ""
    namespace: str = ""
    # A write transaction of this call committed its record (so a failure after it, or a
    # retried attempt, does not record the call twice).
    recorded: bool = False


CURRENT_CALL: ContextVar[CallContext | None] = ContextVar("lineagedb_audit_call", default=None)


# -- what a write transaction changed (filled by the service layer) -----------------------------


@dataclass
class Changes:
    """The ids a transaction created and updated per kind, and the values updates changed."""

    created: dict[str, list[int]] = field(default_factory=dict)
    updated: dict[str, list[int]] = field(default_factory=dict)
    # Deleted outright, or kept as tombstones (lineagedb.v1.DeletionService).
    deleted: dict[str, list[int]] = field(default_factory=dict)
    tombstoned: dict[str, list[int]] = field(default_factory=dict)
    # {"node": "artifact:5", "field": "properties.approved", "from": ..., "to": ...}
    changes: list[dict[str, Any]] = field(default_factory=list)
    # Edges written, per kind: [[end, end, ...], ...]
    edges: dict[str, list[list[int]]] = field(default_factory=dict)

    def add_created(self, kind: str, ids: Iterable[int]) -> None:
        self.created.setdefault(kind, []).extend(ids)

    def add_updated(self, kind: str, node_id: int, changes: Iterable[tuple[str, Any, Any]]) -> None:
        self.updated.setdefault(kind, []).append(node_id)
        for name, before, after in changes:
            self.changes.append({"node": f"{kind}:{node_id}", "field": name, "from": before, "to": after})

    def add_deleted(self, kind: str, ids: Iterable[int], tombstone: bool = False) -> None:
        (self.tombstoned if tombstone else self.deleted).setdefault(kind, []).extend(ids)

    def add_edges(self, kind: str, ends: Iterable[list[int]]) -> None:
        self.edges.setdefault(kind, []).extend(ends)

    def nodes(self) -> list[tuple[int, int]]:
        """(node kind number, id) of every node created, updated or deleted, once each."""
        seen: dict[tuple[int, int], None] = {}
        for by_kind in (self.created, self.updated, self.deleted, self.tombstoned):
            for kind, ids in by_kind.items():
                number = NODE_KINDS.get(kind)
                if number is not None:
                    for node_id in ids:
                        seen[number, node_id] = None
        return list(seen)

    def detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {}
        for name in ("created", "updated", "deleted", "tombstoned", "edges"):
            value = getattr(self, name)
            if value:
                detail[name] = value
        if self.changes:
            detail["changes"] = self.changes
        return detail


# -- records and their MACs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One audit record as stored (without its database id)."""

    chain: str
    seq: int
    time_ms: int
    kind: str
    principal: str
    namespace: str
    method: str
    peer: str
    outcome: str
    request_digest: str
    detail: str

    def values(self) -> RecordValues:
        """The stored fields in _RECORD_FIELDS order."""
        return (
            self.chain,
            self.seq,
            self.time_ms,
            self.kind,
            self.principal,
            self.namespace,
            self.method,
            self.peer,
            self.outcome,
            self.request_digest,
            self.detail,
        )

    def canonical(self) -> bytes:
        """The bytes the MAC covers: every stored field, in a fixed order."""
        return canonical(self.values())

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Record:
        return cls(**{name: row[name] for name in _RECORD_FIELDS})


# A record's stored fields in _RECORD_FIELDS order: what a write builds (no Record object;
# building a frozen dataclass and reading it back field by field cost a write ~10 us).
RecordValues = tuple[str, int, int, str, str, str, str, str, str, str, str]

_RECORD_FIELDS = (
    "chain",
    "seq",
    "time_ms",
    "kind",
    "principal",
    "namespace",
    "method",
    "peer",
    "outcome",
    "request_digest",
    "detail",
)


# Encoders built once (json.dumps with any option builds one per call); their output is
# what json.dumps gives with the same options, so MACs of stored records still verify.
_CANONICAL_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_DETAIL_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)


def genesis_mac(key: bytes, chain: str) -> str:
    """The predecessor MAC of a chain's first record."""
    return hmac.new(key, b"lineagedb-audit-genesis\0" + chain.encode(), hashlib.sha256).hexdigest()


def canonical(values: RecordValues) -> bytes:
    return _CANONICAL_JSON.encode(values).encode()


def record_mac(key: bytes, previous: str, record: Record) -> str:
    return values_mac(key, previous, record.values())


def values_mac(key: bytes, previous: str, values: RecordValues) -> str:
    mac = _keyed_hmac(key).copy()
    mac.update(previous.encode() + b"\0" + canonical(values))
    return mac.hexdigest()


@functools.lru_cache(maxsize=8)
def _keyed_hmac(key: bytes) -> hmac.HMAC:
    """An HMAC with the key set and nothing hashed yet, to copy: a write's MAC then skips
    the key schedule and the digest lookup, ~10 of the ~25 us it cost inside a call."""
    return hmac.new(key, digestmod=hashlib.sha256)


def _text(value: str, limit: int) -> str:
    # Names come from credentials and peers: PostgreSQL text cannot hold NUL, UTF-8 cannot
    # encode a lone surrogate (a JWT's JSON may carry one, escaped), and a column has a
    # length; what is stored is what the MAC covers.
    value = value.replace("\0", "\ufffd")
    if not value.isascii():
        value = _SURROGATE.sub("\ufffd", value)
    return value[:limit]


_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_detail(detail: Mapping[str, Any]) -> str:
    return _DETAIL_JSON.encode(detail)


# -- one writer's chain ---------------------------------------------------------------------------


@dataclass
class _Chain:
    id: str
    seq: int = 0  # last committed record's sequence number (0: none yet)
    mac: str = ""  # its MAC (the genesis MAC before the first record)
    stored: bool = False  # its lineagedb_audit_chain row exists


@dataclass
class PendingAppend:
    """A record inserted by a transaction that has not committed yet."""

    chain: _Chain
    seq: int
    mac: str


class AuditLog:
    """The server's audit log settings and its writers' chains (one per thread)."""

    def __init__(self, key: bytes, read_audit: str = "denied", clock: Callable[[], int] | None = None) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the audit key must be at least {MIN_KEY_BYTES} bytes")
        if read_audit not in READ_AUDIT_MODES:
            raise ValueError(f"--audit-reads is one of {', '.join(READ_AUDIT_MODES)}")
        self.key = key
        self.read_audit = read_audit
        self._clock = clock
        self._local = threading.local()

    def now_ms(self) -> int:
        if self._clock is not None:
            return self._clock()
        return time.time_ns() // 1_000_000

    def _chain(self) -> _Chain:
        chain: _Chain | None = getattr(self._local, "chain", None)
        if chain is None:
            chain_id = secrets.token_hex(16)
            chain = _Chain(chain_id, 0, genesis_mac(self.key, chain_id))
            self._local.chain = chain
        return chain

    def abandon_chain(self) -> None:
        """After a commit whose outcome is unknown: the next record starts a new chain."""
        self._local.chain = None

    def append(
        self,
        connection: sa.Connection,
        call: CallContext | None,
        kind: str,
        outcome: str,
        changes: Changes | None = None,
        method: str | None = None,
        detail: Mapping[str, Any] | None = None,
        uow: Any = None,
    ) -> PendingAppend:
        """Insert one record in the connection's open transaction; `commit_pending` once it committed."""
        chain = self._chain()
        seq = chain.seq + 1
        body = changes.detail() if changes is not None else {}
        if detail:
            body = {**detail, **body}
        if call is not None:
            who = (_text(call.principal or call.peer, 255), _text(call.namespace, 63), _text(call.method, 255))
            peer, digest = _text(call.peer, 255), call.request_digest
        else:
            who, peer, digest = ("lineagedb", "", _text(method or "", 255)), "", ""
        values: RecordValues = (chain.id, seq, self.now_ms(), kind, *who, peer, outcome, digest, encode_detail(body))
        mac = values_mac(self.key, chain.mac, values)
        nodes = changes.nodes() if changes is not None else []
        _insert(connection, values, mac, nodes, chain, uow)
        return PendingAppend(chain, seq, mac)

    @staticmethod
    def commit_pending(pending: PendingAppend) -> None:
        pending.chain.seq, pending.chain.mac, pending.chain.stored = pending.seq, pending.mac, True


def _insert(
    connection: sa.Connection,
    values: RecordValues,
    mac: str,
    nodes: list[tuple[int, int]],
    chain: _Chain,
    uow: Any,
) -> None:
    """Store the record, its node index rows and its head mark, and its chain's row if the
    chain is new, in the connection's open transaction (each dialect's fastest way)."""
    seq = values[1]
    rows = [*nodes, HEAD_MARK]
    dbapi_connection = connection.connection.dbapi_connection
    # A call's write transaction on PostgreSQL runs on psycopg2's autocommit (store.unit_of_work).
    postgresql_call = uow is not None and connection.dialect.name == "postgresql"
    if postgresql_call and dbapi_connection is not None and dbapi_connection.autocommit:
        _send_with_commit(connection, dbapi_connection, values, mac, rows, chain)
        return
    if uow is not None and connection.dialect.name == "sqlite":
        _insert_on_sqlite(uow, values, mac, rows, chain)
        return
    if uow is not None and uow.can_defer:
        _defer_on_mysql(uow, values, mac, rows, chain)
        return
    connection.execute(_INSERT_RECORD, _row(values, mac))
    node_rows = [{"node_kind": k, "node_id": n, "chain": chain.id, "seq": seq} for k, n in rows]
    if uow is not None:
        from lineagedb.store import bulk_insert  # it imports unit_of_work, which imports this module

        bulk_insert.insert_rows(uow, RECORD_NODES, node_rows)  # a write's batch: one multi-row statement
    else:
        connection.execute(sa.insert(RECORD_NODES), node_rows)
    if not chain.stored:
        connection.execute(_INSERT_HEAD, {"chain": chain.id, "head_seq": seq, "head_mac": mac})


def _row(values: RecordValues, mac: str) -> dict[str, Any]:
    return {**dict(zip(_RECORD_FIELDS, values, strict=True)), "mac": mac}


# Built once: building a statement per write cost more than running it on SQLite.
_INSERT_RECORD = sa.insert(RECORDS)
_INSERT_HEAD = sa.insert(CHAINS)


def _send_with_commit(
    connection: sa.Connection,
    dbapi_connection: Any,
    values: RecordValues,
    mac: str,
    nodes: list[tuple[int, int]],
    chain: _Chain,
) -> None:
    """PostgreSQL: the record, its node rows and head mark (`nodes`), and a new chain's row in
    one statement that goes with the COMMIT, in its round trip (store.engine's COMMIT_PREFIX).

    The statement is prepared once per connection (store.prepared.claim): the first record
    a connection writes carries `PREPARE` ahead of its `EXECUTE`, later ones only the
    `EXECUTE`, so PostgreSQL neither parses nor plans it again. Measured with pgbench on
    this machine (synchronous_commit off, so that only the work counts): 37 us a record
    against 69-82 us through revision 0010's function `lineagedb_audit_append` (PL/pgSQL
    runs each of its statements through its executor separately), which this server no
    longer calls (it stays for servers of that version sharing the database). With
    prepared statements off (LINEAGEDB_PG_PREPARED=off, a transaction-mode pooler) the
    same statement is sent with its values written in.

    Text values are quoted by psycopg2; none of the call's text becomes SQL. The node
    arrays hold this server's own integers, written with `:d` (which refuses anything else)."""
    statement = _APPEND_TO_NEW_CHAIN if not chain.stored else _APPEND
    kinds = ",".join(f"{kind:d}" for kind, _ in nodes)
    ids = ",".join(f"{node:d}" for _, node in nodes)
    arrays = f"'{{{kinds}}}', '{{{ids}}}'"
    cursor = dbapi_connection.cursor()
    try:
        if prepared.in_use(connection.engine):
            arguments = cursor.mogrify(_ARGUMENTS, (*values, mac)).decode()
            first = prepared.claim(dbapi_connection, statement.name)
            bound = (f"{statement.prepare}; " if first else "") + f"EXECUTE {statement.name}({arguments}, {arrays})"
        else:
            literals = [cursor.mogrify("%s", (value,)).decode() for value in (*values, mac)]
            literals += [f"'{{{kinds}}}'", f"'{{{ids}}}'"]
            bound = _PARAMETER.sub(lambda match: literals[int(match.group(1)) - 1], statement.body)
    finally:
        cursor.close()
    count_driver_statement(bound)
    connection.info[COMMIT_PREFIX] = bound


@dataclass(frozen=True)
class _PreparedAppend:
    name: str
    body: str  # with $1..$14: the record's fields in _RECORD_FIELDS order, its MAC, node kinds, node ids
    prepare: str


def _prepared_append(new_chain: bool) -> _PreparedAppend:
    """The statement appending one record: its node rows and head mark and, for a new chain,
    the chain's row in data-modifying WITH clauses, the record itself the main INSERT. The
    parts touch different tables, so that they see one snapshot does not matter."""
    head = ""
    if new_chain:
        head = f", head AS (INSERT INTO {CHAINS.name} (chain, head_seq, head_mac) VALUES ($1, $2, $12))"
    columns = ", ".join([*_RECORD_FIELDS, "mac"])
    body = (
        f"WITH nodes AS (INSERT INTO {RECORD_NODES.name} (node_kind, node_id, chain, seq) "
        "SELECT node.kind, node.id, $1, $2 FROM unnest($13::smallint[], $14::integer[]) AS node(kind, id))"
        f"{head} "
        f"INSERT INTO {RECORDS.name} ({columns}) "
        f"VALUES ({', '.join(f'${number}' for number in range(1, 13))})"
    )
    types = "text, bigint, bigint, text, text, text, text, text, text, text, text, text, smallint[], integer[]"
    # The name follows the text, so a server whose statement differs never runs another's.
    digest = hashlib.blake2b(f"{types}\n{body}".encode(), digest_size=12).hexdigest()
    name = f"lineagedb_audit_{digest}"
    return _PreparedAppend(name, body, f"PREPARE {name} ({types}) AS {body}")


_APPEND = _prepared_append(new_chain=False)
_APPEND_TO_NEW_CHAIN = _prepared_append(new_chain=True)
_PARAMETER = re.compile(r"\$(\d+)")
# The record's fields and its MAC, bound by psycopg2 in one call.
_ARGUMENTS = ", ".join(["%s"] * (len(_RECORD_FIELDS) + 1))


def _insert_on_sqlite(uow: Any, values: RecordValues, mac: str, nodes: list[tuple[int, int]], chain: _Chain) -> None:
    """SQLite, in a call's write transaction: SQL compiled once, run on one cursor of the
    driver (the per-statement work of SQLAlchemy's execution was most of what a record
    cost, and a cursor per statement a few microseconds more each)."""
    texts = _sqlite_texts(uow.connection.dialect)
    seq = values[1]
    node_rows = [(kind, node, chain.id, seq) for kind, node in nodes]
    uow.note_inserted(RECORD_NODES, len(node_rows))
    count_driver_statement(texts["nodes"])  # on_driver_cursor counts the first statement
    new_chain = not chain.stored
    if new_chain:
        count_driver_statement(texts["insert_head"])

    def run(cursor: Any) -> None:
        cursor.execute(texts["record"], (*values, mac))
        cursor.executemany(texts["nodes"], node_rows)
        if new_chain:
            cursor.execute(texts["insert_head"], (chain.id, seq, mac))

    uow.on_driver_cursor(texts["record"], run, values)


def _defer_on_mysql(uow: Any, values: RecordValues, mac: str, nodes: list[tuple[int, int]], chain: _Chain) -> None:
    """MySQL/MariaDB through PyMySQL: nothing reads what the record's statements return, so
    they travel with the transaction's COMMIT (store.engine.defer), in its round trip; a
    record whose chain position clashed fails the COMMIT, as on PostgreSQL."""
    texts = _mysql_texts(uow.connection.dialect)
    seq = values[1]
    uow.defer(texts["record"], (*values, mac))
    from lineagedb.store import bulk_insert  # it imports unit_of_work, which imports this module

    bulk_insert.defer_integer_rows(uow, RECORD_NODES, ("node_kind", "node_id"), nodes, {"chain": chain.id, "seq": seq})
    if not chain.stored:
        uow.defer(texts["insert_head"], (chain.id, seq, mac))


@functools.cache
def _mysql_texts(dialect: sa.Dialect) -> dict[str, str]:
    """SQL with PyMySQL's positional %s placeholders for `_defer_on_mysql`, built once: the
    record's fields and MAC in _RECORD_FIELDS order; a new chain's id, sequence and MAC.
    Positional, so binding a record builds no dict."""
    preparer = dialect.identifier_preparer
    quote = preparer.quote

    def insert(table: sa.Table, columns: Sequence[str]) -> str:
        return f"INSERT INTO {preparer.format_table(table)} ({', '.join(map(quote, columns))})"

    record_columns = [*_RECORD_FIELDS, "mac"]
    placeholders = ", ".join(["%s"] * len(record_columns))
    return {
        "record": f"{insert(RECORDS, record_columns)} VALUES ({placeholders})",
        "insert_head": f"{insert(CHAINS, ['chain', 'head_seq', 'head_mac'])} VALUES (%s, %s, %s)",
    }


_NODE_COLUMNS = ["node_kind", "node_id", "chain", "seq"]


@functools.cache
def _sqlite_texts(dialect: sa.Dialect) -> dict[str, str]:
    """Positional (qmark) SQL for `_insert_on_sqlite`, parameters in the order given there."""
    statements = {
        "record": _INSERT_RECORD.inline().compile(dialect=dialect, column_keys=[*_RECORD_FIELDS, "mac"]),
        "nodes": sa.insert(RECORD_NODES).compile(dialect=dialect, column_keys=_NODE_COLUMNS),
        "insert_head": _INSERT_HEAD.compile(dialect=dialect, column_keys=["chain", "head_seq", "head_mac"]),
    }
    for name, compiled in statements.items():
        order = list(compiled.positiontup or [])
        expected = {
            "record": [*_RECORD_FIELDS, "mac"],
            "nodes": _NODE_COLUMNS,
            "insert_head": ["chain", "head_seq", "head_mac"],
        }[name]
        if order != expected:  # the tuples in _insert_on_sqlite follow this order
            raise RuntimeError(f"audit SQL {name} binds {order}, not {expected}")
    return {name: str(compiled) for name, compiled in statements.items()}


def parse_node(text: str) -> tuple[int, int]:
    """'artifact:5' -> (1, 5): a node as `lineagedb audit` and AuditService name it."""
    kind, _, number = text.partition(":")
    # ASCII digits only: str.isdigit() also takes superscripts, which int() refuses (a ValueError
    # would reach the caller as INTERNAL); 18 digits keep the id within a BIGINT.
    if kind not in NODE_KINDS or not (number.isascii() and number.isdigit()) or len(number) > 18:
        raise errors.InvalidArgumentError(f"a node is artifact:ID, execution:ID or context:ID, not {text!r}")
    return NODE_KINDS[kind], int(number)


def request_digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()
