"""Filter queries → SQLAlchemy Core (behaviour spec §6.4).

`lineagedb.query.filter_parser` turns the text into a typed, already validated AST; this
module only maps that AST onto tables. MLMD's semantics are reproduced structurally:

* every distinct neighbor alias, every distinct property (name, custom flag) and the node's
  ``type`` become one **inner join** each, so a node lacking a referenced neighbor never
  matches, whatever the boolean structure (``OR``/``NOT`` cannot bring it back);
* repeated mentions of one alias/property share one joined row;
* the result is de-duplicated (``DISTINCT``, or an ``IN`` semi-join for listings);
* enum names were rewritten to numbers by the parser; ``!=`` / ``NOT IN`` on enums keep NULLs.

Every constant reaches the database as a bound parameter. Join aliases are generated
(``f_n0``, ``f_p1``...), never derived from query text.

LIKE and string comparisons follow the backend (§6.4 item 8): SQLite's LIKE is
ASCII-case-insensitive with no escape character, PostgreSQL and MySQL use ``\\``.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lineagedb import errors
from lineagedb.query.filter_ast import (
    And,
    AttributeRef,
    Between,
    CmpOp,
    Comparison,
    EnumPredicate,
    Expr,
    FilterQueryError,
    InList,
    IsNull,
    Like,
    Literal,
    Negate,
    NeighborKind,
    NeighborRef,
    NodeKind,
    Not,
    Or,
    PropertyRef,
    Truth,
    Value,
    referenced_joins,
)
from lineagedb.query.filter_parser import parse_filter
from lineagedb.store import tenancy
from lineagedb.store.schema import MLMDText, Schema
from lineagedb.store.tenancy import Reach

__all__ = ["CompiledFilter", "InnerJoin", "apply", "compile_filter", "matching_ids"]

_COMPARATORS: dict[CmpOp, Callable[[Any, Any], sa.ColumnElement[bool]]] = {
    CmpOp.EQ: operator.eq,
    CmpOp.NE: operator.ne,
    CmpOp.LT: operator.lt,
    CmpOp.LE: operator.le,
    CmpOp.GT: operator.gt,
    CmpOp.GE: operator.ge,
}


@dataclass(frozen=True)
class InnerJoin:
    """One ``JOIN target ON onclause`` to add to the node's FROM clause, in order."""

    target: sa.FromClause
    onclause: sa.ColumnElement[bool]


@dataclass(frozen=True)
class CompiledFilter:
    """A filter over ``node``: the joins it needs and its WHERE condition."""

    node: sa.FromClause
    joins: tuple[InnerJoin, ...]
    where: sa.ColumnElement[bool]

    def from_clause(self) -> sa.FromClause:
        joined: sa.FromClause = self.node
        for join in self.joins:
            joined = joined.join(join.target, join.onclause)
        return joined

    def select_ids(self, distinct: bool = True) -> sa.Select[int]:
        """``SELECT [DISTINCT] node.id FROM node JOIN ... WHERE (filter)``."""
        query: sa.Select[int] = sa.select(self.node.c.id).select_from(self.from_clause()).where(self.where)
        return query.distinct() if distinct else query


def _node_table(schema: Schema, kind: NodeKind) -> sa.Table:
    table: sa.Table = getattr(schema, kind.value)
    return table


def _property_table(schema: Schema, kind: NodeKind) -> sa.Table:
    table: sa.Table = getattr(schema, f"{kind.value}_property")
    return table


