"""Reading the audit log back: query, node history, verification, and retention.

Verification walks every chain in insertion order (see store.audit_log for what a
chain is) and reports the first record that does not fit, classified:

* edited: the record is where its sequence number says, but its MAC does not match
  its content (or a forged record was put in its place);
* deleted: a sequence number is missing (within a chain, or at its end against the
  chain's head: its newest head mark, or its row where an earlier version kept it);
* inserted: a record claims a sequence number that another record of its chain has,
  one past the chain's stored head, or a chain that does not exist;
* reordered: records of a chain are stored out of their sequence.

Retention (`prune`) deletes each chain's oldest records up to a time and leaves a
signed record listing every chain's new starting point; verify trusts a starting
point only if the newest such record states it.
"""

from __future__ import annotations

import hmac
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lineagedb.store import audit_log
from lineagedb.store.audit_log import CHAINS, RECORD_NODES, RECORDS, AuditLog, Record

BATCH = 1000


@dataclass(frozen=True)
class AuditQuery:
    principal: str | None = None
    method: str | None = None  # full (/pkg.Service/Method) or the bare method name
    node: tuple[int, int] | None = None  # (node kind number, id)
    since_ms: int | None = None
    until_ms: int | None = None  # exclusive
    kind: str | None = None
    after_id: int = 0  # for paging: records with a larger id
    limit: int = 100


def query(connection: sa.Connection, q: AuditQuery) -> list[dict[str, Any]]:
    """Records matching `q`, oldest first, at most `q.limit`; each a dict of columns."""
    statement = sa.select(RECORDS).where(RECORDS.c.id > q.after_id)
    if q.principal is not None:
        statement = statement.where(RECORDS.c.principal == q.principal)
    if q.method is not None:
        if q.method.startswith("/"):
            statement = statement.where(RECORDS.c.method == q.method)
        else:
            # "PutArtifacts" matches "/ml_metadata.MetadataStoreService/PutArtifacts".
            statement = statement.where(RECORDS.c.method.like("%/" + _escape_like(q.method), escape="\\"))
    if q.since_ms is not None:
        statement = statement.where(RECORDS.c.time_ms >= q.since_ms)
    if q.until_ms is not None:
        statement = statement.where(RECORDS.c.time_ms < q.until_ms)
    if q.kind is not None:
        statement = statement.where(RECORDS.c.kind == q.kind)
    if q.node is not None:
        touched = (
            sa.select(RECORD_NODES.c.chain, RECORD_NODES.c.seq)
            .where(RECORD_NODES.c.node_kind == q.node[0], RECORD_NODES.c.node_id == q.node[1])
            .subquery()
        )
        statement = statement.join(touched, sa.and_(touched.c.chain == RECORDS.c.chain, touched.c.seq == RECORDS.c.seq))
    statement = statement.order_by(RECORDS.c.id).limit(q.limit)
    return [dict(row._mapping) for row in connection.execute(statement)]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def history(connection: sa.Connection, node: tuple[int, int], limit: int = 1000) -> list[dict[str, Any]]:
    """What happened to one node: each record that created or updated it, oldest first,
    with only the changes of that node (`changes`: [{"field", "from", "to"}])."""
    label = f"{audit_log.KIND_NAMES[node[0]]}:{node[1]}"
    entries = []
    for row in query(connection, AuditQuery(node=node, limit=limit)):
        detail = json.loads(row["detail"])
        created = node[1] in detail.get("created", {}).get(audit_log.KIND_NAMES[node[0]], [])
        changes = [
            {key: change[key] for key in ("field", "from", "to")}
            for change in detail.get("changes", [])
            if change.get("node") == label
        ]
        entries.append({**row, "created": created, "changes": changes})
    return entries


# -- verification ---------------------------------------------------------------------------------


@dataclass
class Finding:
    problem: str  # edited | deleted | inserted | reordered
    chain: str
    record_id: int | None
    message: str


@dataclass
class Verification:
    records: int = 0
    chains: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class ChainHead:
    """Where a chain starts and ends: its row in lineagedb_audit_chain (the start, after
    retention) and how far its records must reach, the newest of its head marks or, for a
    chain an earlier version wrote, its row's head."""

    chain: str
    base_seq: int
    base_mac: str | None
    head_seq: int
    # The MAC the chain's last record must have, where its row holds it (its row reaches the
    # head); a mark states only the sequence number, and the records' MACs prove the rest.
    head_mac: str | None


