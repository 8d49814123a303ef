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
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

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
from lineagedb.store import prepared, tenancy
from lineagedb.store.schema import MLMDText, Schema
from lineagedb.store.tenancy import Reach

__all__ = [
    "CompiledFilter",
    "InnerJoin",
    "ParsedFilter",
    "apply",
    "check_sensitive",
    "compile_filter",
    "matching_ids",
    "matching_row",
    "parse",
    "probe",
]

# SQLite joins at most 64 tables in one SELECT and MySQL 61, and PostgreSQL plans joins of
# many tables slowly. A filter whose joins would exceed this (a table per distinct
# property, two per neighbor alias...) is compiled without joins: see _Compiler.plan_joins.
MAX_JOINED_TABLES = 40
# Past the join limit, each distinct property or neighbor alias is a correlated subquery.
# PostgreSQL's planning time grows faster than linearly with them (measured on an empty
# store: 100 -> 0.2 s, 400 -> 1.9 s, 1,000 -> 6.5 s per statement), so a filter naming
# more than this is refused, saying so, rather than tying up a connection for minutes.
MAX_FILTER_REFERENCES = 256

_COMPARATORS: dict[CmpOp, Callable[[Any, Any], sa.ColumnElement[bool]]] = {
    CmpOp.EQ: operator.eq,
    CmpOp.NE: operator.ne,
    CmpOp.LT: operator.lt,
    CmpOp.LE: operator.le,
    CmpOp.GT: operator.gt,
    CmpOp.GE: operator.ge,
}


# The bind parameters a filter's values go in, by their place in its shape (see `parse`);
# PostgreSQL plans a statement with them on every execution (store.prepared).
FILTER_VALUE = prepared.PLANNED_WITH_VALUES
# ...except a node's own id asked for by equality (`id = 5`, `id IN (5, 6)`): whatever the
# value, the plan is a probe of the primary key, so such a statement (a lineage start's
# `id = N`, the filter clients send most) may keep a generic plan instead of being planned
# again on every call (PostgreSQL: ~0.1 ms a lineage call's start, more with namespaces).
KEY_VALUE = "filter_key_"


@dataclass(frozen=True, slots=True)
class _Slot(Literal):
    """A literal's place in a filter's shape: the statement binds FILTER_VALUE<index> there
    (KEY_VALUE<index> where `keyed`: an id compared for equality). Its `value` is a stand-in
    of the literal's Python type (0, 0.0, '' or False), which decides the parameter's SQL
    type, so that two texts of one shape share one statement."""

    index: int
    keyed: bool = False

    @property
    def parameter(self) -> str:
        return f"{KEY_VALUE if self.keyed else FILTER_VALUE}{self.index}"


@dataclass(frozen=True)
class ParsedFilter:
    """A filter text parsed for one node kind, split into its shape (every literal replaced
    by a `_Slot`) and its values. Equal and hashed by kind and shape only: the statements
    cached for a filter (`restrict`, `matching_row`, `probe`, `matching_subquery` and their
    callers' caches) are built once per shape, and each call binds its own `parameters`.
    Clients rarely send one text twice (`id = N` for a lineage start, a URI, a name), and
    building and compiling a filter's statement cost more than running it."""

    kind: NodeKind
    shape: Expr
    values: tuple[Any, ...] = field(compare=False)
    # The names the values bind under, in slot order (follows from the shape).
    names: tuple[str, ...] = field(default=(), compare=False)
    # The shape's hash, computed once: a key of several caches per call, and a long filter's
    # tree would be hashed again at each.
    _hash: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.kind, self.shape)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def parameters(self) -> dict[str, Any]:
        """The values, by the names the shape's statements bind them under."""
        return dict(zip(self.names, self.values, strict=True))


@functools.lru_cache(maxsize=1024)
def parse(text: str, kind: NodeKind) -> ParsedFilter:
    """`text` parsed for `kind`; InvalidArgumentError (not cached) for a filter MLMD rejects."""
    shape, slots = _shape_of(_parse(text, kind))
    return ParsedFilter(kind, shape, tuple(value for _, value in slots), tuple(name for name, _ in slots))


