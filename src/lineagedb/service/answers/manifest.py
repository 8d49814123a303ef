"""Manifest: how to reproduce an artifact, as canonical JSON with its SHA-256.

The manifest describes the artifact's complete upstream closure: every execution
that led to it and every artifact those executions read or wrote on the way. A
closure cut short (by max_nodes or the deadline) is refused rather than answered
in part, since a partial manifest cannot reproduce anything.

The document (manifest_version 1; manifest_schema.json beside this module is its
JSON Schema, draft 2020-12):

* ``manifest_version``: 1.
* ``target``: the artifact asked about: ``id``, ``type``, ``uri``, ``name``,
  ``external_id``, ``digest``, ``version`` and ``state`` (an Artifact.State name).
* ``executions``: the producing executions in topological order: an execution
  comes after every execution that produced one of its inputs, ties (and the rare
  cycle, broken at its lowest id) by id. Each has ``id``, ``type``, ``name``,
  ``state`` (an Execution.State name), ``parameters`` (its properties minus
  bookkeeping, code and environment; see conventions.py), ``code_version`` and
  ``environment`` (objects of the code-version and environment properties it has,
  by property name), and ``inputs`` and ``outputs``: lists of ``{role,
  artifact_id}`` within the closure (an output that does not lead to the target is
  not part of reproducing it), sorted by role then artifact id. A role is the key
  steps of the event's path joined by "." (TFX and KFP record one key: the input or
  output name), null when the path has no key.
* ``artifacts``: every artifact of the closure (the target included), by id: ``id``,
  ``type``, ``uri``, ``name``, ``external_id``, ``digest``, ``version`` and
  ``source``: true when nothing in the closure produced it (and since the closure
  is complete, nothing the caller can read produced it at all).
* ``contexts``: the contexts the closure's nodes belong to, by id: ``id``,
  ``type``, ``name``.

``digest`` and ``version`` are the value of the first property the conventions
name for them (a string, number, or for a struct an object). A field the node
does not have (or has empty: MLMD reads a missing URI back as "") is null. Floats
that JSON cannot hold (NaN, infinities) are written as the strings "NaN",
"Infinity" and "-Infinity".

Nothing in the document changes unless the graph does: no update or creation times
and no ordering left to the database. Canonical JSON is json.dumps with sorted
keys, no insignificant space and UTF-8 characters as they are; ``sha256`` is the hex
SHA-256 of its UTF-8 bytes. ``compare`` tells in plain words what differs between a
recorded manifest and a fresh one (``lineagedb lineage manifest verify FILE``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service.answers import graph
from lineagedb.service.answers.closure import ARTIFACT, Direction, deadline_check, walk
from lineagedb.service.answers.conventions import Conventions, plain_value
from lineagedb.service.lineage import INPUT_LIKE, OUTPUT_LIKE

MANIFEST_VERSION = 1
# The JSON Schema of the document (shipped in the wheel), for tools that validate one.
SCHEMA_PATH = Path(__file__).with_name("manifest_schema.json")


def answer(answers: Any, request: pb.ManifestRequest, deadline: float | None) -> pb.ManifestResponse:
    if request.artifact_id <= 0:
        raise errors.InvalidArgumentError(f"artifact_id must be a positive id, got {request.artifact_id}")
    target = (ARTIFACT, request.artifact_id)
    budget = graph.max_nodes(request.max_nodes)
    with answers.db.transaction(write=False) as uow:
        start = graph.start_nodes(uow, target)
        closure = walk(uow, start, Direction.UPSTREAM, budget, None, deadline_check(deadline))
        if closure.truncated == pb.NODE_BUDGET:
            raise errors.FailedPreconditionError(
                f"the upstream closure of artifact {target[1]} exceeds max_nodes ({budget}); a partial manifest "
                f"cannot reproduce anything: ask again with a larger max_nodes (at most {graph.MAX_NODES_LIMIT})"
            )
        if closure.truncated == pb.DEADLINE:
            raise errors.DeadlineExceededError(
                f"the upstream closure of artifact {target[1]} could not be walked before the call's deadline; "
                "a partial manifest cannot reproduce anything: retry with a longer deadline"
            )
        found = graph.load(uow, closure, None, answers.audit_on)
    document = build(found, target[1], answers.conventions)
    text = canonical(document)
    return pb.ManifestResponse(manifest_json=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


def canonical(document: Any) -> str:
    """The one JSON text of `document`: sorted keys, no insignificant space, UTF-8 as is."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def build(found: graph.Graph, target_id: int, conventions: Conventions) -> dict[str, Any]:
    """The manifest of a complete upstream closure of artifact `target_id`."""
    inputs: dict[int, set[tuple[str | None, int]]] = defaultdict(set)
    outputs: dict[int, set[tuple[str | None, int]]] = defaultdict(set)
    for event in found.events:
        pair = (_role(event), event.artifact_id)
        if event.type in INPUT_LIKE:
            inputs[event.execution_id].add(pair)
        elif event.type in OUTPUT_LIKE:
            outputs[event.execution_id].add(pair)
    produced = {artifact_id for pairs in outputs.values() for _, artifact_id in pairs}
    target = found.artifact_by_id[target_id]
    return {
        "manifest_version": MANIFEST_VERSION,
        "target": {
            **_artifact_fields(target, conventions),
            "state": _state_name(mlmd.Artifact.State, target.state),
        },
        "executions": [
            {
                "id": execution.id,
                "type": execution.type,
                "name": _optional(execution, "name"),
                "state": _state_name(mlmd.Execution.State, execution.last_known_state),
                "parameters": _plain(conventions.parameters(execution)),
                "code_version": _named(execution, conventions.code_version),
                "environment": _named(execution, conventions.environment),
                "inputs": _links(inputs[execution.id]),
                "outputs": _links(outputs[execution.id]),
            }
            for execution in graph.steps_in_order(found.executions, found.events)
        ],
        "artifacts": [
            {**_artifact_fields(artifact, conventions), "source": artifact.id not in produced}
            for artifact in sorted(found.artifacts, key=lambda a: a.id)
        ],
        "contexts": [
            {"id": context.id, "type": context.type, "name": _optional(context, "name")}
            for context in sorted(found.contexts, key=lambda c: c.id)
        ],
    }