def chain_heads(connection: sa.Connection) -> dict[str, ChainHead]:
    """Every chain's start and head, by chain id."""
    marks = dict(
        connection.execute(
            sa.select(RECORD_NODES.c.chain, sa.func.max(RECORD_NODES.c.seq))
            .where(
                RECORD_NODES.c.node_kind == audit_log.HEAD_MARK[0],
                RECORD_NODES.c.node_id == audit_log.HEAD_MARK[1],
            )
            .group_by(RECORD_NODES.c.chain)
        ).all()
    )
    heads = {}
    for row in connection.execute(sa.select(CHAINS).order_by(CHAINS.c.chain)):
        stored, marked = int(row.head_seq), int(marks.get(row.chain) or 0)
        heads[row.chain] = ChainHead(
            row.chain,
            int(row.base_seq),
            row.base_mac,
            max(stored, marked),
            row.head_mac if stored >= marked else None,
        )
    return heads


def verify(connection: sa.Connection, key: bytes) -> Verification:
    """Walk every chain, streaming (a chain may hold millions of records); the first
    problem of each chain is reported, earliest record first. `connection` should read one
    snapshot (ops.audit opens it so): heads and records read at different moments of a
    live database disagree."""
    result = Verification()
    chains = chain_heads(connection)
    result.chains = len(chains)
    bases = _prune_bases(connection, key)
    seen_chains: set[str] = set()
    rows = _all_records(connection)
    for chain_id, group in itertools.groupby(rows, key=lambda row: str(row["chain"])):
        seen_chains.add(chain_id)
        counted = _Counted(group)
        head = chains.get(chain_id)
        if head is None:
            first = next(iter(counted))
            result.findings.append(
                Finding("inserted", chain_id, first["id"], f"record {first['id']} belongs to no known chain")
            )
        else:
            finding = _verify_chain(connection, key, head, counted, bases)
            if finding is not None:
                result.findings.append(finding)
        for _ in counted:  # the rest of a chain with a finding still counts
            pass
        result.records += counted.count
    for chain_id, head in chains.items():
        if chain_id in seen_chains:
            continue
        if head.head_seq > head.base_seq:
            result.findings.append(
                Finding(
                    "deleted",
                    chain_id,
                    None,
                    f"chain {chain_id} should hold records {head.base_seq + 1}-{head.head_seq}; none are left",
                )
            )
        elif head.base_seq and bases.get(chain_id) != (int(head.base_seq), head.base_mac):
            # Emptied by retention is fine only if a retention record says so (as for kept records).
            result.findings.append(
                Finding(
                    "deleted",
                    chain_id,
                    None,
                    f"chain {chain_id} holds no record and starts after record {head.base_seq}, which no "
                    "retention record states: its records were deleted",
                )
            )
    result.findings.sort(key=lambda f: (f.record_id is None, f.record_id or 0))
    return result


def _all_records(connection: sa.Connection) -> Iterator[dict[str, Any]]:
    """Every record by (chain, id), in batches: keyset pages rather than a server-side
    cursor, so the checks in between can use the same connection."""
    chain, last_id = "", 0
    while True:
        statement = (
            sa.select(RECORDS)
            .where(sa.or_(RECORDS.c.chain > chain, sa.and_(RECORDS.c.chain == chain, RECORDS.c.id > last_id)))
            .order_by(RECORDS.c.chain, RECORDS.c.id)
            .limit(BATCH)
        )
        batch = [dict(row._mapping) for row in connection.execute(statement)]
        yield from batch
        if len(batch) < BATCH:
            return
        chain, last_id = batch[-1]["chain"], batch[-1]["id"]


class _Counted:
    """An iterator that counts what it hands out."""

    def __init__(self, rows: Iterator[dict[str, Any]]) -> None:
        self._rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self._rows:
            self.count += 1
            yield row