def _shape_of(expr: Expr) -> tuple[Expr, list[tuple[str, Any]]]:
    """`expr` with its literals replaced by slots, and each slot's parameter name and value
    in slot order. A literal standing alone as a predicate (`TRUE`, `FALSE`) or tested for
    NULL stays: it decides the statement's structure, not a value in it."""
    slots: list[tuple[str, Any]] = []

    def slot(value: Value, keyed: bool = False) -> Value:
        if not isinstance(value, Literal):
            return value  # references; a Negate never wraps a literal (the parser folds those)
        placed = _Slot(type(value.value)(), value.value_type, len(slots), keyed)
        slots.append((placed.parameter, value.value))
        return placed

    def shape(node: Expr) -> Expr:
        match node:
            case And(operands):
                return And(tuple(shape(operand) for operand in operands))
            case Or(operands):
                return Or(tuple(shape(operand) for operand in operands))
            case Not(operand):
                return Not(shape(operand))
            case Comparison(CmpOp.EQ, left, right):
                return Comparison(CmpOp.EQ, slot(left, _is_own_id(right)), slot(right, _is_own_id(left)))
            case Comparison(op, left, right):
                return Comparison(op, slot(left), slot(right))
            case Like(operand, pattern, negated):
                return Like(slot(operand), slot(pattern), negated)
            case InList(operand, items, negated):
                keyed = not negated and _is_own_id(operand)
                return InList(slot(operand), tuple(slot(item, keyed) for item in items), negated)
            case Between(operand, low, high, negated):
                return Between(slot(operand), slot(low), slot(high), negated)
        return node  # IsNull, EnumPredicate (its numbers come from names), Truth

    return shape(expr), slots


def _is_own_id(value: Value) -> bool:
    """Whether `value` is the node's own id (not a neighbor's: those are other references)."""
    return isinstance(value, AttributeRef) and value.name == "id"


