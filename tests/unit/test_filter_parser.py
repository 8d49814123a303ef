"""The filter_query parser and type checker (behaviour spec §6), without a database."""

from __future__ import annotations

import functools
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lineagedb.query.filter_ast import (
    And,
    AttributeRef,
    Between,
    CmpOp,
    Comparison,
    EnumPredicate,
    EnumType,
    Expr,
    FilterQueryError,
    InList,
    IsNull,
    JoinRequirements,
    Like,
    Literal,
    Negate,
    NeighborKind,
    NeighborRef,
    NodeKind,
    Not,
    Or,
    PropertyField,
    PropertyRef,
    Truth,
    Value,
    ValueType,
    referenced_joins,
    to_filter_text,
)
from lineagedb.query.filter_parser import (
    MAX_NESTING_DEPTH,
    MAX_QUERY_LENGTH,
    MAX_TOKENS,
    parse_filter,
    parse_optional_filter,
)

A, E, C = NodeKind.ARTIFACT, NodeKind.EXECUTION, NodeKind.CONTEXT
I64, DBL, STR, BOOL, ENUM = ValueType.INT64, ValueType.DOUBLE, ValueType.STRING, ValueType.BOOL, ValueType.ENUM

ID = AttributeRef("id", I64)
NAME = AttributeRef("name", STR)
URI = AttributeRef("uri", STR)
TYPE = AttributeRef("type", STR)
STATE = AttributeRef("state", ENUM, EnumType.ARTIFACT_STATE)
LAST_KNOWN_STATE = AttributeRef("last_known_state", ENUM, EnumType.EXECUTION_STATE)


def lit(value: int | float | str | bool) -> Literal:
    if isinstance(value, bool):
        return Literal(value, BOOL)
    if isinstance(value, int):
        return Literal(value, I64)
    if isinstance(value, float):
        return Literal(value, DBL)
    return Literal(value, STR)


def prop(name: str, field: str, custom: bool = False) -> PropertyRef:
    return PropertyRef(custom, name, PropertyField(field))


def invalid(text: str, kind: NodeKind = A) -> FilterQueryError:
    with pytest.raises(FilterQueryError) as info:
        parse_filter(text, kind)
    error = info.value
    assert str(error).startswith("Invalid `filter_query`: ")
    return error


# --------------------------------------------------------------------------------------------
# §6.7 examples


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("id != 1", A, Comparison(CmpOp.NE, ID, lit(1))),
        (
            "type = 'DataSet' AND name LIKE 'foo%'",
            A,
            And((Comparison(CmpOp.EQ, TYPE, lit("DataSet")), Like(NAME, lit("foo%")))),
        ),
        ("id IN (1, 3)", A, InList(ID, (lit(1), lit(3)))),
        (
            "NOT(create_time_since_epoch < 1 OR last_update_time_since_epoch < 1)",
            A,
            Not(
                Or(
                    (
                        Comparison(CmpOp.LT, AttributeRef("create_time_since_epoch", I64), lit(1)),
                        Comparison(CmpOp.LT, AttributeRef("last_update_time_since_epoch", I64), lit(1)),
                    )
                )
            ),
        ),
        ("uri IS NOT NULL", A, IsNull(URI, negated=True)),
        ("state IN (PENDING, LIVE)", A, EnumPredicate(STATE, EnumType.ARTIFACT_STATE, (1, 2))),
        (
            "last_known_state NOT IN (FAILED, CANCELED)",
            E,
            EnumPredicate(LAST_KNOWN_STATE, EnumType.EXECUTION_STATE, (4, 6), negated=True),
        ),
        (
            "contexts_a.type = 'RunContext' AND contexts_a.name = 'my_run'",
            A,
            And(
                (
                    Comparison(CmpOp.EQ, NeighborRef(NeighborKind.CONTEXTS, "a", "type", STR), lit("RunContext")),
                    Comparison(CmpOp.EQ, NeighborRef(NeighborKind.CONTEXTS, "a", "name", STR), lit("my_run")),
                )
            ),
        ),
        (
            "properties.accuracy.double_value > 0.95",
            A,
            Comparison(CmpOp.GT, prop("accuracy", "double_value"), lit(0.95)),
        ),
        (
            "custom_properties.`my:custom.property`.bool_value = true",
            A,
            Comparison(CmpOp.EQ, prop("my:custom.property", "bool_value", custom=True), lit(True)),
        ),
        (
            "events_0.type IN (INPUT, INTERNAL_INPUT)",
            A,
            EnumPredicate(
                NeighborRef(NeighborKind.EVENTS, "0", "type", ENUM, EnumType.EVENT_TYPE), EnumType.EVENT_TYPE, (3, 5)
            ),
        ),
        (
            "events_0.execution_id = 1",
            A,
            Comparison(CmpOp.EQ, NeighborRef(NeighborKind.EVENTS, "0", "execution_id", I64), lit(1)),
        ),
        (
            "parent_contexts_a.name = 'pipeline'",
            C,
            Comparison(CmpOp.EQ, NeighborRef(NeighborKind.PARENT_CONTEXTS, "a", "name", STR), lit("pipeline")),
        ),
        (
            "artifacts_x.state = LIVE",
            C,
            EnumPredicate(
                NeighborRef(NeighborKind.ARTIFACTS, "x", "state", ENUM, EnumType.ARTIFACT_STATE),
                EnumType.ARTIFACT_STATE,
                (2,),
            ),
        ),
        (
            "executions_a.name = 'x1' AND artifacts_b.uri LIKE 'gs://%'",
            C,
            And(
                (
                    Comparison(CmpOp.EQ, NeighborRef(NeighborKind.EXECUTIONS, "a", "name", STR), lit("x1")),
                    Like(NeighborRef(NeighborKind.ARTIFACTS, "b", "uri", STR), lit("gs://%")),
                )
            ),
        ),
    ],
)
def test_parse_spec_examples_give_expected_ast(text: str, kind: NodeKind, expected: Expr) -> None:
    assert parse_filter(text, kind) == expected


# --------------------------------------------------------------------------------------------
# Grammar and precedence


