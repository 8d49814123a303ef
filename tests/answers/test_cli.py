"""`lineagedb lineage ...` end to end: a real server holding the TFX-shaped pipeline's two
runs (written through the official client when .venv-mlmd exists), the command run as a
subprocess, its exact output and exit code checked."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lineagedb.ops import lineage_cli
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.security.static_tokens import new_token, tokens_file_line
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import create_engine
from lineagedb.store.unit_of_work import Database
from tests.answers import tfx_pipeline
from tests.answers.conftest import LocalClient
from tests.backends import IN_CI, require_backend, scratch_database
from tests.conftest import LiveServer, start_server, stop_server
from tests.ops.conftest import pki  # noqa: F401  (the session's test PKI)
from tests.pki import Pki

ROOT = Path(__file__).resolve().parents[2]
MLMD_PYTHON = Path(os.environ.get("LINEAGEDB_MLMD_PYTHON") or ROOT / ".venv-mlmd" / "bin" / "python")
WRITE_PIPELINE = Path(__file__).with_name("write_pipeline.py")
CLIENT_ENV = ("LINEAGEDB_TARGET", "LINEAGEDB_TOKEN", "LINEAGEDB_NAMESPACE")

Runs = dict[str, dict[str, int]]

# The ids a fresh store gives the two runs (both writers put the nodes in the same order);
# the expected outputs below are written with them.
RUN_1 = {
    "ExampleGen": 1,
    "pipeline": 1,
    "run": 2,
    "examples": 1,
    "StatisticsGen": 2,
    "statistics": 2,
    "SchemaGen": 3,
    "schema": 3,
    "Transform": 4,
    "transform_graph": 4,
    "transformed_examples": 5,
    "Trainer": 5,
    "model": 6,
    "Evaluator": 6,
    "evaluation": 7,
    "blessing": 8,
    "Pusher": 7,
    "pushed_model": 9,
}
MODEL_UPSTREAM_TABLE = """\
KIND       ID  TYPE               NAME/URI                                                  STATE
artifact   1   Examples           gs://pipelines/taxi/run-1/ExampleGen/examples             LIVE
artifact   2   ExampleStatistics  gs://pipelines/taxi/run-1/StatisticsGen/statistics        LIVE
artifact   3   Schema             gs://pipelines/taxi/run-1/SchemaGen/schema                LIVE
artifact   4   TransformGraph     gs://pipelines/taxi/run-1/Transform/transform_graph       LIVE
artifact   5   Examples           gs://pipelines/taxi/run-1/Transform/transformed_examples  LIVE
artifact   6   Model              gs://pipelines/taxi/run-1/Trainer/model                   LIVE
execution  1   ExampleGen         run-1.ExampleGen                                          COMPLETE
execution  2   StatisticsGen      run-1.StatisticsGen                                       COMPLETE
execution  3   SchemaGen          run-1.SchemaGen                                           COMPLETE
execution  4   Transform          run-1.Transform                                           COMPLETE
execution  5   Trainer            run-1.Trainer                                             COMPLETE
context    1   pipeline           taxi
context    2   pipeline_run       run-1
context    3   node               taxi.ExampleGen
context    4   node               taxi.StatisticsGen
context    5   node               taxi.SchemaGen
context    6   node               taxi.Transform
context    7   node               taxi.Trainer
context    8   node               taxi.Evaluator
context    9   node               taxi.Pusher
depth: 5
truncated: no
"""
# Events among the model's upstream nodes: ExampleGen 1, StatisticsGen 2, SchemaGen 2,
# Transform 4, Trainer 4.
MODEL_UPSTREAM_EVENTS = 13


@dataclass
class Served:
    server: LiveServer
    runs: Runs

    @property
    def target(self) -> str:
        return self.server.address


# ------------------------------------------------------------------------------- helpers


def lineage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m lineagedb lineage ARGS`, with no LINEAGEDB_TARGET/TOKEN/NAMESPACE of ours leaking in."""
    base = {name: value for name, value in os.environ.items() if name not in CLIENT_ENV}
    return subprocess.run(
        [sys.executable, "-m", "lineagedb", "lineage", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, **(env or {})},
        timeout=120,
        check=False,
    )


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    """The stdout of a command that must succeed."""
    done = lineage(*args, env=env)
    assert done.returncode == 0, f"exit {done.returncode}\n--- stderr ---\n{done.stderr}"
    assert done.stderr == ""
    return done.stdout


