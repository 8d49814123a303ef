"""MLflow metric histories travel in archives (format version 3): a store with runs written
through the tracking service, exported and imported SQLite -> PostgreSQL -> MariaDB, reads
back the same histories through the service; an import into a store with runs of its own
keeps both stores' histories (and the order of equal steps); an archive of version 2 (no
metric sections) still imports."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import mlflow_tracking_pb2 as pb
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.service.mlflow_tracking import MlflowTracking
from lineagedb.store import archive, tenancy
from lineagedb.store.unit_of_work import Database
from tests.archive.conftest import TEAM, TEAM_WRITER, export, import_, scratch_store, verify
from tests.tenancy.world import acting_as

METRIC_SECTIONS = ("mlflow_metric", "mlflow_latest_metric")


def write_runs(database: Database, experiment: str) -> list[str]:
    """Three runs with loss histories, NaN and infinities, and two values at one (step, timestamp)."""
    tracking = MlflowTracking(database, MetadataStore(database).types)
    experiment_id = tracking.create_experiment(pb.CreateExperimentRequest(name=experiment)).experiment_id
    run_ids = []
    for index in range(3):
        request = pb.CreateRunRequest(experiment_id=experiment_id, run_name=f"{experiment}-{index}", start_time=1)
        run_id = tracking.create_run(request).run.info.run_id
        metrics = [pb.Metric(key="loss", value=1.0 / (s + 1) + index, timestamp=100 + s, step=s) for s in range(8)]
        metrics += [
            pb.Metric(key="odd", value=math.nan, timestamp=5, step=0),
            pb.Metric(key="odd", value=math.inf, timestamp=6, step=1),
            pb.Metric(key="odd", value=-math.inf, timestamp=7, step=2),
            # Equal step and timestamp: the history keeps the order they were logged in.
            pb.Metric(key="tie", value=0.3, timestamp=9, step=3),
            pb.Metric(key="tie", value=0.1, timestamp=9, step=3),
            pb.Metric(key="tie", value=0.2, timestamp=9, step=3),
        ]
        tracking.log_batch(pb.LogBatchRequest(run_id=run_id, metrics=metrics))
        tracking.log_metric(pb.LogMetricRequest(run_id=run_id, key="acc", value=0.9 - index / 10, timestamp=3, step=0))
        run_ids.append(run_id)
    return run_ids


def histories(database: Database, run_ids: list[str]) -> dict[str, Any]:
    """Every run's latest metrics and the full history of each key, read through the service."""
    tracking = MlflowTracking(database, MetadataStore(database).types)
    found: dict[str, Any] = {}
    for run_id in run_ids:
        run = tracking.get_run(pb.RunIdRequest(run_id=run_id)).run
        latest = sorted((m.key, repr(m.value), m.timestamp, m.step) for m in run.data.metrics)
        found[run_id] = {"latest": latest}
        for key, *_ in latest:
            request = pb.GetMetricHistoryRequest(run_id=run_id, metric_key=key)
            found[run_id][key] = [
                (repr(m.value), m.timestamp, m.step) for m in tracking.get_metric_history(request).metrics
            ]
    return found


def test_histories_survive_sqlite_to_postgresql_to_mariadb(tmp_path: Path) -> None:
    with scratch_store("sqlite", tmp_path / "sqlite") as source:
        run_ids = write_runs(source.database, "exp")
        expected = histories(source.database, run_ids)
        assert expected[run_ids[0]]["tie"] == [("0.3", 9, 3), ("0.1", 9, 3), ("0.2", 9, 3)]
        assert expected[run_ids[0]]["odd"][0][0] == "nan"
        path = tmp_path / "sqlite.gz"
        export(source.url, path)
    for backend in ("postgresql", "mysql"):
        with scratch_store(backend, tmp_path / backend) as target:
            import_(target.url, path)
            assert histories(target.database, run_ids) == expected, backend
            assert verify(target.url, path)[0]
            path = tmp_path / f"{backend}.gz"
            export(target.url, path)
    with gzip.open(path, "rb") as file:
        counts = json.loads(file.read().splitlines()[-1])["counts"]
    assert counts["mlflow_metric"] == 3 * (8 + 6 + 1) and counts["mlflow_latest_metric"] == 3 * 4