def _artifact_fields(artifact: Any, conventions: Conventions) -> dict[str, Any]:
    digest = conventions.first(artifact, conventions.digest)
    version = conventions.first(artifact, conventions.version)
    return {
        "id": artifact.id,
        "type": artifact.type,
        "uri": _optional(artifact, "uri"),
        "name": _optional(artifact, "name"),
        "external_id": _optional(artifact, "external_id"),
        "digest": None if digest is None else _plain(digest[1]),
        "version": None if version is None else _plain(version[1]),
    }


def _state_name(enum: Any, value: int) -> str:
    # A number this server's proto does not know still gets a stable spelling.
    return str(enum.Name(value)) if value in enum.values() else f"STATE_{value}"


def _optional(node: Any, field: str) -> Any:
    # MLMD reads an artifact without a URI back as uri "": both mean "none recorded".
    return getattr(node, field) if node.HasField(field) and getattr(node, field) != "" else None


def _named(node: Any, names: Iterable[str]) -> dict[str, Any]:
    """The node's properties among `names`, by name (properties win over custom ones)."""
    found: dict[str, Any] = {}
    for name in names:
        for field in ("properties", "custom_properties"):
            values = getattr(node, field)
            if name in values:
                found[name] = _plain(plain_value(values[name]))
                break
    return found


def _plain(value: Any) -> Any:
    """`value` with the floats JSON cannot hold spelled as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _role(event: Any) -> str | None:
    keys = [step.key for step in event.path.steps if step.WhichOneof("value") == "key"]
    return ".".join(keys) if keys else None


def _links(pairs: set[tuple[str | None, int]]) -> list[dict[str, Any]]:
    ordered = sorted(pairs, key=lambda pair: (pair[0] is not None, pair[0] or "", pair[1]))
    return [{"role": role, "artifact_id": artifact_id} for role, artifact_id in ordered]


# -- compare ---------------------------------------------------------------------------------------

_ARTIFACT_FIELDS = ("type", "uri", "name", "external_id", "digest", "version")
_EXECUTION_FIELDS = ("type", "name", "state")
_PROPERTY_GROUPS = (("parameters", "parameter"), ("code_version", "code version"), ("environment", "environment"))


def compare(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What changed between a `recorded` manifest and a `current` one of the same store,
    in plain words, one change a line: target first, then artifacts, executions and
    contexts, each by id. Empty when nothing did. Raises ValueError when either is not
    a version-1 manifest."""
    _check(recorded, "the recorded manifest")
    _check(current, "the current manifest")
    changes: list[str] = []
    before_target, after_target = recorded["target"], current["target"]
    if before_target["id"] != after_target["id"]:
        changes.append(
            f"the target changed: the recorded manifest is of artifact {before_target['id']}, "
            f"the current one of artifact {after_target['id']}"
        )
    elif before_target.get("state") != after_target.get("state"):
        changes.append(
            f"target {_artifact_label(after_target)}: state changed from "
            f"{_show(before_target.get('state'))} to {_show(after_target.get('state'))}"
        )
    changes += _compare_nodes(
        recorded["artifacts"], current["artifacts"], _artifact_label, _compare_artifact, "upstream of the target"
    )
    changes += _compare_nodes(
        recorded["executions"], current["executions"], _execution_label, _compare_execution, "upstream of the target"
    )
    changes += _compare_nodes(
        recorded["contexts"], current["contexts"], _context_label, _compare_context, "among the closure's contexts"
    )
    return changes