def _slot_type(stand_in: Any) -> Any:
    """The SQL type `sa.literal` gives a value of the stand-in's Python type (text stored MLMD's way)."""
    if isinstance(stand_in, str):
        return MLMDText()
    if isinstance(stand_in, bool):
        return sa.Boolean()
    if isinstance(stand_in, int):
        return sa.Integer()
    return sa.Float()


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
        # Filters over very many tables (plan_joins): property lookups instead of joins,
        # their "has the property" conditions, and each neighbor's own joins.
        self.property_lookups = False
        self.neighbor_subqueries = False
        self.property_rows: dict[tuple[bool, str], sa.ColumnElement[bool]] = {}
        self.required: list[sa.ColumnElement[bool]] = []
        self.neighbor_joins: dict[tuple[NeighborKind, str], list[InnerJoin]] = {}

    # -- joins -------------------------------------------------------------------------------

    def plan_joins(self, expr: Expr) -> None:
        needs = referenced_joins(expr)
        references = len(needs.properties) + len(needs.neighbors)
        if references > MAX_FILTER_REFERENCES:
            raise errors.InvalidArgumentError(
                f"Invalid `filter_query`: it names {references} distinct properties and neighbor aliases; "
                f"at most {MAX_FILTER_REFERENCES} are supported"
            )
        type_table = self.schema.type
        if needs.node_type:
            # `type` is the type *name* (§6.4 item 4): all versions of a type match.
            self.node_type = type_table.alias("f_type")
            self.joins.append(InnerJoin(self.node_type, self.node_type.c.id == self.node.c.type_id))
        neighbor_tables = sum(1 if kind is NeighborKind.EVENTS else 2 for kind, _ in needs.neighbors)
        tables = 1 + int(needs.node_type) + neighbor_tables + len(needs.neighbor_types) + len(needs.properties)
        # Too many tables for one join (see MAX_JOINED_TABLES): a property has at most one
        # row per node, so a lookup plus "the row exists" means exactly what its join meant.
        self.property_lookups = tables > MAX_JOINED_TABLES
        if self.property_lookups:
            tables -= len(needs.properties)
        self.neighbor_subqueries = tables > MAX_JOINED_TABLES
        self.needs = needs
        for index, key in enumerate(needs.neighbors):
            self._plan_neighbor(index, key, self.joins if not self.neighbor_subqueries else [])
        owner_column = f"{self.kind.value}_id"
        for index, (custom, name) in enumerate(needs.properties):
            prop = _property_table(self.schema, self.kind).alias(f"f_p{index}")
            onclause = sa.and_(
                prop.c[owner_column] == self.node.c.id,
                prop.c.name == sa.literal(name, MLMDText()),
                prop.c.is_custom_property == sa.literal(custom, sa.Boolean()),
            )
            if self.property_lookups:
                self.property_rows[(custom, name)] = onclause
            else:
                self.joins.append(InnerJoin(prop, onclause))
            self.properties[(custom, name)] = prop
        if self.property_lookups and needs.properties:
            self.required.append(self._has_properties(needs.properties))

    def _has_properties(self, wanted: tuple[tuple[bool, str], ...]) -> sa.ColumnElement[bool]:
        """The node has every one of `wanted` (the inner joins' meaning), as ONE counting
        subquery: (owner, name, custom) is the property table's key, so the count reaches
        len(wanted) only if each exists. An EXISTS per property would be turned into a
        semi-join each by PostgreSQL, whose planner then searches a thousand-table join."""
        prop = _property_table(self.schema, self.kind).alias("f_props")
        owner = prop.c[f"{self.kind.value}_id"]
        by_flag = [
            sa.and_(
                prop.c.is_custom_property == sa.literal(custom, sa.Boolean()),
                prop.c.name.in_([sa.literal(name, MLMDText()) for flag, name in wanted if flag is custom]),
            )
            for custom in (False, True)
            if any(flag is custom for flag, _ in wanted)
        ]
        count = sa.select(sa.func.count()).where(owner == self.node.c.id, sa.or_(*by_flag)).scalar_subquery()
        return count == len(wanted)

    def _plan_neighbor(self, index: int, key: tuple[NeighborKind, str], joins: list[InnerJoin]) -> None:
        """Join the neighbor `key` into `joins`: the filter's own joins, or (when there are too
        many) the joins of a correlated EXISTS of its own (see `where`)."""
        self.neighbors[key] = self._join_neighbor(key[0], f"f_n{index}", joins)
        if key in self.needs.neighbor_types:
            neighbor_type = self.schema.type.alias(f"f_n{index}_type")
            joins.append(InnerJoin(neighbor_type, neighbor_type.c.id == self.neighbors[key].c.type_id))
            self.neighbor_types[key] = neighbor_type
        self.neighbor_joins[key] = joins

    def where(self, expr: Expr) -> sa.ColumnElement[bool]:
        """The filter's condition over the node and its joins.

        With a neighbor subquery per alias, the condition is split into its top-level AND
        terms; each alias's terms go into one EXISTS over that alias's rows. That is the
        join's meaning exactly when no term names two aliases (an existential per alias
        distributes over AND); a filter that would need it is refused, saying the limit."""
        if not self.neighbor_subqueries:
            return sa.and_(*self.required, self.expr(expr))
        terms = expr.operands if isinstance(expr, And) else (expr,)
        plain: list[sa.ColumnElement[bool]] = []
        by_alias: dict[tuple[NeighborKind, str], list[Expr]] = {}
        for term in terms:
            aliases = referenced_joins(term).neighbors
            if len(aliases) > 1:
                raise errors.InvalidArgumentError(
                    f"Invalid `filter_query`: it names {len(self.needs.neighbors)} neighbor aliases and needs more "
                    f"than {MAX_JOINED_TABLES} joined tables; that many are only supported when each top-level AND "
                    "term names at most one alias (this one names several inside OR/NOT)"
                )
            if aliases:
                by_alias.setdefault(aliases[0], []).append(term)
            else:
                plain.append(self.expr(term))
        exists = []
        for key, alias_terms in by_alias.items():
            first, *rest = self.neighbor_joins[key]
            rows: sa.FromClause = first.target
            for join in rest:
                rows = rows.join(join.target, join.onclause)
            condition = sa.and_(first.onclause, *(self.expr(term) for term in alias_terms))
            # "A first matching row is not NULL" rather than EXISTS, which PostgreSQL would
            # turn into hundreds of semi-joins for one planner search (see _has_properties).
            first_row = sa.select(sa.literal(1)).select_from(rows).where(condition).limit(1).scalar_subquery()
            exists.append(first_row.is_not(None))
        return sa.and_(*self.required, *plain, *exists)

    def _join_neighbor(self, kind: NeighborKind, name: str, joins: list[InnerJoin]) -> sa.FromClause:
        """Join the neighbor rows of ``kind`` into ``joins`` (through a link table where there is one)."""
        s = self.schema
        node_id = self.node.c.id
        if kind is NeighborKind.EVENTS:
            event = s.event.alias(name)
            if self.kind is NodeKind.ARTIFACT:
                owner, other, other_kind = event.c.artifact_id, event.c.execution_id, tenancy.EXECUTION_NODE
            else:
                owner, other, other_kind = event.c.execution_id, event.c.artifact_id, tenancy.ARTIFACT_NODE
            # An event is visible only when both of its ends are.
            joins.append(InnerJoin(event, sa.and_(owner == node_id, self._visible(other_kind, other))))
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
        joins.append(InnerJoin(link, near == node_id))
        joins.append(InnerJoin(neighbor, sa.and_(neighbor.c.id == far, self._visible(target_kind, neighbor.c.id))))
        return neighbor

    def _visible(self, node_kind: int, node_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        return tenancy.visible(node_kind, node_id, self.reach)

    # -- expressions -------------------------------------------------------------------------

    def value(self, value: Value) -> sa.ColumnElement[Any]:
        match value:
            case _Slot(stand_in, _, _, _) as placed:
                return sa.bindparam(placed.parameter, type_=_slot_type(stand_in), required=True)
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
                prop = self.properties[(custom, name)]
                if self.property_lookups:
                    lookup = sa.select(prop.c[field.value]).where(self.property_rows[(custom, name)])
                    return lookup.scalar_subquery()
                return prop.c[field.value]
        raise TypeError(f"not a filter value: {value!r}")

    def expr(self, expr: Expr) -> sa.ColumnElement[bool]:
        match expr:
            case And(operands):
                return _balanced(sa.and_, [self.expr(op) for op in operands])
            case Or(operands):
                return _balanced(sa.or_, [self.expr(op) for op in operands])
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


def _balanced(
    combine: Callable[..., sa.ColumnElement[bool]], terms: list[sa.ColumnElement[bool]]
) -> sa.ColumnElement[bool]:
    """`combine(*terms)` as a balanced tree of parenthesized halves once it is long:
    SQLite parses a flat chain of a thousand ANDs into an expression tree a thousand
    deep, past its limit of 1000; halves keep the depth logarithmic."""
    if len(terms) <= 16:
        return combine(*terms)
    middle = len(terms) // 2
    return combine(
        _Parenthesized(_balanced(combine, terms[:middle])), _Parenthesized(_balanced(combine, terms[middle:]))
    )


class _Parenthesized(sa.ColumnElement[bool]):
    """A condition in parentheses that SQLAlchemy keeps: it flattens nested ANDs (even
    grouped ones) back into one chain, which is what `_balanced` must avoid."""

    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [("inner", InternalTraversal.dp_clauseelement)]

    def __init__(self, inner: sa.ColumnElement[bool]) -> None:
        self.inner = inner


@compiles(_Parenthesized)
def _render_parenthesized(element: _Parenthesized, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.inner, **kw)})"


