"""Typed AST for MLMD ``filter_query`` expressions (behaviour spec §6).

The parser (``filter_parser``) produces these nodes only after resolving every name against
the vocabulary of one node kind and type-checking the whole expression, so a consumer (the
SQL compiler) can trust that:

* every reference is valid for the node kind it was parsed for;
* operands of a comparison / IN / BETWEEN have compatible types, LIKE operands are strings;
* enum fields (states, event types) only occur in ``EnumPredicate`` or ``IsNull``;
* no ``Negate`` wraps a ``Literal`` (unary minus on literals is folded);
* property names are already lower-cased (§6.4 item 7) and aliases are lower-cased.

All nodes are frozen, hashable dataclasses, so equal queries compare equal.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "And",
    "AttributeRef",
    "Between",
    "CmpOp",
    "Comparison",
    "EnumPredicate",
    "EnumType",
    "Expr",
    "FilterQueryError",
    "InList",
    "IsNull",
    "JoinRequirements",
    "Like",
    "Literal",
    "Negate",
    "NeighborKind",
    "NeighborRef",
    "NodeKind",
    "Not",
    "Or",
    "PropertyField",
    "PropertyRef",
    "Ref",
    "Truth",
    "Value",
    "ValueType",
    "referenced_joins",
    "to_filter_text",
]

ERROR_PREFIX = "Invalid `filter_query`: "


class FilterQueryError(Exception):
    """A filter query that MLMD answers with INVALID_ARGUMENT.

    ``message`` always starts with ``Invalid `filter_query`: `` (the prefix MLMD uses), so the
    transport edge can pass it through verbatim. ``position`` is the 0-based character offset
    of the offending text, or None when the error concerns the query as a whole.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        if not message.startswith(ERROR_PREFIX):
            message = ERROR_PREFIX + message
        super().__init__(message)
        self.message = message
        self.position = position


class NodeKind(enum.Enum):
    """The node kind a filter is evaluated against; it decides the vocabulary (§6.3)."""

    ARTIFACT = "artifact"
    EXECUTION = "execution"
    CONTEXT = "context"


class ValueType(enum.Enum):
    """GoogleSQL types a filter operand can have. ENUM marks state/event-type fields, which
    are stored as INT64 but may only be compared with enum names (§6.5)."""

    INT64 = "INT64"
    DOUBLE = "DOUBLE"
    STRING = "STRING"
    BOOL = "BOOL"
    ENUM = "ENUM"

    @property
    def is_numeric(self) -> bool:
        return self in (ValueType.INT64, ValueType.DOUBLE)


class EnumType(enum.Enum):
    """The three proto enums that filter queries can mention by name."""

    ARTIFACT_STATE = "Artifact.State"
    EXECUTION_STATE = "Execution.State"
    EVENT_TYPE = "Event.Type"


class NeighborKind(enum.Enum):
    """Neighbor prefixes (§6.3). The value is the prefix without its trailing underscore."""

    CONTEXTS = "contexts"
    PARENT_CONTEXTS = "parent_contexts"
    CHILD_CONTEXTS = "child_contexts"
    ARTIFACTS = "artifacts"
    EXECUTIONS = "executions"
    EVENTS = "events"


class PropertyField(enum.Enum):
    """The addressable value columns of a property row."""

    INT_VALUE = "int_value"
    DOUBLE_VALUE = "double_value"
    STRING_VALUE = "string_value"
    BOOL_VALUE = "bool_value"

    @property
    def value_type(self) -> ValueType:
        return _PROPERTY_FIELD_TYPES[self]


_PROPERTY_FIELD_TYPES = {
    PropertyField.INT_VALUE: ValueType.INT64,
    PropertyField.DOUBLE_VALUE: ValueType.DOUBLE,
    PropertyField.STRING_VALUE: ValueType.STRING,
    PropertyField.BOOL_VALUE: ValueType.BOOL,
}


class CmpOp(enum.Enum):
    """Comparison operators; ``<>`` is parsed as NE."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


# --------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant. ``value_type`` is INT64 for ``int``, DOUBLE for ``float``, STRING, BOOL."""

    value: int | float | str | bool
    value_type: ValueType


@dataclass(frozen=True, slots=True)
class AttributeRef:
    """A column of the node itself, e.g. ``name`` or ``type`` (canonical lower-case name)."""

    name: str
    value_type: ValueType
    enum_type: EnumType | None = None


@dataclass(frozen=True, slots=True)
class NeighborRef:
    """``<kind>_<alias>.<field>``: a field of a joined neighbor row (context, event, ...)."""

    kind: NeighborKind
    alias: str
    field: str
    value_type: ValueType
    enum_type: EnumType | None = None


