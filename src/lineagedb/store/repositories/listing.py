"""Node listings: whole (no options) or one page (ListOperationOptions), in a scope.

A scope restricts the listing (to one type, or to the nodes linked to one
context); a filter_query further restricts a page. Each listing is one id query
plus the two hydration queries, whatever its size.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.query.filter_ast import NodeKind as FilterKind
from lineagedb.store import fast_read, filter_query, pagination, tenancy
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.schema import Schema
from lineagedb.store.tenancy import Reach
from lineagedb.store.unit_of_work import UnitOfWork

# How a filtered page finds its matches on SQLite. SQLite runs `id IN (filter)` by first
# building the list of every match, so the first page of a filter matching 1% of 10^6
# artifacts cost 10 ms there (and grew with the store) where PostgreSQL walks the ids in
# order and stops at the page. Walking rows in order and testing each (EXISTS) stops early
# but reads the whole table for a narrow filter (375 ms for 100 matches in 10^6). So an
# unscoped SQLite page in ascending id order (the default) first reads at most PROBE_ROWS
# matching ids after its start, in whatever order the filter's index gives them (0.6 ms):
# * fewer came back: they are all the matches, and the page reads its first ones by id (IDS);
# * else the walk has `limit` matches at the latest by the `limit`-th of those ids; if that
#   is at most SCAN_ROWS ids ahead, the page walks them (ROWS): at most ~2 ms (a row tested
#   ~0.5 us), against at least ~1 ms to list PROBE_ROWS or more matches, and it stays so
#   however many matches and rows the store holds;
# * else `IN` as before, one probe later.
# Other orders and scopes keep `IN`: a walk there has no bound from the ids.
PROBE_ROWS = 1024
SCAN_ROWS = 4 * PROBE_ROWS


class FilterShape(enum.Enum):
    IN = "in"  # id IN (the filter's subquery): every backend, and SQLite's fallback
    IDS = "ids"  # id IN (:filter_ids), the matches a probe found (SQLite)
    ROWS = "rows"  # EXISTS (the filter on this row), walking rows in page order (SQLite)


@dataclass(frozen=True)
class Scope:
    type_id: int | None = None
    context_id: int | None = None  # artifacts via Attribution, executions via Association


def list_all(uow: UnitOfWork, kind: NodeKind, scope: Scope = Scope(), into: Any | None = None) -> list[Any]:
    """Every readable node in scope, ordered by id (requests without options); built in
    `into`, a response's repeated field, when given (see node_repo.hydrate)."""
    statement = _scope_statement(
        uow.schema,
        kind,
        scope.type_id is not None,
        scope.context_id is not None,
        uow.tenancy.reach,
        tenancy.joins_membership(uow.dialect),
    )
    rows = fast_read.rows(uow, statement, {**_scope_parameters(scope), **uow.tenancy.parameters})
    return node_repo.hydrate(uow, kind, rows, into=into)


def list_page(
    uow: UnitOfWork, kind: NodeKind, page: pagination.Page, scope: Scope = Scope(), into: Any | None = None
) -> tuple[list[Any], str]:
    """One page of nodes in scope and the token of the next page ("" on the last); built
    in `into` when given."""
    filter_query.check_sensitive(uow, kind, page.filter_query)
    parameters: dict[str, Any] = {"limit": min(page.size + 1, pagination.MAX_FETCH), **uow.tenancy.parameters}
    parameters.update(pagination.keyset_parameters(page))
    parameters.update(_scope_parameters(scope))
    # The filter's statements are built per shape; its values are bound with the page's.
    flt = filter_query.parse(page.filter_query, FilterKind(kind.value)) if page.filter_query else None
    if flt is not None:
        parameters.update(flt.parameters)
    shape, rest = FilterShape.IN, list[int]()
    if flt is not None and uow.dialect == "sqlite":
        shape, rest = _sqlite_shape(uow, kind, flt, page, scope, parameters)
    # PostgreSQL under a restricted reach: the matches in page order, checked for their
    # namespace only until the page is full (see _first_readable).
    first_readable = (
        flt is not None and uow.dialect == "postgresql" and uow.tenancy.reach is not Reach.ALL and scope == Scope()
    )
    statement = _page_statement(
        uow.schema,
        kind,
        # The IDS statement carries no filter: one statement for every filter.
        None if shape is FilterShape.IDS else flt,
        page.field,
        page.ascending,
        page.token is not None,
        scope.type_id is not None,
        scope.context_id is not None,
        uow.tenancy.reach,
        shape,
        first_readable,
        tenancy.joins_membership(uow.dialect),
    )
    rows = fast_read.rows(uow, statement, parameters)
    if rest and len(rows) < len(parameters["filter_ids"]):
        # Some of the page's first matches are not readable: the page goes on among the
        # matches after them (SQLite reads in one transaction, so the probe's snapshot).
        more = fast_read.rows(
            uow, statement, {**parameters, "filter_ids": rest, "limit": parameters["limit"] - len(rows)}
        )
        rows = [*rows, *more]
    token = ""
    if len(rows) > page.size:
        rows = rows[: page.size]
        id_at, value_at = _column_positions(statement, page.column)
        # A token records the last row and the rows sharing its order value: only that tail.
        last_value, start = rows[-1][value_at], len(rows) - 1
        while start > 0 and rows[start - 1][value_at] == last_value:
            start -= 1
        keys = [_PageKey(row[id_at], row[value_at]) for row in rows[start:]]
        token = pagination.encode_token(page, keys, uow.tenancy.page_token_key)
    return node_repo.hydrate(uow, kind, rows, into=into), token