def compile_filter(
    expr: Expr,
    kind: NodeKind,
    schema: Schema,
    node: sa.FromClause | None = None,
    reach: Reach = Reach.ALL,
    node_scoped: bool = False,
) -> CompiledFilter:
    """Compile ``expr`` (parsed for ``kind``) against ``schema``.

    ``node`` is the FROM element standing for the filtered nodes; by default a fresh alias
    of the node table, so the result can sit in a subquery under a query on the same table
    without SQLAlchemy correlating the two. Under a restricted ``reach`` the filtered node
    and every joined neighbor must be readable (the statement then takes tenancy's
    parameters); ``node_scoped`` says the query the filter goes into already restricts
    the filtered nodes themselves (a listing), so only the neighbors are checked here.
    """
    if node is None:
        node = _node_table(schema, kind).alias("f_node")
    compiler = _Compiler(schema, kind, node, reach)
    compiler.plan_joins(expr)
    where = compiler.where(expr)
    if reach is not Reach.ALL and not node_scoped:
        where = sa.and_(compiler._visible(tenancy.kind_number(kind.value), node.c.id), where)
    return CompiledFilter(node=node, joins=tuple(compiler.joins), where=where)


def matching_ids(schema: Schema, kind: NodeKind, text: str, reach: Reach = Reach.ALL) -> sa.Select[int]:
    """``SELECT DISTINCT id`` of the nodes of ``kind`` matching the filter ``text``.

    Raises InvalidArgumentError for a filter MLMD would reject (§6.6).
    """
    return compile_filter(_parse(text, kind), kind, schema, reach=reach).select_ids()


def apply(uow: Any, kind: Any, query: sa.Select[Any], text: str) -> sa.Select[Any]:
    """Restrict a node listing ``query`` (over the plain node table) to nodes matching ``text``,
    its values written into the statement (it needs no parameters of the filter's).

    ``kind`` is the repository's NodeKind (same values as ours), ``uow`` provides the schema
    and the caller's reach. The filter is applied as ``id IN (subquery)``: the semi-join
    de-duplicates by itself and leaves the listing's columns and ORDER BY alone.
    """
    node_kind = NodeKind(kind.value)
    matching = _text_subquery(uow.schema, node_kind, text, uow.tenancy.reach)
    return query.where(_node_table(uow.schema, node_kind).c.id.in_(matching))


@functools.lru_cache(maxsize=512)
def _text_subquery(schema: Schema, kind: NodeKind, text: str, reach: Reach) -> sa.Select[Any]:
    compiled = compile_filter(_parse(text, kind), kind, schema, reach=reach)
    return compiled.select_ids(distinct=False)


