"""A three-script pipeline (prepare, train, evaluate: real scripts in a temporary git
repository, each a subprocess) recording itself into a live server, read back with the
client and the lineage answers. SQLite; the PutExecution path on every backend is in
test_writer_store.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lineagedb.client import MetadataStore
from lineagedb.proto.lineagedb.v1 import lineage_pb2, lineage_pb2_grpc
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from tests.auth.conftest import create_namespaces, make_callers, write_tokens
from tests.conftest import LiveServer, start_server, stop_server
from tests.track.gitrepo import make_repo

SCRIPTS = Path(__file__).parent / "pipeline"
ROOT = Path(__file__).resolve().parents[2]
# Run by the official ml-metadata client (.venv-mlmd): reads what capture wrote the way TFX does,
# by context type and name, and prints it as JSON.
OFFICIAL_READER = """
import json, sys
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb
host, port = sys.argv[1].rsplit(":", 1)
store = metadata_store.MetadataStore(pb.MetadataStoreClientConfig(host=host, port=int(port)))
run = store.get_context_by_type_and_name("pipeline_run", "churn.run-1")
executions = store.get_executions_by_context(run.id)
types = {t.id: t.name for t in store.get_execution_types_by_id([e.type_id for e in executions])}
events = store.get_events_by_execution_ids([e.id for e in executions])
artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
print(json.dumps({
    "steps": sorted(
        [types[e.type_id], pb.Execution.State.Name(e.last_known_state),
         e.custom_properties["code_version"].string_value,
         e.custom_properties["environment"].struct_value["python_version"]]
        for e in executions
    ),
    "events": sorted(
        [types[x.type_id], pb.Event.Type.Name(v.type), v.path.steps[0].key, artifacts[v.artifact_id].uri,
         artifacts[v.artifact_id].custom_properties["digest"].string_value]
        for x in executions for v in events if v.execution_id == x.id
    ),
}))
"""
RAW = "id,value\n" + "".join(f"{i},{i * i}\n" for i in range(20))


@dataclass
class Workspace:
    repo: Path
    data: Path
    track_dir: Path
    commit: str
    database_url: str


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    sources = {name: (SCRIPTS / name).read_text() for name in ("prepare.py", "train.py", "evaluate.py")}
    commit = make_repo(tmp_path / "repo", sources)
    data = tmp_path / "data"  # outside the repository: outputs do not make it dirty
    data.mkdir()
    (data / "raw.csv").write_text(RAW)
    return Workspace(tmp_path / "repo", data, tmp_path / "track", commit, f"sqlite:///{tmp_path / 'lineage.sqlite'}")


@pytest.fixture
def server(workspace: Workspace) -> Iterator[LiveServer]:
    started = start_server(workspace.database_url)
    yield started
    stop_server(started)


def client_python(venv: str) -> str:
    """The interpreter of a `make client-venvs` virtualenv: .venv-client312 has the client alone
    (no SQLAlchemy, no drivers), .venv-client313 is Python 3.13."""
    python = ROOT / venv / "bin" / "python"
    if not python.exists():
        reason = f"{python} is missing; run `make client-venvs`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return str(python)


def run_script(
    ws: Workspace,
    target: str,
    run: str,
    script: str,
    *args: str,
    ok: bool = True,
    python: str = sys.executable,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LINEAGEDB_TARGET": target,
        "LINEAGEDB_PIPELINE": "churn",
        "LINEAGEDB_RUN": run,
        "LINEAGEDB_TRACK_DIR": str(ws.track_dir),
        "LINEAGEDB_TRACK_TIMEOUT": "5",
    }
    env.pop("LINEAGEDB_TOKEN", None)
    env.pop("LINEAGEDB_NAMESPACE", None)
    env.update(extra_env or {})
    done = subprocess.run(
        [python, str(ws.repo / script), *args],
        env=env,
        cwd=ws.repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode == 0) == ok, done.stderr
    return done


def run_pipeline(ws: Workspace, target: str, run: str, learning_rate: str) -> None:
    run_script(ws, target, run, "prepare.py", str(ws.data))
    run_script(ws, target, run, "train.py", str(ws.data), learning_rate)
    run_script(ws, target, run, "evaluate.py", str(ws.data), str(ws.data / f"model-{learning_rate}.txt"))


LINEAGEDB_TRACK = (sys.executable, "-m", "lineagedb", "track")


def flush(ws: Workspace, target: str, command: tuple[str, ...] = LINEAGEDB_TRACK) -> subprocess.CompletedProcess[str]:
    """`lineagedb track flush` (the server's command line), or the client-only `python -m lineagedb.track`."""
    env = {**os.environ, "LINEAGEDB_TRACK_DIR": str(ws.track_dir)}
    env.pop("LINEAGEDB_TOKEN", None)
    return subprocess.run(
        [*command, "flush", "--target", target],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def sha256_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def prop(node: mlmd.Artifact | mlmd.Execution, name: str) -> object:
    value = node.custom_properties[name]
    return getattr(value, value.WhichOneof("value"))


def by_type(store: MetadataStore) -> dict[str, list[mlmd.Execution]]:
    found: dict[str, list[mlmd.Execution]] = {}
    for execution in sorted(store.get_executions(), key=lambda e: e.id):
        found.setdefault(execution.type, []).append(execution)
    return found


def test_pipeline_run_twice_with_one_changed_parameter(workspace: Workspace, server: LiveServer) -> None:
    ws = workspace
    run_pipeline(ws, server.address, "run-1", "0.1")
    run_pipeline(ws, server.address, "run-2", "0.2")
    assert not list((ws.track_dir / "journal").glob("*.step.json"))  # everything reached the store

    with MetadataStore(server.address) as store:
        executions = by_type(store)
        assert {t: len(e) for t, e in executions.items()} == {"Prepare": 2, "Train": 2, "Evaluate": 2}
        everything = [e for group in executions.values() for e in group]
        assert {e.last_known_state for e in everything} == {mlmd.Execution.COMPLETE}
        for execution in everything:
            assert prop(execution, "code_version") == f"git:{ws.commit}"
            assert prop(execution, "git_commit") == ws.commit
            assert prop(execution, "python_version") == ".".join(map(str, sys.version_info[:3]))
            assert str(prop(execution, "requirements")).startswith("sha256:")
            assert prop(execution, "pipeline_name") == "churn"
            assert int(prop(execution, "start_time_ms")) <= int(prop(execution, "end_time_ms"))  # type: ignore[call-overload]
        assert [prop(e, "module_file") for e in executions["Train"]] == ["train.py", "train.py"]
        assert [prop(e, "learning_rate") for e in executions["Train"]] == [0.1, 0.2]
        assert [prop(e, "run_id") for e in executions["Train"]] == ["run-1", "run-2"]

        artifacts = {a.id: a for a in store.get_artifacts()}
        types = Counter(a.type for a in artifacts.values())
        # raw and clean are the same content both times: one artifact each, shared by the runs.
        assert types == Counter({"Dataset": 2, "Model": 2, "ModelEvaluation": 2, "Metrics": 4})
        by_uri = {a.uri: a for a in artifacts.values() if a.uri}
        assert prop(by_uri[str(ws.data / "raw.csv")], "digest") == sha256_of(ws.data / "raw.csv")
        clean = by_uri[str(ws.data / "clean")]
        assert prop(clean, "file_count") == 2
        listing = b"".join(
            name.encode() + b"\0" + hashlib.sha256((ws.data / "clean" / name).read_bytes()).hexdigest().encode() + b"\n"
            for name in ("part-0.csv", "part-1.csv")
        )
        assert prop(clean, "digest") == "sha256:" + hashlib.sha256(listing).hexdigest()
        for rate in ("0.1", "0.2"):
            model = ws.data / f"model-{rate}.txt"
            assert prop(by_uri[str(model)], "digest") == sha256_of(model)

        events = store.get_events_by_execution_ids([e.id for e in everything])
        assert len(events) == 2 * (2 + 3 + 4)
        keys = Counter((e.type, e.path.steps[0].key) for e in events)
        assert keys == Counter(
            {
                (mlmd.Event.INPUT, "dataset"): 2,  # Prepare reads raw
                (mlmd.Event.OUTPUT, "clean"): 2,
                (mlmd.Event.INPUT, "clean"): 2,  # Train (the decorator's argument name)
                (mlmd.Event.OUTPUT, "model"): 2,
                (mlmd.Event.OUTPUT, "metrics"): 4,
                (mlmd.Event.INPUT, "model"): 2,  # Evaluate
                (mlmd.Event.INPUT, "examples"): 2,
                (mlmd.Event.OUTPUT, "modelevaluation"): 2,
            }
        )
        # Train of each run read the artifact Prepare wrote (the same one both times).
        train_inputs = {e.artifact_id for e in events if e.type == mlmd.Event.INPUT and e.path.steps[0].key == "clean"}
        assert train_inputs == {clean.id}

        contexts = {c.name: c for c in store.get_contexts()}
        assert {(c.type, name) for name, c in contexts.items()} == {
            ("pipeline", "churn"),
            ("pipeline_run", "churn.run-1"),
            ("pipeline_run", "churn.run-2"),
        }
        assert len(store.get_executions_by_context(contexts["churn.run-2"].id)) == 3
        assert len(store.get_executions_by_context(contexts["churn"].id)) == 6

        evaluation = by_uri[str(ws.data / "evaluation-model-0.2.json")]
        with server.channel() as channel:
            lineage = lineage_pb2_grpc.LineageServiceStub(channel)
            closure = lineage.Provenance(
                lineage_pb2.ClosureRequest(node=lineage_pb2.NodeRef(artifact_id=evaluation.id)), timeout=30
            )
            diff = lineage.Diff(
                lineage_pb2.DiffRequest(
                    a=lineage_pb2.NodeRef(execution_id=executions["Train"][0].id),
                    b=lineage_pb2.NodeRef(execution_id=executions["Train"][1].id),
                ),
                timeout=30,
            )
    # The evaluation of run 2 reaches back to the raw file Prepare read, through its run's steps.
    assert by_uri[str(ws.data / "raw.csv")].id in {a.id for a in closure.artifacts}
    assert {e.type for e in closure.executions} == {"Prepare", "Train", "Evaluate"}
    assert executions["Train"][1].id in {e.id for e in closure.executions}
    assert executions["Train"][0].id not in {e.id for e in closure.executions}
    # Between the two Train steps the only parameter that changed is the learning rate.
    assert [(c.section, c.key) for c in diff.changes if c.section == "parameter"] == [("parameter", "learning_rate")]
    assert not [c for c in diff.changes if c.section in ("code_version", "environment")]


@pytest.mark.compat
def test_official_client_reads_what_capture_wrote(workspace: Workspace, server: LiveServer) -> None:
    """The official ml-metadata client (1.17.1, protobuf below 5) reads the steps as TFX would:
    the run's context by type and name, its executions, their events, artifacts and properties."""
    ws = workspace
    run_script(ws, server.address, "run-1", "prepare.py", str(ws.data))
    run_script(ws, server.address, "run-1", "train.py", str(ws.data), "0.1")
    python = Path(os.environ.get("LINEAGEDB_MLMD_PYTHON") or ROOT / ".venv-mlmd" / "bin" / "python")
    if not python.exists():
        reason = f"official ml-metadata client not found at {python}; run `make mlmd-venv`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(python), "-c", OFFICIAL_READER, server.address], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout)
    python_version = ".".join(map(str, sys.version_info[:3]))
    code = f"git:{ws.commit}"
    assert read["steps"] == [["Prepare", "COMPLETE", code, python_version], ["Train", "COMPLETE", code, python_version]]
    clean = str(ws.data / "clean")
    model = str(ws.data / "model-0.1.txt")
    raw = str(ws.data / "raw.csv")
    with MetadataStore(server.address) as store:
        (clean_digest,) = [prop(a, "digest") for a in store.get_artifacts_by_uri(clean)]
    assert read["events"] == [
        ["Prepare", "INPUT", "dataset", raw, sha256_of(ws.data / "raw.csv")],
        ["Prepare", "OUTPUT", "clean", clean, clean_digest],
        ["Train", "INPUT", "clean", clean, clean_digest],
        ["Train", "OUTPUT", "metrics", "", read["events"][3][4]],
        ["Train", "OUTPUT", "model", model, sha256_of(ws.data / "model-0.1.txt")],
    ]


def test_failing_step_is_failed_with_its_inputs(workspace: Workspace, server: LiveServer) -> None:
    """On Python 3.13."""
    ws = workspace
    python313 = client_python(".venv-client313")
    run_script(ws, server.address, "run-1", "prepare.py", str(ws.data), python=python313)
    failed = run_script(
        ws, server.address, "run-1", "train.py", str(ws.data), "0.1", "--fail", ok=False, python=python313
    )
    assert "RuntimeError: diverged" in failed.stderr  # the exception reached the caller
    with MetadataStore(server.address) as store:
        (train,) = by_type(store)["Train"]
        assert train.last_known_state == mlmd.Execution.FAILED
        assert prop(train, "error_type") == "RuntimeError"
        assert prop(train, "learning_rate") == 0.1
        assert str(prop(train, "python_version")).startswith("3.13.")
        events = store.get_events_by_execution_ids([train.id])
        (clean,) = store.get_artifacts_by_uri(str(ws.data / "clean"))
        assert [(e.type, e.artifact_id) for e in events] == [(mlmd.Event.INPUT, clean.id)]


def test_outage_mid_run_is_journalled_and_flushed_once(workspace: Workspace) -> None:
    """Train and evaluate run on Python 3.12 with the client alone (no SQLAlchemy, no drivers)."""
    ws = workspace
    python312 = client_python(".venv-client312")
    first = start_server(ws.database_url)
    try:
        run_script(ws, first.address, "run-1", "prepare.py", str(ws.data))
    finally:
        stop_server(first)
    # The server is down: train and evaluate still succeed, their steps wait in the journal.
    trained = run_script(ws, first.address, "run-1", "train.py", str(ws.data), "0.1", python=python312)
    assert "cannot be reached" in trained.stderr and "lineagedb track flush" in trained.stderr
    run_script(
        ws, first.address, "run-1", "evaluate.py", str(ws.data), str(ws.data / "model-0.1.txt"), python=python312
    )
    journal = ws.track_dir / "journal"
    kept = sorted(journal.glob("*.step.json"))
    assert len(kept) == 2
    # Listed by the client-only entry point, where SQLAlchemy is not installed.
    listed = subprocess.run(
        [python312, "-m", "lineagedb.track", "pending", "--dir", str(ws.track_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "pending: 2" in listed.stdout, listed.stderr
    client_only = (python312, "-m", "lineagedb.track")
    unreachable = flush(ws, first.address, client_only)
    assert unreachable.returncode == 1 and "kept: 2" in unreachable.stdout
    saved = {p.name: p.read_bytes() for p in kept}

    second = start_server(ws.database_url)
    try:
        flushed = flush(ws, second.address)
        assert flushed.returncode == 0, flushed.stderr
        assert "sent: 2; already in the store: 0; kept: 0" in flushed.stdout
        assert not list(journal.glob("*.step.json"))
        # A replay after a partial success (the store committed, the answer was lost): put
        # the files back and flush again: recognized by step id, nothing written twice.
        for name, content in saved.items():
            (journal / name).write_bytes(content)
        again = flush(ws, second.address, client_only)
        assert "sent: 0; already in the store: 2; kept: 0" in again.stdout, again.stderr
        with MetadataStore(second.address) as store:
            executions = by_type(store)
            assert {t: len(e) for t, e in executions.items()} == {"Prepare": 1, "Train": 1, "Evaluate": 1}
            (clean,) = store.get_artifacts_by_uri(str(ws.data / "clean"))
            (model,) = store.get_artifacts_by_uri(str(ws.data / "model-0.1.txt"))
            assert str(prop(executions["Train"][0], "python_version")).startswith("3.12.")
            train_events = store.get_events_by_execution_ids([executions["Train"][0].id])
            assert {(e.type, e.artifact_id) for e in train_events} >= {
                (mlmd.Event.INPUT, clean.id),
                (mlmd.Event.OUTPUT, model.id),
            }
            evaluate_events = store.get_events_by_execution_ids([executions["Evaluate"][0].id])
            assert (mlmd.Event.INPUT, model.id) in {(e.type, e.artifact_id) for e in evaluate_events}
            assert len(store.get_artifacts()) == 6  # raw, clean, model, loss metrics, evaluation, auc metrics
    finally:
        stop_server(second)
    shutil.rmtree(ws.track_dir)


AUTH_POLICY = """\
type_writers = "editor"

[namespaces.team-a]
editor = ["alice"]

[namespaces.team-b]
editor = ["bob"]
"""


def test_token_and_namespace_come_from_the_environment(workspace: Workspace, tmp_path: Path) -> None:
    """LINEAGEDB_TOKEN and LINEAGEDB_NAMESPACE reach the server with every call: the step lands
    in team-a, invisible to team-b; a wrong token is refused, the step kept in the journal, and
    the token appears neither in the journal nor in the script's output."""
    ws = workspace
    create_namespaces(ws.database_url, tmp_path, ["team-a", "team-b"])
    callers = make_callers({"alice": (), "bob": ()})
    tokens = write_tokens(tmp_path / "tokens", callers.values())
    policy = tmp_path / "policy.toml"
    policy.write_text(AUTH_POLICY)
    server = start_server(ws.database_url, "--auth-tokens", str(tokens), "--authz-policy", str(policy))
    try:
        alice = {"LINEAGEDB_TOKEN": callers["alice"].token, "LINEAGEDB_NAMESPACE": "team-a"}
        run_script(ws, server.address, "run-1", "prepare.py", str(ws.data), extra_env=alice)
        wrong = {"LINEAGEDB_TOKEN": "not-" + callers["alice"].token, "LINEAGEDB_NAMESPACE": "team-a"}
        refused = run_script(ws, server.address, "run-1", "train.py", str(ws.data), "0.1", ok=False, extra_env=wrong)
        assert "TrackingError" in refused.stderr and callers["alice"].token not in refused.stderr
        (kept,) = (ws.track_dir / "journal").glob("*.step.json")
        assert callers["alice"].token not in kept.read_text()
        with MetadataStore(server.address, token=callers["alice"].token, namespace="team-a") as store:
            assert [e.type for e in store.get_executions()] == ["Prepare"]
        with MetadataStore(server.address, token=callers["bob"].token, namespace="team-b") as store:
            assert store.get_executions() == []
    finally:
        stop_server(server)
