"""Export, then import into a fresh database of another backend: every official-client view
is equal, ids included; the round trip SQLite -> PostgreSQL -> MariaDB -> SQLite is lossless;
writes after an import get fresh ids; verify says equal, and different after a change."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import archive
from lineagedb.store.bootstrap import inspect_schema
from lineagedb.store.unit_of_work import Database
from tests.archive.conftest import (
    assert_same_views,
    body_lines,
    export,
    import_,
    scratch_store,
    verify,
    views,
    write_varied_store,
)


def test_archive_lines_are_the_documented_format(store: MetadataStore, database_url: str, tmp_path: Path) -> None:
    write_varied_store(store)
    path = tmp_path / "store.jsonl.gz"
    output = export(database_url, path)
    with gzip.open(path, "rb") as file:
        lines = file.read().splitlines()
    header, trailer = json.loads(lines[0]), json.loads(lines[-1])
    assert list(header)[:2] == ["format", "version"]
    assert header["format"] == "lineagedb-archive" and header["version"] == archive.VERSION == 3
    assert header["source_dialect"] in ("sqlite", "postgresql", "mysql", "mariadb")
    with store.db.engine.connect() as connection:
        head = inspect_schema(connection).head  # the newest migration: the database is current
    assert header["schema_revision"] == head and header["namespace"] is None
    assert trailer["t"] == "trailer"
    records = [json.loads(line) for line in lines[1:-1]]
    tags = [record["t"] for record in records]
    # Sections in the documented order, parents first.
    assert tags == sorted(tags, key=lambda tag: archive.POSITION[tag])
    assert {tag: tags.count(tag) for tag in set(tags)} == {k: v for k, v in trailer["counts"].items() if v}
    assert trailer["rows"] == len(records)
    # Every table's section (no encryption, no MLflow runs here: test_mlflow_metrics.py); outside_node
    # is only in archives of chosen nodes.
    no_rows = {"encryption_key", "mlflow_metric", "mlflow_latest_metric"}
    assert set(tags) == {section.tag for section in archive.STORED_SECTIONS} - no_rows
    assert f"{len(records):,} rows" in output.text
    # Portable values: booleans as JSON booleans, bytes as base64, no NULLs written.
    flags = [r["is_custom_property"] for r in records if r["t"] in ("artifact_property", "execution_property")]
    assert set(flags) == {True, False}
    every = [r for r in records if r["t"] == "artifact_property" and r["name"] == "b"]
    assert {type(r["bool_value"]) for r in every} == {bool}
    packed = [r for r in records if r["t"] == "artifact_property" and r["name"] == "p"]
    assert packed and all(isinstance(r["proto_value"], str) for r in packed)
    assert all(None not in r.values() for r in records)
    struct = next(r for r in records if r["t"] == "artifact_property" and r["name"] == "st")
    assert struct["string_value"].startswith("mlmd-struct::")
    big = next(r for r in records if r["t"] == "artifact_property" and r["name"] == "big")
    assert big["int_value"] == 2**63 - 1
    type_row = next(r for r in records if r["t"] == "type" and r["name"] == "Everything")
    assert type_row["version"] == "v2" and type_row["external_id"] == "type-everything"
    assert any(r["t"] == "parent_type" and r["type_id"] == type_row["id"] for r in records)


def test_import_into_another_backend_gives_equal_views(
    store: MetadataStore, database_url: str, other_backend: str, tmp_path: Path
) -> None:
    write_varied_store(store)
    expected = views(store)
    path = tmp_path / "store.jsonl.gz"
    export(database_url, path)
    with scratch_store(other_backend, tmp_path) as target:
        output = import_(target.url, path)
        assert "ids remapped: 0\n" in output.text
        assert_same_views(expected, views(target.store))
        equal, text = verify(target.url, path)
        assert equal, text
        # The target's own archive holds the same rows, byte for byte.
        again = tmp_path / "again.jsonl.gz"
        export(target.url, again)
        assert body_lines(again) == body_lines(path)


def test_sqlite_postgresql_mariadb_sqlite_is_lossless(tmp_path: Path) -> None:
    with scratch_store("sqlite", tmp_path / "0") as source:
        write_varied_store(source.store)
        expected = views(source.store)
        first = tmp_path / "0.jsonl.gz"
        export(source.url, first)
    path = first
    for step, next_backend in enumerate(("postgresql", "mysql", "sqlite"), start=1):
        with scratch_store(next_backend, tmp_path / str(step)) as target:
            import_(target.url, path)
            assert_same_views(expected, views(target.store))
            path = tmp_path / f"{step}.jsonl.gz"
            export(target.url, path)
            assert body_lines(path) == body_lines(first), f"after {next_backend}"


def _max_ids(database: Database) -> dict[str, int]:
    schema = database.schema
    import sqlalchemy as sa

    with database.engine.connect() as connection:
        return {
            tag: int(connection.execute(sa.select(sa.func.max(archive.table_for(schema, tag).c.id))).scalar() or 0)
            for tag in archive.ID_TAGS
        }


def test_writes_after_import_get_fresh_ids(
    store: MetadataStore, database_url: str, other_backend: str, tmp_path: Path
) -> None:
    write_varied_store(store)
    path = tmp_path / "store.jsonl.gz"
    export(database_url, path)
    with scratch_store(other_backend, tmp_path) as target:
        import_(target.url, path)
        before = _max_ids(target.database)
        s = target.store
        type_id = s.put_artifact_type(
            svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="AfterImport"))
        ).type_id
        execution_type = s.put_execution_type(
            svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="AfterImportStep"))
        ).type_id
        context_type = s.put_context_type(
            svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="AfterImportGroup"))
        ).type_id
        artifact_id = s.put_artifacts(
            svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, uri="s3://new")])
        ).artifact_ids[0]
        execution_id = s.put_executions(
            svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=execution_type)])
        ).execution_ids[0]
        context_id = s.put_contexts(
            svc.PutContextsRequest(contexts=[mlmd.Context(type_id=context_type, name="new")])
        ).context_ids[0]
        s.put_events(
            svc.PutEventsRequest(
                events=[mlmd.Event(artifact_id=artifact_id, execution_id=execution_id, type=mlmd.Event.OUTPUT)]
            )
        )
        s.put_attributions_and_associations(
            svc.PutAttributionsAndAssociationsRequest(
                attributions=[mlmd.Attribution(context_id=context_id, artifact_id=artifact_id)],
                associations=[mlmd.Association(context_id=context_id, execution_id=execution_id)],
            )
        )
        after = _max_ids(target.database)
        new_ids: dict[str, Any] = {
            "type": type_id,
            "artifact": artifact_id,
            "execution": execution_id,
            "context": context_id,
        }
        for tag, new_id in new_ids.items():
            assert new_id > before[tag], tag
        # Every id table handed out exactly the next ids (one per row written above).
        assert after == {
            **before,
            "type": before["type"] + 3,
            "artifact": before["artifact"] + 1,
            "execution": before["execution"] + 1,
            "context": before["context"] + 1,
            "event": before["event"] + 1,
            "attribution": before["attribution"] + 1,
            "association": before["association"] + 1,
        }


def test_verify_reports_equal_then_different(store: MetadataStore, database_url: str, tmp_path: Path) -> None:
    ids = write_varied_store(store)
    path = tmp_path / "store.jsonl.gz"
    export(database_url, path)
    equal, text = verify(database_url, path)
    assert equal, text
    assert "equal: the database holds exactly the archive's rows" in text
    assert "DIFFERENT" not in text
    # A changed value: same counts, other content.
    artifact = store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[ids["artifacts"][0]])).artifacts[0]
    artifact.custom_properties["flag"].bool_value = True
    store.put_artifacts(svc.PutArtifactsRequest(artifacts=[artifact]))
    equal, text = verify(database_url, path)
    assert not equal
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ") and "DIFFERENT" in line}
    assert "artifact_property" in lines and "same count, other content" in lines["artifact_property"]
    assert "artifact" in lines  # its last_update_time moved
    assert text.splitlines()[-1].startswith("different: ")
    # One more node: counts differ.
    store.put_contexts(svc.PutContextsRequest(contexts=[mlmd.Context(type_id=ids["types"][2], name="late")]))
    equal, text = verify(database_url, path)
    assert not equal
    context_line = next(line for line in text.splitlines() if line.split()[:1] == ["context"])
    counts = [int(word.replace(",", "")) for word in context_line.split()[1:3]]
    assert counts[1] == counts[0] + 1
