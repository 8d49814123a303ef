"""store.tenancy.visible compiles to two forms: a scalar subquery (PostgreSQL) and
EXISTS / NOT EXISTS (SQLite, MySQL/MariaDB), chosen by whether `default` is readable. Both must say
exactly what the policy says for every kind of node: no membership row (`default`), a
row in a readable namespace, a row in another one, under NOT as well."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lineagedb.store import tenancy
from lineagedb.store.tenancy import DEFAULT_NAMESPACE, Reach, Tenancy

# node id -> its namespace (`default` ones have no membership row)
NODES = {1: "team-a", 2: "team-b", 3: DEFAULT_NAMESPACE, 4: "shared"}
# A node table of the test's own (not in tenancy.METADATA, which migrations read).
NODES_TABLE = sa.Table("nodes", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
READABLE_SETS = [
    frozenset({"team-a"}),
    frozenset({DEFAULT_NAMESPACE}),
    frozenset({DEFAULT_NAMESPACE, "team-a"}),
    frozenset({"team-b", "shared", DEFAULT_NAMESPACE}),
    frozenset(),
]


@pytest.fixture(scope="module")
def engine() -> sa.Engine:
    engine = sa.create_engine("sqlite://")
    tenancy.METADATA.create_all(engine, tables=[tenancy.MEMBERSHIP])
    NODES_TABLE.metadata.create_all(engine)
    nodes = NODES_TABLE
    with engine.begin() as connection:
        connection.execute(sa.insert(nodes), [{"id": node_id} for node_id in NODES])
        connection.execute(
            sa.insert(tenancy.MEMBERSHIP),
            [
                {"node_kind": tenancy.ARTIFACT_NODE, "node_id": node_id, "namespace": namespace}
                for node_id, namespace in NODES.items()
                if namespace != DEFAULT_NAMESPACE
            ],
        )
    return engine


def _ids(engine: sa.Engine, caller: Tenancy, negate: bool, form: str) -> set[int]:
    nodes = NODES_TABLE
    predicate = tenancy.visible(tenancy.ARTIFACT_NODE, nodes.c.id, caller.reach)
    # Each form on its own, both run by SQLite: the SQLite compile picks EXISTS, and the
    # scalar form (what PostgreSQL and MySQL get) is taken from the element directly.
    if form == "scalar":
        predicate = predicate.probe  # type: ignore[attr-defined]
    if negate:
        predicate = sa.not_(predicate)
    with engine.connect() as connection:
        return set(connection.execute(sa.select(nodes.c.id).where(predicate), caller.parameters).scalars())


@pytest.mark.parametrize("readable", READABLE_SETS, ids=lambda r: ",".join(sorted(r)) or "nothing")
@pytest.mark.parametrize("form", ["exists", "scalar"])
def test_both_forms_match_the_policy(engine: sa.Engine, readable: frozenset[str], form: str) -> None:
    caller = Tenancy(namespace="team-a", readable=readable, writable=frozenset())
    expected = {node_id for node_id, namespace in NODES.items() if namespace in readable}
    assert _ids(engine, caller, False, form) == expected
    assert _ids(engine, caller, True, form) == set(NODES) - expected


def test_reach_says_whether_default_is_readable() -> None:
    assert Tenancy().reach is Reach.ALL
    assert Tenancy(readable=frozenset({"team-a"})).reach is Reach.RESTRICTED
    assert Tenancy(readable=frozenset({DEFAULT_NAMESPACE, "team-a"})).reach is Reach.RESTRICTED_WITH_DEFAULT


def test_sqlite_gets_exists_and_postgresql_the_scalar_form() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    node_id = sa.column("id", sa.Integer)
    for reach in (Reach.RESTRICTED, Reach.RESTRICTED_WITH_DEFAULT):
        predicate = tenancy.visible(tenancy.ARTIFACT_NODE, node_id, reach)
        assert "EXISTS" in str(predicate.compile(dialect=sqlite.dialect()))
        assert "EXISTS" not in str(predicate.compile(dialect=postgresql.dialect()))


def test_the_check_binds_only_the_readable_names() -> None:
    """The node kind and `default` are written into the SQL: as parameters they went through
    the binding of every statement that checks namespaces."""
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    node_id = NODES_TABLE.c.id
    for reach in (Reach.RESTRICTED, Reach.RESTRICTED_WITH_DEFAULT):
        predicate = tenancy.visible(tenancy.CONTEXT_NODE, node_id, reach)
        joined = tenancy.readable_by_join(sa.select(node_id), NODES_TABLE, "id", tenancy.CONTEXT_NODE)
        for dialect in (postgresql.dialect(), sqlite.dialect(), mysql.dialect()):
            for statement in (sa.select(node_id).where(predicate), joined):
                compiled = statement.compile(dialect=dialect)
                assert set(compiled.params) == {tenancy.VISIBLE_PARAMETER}
                assert f"node_kind = {tenancy.CONTEXT_NODE}" in str(compiled)
                if dialect.name == "postgresql" or statement is joined:  # the forms with COALESCE
                    assert f"'{DEFAULT_NAMESPACE}')" in str(compiled)