def _sqlite_shape(
    uow: UnitOfWork,
    kind: NodeKind,
    flt: filter_query.ParsedFilter,
    page: pagination.Page,
    scope: Scope,
    parameters: dict[str, Any],
) -> tuple[FilterShape, list[int]]:
    """The shape of a SQLite filtered page (see PROBE_ROWS), adding what it binds to `parameters`;
    for IDS also the matches after those bound, in order, for a page whose first matches
    are not all readable.

    The probe leaves the matches' own namespaces alone (node_scoped; their neighbors in the
    filter are checked): the IDS page checks those of the ids it binds, the first `limit`
    matches, and of the rest only if some of those are hidden. Checking every match in the
    probe cost a membership probe for each match still ahead of every page (a filter
    matching 800 nodes paged by 100: ~3,600 probes to return 800 rows)."""
    if page.field != mlmd.ListOperationOptions.OrderByField.ID or not page.ascending or scope != Scope():
        return FilterShape.IN, []
    continued = page.token is not None
    probe = filter_query.probe(uow.schema, kind, flt, uow.tenancy.reach, continued, node_scoped=True)
    probe_parameters = {"probe_rows": PROBE_ROWS, **uow.tenancy.parameters, **flt.parameters}
    start = parameters.get("after_value", 0)
    if continued:
        probe_parameters["after_value"] = start
    found = [row[0] for row in fast_read.rows(uow, probe, probe_parameters)]
    # The probe's ids are matches after the start (the filter's joins may repeat one).
    ordered = sorted(set(found))
    limit = parameters["limit"]
    ahead = ordered[:limit]
    if len(found) < PROBE_ROWS:
        parameters["filter_ids"] = ahead
        return FilterShape.IDS, ordered[limit:]
    if len(ahead) == limit and ahead[-1] - start <= SCAN_ROWS:
        return FilterShape.ROWS, []
    return FilterShape.IN, []


@functools.lru_cache(maxsize=512)
def _page_statement(
    schema: Schema,
    kind: NodeKind,
    flt: filter_query.ParsedFilter | None,
    field: int,
    ascending: bool,
    continued: bool,
    by_type: bool,
    by_context: bool,
    reach: Reach,
    shape: FilterShape = FilterShape.IN,
    first_readable: bool = False,
    joined: bool = False,
) -> sa.Select[Any]:
    """The page query for one shape of request (and reach), built once: clients page through the
    same listing again and again, and building it cost more than running it. The
    page position, scope and size are bound parameters. Raises InvalidArgumentError
    (not cached) for a bad filter."""
    table = kind.table(schema)
    # The page's node rows come back with their type names in one statement; their
    # properties in a second (hydrate).
    query = _scoped(schema, kind, by_type, by_context, reach, joined)
    if shape is FilterShape.IDS:
        query = query.where(table.c.id.in_(sa.bindparam("filter_ids", expanding=True)))
    elif flt is not None and shape is FilterShape.ROWS:
        query = query.where(filter_query.matching_row(schema, kind, flt, reach))
    elif flt is not None and first_readable:
        # The page's node rows come out of the subquery that finds them (readable already),
        # joined with their type names afterwards: reading them again by id (`id =
        # ANY(ARRAY(<ids>))`, as before) cost an index probe per row of every page (16,000
        # artifacts, a filter matching 800, EXPLAIN (ANALYZE, BUFFERS) of a page: generic
        # plan 1,124 -> 888 buffers, custom plan 2,703 -> 2,467; 790 / 2,162 without namespaces).
        page_rows = _first_readable(schema, kind, flt, field, ascending, continued, reach).subquery("page_rows")
        type_table = schema.type
        columns: list[Any] = [page_rows.c[column.name] for column in table.c]
        rows_query: sa.Select[Any] = sa.select(*columns, type_table.c.name.label("type_name")).join_from(
            page_rows, type_table, type_table.c.id == page_rows.c.type_id, isouter=True
        )
        _, order = pagination.keyset(field, ascending, page_rows, False)  # type: ignore[arg-type]
        return rows_query.order_by(*order)
    elif flt is not None:
        # `query` keeps readable nodes only: the filter need not check them again.
        query = filter_query.restrict(schema, kind, query, flt, reach, node_scoped=True)
    continuation, order = pagination.keyset(field, ascending, table, continued)
    return query.where(*continuation).order_by(*order).limit(sa.bindparam("limit", type_=sa.Integer))


