"""Migration 0012: MLMD's property value indexes end with the owner's id on PostgreSQL
(MySQL/MariaDB's already do, InnoDB appending the primary key; SQLite's stay as they are),
up and down, with the same filter answers either way on every backend; a store left at 0011
keeps serving them."""

from __future__ import annotations

import logging

import pytest
from alembic import command

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.bootstrap import alembic_config, prepare_database
from lineagedb.store.property_indexes import WIDENED
from lineagedb.store.unit_of_work import Database
from lineagedb.store.widened_indexes import index_columns, table_name

FILTERS = (
    "properties.span.int_value = 3",
    "properties.span.int_value >= 2 AND custom_properties.tag.string_value = 't1'",
    "properties.score.double_value < 0.5",
    "custom_properties.tag.string_value = 't0' OR properties.span.int_value = 1",
)


def _columns(database: Database) -> dict[str, tuple[str, ...] | None]:
    with database.engine.connect() as connection:
        return {index.name: index_columns(connection, index) for index in WIDENED}


def _expected(database: Database, revision_widened: bool) -> dict[str, tuple[str, ...]]:
    widened = revision_widened and WIDENED[0].applies_to(database.engine.dialect.name)
    return {index.name: index.after if widened else index.before for index in WIDENED}


def _load(store: MetadataStore) -> None:
    type_id = store.put_artifact_type(
        svc.PutArtifactTypeRequest(
            artifact_type=mlmd.ArtifactType(name="Data", properties={"span": mlmd.INT, "score": mlmd.DOUBLE})
        )
    ).type_id
    # Matches of one value spread over the ids, as a pipeline's runs write them.
    artifacts = [
        mlmd.Artifact(
            type_id=type_id,
            uri=f"s3://b/{i}",
            properties={"span": mlmd.Value(int_value=i % 5), "score": mlmd.Value(double_value=(i % 7) / 7)},
            custom_properties={"tag": mlmd.Value(string_value=f"t{i % 3}")},
        )
        for i in range(120)
    ]
    store.put_artifacts(svc.PutArtifactsRequest(artifacts=artifacts))


def _pages(store: MetadataStore) -> list[list[int]]:
    """Every filter walked in pages of 7 (ids per page), by id both ways and by creation time."""
    walked = []
    for text in FILTERS:
        for field, ascending in (
            (mlmd.ListOperationOptions.OrderByField.ID, True),
            (mlmd.ListOperationOptions.OrderByField.ID, False),
            (mlmd.ListOperationOptions.OrderByField.CREATE_TIME, False),
        ):
            options = mlmd.ListOperationOptions(
                max_result_size=7,
                filter_query=text,
                order_by_field=mlmd.ListOperationOptions.OrderByField(field=field, is_asc=ascending),
            )
            while True:
                response = store.get_artifacts(svc.GetArtifactsRequest(options=options))
                walked.append([artifact.id for artifact in response.artifacts])
                if not response.next_page_token:
                    break
                options.next_page_token = response.next_page_token
    return walked


def test_0012_widens_the_property_indexes_and_filters_answer_the_same_both_ways(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    store = MetadataStore(database)
    _load(store)
    assert _columns(database) == _expected(database, revision_widened=True)
    at_head = _pages(store)
    assert sum(len(page) for page in at_head) > 100

    with database.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0011")
    assert _columns(database) == _expected(database, revision_widened=False)
    # A store at 0011 is served as it is (index-only revisions), with the command to upgrade.
    with caplog.at_level(logging.WARNING, logger="lineagedb.store.bootstrap"):
        state = prepare_database(database.engine)
    assert state.revision == "0011" and not state.current
    assert "lineagedb db upgrade" in caplog.text
    assert _pages(store) == at_head

    prepare_database(database.engine, allow_upgrade=True)  # `lineagedb db upgrade`
    assert _columns(database) == _expected(database, revision_widened=True)
    assert _pages(store) == at_head


_PLAN_QUERY = (
    "SELECT artifact_id FROM {table} WHERE name = 'span' AND is_custom_property = {false} AND int_value = 3 "
    "ORDER BY artifact_id LIMIT 21"
)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_one_values_owners_come_from_the_index_in_id_order(database: Database) -> None:
    """What the widening is for: the owners of one value read from the index alone, in id
    order, with no sort (a filter's page stops after its first matches)."""
    _load(MetadataStore(database))
    index = next(index for index in WIDENED if index.name == "idx_artifact_property_int")
    with database.engine.begin() as connection:
        dialect = connection.dialect.name
        table = connection.dialect.identifier_preparer.quote(table_name(dialect, index))
        sql = _PLAN_QUERY.format(table=table, false="false")
        # A 120-row table is read whole by choice; the question is what the index gives.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        plan = " | ".join(str(row[0]) for row in connection.exec_driver_sql(f"EXPLAIN {sql}"))
        assert "idx_artifact_property_int" in plan and "Sort" not in plan, plan
        owners = [row[0] for row in connection.exec_driver_sql(sql.replace("LIMIT 21", ""))]
    assert owners == sorted(owners) and len(owners) == 24