def test_parse_not_binds_looser_than_comparison() -> None:
    assert parse_filter("NOT id = 1", A) == Not(Comparison(CmpOp.EQ, ID, lit(1)))


def test_parse_and_binds_tighter_than_or() -> None:
    a, b, c = (Comparison(CmpOp.EQ, ID, lit(n)) for n in (1, 2, 3))
    assert parse_filter("id = 1 OR id = 2 AND id = 3", A) == Or((a, And((b, c))))
    assert parse_filter("(id = 1 OR id = 2) AND id = 3", A) == And((Or((a, b)), c))


def test_parse_long_or_chain_is_flat() -> None:
    expr = parse_filter(" OR ".join(f"id = {n}" for n in range(500)), A)
    assert isinstance(expr, Or) and len(expr.operands) == 500


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ("id = 1", CmpOp.EQ),
        ("id != 1", CmpOp.NE),
        ("id <> 1", CmpOp.NE),
        ("id < 1", CmpOp.LT),
        ("id <= 1", CmpOp.LE),
        ("id > 1", CmpOp.GT),
        ("id >= 1", CmpOp.GE),
        ("id>=1", CmpOp.GE),
    ],
)
def test_parse_comparison_operators(text: str, op: CmpOp) -> None:
    assert parse_filter(text, A) == Comparison(op, ID, lit(1))


def test_parse_negated_forms() -> None:
    assert parse_filter("name NOT LIKE 'a%'", A) == Like(NAME, lit("a%"), negated=True)
    assert parse_filter("id NOT IN (1)", A) == InList(ID, (lit(1),), negated=True)
    assert parse_filter("id BETWEEN 1 AND 5", A) == Between(ID, lit(1), lit(5))
    assert parse_filter("id NOT BETWEEN 1 AND 5 AND id = 2", A) == And(
        (Between(ID, lit(1), lit(5), negated=True), Comparison(CmpOp.EQ, ID, lit(2)))
    )
    assert parse_filter("name IS NULL", A) == IsNull(NAME)


def test_parse_unary_minus_folds_into_literals_and_wraps_references() -> None:
    assert parse_filter("id > -5", A) == Comparison(CmpOp.GT, ID, lit(-5))
    assert parse_filter("id > - -5", A) == Comparison(CmpOp.GT, ID, lit(5))
    assert parse_filter("id > -(5)", A) == Comparison(CmpOp.GT, ID, lit(-5))
    assert parse_filter("-id < 0", A) == Comparison(CmpOp.LT, Negate(ID), lit(0))
    assert parse_filter("- -id < 0", A) == Comparison(CmpOp.LT, ID, lit(0))
    assert parse_filter("id > -1.5", A) == Comparison(CmpOp.GT, ID, lit(-1.5))


def test_parse_parenthesised_operands() -> None:
    assert parse_filter("(id) = (1)", A) == Comparison(CmpOp.EQ, ID, lit(1))


def test_parse_bool_terms() -> None:
    flag = prop("flag", "bool_value")
    assert parse_filter("TRUE", A) == Truth(lit(True))
    assert parse_filter("false OR id = 1", A) == Or((Truth(lit(False)), Comparison(CmpOp.EQ, ID, lit(1))))
    assert parse_filter("properties.flag.bool_value", A) == Truth(flag)
    assert parse_filter("NOT properties.flag.bool_value", A) == Not(Truth(flag))
    assert parse_filter("(properties.flag.bool_value) AND TRUE", A) == And((Truth(flag), Truth(lit(True))))
    assert parse_filter("properties.flag.bool_value != false", A) == Comparison(CmpOp.NE, flag, lit(False))


def test_parse_literal_comparisons_are_allowed() -> None:
    assert parse_filter("1 = 1", A) == Comparison(CmpOp.EQ, lit(1), lit(1))
    assert parse_filter("'a' < 'b'", A) == Comparison(CmpOp.LT, lit("a"), lit("b"))


def test_parse_reference_to_reference_comparison() -> None:
    expected = Comparison(
        CmpOp.EQ, AttributeRef("create_time_since_epoch", I64), AttributeRef("last_update_time_since_epoch", I64)
    )
    assert parse_filter("create_time_since_epoch = last_update_time_since_epoch", A) == expected


# --------------------------------------------------------------------------------------------
# Vocabulary per node kind (§6.3)


@pytest.mark.parametrize("kind", [A, E, C])
@pytest.mark.parametrize(
    "attribute",
    ["id", "type_id", "create_time_since_epoch", "last_update_time_since_epoch", "type", "name", "external_id"],
)
def test_parse_common_attributes_for_every_kind(kind: NodeKind, attribute: str) -> None:
    expr = parse_filter(f"{attribute} IS NULL", kind)
    assert isinstance(expr, IsNull) and isinstance(expr.operand, AttributeRef)
    assert expr.operand.name == attribute


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("uri = 'x'", E),
        ("uri = 'x'", C),
        ("state = LIVE", E),
        ("state = LIVE", C),
        ("last_known_state = NEW", A),
        ("last_known_state = NEW", C),
        ("foo = 1", A),
        ("uri2 = 'x'", A),
    ],
)
def test_parse_attribute_of_another_kind_is_unrecognized(text: str, kind: NodeKind) -> None:
    assert "Unrecognized name" in str(invalid(text, kind))


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("contexts_a.id = 1", A),
        ("contexts_a.create_time_since_epoch = 1", A),
        ("contexts_a.last_update_time_since_epoch = 1", E),
        ("contexts_a.name = 'x'", E),
        ("contexts_a.type = 'x'", A),
        ("events_0.milliseconds_since_epoch = 1", A),
        ("events_0.execution_id = 1", A),
        ("events_0.artifact_id = 1", E),
        ("events_0.type = OUTPUT", E),
        ("parent_contexts_p.id = 1", C),
        ("child_contexts_c.type = 'x'", C),
        ("artifacts_a.uri = 'x'", C),
        ("artifacts_a.state IS NULL", C),
        ("executions_e.last_known_state = RUNNING", C),
        ("executions_e.create_time_since_epoch > 0", C),
        # The spec's "may fix" quirk fields are supported.
        ("parent_contexts_p.create_time_since_epoch > 0", C),
        ("child_contexts_c.last_update_time_since_epoch > 0", C),
        ("artifacts_a.external_id = 'x'", C),
        ("executions_e.external_id = 'x'", C),
    ],
)
def test_parse_neighbor_fields_accepted(text: str, kind: NodeKind) -> None:
    parse_filter(text, kind)