def restrict(
    schema: Schema, kind: Any, query: sa.Select[Any], flt: ParsedFilter, reach: Reach, node_scoped: bool = False
) -> sa.Select[Any]:
    """``query`` (over the plain node table of the repository's ``kind``) restricted to the
    nodes matching ``flt`` (its statement binds ``flt.parameters``); ``node_scoped`` as in
    `compile_filter` (``query`` keeps only readable nodes itself)."""
    node_kind = NodeKind(kind.value)
    matching = matching_subquery(schema, node_kind, flt, reach, node_scoped)
    return query.where(_node_table(schema, node_kind).c.id.in_(matching))


@functools.lru_cache(maxsize=512)
def matching_subquery(
    schema: Schema, kind: NodeKind, flt: ParsedFilter, reach: Reach = Reach.ALL, node_scoped: bool = False
) -> sa.Select[Any]:
    """Ids (not distinct) of the nodes of ``kind`` matching ``flt``: readable ones only,
    unless ``node_scoped`` leaves that to the enclosing query (see `compile_filter`).
    Built once per shape and reach; the statement binds ``flt.parameters``."""
    compiled = compile_filter(flt.shape, kind, schema, reach=reach, node_scoped=node_scoped)
    return compiled.select_ids(distinct=False)


def matching_row(schema: Schema, kind: Any, flt: ParsedFilter, reach: Reach = Reach.ALL) -> sa.ColumnElement[bool]:
    """``EXISTS`` (the row of ``kind``'s node table the enclosing query reads matches ``flt``):
    the filter evaluated per row, for a listing that walks its rows in order and stops at a
    page (SQLite builds the whole ``IN`` list first). The enclosing query keeps only readable
    nodes itself (``node_scoped``). ``kind`` as in `restrict`."""
    return _matching_row(schema, NodeKind(kind.value), flt, reach)


@functools.lru_cache(maxsize=512)
def _matching_row(schema: Schema, kind: NodeKind, flt: ParsedFilter, reach: Reach) -> sa.ColumnElement[bool]:
    compiled = compile_filter(flt.shape, kind, schema, reach=reach, node_scoped=True)
    row = _node_table(schema, kind).c.id
    return sa.exists(compiled.select_ids(distinct=False).where(compiled.node.c.id == row))


def probe(
    schema: Schema,
    kind: Any,
    flt: ParsedFilter,
    reach: Reach = Reach.ALL,
    after: bool = False,
    node_scoped: bool = False,
) -> sa.Select[Any]:
    """Ids (not distinct, in no order) of at most ``:probe_rows`` readable nodes matching
    ``flt``, with ``after`` only those with an id above ``:after_value``: how a SQLite
    listing learns whether a filter is narrow (it then has every match) or broad.
    ``node_scoped`` as in `compile_filter`: the ids' own namespaces are left to the caller
    (the filter's neighbors are still checked under ``reach``)."""
    return _probe(schema, NodeKind(kind.value), flt, reach, after, node_scoped)


@functools.lru_cache(maxsize=512)
def _probe(
    schema: Schema, kind: NodeKind, flt: ParsedFilter, reach: Reach, after: bool, node_scoped: bool
) -> sa.Select[Any]:
    compiled = compile_filter(flt.shape, kind, schema, reach=reach, node_scoped=node_scoped)
    query = compiled.select_ids(distinct=False)
    if after:
        query = query.where(compiled.node.c.id > sa.bindparam("after_value", type_=sa.BigInteger))
    return query.limit(sa.bindparam("probe_rows", type_=sa.Integer))


def check_sensitive(uow: Any, kind: Any, text: str, parse_errors: bool = True) -> None:
    """Refuse a filter naming a sensitive property (store.sensitive) when encryption is on.

    Called where a filter enters a repository, before the cached statements: those are
    keyed by text and reach, not by the policy, and a filter must be refused every time.
    `parse_errors=False` leaves a filter that does not parse to whoever evaluates it (a
    lineage ending filter is refused up front, its syntax only if it is used, as before)."""
    protection = uow.protection
    if protection is None or not text:
        return
    try:
        properties = _referenced_properties(text, NodeKind(kind.value))
    except errors.InvalidArgumentError:
        if parse_errors:
            raise
        return
    protection.check_filter(properties)


@functools.lru_cache(maxsize=512)
def _referenced_properties(text: str, kind: NodeKind) -> tuple[tuple[bool, str], ...]:
    return referenced_joins(_parse(text, kind)).properties


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
