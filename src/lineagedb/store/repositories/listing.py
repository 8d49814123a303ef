"""Node listings: whole (no options) or one page (ListOperationOptions), in a scope.

A scope restricts the listing (to one type, or to the nodes linked to one
context); a filter_query further restricts a page. Each listing is one id query
plus the two hydration queries, whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lineagedb.store import filter_query, pagination
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Scope:
    type_id: int | None = None
    context_id: int | None = None  # artifacts via Attribution, executions via Association


def _scope_clauses(uow: UnitOfWork, kind: NodeKind, scope: Scope) -> list[sa.ColumnElement[bool]]:
    table = kind.table(uow.schema)
    clauses: list[sa.ColumnElement[bool]] = []
    if scope.type_id is not None:
        clauses.append(table.c.type_id == scope.type_id)
    if scope.context_id is not None:
        link = uow.schema.attribution if kind is NodeKind.ARTIFACT else uow.schema.association
        owner = link.c[kind.owner_column]
        clauses.append(table.c.id.in_(sa.select(owner).where(link.c.context_id == scope.context_id)))
    return clauses


def list_all(uow: UnitOfWork, kind: NodeKind, scope: Scope = Scope()) -> list[Any]:
    """Every node in scope, ordered by id (requests without options)."""
    clauses = _scope_clauses(uow, kind, scope)
    return node_repo.load_where(uow, kind, sa.and_(*clauses) if clauses else None)


def list_page(uow: UnitOfWork, kind: NodeKind, page: pagination.Page, scope: Scope = Scope()) -> tuple[list[Any], str]:
    """One page of nodes in scope and the token of the next page ("" on the last)."""
    table = kind.table(uow.schema)
    continuation, order = pagination.keyset(page, table)
    # The page's node rows come back with their type names in one statement; their
    # properties in a second.
    query = node_repo.select_nodes(uow, kind)
    if page.filter_query:
        query = filter_query.apply(uow, kind, query, page.filter_query)
    query = query.where(*_scope_clauses(uow, kind, scope), *continuation).order_by(*order)
    rows = uow.execute(query.limit(min(page.size + 1, pagination.MAX_FETCH))).all()
    token = ""
    if len(rows) > page.size:
        rows = rows[: page.size]
        keys = [_PageKey(row.id, getattr(row, page.column)) for row in rows]
        token = pagination.encode_token(page, keys)
    return node_repo.hydrate(uow, kind, rows), token


@dataclass(frozen=True)
class _PageKey:
    """What a page token records of a row: its id and its value of the order column."""

    id: int
    sort_value: int
