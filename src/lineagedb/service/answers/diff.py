"""Diff(a, b): what differs between two executions or two runs (contexts).

`a` and `b` are both executions or both contexts; anything else is INVALID_ARGUMENT,
and a node that does not exist (or that the caller cannot read) is NOT_FOUND.

Two executions
  * Inputs and outputs are the artifacts linked to each by input-like and output-like
    events, keyed by role: the event path's first key step ("examples"), or the
    artifact's type name when the path has none. A role holding several artifacts
    keys them "examples", "examples[1]", ... by the path's index (artifact id order
    when the indexes do not tell them apart).
  * Same role and same artifact: no change. Same role, different artifact: CHANGED,
    `fields` naming the identifying fields that differ, in the order uri, name,
    external_id, type, digest, version (digest and version found through the
    conventions); ["id"] when two artifacts differ in nothing else. A role of `a`
    only is REMOVED, of `b` only ADDED. before/after are compact JSON objects of the
    artifact's identifying fields (id, type, and those of uri, name, external_id,
    digest, version it has), empty on the side where it is missing.
  * Parameters (`Conventions.parameters`, section "parameter"), code version (section
    "code_version": each property named in `Conventions.code_version`) and environment
    (section "environment": `Conventions.environment`) are compared name by name;
    before/after are JSON values.

Two runs (contexts)
  * A run's steps are its executions (associations). A step's key is its name with
    the name of one of its contexts and a "." removed ("run-1.Trainer" in context
    "run-1" -> "Trainer"); failing that its type name when the type occurs once in
    the run, else its name. Steps are matched by (type name, key); several with the
    same pair are paired in id order and shown as "Key#2", ... A key that is not its
    type name is shown as "Type:key".
  * The run's inputs are the artifacts its steps consume that no step of the run
    produced; its outputs every artifact a step produced. Both are keyed by step and
    role ("Trainer/examples") and compared as for two executions, as are the
    parameters, code version and environment of each matched pair of steps
    ("Trainer/train_args"). A step of one run only is ADDED or REMOVED in section
    "execution", before/after being a JSON object of its id, type, name and, when
    it has any, "parameters", "code_version" and "environment" (objects by name).

upstream = true
  Also walks both upstream closures (each start's Provenance, at most
  graph.DEFAULT_MAX_NODES nodes a side, within the deadline; `truncated` says when
  one was cut short) and compares all of each, the starting nodes included:
  * executions matched by (type name, key as for runs, computed over the closure):
    "upstream_execution" ADDED, REMOVED, or CHANGED with `fields` the parameter, code
    version and environment names whose values differ (before/after as for
    "execution"); a matched pair with equal values is no change;
  * artifacts matched by (the matched key of the step that produced them and the
    output role, type name), keyed "Trainer/model"; an artifact nothing in the
    closure produced is matched by ("source", the role its first consumer read it
    as, type) and keyed "source/examples": "upstream_artifact" changes as for inputs.
  upstream_executions_compared and upstream_artifacts_compared count matched pairs.

Changes are ordered by section (input, output, parameter, code_version, environment,
execution, upstream_execution, upstream_artifact), then key. Everything is read in one
transaction, set-wise: a few statements per run and per level of a closure.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.service.answers import graph
from lineagedb.service.answers.closure import ARTIFACT, CONTEXT, EXECUTION, Direction, Node, deadline_check, walk
from lineagedb.service.answers.conventions import Conventions, plain_value
from lineagedb.service.lineage import INPUT_LIKE, OUTPUT_LIKE
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from lineagedb.service.answers.service import LineageAnswers

SECTIONS = (
    "input",
    "output",
    "parameter",
    "code_version",
    "environment",
    "execution",
    "upstream_execution",
    "upstream_artifact",
)
_SECTION_ORDER = {name: position for position, name in enumerate(SECTIONS)}
# The execution sections compared name by name.
VALUE_SECTIONS = ("parameter", "code_version", "environment")
ARTIFACT_FIELDS = ("uri", "name", "external_id", "type", "digest", "version")
SOURCE = "source"
_LINKED = INPUT_LIKE | OUTPUT_LIKE

# How a step is matched across the two sides: (type name, key, ordinal among equals).
StepMatch = tuple[str, str, int]


def answer(answers: LineageAnswers, request: pb.DiffRequest, deadline: float | None) -> pb.DiffResponse:
    a = graph.parse_ref(request.a, "a", (EXECUTION, CONTEXT))
    b = graph.parse_ref(request.b, "b", (EXECUTION, CONTEXT))
    if a[0] is not b[0]:
        raise errors.InvalidArgumentError(
            f"a and b must be two executions or two contexts, got {a[0].value} {a[1]} and {b[0].value} {b[1]}"
        )
    conventions = answers.conventions
    response = pb.DiffResponse()
    with answers.db.transaction(write=False) as uow:
        _load_pair(uow, a[0], a[1], b[1])
        if a[0] is EXECUTION:
            changes = _diff_executions(uow, conventions, a[1], b[1])
        else:
            changes = _diff_runs(uow, conventions, a[1], b[1])
        if request.upstream:
            upstream = _diff_upstream(uow, conventions, a, b, deadline_check(deadline))
            changes += upstream.changes
            response.upstream_executions_compared = upstream.executions_compared
            response.upstream_artifacts_compared = upstream.artifacts_compared
            response.truncated = upstream.truncated  # type: ignore[assignment]
    changes.sort(key=lambda c: (_SECTION_ORDER[c.section], c.key, c.kind, c.before, c.after))
    response.changes.extend(changes)
    return response


def _load_pair(uow: UnitOfWork, kind: NodeKind, a_id: int, b_id: int) -> dict[int, Any]:
    found = {node.id: node for node in node_repo.load_by_ids(uow, kind, {a_id, b_id})}
    for side, node_id in (("a", a_id), ("b", b_id)):
        if node_id not in found:
            # Also when the caller cannot read it: such a node does not exist for them.
            raise errors.NotFoundError(f"{side}: {kind.value} {node_id} does not exist")
    return found


# -- Two executions ---------------------------------------------------------------------------


def _diff_executions(uow: UnitOfWork, conventions: Conventions, a_id: int, b_id: int) -> list[pb.Change]:
    executions = {e.id: e for e in node_repo.load_by_ids(uow, EXECUTION, {a_id, b_id})}
    rows = lineage_repo.events_touching(uow, EXECUTION, {a_id, b_id}, _LINKED)
    artifacts = {x.id: x for x in node_repo.load_by_ids(uow, ARTIFACT, {row.artifact_id for row in rows})}
    links = _links(lineage_repo.to_events(uow, rows), artifacts)
    (a_in, a_out), (b_in, b_out) = links.get(a_id, ({}, {})), links.get(b_id, ({}, {}))
    changes = _compare_artifacts("input", a_in, b_in, conventions)[0]
    changes += _compare_artifacts("output", a_out, b_out, conventions)[0]
    changes += _compare_steps("", executions[a_id], executions[b_id], conventions)
    return changes


# -- Two runs ---------------------------------------------------------------------------------


def _diff_runs(uow: UnitOfWork, conventions: Conventions, a_id: int, b_id: int) -> list[pb.Change]:
    members = {context_id: lineage_repo.context_members(uow, [context_id])[1] for context_id in {a_id, b_id}}
    execution_ids = members[a_id] | members[b_id]
    executions = {e.id: e for e in node_repo.load_by_ids(uow, EXECUTION, execution_ids)}
    rows = lineage_repo.events_touching(uow, EXECUTION, execution_ids, _LINKED)
    artifacts = {x.id: x for x in node_repo.load_by_ids(uow, ARTIFACT, {row.artifact_id for row in rows})}
    events = lineage_repo.to_events(uow, rows)
    prefixes = _context_names(uow, execution_ids)
    sides = [
        _Run.of([executions[i] for i in sorted(members[context_id]) if i in executions], artifacts, events, prefixes)
        for context_id in (a_id, b_id)
    ]
    a, b = sides
    changes = _compare_artifacts("input", a.inputs, b.inputs, conventions)[0]
    changes += _compare_artifacts("output", a.outputs, b.outputs, conventions)[0]
    for match in sorted(a.steps.keys() | b.steps.keys()):
        step_a, step_b = a.steps.get(match), b.steps.get(match)
        if step_a is not None and step_b is not None:
            changes += _compare_steps(step_a.label + "/", step_a.execution, step_b.execution, conventions)
        else:
            changes.append(_one_sided("execution", step_a, step_b, conventions))
    return changes


@dataclass
class _Step:
    execution: Any
    match: StepMatch
    label: str
    inputs: dict[str, Any] = field(default_factory=dict)  # role key -> artifact
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Run:
    steps: dict[StepMatch, _Step]
    inputs: dict[str, Any]  # "Step/role" -> artifact
    outputs: dict[str, Any]

    @classmethod
    def of(
        cls, executions: list[Any], artifacts: Mapping[int, Any], events: list[Any], prefixes: Mapping[int, list[str]]
    ) -> _Run:
        steps = _steps(executions, artifacts, events, prefixes)
        produced = {artifact.id for step in steps.values() for artifact in step.outputs.values()}
        inputs = {
            f"{step.label}/{role}": artifact
            for step in steps.values()
            for role, artifact in step.inputs.items()
            if artifact.id not in produced
        }
        outputs = {
            f"{step.label}/{role}": artifact for step in steps.values() for role, artifact in step.outputs.items()
        }
        return cls({step.match: step for step in steps.values()}, inputs, outputs)


def _steps(
    executions: list[Any], artifacts: Mapping[int, Any], events: list[Any], prefixes: Mapping[int, list[str]]
) -> dict[int, _Step]:
    """The executions as steps (by execution id) with their keys, inputs and outputs."""
    keys = _step_keys(executions, prefixes)
    links = _links((e for e in events if e.execution_id in keys), artifacts)
    steps: dict[int, _Step] = {}
    for execution in executions:
        match, label = keys[execution.id]
        inputs, outputs = links.get(execution.id, ({}, {}))
        steps[execution.id] = _Step(execution, match, label, inputs, outputs)
    return steps


def _step_keys(executions: list[Any], prefixes: Mapping[int, list[str]]) -> dict[int, tuple[StepMatch, str]]:
    """Each execution's match (type, key, ordinal) and label. The key survives a run's
    name in the execution's name, which is what differs between two runs of a pipeline."""
    type_counts = Counter(e.type for e in executions)

    def key(execution: Any) -> str:
        name = execution.name
        stripped = [name[len(p) + 1 :] for p in prefixes.get(execution.id, []) if p and name.startswith(p + ".")]
        stripped = [s for s in stripped if s]
        if stripped:
            return min(stripped, key=len)  # the longest context name removed
        if type_counts[execution.type] == 1 or not name:
            return str(execution.type)
        return str(name)

    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for execution in executions:
        groups[(execution.type, key(execution))].append(execution)
    found: dict[int, tuple[StepMatch, str]] = {}
    for (type_name, step_key), members in groups.items():
        base = step_key if step_key == type_name else f"{type_name}:{step_key}"
        for ordinal, execution in enumerate(sorted(members, key=lambda e: e.id)):
            found[execution.id] = (type_name, step_key, ordinal), base if ordinal == 0 else f"{base}#{ordinal + 1}"
    return found


