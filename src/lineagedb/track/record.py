"""What one step recorded, as plain data: built by the step API, kept in the journal as
JSON, and turned into one PutExecution by the writer. Nothing here talks to a store."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

COMPLETE = "COMPLETE"
FAILED = "FAILED"
RUNNING = "RUNNING"

# Parameter values kept as they are; anything else becomes JSON text (or its str()).
Scalar = int | float | str | bool


@dataclass
class ArtifactRecord:
    """One input or output of a step.

    `uri` is an absolute path for local files and directories (TFX's habit: a URI is a
    path), otherwise the URI as given. `identity` is what joins the same content across
    steps and runs: "sha256:<hex>", or "size=..,mtime_ns=.." when hashing was skipped, or
    a caller-given digest; None when nothing is known (a remote URI without a digest).
    """

    key: str
    index: int
    uri: str
    type_name: str
    local: bool
    exists: bool = True
    is_dir: bool = False
    sha256: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    file_count: int | None = None
    skipped_reason: str | None = None
    identity: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class CodeRecord:
    commit: str
    dirty: bool | None
    source_file: str
    label: str


@dataclass
class StepRecord:
    step_id: str
    step_name: str
    pipeline: str | None
    run: str
    started_ms: int
    ended_ms: int | None = None
    status: str = RUNNING
    error_type: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    inputs: list[ArtifactRecord] = field(default_factory=list)
    outputs: list[ArtifactRecord] = field(default_factory=list)
    code: CodeRecord | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    format_version: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> StepRecord:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format_version") != 1:
            raise ValueError("not a lineagedb.track step record (format_version 1)")
        data["inputs"] = [ArtifactRecord(**item) for item in data.get("inputs", [])]
        data["outputs"] = [ArtifactRecord(**item) for item in data.get("outputs", [])]
        if data.get("code") is not None:
            data["code"] = CodeRecord(**data["code"])
        return cls(**data)


def plain_param(value: Any) -> Any:
    """A parameter value as JSON data the journal can keep and the writer can type: int,
    float, str and bool as they are; dicts and lists when they are JSON; else str()."""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict | list | tuple):
        try:
            return json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError):
            return str(value)
    return str(value)