@pytest.mark.parametrize(
    ("text", "kind", "fragment"),
    [
        ("contexts_a.external_id = 'x'", A, "does not exist"),
        ("contexts_a.uri = 'x'", A, "does not exist"),
        ("events_0.artifact_id = 1", A, "does not exist"),
        ("events_0.execution_id = 1", E, "does not exist"),
        ("contexts_a.name = 'x'", C, "Unrecognized name"),
        ("events_0.type = INPUT", C, "Unrecognized name"),
        ("parent_contexts_a.name = 'x'", A, "Unrecognized name"),
        ("artifacts_a.name = 'x'", A, "Unrecognized name"),
        ("executions_a.name = 'x'", E, "Unrecognized name"),
        ("contexts_.name = 'x'", A, "Unrecognized name"),
        ("contexts_a = 1", A, "Unrecognized name"),
        ("contexts_a.name.x = 'x'", A, "Invalid reference"),
        ("artifacts_a.last_known_state = NEW", C, "does not exist"),
    ],
)
def test_parse_unknown_neighbor_or_field_is_invalid(text: str, kind: NodeKind, fragment: str) -> None:
    assert fragment in str(invalid(text, kind))


def test_parse_neighbor_aliases_are_case_insensitive_and_kind_scoped() -> None:
    expr = parse_filter("contexts_A.name = 'x' AND contexts_a.id = 1 AND contexts_b.id = 2", A)
    joins = referenced_joins(expr)
    assert joins.neighbors == ((NeighborKind.CONTEXTS, "a"), (NeighborKind.CONTEXTS, "b"))


@pytest.mark.parametrize("field", ["int_value", "double_value", "string_value", "bool_value"])
@pytest.mark.parametrize("kind", [A, E, C])
def test_parse_property_fields(kind: NodeKind, field: str) -> None:
    expr = parse_filter(f"properties.p.{field} IS NULL AND custom_properties.p.{field} IS NOT NULL", kind)
    assert expr == And((IsNull(prop("p", field)), IsNull(prop("p", field, custom=True), negated=True)))


@pytest.mark.parametrize("field", ["proto_value", "struct_value", "byte_value"])
def test_parse_unaddressable_property_fields_are_invalid(field: str) -> None:
    assert "cannot be used" in str(invalid(f"properties.p.{field} IS NULL"))


@pytest.mark.parametrize(
    "text",
    ["properties.p = 1", "properties.p.int_value.x = 1", "properties.p.nope = 1", "properties = 1"],
)
def test_parse_malformed_property_reference_is_invalid(text: str) -> None:
    invalid(text)


def test_parse_property_names_are_lower_cased() -> None:
    assert parse_filter("properties.MyProp.int_value = 1", A) == Comparison(
        CmpOp.EQ, prop("myprop", "int_value"), lit(1)
    )
    assert parse_filter("properties.`MyProp`.int_value = 1", A) == Comparison(
        CmpOp.EQ, prop("myprop", "int_value"), lit(1)
    )


def test_parse_property_spellings_differing_in_case_are_invalid() -> None:
    assert "Duplicate column" in str(invalid("properties.MyProp.int_value = 1 AND properties.myprop.int_value = 1"))
    # Same spelling twice is fine, and properties vs custom_properties are distinct.
    parse_filter("properties.MyProp.int_value = 1 OR properties.MyProp.int_value = 2", A)
    parse_filter("properties.MyProp.int_value = 1 AND custom_properties.myprop.int_value = 2", A)


def test_parse_property_names_after_dot_may_be_keywords_or_digits() -> None:
    assert parse_filter("properties.2024.int_value = 1", A) == Comparison(CmpOp.EQ, prop("2024", "int_value"), lit(1))
    assert parse_filter("properties.and.int_value = 1", A) == Comparison(CmpOp.EQ, prop("and", "int_value"), lit(1))
    assert parse_filter("properties . p . int_value = 1", A) == Comparison(CmpOp.EQ, prop("p", "int_value"), lit(1))


def test_parse_backquoted_property_name_with_escapes() -> None:
    expr = parse_filter(r"custom_properties.`a\`b c`.string_value = 'x'", A)
    assert expr == Comparison(CmpOp.EQ, prop("a`b c", "string_value", custom=True), lit("x"))


def test_parse_empty_backquoted_identifier_is_invalid() -> None:
    invalid("properties.``.int_value = 1")


# --------------------------------------------------------------------------------------------
# Case rules (§6.1)


def test_parse_keywords_are_case_insensitive() -> None:
    expected = And((IsNull(NAME, negated=True), Not(InList(ID, (lit(1),)))))
    assert parse_filter("name iS nOt NuLl and NoT id In (1)", A) == expected
    assert parse_filter("name like 'a' Or id between 1 and 2", A) == Or(
        (Like(NAME, lit("a")), Between(ID, lit(1), lit(2)))
    )


def test_parse_attribute_and_field_names_are_case_insensitive() -> None:
    assert parse_filter("NAME = 'x'", A) == Comparison(CmpOp.EQ, NAME, lit("x"))
    assert parse_filter("contexts_a.NAME = 'x'", A) == Comparison(
        CmpOp.EQ, NeighborRef(NeighborKind.CONTEXTS, "a", "name", STR), lit("x")
    )
    assert parse_filter("properties.p.INT_VALUE = 1", A) == Comparison(CmpOp.EQ, prop("p", "int_value"), lit(1))


@pytest.mark.parametrize(
    "text",
    [
        "Contexts_a.name = 'x'",
        "CONTEXTS_a.name = 'x'",
        "Properties.p.int_value = 1",
        "CUSTOM_PROPERTIES.p.int_value = 1",
    ],
)
def test_parse_neighbor_prefixes_must_be_lower_case(text: str) -> None:
    assert "Unrecognized name" in str(invalid(text))


# --------------------------------------------------------------------------------------------
# Enum predicates (§6.5)

