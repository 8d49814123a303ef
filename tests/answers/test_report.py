"""Report: the JSON of a TFX-shaped model validated against report_schema.json with its exact
datasets, evaluations and steps; who recorded each step from the audit log; as_of; the
HTML page with every metadata value escaped; bad requests."""

from __future__ import annotations

import html.parser
import json
from collections import Counter
from typing import Any

import jsonschema
import pytest

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.answers import graph, report
from lineagedb.service.answers.service import LineageAnswers
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.unit_of_work import Database
from tests.answers import tfx_pipeline
from tests.answers.conftest import LocalClient
from tests.audit.conftest import as_call, records

Runs = dict[str, dict[str, int]]
SCHEMA = json.loads(report.SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
HOSTILE = "<img src=x onerror=alert(1)>"
MODULE = "taxi_utils@gs://bucket/_wheels/taxi-0.1-abc123.whl"


def report_of(answers: LineageAnswers, artifact_id: int, **options: Any) -> dict[str, Any]:
    response = answers.report(pb.ReportRequest(artifact_id=artifact_id, **options))
    assert response.content_type == "application/json"
    document: dict[str, Any] = json.loads(response.content)
    VALIDATOR.validate(document)
    # Canonical: the bytes are the one JSON text of the document.
    assert response.content == report.canonical(document).encode("utf-8")
    return document


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_json_report_of_a_tfx_model(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    document = report_of(answers, run["model"])
    assert document["report_version"] == 1
    subject = document["subject"]
    assert (subject["id"], subject["type"], subject["uri"], subject["state"]) == (
        run["model"],
        "Model",
        "gs://pipelines/taxi/run-1/Trainer/model",
        "LIVE",
    )
    assert (subject["name"], subject["digest"], subject["version"], subject["recorded"]) == (None, None, None, None)
    assert document["as_of"] is None
    assert document["audit"] == {"enabled": False, "note": report.AUDIT_OFF}

    provenance = document["provenance"]
    assert (provenance["artifacts"], provenance["executions"], provenance["events"]) == (6, 5, 13)
    # Levels by shortest chains: Trainer; its inputs; SchemaGen and Transform; statistics and the
    # raw Examples; StatisticsGen and ExampleGen.
    assert (provenance["depth"], provenance["truncated"], provenance["frontier"]) == (5, None, [])
    # Every step's node context: the model is attributed to the Evaluator's and the Pusher's too
    # (an execution's contexts take the artifacts it reads as well as those it writes).
    assert [(c["type"], c["name"]) for c in provenance["contexts"]] == [
        ("pipeline", "taxi"),
        ("pipeline_run", "run-1"),
        *[("node", f"taxi.{step}") for step in tfx_pipeline_steps()],
    ]
    # Downstream: the model, the evaluation, the blessing and the pushed model.
    assert (document["downstream"]["artifacts"], document["downstream"]["truncated"]) == (4, None)

    # Datasets: the raw Examples (digest from TFX's input_fingerprint) and the transformed ones.
    datasets = [
        (d["id"], d["type"], d["relation"], d["digest"], d["version"], d["produced_by"]) for d in document["datasets"]
    ]
    assert datasets == [
        (
            run["examples"],
            "Examples",
            "upstream",
            {"property": "input_fingerprint", "value": "sha256:1111"},
            {"property": "version", "value": 1},
            [run["ExampleGen"]],
        ),
        (
            run["transformed_examples"],
            "Examples",
            "upstream",
            None,
            {"property": "version", "value": 1},
            [run["Transform"]],
        ),
    ]
    assert document["datasets"][0]["properties"] == {"span": 0, "version": 1, "input_fingerprint": "sha256:1111"}

    # Evaluations: the Evaluator's outputs, downstream of the model.
    evaluations = [(e["id"], e["type"], e["relation"], e["path"], e["produced_by"]) for e in document["evaluations"]]
    via = [f"artifact:{run['model']}", f"execution:{run['Evaluator']}"]
    assert evaluations == [
        (
            run["evaluation"],
            "ModelEvaluation",
            "downstream",
            [*via, f"artifact:{run['evaluation']}"],
            [run["Evaluator"]],
        ),
        (run["blessing"], "ModelBlessing", "downstream", [*via, f"artifact:{run['blessing']}"], [run["Evaluator"]]),
    ]
    assert document["evaluations"][1]["properties"] == {"blessed": 1}

    # Steps in topological order, the Evaluator last (the way to the evaluations).
    steps = document["steps"]
    assert [(s["type"], s["name"], s["state"], s["part"]) for s in steps] == [
        ("ExampleGen", "run-1.ExampleGen", "COMPLETE", "provenance"),
        ("StatisticsGen", "run-1.StatisticsGen", "COMPLETE", "provenance"),
        ("SchemaGen", "run-1.SchemaGen", "COMPLETE", "provenance"),
        ("Transform", "run-1.Transform", "COMPLETE", "provenance"),
        ("Trainer", "run-1.Trainer", "COMPLETE", "provenance"),
        ("Evaluator", "run-1.Evaluator", "COMPLETE", "evaluation"),
    ]
    trainer = steps[4]
    assert trainer["parameters"] == {"train_args": '{"num_steps": 100}'}
    assert trainer["code_version"] == {"module_path": MODULE}
    assert trainer["environment"] == {"tfx_version": "1.16.0"}
    assert trainer["inputs"] == [
        {"role": "examples", "artifact_id": run["transformed_examples"]},
        {"role": "schema", "artifact_id": run["schema"]},
        {"role": "transform_graph", "artifact_id": run["transform_graph"]},
    ]
    assert trainer["outputs"] == [{"role": "model", "artifact_id": run["model"]}]
    assert len(trainer["contexts"]) == 3 and trainer["recorded"] is None
    assert steps[0]["parameters"] == {"input_base": "gs://raw/taxi/2026-11"}
    # The Evaluator read the raw Examples too: the data the model was evaluated on.
    assert steps[5]["inputs"] == [
        {"role": "examples", "artifact_id": run["examples"]},
        {"role": "model", "artifact_id": run["model"]},
    ]
    assert steps[5]["outputs"] == [
        {"role": "blessing", "artifact_id": run["blessing"]},
        {"role": "evaluation", "artifact_id": run["evaluation"]},
    ]

    # Completeness of the upstream closure: the same checks and gaps as the Completeness answer.
    section = document["completeness"]
    direct = answers.completeness(pb.CompletenessRequest(node=pb.NodeRef(artifact_id=run["model"])))
    assert section["checks"] == direct.checks == 6 * 3 + 5 * 3
    assert section["score"] == pytest.approx(direct.score) == pytest.approx(18 / 33)
    assert [(g["kind"], g["node"], g["message"]) for g in section["gaps"]] == [
        (
            g.kind,
            f"{g.node.WhichOneof('node').removesuffix('_id')}:{g.node.artifact_id or g.node.execution_id}",
            g.message,
        )
        for g in direct.gaps
    ]
    assert Counter(g["kind"] for g in section["gaps"]) == {
        "artifact_without_digest": 5,  # all but the raw Examples
        "artifact_without_version": 4,  # all but the two Examples
        "execution_without_code_version": 3,  # all but Transform and Trainer
        "execution_without_parameters": 3,  # StatisticsGen, SchemaGen, Transform
    }


def test_the_second_run_reports_its_own_data_and_parameters(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-2"]
    document = report_of(answers, run["model"])
    assert document["datasets"][0]["digest"] == {"property": "input_fingerprint", "value": "sha256:2222"}
    assert [s["name"] for s in document["steps"]][:2] == ["run-2.ExampleGen", "run-2.StatisticsGen"]
    assert document["steps"][0]["parameters"] == {"input_base": "gs://raw/taxi/2026-12"}
    assert document["steps"][4]["parameters"] == {"train_args": '{"num_steps": 200}'}
    assert {s["id"] for s in document["steps"]} == {run[k] for k in tfx_pipeline_steps()[:6]}


def tfx_pipeline_steps() -> list[str]:
    return ["ExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer", "Evaluator", "Pusher"]


def test_a_report_cut_short_says_where(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    document = report_of(answers, run["model"], max_nodes=3)
    provenance = document["provenance"]
    # The model, the Trainer, then one artifact of the Trainer's three inputs (the lowest id); the
    # walk would go on from it and from the Trainer, whose other inputs were left out.
    assert (provenance["artifacts"], provenance["executions"], provenance["truncated"]) == (2, 1, "NODE_BUDGET")
    assert provenance["frontier"] == [f"artifact:{run['schema']}", f"execution:{run['Trainer']}"]
    assert document["completeness"]["truncated"] == "NODE_BUDGET"
    # Downstream, the budget holds the model, the Evaluator and the Pusher: no evaluation is reached.
    assert (document["downstream"]["artifacts"], document["downstream"]["truncated"]) == (1, "NODE_BUDGET")
    assert document["evaluations"] == []
    assert [s["type"] for s in document["steps"]] == ["Trainer"]


def test_an_evaluation_upstream_of_the_subject(answers: LineageAnswers, two_runs: Runs) -> None:
    """The pushed model is downstream of the blessing that gated it: its report lists that
    evaluation as upstream, with the chain back to it."""
    run = two_runs["run-1"]
    document = report_of(answers, run["pushed_model"])
    # Only the blessing: the evaluation is an output of the Evaluator, which the Pusher does not read.
    assert [(e["id"], e["relation"], e["path"]) for e in document["evaluations"]] == [
        (
            run["blessing"],
            "upstream",
            [f"artifact:{run['pushed_model']}", f"execution:{run['Pusher']}", f"artifact:{run['blessing']}"],
        )
    ]
    assert [s["type"] for s in document["steps"]][-3:] == ["Trainer", "Evaluator", "Pusher"]
    assert {s["part"] for s in document["steps"]} == {"provenance"}


def held_out(client: LocalClient) -> dict[str, int]:
    """train -> Trainer -> model; model and a held-out set -> Evaluator -> metrics."""
    dataset = client.put_artifact_type(mlmd.ArtifactType(name="Dataset"))
    model_type = client.put_artifact_type(mlmd.ArtifactType(name="Model"))
    metrics_type = client.put_artifact_type(mlmd.ArtifactType(name="system.Metrics"))
    trainer = client.put_execution_type(mlmd.ExecutionType(name="Trainer"))
    evaluator = client.put_execution_type(mlmd.ExecutionType(name="Evaluator"))

    def event(kind: int, role: str) -> Any:
        found = mlmd.Event(type=kind)
        found.path.steps.add().key = role
        return found

    def data(name: str, digest: str) -> Any:
        found = mlmd.Artifact(type_id=dataset, uri=f"s3://data/{name}", state=mlmd.Artifact.LIVE)
        found.custom_properties["digest"].string_value = digest
        return found

    # The training set is an external input: new with the Trainer's run, produced by nothing.
    step, (train_id, model_id), _ = client.put_execution(
        mlmd.Execution(type_id=trainer, last_known_state=mlmd.Execution.COMPLETE),
        [
            (data("train", "sha256:aaaa"), event(mlmd.Event.INPUT, "train")),
            (mlmd.Artifact(type_id=model_type, uri="s3://m"), event(mlmd.Event.OUTPUT, "model")),
        ],
        [],
    )
    holdout = data("holdout", "sha256:bbbb")
    model = mlmd.Artifact(id=model_id, type_id=model_type, uri="s3://m")
    evaluation, (_, holdout_id, metrics_id), _ = client.put_execution(
        mlmd.Execution(type_id=evaluator, last_known_state=mlmd.Execution.COMPLETE),
        [
            (model, event(mlmd.Event.INPUT, "model")),
            (holdout, event(mlmd.Event.INPUT, "test_set")),
            (mlmd.Artifact(type_id=metrics_type, uri="s3://metrics"), event(mlmd.Event.OUTPUT, "metrics")),
        ],
        [],
    )
    return {
        "train": train_id,
        "Trainer": step,
        "model": model_id,
        "holdout": holdout_id,
        "Evaluator": evaluation,
        "metrics": metrics_id,
    }


def test_the_data_a_model_was_evaluated_on(answers: LineageAnswers, client: LocalClient) -> None:
    ids = held_out(client)
    document = report_of(answers, ids["model"])
    assert [(d["id"], d["relation"], d["digest"]["value"]) for d in document["datasets"]] == [
        (ids["train"], "upstream", "sha256:aaaa"),
        (ids["holdout"], "evaluation", "sha256:bbbb"),
    ]
    assert [(e["id"], e["type"], e["relation"]) for e in document["evaluations"]] == [
        (ids["metrics"], "system.Metrics", "downstream")
    ]
    evaluator = document["steps"][-1]
    assert (evaluator["id"], evaluator["part"]) == (ids["Evaluator"], "evaluation")
    assert evaluator["inputs"] == [
        {"role": "model", "artifact_id": ids["model"]},
        {"role": "test_set", "artifact_id": ids["holdout"]},
    ]
    # Within a budget of 3 the downstream walk holds the model, the Evaluator and the metrics:
    # the held-out set does not fit, and the report says the downstream side was cut short there.
    small = report_of(answers, ids["model"], max_nodes=3)
    assert (small["downstream"]["truncated"], small["downstream"]["frontier"]) == (
        "NODE_BUDGET",
        [f"execution:{ids['Evaluator']}"],
    )
    assert [d["id"] for d in small["datasets"]] == [ids["train"]]
    assert small["provenance"]["truncated"] is None


def test_steps_are_ordered_by_dependency_not_by_id_and_survive_a_cycle() -> None:
    def execution(node_id: int, created: int) -> Any:
        return mlmd.Execution(id=node_id, create_time_since_epoch=created)

    def event(artifact_id: int, execution_id: int, kind: int) -> Any:
        return mlmd.Event(artifact_id=artifact_id, execution_id=execution_id, type=kind)

    executions = [execution(1, 30), execution(2, 20), execution(3, 10)]
    # 3 reads what 1 wrote, 1 reads what 2 wrote: 2, 1, 3 though 3 was created first.
    events = [event(10, 2, mlmd.Event.OUTPUT), event(10, 1, mlmd.Event.INPUT)]
    events += [event(11, 1, mlmd.Event.OUTPUT), event(11, 3, mlmd.Event.INPUT)]
    assert [e.id for e in graph.steps_in_order(executions, events, report.by_creation)] == [2, 1, 3]
    # A cycle 1 -> 3 -> 1: broken at its earliest-created member (3); 2 comes before 1.
    events.append(event(12, 3, mlmd.Event.OUTPUT))
    events.append(event(12, 1, mlmd.Event.INPUT))
    assert [e.id for e in graph.steps_in_order(executions, events, report.by_creation)] == [2, 3, 1]


# -- the audit log ------------------------------------------------------------------------------


def _record_creating(db: Database, kind: str, node_id: int) -> dict[str, Any]:
    found = [r for r in records(db) if node_id in json.loads(r["detail"]).get("created", {}).get(kind, [])]
    assert len(found) == 1
    return found[0]


def test_the_audit_log_says_who_recorded_each_step_and_when(
    audited_store: MetadataStore, audited_db: Database, clock: Any
) -> None:
    client = LocalClient(audited_store)
    with as_call("PutExecution", principal="alice@pipelines", namespace="default"):
        run = tfx_pipeline.write_run(mlmd, client, "run-1")
    clock.now += 1000
    cut = clock.now
    clock.now += 1000
    model = mlmd.Artifact(id=run["model"])
    model.custom_properties["approved"].string_value = "yes"
    request = svc.PutArtifactsRequest(artifacts=[model])
    request.update_mask.paths.append("custom_properties.approved")
    with as_call("PutArtifacts", principal="bob@review"):
        audited_store.put_artifacts(request)
    answers = LineageAnswers(audited_db)

    document = report_of(answers, run["model"])
    assert document["audit"] == {"enabled": True, "note": None}
    for step in document["steps"]:
        record = _record_creating(audited_db, "execution", step["id"])
        assert step["recorded"] == {
            "created": {
                "principal": "alice@pipelines",
                "namespace": "default",
                "method": "/ml_metadata.MetadataStoreService/PutExecution",
                "time_ms": record["time_ms"],
            },
            "updates": 0,
            "last_update": None,
        }
    # The steps were recorded in order, each at its own time.
    times = [s["recorded"]["created"]["time_ms"] for s in document["steps"]]
    assert times == sorted(times) and len(set(times)) == len(times)
    # The model: created by alice's Trainer run, updated once since, by bob.
    recorded = document["subject"]["recorded"]
    assert recorded["created"]["principal"] == "alice@pipelines"
    assert recorded["created"]["time_ms"] == _record_creating(audited_db, "artifact", run["model"])["time_ms"]
    assert recorded["updates"] >= 1 and recorded["last_update"]["principal"] == "bob@review"
    assert recorded["last_update"]["method"] == "/ml_metadata.MetadataStoreService/PutArtifacts"
    assert recorded["last_update"]["time_ms"] > cut
    assert document["subject"]["properties"]["approved"] == "yes"
    assert {d["recorded"]["created"]["principal"] for d in document["datasets"]} == {"alice@pipelines"}
    assert {e["recorded"]["created"]["principal"] for e in document["evaluations"]} == {"alice@pipelines"}

    # As of before bob's update: his record is not yet there, and the model is as it was.
    before = report_of(answers, run["model"], as_of_ms=cut)
    assert before["as_of"] == {"time_ms": cut, "restored": [f"artifact:{run['model']}"], "current_values": []}
    assert before["subject"]["recorded"]["last_update"] is None or (
        before["subject"]["recorded"]["last_update"]["principal"] != "bob@review"
    )
    assert "approved" not in before["subject"]["properties"]


def test_a_node_written_while_the_log_was_off_has_no_creation_record(audited_db: Database, clock: Any) -> None:
    """Written through a store with no audit log, reported by one with it: recorded, but
    with no creation record."""
    plain = Database(audited_db.engine)
    run = tfx_pipeline.write_run(mlmd, LocalClient(MetadataStore(plain, clock=clock)), "run-1")
    document = report_of(LineageAnswers(audited_db), run["model"])
    assert document["audit"]["enabled"] is True
    assert len(document["steps"]) == 6
    assert all(s["recorded"] == {"created": None, "updates": 0, "last_update": None} for s in document["steps"])


# -- HTML -------------------------------------------------------------------------------------


class Tags(html.parser.HTMLParser):
    """Every start tag of a page and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def hostile_model(client: LocalClient) -> dict[str, int]:
    """A dataset, a step and a model whose names, URIs, types and properties are markup."""
    data_type = client.put_artifact_type(mlmd.ArtifactType(name="Dataset"))
    model_type = client.put_artifact_type(mlmd.ArtifactType(name="Model"))
    step_type = client.put_execution_type(mlmd.ExecutionType(name=f"Train{HOSTILE}"))
    data = mlmd.Artifact(type_id=data_type, uri=f"s3://b/{HOSTILE}", name=HOSTILE, state=mlmd.Artifact.LIVE)
    data.custom_properties["digest"].string_value = f"sha256:</td></tr></table>{HOSTILE}"
    step = mlmd.Execution(type_id=step_type, name="</script><script>alert(2)</script>")
    step.last_known_state = mlmd.Execution.COMPLETE
    step.custom_properties["learning_rate"].string_value = "<b>0.1</b>"
    model = mlmd.Artifact(type_id=model_type, uri="gs://m/1", name='model" onmouseover="alert(3)', state=2)
    input_event = mlmd.Event(type=mlmd.Event.INPUT)
    input_event.path.steps.add().key = HOSTILE
    output_event = mlmd.Event(type=mlmd.Event.OUTPUT)
    output_event.path.steps.add().key = "model"
    execution_id, artifact_ids, _ = client.put_execution(step, [(data, input_event), (model, output_event)], [])
    return {"data": artifact_ids[0], "model": artifact_ids[1], "step": execution_id}


def test_html_report_escapes_every_metadata_value(answers: LineageAnswers, client: LocalClient) -> None:
    ids = hostile_model(client)
    response = answers.report(pb.ReportRequest(artifact_id=ids["model"], format="html"))
    assert response.content_type == "text/html; charset=utf-8"
    page = response.content.decode("utf-8")
    for raw in (HOSTILE, "<script>", "</script>", "<b>0.1</b>", 'onmouseover="alert(3)', f"</table>{HOSTILE}"):
        assert raw not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    parser = Tags()
    parser.feed(page)
    names = [tag for tag, _ in parser.tags]
    assert not {"img", "script", "b", "iframe", "object", "link", "a"} & set(names)
    assert all(not name.startswith("on") for _, attrs in parser.tags for name in attrs)
    # The values are there, as text: the name, the step, the parameter, the hostile role.
    text = "".join(parser.text)
    assert HOSTILE in text and "</script><script>alert(2)</script>" in text and "<b>0.1</b>" in text
    assert f"sha256:</td></tr></table>{HOSTILE}" in text
    # One page, nothing to fetch: no URL-bearing attribute at all, a CSP that allows nothing else.
    assert not [attrs for _, attrs in parser.tags if {"src", "href", "action", "srcset"} & set(attrs)]
    (csp,) = [a["content"] for t, a in parser.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == report.content_security_policy()
    assert csp.startswith("default-src 'none'; style-src 'sha256-") and "unsafe" not in csp
    # The picture: a node per artifact and execution, shapes by kind.
    groups = [attrs.get("class") for tag, attrs in parser.tags if tag == "g"]
    assert Counter(c for c in groups if c and c.startswith("node ")) == {"node artifact": 2, "node execution": 1}


def test_html_report_of_a_tfx_model_has_each_section(answers: LineageAnswers, two_runs: Runs) -> None:
    run = two_runs["run-1"]
    page = answers.report(pb.ReportRequest(artifact_id=run["model"], format="html")).content.decode()
    parser = Tags()
    parser.feed(page)
    headings = [text for text in parser.text if text in ("Subject", "Provenance", "Datasets", "Evaluations", "Steps")]
    assert headings == ["Subject", "Provenance", "Datasets", "Evaluations", "Steps"]
    text = "".join(parser.text)
    assert "audit log off" in text and "sha256:1111" in text and "54.5%" in text
    groups = Counter(attrs.get("class") for tag, attrs in parser.tags if tag == "g")
    # Upstream 6 artifacts and 5 executions, plus the Evaluator and its two outputs.
    assert (groups["node artifact"], groups["node execution"]) == (8, 6)


# -- bad requests -------------------------------------------------------------------------------


def test_bad_requests(answers: LineageAnswers, two_runs: Runs) -> None:
    model = two_runs["run-1"]["model"]
    with pytest.raises(errors.InvalidArgumentError, match="format must be one of json, html, got 'pdf'"):
        answers.report(pb.ReportRequest(artifact_id=model, format="pdf"))
    with pytest.raises(errors.InvalidArgumentError, match="artifact_id must be a positive id"):
        answers.report(pb.ReportRequest(artifact_id=0))
    with pytest.raises(errors.InvalidArgumentError, match="max_nodes"):
        answers.report(pb.ReportRequest(artifact_id=model, max_nodes=-1))
    with pytest.raises(errors.InvalidArgumentError, match="as_of_ms"):
        answers.report(pb.ReportRequest(artifact_id=model, as_of_ms=-5))
    with pytest.raises(errors.NotFoundError, match="artifact 999 does not exist"):
        answers.report(pb.ReportRequest(artifact_id=999))
    with pytest.raises(errors.NotFoundError, match="did not exist at as_of_ms 1"):
        answers.report(pb.ReportRequest(artifact_id=model, as_of_ms=1))
