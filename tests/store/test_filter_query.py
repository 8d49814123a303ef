"""Filter queries compiled to SQL and run on SQLite (behaviour spec §6.4 consequences 1-6)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from lineagedb import errors
from lineagedb.query.filter_ast import NodeKind
from lineagedb.query.filter_parser import parse_filter
from lineagedb.store import filter_query
from lineagedb.store.schema import Schema, schema_for
from lineagedb.store.tenancy import UNRESTRICTED

A, E, C = NodeKind.ARTIFACT, NodeKind.EXECUTION, NodeKind.CONTEXT
LIVE, PENDING, DELETED = 2, 1, 4
COMPLETE = 3
INPUT, OUTPUT = 3, 4


@pytest.fixture(scope="module")
def schema() -> Schema:
    return schema_for("sqlite")


@pytest.fixture(scope="module")
def connection(schema: Schema) -> Iterator[sa.Connection]:
    engine = sa.create_engine("sqlite://")
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(schema.type),
            [
                {"id": 10, "name": "A", "version": None, "type_kind": 1},
                {"id": 11, "name": "A", "version": "v2", "type_kind": 1},
                {"id": 12, "name": "B", "version": None, "type_kind": 1},
                {"id": 20, "name": "RunContext", "version": None, "type_kind": 2},
                {"id": 21, "name": "Pipeline", "version": None, "type_kind": 2},
                {"id": 30, "name": "Trainer", "version": None, "type_kind": 0},
            ],
        )
        conn.execute(
            sa.insert(schema.artifact),
            [
                {"id": 1, "type_id": 10, "name": "a1", "uri": "gs://x/1", "state": LIVE, "external_id": "ext-1"},
                {"id": 2, "type_id": 11, "name": "a2", "uri": "", "state": None, "external_id": None},
                {"id": 3, "type_id": 12, "name": "b1", "uri": "", "state": DELETED, "external_id": None},
                {"id": 4, "type_id": 10, "name": "ABC", "uri": "s3://y", "state": PENDING, "external_id": None},
            ],
        )
        conn.execute(
            sa.insert(schema.artifact_property),
            [
                {"int_value": None, "double_value": None, "string_value": None, "bool_value": None} | row
                for row in [
                    # One row per property; only its declared value column is set (§6.4 item 3).
                    {"artifact_id": 1, "name": "p", "is_custom_property": False, "int_value": 1},
                    {"artifact_id": 2, "name": "p", "is_custom_property": False, "double_value": 1.0},
                    {"artifact_id": 4, "name": "p", "is_custom_property": False, "string_value": "x"},
                    {"artifact_id": 1, "name": "q", "is_custom_property": True, "bool_value": True},
                    {"artifact_id": 2, "name": "q", "is_custom_property": True, "bool_value": False},
                    {"artifact_id": 1, "name": "MyProp", "is_custom_property": False, "int_value": 1},
                    {"artifact_id": 4, "name": "p", "is_custom_property": True, "int_value": 7},
                ]
            ],
        )
        conn.execute(
            sa.insert(schema.context),
            [
                {"id": 1, "type_id": 20, "name": "c1", "create_time_since_epoch": 0},
                {"id": 2, "type_id": 20, "name": "c2", "create_time_since_epoch": 0},
                {"id": 3, "type_id": 21, "name": "c3", "create_time_since_epoch": 5},
            ],
        )
        conn.execute(
            sa.insert(schema.attribution),
            [
                {"context_id": 1, "artifact_id": 1},
                {"context_id": 1, "artifact_id": 2},
                {"context_id": 2, "artifact_id": 2},
            ],
        )
        conn.execute(
            sa.insert(schema.execution),
            [
                {"id": 1, "type_id": 30, "name": "e1", "last_known_state": COMPLETE},
                {"id": 2, "type_id": 30, "name": "e2", "last_known_state": None},
            ],
        )
        conn.execute(sa.insert(schema.association), [{"context_id": 1, "execution_id": 1}])
        conn.execute(
            sa.insert(schema.event),
            [
                {"artifact_id": 1, "execution_id": 1, "type": INPUT, "milliseconds_since_epoch": 100},
                {"artifact_id": 2, "execution_id": 1, "type": OUTPUT, "milliseconds_since_epoch": 200},
                {"artifact_id": 1, "execution_id": 2, "type": OUTPUT, "milliseconds_since_epoch": 300},
            ],
        )
        # c2 is a child of c1; c3 is a child of c2.
        conn.execute(
            sa.insert(schema.parent_context),
            [{"context_id": 2, "parent_context_id": 1}, {"context_id": 3, "parent_context_id": 2}],
        )
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def ids(connection: sa.Connection, schema: Schema, kind: NodeKind, text: str) -> list[int]:
    rows: list[int] = list(connection.execute(filter_query.matching_ids(schema, kind, text)).scalars())
    assert len(rows) == len(set(rows)), "results must be de-duplicated"
    return sorted(rows)


# --------------------------------------------------------------------------------------------
# §6.4 consequences


def test_filter_missing_neighbor_is_never_returned_even_under_or(connection: sa.Connection, schema: Schema) -> None:
    # 1. b1 (id 3) has no property p, so OR cannot bring it back.
    assert ids(connection, schema, A, "properties.p.int_value = 1 OR name = 'b1'") == [1]
    assert ids(connection, schema, A, "name = 'b1'") == [3]


def test_filter_not_over_a_neighbor_is_existential(connection: sa.Connection, schema: Schema) -> None:
    # 1. Nodes with *some* context not named c1; nodes without contexts are excluded.
    assert ids(connection, schema, A, "NOT(contexts_a.name = 'c1')") == [2]
    assert ids(connection, schema, A, "NOT(properties.p.int_value = 1)") == []


def test_filter_distinct_aliases_are_independent_joins(connection: sa.Connection, schema: Schema) -> None:
    # 2.
    assert ids(connection, schema, A, "contexts_a.name = 'c1' AND contexts_b.name = 'c2'") == [2]
    assert ids(connection, schema, A, "contexts_a.name = 'c1' AND contexts_a.name = 'c2'") == []
    assert ids(connection, schema, A, "contexts_a.name = 'c1' OR contexts_a.name = 'c2'") == [1, 2]


def test_filter_property_rows_hold_only_their_declared_case(connection: sa.Connection, schema: Schema) -> None:
    # 3.
    assert ids(connection, schema, A, "properties.p.double_value = 1") == [2]
    assert ids(connection, schema, A, "properties.p.int_value = 1") == [1]
    assert ids(connection, schema, A, "properties.p.string_value IS NULL") == [1, 2]
    assert ids(connection, schema, A, "properties.zz.int_value IS NULL") == []
    assert ids(connection, schema, A, "custom_properties.p.int_value = 7") == [4]
    assert ids(connection, schema, A, "properties.p.int_value = 7") == []


def test_filter_type_compares_the_type_name_only(connection: sa.Connection, schema: Schema) -> None:
    # 4. Both versions of A.
    assert ids(connection, schema, A, "type = 'A'") == [1, 2, 4]
    assert ids(connection, schema, A, "type = 'A' AND type_id = 11") == [2]
    assert ids(connection, schema, A, "contexts_a.type = 'RunContext'") == [1, 2]


def test_filter_results_are_deduplicated(connection: sa.Connection, schema: Schema) -> None:
    # 5. a2 is in two matching contexts.
    assert ids(connection, schema, A, "contexts_a.name LIKE 'c%'") == [1, 2]
    assert ids(connection, schema, C, "artifacts_x.id > 0") == [1, 2]


def test_filter_enums_compare_as_numbers(connection: sa.Connection, schema: Schema) -> None:
    # 6.
    assert ids(connection, schema, A, "state = LIVE") == [1]
    assert ids(connection, schema, A, "state IN (PENDING, LIVE)") == [1, 4]
    assert ids(connection, schema, A, "events_0.type = INPUT") == [1]
    assert ids(connection, schema, A, "events_0.type IN (INPUT, OUTPUT)") == [1, 2]
    assert ids(connection, schema, E, "events_0.type = OUTPUT AND events_0.artifact_id = 1") == [2]


def test_filter_enum_not_equal_and_not_in_include_nulls(connection: sa.Connection, schema: Schema) -> None:
    assert ids(connection, schema, A, "state != LIVE") == [2, 3, 4]
    assert ids(connection, schema, A, "state NOT IN (LIVE, PENDING)") == [2, 3]
    assert ids(connection, schema, A, "state IS NULL") == [2]
    assert ids(connection, schema, E, "last_known_state NOT IN (FAILED, CANCELED)") == [1, 2]
    assert ids(connection, schema, E, "last_known_state != COMPLETE") == [2]
    # A plain NOT over `=` stays three-valued: NULL states do not come back.
    assert ids(connection, schema, A, "NOT state = LIVE") == [3, 4]


def test_filter_property_names_are_lower_cased(connection: sa.Connection, schema: Schema) -> None:
    # §6.4 item 7: the stored name "MyProp" can never match on SQLite.
    assert ids(connection, schema, A, "properties.MyProp.int_value = 1") == []
    assert ids(connection, schema, A, "properties.`MyProp`.int_value = 1") == []


def test_filter_sqlite_like_is_case_insensitive_and_equality_is_not(connection: sa.Connection, schema: Schema) -> None:
    # §6.4 item 8.
    assert ids(connection, schema, A, "name LIKE 'a%'") == [1, 2, 4]
    assert ids(connection, schema, A, "name = 'abc'") == []
    assert ids(connection, schema, A, "name NOT LIKE 'a%'") == [3]
    assert ids(connection, schema, A, "uri LIKE 'gs://%'") == [1]


# --------------------------------------------------------------------------------------------
# The rest of the language


def test_filter_attributes_and_operators(connection: sa.Connection, schema: Schema) -> None:
    assert ids(connection, schema, A, "id != 1") == [2, 3, 4]
    assert ids(connection, schema, A, "id IN (1, 3)") == [1, 3]
    assert ids(connection, schema, A, "id NOT IN (1, 3)") == [2, 4]
    assert ids(connection, schema, A, "id BETWEEN 2 AND 3") == [2, 3]
    assert ids(connection, schema, A, "id NOT BETWEEN 2 AND 3") == [1, 4]
    assert ids(connection, schema, A, "-id < -2") == [3, 4]
    assert ids(connection, schema, A, "id > 1.5") == [2, 3, 4]
    assert ids(connection, schema, A, "external_id IS NOT NULL") == [1]
    assert ids(connection, schema, A, "NOT(create_time_since_epoch < 1 OR last_update_time_since_epoch < 1)") == []
    assert ids(connection, schema, A, "create_time_since_epoch = last_update_time_since_epoch") == [1, 2, 3, 4]
    assert ids(connection, schema, A, "TRUE") == [1, 2, 3, 4]
    assert ids(connection, schema, A, "FALSE OR id = 2") == [2]
    assert ids(connection, schema, A, "1 = 1 AND id < 3") == [1, 2]


def test_filter_bool_properties(connection: sa.Connection, schema: Schema) -> None:
    assert ids(connection, schema, A, "custom_properties.q.bool_value") == [1]
    assert ids(connection, schema, A, "NOT custom_properties.q.bool_value") == [2]
    assert ids(connection, schema, A, "custom_properties.q.bool_value = false") == [2]
    assert ids(connection, schema, A, "custom_properties.q.bool_value != TRUE") == [2]


def test_filter_context_neighbors(connection: sa.Connection, schema: Schema) -> None:
    assert ids(connection, schema, C, "parent_contexts_p.name = 'c1'") == [2]
    assert ids(connection, schema, C, "child_contexts_c.name = 'c2'") == [1]
    assert ids(connection, schema, C, "parent_contexts_p.type = 'RunContext'") == [2, 3]
    assert ids(connection, schema, C, "artifacts_x.state = LIVE") == [1]
    assert ids(connection, schema, C, "artifacts_x.state != LIVE") == [1, 2]
    assert ids(connection, schema, C, "executions_e.last_known_state = COMPLETE") == [1]
    assert ids(connection, schema, C, "executions_a.name = 'e1' AND artifacts_b.uri LIKE 'gs://%'") == [1]
    assert ids(connection, schema, C, "artifacts_x.type = 'A' AND type = 'RunContext'") == [1, 2]


def test_filter_quirk_fields_are_supported(connection: sa.Connection, schema: Schema) -> None:
    # MLMD type-checks these but its SQL omits the columns (INTERNAL); we answer them.
    assert ids(connection, schema, C, "parent_contexts_p.create_time_since_epoch = 0") == [2, 3]
    assert ids(connection, schema, C, "child_contexts_c.create_time_since_epoch = 5") == [2]
    assert ids(connection, schema, C, "artifacts_x.external_id = 'ext-1'") == [1]
    assert ids(connection, schema, C, "executions_x.external_id IS NULL") == [1]


def test_filter_execution_neighbors(connection: sa.Connection, schema: Schema) -> None:
    assert ids(connection, schema, E, "contexts_a.name = 'c1'") == [1]
    assert ids(connection, schema, E, "events_0.milliseconds_since_epoch >= 200") == [1, 2]


# --------------------------------------------------------------------------------------------
# SQL shape and safety


def test_filter_sql_uses_one_join_per_distinct_mention(schema: Schema) -> None:
    expr = parse_filter(
        "contexts_a.name = 'c1' AND contexts_a.type = 'T' AND contexts_b.id > 0 "
        "AND properties.p.int_value = 1 AND properties.p.double_value > 0 AND type = 'A'",
        A,
    )
    compiled = filter_query.compile_filter(expr, A, schema)
    # Type, 2 x (Attribution + Context), Type for contexts_a, one property row.
    assert len(compiled.joins) == 1 + 2 * 2 + 1 + 1
    sql = str(compiled.select_ids().compile(dialect=sqlite.dialect()))
    assert sql.startswith("SELECT DISTINCT")
    assert sql.count("JOIN") == 7


@pytest.mark.parametrize(
    "text",
    [
        r"name = '\'; DROP TABLE Artifact;--'",
        "name = 'x' OR 1=1 --",
        "properties.`x'; DROP TABLE Artifact;--`.string_value = 'y'",
        "name LIKE '%\\' OR 1=1 --'",
    ],
)
def test_filter_user_text_only_reaches_sql_as_bound_parameters(
    connection: sa.Connection, schema: Schema, text: str
) -> None:
    statement = filter_query.matching_ids(schema, A, text)
    sql = str(statement.compile(dialect=sqlite.dialect()))
    assert "DROP" not in sql and "OR 1=1" not in sql and "'" not in sql
    connection.execute(statement).all()
    assert connection.execute(sa.select(sa.func.count()).select_from(schema.artifact)).scalar() == 4


def test_filter_injection_payload_matches_nothing(connection: sa.Connection, schema: Schema) -> None:
    assert ids(connection, schema, A, r"name = '\'; DROP TABLE Artifact;--'") == []
    assert ids(connection, schema, A, "name = 'x' OR 1=1 --") == [1, 2, 3, 4]  # valid: it is a tautology


def test_filter_apply_restricts_a_listing_query(connection: sa.Connection, schema: Schema) -> None:
    from lineagedb.store.repositories.nodes import NodeKind as RepoNodeKind

    table = schema.artifact
    listing = sa.select(table.c.id, table.c.id.label("sort_value")).order_by(table.c.id.desc())
    uow = SimpleNamespace(schema=schema, tenancy=UNRESTRICTED)
    query = filter_query.apply(uow, RepoNodeKind.ARTIFACT, listing, "contexts_a.name LIKE 'c%'")
    assert [row.id for row in connection.execute(query)] == [2, 1]


def test_filter_apply_maps_parse_errors_to_invalid_argument(schema: Schema) -> None:
    from lineagedb.store.repositories.nodes import NodeKind as RepoNodeKind

    listing = sa.select(schema.artifact.c.id)
    with pytest.raises(errors.InvalidArgumentError) as info:
        filter_query.apply(
            SimpleNamespace(schema=schema, tenancy=UNRESTRICTED), RepoNodeKind.ARTIFACT, listing, "id = '1'"
        )
    assert info.value.message.startswith("Invalid `filter_query`: ")


def test_filter_compiles_for_postgresql_and_mysql() -> None:
    # No database needed: compiling checks that every construct has SQL on each dialect.
    from sqlalchemy.dialects import mysql, postgresql

    text = (
        "type = 'A' AND contexts_a.name LIKE 'c%' AND properties.p.int_value BETWEEN 1 AND 2 "
        "AND custom_properties.q.bool_value AND state NOT IN (LIVE) AND events_0.type = INPUT AND -id < 0"
    )
    for dialect_name, dialect in (("postgresql", postgresql.dialect()), ("mysql", mysql.dialect())):
        statement = filter_query.matching_ids(schema_for(dialect_name), A, text)
        sql = str(statement.compile(dialect=dialect))
        assert "'c%'" not in sql and "JOIN" in sql