EVENT_TYPE_REF = NeighborRef(NeighborKind.EVENTS, "e", "type", ENUM, EnumType.EVENT_TYPE)


@pytest.mark.parametrize(
    ("name", "number"),
    [("UNKNOWN", 0), ("PENDING", 1), ("LIVE", 2), ("MARKED_FOR_DELETION", 3), ("DELETED", 4)],
)
def test_parse_artifact_state_names_accepted(name: str, number: int) -> None:
    assert parse_filter(f"state = {name}", A) == EnumPredicate(STATE, EnumType.ARTIFACT_STATE, (number,))


@pytest.mark.parametrize("name", ["ABANDONED", "REFERENCE"])
def test_parse_artifact_state_names_rejected_by_mlmd(name: str) -> None:
    assert "Unsupported enum value" in str(invalid(f"state = {name}"))
    assert "Unsupported enum value" in str(invalid(f"artifacts_a.state IN (LIVE, {name})", C))


@pytest.mark.parametrize(
    ("name", "number"),
    [("UNKNOWN", 0), ("NEW", 1), ("RUNNING", 2), ("COMPLETE", 3), ("FAILED", 4), ("CACHED", 5), ("CANCELED", 6)],
)
def test_parse_execution_state_names_accepted(name: str, number: int) -> None:
    assert parse_filter(f"last_known_state = {name}", E) == EnumPredicate(
        LAST_KNOWN_STATE, EnumType.EXECUTION_STATE, (number,)
    )


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("DECLARED_OUTPUT", 1),
        ("DECLARED_INPUT", 2),
        ("INPUT", 3),
        ("OUTPUT", 4),
        ("INTERNAL_INPUT", 5),
        ("INTERNAL_OUTPUT", 6),
    ],
)
def test_parse_event_type_names_accepted(name: str, number: int) -> None:
    assert parse_filter(f"events_e.type = {name}", E) == EnumPredicate(EVENT_TYPE_REF, EnumType.EVENT_TYPE, (number,))


@pytest.mark.parametrize("name", ["PENDING_OUTPUT", "UNKNOWN"])
def test_parse_event_type_names_rejected_by_mlmd(name: str) -> None:
    assert "Unsupported enum value" in str(invalid(f"events_e.type = {name}"))


def test_parse_enum_not_equal_and_not_in_include_nulls() -> None:
    ne = parse_filter("state != LIVE", A)
    assert ne == EnumPredicate(STATE, EnumType.ARTIFACT_STATE, (2,), negated=True)
    assert isinstance(ne, EnumPredicate) and ne.include_null
    not_in = parse_filter("events_e.type NOT IN (INPUT, OUTPUT)", A)
    assert isinstance(not_in, EnumPredicate) and not_in.include_null and not_in.numbers == (3, 4)
    eq = parse_filter("state = LIVE", A)
    assert isinstance(eq, EnumPredicate) and not eq.include_null


def test_parse_enum_is_null_is_plain() -> None:
    assert parse_filter("state IS NULL", A) == IsNull(STATE)
    assert parse_filter("last_known_state IS NOT NULL", E) == IsNull(LAST_KNOWN_STATE, negated=True)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("state = live", "Unrecognized name: live"),
        ("state = Live", "Unrecognized name: Live"),
        ("state = RUNNING", "Unrecognized name: RUNNING"),  # an execution state on an artifact
        ("state = 2", "must be compared with"),
        ("state IN (LIVE, 2)", "must be compared with"),
        ("state = 'LIVE'", "must be compared with"),
        ("state = `LIVE`", "Unrecognized name: LIVE"),
        ("state <> LIVE", "Unrecognized name: LIVE"),
        ("state < LIVE", "Unrecognized name: LIVE"),
        ("state >= 2", "enum field"),
        ("LIVE = state", "Unrecognized name: LIVE"),
        ("2 = state", "enum field"),
        ("state LIKE 'x'", "enum field"),
        ("state BETWEEN 1 AND 2", "enum field"),
        ("id IN (state)", "enum field"),
        ("state = name", "must be compared with"),
        ("state IN(LIVE)", "Unrecognized name: LIVE"),
        ("state IN (LIVE)AND id = 1", None),  # only the whitespace around IN matters
        ("state NOT IN(LIVE)", "Unrecognized name: LIVE"),
        ("(state)IN (LIVE)", "Unrecognized name: LIVE"),
        ("state IN ()", "Syntax error"),
        ("-state = LIVE", "operator -"),
        ("state", "boolean"),
    ],
)
def test_parse_enum_misuse(text: str, fragment: str | None) -> None:
    if fragment is None:
        parse_filter(text, A)
        return
    message = str(invalid(text))
    assert fragment.lower() in message.lower()


# --------------------------------------------------------------------------------------------
# Type checking (§6.2)


@pytest.mark.parametrize(
    "text",
    [
        "id = '1'",
        "name = 1",
        "'1' = id",
        "id IN (1, '2')",
        "id BETWEEN 1 AND 'z'",
        "name LIKE 1",
        "id LIKE 'a%'",
        "properties.p.bool_value = 1",
        "properties.p.string_value > 0.5",
        "properties.p.bool_value LIKE 'x'",
        "TRUE = 1",
        "contexts_a.id = 'x'",
    ],
)
def test_parse_type_mismatch_is_invalid(text: str) -> None:
    assert "No matching signature" in str(invalid(text))


@pytest.mark.parametrize(
    "text",
    ["id = 1.0", "id > 0.5", "properties.p.double_value = 1", "properties.p.int_value < properties.q.double_value"],
)
def test_parse_int_and_double_mix_freely(text: str) -> None:
    parse_filter(text, A)


@pytest.mark.parametrize(
    "text",
    ["id = NULL", "NULL = id", "name != NULL", "id IN (1, NULL)", "NULL", "id IS NULL AND NULL"],
)
def test_parse_null_literal_outside_is_null_is_invalid(text: str) -> None:
    assert "NULL" in str(invalid(text))