class _Compiler:
    def __init__(self, schema: Schema, kind: NodeKind, node: sa.FromClause, reach: Reach) -> None:
        self.schema = schema
        self.kind = kind
        self.node = node
        # Neighbors the caller cannot read are not there: they never satisfy a join.
        self.reach = reach
        self.joins: list[InnerJoin] = []
        self.node_type: sa.FromClause | None = None
        # (kind, alias) -> the neighbor row alias; (kind, alias) -> its Type alias.
        self.neighbors: dict[tuple[NeighborKind, str], sa.FromClause] = {}
        self.neighbor_types: dict[tuple[NeighborKind, str], sa.FromClause] = {}
        # (custom, name) -> the property row alias.
        self.properties: dict[tuple[bool, str], sa.FromClause] = {}

    # -- joins -------------------------------------------------------------------------------

    def plan_joins(self, expr: Expr) -> None:
        needs = referenced_joins(expr)
        type_table = self.schema.type
        if needs.node_type:
            # `type` is the type *name* (§6.4 item 4): all versions of a type match.
            self.node_type = type_table.alias("f_type")
            self.joins.append(InnerJoin(self.node_type, self.node_type.c.id == self.node.c.type_id))
        for index, key in enumerate(needs.neighbors):
            self.neighbors[key] = self._join_neighbor(key[0], f"f_n{index}")
            if key in needs.neighbor_types:
                neighbor_type = type_table.alias(f"f_n{index}_type")
                self.joins.append(InnerJoin(neighbor_type, neighbor_type.c.id == self.neighbors[key].c.type_id))
                self.neighbor_types[key] = neighbor_type
        owner_column = f"{self.kind.value}_id"
        for index, (custom, name) in enumerate(needs.properties):
            prop = _property_table(self.schema, self.kind).alias(f"f_p{index}")
            onclause = sa.and_(
                prop.c[owner_column] == self.node.c.id,
                prop.c.name == sa.literal(name, MLMDText()),
                prop.c.is_custom_property == sa.literal(custom, sa.Boolean()),
            )
            self.joins.append(InnerJoin(prop, onclause))
            self.properties[(custom, name)] = prop

    def _join_neighbor(self, kind: NeighborKind, name: str) -> sa.FromClause:
        """Join the neighbor rows of ``kind`` (through a link table where there is one)."""
        s = self.schema
        node_id = self.node.c.id
        if kind is NeighborKind.EVENTS:
            event = s.event.alias(name)
            if self.kind is NodeKind.ARTIFACT:
                owner, other, other_kind = event.c.artifact_id, event.c.execution_id, tenancy.EXECUTION_NODE
            else:
                owner, other, other_kind = event.c.execution_id, event.c.artifact_id, tenancy.ARTIFACT_NODE
            # An event is visible only when both of its ends are.
            self.joins.append(InnerJoin(event, sa.and_(owner == node_id, self._visible(other_kind, other))))
            return event
        link: sa.FromClause
        if kind is NeighborKind.CONTEXTS:
            link_table = s.attribution if self.kind is NodeKind.ARTIFACT else s.association
            link = link_table.alias(f"{name}_link")
            owner_column = "artifact_id" if self.kind is NodeKind.ARTIFACT else "execution_id"
            near, far, target = link.c[owner_column], link.c.context_id, s.context
        elif kind is NeighborKind.PARENT_CONTEXTS:
            link = s.parent_context.alias(f"{name}_link")
            near, far, target = link.c.context_id, link.c.parent_context_id, s.context
        elif kind is NeighborKind.CHILD_CONTEXTS:
            link = s.parent_context.alias(f"{name}_link")
            near, far, target = link.c.parent_context_id, link.c.context_id, s.context
        elif kind is NeighborKind.ARTIFACTS:
            link = s.attribution.alias(f"{name}_link")
            near, far, target = link.c.context_id, link.c.artifact_id, s.artifact
        else:  # EXECUTIONS
            link = s.association.alias(f"{name}_link")
            near, far, target = link.c.context_id, link.c.execution_id, s.execution
        neighbor = target.alias(name)
        target_kind = tenancy.kind_number(target.name.lower())
        self.joins.append(InnerJoin(link, near == node_id))
        self.joins.append(InnerJoin(neighbor, sa.and_(neighbor.c.id == far, self._visible(target_kind, neighbor.c.id))))
        return neighbor

    def _visible(self, node_kind: int, node_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        return tenancy.visible(node_kind, node_id, self.reach)

    # -- expressions -------------------------------------------------------------------------

    def value(self, value: Value) -> sa.ColumnElement[Any]:
        match value:
            case Literal(constant):
                # Typed bind parameters: SQLAlchemy renders bools per dialect (0/1 or
                # TRUE/FALSE) and never inlines the value. Text is stored MLMD's way
                # (double-encoded on MySQL), so text literals are encoded the same way.
                if isinstance(constant, str):
                    return sa.literal(constant, MLMDText())
                return sa.literal(constant)
            case Negate(operand):
                return -self.value(operand)
            case AttributeRef(name):
                if name == "type":
                    assert self.node_type is not None
                    return self.node_type.c.name
                return self.node.c[name]
            case NeighborRef(kind, alias, field):
                key = (kind, alias)
                if field == "type" and kind is not NeighborKind.EVENTS:
                    return self.neighbor_types[key].c.name
                return self.neighbors[key].c[field]
            case PropertyRef(custom, name, field):
                return self.properties[(custom, name)].c[field.value]
        raise TypeError(f"not a filter value: {value!r}")

    def expr(self, expr: Expr) -> sa.ColumnElement[bool]:
        match expr:
            case And(operands):
                return sa.and_(*(self.expr(op) for op in operands))
            case Or(operands):
                return sa.or_(*(self.expr(op) for op in operands))
            case Not(operand):
                return sa.not_(self.expr(operand))
            case Comparison(op, left, right):
                return _COMPARATORS[op](self.value(left), self.value(right))
            case Like(operand, pattern, negated):
                column, like_pattern = self.value(operand), self.value(pattern)
                return column.not_like(like_pattern) if negated else column.like(like_pattern)
            case InList(operand, values, negated):
                column = self.value(operand)
                items = [self.value(item) for item in values]
                return column.not_in(items) if negated else column.in_(items)
            case Between(operand, low, high, negated):
                between = self.value(operand).between(self.value(low), self.value(high))
                return sa.not_(between) if negated else between
            case IsNull(operand, negated):
                column = self.value(operand)
                return column.is_not(None) if negated else column.is_(None)
            case EnumPredicate(field, _, numbers, negated):
                column = self.value(field)
                if negated:
                    # MLMD's rewrite: (f NOT IN (...) OR f IS NULL) — rows without a value match.
                    return sa.or_(column.not_in(numbers), column.is_(None))
                return column.in_(numbers)
            case Truth(operand):
                if isinstance(operand, Literal):
                    return sa.true() if operand.value else sa.false()
                # A bool_value used directly: true only for a stored TRUE (NULL is not).
                return self.value(operand) == sa.literal(True)
        raise TypeError(f"not a filter expression: {expr!r}")


def compile_filter(
    expr: Expr, kind: NodeKind, schema: Schema, node: sa.FromClause | None = None, reach: Reach = Reach.ALL
) -> CompiledFilter:
    """Compile ``expr`` (parsed for ``kind``) against ``schema``.

    ``node`` is the FROM element standing for the filtered nodes; by default a fresh alias
    of the node table, so the result can sit in a subquery under a query on the same table
    without SQLAlchemy correlating the two. Under a restricted ``reach`` the filtered node
    and every joined neighbor must be readable (the statement then takes tenancy's
    parameters).
    """
    if node is None:
        node = _node_table(schema, kind).alias("f_node")
    compiler = _Compiler(schema, kind, node, reach)
    compiler.plan_joins(expr)
    where = compiler.expr(expr)
    if reach is not Reach.ALL:
        where = sa.and_(compiler._visible(tenancy.kind_number(kind.value), node.c.id), where)
    return CompiledFilter(node=node, joins=tuple(compiler.joins), where=where)


def matching_ids(schema: Schema, kind: NodeKind, text: str, reach: Reach = Reach.ALL) -> sa.Select[int]:
    """``SELECT DISTINCT id`` of the nodes of ``kind`` matching the filter ``text``.

    Raises InvalidArgumentError for a filter MLMD would reject (§6.6).
    """
    return compile_filter(_parse(text, kind), kind, schema, reach=reach).select_ids()


def apply(uow: Any, kind: Any, query: sa.Select[Any], text: str) -> sa.Select[Any]:
    """Restrict a node listing ``query`` (over the plain node table) to nodes matching ``text``.

    ``kind`` is the repository's NodeKind (same values as ours), ``uow`` provides the schema
    and the caller's reach. The filter is applied as ``id IN (subquery)``: the semi-join
    de-duplicates by itself and leaves the listing's columns and ORDER BY alone.
    """
    return restrict(uow.schema, kind, query, text, uow.tenancy.reach)


def restrict(schema: Schema, kind: Any, query: sa.Select[Any], text: str, reach: Reach) -> sa.Select[Any]:
    """`apply` for callers that hold the schema rather than a unit of work."""
    node_kind = NodeKind(kind.value)
    return query.where(_node_table(schema, node_kind).c.id.in_(matching_subquery(schema, node_kind, text, reach)))


@functools.lru_cache(maxsize=512)
def matching_subquery(schema: Schema, kind: NodeKind, text: str, reach: Reach = Reach.ALL) -> sa.Select[Any]:
    """Ids (not distinct) of the readable nodes of ``kind`` matching ``text``.

    Parsed and compiled once per text and reach: clients page through one filter many
    times, and parsing costs far more than running the compiled statement."""
    return compile_filter(_parse(text, kind), kind, schema, reach=reach).select_ids(distinct=False)


def _parse(text: str | bytes, kind: NodeKind) -> Expr:
    # proto2 strings are not UTF-8-checked on parse: invalid UTF-8 arrives as bytes. A str
    # with lone surrogates (in-process callers) is no better: no database driver encodes it.
    if not isinstance(text, str) or not _encodable(text):
        raise errors.InvalidArgumentError("Invalid `filter_query`: the query is not valid UTF-8")
    try:
        return parse_filter(text, kind)
    except FilterQueryError as error:
        raise errors.InvalidArgumentError(error.message) from None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
