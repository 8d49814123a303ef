"""Report: what an auditor asks about a model, as canonical JSON or one self-contained HTML page.

The report of an artifact (usually a model) holds:

* ``subject``: the artifact, with its properties;
* ``provenance``: the size of its complete upstream closure (no hop limit, within
  max_nodes and the call's deadline), whether and where it was cut short, and the
  contexts (pipelines, runs) of its nodes;
* ``datasets``: artifacts whose type is one of the conventions' dataset types, upstream
  of the subject (``relation`` "upstream") or read by a step that evaluated it
  ("evaluation": a held-out set is not upstream of the model), with their digest and
  version (the first property the conventions name for each);
* ``evaluations``: artifacts of the conventions' evaluation types upstream of the
  subject or downstream of it (an evaluator consumes the model, so its evaluations
  are downstream: one downstream closure is walked too, with the same budget), each
  with the chain of nodes that links it to the subject;
* ``steps``: the executions that made the subject, and those on the way from it to
  its evaluations (with everything they read), in topological order (a step after every step that produced one
  of its inputs; ties by creation time, then id), with type, name, state,
  parameters, code version, environment, times, inputs and outputs;
* ``recorded``, per step, dataset and evaluation when the audit log is on: the write
  record that created the node (principal, namespace, method, time) and how often
  and by whom last it was updated. A node created while the log was off has
  ``created`` null. With the log off, ``audit.enabled`` is false and says so;
* ``completeness``: the gaps that break reproducibility in the upstream closure
  (completeness.find_gaps: the same checks and score as the Completeness answer);
* ``as_of``: for a report as of a past time, the nodes shown as they were then
  (restored from the audit log) and those shown with current values.

report_schema.json beside this module is the JSON Schema (draft 2020-12) of the JSON
form. JSON is canonical (sorted keys, no insignificant space, UTF-8 as is); floats
JSON cannot hold are written "NaN", "Infinity", "-Infinity". Only
``generated_at_ms`` changes between two reports of an unchanged graph.

The HTML form is one page with nothing to fetch: inline CSS (allowed by its hash in
a Content-Security-Policy that allows nothing else), the picture as inline SVG
(render.svg), no scripts. Every value that comes from the store is escaped.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service.answers import completeness, graph, render
from lineagedb.service.answers.closure import ARTIFACT, EXECUTION, Closure, Direction, Node, deadline_check, walk
from lineagedb.service.answers.conventions import Conventions, plain_value
from lineagedb.service.lineage import INPUT_LIKE, OUTPUT_LIKE
from lineagedb.store import audit_log, audit_store
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.repositories.lineage import EventTuple

REPORT_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("report_schema.json")
CONTENT_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8"}
AUDIT_OFF = "audit log off: who recorded each step and when is not known"


def answer(answers: Any, request: pb.ReportRequest, deadline: float | None) -> pb.ReportResponse:
    form = request.format or "json"
    if form not in CONTENT_TYPES:
        raise errors.InvalidArgumentError(f"format must be one of {', '.join(CONTENT_TYPES)}, got {form!r}")
    if request.artifact_id <= 0:
        raise errors.InvalidArgumentError(f"artifact_id must be a positive id, got {request.artifact_id}")
    document, picture = build(answers, request, deadline)
    if form == "json":
        content = canonical(document).encode("utf-8")
    else:
        content = page(document, picture).encode("utf-8")
    return pb.ReportResponse(content_type=CONTENT_TYPES[form], content=content)


def canonical(document: Any) -> str:
    return json.dumps(_finite(document), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# -- gathering --------------------------------------------------------------------------------


def build(answers: Any, request: pb.ReportRequest, deadline: float | None) -> tuple[dict[str, Any], render.Parts]:
    """The report document and the graph its picture draws, read in one transaction."""
    subject: Node = (ARTIFACT, request.artifact_id)
    budget, as_of_ms = graph.max_nodes(request.max_nodes), graph.as_of(request.as_of_ms)
    out_of_time = deadline_check(deadline)
    conventions: Conventions = answers.conventions
    with answers.db.transaction(write=False) as uow:
        start = graph.start_nodes(uow, subject, as_of_ms)
        up = walk(uow, start, Direction.UPSTREAM, budget, as_of_ms, out_of_time)
        upstream = graph.load(uow, up, as_of_ms, answers.audit_on)
        down = walk(uow, start, Direction.DOWNSTREAM, budget, as_of_ms, out_of_time)
        downstream = graph.load(uow, down, as_of_ms, answers.audit_on, with_contexts=False)
        evaluations = _evaluations(subject, conventions, up, upstream, down, downstream)
        picture = _picture(upstream, downstream, down, [node for node, _ in evaluations])
        evaluation_inputs = _evaluation_inputs(uow, picture, upstream, down, budget, as_of_ms, answers.audit_on)
        records = None
        if answers.audit_on:
            wanted = {
                audit_log.NODE_KINDS["artifact"]: [a.id for a in picture.artifacts],
                audit_log.NODE_KINDS["execution"]: [e.id for e in picture.executions],
            }
            records = audit_store.recorders(uow.connection, wanted, as_of_ms)

    def recorded(kind: str, node_id: int) -> dict[str, Any] | None:
        if records is None:
            return None
        found = records.get((audit_log.NODE_KINDS[kind], node_id))
        return found if found is not None else {"created": None, "updates": 0, "last_update": None}

    target = upstream.artifact_by_id[subject[1]]
    produced_by = _producers(picture.events)
    as_ofs = [upstream.as_of, downstream.as_of, evaluation_inputs.as_of]
    document: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "generated_at_ms": time.time_ns() // 1_000_000,
        "subject": {**_artifact(target, conventions), "recorded": recorded("artifact", target.id)},
        "as_of": _as_of(as_ofs, as_of_ms),
        "audit": {"enabled": True, "note": None} if records is not None else {"enabled": False, "note": AUDIT_OFF},
        "provenance": {
            **_walk_summary(up),
            "artifacts": len(upstream.artifacts),
            "executions": len(upstream.executions),
            "events": len(upstream.events),
            "contexts": [
                {"id": c.id, "type": c.type, "name": _optional(c, "name")}
                for c in sorted(upstream.contexts, key=lambda c: c.id)
            ],
        },
        "downstream": {**_walk_summary(down), "artifacts": len(downstream.artifacts)},
        "datasets": [
            {
                **_artifact(a, conventions),
                "relation": relation,
                "produced_by": produced_by.get(a.id, []),
                "recorded": recorded("artifact", a.id),
            }
            for a, relation in [
                *((a, "upstream") for a in upstream.artifacts),
                *((a, "evaluation") for a in evaluation_inputs.artifacts),
            ]
            if a.type in conventions.dataset_types
        ],
        "evaluations": [
            {
                **_artifact(node, conventions),
                "relation": relation,
                "path": [graph.label(n) for n in path],
                "produced_by": produced_by.get(node.id, []),
                "recorded": recorded("artifact", node.id),
            }
            for node, relation, path in _with_paths(evaluations, up, down)
        ],
        "steps": _steps(picture, upstream, conventions, recorded),
        "completeness": _completeness(upstream, up, conventions),
    }
    return document, picture


def _walk_summary(closure: Closure) -> dict[str, Any]:
    return {
        "depth": closure.depth,
        "truncated": _truncation(closure.truncated),
        "frontier": [graph.label(node) for node in closure.frontier],
    }


def _truncation(value: int) -> str | None:
    """Why a walk stopped short (NODE_BUDGET, DEADLINE), None when it is complete."""
    return None if value == pb.TRUNCATION_UNSPECIFIED else str(pb.Truncation.Name(cast(Any, value)))


def _evaluations(
    subject: Node,
    conventions: Conventions,
    up: Closure,
    upstream: graph.Graph,
    down: Closure,
    downstream: graph.Graph,
) -> list[tuple[Any, str]]:
    """Evaluation artifacts on either side of the subject, upstream first, each by id."""
    kinds = set(conventions.evaluation_types)
    found = [(a, "upstream") for a in upstream.artifacts if a.type in kinds and a.id != subject[1]]
    seen = {a.id for a, _ in found}
    found += [
        (a, "downstream")
        for a in downstream.artifacts
        if a.type in kinds and a.id != subject[1] and a.id not in seen and (ARTIFACT, a.id) in down.reached_from
    ]
    return found


def _with_paths(
    evaluations: list[tuple[Any, str]], up: Closure, down: Closure
) -> Iterable[tuple[Any, str, list[Node]]]:
    """Each evaluation with the shortest chain of nodes from the subject to it."""
    for node, relation in evaluations:
        closure = up if relation == "upstream" else down
        yield node, relation, closure.path_to((ARTIFACT, node.id))


def _picture(upstream: graph.Graph, downstream: graph.Graph, down: Closure, evaluations: list[Any]) -> render.Parts:
    """The upstream closure, plus the chains from the subject to each downstream evaluation
    (the rest of the downstream closure is another question: Impact)."""
    artifacts = {a.id: a for a in upstream.artifacts}
    executions = {e.id: e for e in upstream.executions}
    for evaluation in evaluations:
        if evaluation.id in artifacts:
            continue
        for kind, node_id in down.path_to((ARTIFACT, evaluation.id)):
            if kind is ARTIFACT:
                artifacts.setdefault(node_id, downstream.artifact_by_id[node_id])
            else:
                executions.setdefault(node_id, downstream.execution_by_id[node_id])
    # An event can be in both closures (a cycle through the subject); it is drawn once.
    events: dict[bytes, Any] = {}
    for event in [*upstream.events, *downstream.events]:
        if event.artifact_id in artifacts and event.execution_id in executions:
            events.setdefault(event.SerializeToString(deterministic=True), event)
    return render.Parts(
        artifacts=[artifacts[i] for i in sorted(artifacts)],
        executions=[executions[i] for i in sorted(executions)],
        events=list(events.values()),
        contexts=list(upstream.contexts),
        attributions=list(upstream.attributions),
        associations=list(upstream.associations),
    )


def _evaluation_inputs(
    uow: Any,
    picture: render.Parts,
    upstream: graph.Graph,
    down: Closure,
    budget: int,
    as_of_ms: int | None,
    audit_on: bool,
) -> graph.Graph:
    """What the steps between the subject and its evaluations read besides the subject (the
    data a model was evaluated on is not downstream of it): their input events, and the
    artifacts not in the picture yet, which join it. They count toward the downstream
    walk's budget; past it, the lowest ids are kept and the walk is marked cut short."""
    in_provenance = {e.id for e in upstream.executions}
    steps = sorted(e.id for e in picture.executions if e.id not in in_provenance)
    if not steps:
        return graph.Graph()
    rows = lineage_repo.events_touching(uow, EXECUTION, steps, INPUT_LIKE, as_of_ms)
    shown = {a.id for a in picture.artifacts}
    extra = {row.artifact_id for row in rows} - shown
    if as_of_ms is not None and extra:
        extra = lineage_repo.created_by(uow, ARTIFACT, extra, as_of_ms)
    room = max(budget - down.size, 0)
    if len(extra) > room:
        extra = set(sorted(extra)[:room])
        down.truncated = pb.NODE_BUDGET
        down.frontier = sorted({*down.frontier, *((EXECUTION, i) for i in steps)}, key=lambda n: (n[0].value, n[1]))
    kept: list[EventTuple] = [row for row in rows if row.artifact_id in shown or row.artifact_id in extra]
    found = graph.load(uow, Closure(start=[], artifact_ids=extra, events=kept), as_of_ms, audit_on, with_contexts=False)
    known = {event.SerializeToString(deterministic=True) for event in picture.events}
    picture.artifacts = sorted([*picture.artifacts, *found.artifacts], key=lambda a: a.id)
    picture.events += [e for e in found.events if e.SerializeToString(deterministic=True) not in known]
    return found


