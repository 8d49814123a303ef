"""MySQL/MariaDB statements check a node's namespace with an outer join to its membership
row (`tenancy.readable_by_join`) instead of `tenancy.visible`'s EXISTS where they can: lineage's
hops and links, reads by id and listings. The join must say exactly what the policy says for every readable set (no
membership row = `default`, a row in a readable namespace, a row in another one, nothing
readable at all) and never repeat a row; it is plain SQL, so every backend runs it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from lineagedb.query.filter_ast import NodeKind as FilterKind
from lineagedb.store import filter_query, tenancy
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.repositories import listing
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.schema import schema_for
from lineagedb.store.tenancy import DEFAULT_NAMESPACE, Reach, Tenancy
from tests.tenancy.test_visible_forms import READABLE_SETS  # the same readable sets as visible()'s forms

# node id -> its namespace (`default` ones have no membership row)
NODES = {1: "team-a", 2: "team-b", 3: DEFAULT_NAMESPACE, 4: "shared", 5: "team-a"}
# Rows pointing at nodes (node 1 twice): what a hop reads, with the node it probes.
LINKS = [(10, 1), (11, 1), (12, 2), (13, 3), (14, 4), (15, 5), (16, 99)]  # 99: no node, `default`
LINKS_TABLE = sa.Table(
    "lineage_join_links",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("node_id", sa.Integer, nullable=False),
)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url)
    tenancy.METADATA.create_all(engine, tables=[tenancy.NAMESPACES, tenancy.MEMBERSHIP])
    LINKS_TABLE.metadata.create_all(engine)
    with engine.begin() as connection:
        names = sorted({namespace for namespace in NODES.values() if namespace != DEFAULT_NAMESPACE})
        connection.execute(
            sa.insert(tenancy.NAMESPACES), [{"name": name, "create_time_since_epoch": 0} for name in names]
        )
        connection.execute(
            sa.insert(tenancy.MEMBERSHIP),
            [
                {"node_kind": tenancy.ARTIFACT_NODE, "node_id": node_id, "namespace": namespace}
                for node_id, namespace in NODES.items()
                if namespace != DEFAULT_NAMESPACE
            ],
        )
        # The same ids as another kind of node, in a readable-to-everyone-but namespace: the
        # join must not match them.
        connection.execute(
            sa.insert(tenancy.MEMBERSHIP),
            [{"node_kind": tenancy.CONTEXT_NODE, "node_id": node_id, "namespace": "team-b"} for node_id in NODES],
        )
        connection.execute(sa.insert(LINKS_TABLE), [{"id": i, "node_id": n} for i, n in LINKS])
    yield engine
    engine.dispose()


@pytest.mark.parametrize("readable", READABLE_SETS, ids=lambda r: ",".join(sorted(r)) or "nothing")
def test_join_form_matches_the_policy(engine: sa.Engine, readable: frozenset[str]) -> None:
    caller = Tenancy(namespace="team-a", readable=readable, writable=frozenset())
    links = LINKS_TABLE
    query = tenancy.readable_by_join(sa.select(links.c.id), links, "node_id", tenancy.ARTIFACT_NODE)
    with engine.connect() as connection:
        found = list(connection.execute(query, caller.parameters).scalars())
    expected = [i for i, node in LINKS if NODES.get(node, DEFAULT_NAMESPACE) in readable]
    assert sorted(found) == expected  # each row once, and only the readable ones


def test_mysql_statements_take_the_join() -> None:
    schema = schema_for("mysql")
    dialect = mysql.dialect()
    for reach in (Reach.RESTRICTED, Reach.RESTRICTED_WITH_DEFAULT):
        statements = [
            lineage_repo._events_statement(schema, NodeKind.ARTIFACT, True, reach, False, True),
            lineage_repo._links_statement(schema.attribution, "artifact_id", reach, True),
            lineage_repo._link_contexts_statement(schema.association, "execution_id", reach, True),
            lineage_repo._members_statement(schema.attribution, "artifact_id", reach, True),
            node_repo._statements(schema, NodeKind.EXECUTION, reach, True)[0],
            listing._scope_statement(schema, NodeKind.ARTIFACT, True, False, reach, True),
            listing._page_statement(
                schema,
                NodeKind.ARTIFACT,
                filter_query.parse("uri = 'x'", FilterKind.ARTIFACT),
                1,
                True,
                False,
                False,
                False,
                reach,
                joined=True,
            ),
        ]
        for statement in statements:
            text = str(statement.compile(dialect=dialect))
            assert "LEFT OUTER JOIN lineagedb_node_namespace AS lineagedb_membership" in text
            # The filter's neighbors (none here) would still take visible()'s form; the node itself does not.
            assert "EXISTS" not in text
    # Without a restriction, nothing is joined.
    plain = lineage_repo._events_statement(schema, NodeKind.ARTIFACT, True, Reach.ALL, False, True)
    assert "lineagedb_node_namespace" not in str(plain.compile(dialect=dialect))
    by_ids = node_repo._statements(schema, NodeKind.ARTIFACT)[0]
    assert "lineagedb_node_namespace" not in str(by_ids.compile(dialect=dialect))
