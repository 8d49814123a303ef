"""Archive before purge: `retention apply --archive DIR` writes what the plan deletes, and
`lineagedb import` of that archive puts the store back exactly as it was."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from lineagedb import errors
from lineagedb.ops import retention as retention_ops
from lineagedb.ops.archive import verify_archive
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.deletion import Deletion
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.service.retention import Retention, read_plan
from lineagedb.store import archive
from lineagedb.store.engine import create_engine
from lineagedb.store.tenancy import ARTIFACT_NODE, CONTEXT_NODE, EXECUTION_NODE
from lineagedb.store.unit_of_work import Database
from tests.answers import tfx_pipeline
from tests.answers.conftest import LocalClient
from tests.answers.tfx_pipeline import ARTIFACTS
from tests.archive.conftest import assert_same_views, export, import_, scratch_store, views
from tests.deletion.consistency import orphans

DAY_MS = 86_400_000
POLICY = "[[rule]]\ncontexts = \"type = 'pipeline_run' AND name = 'run-1'\"\nolder_than_days = 0\n"


@pytest.fixture
def runs(client: LocalClient, store: MetadataStore, clock: Any) -> tuple[dict[str, int], dict[str, int], int]:
    """Two runs; run-1's Trainer also read a raw file artifact no run holds (it survives), and
    run-2's Trainer also read run-1's schema (so the schema and its upstream stay)."""
    first = tfx_pipeline.write_run(mlmd, client, "run-1")
    clock.now += 10 * DAY_MS
    second = tfx_pipeline.write_run(mlmd, client, "run-2", num_steps=200)
    raw_type = store.put_artifact_type(
        svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="RawFile"))
    ).type_id
    [raw] = store.put_artifacts(
        svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=raw_type, uri="gs://raw/taxi.csv")])
    ).artifact_ids
    events = [
        mlmd.Event(artifact_id=raw, execution_id=first["Trainer"], type=mlmd.Event.INPUT),
        mlmd.Event(artifact_id=first["schema"], execution_id=second["Trainer"], type=mlmd.Event.INPUT),
    ]
    store.put_events(svc.PutEventsRequest(events=events))
    return first, second, raw


def _run(database_url: str, command: str, **options: Any) -> str:
    out = io.StringIO()
    args = argparse.Namespace(retention_command=command, database=database_url, **options)
    assert retention_ops.run(args, out) == 0
    return out.getvalue()


def _plan(database_url: str, tmp_path: Path) -> Path:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    plan = tmp_path / "plan.json"
    _run(database_url, "plan", policy=str(policy), output=str(plan))
    return plan


def _records(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rb") as file:
        return [json.loads(line) for line in file]


def test_apply_with_archive_then_import_restores_every_view(
    database_url: str, database: Database, store: MetadataStore, runs: Any, tmp_path: Path
) -> None:
    first, _, raw = runs
    before = views(store)
    plan = _plan(database_url, tmp_path)
    identifier, order = read_plan(json.loads(plan.read_text()))
    shown = _run(database_url, "apply", plan=str(plan), archive=str(tmp_path / "archives"))
    path = retention_ops.archive_path(tmp_path / "archives", identifier)
    assert f"archived to {path}" in shown and shown.splitlines()[-1] == "done"
    kept = {first["schema"], first["statistics"], first["examples"]}
    remaining = {a.id for a in store.get_artifacts(svc.GetArtifactsRequest()).artifacts}
    assert remaining.isdisjoint({first[name] for name in ARTIFACTS} - kept) and kept <= remaining
    assert orphans(database.engine) == {}

    records = _records(path)
    header = records[0]
    assert header["version"] == archive.VERSION and header["retention_plan"] == identifier
    assert sum(header["selection"].values()) == len(order)
    outside = {(r["node_kind"], r["node_id"]) for r in records if r.get("t") == "outside_node"}
    # Deleted nodes' edges lead to the raw file, the kept schema (run-1's Transform read it),
    # the kept ExampleGen (it wrote nothing deleted, but shares the run context) and the
    # shared pipeline context.
    expected = {
        (ARTIFACT_NODE, raw),
        (ARTIFACT_NODE, first["schema"]),
        (EXECUTION_NODE, first["ExampleGen"]),
        (CONTEXT_NODE, first["pipeline"]),
    }
    assert expected <= outside
    with pytest.raises(errors.FailedPreconditionError, match="retention archive"):
        verify_archive(database_url, path, io.StringIO(), io.StringIO())

    import_(database_url, path)
    assert_same_views(before, views(store))
    assert orphans(database.engine) == {}


def test_an_apply_resumed_after_a_crash_keeps_the_complete_archive(
    database_url: str, database: Database, store: MetadataStore, runs: Any, clock: Any, tmp_path: Path
) -> None:
    before = views(store)
    plan = _plan(database_url, tmp_path)
    identifier, order = read_plan(json.loads(plan.read_text()))
    engine = create_engine(database_url)
    try:
        path = retention_ops.archive_before_purge(engine, identifier, order, tmp_path, io.StringIO())
    finally:
        engine.dispose()
    # The crash: the archive is complete, a few batches' worth of the plan is deleted.
    Retention(Deletion(database, clock)).apply(order[:5])
    written = path.read_bytes()
    shown = _run(database_url, "apply", plan=str(plan), archive=str(tmp_path))
    assert "already complete" in shown and path.read_bytes() == written
    import_(database_url, path)
    assert_same_views(before, views(store))


def test_an_archive_whose_edges_lead_to_nodes_the_target_lacks_is_refused(
    backend: str, database_url: str, store: MetadataStore, runs: Any, tmp_path: Path
) -> None:
    plan = _plan(database_url, tmp_path)
    _run(database_url, "apply", plan=str(plan), archive=str(tmp_path))
    [path] = tmp_path.glob("retention-*.lineagedb.gz")
    with scratch_store(backend, tmp_path / "other") as other:
        with pytest.raises(errors.FailedPreconditionError, match="which the target database does not hold"):
            import_(other.url, path)
        assert not other.store.get_artifacts(svc.GetArtifactsRequest()).artifacts
        assert not other.store.get_artifact_types(svc.GetArtifactTypesRequest()).artifact_types


def test_a_version_1_archive_still_imports(database_url: str, store: MetadataStore, runs: Any, tmp_path: Path) -> None:
    """Archives written before the outside_node section existed: version 1, no such section."""
    path = tmp_path / "store.gz"
    export(database_url, path)
    with gzip.open(path, "rb") as file:
        lines = file.read().splitlines(keepends=True)
    header, trailer = json.loads(lines[0]), json.loads(lines[-1])
    header["version"] = 1
    head = (json.dumps(header, separators=(",", ":")) + "\n").encode()
    for field in ("counts", "sha256"):
        del trailer[field]["outside_node"]
    trailer["header_sha256"] = hashlib.sha256(head).hexdigest()
    old = tmp_path / "old.gz"
    with gzip.open(old, "wb") as file:
        file.write(head + b"".join(lines[1:-1]) + (json.dumps(trailer, separators=(",", ":")) + "\n").encode())
    expected = views(store)
    with scratch_store("sqlite", tmp_path / "target") as target:
        import_(target.url, old)
        assert_same_views(expected, views(target.store))
