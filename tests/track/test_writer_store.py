"""The writer's MLMD data on every backend, through lineagedb.client against a live server
(one server per backend for this module; each test reads back only its own pipeline's
contexts and its own files) and once embedded: one PutExecution per step, types created once
per process, artifacts joined by URI and digest across steps, a replay recognized by its step
id, concurrent writers of one new artifact, a refused step.

Cost: one server per backend (~3-8 s to start each) plus a few seconds of calls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lineagedb import track
from lineagedb.client import MetadataStore
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.track.journal import Journal
from lineagedb.track.settings import resolve
from lineagedb.track.writer import Writer
from tests.backends import scratch_database
from tests.conftest import LiveServer, start_server, stop_server
from tests.pki import make_pki


@pytest.fixture(scope="module")
def server(module_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with scratch_database(module_backend, str(tmp_path_factory.mktemp("db"))) as url:
        started = start_server(url)
        yield started
        stop_server(started)


class CountingStore:
    """The real client, with its calls counted by method name."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return method(*args, **kwargs)

        return counted


def run_context(client: MetadataStore, pipeline: str, run: str) -> mlmd.Context:
    found = client.get_context_by_type_and_name("pipeline_run", f"{pipeline}.{run}")
    assert found is not None
    return found


def test_steps_become_one_put_execution_each_and_join_by_digest(server: LiveServer, tmp_path: Path) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_text("a\n1\n")
    clean = tmp_path / "clean.csv"
    with MetadataStore(server.address) as client:
        counting = CountingStore(client)
        tracker = track.Tracker(resolve(directory=tmp_path / "track"), store=counting)
        for run in ("r1", "r2"):
            with track.step("Prepare", pipeline="join", run=run, tracker=tracker) as prepare:
                prepare.input(raw)
                prepare.output(clean, type="Dataset")
                clean.write_text("a\n1\n")
            with track.step("Train", pipeline="join", run=run, tracker=tracker) as train:
                train.input(clean, type="Examples")  # another type name: still the artifact Prepare wrote
                train.param("epochs", 2)
                train.metric("loss", 0.25)
        assert counting.calls.count("put_execution") == 4
        type_puts = [c for c in counting.calls if c.startswith("put_") and c.endswith("_type")]
        # Prepare, Train; Dataset, Metrics; pipeline, pipeline_run: once each, then cached.
        assert len(type_puts) == 6
        assert prepare.result is not None and train.result is not None

        run_artifacts = client.get_artifacts_by_context(run_context(client, "join", "r2").id)
        assert sorted(a.type for a in run_artifacts) == ["Dataset", "Dataset", "Metrics"]
        (clean_artifact,) = client.get_artifacts_by_uri(str(clean))
        reads = [
            e
            for e in client.get_events_by_artifact_ids([clean_artifact.id])
            if e.type == mlmd.Event.INPUT and e.path.steps[0].key == "examples"
        ]
        assert len(reads) == 2  # both runs' Train read the one artifact
        assert clean_artifact.custom_properties["digest"].string_value.startswith("sha256:")
        pipeline = client.get_context_by_type_and_name("pipeline", "join")
        assert pipeline is not None and len(client.get_executions_by_context(pipeline.id)) == 4

        # The same record again (a replay): recognized, not written twice.
        replayed = Writer(client).write(train.record)
        assert replayed.already_recorded and replayed.execution_id == train.result.execution_id
        assert len(client.get_executions_by_context(pipeline.id)) == 4
        assert not Journal(tmp_path / "track" / "journal").pending()
        tracker.close()


def test_steps_reading_one_new_file_at_once_share_one_artifact(server: LiveServer, tmp_path: Path) -> None:
    """Eight writers (a client each, as eight processes would have) record a step reading the
    same new file at the same moment: every step is stored, with one artifact between them (a
    writer that loses the race to create it reads again and links to the winner's)."""
    shared = tmp_path / "shared.csv"
    shared.write_text("x\n1\n")
    writers = 8
    barrier = threading.Barrier(writers)
    failures: list[BaseException] = []

    def record(index: int) -> None:
        try:
            with MetadataStore(server.address) as client:
                tracker = track.Tracker(resolve(directory=tmp_path / f"track-{index}"), store=client)
                with track.step("Read", pipeline="race", run="r", tracker=tracker) as step:
                    step.input(shared)
                    step.param("worker", index)
                    barrier.wait(timeout=60)  # all eight end (and write) together
                tracker.close()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    with MetadataStore(server.address) as client:
        context = run_context(client, "race", "r")
        assert len(client.get_executions_by_context(context.id)) == writers
        (artifact,) = client.get_artifacts_by_uri(str(shared))
        assert len(client.get_events_by_artifact_ids([artifact.id])) == writers


