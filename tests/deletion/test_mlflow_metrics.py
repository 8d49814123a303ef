"""A run's MLflow metric history goes with its execution: DeletionService (ids, filters,
cascade, tombstones; dry runs count the rows) and retention apply, on every backend.
The runs are written through the tracking service, as an MLflow client writes them."""

from __future__ import annotations

import argparse
import gzip
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lineagedb.ops import retention as retention_ops
from lineagedb.proto.lineagedb.v1 import deletion_pb2 as dpb
from lineagedb.proto.lineagedb.v1 import mlflow_tracking_pb2 as pb
from lineagedb.service import deletion as deletion_module
from lineagedb.service.deletion import Deletion
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.service.mlflow_tracking import MlflowTracking
from lineagedb.store.mlflow import LATEST, METRIC
from lineagedb.store.unit_of_work import Database
from tests.archive.conftest import import_
from tests.deletion.consistency import orphans

Mode = dpb.DeleteRequest.Mode
STEPS = 4  # loss at steps 0..3 and one acc value: 5 history rows, 2 latest rows per run
ROWS_PER_RUN = STEPS + 1


@pytest.fixture
def tracking(database: Database) -> MlflowTracking:
    return MlflowTracking(database, MetadataStore(database).types)


def log_runs(tracking: MlflowTracking, experiment: str, names: list[str]) -> tuple[str, dict[str, str]]:
    """An experiment with one run per name, each with a loss history and an accuracy."""
    experiment_id = tracking.create_experiment(pb.CreateExperimentRequest(name=experiment)).experiment_id
    runs: dict[str, str] = {}
    for index, name in enumerate(names):
        request = pb.CreateRunRequest(experiment_id=experiment_id, run_name=name, start_time=1000 + index)
        run_id = tracking.create_run(request).run.info.run_id
        metrics = [pb.Metric(key="loss", value=1.0 / (s + 1), timestamp=10 + s, step=s) for s in range(STEPS)]
        metrics.append(pb.Metric(key="acc", value=0.5 + index / 100, timestamp=20, step=0))
        tracking.log_batch(pb.LogBatchRequest(run_id=run_id, metrics=metrics))
        runs[name] = run_id
    return experiment_id, runs


def execution_ids(database: Database, run_ids: list[str]) -> list[int]:
    execution = database.schema.execution
    with database.engine.connect() as connection:
        found = dict(connection.execute(sa.select(execution.c.name, execution.c.id)).all())
    return [int(found[run_id]) for run_id in run_ids]


def metric_rows(database: Database) -> dict[int, tuple[int, int]]:
    """execution id -> (history rows, latest rows)."""
    counts: dict[int, list[int]] = {}
    with database.engine.connect() as connection:
        for position, table in enumerate((METRIC, LATEST)):
            statement = sa.select(table.c.execution_id, sa.func.count()).group_by(table.c.execution_id)
            for execution_id, number in connection.execute(statement):
                counts.setdefault(int(execution_id), [0, 0])[position] = int(number)
    return {execution_id: (history, latest) for execution_id, (history, latest) in counts.items()}


def history(tracking: MlflowTracking, run_id: str) -> list[tuple[int, float]]:
    answer = tracking.get_metric_history(pb.GetMetricHistoryRequest(run_id=run_id, metric_key="loss"))
    return [(m.step, m.value) for m in answer.metrics]