@dataclass(frozen=True, slots=True)
class PropertyRef:
    """``[custom_]properties.<name>.<field>``; ``name`` is lower-cased as MLMD does."""

    custom: bool
    name: str
    field: PropertyField

    @property
    def value_type(self) -> ValueType:
        return self.field.value_type


@dataclass(frozen=True, slots=True)
class Negate:
    """Unary minus applied to a numeric reference (never to a literal: those are folded)."""

    operand: Value

    @property
    def value_type(self) -> ValueType:
        return self.operand.value_type


Ref = AttributeRef | NeighborRef | PropertyRef
Value = Literal | AttributeRef | NeighborRef | PropertyRef | Negate


# --------------------------------------------------------------------------------------------
# Boolean expressions


@dataclass(frozen=True, slots=True)
class And:
    """Conjunction of two or more operands (flat, so long chains do not nest deeply)."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Disjunction of two or more operands."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class Comparison:
    op: CmpOp
    left: Value
    right: Value


@dataclass(frozen=True, slots=True)
class Like:
    """``operand [NOT] LIKE pattern``; the pattern follows the backend's LIKE semantics."""

    operand: Value
    pattern: Value
    negated: bool = False


@dataclass(frozen=True, slots=True)
class InList:
    operand: Value
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Between:
    operand: Value
    low: Value
    high: Value
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull:
    """``operand IS NULL`` (``negated``: ``IS NOT NULL``)."""

    operand: Value
    negated: bool = False


@dataclass(frozen=True, slots=True)
class EnumPredicate:
    """An enum field compared with enum names (§6.5), already rewritten to numbers.

    ``negated`` False: ``field IN (numbers)`` (written ``= NAME`` or ``IN (...)``).
    ``negated`` True: ``field NOT IN (numbers) OR field IS NULL`` (written ``!= NAME`` or
    ``NOT IN (...)``): MLMD's rewrite deliberately lets rows with no value through.
    """

    field: AttributeRef | NeighborRef
    enum_type: EnumType
    numbers: tuple[int, ...]
    negated: bool = False

    @property
    def include_null(self) -> bool:
        return self.negated


@dataclass(frozen=True, slots=True)
class Truth:
    """A BOOL value used directly as a predicate: ``TRUE``, ``FALSE`` or a ``bool_value``."""

    operand: Value


Expr = And | Or | Not | Comparison | Like | InList | Between | IsNull | EnumPredicate | Truth


# --------------------------------------------------------------------------------------------
# Join metadata for the SQL compiler


@dataclass(frozen=True, slots=True)
class JoinRequirements:
    """What a compiled query must join (§6.4): one inner join on Type if the node's ``type``
    is used, one per distinct neighbor (kind, alias), plus one on Type for each neighbor
    whose ``type`` (name) is used, one per distinct property (custom flag, name). Tuples are
    sorted so the join order is deterministic."""

    node_type: bool
    neighbors: tuple[tuple[NeighborKind, str], ...]
    neighbor_types: tuple[tuple[NeighborKind, str], ...]
    properties: tuple[tuple[bool, str], ...]


def iter_values(expr: Expr) -> Iterator[Value]:
    """Every value operand in ``expr`` (iterative: depth is bounded anyway, but cheap)."""
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        match node:
            case And(operands) | Or(operands):
                stack.extend(operands)
            case Not(operand):
                stack.append(operand)
            case Comparison(_, left, right):
                yield left
                yield right
            case Like(operand, pattern, _):
                yield operand
                yield pattern
            case InList(operand, values, _):
                yield operand
                yield from values
            case Between(operand, low, high, _):
                yield operand
                yield low
                yield high
            case IsNull(operand, _) | Truth(operand):
                yield operand
            case EnumPredicate(field, _, _, _):
                yield field


def _unwrap(value: Value) -> Value:
    while isinstance(value, Negate):
        value = value.operand
    return value


def referenced_joins(expr: Expr) -> JoinRequirements:
    """The distinct joins ``expr`` needs (MLMD: one inner join per distinct mention)."""
    node_type = False
    neighbors: set[tuple[NeighborKind, str]] = set()
    neighbor_types: set[tuple[NeighborKind, str]] = set()
    properties: set[tuple[bool, str]] = set()
    for value in iter_values(expr):
        value = _unwrap(value)
        if isinstance(value, AttributeRef) and value.name == "type":
            node_type = True
        elif isinstance(value, NeighborRef):
            neighbors.add((value.kind, value.alias))
            # events_x.type is the event's own enum column; other neighbors' `type` is the
            # name of their Type row, which needs a join of its own.
            if value.field == "type" and value.kind is not NeighborKind.EVENTS:
                neighbor_types.add((value.kind, value.alias))
        elif isinstance(value, PropertyRef):
            properties.add((value.custom, value.name))

    def order(item: tuple[NeighborKind, str]) -> tuple[str, str]:
        return (item[0].value, item[1])

    return JoinRequirements(
        node_type=node_type,
        neighbors=tuple(sorted(neighbors, key=order)),
        neighbor_types=tuple(sorted(neighbor_types, key=order)),
        properties=tuple(sorted(properties)),
    )


