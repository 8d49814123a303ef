"""The step API's record, read from the journal of a tracker with no store: what a step
captures by itself (times, status, code version, environment, digests), the decorator's
inputs, outputs and parameters, and a failure's record."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lineagedb import track
from lineagedb.track.journal import Journal
from lineagedb.track.record import StepRecord
from lineagedb.track.settings import resolve
from tests.track.gitrepo import make_repo


@pytest.fixture
def tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> track.Tracker:
    for name in ("LINEAGEDB_TARGET", "LINEAGEDB_DATABASE_URL", "LINEAGEDB_PIPELINE", "LINEAGEDB_RUN"):
        monkeypatch.delenv(name, raising=False)
    made = track.Tracker(resolve(directory=tmp_path / "track"))
    yield made
    made.close()


def _journalled(tracker: track.Tracker) -> list[StepRecord]:
    return [Journal.read(p) for p in tracker.journal.pending()]


def test_context_manager_records_inputs_params_outputs_metrics_and_status(
    tracker: track.Tracker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,2\n")
    model = tmp_path / "model"
    with track.step("Trainer", pipeline="churn", run="2026-12-03", tracker=tracker) as step:
        assert track.current() is step
        step.input(data, type="Dataset")
        step.param("learning_rate", 0.1)
        step.output(model, type="Model")
        model.mkdir()
        (model / "weights.bin").write_bytes(b"w" * 10)  # written after being declared: hashed at the end
        step.metric("auc", 0.91)
    assert "no store configured" in capsys.readouterr().err
    (record,) = _journalled(tracker)
    assert (record.step_name, record.pipeline, record.run, record.status) == (
        "Trainer",
        "churn",
        "2026-12-03",
        "COMPLETE",
    )
    assert record.started_ms <= (record.ended_ms or 0)
    assert record.params == {"learning_rate": 0.1} and record.metrics == {"auc": 0.91}
    (source,) = record.inputs
    assert (source.key, source.index, source.uri, source.type_name) == ("dataset", 0, str(data), "Dataset")
    assert source.sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    (made,) = record.outputs
    assert made.is_dir and made.file_count == 1 and made.size == 10 and made.sha256 is not None
    assert record.environment["python_version"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")


def test_failing_step_is_failed_with_exception_type_and_inputs_and_reraises(
    tracker: track.Tracker, tmp_path: Path
) -> None:
    data = tmp_path / "in.csv"
    data.write_text("1\n")

    class Diverged(Exception):
        pass

    with pytest.raises(Diverged), track.step("Trainer", run="r", tracker=tracker) as step:
        step.input(data)
        step.output(tmp_path / "never-written")
        raise Diverged("loss is nan")
    (record,) = _journalled(tracker)
    assert record.status == "FAILED"
    assert (
        record.error_type
        == f"{__name__}.test_failing_step_is_failed_with_exception_type_and_inputs_and_reraises.<locals>.Diverged"
    )
    assert [i.uri for i in record.inputs] == [str(data)] and record.inputs[0].sha256 is not None


def test_decorator_takes_inputs_outputs_and_scalar_params_from_arguments(
    tracker: track.Tracker, tmp_path: Path
) -> None:
    data = tmp_path / "a.csv"
    data.write_text("a\n")
    model_dir = tmp_path / "model"

    @track.step(
        "Trainer",
        pipeline="p",
        run="r",
        tracker=tracker,
        inputs={"train": "Dataset"},
        outputs={"model_dir": "Model", "report": "Report"},
    )
    def train(train: str, model_dir: str, epochs: int = 3, frame: object = None) -> dict[str, str]:
        Path(model_dir).mkdir()
        (Path(model_dir) / "m").write_text("m")
        report = tmp_path / "report.txt"
        report.write_text("ok")
        track.current().metric("loss", 0.5)
        return {"report": str(report)}

    assert train(str(data), str(model_dir), frame=object()) == {"report": str(tmp_path / "report.txt")}
    (record,) = _journalled(tracker)
    assert record.params == {"epochs": 3}  # `frame` is not a scalar: not a parameter
    assert [(i.key, i.type_name) for i in record.inputs] == [("train", "Dataset")]
    assert [(o.key, o.type_name, o.uri) for o in record.outputs] == [
        ("model_dir", "Model", str(model_dir)),
        ("report", "Report", str(tmp_path / "report.txt")),
    ]
    assert all(o.sha256 for o in record.outputs) and record.metrics == {"loss": 0.5}


def test_decorator_refuses_an_input_that_is_not_a_parameter(tracker: track.Tracker) -> None:
    with pytest.raises(TypeError, match="'data' is not a parameter"):

        @track.step("S", tracker=tracker, inputs={"data": "Dataset"})
        def run(path: str) -> None:
            pass


def test_reserved_names_and_bad_metrics_are_refused(tracker: track.Tracker) -> None:
    with track.step("S", tracker=tracker) as step:
        with pytest.raises(ValueError, match=r"recorded by lineagedb\.track itself"):
            step.param("code_version", "x")
        with pytest.raises(ValueError, match="finite"):
            step.metric("auc", float("nan"))


def test_code_version_comes_from_the_callers_repository(tracker: track.Tracker, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    commit = make_repo(repo, {"step.py": "# a pipeline step\n"})
    with track.step("S", tracker=tracker, source_file=repo / "step.py"):
        pass
    (record,) = _journalled(tracker)
    assert record.code is not None
    assert (record.code.commit, record.code.dirty, record.code.source_file) == (commit, False, "step.py")


def test_remote_uri_is_kept_as_given_without_digest(tracker: track.Tracker) -> None:
    with track.step("S", tracker=tracker) as step:
        step.input("gs://bucket/data/part-0", type="Dataset")
        step.input("s3://bucket/known", digest="sha256:" + "ab" * 32)
    (record,) = _journalled(tracker)
    assert [(i.uri, i.local, i.identity) for i in record.inputs] == [
        ("gs://bucket/data/part-0", False, None),
        ("s3://bucket/known", False, "sha256:" + "ab" * 32),
    ]
    assert os.path.isdir(tracker.settings.journal_dir)


def test_a_given_digest_must_be_sha256(tracker: track.Tracker) -> None:
    with track.step("S", tracker=tracker) as step:
        with pytest.raises(ValueError, match="SHA-256"):
            step.input("s3://bucket/x", digest="md5:abc")
        assert step.input("s3://bucket/y", digest="SHA256:" + "AB" * 32) == "s3://bucket/y"  # case-insensitive hex
    (record,) = _journalled(tracker)
    assert record.inputs[0].sha256 == "ab" * 32


def test_sys_exit_zero_is_complete_and_nonzero_is_failed(tracker: track.Tracker) -> None:
    with pytest.raises(SystemExit), track.step("Done", tracker=tracker):
        raise SystemExit(0)
    with pytest.raises(SystemExit), track.step("Broken", tracker=tracker):
        raise SystemExit(2)
    assert sorted((r.step_name, r.status, r.error_type or "") for r in _journalled(tracker)) == [
        ("Broken", "FAILED", "SystemExit"),
        ("Done", "COMPLETE", ""),
    ]


def test_decorator_refuses_generators_and_coroutines(tracker: track.Tracker) -> None:
    with pytest.raises(TypeError, match="plain functions"):

        @track.step("S", tracker=tracker)
        def rows() -> Iterator[int]:
            yield 1

    with pytest.raises(TypeError, match="plain functions"):

        @track.step("S", tracker=tracker)
        async def fetch() -> None:
            pass


def test_decorator_leaves_credential_like_arguments_out(tracker: track.Tracker) -> None:
    @track.step("Fetch", tracker=tracker)
    def fetch(url: str, api_key: str, db_password: str, retries: int = 2) -> None:
        pass

    fetch("https://example.com/data", "k-123", "hunter2")
    (record,) = _journalled(tracker)
    assert record.params == {"url": "https://example.com/data", "retries": 2}
    assert "hunter2" not in (tracker.journal.pending()[0]).read_text()