@contextmanager
def metric_statements(database: Database) -> Iterator[list[str]]:
    """The statements sent to the metric tables while the block runs."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if "lineagedb_mlflow_" in statement:
            seen.append(" ".join(statement.split()[:3]).upper())

    sa.event.listen(database.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", before)


def test_delete_runs_by_id_counts_then_removes_their_metric_rows(
    tracking: MlflowTracking, database: Database, deletion: Deletion
) -> None:
    _, runs = log_runs(tracking, "exp", ["a", "b", "c"])
    a, b, c = execution_ids(database, [runs["a"], runs["b"], runs["c"]])
    request = dpb.DeleteRequest(execution_ids=[a, b])
    dry = deletion.delete(request)
    assert dry.dry_run and dry.executions == 2 and dry.mlflow_metrics == 2 * ROWS_PER_RUN
    assert metric_rows(database) == {a: (ROWS_PER_RUN, 2), b: (ROWS_PER_RUN, 2), c: (ROWS_PER_RUN, 2)}

    request.confirm = True
    with metric_statements(database) as statements:
        done = deletion.delete(request)
    assert not done.dry_run and done.mlflow_metrics == 2 * ROWS_PER_RUN
    assert metric_rows(database) == {c: (ROWS_PER_RUN, 2)}
    # Set-based: one DELETE per metric table for the batch, whatever the number of runs.
    assert sorted(s for s in statements if s.startswith("DELETE")) == [
        "DELETE FROM LINEAGEDB_MLFLOW_LATEST_METRIC",
        "DELETE FROM LINEAGEDB_MLFLOW_METRIC",
    ]
    assert history(tracking, runs["c"]) == [(s, 1.0 / (s + 1)) for s in range(STEPS)]
    assert orphans(database.engine) == {}


def test_delete_by_filter_in_batches_removes_each_batchs_metric_rows(
    tracking: MlflowTracking, database: Database, deletion: Deletion, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deletion_module, "BATCH", 2)  # five runs: three batches
    log_runs(tracking, "exp", ["r1", "r2", "r3", "r4", "r5"])
    _, kept = log_runs(tracking, "other", ["k"])
    [kept_id] = execution_ids(database, [kept["k"]])
    request = dpb.DeleteRequest(
        executions_filter="type = 'mlflow.Run' AND contexts_a.name = 'exp'",
        mode=Mode.CASCADE_DOWNSTREAM,
        confirm=True,
    )
    with metric_statements(database) as statements:
        done = deletion.delete(request)
    assert done.executions == 5 and done.mlflow_metrics == 5 * ROWS_PER_RUN
    assert metric_rows(database) == {kept_id: (ROWS_PER_RUN, 2)}
    assert sum(s.startswith("DELETE") for s in statements) == 3 * 2  # two per batch
    assert orphans(database.engine) == {}


def test_tombstoned_runs_lose_their_metric_rows_and_keep_their_node(
    tracking: MlflowTracking, database: Database, deletion: Deletion
) -> None:
    _, runs = log_runs(tracking, "exp", ["a", "b"])
    a, b = execution_ids(database, [runs["a"], runs["b"]])
    dry = deletion.delete(dpb.DeleteRequest(execution_ids=[a], mode=Mode.TOMBSTONE))
    assert dry.tombstones == 1 and dry.mlflow_metrics == ROWS_PER_RUN
    assert metric_rows(database)[a] == (ROWS_PER_RUN, 2)
    done = deletion.delete(dpb.DeleteRequest(execution_ids=[a], mode=Mode.TOMBSTONE, confirm=True))
    assert done.mlflow_metrics == ROWS_PER_RUN
    assert metric_rows(database) == {b: (ROWS_PER_RUN, 2)}
    assert execution_ids(database, [runs["a"]]) == [a]  # the tombstone stays
    assert history(tracking, runs["a"]) == []
    assert len(history(tracking, runs["b"])) == STEPS


def test_retention_apply_removes_the_expired_runs_metric_rows(
    tracking: MlflowTracking, database: Database, database_url: str, tmp_path: Path
) -> None:
    _, old = log_runs(tracking, "old", ["o1", "o2"])
    _, new = log_runs(tracking, "new", ["n1"])
    o1, o2, n1 = execution_ids(database, [old["o1"], old["o2"], new["n1"]])
    policy = tmp_path / "policy.toml"
    policy.write_text("[[rule]]\ncontexts = \"type = 'mlflow.Experiment' AND name = 'old'\"\nolder_than_days = 0\n")
    plan = tmp_path / "plan.json"
    for command, options in (
        ("plan", {"policy": str(policy), "output": str(plan)}),
        ("apply", {"plan": str(plan), "archive": None}),
    ):
        args = argparse.Namespace(retention_command=command, database=database_url, **options)
        assert retention_ops.run(args, io.StringIO()) == 0
    assert execution_ids(database, [new["n1"]]) == [n1]
    assert metric_rows(database) == {n1: (ROWS_PER_RUN, 2)}
    assert o1 not in metric_rows(database) and o2 not in metric_rows(database)
    assert orphans(database.engine) == {}


def test_retention_archive_then_import_restores_the_metric_rows(
    tracking: MlflowTracking, database: Database, database_url: str, tmp_path: Path
) -> None:
    _, old = log_runs(tracking, "old", ["o1", "o2"])
    log_runs(tracking, "new", ["n1"])
    before_rows = metric_rows(database)
    before = {run_id: history(tracking, run_id) for run_id in old.values()}
    policy = tmp_path / "policy.toml"
    policy.write_text("[[rule]]\ncontexts = \"type = 'mlflow.Experiment' AND name = 'old'\"\nolder_than_days = 0\n")
    plan = tmp_path / "plan.json"
    for command, options in (
        ("plan", {"policy": str(policy), "output": str(plan)}),
        ("apply", {"plan": str(plan), "archive": str(tmp_path / "archives")}),
    ):
        args = argparse.Namespace(retention_command=command, database=database_url, **options)
        assert retention_ops.run(args, io.StringIO()) == 0
    assert len(metric_rows(database)) == 1
    [path] = (tmp_path / "archives").glob("retention-*.lineagedb.gz")
    with gzip.open(path, "rb") as file:
        tags = [json.loads(line).get("t") for line in file]
    assert tags.count("mlflow_metric") == 2 * ROWS_PER_RUN and tags.count("mlflow_latest_metric") == 2 * 2

    import_(database_url, path)
    assert metric_rows(database) == before_rows  # the runs got their ids back
    assert {run_id: history(tracking, run_id) for run_id in old.values()} == before
    run = tracking.get_run(pb.RunIdRequest(run_id=old["o2"])).run
    assert sorted((m.key, m.value) for m in run.data.metrics) == [("acc", 0.51), ("loss", 0.25)]
    assert orphans(database.engine) == {}
