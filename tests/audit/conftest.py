"""Audit log fixtures: a service-level store whose Database keeps an audit log, and raw access."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.audit_log import CHAINS, CURRENT_CALL, HEAD_MARK, RECORD_NODES, RECORDS, AuditLog, CallContext
from lineagedb.store.audit_store import ChainHead, chain_heads
from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import create_engine
from lineagedb.store.unit_of_work import Database

KEY = b"k" * 32 + b"-audit-tests"


@pytest.fixture
def audit() -> AuditLog:
    # Each record a millisecond after the last, so tests can cut between any two of them.
    ticks = itertools.count(1_800_000_000_000)
    return AuditLog(KEY, clock=lambda: next(ticks))


@pytest.fixture
def audited_db(database_url: str, audit: AuditLog) -> Iterator[Database]:
    engine = create_engine(database_url)
    prepare_database(engine)
    db = Database(engine, audit=audit)
    yield db
    db.dispose()


@pytest.fixture
def audited_store(audited_db: Database, clock: Any) -> MetadataStore:
    return MetadataStore(audited_db, clock=clock)


def as_call(method: str, principal: str = "alice", namespace: str = "default") -> Any:
    """Run the block as if it were the gRPC call `method` (what the audit interceptor sets)."""
    call = CallContext(
        method=f"/ml_metadata.MetadataStoreService/{method}", peer="ipv4:127.0.0.1:5", request_digest="0" * 64
    )
    call.principal, call.namespace = principal, namespace
    return _Scope(call)


class _Scope:
    def __init__(self, call: CallContext) -> None:
        self.call = call

    def __enter__(self) -> CallContext:
        self._token = CURRENT_CALL.set(self.call)
        return self.call

    def __exit__(self, *_: object) -> None:
        CURRENT_CALL.reset(self._token)


def records(db: Database) -> list[dict[str, Any]]:
    with db.engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(sa.select(RECORDS).order_by(RECORDS.c.id))]


def node_rows(db: Database) -> list[tuple[int, int, str, int]]:
    """The node index's rows that name nodes (not the records' head marks)."""
    with db.engine.connect() as connection:
        statement = sa.select(RECORD_NODES).where(RECORD_NODES.c.node_kind >= 0).order_by(RECORD_NODES.c.node_id)
        return [tuple(r) for r in connection.execute(statement)]


def head_marks(db: Database) -> list[tuple[str, int]]:
    """(chain, seq) of every head mark."""
    kind, node = HEAD_MARK
    with db.engine.connect() as connection:
        statement = (
            sa.select(RECORD_NODES.c.chain, RECORD_NODES.c.seq)
            .where(RECORD_NODES.c.node_kind == kind, RECORD_NODES.c.node_id == node)
            .order_by(RECORD_NODES.c.chain, RECORD_NODES.c.seq)
        )
        return [tuple(r) for r in connection.execute(statement)]  # type: ignore[misc]


def stored_head(db: Database, chain: str) -> tuple[int, str]:
    """The head_seq and head_mac of the chain's row."""
    with db.engine.connect() as connection:
        row = connection.execute(sa.select(CHAINS.c.head_seq, CHAINS.c.head_mac).where(CHAINS.c.chain == chain)).one()
    return int(row.head_seq), str(row.head_mac)


def chains(db: Database) -> dict[str, ChainHead]:
    with db.engine.connect() as connection:
        return chain_heads(connection)


def tamper(db: Database, *statements: Any) -> None:
    """Change the audit tables as someone with database access would (on PostgreSQL past
    the append-only trigger, which such a person can also drop)."""
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SET LOCAL lineagedb.audit_prune = 'on'"))
        for statement in statements:
            connection.execute(statement)