def _first_readable(
    schema: Schema,
    kind: NodeKind,
    flt: filter_query.ParsedFilter,
    field: int,
    ascending: bool,
    continued: bool,
    reach: Reach,
) -> sa.Select[Any]:
    """The node rows of the first `:limit` readable nodes matching `filter_text` after the
    page's position, in page order (PostgreSQL, unscoped pages under a restricted reach).

    With the namespace check in the page's own WHERE, PostgreSQL ran it on every match
    after the position whenever it collected the matches before sorting them (a narrow
    filter): each page of a filter matching 800 nodes probed the membership of all those
    still ahead, about 1 us each, to keep 101. Here the matches come in page order from a
    subquery the check cannot be pushed into (OFFSET 0), and the check runs on them one by
    one until the page is full (measured on 16,000 artifacts, a filter matching 800, in the
    database's CPU: 9.9 -> 5.4 ms for a first page; 5.1 ms without namespaces, which fetch
    all 800 rows to sort them). PostgreSQL still chooses how to produce the ordered matches
    (walking the id index for a broad filter, sorting the ids of a narrow one)."""
    node = kind.table(schema).alias("page_node")
    matching = filter_query.matching_subquery(schema, FilterKind(kind.value), flt, reach, node_scoped=True)
    continuation, order = pagination.keyset(field, ascending, node, continued)  # type: ignore[arg-type]
    candidates = (
        sa.select(*node.c)
        .where(node.c.id.in_(matching), *continuation)
        .order_by(*order)
        .offset(sa.literal_column("0"))
        .subquery("page_candidates")
    )
    # No ORDER BY at this level: the subquery's order is what the LIMIT reads (a subquery
    # scan, its filter and a LIMIT keep their input's order; a LIMITed subquery is never
    # split among parallel workers), and an ORDER BY here would make PostgreSQL plan the
    # subquery for all its rows: a filter matching 16,000 of 16,000 then sorted them all
    # (16.8 ms a page instead of 1.4 ms, walking the id index and stopping at the page).
    readable = tenancy.visible(kind.number, candidates.c.id, reach)
    return sa.select(*candidates.c).where(readable).limit(sa.bindparam("limit", type_=sa.Integer))


@functools.cache
def _scope_statement(
    schema: Schema, kind: NodeKind, by_type: bool, by_context: bool, reach: Reach, joined: bool = False
) -> sa.Select[Any]:
    """Every readable node row in a scope, ordered by id (built once per scope shape)."""
    return _scoped(schema, kind, by_type, by_context, reach, joined).order_by(kind.table(schema).c.id)


def _scoped(
    schema: Schema, kind: NodeKind, by_type: bool, by_context: bool, reach: Reach, joined: bool = False
) -> sa.Select[Any]:
    """Readable node rows with their type names, restricted to a scope given as bound
    parameters (`joined`: namespaces checked by a join, see node_repo.select_nodes). A
    context the caller cannot read has no members for it."""
    table = kind.table(schema)
    query = node_repo.select_nodes(schema, kind, reach, joined)
    if by_type:
        query = query.where(table.c.type_id == sa.bindparam("scope_type_id", type_=sa.Integer))
    if by_context:
        link = schema.attribution if kind is NodeKind.ARTIFACT else schema.association
        owner = link.c[kind.owner_column]
        context_id = sa.bindparam("scope_context_id", type_=sa.Integer)
        in_context = sa.select(owner).where(link.c.context_id == context_id)
        if reach is not Reach.ALL:
            # The context is checked once (of the parameter, a subquery correlated to nothing:
            # PostgreSQL's InitPlan, SQLite's once-only subroutine), not once per link row.
            in_context = in_context.where(NodeKind.CONTEXT.visible(context_id, reach))
        query = query.where(table.c.id.in_(in_context))
    return query


def _scope_parameters(scope: Scope) -> dict[str, int]:
    parameters = {}
    if scope.type_id is not None:
        parameters["scope_type_id"] = scope.type_id
    if scope.context_id is not None:
        parameters["scope_context_id"] = scope.context_id
    return parameters


@functools.lru_cache(maxsize=512)  # statements come from _page_statement's cache
def _column_positions(statement: sa.Select[Any], column: str) -> tuple[int, int]:
    keys = [str(c.key) for c in statement.selected_columns]
    return keys.index("id"), keys.index(column)


@dataclass(frozen=True)
class _PageKey:
    """What a page token records of a row: its id and its value of the order column."""

    id: int
    sort_value: int
