"""Schema creation, recognition and refusal at startup (spec §8.3), on every backend."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.bootstrap import MLMD_V9, VERSION_TABLE, inspect_schema, lineagedb_indexes, prepare_database
from lineagedb.store.engine import create_engine
from lineagedb.store.schema import SCHEMA_VERSION, schema_for
from lineagedb.store.unit_of_work import Database
from tests.conftest import ROOT


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def _execute(engine: sa.Engine, *statements: sa.Executable) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(statement)


def _drop_version_table(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        if sa.inspect(connection).has_table(VERSION_TABLE):
            sa.Table(VERSION_TABLE, sa.MetaData()).drop(connection)


def test_empty_database_gets_mlmd_schema_v10_with_system_types(engine):
    state = prepare_database(engine)
    assert state.mlmd_version == SCHEMA_VERSION and state.current
    schema = schema_for(engine.dialect.name)
    with engine.connect() as connection:
        kinds = connection.execute(sa.select(schema.type.c.id, schema.type.c.type_kind).order_by("id")).all()
        assert [tuple(row) for row in kinds] == [(1, 1), (2, 1), (3, 1), (4, 1), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0)]
        assert connection.execute(sa.select(schema.mlmd_env.c.schema_version)).scalars().all() == [10]
        tables = set(sa.inspect(connection).get_table_names())
    assert {table.name for table in schema.metadata.sorted_tables} <= tables


def test_second_start_keeps_data_and_ids(engine):
    prepare_database(engine)
    store = MetadataStore(Database(engine))
    store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Kept")))
    prepare_database(engine)
    found = store.get_artifact_type(svc.GetArtifactTypeRequest(type_name="Kept")).artifact_type
    assert found.id == 10


def test_database_created_by_mlmd_is_stamped_not_recreated(engine):
    # A database as MLMD leaves it: our tables and rows, but no LineageDB stamp.
    prepare_database(engine)
    MetadataStore(Database(engine)).put_artifact_type(
        svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="FromMLMD"))
    )
    _drop_version_table(engine)
    with engine.begin() as connection:
        for index in lineagedb_indexes(engine.dialect.name):
            index.drop(connection)
    with engine.connect() as connection:
        assert inspect_schema(connection).revision is None
    state = prepare_database(engine)
    # Stamped at the MLMD baseline and served; LineageDB's own indexes wait for `db upgrade`.
    assert state.revision == "0001" and not state.current
    assert not _lineagedb_index_names(engine)
    found = MetadataStore(Database(engine)).get_artifact_type(svc.GetArtifactTypeRequest(type_name="FromMLMD"))
    assert found.artifact_type.id == 10
    state = prepare_database(engine, allow_upgrade=True)
    assert state.current
    assert _lineagedb_index_names(engine) == {index.name for index in lineagedb_indexes(engine.dialect.name)}


def _lineagedb_index_names(engine: sa.Engine) -> set[str]:
    inspector = sa.inspect(engine)
    return {
        index["name"]
        for table in inspector.get_table_names()
        for index in inspector.get_indexes(table)
        if (index["name"] or "").startswith("lineagedb_")
    }


def test_fresh_database_gets_lineagedb_indexes(engine):
    prepare_database(engine)
    assert _lineagedb_index_names(engine) == {index.name for index in lineagedb_indexes(engine.dialect.name)}


def test_newer_mlmd_schema_is_refused(engine):
    prepare_database(engine)
    schema = schema_for(engine.dialect.name)
    _execute(engine, sa.update(schema.mlmd_env).values(schema_version=11))
    with pytest.raises(errors.FailedPreconditionError, match="newer"):
        prepare_database(engine)


def test_unknown_lineagedb_revision_is_refused(engine):
    prepare_database(engine)
    _execute(engine, sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'ffff'"))
    with pytest.raises(errors.FailedPreconditionError, match="newer than this server knows"):
        prepare_database(engine)


def test_two_schema_version_rows_are_data_loss(engine):
    prepare_database(engine)
    schema = schema_for(engine.dialect.name)
    _execute(engine, sa.insert(schema.mlmd_env).values(schema_version=9))
    with pytest.raises(errors.DataLossError):
        prepare_database(engine)


def test_empty_schema_version_table_means_initialization_in_progress(engine):
    prepare_database(engine)
    _execute(engine, sa.delete(schema_for(engine.dialect.name).mlmd_env))
    with pytest.raises(errors.AbortedError):
        prepare_database(engine)


def test_partial_schema_is_refused(engine):
    prepare_database(engine)
    _execute(engine, sa.text(f"DROP TABLE {schema_for(engine.dialect.name).event_path.name}"))
    with pytest.raises(errors.FailedPreconditionError, match="missing tables"):
        prepare_database(engine)


def _downgrade_to_v9(engine: sa.Engine) -> None:
    """Turn a v10 database into what MLMD v9 had: no proto_value/bool_value columns."""
    schema = schema_for(engine.dialect.name)
    quote = engine.dialect.identifier_preparer.quote
    statements: list[sa.Executable] = []
    for table in (schema.artifact_property, schema.execution_property, schema.context_property):
        for column in ("proto_value", "bool_value"):
            statements.append(sa.text(f"ALTER TABLE {quote(table.name)} DROP COLUMN {quote(column)}"))
    statements.append(sa.update(schema.mlmd_env).values(schema_version=MLMD_V9))
    _execute(engine, *statements)
    _drop_version_table(engine)


def test_mlmd_v9_database_is_refused_with_the_upgrade_command_then_upgraded_on_request(engine, database_url):
    prepare_database(engine)
    store = MetadataStore(Database(engine))
    type_id = store.put_artifact_type(
        svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Old", properties={"p": mlmd.INT}))
    ).type_id
    artifact = mlmd.Artifact(type_id=type_id, uri="kept")
    artifact.properties["p"].int_value = 7
    store.put_artifacts(svc.PutArtifactsRequest(artifacts=[artifact]))
    _downgrade_to_v9(engine)
    engine.dispose()

    with pytest.raises(errors.FailedPreconditionError, match="lineagedb db upgrade --database"):
        prepare_database(engine)

    upgrade = subprocess.run(
        [sys.executable, "-m", "lineagedb", "db", "upgrade", "--database", database_url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    state = prepare_database(engine)
    assert state.mlmd_version == SCHEMA_VERSION and state.current
    read = MetadataStore(Database(engine)).get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[1]))
    assert read.artifacts[0].uri == "kept" and read.artifacts[0].properties["p"].int_value == 7
    flagged = mlmd.Artifact(type_id=type_id)
    flagged.custom_properties["b"].bool_value = True
    assert MetadataStore(Database(engine)).put_artifacts(svc.PutArtifactsRequest(artifacts=[flagged])).artifact_ids


def test_db_current_reports_the_schema_state(database_url):
    result = subprocess.run(
        [sys.executable, "-m", "lineagedb", "db", "upgrade", "--database", database_url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    current = subprocess.run(
        [sys.executable, "-m", "lineagedb", "db", "current", "--database", database_url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert current.returncode == 0, current.stderr
    assert "mlmd_schema_version=10" in current.stdout and "revision=0012 head=0012" in current.stdout


def test_revision_0003_adds_the_namespace_tables_and_the_namespace_commands_use_them(engine, database_url):
    """A database at 0002 (LineageDB before namespaces) keeps serving; `db upgrade` adds the
    tables, and `lineagedb namespace` refuses to run before it, with the command to fix it."""
    from alembic import command

    from lineagedb.store.bootstrap import alembic_config
    from lineagedb.store.tenancy import METADATA

    prepare_database(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0002")
    with engine.connect() as connection:
        state = inspect_schema(connection)
        assert state.revision == "0002" and not state.has_namespaces
        assert not set(METADATA.tables) & set(sa.inspect(connection).get_table_names())

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lineagedb", *args, "--database", database_url],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )

    refused = cli("namespace", "create", "team-a")
    assert refused.returncode == 2 and "lineagedb db upgrade" in refused.stderr
    assert cli("db", "upgrade").returncode == 0
    created = cli("namespace", "create", "team-a")
    assert created.returncode == 0, created.stderr
    assert cli("namespace", "create", "team-a").returncode == 2  # already exists
    listed = cli("namespace", "list")
    assert listed.stdout.splitlines() == ["default\t(nodes not counted)", "team-a\t0 nodes"]
    assert cli("namespace", "delete", "team-a").returncode == 0
    assert cli("namespace", "list").stdout.splitlines() == ["default\t(nodes not counted)"]


def test_revision_0004_makes_a_membership_need_its_namespace(engine):
    """On MySQL a membership row names an existing namespace (the foreign key that lets
    writes skip their own existence check); PostgreSQL and SQLite check it in the store."""
    from lineagedb.store.tenancy import MEMBERSHIP, NAMESPACES

    prepare_database(engine)
    keys = sa.inspect(engine).get_foreign_keys("lineagedb_node_namespace")
    if engine.dialect.name != "mysql":
        assert keys == []
        return
    assert [(key["referred_table"], key["constrained_columns"]) for key in keys] == [
        ("lineagedb_namespace", ["namespace"])
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(NAMESPACES).values(name="team-a", create_time_since_epoch=1))
        connection.execute(sa.insert(MEMBERSHIP).values(node_kind=1, node_id=1, namespace="team-a"))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(sa.insert(MEMBERSHIP).values(node_kind=1, node_id=2, namespace="nowhere"))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(sa.delete(NAMESPACES).where(NAMESPACES.c.name == "team-a"))


def test_revision_0009_keys_the_per_node_tables_by_their_primary_keys_on_sqlite(engine):
    """SQLite: `lineagedb_audit_node` and `lineagedb_node_namespace` are one B-tree each
    (WITHOUT ROWID), so a write transaction writes one structure per table, not two; rows
    and the namespace index survive the rebuild both ways. Other backends keep the tables
    as 0003 and 0006 made them."""
    from alembic import command

    from lineagedb.store.audit_log import RECORD_NODES
    from lineagedb.store.bootstrap import alembic_config
    from lineagedb.store.tenancy import MEMBERSHIP, NAMESPACES

    tables = (RECORD_NODES, MEMBERSHIP)

    def definitions() -> list[str]:
        with engine.connect() as connection:
            return [
                str(
                    connection.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": t.name}).scalar()
                )
                for t in tables
            ]

    def rows() -> list[list[tuple[object, ...]]]:
        with engine.connect() as connection:
            return [[tuple(row) for row in connection.execute(sa.select(t).order_by(*t.c))] for t in tables]

    prepare_database(engine)
    if engine.dialect.name != "sqlite":
        for table in tables:
            primary_key = sa.inspect(engine).get_pk_constraint(table.name)["constrained_columns"]
            assert primary_key == [column.name for column in table.primary_key]
        return
    assert all(definition.upper().endswith("WITHOUT ROWID") for definition in definitions())
    audit_nodes = [(1, 5, "a" * 32, 1), (1, 6, "a" * 32, 1), (0, 5, "b" * 32, 7)]
    members = [(1, 5, "team-a"), (2, 9, "team-a")]
    _execute(
        engine,
        sa.insert(NAMESPACES).values(name="team-a", create_time_since_epoch=1),
        sa.insert(RECORD_NODES).values(
            [dict(zip([c.name for c in RECORD_NODES.c], r, strict=True)) for r in audit_nodes]
        ),
        sa.insert(MEMBERSHIP).values([dict(zip([c.name for c in MEMBERSHIP.c], r, strict=True)) for r in members]),
    )
    expected = [sorted(audit_nodes), sorted(members)]
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0008")
    assert not any("WITHOUT ROWID" in definition.upper() for definition in definitions())
    assert rows() == expected
    prepare_database(engine, allow_upgrade=True)  # `lineagedb db upgrade`
    assert all(definition.upper().endswith("WITHOUT ROWID") for definition in definitions())
    assert rows() == expected
    indexes = sa.inspect(engine).get_indexes(MEMBERSHIP.name)
    assert [(index["name"], index["column_names"]) for index in indexes] == [
        ("idx_lineagedb_node_namespace_namespace", ["namespace", "node_kind"])
    ]


def test_revision_0010_leaves_the_audit_records_only_the_indexes_appending_needs(engine):
    """Each index on `lineagedb_audit` is written by every write's commit: 0010 drops the
    ones by time and by principal (PostgreSQL gets a BRIN summary of time_ms), keeps the
    chain order, and a downgrade puts them back. Records and queries survive both ways."""
    from alembic import command

    from lineagedb.store import audit_store
    from lineagedb.store.audit_log import RECORDS
    from lineagedb.store.bootstrap import alembic_config

    def indexes() -> dict[str, list[str]]:
        return {str(i["name"]): list(i["column_names"]) for i in sa.inspect(engine).get_indexes(RECORDS.name)}

    def query(**filters: object) -> list[int]:
        with engine.connect() as connection:
            return [row["seq"] for row in audit_store.query(connection, audit_store.AuditQuery(**filters))]

    prepare_database(engine)
    dropped = {"idx_lineagedb_audit_time", "idx_lineagedb_audit_principal"}
    assert not dropped & set(indexes())
    brin = "idx_lineagedb_audit_time_brin" in indexes()
    assert brin == (engine.dialect.name == "postgresql")
    unique = sa.inspect(engine).get_unique_constraints(RECORDS.name)
    assert [(u["name"], u["column_names"]) for u in unique] == [("uq_lineagedb_audit_chain_seq", ["chain", "seq"])]
    fields = dict(kind="write", namespace="", method="/m/Put", peer="p", outcome="OK", request_digest="", mac="m")
    _execute(
        engine,
        sa.insert(RECORDS).values(
            [
                {"chain": "c" * 32, "seq": seq, "time_ms": 1000 * seq, "principal": f"p{seq % 2}", "detail": "{}"}
                | fields
                for seq in range(1, 7)
            ]
        ),
    )
    expected = {"since": [3, 4, 5, 6], "principal": [1, 3, 5], "both": [3, 5]}

    def answers() -> dict[str, list[int]]:
        return {
            "since": query(since_ms=3000),
            "principal": query(principal="p1"),
            "both": query(principal="p1", since_ms=2500, until_ms=6000),
        }

    assert answers() == expected
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0009")
    assert dropped <= set(indexes()) and "idx_lineagedb_audit_time_brin" not in indexes()
    assert answers() == expected
    prepare_database(engine, allow_upgrade=True)
    assert not dropped & set(indexes())
    assert answers() == expected