def test_import_into_a_store_with_runs_keeps_both_histories(backend: str, tmp_path: Path) -> None:
    with scratch_store(backend, tmp_path / "source") as source:
        run_ids = write_runs(source.database, "exp")
        expected = histories(source.database, run_ids)
        path = tmp_path / "source.gz"
        export(source.url, path)
    with scratch_store(backend, tmp_path / "target") as target:
        own = write_runs(target.database, "own")
        own_expected = histories(target.database, own)
        shown = import_(target.url, path).text
        assert re.search(r"ids remapped: [1-9].*\bexecution [1-9]", shown), shown  # the runs' ids were taken
        assert histories(target.database, run_ids) == expected
        assert histories(target.database, own) == own_expected


def test_a_version_2_archive_without_metric_sections_imports(backend: str, tmp_path: Path) -> None:
    with scratch_store(backend, tmp_path / "source") as source:
        run_ids = write_runs(source.database, "exp")
        path = tmp_path / "store.gz"
        export(source.url, path)
    with gzip.open(path, "rb") as file:
        lines = file.read().splitlines(keepends=True)
    header, trailer = json.loads(lines[0]), json.loads(lines[-1])
    assert header["version"] == archive.VERSION == 3
    header["version"] = 2
    header["sections"] = [tag for tag in header["sections"] if tag not in METRIC_SECTIONS]
    head = (json.dumps(header, separators=(",", ":")) + "\n").encode()
    for field in ("counts", "sha256"):
        for tag in METRIC_SECTIONS:
            del trailer[field][tag]
    trailer["header_sha256"] = hashlib.sha256(head).hexdigest()
    trailer["rows"] -= sum(1 for line in lines[1:-1] if json.loads(line)["t"] in METRIC_SECTIONS)
    body = [line for line in lines[1:-1] if json.loads(line)["t"] not in METRIC_SECTIONS]
    old = tmp_path / "old.gz"
    with gzip.open(old, "wb") as file:
        file.write(head + b"".join(body) + (json.dumps(trailer, separators=(",", ":")) + "\n").encode())
    with scratch_store(backend, tmp_path / "target") as target:
        import_(target.url, old)
        tracking = MlflowTracking(target.database, MetadataStore(target.database).types)
        request = pb.GetMetricHistoryRequest(run_id=run_ids[0], metric_key="loss")
        assert list(tracking.get_metric_history(request).metrics) == []
        assert tracking.get_run(pb.RunIdRequest(run_id=run_ids[0])).run.info.run_name == "exp-0"


def test_a_namespace_archive_holds_only_its_runs_metrics(backend: str, tmp_path: Path) -> None:
    with scratch_store(backend, tmp_path / "source") as source:
        outside = write_runs(source.database, "default-exp")
        with source.database.transaction() as uow:
            tenancy.create_namespace(uow, TEAM, 1_700_000_000_000)
        with acting_as(TEAM_WRITER):
            inside = write_runs(source.database, "team-exp")
            expected = histories(source.database, inside)
        path = tmp_path / "team.gz"
        export(source.url, path, TEAM)
        assert verify(source.url, path)[0]
    with gzip.open(path, "rb") as file:
        counts = json.loads(file.read().splitlines()[-1])["counts"]
    assert counts["mlflow_metric"] == 3 * (8 + 6 + 1) and counts["mlflow_latest_metric"] == 3 * 4
    with scratch_store(backend, tmp_path / "target") as target:
        import_(target.url, path)
        with acting_as(TEAM_WRITER):
            assert histories(target.database, inside) == expected
        tracking = MlflowTracking(target.database, MetadataStore(target.database).types)
        request = pb.GetMetricHistoryRequest(run_id=outside[0], metric_key="loss")
        with pytest.raises(errors.NotFoundError):
            tracking.get_metric_history(request)