def _verify_chain(
    connection: sa.Connection,
    key: bytes,
    head: ChainHead,
    rows: Iterable[dict[str, Any]],
    bases: Mapping[str, tuple[int, str]],
) -> Finding | None:
    chain = head.chain
    base_seq, base_mac = head.base_seq, head.base_mac
    # A start without its MAC is no retention's: the first record then fails its MAC.
    previous = base_mac if base_seq and base_mac else audit_log.genesis_mac(key, chain)
    expected = base_seq + 1
    seen: set[int] = set()
    last_id = None
    for row in rows:
        seq, record_id = int(row["seq"]), row["id"]
        if base_seq and expected == base_seq + 1 and bases.get(chain) != (base_seq, base_mac):
            return Finding(
                "deleted",
                chain,
                record_id,
                f"chain {chain} starts after record {base_seq}, which no retention record states: "
                "its oldest records were deleted",
            )
        if seq > head.head_seq:
            return Finding("inserted", chain, record_id, f"record {record_id} (seq {seq}) is past the chain's head")
        if seq != expected:
            if seq in seen:
                return Finding("inserted", chain, record_id, f"record {record_id} repeats chain {chain} seq {seq}")
            if seq < expected or _stored(connection, chain, expected):
                return Finding(
                    "reordered", chain, record_id, f"record {record_id} (seq {seq}) is stored before seq {expected}"
                )
            return Finding(
                "deleted", chain, record_id, f"chain {chain} lacks seq {expected}-{seq - 1} before record {record_id}"
            )
        mac = audit_log.record_mac(key, previous, Record.from_row(row))
        if not hmac.compare_digest(mac, row["mac"]):
            return Finding(
                "edited", chain, record_id, f"record {record_id} does not match its MAC: it was edited or forged"
            )
        seen.add(seq)
        previous, expected, last_id = row["mac"], expected + 1, record_id
    last = expected - 1
    if last < head.head_seq:
        return Finding(
            "deleted",
            chain,
            last_id,
            f"chain {chain} ends at seq {last}, its head says {head.head_seq}: the newest were deleted",
        )
    if last > head.head_seq or (head.head_mac is not None and not hmac.compare_digest(previous, head.head_mac)):
        return Finding("inserted", chain, last_id, f"chain {chain} goes past its stored head")
    return None


def _stored(connection: sa.Connection, chain: str, seq: int) -> bool:
    statement = sa.select(RECORDS.c.id).where(RECORDS.c.chain == chain, RECORDS.c.seq == seq)
    return connection.execute(statement).first() is not None


def _prune_bases(connection: sa.Connection, key: bytes) -> dict[str, tuple[int, str]]:
    """The chain starting points the newest authentic retention record states."""
    statement = sa.select(RECORDS).where(RECORDS.c.kind == audit_log.PRUNE).order_by(RECORDS.c.id.desc())
    for row in connection.execute(statement):
        mapping = dict(row._mapping)
        if not _authentic(connection, key, mapping):
            continue
        stated = json.loads(mapping["detail"]).get("chains", {})
        return {chain: (int(seq), str(mac)) for chain, (seq, mac) in stated.items()}
    return {}


def _authentic(connection: sa.Connection, key: bytes, row: Mapping[str, Any]) -> bool:
    """Whether a record's MAC matches, given its predecessor in its chain."""
    if row["seq"] == 1:
        previous = audit_log.genesis_mac(key, row["chain"])
    else:
        before = connection.execute(
            sa.select(RECORDS.c.mac).where(RECORDS.c.chain == row["chain"], RECORDS.c.seq == row["seq"] - 1)
        ).scalar()
        if before is None:
            base = connection.execute(
                sa.select(CHAINS.c.base_seq, CHAINS.c.base_mac).where(CHAINS.c.chain == row["chain"])
            ).first()
            if base is None or base.base_seq != row["seq"] - 1:
                return False
            before = base.base_mac
        previous = before
    return hmac.compare_digest(audit_log.record_mac(key, previous, Record.from_row(row)), row["mac"])


# -- retention ------------------------------------------------------------------------------------


def prune(connection: sa.Connection, log: AuditLog, before_ms: int, principal: str) -> dict[str, Any]:
    """Delete every chain's records older than `before_ms` (each chain's oldest ones, up
    to its last record that old), in this connection's transaction, and append the
    retention record that states every chain's new starting point."""
    if connection.dialect.name == "postgresql":
        # The append-only trigger (migration 0006) lets this transaction, and only it, delete.
        connection.execute(sa.text("SET LOCAL lineagedb.audit_prune = 'on'"))
    cuts = connection.execute(
        sa.select(RECORDS.c.chain, sa.func.max(RECORDS.c.seq))
        .where(RECORDS.c.time_ms < before_ms, RECORDS.c.kind != audit_log.PRUNE)
        .group_by(RECORDS.c.chain)
    ).all()
    deleted = 0
    for chain, cut in cuts:
        cut = int(cut)
        mac = connection.execute(
            sa.select(RECORDS.c.mac).where(RECORDS.c.chain == chain, RECORDS.c.seq == cut)
        ).scalar_one()
        connection.execute(sa.delete(RECORD_NODES).where(RECORD_NODES.c.chain == chain, RECORD_NODES.c.seq <= cut))
        deleted += connection.execute(sa.delete(RECORDS).where(RECORDS.c.chain == chain, RECORDS.c.seq <= cut)).rowcount
        connection.execute(sa.update(CHAINS).where(CHAINS.c.chain == chain).values(base_seq=cut, base_mac=mac))
    stated = {
        row.chain: [int(row.base_seq), row.base_mac]
        for row in connection.execute(sa.select(CHAINS).where(CHAINS.c.base_seq > 0))
    }
    call = audit_log.CallContext(method="lineagedb audit prune", peer="", request_digest="", principal=principal)
    pending = log.append(
        connection,
        call,
        audit_log.PRUNE,
        "OK",
        detail={"before_ms": before_ms, "deleted": deleted, "chains": stated},
    )
    return {"deleted": deleted, "chains": len(cuts), "pending": pending}