@pytest.mark.parametrize(
    "text",
    ["id", "name", "1", "'x'", "properties.p.int_value", "id = 1 AND name", "NOT id", "-1", "1.5 OR TRUE"],
)
def test_parse_non_boolean_expression_is_invalid(text: str) -> None:
    assert "boolean" in str(invalid(text))


@pytest.mark.parametrize(
    "text", ["(id = 1) = TRUE", "(id = 1) IS NULL", "name LIKE (name LIKE 'x')", "-(id = 1) = 1", "id IN ((id = 1))"]
)
def test_parse_boolean_expression_as_operand_is_invalid(text: str) -> None:
    invalid(text)


@pytest.mark.parametrize("text", ["-name = 'x'", "-'a' = name", "-TRUE", "-properties.b.bool_value = TRUE"])
def test_parse_unary_minus_on_non_numbers_is_invalid(text: str) -> None:
    invalid(text)


# --------------------------------------------------------------------------------------------
# Constructs MLMD passes through to SQL, which we reject (§6.2)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("id + 1 = 2", "not supported"),
        ("id * 2 = 2", "not supported"),
        ("id / 2 = 2", "not supported"),
        ("id % 2 = 0", "not supported"),
        ("name || 'x' = 'ax'", "not supported"),
        ("LOWER(name) = 'a'", "function calls are not supported"),
        ("MOD(id, 2) = 0", "function calls are not supported"),
        ("STARTS_WITH(name, 'a')", "function calls are not supported"),
        ("id IN (SELECT 1)", "subqueries are not supported"),
        ("id IN (SELECT id FROM Artifact)", "subqueries are not supported"),
        ("EXISTS (SELECT 1)", "function calls are not supported"),
        ("id = @p", "Query parameters are not supported"),
        ("id = @@sysvar", "Query parameters are not supported"),
        ("name = ?", "Unexpected character"),
        ("properties.b.bool_value IS TRUE", "IS TRUE / IS FALSE is not supported"),
        ("properties.b.bool_value IS NOT FALSE", "IS TRUE / IS FALSE is not supported"),
        ("CAST(id AS STRING) = '1'", "function calls are not supported"),
        ("id = b'x'", "BYTES literals are not supported"),
    ],
)
def test_parse_unsupported_constructs_are_invalid(text: str, fragment: str) -> None:
    assert fragment in str(invalid(text))


# --------------------------------------------------------------------------------------------
# Lexical rules (§6.1)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'a'", "a"),
        ('"a"', "a"),
        (r"'a\'b'", "a'b"),
        (r'"a\"b"', 'a"b'),
        ('"it\'s"', "it's"),
        ("'''a'b''c'''", "a'b''c"),
        ('"""a"b""c"""', 'a"b""c'),
        ("'''multi\nline'''", "multi\nline"),
        ("''", ""),
        ("''''''", ""),
        (r"r'a\nb'", r"a\nb"),
        (r"R'a\'b'", r"a\'b"),
        (r"r'''x\y'''", r"x\y"),
        (r"'\a\b\f\n\r\t\v\\\?\"\'\`'", "\a\b\f\n\r\t\v\\?\"'`"),
        (r"'\x41\101\u00e9\U0001F600'", "AAé\U0001f600"),
        (r"'\xc3\xa9'", "é"),
        ("'%_'", "%_"),
        ("'日本語'", "日本語"),
    ],
)
def test_parse_string_literal_forms(literal: str, value: str) -> None:
    assert parse_filter(f"name = {literal}", A) == Comparison(CmpOp.EQ, NAME, lit(value))


@pytest.mark.parametrize(
    ("literal", "fragment"),
    [
        ("'a''b'", "Syntax error"),
        ('"a""b"', "Syntax error"),
        ("'a' 'b'", "Syntax error"),
        ("'abc", "Unclosed string literal"),
        ('"abc', "Unclosed string literal"),
        ("'''abc''", "Unclosed string literal"),
        ("r'abc", "Unclosed string literal"),
        ("'a\nb'", "Unclosed string literal"),
        (r"'\q'", "Illegal escape sequence"),
        (r"'\x4'", "Illegal escape sequence"),
        (r"'\400'", "Illegal escape sequence"),
        (r"'\uD800'", "Illegal escape sequence"),
        (r"'\U00110000'", "Illegal escape sequence"),
        (r"'\xff'", "invalid UTF8"),
        (r"'\x00'", "NUL"),
        ("rr'a'", "prefix"),
    ],
)
def test_parse_bad_string_literals_are_invalid(literal: str, fragment: str) -> None:
    assert fragment in str(invalid(f"name = {literal}"))


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("007", 7),
        ("0x10", 16),
        ("0XfF", 255),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("0x7FFFFFFFFFFFFFFF", 2**63 - 1),
    ],
)
def test_parse_integer_literals(literal: str, value: int) -> None:
    assert parse_filter(f"id = {literal}", A) == Comparison(CmpOp.EQ, ID, lit(value))


@pytest.mark.parametrize(
    ("literal", "value"),
    [("1.5", 1.5), ("1.6e1", 16.0), (".5", 0.5), ("5.", 5.0), ("1e3", 1000.0), ("2.5E-3", 0.0025), ("-1.5", -1.5)],
)
def test_parse_float_literals(literal: str, value: float) -> None:
    assert parse_filter(f"id = {literal}", A) == Comparison(CmpOp.EQ, ID, lit(value))


@pytest.mark.parametrize(
    "literal",
    ["9223372036854775808", "-9223372036854775809", "0x8000000000000000", "1" * 5000, "1e999", "1abc", "0x1g", "1.5e"],
)
def test_parse_bad_numeric_literals_are_invalid(literal: str) -> None:
    invalid(f"id = {literal}")


@pytest.mark.parametrize(
    "text",
    [
        "id = 1 -- trailing comment",
        "id = 1 # hash comment",
        "/* leading */ id = 1",
        "id /* inside */ = 1",
        "id = 1 /* multi\nline */",
        "-- only a comment line\nid = 1",
        "id = 1 --",
        "id\t=\n1\r\n",
    ],
)
def test_parse_comments_and_whitespace_are_ignored(text: str) -> None:
    assert parse_filter(text, A) == Comparison(CmpOp.EQ, ID, lit(1))