def _producers(events: Iterable[Any]) -> dict[int, list[int]]:
    found: dict[int, set[int]] = defaultdict(set)
    for event in events:
        if event.type in OUTPUT_LIKE:
            found[event.artifact_id].add(event.execution_id)
    return {artifact_id: sorted(ids) for artifact_id, ids in found.items()}


def _steps(
    picture: render.Parts, upstream: graph.Graph, conventions: Conventions, recorded: Any
) -> list[dict[str, Any]]:
    inputs: dict[int, list[dict[str, Any]]] = defaultdict(list)
    outputs: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in picture.events:
        entry = {"role": render.role_of(event) or None, "artifact_id": event.artifact_id}
        if event.type in INPUT_LIKE:
            inputs[event.execution_id].append(entry)
        elif event.type in OUTPUT_LIKE:
            outputs[event.execution_id].append(entry)
    contexts: dict[int, list[int]] = defaultdict(list)
    for link in upstream.associations:
        contexts[link.execution_id].append(link.context_id)
    in_provenance = {e.id for e in upstream.executions}
    steps = []
    for execution in graph.steps_in_order(picture.executions, picture.events, by_creation):
        steps.append(
            {
                "id": execution.id,
                "type": execution.type,
                "name": _optional(execution, "name"),
                "state": _state_name(mlmd.Execution.State, execution.last_known_state),
                "part": "provenance" if execution.id in in_provenance else "evaluation",
                "parameters": conventions.parameters(execution),
                "code_version": _named(execution, conventions.code_version),
                "environment": _named(execution, conventions.environment),
                "create_time_ms": execution.create_time_since_epoch,
                "last_update_time_ms": execution.last_update_time_since_epoch,
                "inputs": sorted(inputs[execution.id], key=_by_role),
                "outputs": sorted(outputs[execution.id], key=_by_role),
                "contexts": sorted(contexts[execution.id]),
                "recorded": recorded("execution", execution.id),
            }
        )
    return steps