def changes_since(
    connection: sa.Connection, node_kind: int, ids: Iterable[int], since_ms: int
) -> dict[int, list[tuple[int, list[dict[str, Any]]]]]:
    """For each of `ids` that write records changed after `since_ms`: (record time, that
    node's changes) per record, newest first. One statement per batch of ids."""
    label_prefix = f"{audit_log.KIND_NAMES[node_kind]}:"
    statement = (
        sa.select(RECORD_NODES.c.node_id, RECORDS.c.time_ms, RECORDS.c.detail)
        .join(RECORDS, sa.and_(RECORDS.c.chain == RECORD_NODES.c.chain, RECORDS.c.seq == RECORD_NODES.c.seq))
        .where(
            RECORD_NODES.c.node_kind == node_kind,
            RECORD_NODES.c.node_id.in_(sa.bindparam("ids", expanding=True)),
            RECORDS.c.time_ms > since_ms,
            RECORDS.c.kind == "write",
        )
        .order_by(RECORDS.c.time_ms.desc(), RECORDS.c.id.desc())
    )
    found: dict[int, list[tuple[int, list[dict[str, Any]]]]] = {}
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), BATCH):
        for node_id, time_ms, detail in connection.execute(statement, {"ids": wanted[start : start + BATCH]}):
            label = label_prefix + str(node_id)
            changes = [change for change in json.loads(detail).get("changes", []) if change.get("node") == label]
            found.setdefault(int(node_id), []).append((int(time_ms), changes))
    return found


def recorders(
    connection: sa.Connection, nodes: Mapping[int, Iterable[int]], until_ms: int | None = None
) -> dict[tuple[int, int], dict[str, Any]]:
    """Who wrote each node, from the write records that touched it (up to `until_ms`):
    {(node kind number, id): {"created": record | None, "updates": count, "last_update":
    record | None}}, a record being {"principal", "namespace", "method", "time_ms"}.
    `created` is None when the node was created while the log was off. One statement per
    batch of ids, every kind in the same statement."""
    pairs = sorted({(kind, int(node_id)) for kind, ids in nodes.items() for node_id in ids})
    found: dict[tuple[int, int], dict[str, Any]] = {}
    for start in range(0, len(pairs), BATCH):
        batch = pairs[start : start + BATCH]
        by_kind: dict[int, list[int]] = {}
        for kind, node_id in batch:
            by_kind.setdefault(kind, []).append(node_id)
        statement = (
            sa.select(
                RECORD_NODES.c.node_kind,
                RECORD_NODES.c.node_id,
                RECORDS.c.principal,
                RECORDS.c.namespace,
                RECORDS.c.method,
                RECORDS.c.time_ms,
                RECORDS.c.detail,
            )
            .join(RECORDS, sa.and_(RECORDS.c.chain == RECORD_NODES.c.chain, RECORDS.c.seq == RECORD_NODES.c.seq))
            .where(
                sa.or_(
                    *(
                        sa.and_(RECORD_NODES.c.node_kind == kind, RECORD_NODES.c.node_id.in_(ids))
                        for kind, ids in by_kind.items()
                    )
                ),
                RECORDS.c.kind == audit_log.WRITE,
            )
            .order_by(RECORDS.c.time_ms, RECORDS.c.id)
        )
        if until_ms is not None:
            statement = statement.where(RECORDS.c.time_ms <= until_ms)
        for kind, node_id, principal, namespace, method, time_ms, detail in connection.execute(statement):
            key = (int(kind), int(node_id))
            entry = found.setdefault(key, {"created": None, "updates": 0, "last_update": None})
            record = {"principal": principal, "namespace": namespace, "method": method, "time_ms": int(time_ms)}
            created = json.loads(detail).get("created", {}).get(audit_log.KIND_NAMES[key[0]], [])
            if key[1] in created and entry["created"] is None:
                entry["created"] = record
            else:
                entry["updates"] += 1
                entry["last_update"] = record
    return found
