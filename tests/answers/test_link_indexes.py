"""Migration 0011: the link indexes lineage answers read whole hold the context id too,
up and down on every backend, with the same answers either way; a store left at 0010
keeps serving them."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from alembic import command

from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.service.answers.service import LineageAnswers
from lineagedb.store import encoded_cache
from lineagedb.store.bootstrap import alembic_config, inspect_schema, prepare_database
from lineagedb.store.lineage_indexes import WIDENED
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.unit_of_work import Database
from lineagedb.store.widened_indexes import index_columns
from tests.answers.conftest import LocalClient

Runs = dict[str, dict[str, int]]


def _columns(database: Database) -> dict[str, tuple[str, ...] | None]:
    with database.engine.connect() as connection:
        return {index.name: index_columns(connection, index) for index in WIDENED}


def _answers(database: Database, runs: Runs) -> list[bytes]:
    """Provenance (with every link) and Impact of both runs, encoded deterministically."""
    encoded_cache.forget(database.engine)  # nothing carried over from the other revision
    answers = LineageAnswers(database)
    found = []
    for run in runs.values():
        found.append(answers.provenance(pb.ClosureRequest(node=pb.NodeRef(artifact_id=run["pushed_model"]))))
        found.append(answers.impact(pb.ImpactRequest(node=pb.NodeRef(artifact_id=run["examples"]))))
    return [answer.SerializeToString(deterministic=True) for answer in found]


def _downgrade(database: Database, revision: str) -> None:
    with database.engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def test_0011_widens_the_link_indexes_and_the_answers_stay_the_same_both_ways(
    database: Database, client: LocalClient, two_runs: Runs, caplog: pytest.LogCaptureFixture
) -> None:
    assert _columns(database) == {index.name: index.after for index in WIDENED}
    at_head = _answers(database, two_runs)
    assert all(answer.count(b"\x2a") for answer in at_head[::2])  # Provenance answers hold attributions

    _downgrade(database, "0010")
    assert _columns(database) == {index.name: index.before for index in WIDENED}
    # A store at 0010 is served as it is (index-only revisions), with the command to upgrade.
    with caplog.at_level(logging.WARNING, logger="lineagedb.store.bootstrap"):
        state = prepare_database(database.engine)
    assert state.revision == "0010" and not state.current
    assert "lineagedb db upgrade" in caplog.text
    assert _answers(database, two_runs) == at_head

    prepare_database(database.engine, allow_upgrade=True)  # `lineagedb db upgrade`
    assert _columns(database) == {index.name: index.after for index in WIDENED}
    assert _answers(database, two_runs) == at_head
    with database.engine.connect() as connection:
        assert inspect_schema(connection).current


def test_0011_recreates_a_missing_link_index(database: Database) -> None:
    """A store whose 0002 index was dropped by hand gets the widened one from the upgrade."""
    index = WIDENED[0]
    _downgrade(database, "0010")
    with database.engine.begin() as connection:
        table = getattr(database.schema, index.table)
        sa.Index(index.name, table.c[index.before[0]]).drop(connection)
        assert index_columns(connection, index) is None
    prepare_database(database.engine, allow_upgrade=True)
    assert _columns(database)[index.name] == index.after


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_reads_the_links_from_the_index_alone(database: Database, client: LocalClient, two_runs: Runs) -> None:
    """The plan of each links statement: the widened index, covering, and no sort for its order."""
    with database.transaction(write=False) as uow:
        reach, schema = uow.tenancy.reach, uow.schema
        statements = [
            (lineage_repo._links_statement(schema.attribution, "artifact_id", reach), WIDENED[0]),
            (lineage_repo._links_statement(schema.association, "execution_id", reach), WIDENED[1]),
            (lineage_repo._link_contexts_statement(schema.attribution, "artifact_id", reach), WIDENED[0]),
            (lineage_repo._link_contexts_statement(schema.association, "execution_id", reach), WIDENED[1]),
        ]
        for statement, index in statements:
            bound = statement.params(ids=[1, 2, 3])
            sql = str(bound.compile(dialect=uow.connection.dialect, compile_kwargs={"literal_binds": True}))
            plan = " | ".join(str(row[3]) for row in uow.connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            assert f"USING COVERING INDEX {index.name}" in plan, plan
            assert "ORDER BY" not in plan, plan  # (node, context) order straight from the index