def _context_names(uow: UnitOfWork, execution_ids: Collection[int]) -> dict[int, list[str]]:
    """The names of each execution's (readable) contexts: two statements per chunk."""
    links = lineage_repo.associations(uow, execution_ids)
    contexts = {c.id: c.name for c in node_repo.load_by_ids(uow, CONTEXT, {link.context_id for link in links})}
    names: dict[int, list[str]] = defaultdict(list)
    for link in links:
        if link.context_id in contexts:
            names[link.node_id].append(contexts[link.context_id])
    return names


# -- Inputs and outputs by role ---------------------------------------------------------------


def _links(events: Iterable[Any], artifacts: Mapping[int, Any]) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """For each execution: its input and output artifacts by role key."""
    linked: dict[tuple[int, bool], dict[tuple[str, int], int | None]] = defaultdict(dict)
    for event in events:
        artifact = artifacts.get(event.artifact_id)
        if artifact is None or event.type not in _LINKED:
            continue
        role, index = _role(event, artifact)
        # One artifact linked twice under a role (INPUT and DECLARED_INPUT) counts once.
        seen = linked[(event.execution_id, event.type in OUTPUT_LIKE)]
        pair = (role, artifact.id)
        if pair not in seen or (index is not None and (seen[pair] is None or index < (seen[pair] or 0))):
            seen[pair] = index
    found: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for (execution_id, output), items in linked.items():
        by_role = {key: artifacts[artifact_id] for key, artifact_id in _role_keys(items).items()}
        found.setdefault(execution_id, ({}, {}))[1 if output else 0].update(by_role)
    return found