def test_parse_comment_swallows_the_rest_of_the_line_only() -> None:
    assert parse_filter("id = 1 -- OR id = 2\nOR id = 3", A) == Or(
        (Comparison(CmpOp.EQ, ID, lit(1)), Comparison(CmpOp.EQ, ID, lit(3)))
    )


@pytest.mark.parametrize("text", ["id = 1 /* unterminated", "/* only */", "-- only", "   ", "\n\t"])
def test_parse_unterminated_comment_or_empty_query_is_invalid(text: str) -> None:
    invalid(text)


def test_parse_optional_filter_empty_is_none() -> None:
    assert parse_optional_filter("", A) is None
    assert parse_optional_filter("id = 1", A) == Comparison(CmpOp.EQ, ID, lit(1))


# --------------------------------------------------------------------------------------------
# Syntax errors and their positions


@pytest.mark.parametrize(
    "text",
    [
        "id =",
        "= 1",
        "id = 1 AND",
        "id = 1 OR OR id = 2",
        "(id = 1",
        "id = 1)",
        "id = = 1",
        "id = 1 = 1",
        "id IN 1",
        "id IN (1,)",
        "id BETWEEN 1",
        "id IS",
        "id IS NOT",
        "NOT",
        "id 1",
        "name LIKE",
        "id = 1;",
        "id == 1",
        "id = NOT TRUE",
        "properties.",
        "properties.p.",
        "id = 1 AND ()",
    ],
)
def test_parse_syntax_errors_are_invalid(text: str) -> None:
    error = invalid(text)
    assert "Syntax error" in str(error) or "Unexpected" in str(error)
    assert error.position is not None and 0 <= error.position <= len(text)


def test_parse_syntax_error_reports_line_and_column() -> None:
    error = invalid("id = 1\n  AND = 2")
    assert error.position == 13
    assert "[at 2:7]" in str(error)


def test_parse_end_of_query_error_points_past_the_end() -> None:
    error = invalid("id = 1 AND")
    assert error.position == len("id = 1 AND")
    assert "end of query" in str(error)


def test_parse_name_error_points_at_the_name() -> None:
    error = invalid("id = 1 AND bogus = 2")
    assert error.position == 11
    assert "Unrecognized name: bogus [at 1:12]" in str(error)


def test_error_message_prefix_is_added_once() -> None:
    error = FilterQueryError("Invalid `filter_query`: x", 3)
    assert str(error) == "Invalid `filter_query`: x" and error.position == 3
    assert str(FilterQueryError("y")) == "Invalid `filter_query`: y"


# --------------------------------------------------------------------------------------------
# Limits and hostile input (reliability T21)


def test_parse_rejects_nul_bytes_anywhere() -> None:
    assert "NUL" in str(invalid("id = 1\x00"))
    assert "NUL" in str(invalid("name = 'a\x00b'"))
    assert invalid("\x00").position == 0