def write_in_process(url: str) -> Runs:
    engine = create_engine(url)
    prepare_database(engine)
    database = Database(engine)
    try:
        return tfx_pipeline.write_two_runs(mlmd, LocalClient(MetadataStore(database)))
    finally:
        database.dispose()


def write_through_official_client(server: LiveServer) -> Runs:
    host, port = server.address.rsplit(":", 1)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(MLMD_PYTHON), str(WRITE_PIPELINE), host, port],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs: Runs = json.loads(done.stdout.strip().splitlines()[-1])
    return runs


def serve_two_runs(url: str, *server_args: str) -> Served:
    """A server on `url` holding the two runs: written by the official client when it is
    installed (CI has it), else in process before the server starts."""
    if not MLMD_PYTHON.exists():
        if IN_CI:
            pytest.fail(f"official ml-metadata client not found at {MLMD_PYTHON}")
        runs = write_in_process(url)
        return Served(start_server(url, *server_args), runs)
    server = start_server(url, *server_args)
    try:
        return Served(server, write_through_official_client(server))
    except BaseException:
        stop_server(server)
        raise


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ids(nodes: list[dict[str, Any]]) -> list[int]:
    return sorted(int(node["id"]) for node in nodes)


def node_text(ref: dict[str, str]) -> str:
    """{"artifact_id": "2"} (a NodeRef in JSON) -> "artifact:2"."""
    ((field, value),) = ref.items()
    return f"{field.removesuffix('_id')}:{value}"


def aligned_cells(lines: list[str]) -> list[list[str]]:
    """A table's cells (split at runs of 2+ spaces), checking every cell starts in its header's column."""
    starts = [match.start() for match in re.finditer(r"(?:^|(?<=  ))\S", lines[0])]
    rows = []
    for line in lines:
        found = [(match.start(), match.group()) for match in re.finditer(r"\S+(?: \S+)*", line)]
        assert [start for start, _ in found] == starts[: len(found)], f"misaligned: {line!r}"
        rows.append([cell for _, cell in found])
    return rows


def node_lines(dot_text: str) -> list[str]:
    return re.findall(r"^\s+([ae]\d+) \[shape=", dot_text, flags=re.MULTILINE)


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One SQLite store for the read-only tests of this module."""
    directory = tmp_path_factory.mktemp("lineage-cli")
    served = serve_two_runs(f"sqlite:///{directory}/lineage.db")
    yield served
    stop_server(served.server)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Served]:
    """A store of its own, for a test that changes it."""
    served = serve_two_runs(f"sqlite:///{tmp_path}/changed.db")
    yield served
    stop_server(served.server)


def test_the_runs_have_the_ids_the_expected_outputs_are_written_with(served: Served) -> None:
    assert served.runs["run-1"] == RUN_1
    assert served.runs["run-2"]["examples"] == 10 and served.runs["run-2"]["run"] == 10


# -------------------------------------------------------------------- upstream, downstream


def test_upstream_table_lists_the_models_provenance(served: Served) -> None:
    assert ok("upstream", "artifact:6", "--target", served.target) == MODEL_UPSTREAM_TABLE


def test_target_comes_from_the_environment(served: Served) -> None:
    assert ok("upstream", "artifact:6", env={"LINEAGEDB_TARGET": served.target}) == MODEL_UPSTREAM_TABLE


def test_upstream_json_is_the_response_with_proto_field_names(served: Served) -> None:
    answer = json.loads(ok("upstream", "artifact:6", "--format", "json", "--target", served.target))
    assert ids(answer["artifacts"]) == [1, 2, 3, 4, 5, 6]
    assert ids(answer["executions"]) == [1, 2, 3, 4, 5]
    assert ids(answer["contexts"]) == list(range(1, 10))
    assert len(answer["events"]) == MODEL_UPSTREAM_EVENTS
    assert answer["depth"] == 5
    assert "truncated" not in answer and "frontier" not in answer  # complete: default values are left out
    trainer = next(e for e in answer["executions"] if e["id"] == "5")
    assert trainer["last_known_state"] == "COMPLETE"  # proto field names, not lowerCamelCase
    assert trainer["custom_properties"]["train_args"] == {"string_value": '{"num_steps": 100}'}


def test_upstream_cut_short_by_the_node_budget_names_its_frontier(served: Served) -> None:
    out = ok("upstream", "artifact:9", "--max-nodes", "4", "--target", served.target)
    assert out.splitlines()[-3:] == ["depth: 3", "truncated: NODE_BUDGET", "frontier: artifact:6, artifact:8"]
    rows = [line.split()[:2] for line in out.splitlines()[1:] if line.startswith(("artifact", "execution"))]
    assert rows == [["artifact", "6"], ["artifact", "8"], ["artifact", "9"], ["execution", "7"]]


def test_downstream_table_filters_by_type_and_state(served: Served) -> None:
    out = ok(
        "downstream",
        "artifact:1",
        "--type",
        "Model",
        "--type",
        "PushedModel",
        "--state",
        "live",
        "--target",
        served.target,
    )
    assert (
        out
        == """\