def _role(event: Any, artifact: Any) -> tuple[str, int | None]:
    """An event's role (its path's first key step, else the artifact's type) and index."""
    role: str | None = None
    index: int | None = None
    for step in event.path.steps:
        which = step.WhichOneof("value")
        if which == "key" and role is None:
            role = step.key
        elif which == "index" and index is None:
            index = step.index
    return (role if role else str(artifact.type)), index


def _role_keys(items: Mapping[tuple[str, int], int | None]) -> dict[str, int]:
    """Role keys ("examples", "examples[1]", ...) -> artifact id."""
    by_role: dict[str, list[tuple[int | None, int]]] = defaultdict(list)
    for (role, artifact_id), index in items.items():
        by_role[role].append((index, artifact_id))
    keys: dict[str, int] = {}
    for role, members in by_role.items():
        indexes = {index for index, _ in members if index is not None}
        if len(members) > 1 and len(indexes) == len(members):
            # The path's own indexes when they tell the artifacts apart: a subset of a
            # role's artifacts (in a closure) keeps the keys the whole set would have.
            positions = [(index or 0, artifact_id) for index, artifact_id in members]
        else:
            ordered = sorted(members, key=lambda m: (m[0] is None, m[0] or 0, m[1]))
            positions = [(position, artifact_id) for position, (_, artifact_id) in enumerate(ordered)]
        for position, artifact_id in positions:
            keys[role if position == 0 else f"{role}[{position}]"] = artifact_id
    return keys