# --------------------------------------------------------------------------------------------
# Unparsing (canonical text; used by tests and for logging)


def _quote_string(value: str) -> str:
    out = ["'"]
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append("'")
    return "".join(out)


def _quote_identifier(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace("`", "\\`").replace("\n", "\\n")
    return f"`{escaped}`"


def _literal_text(lit: Literal) -> str:
    value = lit.value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite doubles have no literal form")
        text = repr(value)
        # repr() may give "1e+16" or "5.0"; both are valid float literals, but a bare
        # integer spelling would be re-read as INT64, so force a float form.
        if "." not in text and "e" not in text and "E" not in text:
            text += ".0"
        return text
    return _quote_string(value)


_ENUM_NAMES_BY_NUMBER: dict[EnumType, dict[int, str]] = {
    EnumType.ARTIFACT_STATE: {
        0: "UNKNOWN",
        1: "PENDING",
        2: "LIVE",
        3: "MARKED_FOR_DELETION",
        4: "DELETED",
        5: "ABANDONED",
        6: "REFERENCE",
    },
    EnumType.EXECUTION_STATE: {
        0: "UNKNOWN",
        1: "NEW",
        2: "RUNNING",
        3: "COMPLETE",
        4: "FAILED",
        5: "CACHED",
        6: "CANCELED",
    },
    EnumType.EVENT_TYPE: {
        0: "UNKNOWN",
        1: "DECLARED_OUTPUT",
        2: "DECLARED_INPUT",
        3: "INPUT",
        4: "OUTPUT",
        5: "INTERNAL_INPUT",
        6: "INTERNAL_OUTPUT",
        7: "PENDING_OUTPUT",
    },
}


def enum_name(enum_type: EnumType, number: int) -> str:
    """The proto enum value name for ``number`` (all values, accepted in filters or not)."""
    return _ENUM_NAMES_BY_NUMBER[enum_type][number]


def _value_text(value: Value) -> str:
    match value:
        case Literal():
            return _literal_text(value)
        case AttributeRef(name):
            return name
        case NeighborRef(kind, alias, field):
            return f"{kind.value}_{alias}.{field}"
        case PropertyRef(custom, name, field):
            prefix = "custom_properties" if custom else "properties"
            return f"{prefix}.{_quote_identifier(name)}.{field.value}"
        case Negate(operand):
            return f"-({_value_text(operand)})"
    raise TypeError(f"not a filter value: {value!r}")


def to_filter_text(expr: Expr) -> str:
    """Canonical, fully parenthesised filter text that parses back to an equal AST."""
    match expr:
        case And(operands):
            return "(" + " AND ".join(to_filter_text(op) for op in operands) + ")"
        case Or(operands):
            return "(" + " OR ".join(to_filter_text(op) for op in operands) + ")"
        case Not(operand):
            return f"(NOT {to_filter_text(operand)})"
        case Comparison(op, left, right):
            return f"({_value_text(left)} {op.value} {_value_text(right)})"
        case Like(operand, pattern, negated):
            keyword = "NOT LIKE" if negated else "LIKE"
            return f"({_value_text(operand)} {keyword} {_value_text(pattern)})"
        case InList(operand, values, negated):
            keyword = "NOT IN" if negated else "IN"
            items = ", ".join(_value_text(v) for v in values)
            return f"({_value_text(operand)} {keyword} ({items}))"
        case Between(operand, low, high, negated):
            keyword = "NOT BETWEEN" if negated else "BETWEEN"
            return f"({_value_text(operand)} {keyword} {_value_text(low)} AND {_value_text(high)})"
        case IsNull(operand, negated):
            keyword = "IS NOT NULL" if negated else "IS NULL"
            return f"({_value_text(operand)} {keyword})"
        case EnumPredicate(field, enum_type, numbers, negated):
            keyword = "NOT IN" if negated else "IN"
            names = ", ".join(enum_name(enum_type, n) for n in numbers)
            return f"({_value_text(field)} {keyword} ({names}))"
        case Truth(operand):
            return f"({_value_text(operand)})"
    raise TypeError(f"not a filter expression: {expr!r}")