def _check(document: Any, what: str) -> None:
    """Enough of the schema for compare to read the document without surprises."""
    if not isinstance(document, Mapping):
        raise ValueError(f"{what} is not a JSON object")
    version = document.get("manifest_version")
    if version != MANIFEST_VERSION:
        raise ValueError(f"{what} has manifest_version {version!r}; only version {MANIFEST_VERSION} is understood")
    target = document.get("target")
    if not isinstance(target, Mapping) or "id" not in target or not _scalar(target["id"]):
        raise ValueError(f"{what} has no target object with an id")
    for key in ("executions", "artifacts", "contexts"):
        items = document.get(key)
        if not isinstance(items, list) or not all(
            isinstance(i, Mapping) and "id" in i and _scalar(i["id"]) for i in items
        ):
            raise ValueError(f"{what}: {key} must be a list of objects with an id")
    for execution in document["executions"]:
        for key in ("parameters", "code_version", "environment"):
            if not isinstance(execution.get(key, {}), Mapping):
                raise ValueError(f"{what}: {key} of execution {execution['id']} must be an object")
        for key in ("inputs", "outputs"):
            links = execution.get(key, [])
            if not isinstance(links, list) or not all(
                isinstance(link, Mapping) and _scalar(link.get("role")) and _scalar(link.get("artifact_id"))
                for link in links
            ):
                raise ValueError(
                    f"{what}: {key} of execution {execution['id']} must be a list of {{role, artifact_id}}"
                )


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float))


def _compare_nodes(
    before: list[Mapping[str, Any]],
    after: list[Mapping[str, Any]],
    label: Any,
    compare_one: Any,
    where: str,
) -> list[str]:
    old = {node["id"]: node for node in before}
    new = {node["id"]: node for node in after}
    changes: list[str] = []
    for node_id in sorted(old.keys() - new.keys(), key=_order):
        changes.append(f"{label(old[node_id])} is missing: it is no longer {where} (deleted, unlinked or unreadable)")
    for node_id in sorted(new.keys() - old.keys(), key=_order):
        changes.append(f"{label(new[node_id])} was added: it is now {where} and was not when the manifest was recorded")
    for node_id in sorted(old.keys() & new.keys(), key=_order):
        # Named as recorded: that is what the user has in hand.
        changes += [f"{label(old[node_id])}: {change}" for change in compare_one(old[node_id], new[node_id])]
    return changes


def _compare_artifact(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return _field_changes(before, after, _ARTIFACT_FIELDS)


def _compare_execution(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changes = _field_changes(before, after, _EXECUTION_FIELDS)
    for key, noun in _PROPERTY_GROUPS:
        old, new = before.get(key) or {}, after.get(key) or {}
        for name in sorted(old.keys() | new.keys()):
            if name not in new:
                changes.append(f"{noun} {name} was removed (was {_show(old[name])})")
            elif name not in old:
                changes.append(f"{noun} {name} was added ({_show(new[name])})")
            elif old[name] != new[name]:
                changes.append(f"{noun} {name} changed from {_show(old[name])} to {_show(new[name])}")
    for key, verb in (("inputs", "reads"), ("outputs", "writes")):
        old_links = {(link.get("role"), link.get("artifact_id")) for link in before.get(key) or []}
        new_links = {(link.get("role"), link.get("artifact_id")) for link in after.get(key) or []}
        for role, artifact_id in sorted(old_links - new_links, key=_link_order):
            changes.append(f"no longer {verb} artifact {artifact_id}{_as_role(role)}")
        for role, artifact_id in sorted(new_links - old_links, key=_link_order):
            changes.append(f"now {verb} artifact {artifact_id}{_as_role(role)}")
    return changes


def _compare_context(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return _field_changes(before, after, ("type", "name"))


def _field_changes(before: Mapping[str, Any], after: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    return [
        f"{name} changed from {_show(before.get(name))} to {_show(after.get(name))}"
        for name in names
        if before.get(name) != after.get(name)
    ]


def _order(value: Any) -> tuple[int, int, str]:
    """Ids in numeric order; anything else a hand-edited file may hold after them, as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value))


def _link_order(link: tuple[Any, Any]) -> tuple[str, tuple[int, int, str]]:
    return ("" if link[0] is None else str(link[0]), _order(link[1]))


def _as_role(role: Any) -> str:
    return "" if role is None else f" as {role}"


def _artifact_label(node: Mapping[str, Any]) -> str:
    where = node.get("uri") or node.get("name")
    return f"artifact {node['id']} ({node.get('type')}{'' if where is None else ' ' + str(where)})"


def _execution_label(node: Mapping[str, Any]) -> str:
    name = node.get("name")
    return f"execution {node['id']} ({node.get('type')}{'' if name is None else ' ' + str(name)})"


def _context_label(node: Mapping[str, Any]) -> str:
    name = node.get("name")
    return f"context {node['id']} ({node.get('type')}{'' if name is None else ' ' + str(name)})"


def _show(value: Any) -> str:
    """A value as a user reads it: strings quoted, absence said, the rest as JSON."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