# -- Comparisons ------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _artifact_summary(artifact: Any, conventions: Conventions) -> dict[str, Any]:
    summary: dict[str, Any] = {"id": artifact.id, "type": artifact.type}
    for name in ("uri", "name", "external_id"):
        if getattr(artifact, name):
            summary[name] = getattr(artifact, name)
    for name, names in (("digest", conventions.digest), ("version", conventions.version)):
        found = conventions.first(artifact, names)
        if found is not None:
            summary[name] = found[1]
    return summary


def _compare_artifacts(
    section: str, a: Mapping[str, Any], b: Mapping[str, Any], conventions: Conventions
) -> tuple[list[pb.Change], int]:
    """Changes between two role-keyed artifact maps, and the number of keys in both."""
    changes: list[pb.Change] = []
    matched = 0
    for key in sorted(a.keys() | b.keys()):
        before, after = a.get(key), b.get(key)
        summary_a = _artifact_summary(before, conventions) if before is not None else None
        summary_b = _artifact_summary(after, conventions) if after is not None else None
        if summary_a is not None and summary_b is not None:
            matched += 1
            if summary_a["id"] == summary_b["id"]:
                continue
            differing = [name for name in ARTIFACT_FIELDS if summary_a.get(name) != summary_b.get(name)]
            changes.append(
                pb.Change(
                    section=section,
                    key=key,
                    kind=pb.Change.CHANGED,
                    before=_json(summary_a),
                    after=_json(summary_b),
                    fields=differing or ["id"],
                )
            )
        else:
            changes.append(_added_or_removed(section, key, summary_a, summary_b))
    return changes, matched


