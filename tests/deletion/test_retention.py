"""Retention policies: what a plan deletes and keeps, applying exactly a reviewed plan,
and a kill -9 in the middle of an apply that a second apply finishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lineagedb import errors
from lineagedb.ops import retention as retention_ops
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.deletion import BATCH, Deletion
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.service.retention import DAY_MS, Policy, Retention, Rule, read_plan
from lineagedb.store.unit_of_work import Database
from tests.answers import tfx_pipeline
from tests.answers.conftest import LocalClient
from tests.answers.tfx_pipeline import ARTIFACTS, STEPS
from tests.deletion.consistency import orphans

ROOT = Path(__file__).resolve().parents[2]
RUNS = Rule("old runs", "type = 'pipeline_run'", older_than_days=5)


@pytest.fixture
def aged_runs(client: LocalClient, clock: Any) -> tuple[dict[str, int], dict[str, int], int]:
    """run-1 ten days before run-2; 'now' is a day after run-2."""
    first = tfx_pipeline.write_run(mlmd, client, "run-1")
    clock.now += 10 * DAY_MS
    second = tfx_pipeline.write_run(mlmd, client, "run-2", num_steps=200)
    return first, second, clock.now + DAY_MS


def planned(plan: Any) -> set[tuple[str, int]]:
    return {(kind.value, node_id) for kind, node_id in plan.order}


def of_run(run: dict[str, int], artifacts: tuple[str, ...] = ARTIFACTS, steps: tuple[str, ...] = STEPS) -> set[Any]:
    return {("artifact", run[k]) for k in artifacts} | {("execution", run[s]) for s in steps}


def test_an_old_run_goes_with_everything_only_it_holds(
    deletion: Deletion, aged_runs: tuple[dict[str, int], dict[str, int], int]
) -> None:
    first, _, now = aged_runs
    plan = Retention(deletion).plan(Policy((RUNS,)), now, {})
    # The shared pipeline context ("taxi", type pipeline) is not a run: it keeps nothing back.
    assert planned(plan) == of_run(first) | {("context", first["run"])}
    assert plan.types["artifact/Examples"] == 2 and plan.types["context/pipeline_run"] == 1
    assert plan.kept_protected == 0 and plan.kept_dependents == 0


def test_protected_artifacts_keep_their_whole_upstream(
    deletion: Deletion, aged_runs: tuple[dict[str, int], dict[str, int], int]
) -> None:
    first, _, now = aged_runs
    policy = Policy((RUNS,), ("type = 'PushedModel' AND state = LIVE",))
    plan = Retention(deletion).plan(policy, now, {})
    # Only the evaluation is not upstream of the pushed model; the run context goes too.
    assert planned(plan) == {("artifact", first["evaluation"]), ("context", first["run"])}
    assert plan.kept_protected == 15


def test_a_node_a_surviving_run_uses_is_kept_with_its_upstream(
    deletion: Deletion, store: MetadataStore, aged_runs: tuple[dict[str, int], dict[str, int], int]
) -> None:
    first, second, now = aged_runs
    # run-2's Trainer also read run-1's schema.
    store.put_events(
        svc.PutEventsRequest(
            events=[mlmd.Event(artifact_id=first["schema"], execution_id=second["Trainer"], type=mlmd.Event.INPUT)]
        )
    )
    plan = Retention(deletion).plan(Policy((RUNS,)), now, {})
    kept = of_run(first, ("schema", "statistics", "examples"), ("SchemaGen", "StatisticsGen", "ExampleGen"))
    assert planned(plan) == (of_run(first) - kept) | {("context", first["run"])}
    assert plan.kept_dependents == len(kept)


def test_the_cli_plans_and_applies_exactly_the_reviewed_plan(
    database_url: str, database: Database, aged_runs: tuple[dict[str, int], dict[str, int], int], tmp_path: Path
) -> None:
    first, second, _ = aged_runs
    policy = tmp_path / "policy.toml"
    # 'now' is the wall clock, decades after the fake clock's runs: keep everything younger than
    # run-2 by giving it a marker property, protected.
    policy.write_text(
        '[[rule]]\nname = "old runs"\ncontexts = "type = \'pipeline_run\'"\nolder_than_days = 1\n'
        '[protect]\nwith_properties = ["keep"]\n'
    )
    store = MetadataStore(database)
    marked = mlmd.Artifact(id=second["pushed_model"])
    marked.custom_properties["keep"].bool_value = True
    request = svc.PutArtifactsRequest(artifacts=[marked])
    request.update_mask.paths.append("custom_properties.keep")
    store.put_artifacts(request)
    plan_file = tmp_path / "plan.json"
    shown = _cli("retention", "plan", "--policy", str(policy), "--output", str(plan_file), "--database", database_url)
    document = json.loads(plan_file.read_text())
    identifier, order = read_plan(document)
    assert f"plan {identifier}: {len(order)} nodes to delete" in shown
    assert "\n         2  artifact/Examples\n" in shown
    # run-2's pushed model and its upstream are kept; the rest of both runs goes.
    expected = (of_run(first) | of_run(second, ("evaluation",), ())) | {
        ("context", first["run"]),
        ("context", second["run"]),
    }
    assert {(kind.value, node_id) for kind, node_id in order} == expected
    # An edited plan is refused.
    tampered = dict(document, order=document["order"][1:])
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    with pytest.raises(errors.InvalidArgumentError, match="changed after it was made"):
        read_plan(tampered)
    refused = _cli(
        "retention", "apply", "--plan", str(tmp_path / "tampered.json"), "--database", database_url, check=False
    )
    assert "changed after it was made" in refused
    applied = _cli("retention", "apply", "--plan", str(plan_file), "--database", database_url)
    assert applied.splitlines()[-1] == "done"
    remaining = store.get_artifacts(svc.GetArtifactsRequest()).artifacts
    assert sorted(a.id for a in remaining) == sorted(second[k] for k in ARTIFACTS if k != "evaluation")
    assert orphans(database.engine) == {}


def _cli(*args: str, check: bool = True) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "lineagedb", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    if check:
        assert completed.returncode == 0, completed.stderr
    return completed.stdout + completed.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "needs at least one \\[\\[rule\\]\\]"),
        ('[[rule]]\ncontexts = ""\nolder_than_days = 1\n', "needs contexts"),
        ("[[rule]]\ncontexts = \"type = 'r'\"\nolder_than_days = -1\n", "older_than_days, a number >= 0"),
        ("[[rule]]\ncontexts = \"type = 'r'\"\nolder_than_days = 1\nextra = 2\n", "takes name, contexts"),
        (
            '[[rule]]\ncontexts = "type = \'r\'"\nolder_than_days = 1\n[protect]\nmodels = ["x"]\n',
            "\\[protect\\] takes",
        ),
        ("[[rule]\n", "cannot read the retention policy"),
        ("[keep]\nx = 1\n", "unknown sections \\['keep'\\]"),
    ],
)
def test_a_bad_policy_says_what_to_fix(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(content)
    with pytest.raises(errors.InvalidArgumentError, match=message):
        retention_ops.load_policy(str(path))


def test_a_kill_in_the_middle_of_apply_leaves_a_consistent_store_that_a_second_apply_finishes(
    database_url: str, database: Database, store: MetadataStore, tmp_path: Path
) -> None:
    run_type = store.put_context_type(
        svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="pipeline_run"))
    ).type_id
    step = store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="Step"))).type_id
    blob = store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Blob"))).type_id
    for index in range(1500):  # 1,500 runs of 4 nodes each: many batches
        request = svc.PutExecutionRequest(
            execution=mlmd.Execution(type_id=step), contexts=[mlmd.Context(type_id=run_type, name=f"run-{index}")]
        )
        for event_type in (mlmd.Event.INPUT, mlmd.Event.OUTPUT):
            request.artifact_event_pairs.add(artifact=mlmd.Artifact(type_id=blob), event=mlmd.Event(type=event_type))
        store.put_execution(request)
    policy = tmp_path / "policy.toml"
    policy.write_text("[[rule]]\ncontexts = \"type = 'pipeline_run'\"\nolder_than_days = 0\n")
    plan_file = tmp_path / "plan.json"
    _cli("retention", "plan", "--policy", str(policy), "--output", str(plan_file), "--database", database_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "lineagedb", "retention", "apply", "--plan", str(plan_file), "--database", database_url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith("applying plan")
    first_batch = process.stdout.readline()
    assert first_batch.strip() == f"{BATCH}/6000"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert orphans(database.engine) == {}
    left = len(store.get_artifacts(svc.GetArtifactsRequest()).artifacts)
    assert 0 < left < 3000
    finished = _cli("retention", "apply", "--plan", str(plan_file), "--database", database_url)
    assert finished.splitlines()[-1] == "done"
    assert not store.get_artifacts(svc.GetArtifactsRequest()).artifacts
    assert not store.get_contexts(svc.GetContextsRequest()).contexts
    assert orphans(database.engine) == {}