def test_parse_rejects_queries_over_the_length_limit() -> None:
    padding = " " * (MAX_QUERY_LENGTH - len("id = 1"))
    parse_filter("id = 1" + padding, A)  # exactly at the limit
    error = invalid("id = 1" + padding + " ")
    assert "longer than" in str(error) and error.position is None
    invalid("id = 1 OR " * 100_000)  # 1 MiB
    # The limit is in UTF-8 bytes, not characters.
    invalid("name = '" + "é" * (MAX_QUERY_LENGTH // 2) + "'")


@pytest.mark.parametrize(
    "text",
    [
        " " * (MAX_QUERY_LENGTH - 8) + "id = 1 @",
        "id = 1" + " " * (MAX_QUERY_LENGTH - 8) + "@",
        "id = 1 /*" + " " * (MAX_QUERY_LENGTH - 10),
        "name = '''" + "'" * (MAX_QUERY_LENGTH - 20),
        "name = '" + "\\'" * (MAX_QUERY_LENGTH // 3 - 4),
        "name = " + "'a' " * (MAX_QUERY_LENGTH // 5),
    ],
)
def test_parse_long_trivia_or_unterminated_literals_are_rejected(text: str) -> None:
    # Each of these would cost quadratic time in a tokenizer that searches instead of
    # matching at the current offset; they must fail in one pass.
    assert len(text.encode()) <= MAX_QUERY_LENGTH
    invalid(text)


def test_parse_accepts_long_trailing_whitespace_and_comments() -> None:
    text = "id = 1 -- " + "x" * (MAX_QUERY_LENGTH // 2) + "\n" + " " * (MAX_QUERY_LENGTH // 3)
    assert parse_filter(text, A) == Comparison(CmpOp.EQ, ID, lit(1))


def test_parse_rejects_too_many_tokens() -> None:
    items = ",".join("1" for _ in range(MAX_TOKENS // 2 + 10))
    assert "too many tokens" in str(invalid(f"id IN ({items})"))


def test_parse_accepts_nesting_up_to_the_limit() -> None:
    depth = MAX_NESTING_DEPTH
    assert parse_filter("(" * depth + "id = 1" + ")" * depth, A) == Comparison(CmpOp.EQ, ID, lit(1))
    assert parse_filter("NOT " * 10 + "(" * (depth - 10) + "id = 1" + ")" * (depth - 10), A) is not None


@pytest.mark.parametrize(
    "text",
    [
        "(" * (MAX_NESTING_DEPTH + 1) + "id = 1" + ")" * (MAX_NESTING_DEPTH + 1),
        "(" * 10_000 + "id = 1" + ")" * 10_000,
        "(" * 10_000,
        "NOT " * 10_000 + "id = 1",
        "id = " + "-(" * 10_000 + "1" + ")" * 10_000,
        "id = " + "- " * 10_000 + "1",
        "NOT (" * 5_000 + "id = 1" + ")" * 5_000,
    ],
)
def test_parse_rejects_deep_nesting_before_parsing(text: str) -> None:
    error = invalid(text)
    assert "nested too deeply" in str(error)


def test_parse_double_minus_starts_a_comment() -> None:
    # GoogleSQL: "--" is a comment even right after "=", so this is a truncated query.
    assert "end of query" in str(invalid("id = --1"))


def test_parse_many_sibling_groups_are_not_deep() -> None:
    text = " AND ".join(["NOT (NOT (id = 1))"] * 200)
    expr = parse_filter(text, A)
    assert isinstance(expr, And) and len(expr.operands) == 200


def test_parse_parentheses_inside_strings_do_not_count_as_nesting() -> None:
    text = "name = '" + "(" * 1000 + "'"
    assert parse_filter(text, A) == Comparison(CmpOp.EQ, NAME, lit("(" * 1000))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name = 'x' OR 1=1 --", Or((Comparison(CmpOp.EQ, NAME, lit("x")), Comparison(CmpOp.EQ, lit(1), lit(1))))),
        ("name = 'x'' OR ''1''=''1'", None),
        ("name = '''; DROP TABLE Artifact;--'''", Comparison(CmpOp.EQ, NAME, lit("; DROP TABLE Artifact;--"))),
        (r"name = '\'; DROP TABLE Artifact;--'", Comparison(CmpOp.EQ, NAME, lit("'; DROP TABLE Artifact;--"))),
        ('name = "x\\" OR 1=1 --"', Comparison(CmpOp.EQ, NAME, lit('x" OR 1=1 --'))),
        ("'; DROP TABLE Artifact;--", None),
        ("name = ''; DROP TABLE Artifact;--", None),
        ("id = 1; DELETE FROM Artifact", None),
        ("id = 1 UNION SELECT * FROM Type", None),
        ("name = 'x' /* ' OR 1=1 */", Comparison(CmpOp.EQ, NAME, lit("x"))),
        ("name LIKE '%' ESCAPE '\\'", None),
        ("properties.`x' OR 1=1 --`.int_value = 1", Comparison(CmpOp.EQ, prop("x' or 1=1 --", "int_value"), lit(1))),
        ("name = 'x\\\\' OR 1=1", Or((Comparison(CmpOp.EQ, NAME, lit("x\\")), Comparison(CmpOp.EQ, lit(1), lit(1))))),
        ("`Artifact`.id = 1", None),
        ("id = 0x7FFFFFFF; --", None),
    ],
)
def test_parse_injection_looking_payloads_are_data_or_errors(text: str, expected: Expr | None) -> None:
    if expected is None:
        invalid(text)
    else:
        assert parse_filter(text, A) == expected


# --------------------------------------------------------------------------------------------
# Join metadata


def test_referenced_joins_counts_distinct_mentions() -> None:
    expr = parse_filter(
        "type = 'A' AND contexts_a.name = 'c1' AND contexts_a.type = 'T' AND contexts_b.id > 0 "
        "AND events_0.type = INPUT AND properties.p.int_value = 1 AND properties.p.double_value > 0 "
        "AND custom_properties.p.string_value IS NULL AND NOT properties.q.bool_value",
        A,
    )
    assert referenced_joins(expr) == JoinRequirements(
        node_type=True,
        neighbors=((NeighborKind.CONTEXTS, "a"), (NeighborKind.CONTEXTS, "b"), (NeighborKind.EVENTS, "0")),
        neighbor_types=((NeighborKind.CONTEXTS, "a"),),
        properties=((False, "p"), (False, "q"), (True, "p")),
    )


def test_referenced_joins_none_for_plain_attributes() -> None:
    assert referenced_joins(parse_filter("-id < 0 AND name IS NULL", A)) == JoinRequirements(False, (), (), ())


def test_referenced_joins_event_type_is_not_a_type_join() -> None:
    joins = referenced_joins(parse_filter("events_0.type = INPUT", A))
    assert joins.neighbors == ((NeighborKind.EVENTS, "0"),) and joins.neighbor_types == ()


# --------------------------------------------------------------------------------------------
# Property tests

QUERY_FRAGMENTS = [
    "id", "name", "state", "type", "uri", "properties.p.int_value", "custom_properties.`x y`.string_value",
    "contexts_a.name", "events_0.type", "artifacts_x.state", "LIVE", "INPUT", "NULL", "TRUE", "1", "-", "1.5",
    "'s'", "\"d\"", "'''t'''", "r'\\x'", "`q`", "(", ")", ",", ".", "=", "!=", "<>", "<", ">=", "AND", "OR",
    "NOT", "IN", "LIKE", "BETWEEN", "IS", "--", "#", "/*", "*/", "\\", "'", "\"", "`", "@p", "SELECT",
    "\n", "0x1F", "9223372036854775808", "\x00", "é",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=200), kind=st.sampled_from(list(NodeKind)))
def test_parse_random_text_only_raises_filter_query_error(text: str, kind: NodeKind) -> None:
    try:
        parse_filter(text, kind)
    except FilterQueryError as error:
        assert str(error).startswith("Invalid `filter_query`: ")
        assert error.position is None or 0 <= error.position <= len(text)


@settings(max_examples=300, deadline=None)
@given(
    fragments=st.lists(st.sampled_from(QUERY_FRAGMENTS), max_size=30),
    separator=st.sampled_from([" ", "", "\n"]),
    kind=st.sampled_from(list(NodeKind)),
)
def test_parse_random_token_soup_only_raises_filter_query_error(
    fragments: list[str], separator: str, kind: NodeKind
) -> None:
    text = separator.join(fragments)
    try:
        expr = parse_filter(text, kind)
    except FilterQueryError as error:
        assert error.position is None or 0 <= error.position <= len(text)
    else:
        # Whatever parses also survives a trip through the canonical text.
        assert parse_filter(to_filter_text(expr), kind) == expr


# Strategies for well-typed ASTs over artifacts (the richest vocabulary) and contexts.

_NAMES = st.text(alphabet=string.ascii_lowercase + string.digits + "_:. -/'`\\é", min_size=1, max_size=8)
_ALIASES = st.sampled_from(["a", "b", "0", "x_1"])
_STRINGS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=["Cs"]), max_size=12
)

_REFS: dict[NodeKind, dict[ValueType, list[Value]]] = {
    A: {
        I64: [ID, AttributeRef("type_id", I64), AttributeRef("create_time_since_epoch", I64)],
        STR: [NAME, URI, TYPE, AttributeRef("external_id", STR)],
        BOOL: [],
        DBL: [],
    },
    C: {
        I64: [ID, AttributeRef("last_update_time_since_epoch", I64)],
        STR: [NAME, TYPE],
        BOOL: [],
        DBL: [],
    },
}
_NEIGHBOR_FIELDS: dict[NodeKind, list[tuple[NeighborKind, str, ValueType]]] = {
    A: [
        (NeighborKind.CONTEXTS, "id", I64),
        (NeighborKind.CONTEXTS, "name", STR),
        (NeighborKind.CONTEXTS, "type", STR),
        (NeighborKind.EVENTS, "execution_id", I64),
        (NeighborKind.EVENTS, "milliseconds_since_epoch", I64),
    ],
    C: [
        (NeighborKind.PARENT_CONTEXTS, "name", STR),
        (NeighborKind.CHILD_CONTEXTS, "create_time_since_epoch", I64),
        (NeighborKind.ARTIFACTS, "uri", STR),
        (NeighborKind.EXECUTIONS, "external_id", STR),
    ],
}
_ENUM_FIELDS: dict[NodeKind, list[tuple[Value, EnumType, list[int]]]] = {
    A: [
        (STATE, EnumType.ARTIFACT_STATE, [0, 1, 2, 3, 4]),
        (EVENT_TYPE_REF, EnumType.EVENT_TYPE, [1, 2, 3, 4, 5, 6]),
    ],
    C: [
        (
            NeighborRef(NeighborKind.EXECUTIONS, "e", "last_known_state", ENUM, EnumType.EXECUTION_STATE),
            EnumType.EXECUTION_STATE,
            list(range(7)),
        )
    ],
}
_FIELD_BY_TYPE = {I64: "int_value", DBL: "double_value", STR: "string_value", BOOL: "bool_value"}


@functools.cache
def _refs(kind: NodeKind, value_type: ValueType) -> st.SearchStrategy[Value]:
    options: list[st.SearchStrategy[Value]] = []
    if _REFS[kind][value_type]:
        options.append(st.sampled_from(_REFS[kind][value_type]))
    neighbor_fields = [(k, f) for k, f, t in _NEIGHBOR_FIELDS[kind] if t is value_type]
    if neighbor_fields:
        options.append(
            st.builds(
                lambda kf, alias: NeighborRef(kf[0], alias, kf[1], value_type),
                st.sampled_from(neighbor_fields),
                _ALIASES,
            )
        )
    options.append(
        st.builds(
            lambda custom, name: PropertyRef(custom, name.lower(), PropertyField(_FIELD_BY_TYPE[value_type])),
            st.booleans(),
            _NAMES,
        )
    )
    return st.one_of(options)


@functools.cache
def _literals(value_type: ValueType) -> st.SearchStrategy[Value]:
    if value_type is I64:
        return st.integers(-(2**63), 2**63 - 1).map(lambda v: Literal(v, I64))
    if value_type is DBL:
        return st.floats(allow_nan=False, allow_infinity=False).map(lambda v: Literal(v, DBL))
    if value_type is STR:
        return _STRINGS.map(lambda v: Literal(v, STR))
    return st.booleans().map(lambda v: Literal(v, BOOL))


@functools.cache
def _values(kind: NodeKind, value_type: ValueType) -> st.SearchStrategy[Value]:
    refs = _refs(kind, value_type)
    options = [_literals(value_type), refs]
    if value_type.is_numeric:
        options.append(refs.map(Negate))
    return st.one_of(options)


@functools.cache
def _predicates(kind: NodeKind) -> st.SearchStrategy[Expr]:
    def comparison(draw: st.DrawFn) -> Expr:
        value_type = draw(st.sampled_from([I64, DBL, STR, BOOL]))
        other = draw(st.sampled_from([I64, DBL])) if value_type.is_numeric else value_type
        return Comparison(
            draw(st.sampled_from(list(CmpOp))), draw(_values(kind, value_type)), draw(_values(kind, other))
        )

    def in_list(draw: st.DrawFn) -> Expr:
        value_type = draw(st.sampled_from([I64, STR, DBL]))
        items = tuple(draw(st.lists(_values(kind, value_type), min_size=1, max_size=4)))
        return InList(draw(_values(kind, value_type)), items, draw(st.booleans()))

    def between(draw: st.DrawFn) -> Expr:
        value_type = draw(st.sampled_from([I64, STR]))
        return Between(
            draw(_values(kind, value_type)),
            draw(_values(kind, value_type)),
            draw(_values(kind, value_type)),
            draw(st.booleans()),
        )

    def like(draw: st.DrawFn) -> Expr:
        return Like(draw(_values(kind, STR)), draw(_values(kind, STR)), draw(st.booleans()))

    def is_null(draw: st.DrawFn) -> Expr:
        value_type = draw(st.sampled_from([I64, STR, BOOL, DBL]))
        return IsNull(draw(_refs(kind, value_type)), draw(st.booleans()))

    def enum(draw: st.DrawFn) -> Expr:
        field, enum_type, numbers = draw(st.sampled_from(_ENUM_FIELDS[kind]))
        assert isinstance(field, AttributeRef | NeighborRef)
        chosen = tuple(draw(st.lists(st.sampled_from(numbers), min_size=1, max_size=3)))
        return EnumPredicate(field, enum_type, chosen, draw(st.booleans()))

    def truth(draw: st.DrawFn) -> Expr:
        return Truth(draw(st.one_of(_literals(BOOL), _refs(kind, BOOL))))

    return st.one_of([st.composite(f)() for f in (comparison, in_list, between, like, is_null, enum, truth)])


@functools.cache
def _expressions(kind: NodeKind) -> st.SearchStrategy[Expr]:
    return st.recursive(
        _predicates(kind),
        lambda children: st.one_of(
            st.lists(children, min_size=2, max_size=3).map(lambda ops: And(tuple(ops))),
            st.lists(children, min_size=2, max_size=3).map(lambda ops: Or(tuple(ops))),
            children.map(Not),
        ),
        max_leaves=8,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_parse_generated_expressions_round_trip(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from([A, C]))
    expr = data.draw(_expressions(kind))
    text = to_filter_text(expr)
    assert parse_filter(text, kind) == expr