def test_file_read_and_written_back_unchanged_is_one_artifact(server: LiveServer, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{}")
    with MetadataStore(server.address) as client:
        tracker = track.Tracker(resolve(directory=tmp_path / "track"), store=client)
        with track.step("Refresh", tracker=tracker) as step:
            step.input(state, type="Dataset")
            step.output(state, type="Dataset")  # rewritten with the same content
        assert step.result is not None
        (artifact,) = client.get_artifacts_by_uri(str(state))
        events = client.get_events_by_execution_ids([step.result.execution_id])
        assert sorted((e.type, e.artifact_id) for e in events) == [
            (mlmd.Event.INPUT, artifact.id),
            (mlmd.Event.OUTPUT, artifact.id),
        ]
        # A metrics file of type Metrics and step.metric() both take the role "metrics": two indexes.
        report = tmp_path / "metrics.json"
        with track.step("Evaluate", tracker=tracker) as evaluate:
            evaluate.output(report, type="Metrics")
            report.write_text('{"auc": 0.8}')
            evaluate.metric("auc", 0.8)
        assert evaluate.result is not None
        events = client.get_events_by_execution_ids([evaluate.result.execution_id])
        assert sorted((e.path.steps[0].key, e.path.steps[1].index) for e in events) == [("metrics", 0), ("metrics", 1)]
        tracker.close()


def test_embedded_store_from_a_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINEAGEDB_TARGET", raising=False)
    monkeypatch.setattr(track, "_default", None)  # this test's configure() is undone afterwards
    url = f"sqlite:///{tmp_path / 'embedded.sqlite'}"
    monkeypatch.setenv("LINEAGEDB_DATABASE_URL", url)
    tracker = track.configure(directory=tmp_path / "track")
    try:
        model = tmp_path / "model.bin"
        with track.step("Trainer", pipeline="p", run="r") as step:
            step.output(model, type="Model")
            model.write_bytes(b"weights")
        assert step.result is not None
    finally:
        tracker.close()
    with MetadataStore(url) as store:
        (execution,) = store.get_executions()
        assert execution.type == "Trainer" and execution.last_known_state == mlmd.Execution.COMPLETE
        (artifact,) = store.get_artifacts()
        assert artifact.uri == str(model) and artifact.custom_properties["size_bytes"].int_value == 7


def test_refused_step_raises_and_stays_in_the_journal_unless_the_body_failed(tmp_path: Path) -> None:
    """A server that lets anonymous callers only read refuses the write: a successful body
    gets TrackingError (the step is kept to flush once the cause is fixed); a failing body's
    own exception is the one raised, with a warning for the step."""
    policy = tmp_path / "policy.toml"
    policy.write_text('cluster_admins = ["root"]\ntype_writers = "editor"\n\n[namespaces.public]\nviewer = []\n')
    server = start_server(
        f"sqlite:///{tmp_path / 'db.sqlite'}", "--auth-anonymous", "viewer@public", "--authz-policy", str(policy)
    )
    try:
        tracker = track.Tracker(resolve(target=server.address, directory=tmp_path / "track"))
        with pytest.raises(track.TrackingError, match="refused step Trainer"), track.step("Trainer", tracker=tracker):
            pass
        with pytest.raises(KeyError), track.step("Trainer", tracker=tracker):
            raise KeyError("the body's own error")
        kept = [Journal.read(p) for p in tracker.journal.pending()]
        assert sorted(r.status for r in kept) == ["COMPLETE", "FAILED"]
        tracker.close()
    finally:
        stop_server(server)


def test_mutual_tls_from_pem_files(tmp_path: Path) -> None:
    """A server requiring client certificates: capture connects with the CA and the client key
    pair named by configure(); without the client certificate the handshake fails, which is
    'cannot be reached' (the step waits in the journal)."""
    pki = make_pki(tmp_path, "pipeline-runner", "stranger")
    server = start_server(
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        "--tls-cert",
        str(pki.server_cert),
        "--tls-key",
        str(pki.server_key),
        "--tls-client-ca",
        str(pki.ca),
    )
    try:
        tls = {"tls_ca": str(pki.ca), "tls_cert": str(pki.client_cert), "tls_key": str(pki.client_key)}
        tracker = track.Tracker(resolve(target=server.address, directory=tmp_path / "ok", **tls))
        with track.step("Trainer", tracker=tracker) as step:
            step.param("epochs", 1)
        assert step.result is not None and not tracker.journal.pending()
        tracker.close()

        without_certificate = track.Tracker(
            resolve(target=server.address, directory=tmp_path / "no-cert", tls_ca=str(pki.ca), timeout_s=5)
        )
        with track.step("Trainer", tracker=without_certificate) as refused:
            pass
        assert refused.result is None and len(without_certificate.journal.pending()) == 1
        without_certificate.close()
    finally:
        stop_server(server)
    with pytest.raises(track.TrackConfigurationError, match="both tls_cert and tls_key"):
        resolve(target="x:1", tls_cert=str(pki.client_cert))
