"""Row locks a service takes to serialize writers of one node (numbering, counters).

A locking read of the node's own row: writers of other nodes never wait, and on MySQL/MariaDB
it does not touch MLMDEnv's row, which every writer holds shared (the writers' lock), so it
cannot deadlock with them the way an exclusive lock on that row does. Taken before the
transaction's first plain read, what the transaction reads afterwards is current on every
backend (MySQL's REPEATABLE READ snapshot starts at the first non-locking read). SQLite
serializes write transactions already; the statement is a plain read there.
"""

from __future__ import annotations

import sqlalchemy as sa

from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.unit_of_work import UnitOfWork


def lock_by_type_and_name(uow: UnitOfWork, kind: NodeKind, type_id: int, name: str) -> bool:
    """Lock the (type, name) node's row until the transaction ends; False if there is none."""
    table = kind.table(uow.schema)
    statement = sa.select(table.c.id).where(table.c.type_id == type_id, table.c.name == name).with_for_update()
    return uow.execute(statement).first() is not None