def _added_or_removed(section: str, key: str, before: Any, after: Any) -> pb.Change:
    return pb.Change(
        section=section,
        key=key,
        kind=pb.Change.REMOVED if after is None else pb.Change.ADDED,
        before="" if before is None else _json(before),
        after="" if after is None else _json(after),
    )


def _named(node: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The node's values of `names` it has (a property before a custom property)."""
    found: dict[str, Any] = {}
    for name in names:
        for map_name in ("properties", "custom_properties"):
            values = getattr(node, map_name)
            if name in values:
                found[name] = plain_value(values[name])
                break
    return found


def _values(execution: Any, conventions: Conventions) -> dict[str, dict[str, Any]]:
    return {
        "parameter": conventions.parameters(execution),
        "code_version": _named(execution, conventions.code_version),
        "environment": _named(execution, conventions.environment),
    }


def _execution_summary(execution: Any, conventions: Conventions) -> dict[str, Any]:
    summary: dict[str, Any] = {"id": execution.id, "type": execution.type}
    if execution.name:
        summary["name"] = execution.name
    for section, values in _values(execution, conventions).items():
        if values:
            summary["parameters" if section == "parameter" else section] = values
    return summary


def _compare_values(section: str, prefix: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> list[pb.Change]:
    changes: list[pb.Change] = []
    for name in sorted(a.keys() | b.keys()):
        if name in a and name in b:
            if a[name] != b[name]:
                changes.append(
                    pb.Change(
                        section=section,
                        key=prefix + name,
                        kind=pb.Change.CHANGED,
                        before=_json(a[name]),
                        after=_json(b[name]),
                    )
                )
        elif name in a:
            changes.append(pb.Change(section=section, key=prefix + name, kind=pb.Change.REMOVED, before=_json(a[name])))
        else:
            changes.append(pb.Change(section=section, key=prefix + name, kind=pb.Change.ADDED, after=_json(b[name])))
    return changes


def _compare_steps(prefix: str, a: Any, b: Any, conventions: Conventions) -> list[pb.Change]:
    values_a, values_b = _values(a, conventions), _values(b, conventions)
    changes: list[pb.Change] = []
    for section in VALUE_SECTIONS:
        changes += _compare_values(section, prefix, values_a[section], values_b[section])
    return changes


def _one_sided(section: str, a: _Step | None, b: _Step | None, conventions: Conventions) -> pb.Change:
    step = a if a is not None else b
    assert step is not None
    return _added_or_removed(
        section,
        step.label,
        None if a is None else _execution_summary(a.execution, conventions),
        None if b is None else _execution_summary(b.execution, conventions),
    )


# -- Upstream closures ------------------------------------------------------------------------


@dataclass
class _Upstream:
    changes: list[pb.Change]
    executions_compared: int
    artifacts_compared: int
    truncated: int


def _diff_upstream(
    uow: UnitOfWork, conventions: Conventions, a: Node, b: Node, out_of_time: Callable[[], bool]
) -> _Upstream:
    closures: dict[Node, _Closure] = {}
    for node in (a, b):
        if node not in closures:
            closures[node] = _Closure.walk(uow, node, out_of_time)
    side_a, side_b = closures[a], closures[b]
    changes: list[pb.Change] = []
    executions_compared = 0
    for match in sorted(side_a.steps.keys() | side_b.steps.keys()):
        step_a, step_b = side_a.steps.get(match), side_b.steps.get(match)
        if step_a is None or step_b is None:
            changes.append(_one_sided("upstream_execution", step_a, step_b, conventions))
            continue
        executions_compared += 1
        values_a, values_b = _values(step_a.execution, conventions), _values(step_b.execution, conventions)
        differing = sorted(
            {
                name
                for section in VALUE_SECTIONS
                for name in values_a[section].keys() | values_b[section].keys()
                if values_a[section].get(name, _MISSING) != values_b[section].get(name, _MISSING)
            }
        )
        if differing:
            changes.append(
                pb.Change(
                    section="upstream_execution",
                    key=step_a.label,
                    kind=pb.Change.CHANGED,
                    before=_json(_execution_summary(step_a.execution, conventions)),
                    after=_json(_execution_summary(step_b.execution, conventions)),
                    fields=differing,
                )
            )
    artifact_changes, artifacts_compared = _compare_keyed_artifacts(side_a.artifacts, side_b.artifacts, conventions)
    changes += artifact_changes
    truncated = side_a.truncated or side_b.truncated
    return _Upstream(changes, executions_compared, artifacts_compared, truncated)


_MISSING = object()

# An upstream artifact's match: (producer's StepMatch or ("source",), role key, type name, ordinal).
ArtifactMatch = tuple[tuple[Any, ...], str, str, int]


@dataclass
class _Closure:
    steps: dict[StepMatch, _Step]
    artifacts: dict[ArtifactMatch, tuple[str, Any]]  # match -> (label, artifact)
    truncated: int

    @classmethod
    def walk(cls, uow: UnitOfWork, node: Node, out_of_time: Callable[[], bool]) -> _Closure:
        start = graph.start_nodes(uow, node)
        closure = walk(uow, start, Direction.UPSTREAM, graph.DEFAULT_MAX_NODES, None, out_of_time)
        # Of now (no as_of), so the audit log is not consulted; contexts are read below, names only.
        found = graph.load(uow, closure, None, audit_on=False, with_contexts=False)
        prefixes = _context_names(uow, closure.execution_ids)
        steps = _steps(found.executions, found.artifact_by_id, found.events, prefixes)
        return cls(
            {step.match: step for step in steps.values()},
            _artifact_matches(found.artifacts, steps.values()),
            closure.truncated,
        )


def _artifact_matches(artifacts: list[Any], steps: Iterable[_Step]) -> dict[ArtifactMatch, tuple[str, Any]]:
    """Each artifact keyed by the step that produced it and its role there, or for an
    artifact produced by nothing in the closure, by the role its first consumer read it as."""
    producer: dict[int, tuple[str, str, StepMatch]] = {}
    consumer: dict[int, tuple[str, str]] = {}
    for step in steps:
        for role, artifact in step.outputs.items():
            candidate = (step.label, role, step.match)
            if artifact.id not in producer or candidate < producer[artifact.id]:
                producer[artifact.id] = candidate
        for role, artifact in step.inputs.items():
            consumer[artifact.id] = min(consumer.get(artifact.id, (step.label, role)), (step.label, role))
    groups: dict[tuple[tuple[Any, ...], str, str], list[tuple[str, Any]]] = defaultdict(list)
    for artifact in artifacts:
        if artifact.id in producer:
            label, role, match = producer[artifact.id]
            groups[((match,), role, artifact.type)].append((f"{label}/{role}", artifact))
        else:
            role = consumer[artifact.id][1] if artifact.id in consumer else str(artifact.type)
            groups[((SOURCE,), role, artifact.type)].append((f"{SOURCE}/{role}", artifact))
    found: dict[ArtifactMatch, tuple[str, Any]] = {}
    for (owner, role, type_name), members in groups.items():
        for ordinal, (label, artifact) in enumerate(sorted(members, key=lambda m: m[1].id)):
            found[(owner, role, type_name, ordinal)] = (label if ordinal == 0 else f"{label}#{ordinal + 1}", artifact)
    return found


def _compare_keyed_artifacts(
    a: Mapping[ArtifactMatch, tuple[str, Any]], b: Mapping[ArtifactMatch, tuple[str, Any]], conventions: Conventions
) -> tuple[list[pb.Change], int]:
    changes: list[pb.Change] = []
    matched = 0
    for match in a.keys() | b.keys():
        label = (a.get(match) or b[match])[0]
        one_a = {label: a[match][1]} if match in a else {}
        one_b = {label: b[match][1]} if match in b else {}
        found, count = _compare_artifacts("upstream_artifact", one_a, one_b, conventions)
        changes += found
        matched += count
    return changes, matched