def _by_role(entry: Mapping[str, Any]) -> tuple[str, int]:
    return (entry["role"] or "", entry["artifact_id"])


def by_creation(execution: Any) -> tuple[int, int]:
    """Steps ready at once are listed as they were recorded."""
    return (execution.create_time_since_epoch, execution.id)


def _completeness(upstream: graph.Graph, up: Closure, conventions: Conventions) -> dict[str, Any]:
    produced = {artifact_id for _, artifact_id, _, kind, _ in up.events if kind in OUTPUT_LIKE}
    unexpanded = {node_id for kind, node_id in up.frontier if kind is ARTIFACT}
    gaps, checks = completeness.find_gaps(upstream, produced, unexpanded, conventions)
    gaps.sort(key=lambda gap: (gap[0], gap[1][0] is not ARTIFACT, gap[1][1]))
    return {
        "score": (checks - len(gaps)) / checks if checks else 1.0,
        "checks": checks,
        "gaps": [{"kind": kind, "node": graph.label(node), "message": message} for kind, node, message in gaps],
        "truncated": _truncation(up.truncated),
    }


def _as_of(parts: list[pb.AsOf], as_of_ms: int | None) -> dict[str, Any] | None:
    if as_of_ms is None:
        return None

    def labels(refs: Iterable[pb.NodeRef]) -> list[str]:
        nodes = {_node_of(ref) for ref in refs}
        return [graph.label(node) for node in sorted(nodes, key=lambda n: (n[0].value, n[1]))]

    return {
        "time_ms": as_of_ms,
        "restored": labels([ref for part in parts for ref in part.restored]),
        "current_values": labels([ref for part in parts for ref in part.current_values]),
    }