KIND       ID  TYPE           NAME/URI                                       STATE
artifact   6   Model          gs://pipelines/taxi/run-1/Trainer/model        LIVE
artifact   9   PushedModel    gs://pipelines/taxi/run-1/Pusher/pushed_model  LIVE
execution  2   StatisticsGen  run-1.StatisticsGen                            COMPLETE
execution  3   SchemaGen      run-1.SchemaGen                                COMPLETE
execution  4   Transform      run-1.Transform                                COMPLETE
execution  5   Trainer        run-1.Trainer                                  COMPLETE
execution  6   Evaluator      run-1.Evaluator                                COMPLETE
execution  7   Pusher         run-1.Pusher                                   COMPLETE
context    1   pipeline       taxi
context    2   pipeline_run   run-1
context    3   node           taxi.ExampleGen
context    4   node           taxi.StatisticsGen
context    5   node           taxi.SchemaGen
context    6   node           taxi.Transform
context    7   node           taxi.Trainer
context    8   node           taxi.Evaluator
context    9   node           taxi.Pusher
affected artifacts: 2
  TYPE         STATE  COUNT
  Model        LIVE   1
  PushedModel  LIVE   1
executions: 6; contexts: 9
runs: run-1
depth: 4
truncated: no
"""
    )
    # No LIVE model was ever marked deleted: asking for DELETED ones finds none.
    none = ok("downstream", "artifact:1", "--type", "Model", "--state", "DELETED", "--target", served.target)
    assert "affected artifacts: 0\n" in none and "\nartifact " not in none


def test_downstream_json_has_a_path_to_each_affected_artifact(served: Served) -> None:
    answer = json.loads(ok("downstream", "artifact:1", "--format", "json", "--target", served.target))
    affected = ids(answer["artifacts"])
    assert affected == [2, 3, 4, 5, 6, 7, 8, 9]
    parent = {json.dumps(step["node"], sort_keys=True): step["reached_from"] for step in answer["tree"]}
    for artifact_id in affected:
        node, hops = {"artifact_id": str(artifact_id)}, 0
        while json.dumps(node, sort_keys=True) in parent:
            node, hops = parent[json.dumps(node, sort_keys=True)], hops + 1
        assert node == {"artifact_id": "1"} and hops >= 2
    assert {(g["type"], g["state"], g["count"]) for g in answer["groups"]} == {
        ("Examples", "LIVE", 1),
        ("ExampleStatistics", "LIVE", 1),
        ("Schema", "LIVE", 1),
        ("TransformGraph", "LIVE", 1),
        ("Model", "LIVE", 1),
        ("ModelEvaluation", "LIVE", 1),
        ("ModelBlessing", "LIVE", 1),
        ("PushedModel", "LIVE", 1),
    }


def test_as_of_in_iso_and_in_epoch_milliseconds_leave_out_the_later_run(served: Served) -> None:
    now = json.loads(ok("upstream", "context:1", "--format", "json", "--target", served.target))
    assert ids(now["artifacts"]) == list(range(1, 19))
    # Just before run-2's first artifact was created: only run-1 existed.
    created = {int(a["id"]): int(a["create_time_since_epoch"]) for a in now["artifacts"]}
    before_run_2 = created[served.runs["run-2"]["examples"]] - 1
    iso = dt.datetime.fromtimestamp(before_run_2 / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")
    by_ms = json.loads(
        ok("upstream", "context:1", "--as-of", str(before_run_2), "--format", "json", "--target", served.target)
    )
    by_iso = json.loads(ok("upstream", "context:1", "--as-of", iso, "--format", "json", "--target", served.target))
    assert ids(by_ms["artifacts"]) == list(range(1, 10))
    assert by_iso == by_ms
    assert int(by_ms["as_of"]["time_ms"]) == before_run_2
    table = ok("upstream", "context:1", "--as-of", iso, "--target", served.target)
    when = iso.replace("+00:00", "Z")
    assert f"\nas of: {when}\n" in table


# ------------------------------------------------------------------------------- pictures


def test_dot_draws_a_node_per_artifact_and_execution_and_an_edge_per_event(served: Served) -> None:
    out = ok("upstream", "artifact:6", "--format", "dot", "--target", served.target)
    assert out.startswith("digraph lineage {\n") and out.endswith("}\n")
    assert sorted(node_lines(out)) == sorted([f"a{i}" for i in range(1, 7)] + [f"e{i}" for i in range(1, 6)])
    assert len(re.findall(r"^\s+[ae]\d+ -> [ae]\d+ ", out, flags=re.MULTILINE)) == MODEL_UPSTREAM_EVENTS
    assert re.search(r"^\s+a6 \[.*penwidth=3\];$", out, flags=re.MULTILINE)  # the node asked about stands out
    assert '  e5 -> a6 [label="model (OUTPUT)"];' in out.splitlines()


def test_mermaid_draws_the_same_graph_and_clusters_by_run(served: Served) -> None:
    out = ok("upstream", "artifact:6", "--format", "mermaid", "--cluster-by", "pipeline_run", "--target", served.target)
    lines = out.splitlines()
    assert lines[0] == "flowchart LR"
    assert lines[1] == '  subgraph c2 ["pipeline_run run-1"]'
    drawn = re.findall(r"^\s+([ae]\d+)[(\[]", out, flags=re.MULTILINE)
    assert sorted(drawn) == sorted([f"a{i}" for i in range(1, 7)] + [f"e{i}" for i in range(1, 6)])
    assert len([line for line in lines if "-->" in line]) == MODEL_UPSTREAM_EVENTS


def test_downstream_dot_draws_the_affected_nodes(served: Served) -> None:
    out = ok("downstream", "artifact:6", "--format", "dot", "--target", served.target)
    # Evaluator and Pusher, and what they wrote; the model itself is not "affected".
    assert sorted(node_lines(out)) == ["a7", "a8", "a9", "e6", "e7"]


def test_html_page_is_self_contained(served: Served, tmp_path: Path) -> None:
    page_path = tmp_path / "upstream.html"
    out = ok("upstream", "artifact:6", "--format", "html", "--output", str(page_path), "--target", served.target)
    assert out == f"wrote {page_path}\n"
    page = page_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<title>Provenance of artifact:6</title>" in page
    assert page.count("<svg ") == 1 and page.count('class="node artifact"') == 6
    assert page.count('class="node execution"') == 5
    assert "<script" not in page and "<link" not in page
    # No resource from anywhere: the only URL is the SVG namespace.
    assert re.findall(r"https?://[^\s\"'<>]+", page) == ["http://www.w3.org/2000/svg"]
    assert "<td>gs://pipelines/taxi/run-1/Trainer/model</td>" in page and "<li>depth: 5</li>" in page


# ------------------------------------------------------------------- completeness and diff


def test_completeness_table_shows_each_gap_and_the_score(served: Served) -> None:
    answer = json.loads(ok("completeness", "context:2", "--format", "json", "--target", served.target))
    table = ok("completeness", "context:2", "--target", served.target).splitlines()
    gaps = answer["gaps"]
    assert table[0].split() == ["GAP", "NODE", "MESSAGE"]
    rows = [tuple(line.split(None, 2)) for line in table[1:-1]]  # kind, node, message
    expected = [(gap["kind"], node_text(gap["node"]), gap["message"]) for gap in gaps]
    assert rows == expected
    assert table[-1] == f"score: {answer['score']:.2f} ({answer['checks']} checks, {len(gaps)} gaps)"
    # Known holes of the TFX-shaped run: the statistics have no digest, StatisticsGen no code version.
    assert ("artifact_without_digest", "artifact:2") in {(kind, node) for kind, node, _ in rows}
    assert ("execution_without_code_version", "execution:2") in {(kind, node) for kind, node, _ in rows}
    # The Trainer records module_path (a code version) and train_args (a parameter).
    assert not [row for row in rows if row[1] == "execution:5"]


# ------------------------------------------------------------------------------- manifest


def test_manifest_round_trip_and_verify(served: Served, tmp_path: Path) -> None:
    printed = ok("manifest", "artifact:6", "--target", served.target)
    path = tmp_path / "model.manifest.json"
    wrote = ok("manifest", "artifact:6", "--output", str(path), "--target", served.target)
    content = path.read_bytes()
    sha = hashlib.sha256(content).hexdigest()
    assert wrote == f"wrote {path} (sha256 {sha})\n"
    assert printed == content.decode("utf-8") + "\n"
    manifest = json.loads(content)
    assert manifest["target"]["id"] == 6 and manifest["target"]["type"] == "Model"
    assert [e["type"] for e in manifest["executions"]] == [
        "ExampleGen",
        "StatisticsGen",
        "SchemaGen",
        "Transform",
        "Trainer",
    ]
    verified = ok("manifest", "verify", str(path), "--target", served.target)
    assert verified == f"unchanged: the store still gives artifact:6 this manifest (sha256 {sha})\n"


def test_manifest_verify_names_the_artifact_whose_uri_changed(fresh: Served, tmp_path: Path) -> None:
    path = tmp_path / "model.manifest.json"
    ok("manifest", "artifact:6", "--output", str(path), "--target", fresh.target)
    with fresh.server.channel() as channel:
        stub = svc_grpc.MetadataStoreServiceStub(channel)
        examples = stub.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=[1]), timeout=10).artifacts[0]
        examples.uri = "gs://raw/taxi/overwritten"
        stub.PutArtifacts(svc.PutArtifactsRequest(artifacts=[examples]), timeout=10)
    done = lineage("manifest", "verify", str(path), "--target", fresh.target)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"changed: 1 change since {path} was written for artifact:6"
    assert len(lines) == 2 and lines[1].startswith("  artifact 1 ")
    assert "uri changed from 'gs://pipelines/taxi/run-1/ExampleGen/examples' to 'gs://raw/taxi/overwritten'" in lines[1]


def test_manifest_verify_refuses_a_file_that_is_not_a_manifest(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"hello": "world"}')
    done = lineage("manifest", "verify", str(path), "--target", served.target)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: {path} does not look like a LineageDB manifest (no target artifact id)\n"
    path.write_text("not json")
    done = lineage("manifest", "verify", str(path), "--target", served.target)
    assert done.returncode == 2 and done.stderr.startswith(f"error: {path} is not JSON: ")


# --------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("upstream", "model:6"),
            "argument NODE: a node is artifact:ID, execution:ID or context:ID with a positive ID, not 'model:6'",
        ),
        (
            ("downstream", "artifact:0"),
            "argument NODE: a node is artifact:ID, execution:ID or context:ID with a positive ID, not 'artifact:0'",
        ),
        (
            ("manifest", "execution:5"),
            "argument artifact:ID: this command takes an artifact (artifact:ID), not 'execution:5'",
        ),
        (("manifest", "verify"), "manifest verify takes one FILE"),
        (("report", "context:2"), "this command takes an artifact (artifact:ID), not 'context:2'"),
        (("upstream", "artifact:6", "--as-of", "yesterday"), "--as-of is an ISO-8601 date or time"),
        (("downstream", "artifact:6", "--state", "ALIVE"), "an artifact state is one of PENDING, LIVE,"),
        (("diff", "execution:1"), "the following arguments are required: B"),
        (("upstream", "artifact:6", "--format", "png"), "argument --format: invalid choice: 'png'"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(args: tuple[str, ...], message: str) -> None:
    done = lineage(*args, "--target", "127.0.0.1:1")
    assert (done.returncode, done.stdout) == (2, "")
    assert message in done.stderr.splitlines()[-1]


def test_server_errors_print_status_and_details(served: Served) -> None:
    done = lineage("upstream", "artifact:999", "--target", served.target)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "error: NOT_FOUND: artifact 999 does not exist\n")
    done = lineage("upstream", "artifact:6", "--max-nodes", "2000000", "--target", served.target)
    assert (done.returncode, done.stderr) == (
        2,
        "error: INVALID_ARGUMENT: max_nodes must be between 1 and 1000000, got 2000000\n",
    )


def test_an_unreachable_server_is_one_line_and_exit_3() -> None:
    port = free_port()
    done = lineage("upstream", "artifact:6", "--target", f"127.0.0.1:{port}", "--timeout", "5")
    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr.startswith(f"error: cannot reach 127.0.0.1:{port}: ")
    assert done.stderr.count("\n") == 1


# ---------------------------------------------------------------------- tokens, namespaces


def test_bearer_token_and_namespace_are_sent_and_a_wrong_token_is_never_shown(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/auth.db"
    # The runs go in through an open server; the same store is then served with tokens.
    open_server = serve_two_runs(url)
    stop_server(open_server.server)
    reader = new_token()
    tokens = tmp_path / "tokens"
    tokens.write_text(tokens_file_line(reader, "reader", ()) + "\n")
    policy = tmp_path / "policy.toml"
    policy.write_text('[namespaces.default]\nviewer = ["reader"]\n')
    server = start_server(url, "--auth-tokens", str(tokens), "--authz-policy", str(policy))
    try:
        target = server.address
        assert ok("upstream", "artifact:6", "--target", target, env={"LINEAGEDB_TOKEN": reader}) == (
            MODEL_UPSTREAM_TABLE
        )
        token_file = tmp_path / "reader.token"
        token_file.write_text(reader + "\n")
        assert ok("upstream", "artifact:6", "--token-file", str(token_file), "--target", target) == (
            MODEL_UPSTREAM_TABLE
        )

        missing = lineage("upstream", "artifact:6", "--target", target)
        assert missing.returncode == 2 and missing.stderr.startswith("error: UNAUTHENTICATED: ")

        wrong = new_token()
        done = lineage("upstream", "artifact:6", "--token", wrong, "--target", target)
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr.startswith("error: UNAUTHENTICATED: ") and done.stderr.count("\n") == 1
        assert wrong not in done.stderr and wrong[4:16] not in done.stderr

        # The namespace travels as x-lineagedb-namespace: the reader may not act in another.
        denied = lineage(
            "upstream", "artifact:6", "--namespace", "team-b", "--target", target, env={"LINEAGEDB_TOKEN": reader}
        )
        assert denied.returncode == 2 and denied.stderr.startswith("error: PERMISSION_DENIED: "), denied.stderr
        assert "team-b" in denied.stderr and reader not in denied.stderr
    finally:
        stop_server(server)


def test_a_token_no_header_can_carry_is_refused_without_being_echoed(served: Served) -> None:
    done = lineage("upstream", "artifact:6", "--token", "secret part\nmore", "--target", served.target)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: the bearer token is empty or has characters a header cannot carry\n"


# -------------------------------------------------------------------------------------- TLS


def test_tls_and_mtls(pki: Pki, tmp_path: Path) -> None:  # noqa: F811
    url = f"sqlite:///{tmp_path}/tls.db"
    runs = write_in_process(url)
    assert runs["run-1"] == RUN_1
    server = start_server(
        url,
        "--tls-cert",
        str(pki.server_cert),
        "--tls-key",
        str(pki.server_key),
        "--tls-client-ca",
        str(pki.ca),
    )
    try:
        target = "localhost:" + server.address.rsplit(":", 1)[1]
        client = ("--tls-ca", str(pki.ca), "--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key))
        assert ok("upstream", "artifact:6", *client, "--target", target) == MODEL_UPSTREAM_TABLE
        half = lineage(
            "upstream", "artifact:6", "--tls-ca", str(pki.ca), "--tls-cert", str(pki.client_cert), "--target", target
        )
        assert (half.returncode, half.stderr) == (2, "error: mTLS needs both --tls-cert and --tls-key\n")
        plaintext = lineage("upstream", "artifact:6", "--target", target, "--timeout", "5")
        assert plaintext.returncode == 3 and plaintext.stderr.startswith(f"error: cannot reach {target}: ")
    finally:
        stop_server(server)


# ------------------------------------------------------------------------- other backends


@pytest.mark.parametrize("backend_name", ["postgresql", "mysql"])
def test_upstream_and_downstream_on_a_server_database(backend_name: str, tmp_path: Path) -> None:
    require_backend(backend_name)
    with scratch_database(backend_name, str(tmp_path)) as url:
        served = serve_two_runs(url)
        try:
            assert served.runs["run-1"] == RUN_1
            assert ok("upstream", "artifact:6", "--target", served.target) == MODEL_UPSTREAM_TABLE
            answer = json.loads(ok("downstream", "artifact:1", "--format", "json", "--target", served.target))
            assert ids(answer["artifacts"]) == [2, 3, 4, 5, 6, 7, 8, 9]
            dot = ok("upstream", "artifact:6", "--format", "dot", "--target", served.target)
            assert len(node_lines(dot)) == 11
        finally:
            stop_server(served.server)


def test_diff_of_the_two_trainers_shows_the_parameter_and_the_inputs(served: Served) -> None:
    out = ok("diff", "execution:5", "execution:12", "--target", served.target)
    assert aligned_cells(out.splitlines()[:-1]) == [
        ["SECTION", "KEY", "CHANGE", "BEFORE", "AFTER", "FIELDS"],
        [
            "input",
            "examples",
            "CHANGED",
            "id=5 uri=gs://pipelines/taxi/run-1/Transform/transformed_examples",
            "id=14 uri=gs://pipelines/taxi/run-2/Transform/transformed_examples",
            "uri",
        ],
        [
            "input",
            "schema",
            "CHANGED",
            "id=3 uri=gs://pipelines/taxi/run-1/SchemaGen/schema",
            "id=12 uri=gs://pipelines/taxi/run-2/SchemaGen/schema",
            "uri",
        ],
        [
            "input",
            "transform_graph",
            "CHANGED",
            "id=4 uri=gs://pipelines/taxi/run-1/Transform/transform_graph",
            "id=13 uri=gs://pipelines/taxi/run-2/Transform/transform_graph",
            "uri",
        ],
        [
            "output",
            "model",
            "CHANGED",
            "id=6 uri=gs://pipelines/taxi/run-1/Trainer/model",
            "id=15 uri=gs://pipelines/taxi/run-2/Trainer/model",
            "uri",
        ],
        ["parameter", "train_args", "CHANGED", '{"num_steps": 100}', '{"num_steps": 200}'],
    ]
    assert out.splitlines()[-1] == "changes: 5"


def test_diff_of_the_two_runs_with_their_upstream(served: Served) -> None:
    args = ("diff", "context:2", "context:10", "--upstream", "--target", served.target)
    answer = json.loads(ok(*args, "--format", "json"))
    assert (answer["upstream_executions_compared"], answer["upstream_artifacts_compared"]) == (7, 9)
    changes = {(c["section"], c["key"]): c for c in answer["changes"]}
    assert changes[("parameter", "Trainer/train_args")]["before"] == json.dumps('{"num_steps": 100}')
    assert changes[("parameter", "Trainer/train_args")]["after"] == json.dumps('{"num_steps": 200}')
    assert changes[("output", "ExampleGen/examples")]["fields"] == ["uri", "digest"]
    table = ok(*args).splitlines()
    assert table[-2:] == [f"changes: {len(answer['changes'])}", "upstream compared: 7 executions, 9 artifacts"]
    rows = [line.split()[:3] for line in table[1:-2]]
    assert rows == [[c["section"], c["key"], c["kind"]] for c in answer["changes"]]
    train_args = next(line for line in table if line.startswith("parameter") and "Trainer/train_args" in line)
    assert train_args.split() == [
        "parameter",
        "Trainer/train_args",
        "CHANGED",
        '{"num_steps":',
        "100}",
        '{"num_steps":',
        "200}",
    ]


# --------------------------------------------------------------------------------- report


def test_report_as_json_and_as_html(served: Served, tmp_path: Path) -> None:
    report = json.loads(ok("report", "artifact:9", "--target", served.target))
    assert (report["subject"]["id"], report["subject"]["type"]) == (9, "PushedModel")
    page_path = tmp_path / "report.html"
    out = ok("report", "artifact:9", "--format", "html", "--output", str(page_path), "--target", served.target)
    page = page_path.read_bytes()
    assert out == f"wrote {page_path} ({len(page)} bytes, html)\n"
    assert page.startswith(b"<!DOCTYPE html>")
    printed = ok("report", "artifact:9", "--format", "html", "--target", served.target)
    assert printed.startswith("<!DOCTYPE html>") and printed.endswith("</html>\n")  # stamped with its own time


@pytest.mark.skipif(
    importlib.util.find_spec("lineagedb.ops.report_pdf") is None, reason="no PDF renderer in this tree yet"
)
def test_report_as_pdf(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    out = ok("report", "artifact:9", "--format", "pdf", "--output", str(path), "--target", served.target)
    content = path.read_bytes()
    assert out == f"wrote {path} ({len(content)} bytes, pdf)\n"
    assert content.startswith(b"%PDF-")


def test_pdf_without_its_renderer_or_playwright_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lineagedb.ops.report_pdf", None)
    with pytest.raises(lineage_cli.CliError) as missing_module:
        lineage_cli._pdf("<html></html>")
    assert missing_module.value.message.startswith("error: this LineageDB cannot write PDFs: ")

    def no_playwright(page: str) -> bytes:
        raise ModuleNotFoundError("No module named 'playwright'", name="playwright")

    monkeypatch.setitem(sys.modules, "lineagedb.ops.report_pdf", SimpleNamespace(pdf_from_html=no_playwright))
    with pytest.raises(lineage_cli.CliError) as missing_playwright:
        lineage_cli._pdf("<html></html>")
    assert missing_playwright.value.message == f"error: {lineage_cli.PDF_NEEDS}: No module named 'playwright'"
    assert missing_playwright.value.code == 2


def test_pdf_without_chromium_says_so(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    done = lineage(
        "report",
        "artifact:9",
        "--format",
        "pdf",
        "--output",
        str(path),
        "--target",
        served.target,
        env={"LINEAGEDB_CHROMIUM": str(tmp_path / "no-such-chromium")},
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("error: a PDF report needs Chromium: ") and done.stderr.count("\n") == 1
    assert not path.exists()


# ------------------------------------------------------------------- untrusted metadata


def test_the_graph_page_escapes_metadata() -> None:
    page = lineage_cli.graph_page(
        "Provenance of <artifact>",
        "<svg></svg>",
        [("artifact", "1", "<b>Type</b>", "<script>alert(1)</script>", "LIVE")],
        ["runs: a&b"],
    )
    assert "<script>" not in page and "<b>" not in page
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page
    assert "<title>Provenance of &lt;artifact&gt;</title>" in page and "<li>runs: a&amp;b</li>" in page


def test_tables_show_no_terminal_control_characters() -> None:
    lines = lineage_cli.table(("KIND", "NAME"), [("artifact", "evil\x1b[2Jname\nnext")])
    assert lines == ["KIND      NAME", "artifact  evil?[2Jname?next"]