def _node_of(ref: pb.NodeRef) -> Node:
    return graph.parse_ref(ref, "as_of node")


# -- node fields ------------------------------------------------------------------------------


def _artifact(artifact: Any, conventions: Conventions) -> dict[str, Any]:
    return {
        "id": artifact.id,
        "type": artifact.type,
        "name": _optional(artifact, "name"),
        "uri": _optional(artifact, "uri"),
        "external_id": _optional(artifact, "external_id"),
        "state": _state_name(mlmd.Artifact.State, artifact.state),
        "digest": _first(conventions, artifact, conventions.digest),
        "version": _first(conventions, artifact, conventions.version),
        "properties": _properties(artifact),
        "create_time_ms": artifact.create_time_since_epoch,
        "last_update_time_ms": artifact.last_update_time_since_epoch,
    }


def _optional(node: Any, name: str) -> Any:
    """A field's value, or None when unset or empty (MLMD reads a missing URI back as "")."""
    value = getattr(node, name)
    return value if node.HasField(name) and value != "" else None


def _first(conventions: Conventions, node: Any, names: tuple[str, ...]) -> dict[str, Any] | None:
    found = conventions.first(node, names)
    return None if found is None else {"property": found[0], "value": found[1]}


def _named(node: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The properties among `names` the node has, by name (properties win over custom ones)."""
    found: dict[str, Any] = {}
    for field in ("custom_properties", "properties"):
        values = getattr(node, field)
        for name in names:
            if name in values:
                found[name] = plain_value(values[name])
    return found


def _properties(node: Any) -> dict[str, Any]:
    found = {name: plain_value(value) for name, value in node.custom_properties.items()}
    found.update((name, plain_value(value)) for name, value in node.properties.items())
    return found


def _state_name(enum: Any, value: int) -> str:
    return str(enum.Name(value)) if value in enum.values() else "UNKNOWN"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


# -- HTML ---------------------------------------------------------------------------------------

STYLE = """
body{font-family:Helvetica,Arial,sans-serif;font-size:14px;color:#1a1a1a;margin:24px;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{border:1px solid #d0d0d0;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right}
code,pre{font-family:Menlo,Consolas,monospace;font-size:12px}
pre{margin:0;white-space:pre-wrap;word-break:break-all}
.muted{color:#666}.notice{background:#fff3c4;border:1px solid #b08800;padding:6px 10px;margin:6px 0}
.score{font-size:20px;font-weight:bold}
.picture{overflow:auto;border:1px solid #d0d0d0;background:#fff}
@media print{body{margin:0;max-width:none}.picture{overflow:visible}.picture svg{max-width:100%;height:auto}
tr{break-inside:avoid}}
"""


def content_security_policy() -> str:
    """Nothing may load or run; only the page's own style element (by its hash) applies."""
    digest = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'none'; font-src 'none'; "
        "script-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'"
    )


def _e(value: Any) -> str:
    """Any value as escaped HTML text (None as an em dash)."""
    if value is None:
        return '<span class="muted">\u2014</span>'
    if not isinstance(value, str):
        value = json.dumps(_finite(value), sort_keys=True, ensure_ascii=False)
    return html.escape(value, quote=True)


def _time(ms: int | None) -> str:
    if not ms:
        return _e(None)
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return html.escape(moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def _json_block(value: Any) -> str:
    if not value:
        return _e(None)
    text = json.dumps(_finite(value), sort_keys=True, ensure_ascii=False, indent=1)
    return f"<pre>{html.escape(text)}</pre>"


def _recorded_cell(recorded: Mapping[str, Any] | None, audit_on: bool) -> str:
    if not audit_on:
        return '<span class="muted">audit log off</span>'
    if recorded is None or recorded["created"] is None:
        return '<span class="muted">no creation record (written while the audit log was off)</span>'
    created = recorded["created"]
    text = f"{_e(created['principal'])} at {_time(created['time_ms'])}<br><code>{_e(created['method'])}</code>"
    if recorded["updates"]:
        last = recorded["last_update"]
        text += f"<br>updated {recorded['updates']}\u00d7, last by {_e(last['principal'])} at {_time(last['time_ms'])}"
    return text


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{html.escape(empty)}</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _named_value(found: Mapping[str, Any] | None) -> str:
    if found is None:
        return '<span class="muted">none</span>'
    return f'{_e(found["value"])} <span class="muted">({_e(found["property"])})</span>'


def page(document: Mapping[str, Any], picture: render.Parts) -> str:
    """The report as one HTML page that needs nothing else to display or print."""
    subject = document["subject"]
    audit_on = document["audit"]["enabled"]
    title = f"{subject['type']} {subject['name'] or subject['uri'] or ''} (artifact {subject['id']})"
    notices = []
    for part, what in (("provenance", "upstream closure"), ("downstream", "downstream closure")):
        summary = document[part]
        if summary["truncated"]:
            frontier = ", ".join(summary["frontier"][:20]) + (" \u2026" if len(summary["frontier"]) > 20 else "")
            notices.append(
                f"The {what} was cut short ({_e(summary['truncated'])}): this report covers only the part "
                f"walked. It would go on from {_e(frontier)}."
            )
    if not audit_on:
        notices.append(html.escape(AUDIT_OFF) + ".")
    as_of = document["as_of"]
    if as_of and as_of["current_values"]:
        notices.append(
            f"As of {_time(as_of['time_ms'])}: these nodes changed later and the audit log cannot restore their "
            f"earlier values, so they are shown as they are now: {_e(', '.join(as_of['current_values']))}."
        )

    subject_rows = [
        ["Type", _e(subject["type"])],
        ["Name", _e(subject["name"])],
        ["URI", _e(subject["uri"])],
        ["External id", _e(subject["external_id"])],
        ["State", _e(subject["state"])],
        ["Digest", _named_value(subject["digest"])],
        ["Version", _named_value(subject["version"])],
        ["Properties", _json_block(subject["properties"])],
        ["Created", _time(subject["create_time_ms"])],
        ["Recorded by", _recorded_cell(subject["recorded"], audit_on)],
    ]
    provenance = document["provenance"]
    dataset_rows = [
        [
            _e(d["id"]),
            _e(d["type"]),
            _e(d["name"]),
            f"<code>{_e(d['uri'])}</code>",
            _e(d["relation"]),
            _named_value(d["digest"]),
            _named_value(d["version"]),
            _e(", ".join(f"execution {i}" for i in d["produced_by"]) or None),
            _recorded_cell(d["recorded"], audit_on),
        ]
        for d in document["datasets"]
    ]
    evaluation_rows = [
        [
            _e(v["id"]),
            _e(v["type"]),
            _e(v["name"]),
            f"<code>{_e(v['uri'])}</code>",
            _e(v["relation"]),
            _json_block(v["properties"]),
            _e(" \u2192 ".join(v["path"])),
            _recorded_cell(v["recorded"], audit_on),
        ]
        for v in document["evaluations"]
    ]
    step_rows = [
        [
            _e(index),
            f'{_e(s["type"])}<br>{_e(s["name"])}<br><span class="muted">execution {_e(s["id"])}</span>',
            _e(s["state"]),
            _json_block(s["parameters"]),
            _json_block(s["code_version"]),
            _json_block(s["environment"]),
            _e(", ".join(f"{i['role'] or '?'}: artifact {i['artifact_id']}" for i in s["inputs"]) or None),
            _e(", ".join(f"{o['role'] or '?'}: artifact {o['artifact_id']}" for o in s["outputs"]) or None),
            f"{_time(s['create_time_ms'])}<br>{_time(s['last_update_time_ms'])}",
            _recorded_cell(s["recorded"], audit_on),
        ]
        for index, s in enumerate(document["steps"], start=1)
    ]
    report = document["completeness"]
    gap_rows = [[_e(g["kind"]), _e(g["node"]), _e(g["message"])] for g in report["gaps"]]
    context_rows = [[_e(c["id"]), _e(c["type"]), _e(c["name"])] for c in provenance["contexts"]]
    focus = [f"a{subject['id']}"]
    drawing = render.svg(picture, focus=focus, title=f"Provenance of {title}")
    as_of_text = f"as of {_time(as_of['time_ms'])}" if as_of else "as recorded now"
    sections = [
        f"<header><h1>Compliance report: {_e(title)}</h1>"
        f'<p class="muted">Generated {_time(document["generated_at_ms"])}, {as_of_text}. '
        f"LineageDB report version {document['report_version']}.</p></header>",
        "".join(f'<div class="notice">{notice}</div>' for notice in notices),
        "<h2>Subject</h2>" + _table(["Field", "Value"], subject_rows, ""),
        "<h2>Provenance</h2>"
        f"<p>{provenance['artifacts']} artifacts, {provenance['executions']} executions and "
        f"{provenance['events']} events upstream, {provenance['depth']} levels deep. The picture adds the steps "
        f"from the subject to its evaluations and what they read.</p>"
        f'<div class="picture">{drawing}</div>',
        "<h2>Datasets</h2>"
        + _table(
            ["Id", "Type", "Name", "URI", "Used for", "Digest", "Version", "Produced by", "Recorded by"],
            dataset_rows,
            "No artifact upstream or read by an evaluation has a dataset type.",
        ),
        "<h2>Evaluations</h2>"
        + _table(
            ["Id", "Type", "Name", "URI", "Relation", "Properties", "Path from the subject", "Recorded by"],
            evaluation_rows,
            "No evaluation was found upstream or downstream of the subject.",
        ),
        "<h2>Steps</h2>"
        + _table(
            [
                "#",
                "Step",
                "State",
                "Parameters",
                "Code version",
                "Environment",
                "Inputs",
                "Outputs",
                "Created / updated",
                "Recorded by",
            ],
            step_rows,
            "No step produced the subject.",
        ),
        "<h2>Completeness</h2>"
        f'<p><span class="score">{report["score"] * 100:.1f}%</span> of {report["checks"]} checks passed'
        + (" (over the part of the closure walked)" if report["truncated"] else "")
        + ".</p>"
        + _table(["Gap", "Node", "What is missing"], gap_rows, "Nothing is missing."),
        "<h2>Pipelines and runs</h2>" + _table(["Id", "Type", "Name"], context_rows, "No contexts."),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(content_security_policy())}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Compliance report: {_e(title)}</title>\n"
        f"<style>{STYLE}</style>\n"
        "</head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
