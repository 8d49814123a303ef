"""A step record -> ordinary MLMD data, in one PutExecution (preceded by one read of the
artifacts it may reuse, and, only when a new artifact appears twice in the step, one
PutArtifacts).

Shapes, chosen so TFX, the official MLMD client and the lineage answers read them as their own:

* the execution's type is the step name ("Trainer"); `last_known_state` COMPLETE or FAILED;
  external id `lineagedb.track:<step id>` (what makes a replay harmless); custom properties:
  the parameters by name, `code_version` ("git:<commit>[+dirty]"), `git_commit`,
  `module_file`, `environment` (a struct), `python_version`, `requirements` (the installed
  packages' digest), `pipeline_name`, `run_id`, `start_time_ms`, `end_time_ms`, and on
  failure `error_type`;
* inputs and outputs are artifacts of the declared type with events keyed by role (path
  steps: key, index); local ones carry `digest` ("sha256:<hex>"), `size_bytes` and, for a
  directory, `file_count`; one not hashed carries `mtime_ns` and `digest_skipped` instead;
* metrics are one output artifact of type `Metrics` (key "metrics"), as KFP records them;
* contexts `pipeline` (the pipeline name) and `pipeline_run` ("<pipeline>.<run>"), TFX's
  context types, both linked to the execution and its artifacts.

An artifact with a known content (digest, or size and time) gets the external id
`lineagedb.track:` + SHA-256 of its URI and content identity: whichever step records it
first creates it, every later step (another script, another run) finds it and links to it.
One read (GetArtifactsByExternalIds) finds them before the write; the stored artifact is
sent back unchanged so a reuse never rewrites it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.track.record import COMPLETE, FAILED, ArtifactRecord, StepRecord

EXTERNAL_ID_PREFIX = "lineagedb.track:"
PIPELINE_CONTEXT_TYPE = "pipeline"
RUN_CONTEXT_TYPE = "pipeline_run"
METRICS_TYPE = "Metrics"
METRICS_KEY = "metrics"

# Execution properties the writer sets itself; a parameter may not take one of these names.
RESERVED_PROPERTIES = frozenset(
    {
        "code_version",
        "git_commit",
        "module_file",
        "environment",
        "python_version",
        "requirements",
        "pipeline_name",
        "run_id",
        "start_time_ms",
        "end_time_ms",
        "error_type",
    }
)

# gRPC status codes as numbers (the client's errors carry them as `error_code`).
NOT_FOUND = 5
ALREADY_EXISTS = 6
UNREACHABLE_CODES = frozenset({4, 14})  # DEADLINE_EXCEEDED, UNAVAILABLE
# Reads and writes of one step when concurrent writers keep creating what it names.
WRITE_ATTEMPTS = 4


def status_code(error: BaseException) -> int | None:
    """The gRPC status code of a client error (ml_metadata-style or a raw grpc.RpcError)."""
    code = getattr(error, "error_code", None)
    if isinstance(code, int):
        return code
    code_method = getattr(error, "code", None)
    if callable(code_method):
        try:
            value = code_method().value
        except Exception:
            return None
        if isinstance(value, tuple) and value and isinstance(value[0], int):
            return value[0]
    return None


def is_unreachable(error: BaseException) -> bool:
    """The store could not be reached (or did not answer in time): the step goes to the journal."""
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    return status_code(error) in UNREACHABLE_CODES


def artifact_external_id(uri: str, identity: str) -> str:
    return EXTERNAL_ID_PREFIX + hashlib.sha256(f"{uri}\n{identity}".encode()).hexdigest()


def execution_external_id(step_id: str) -> str:
    return EXTERNAL_ID_PREFIX + step_id


def run_context_name(pipeline: str | None, run: str) -> str:
    return f"{pipeline}.{run}" if pipeline else run


def value_of(plain: Any) -> mlmd.Value:
    value = mlmd.Value()
    if isinstance(plain, bool):
        value.bool_value = plain
    elif isinstance(plain, int):
        value.int_value = plain
    elif isinstance(plain, float):
        value.double_value = plain
    elif isinstance(plain, str):
        value.string_value = plain
    elif isinstance(plain, dict):
        value.struct_value.CopyFrom(_struct(plain))
    else:  # lists and anything else: JSON text
        value.string_value = json.dumps(plain, sort_keys=True)
    return value


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


@dataclass(frozen=True)
class WriteResult:
    execution_id: int
    artifact_ids: list[int]
    context_ids: list[int]
    already_recorded: bool = False  # a replay: the store had this step already


class Writer:
    """Writes step records through one MetadataStore client (lineagedb.client or the
    official ml_metadata one: the same methods). Type ids are looked up once per writer."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._type_ids: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def _type_id(self, kind: str, name: str) -> int:
        key = (kind, name)
        with self._lock:
            if key in self._type_ids:
                return self._type_ids[key]
        # No properties declared: everything goes in custom_properties, so an existing type of
        # that name (TFX's Model, with its own properties) is accepted as it is.
        if kind == "artifact":
            type_id = self.store.put_artifact_type(
                mlmd.ArtifactType(name=name), can_add_fields=True, can_omit_fields=True
            )
        elif kind == "execution":
            type_id = self.store.put_execution_type(
                mlmd.ExecutionType(name=name), can_add_fields=True, can_omit_fields=True
            )
        else:
            type_id = self.store.put_context_type(
                mlmd.ContextType(name=name), can_add_fields=True, can_omit_fields=True
            )
        with self._lock:
            self._type_ids[key] = int(type_id)
        return int(type_id)

    def already_recorded(self, record: StepRecord) -> int | None:
        """The execution id of this step if the store has it (a replay after a lost answer)."""
        found = _none_found_is_empty(self.store.get_executions_by_external_ids, [execution_external_id(record.step_id)])
        return int(found[0].id) if found else None

    def write(self, record: StepRecord) -> WriteResult:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return self._write_once(record)
            except Exception as error:
                if status_code(error) != ALREADY_EXISTS:
                    raise
                existing = self.already_recorded(record)
                if existing is not None:  # a replay: the store has this step already
                    return WriteResult(existing, [], [], already_recorded=True)
                if attempt + 1 == WRITE_ATTEMPTS:
                    raise
                # Another writer created an artifact or context this step names between our read
                # and our write (two steps reading the same new file at once): read again.
        raise AssertionError("unreachable")

    def _write_once(self, record: StepRecord) -> WriteResult:
        execution = self._execution(record)
        pairs: list[tuple[mlmd.Artifact, mlmd.Event]] = []
        artifacts = [*record.inputs, *(record.outputs if record.status == COMPLETE else [])]
        stored = self._stored_artifacts(artifacts)
        for item in record.inputs:
            pairs.append(
                (self._artifact(item, stored, link_by_uri=True), _event(mlmd.Event.INPUT, item.key, item.index))
            )
        if record.status == COMPLETE:
            for item in record.outputs:
                artifact = self._artifact(item, stored, link_by_uri=False)
                pairs.append((artifact, _event(mlmd.Event.OUTPUT, item.key, item.index)))
            if record.metrics:
                index = sum(1 for item in record.outputs if item.key == METRICS_KEY)  # after any "metrics" file
                pairs.append((self._metrics_artifact(record), _event(mlmd.Event.OUTPUT, METRICS_KEY, index)))
        self._create_repeated(pairs)
        contexts = self._contexts(record)
        execution_id, artifact_ids, context_ids = self.store.put_execution(
            execution,
            pairs,
            contexts,
            reuse_context_if_already_exist=True,
            reuse_artifact_if_already_exist_by_external_id=True,
        )
        return WriteResult(int(execution_id), [int(i) for i in artifact_ids], [int(i) for i in context_ids])

    def _create_repeated(self, pairs: list[tuple[mlmd.Artifact, mlmd.Event]]) -> None:
        """A new artifact that appears twice in one step (a file read and written back unchanged,
        an input declared twice) would clash with itself inside PutExecution: create it first
        (one extra write, only then) and let both events name it by id."""
        seen = Counter(a.external_id for a, _ in pairs if not a.HasField("id") and a.external_id)
        repeated = [external_id for external_id, count in seen.items() if count > 1]
        if not repeated:
            return
        first: dict[str, mlmd.Artifact] = {}
        for artifact, _ in pairs:
            if artifact.external_id in repeated and artifact.external_id not in first:
                first[artifact.external_id] = artifact
        ids = self.store.put_artifacts(list(first.values()))
        created: dict[str, mlmd.Artifact] = {}
        for (external_id, artifact), artifact_id in zip(first.items(), ids, strict=True):
            stored = mlmd.Artifact()
            stored.CopyFrom(artifact)
            stored.id = int(artifact_id)
            created[external_id] = stored
        for position, (artifact, event) in enumerate(pairs):
            if artifact.external_id in created and not artifact.HasField("id"):
                pairs[position] = (created[artifact.external_id], event)

    def _execution(self, record: StepRecord) -> mlmd.Execution:
        execution = mlmd.Execution(
            type_id=self._type_id("execution", record.step_name),
            external_id=execution_external_id(record.step_id),
            name=f"{run_context_name(record.pipeline, record.run)}.{record.step_name}.{record.step_id[:8]}",
            last_known_state=mlmd.Execution.COMPLETE if record.status == COMPLETE else mlmd.Execution.FAILED,
        )
        props = execution.custom_properties
        for name, plain in record.params.items():
            props[name].CopyFrom(value_of(plain))
        if record.code is not None:
            props["code_version"].string_value = record.code.label
            props["git_commit"].string_value = record.code.commit
            props["module_file"].string_value = record.code.source_file
        if record.environment:
            props["environment"].struct_value.CopyFrom(_struct(record.environment))
            props["python_version"].string_value = str(record.environment.get("python_version", ""))
            props["requirements"].string_value = f"sha256:{record.environment.get('packages_sha256', '')}"
        if record.pipeline:
            props["pipeline_name"].string_value = record.pipeline
        props["run_id"].string_value = record.run
        props["start_time_ms"].int_value = record.started_ms
        if record.ended_ms is not None:
            props["end_time_ms"].int_value = record.ended_ms
        if record.status == FAILED and record.error_type:
            props["error_type"].string_value = record.error_type
        return execution

    def _stored_artifacts(self, items: Iterable[ArtifactRecord]) -> dict[str, mlmd.Artifact]:
        wanted = sorted({artifact_external_id(i.uri, i.identity) for i in items if i.identity is not None})
        if not wanted:
            return {}
        return {a.external_id: a for a in _none_found_is_empty(self.store.get_artifacts_by_external_ids, wanted)}

    def _artifact(self, item: ArtifactRecord, stored: dict[str, mlmd.Artifact], link_by_uri: bool) -> mlmd.Artifact:
        if item.identity is not None:
            external_id = artifact_external_id(item.uri, item.identity)
            if external_id in stored:
                return stored[external_id]
        elif link_by_uri and item.uri:
            # Nothing known of its content (a remote URI, a missing file): the newest artifact at
            # that URI is the best guess of what was read.
            same_uri = list(self.store.get_artifacts_by_uri(item.uri))
            if same_uri:
                return max(same_uri, key=lambda a: a.id)
        artifact = mlmd.Artifact(
            type_id=self._type_id("artifact", item.type_name),
            uri=item.uri,
            state=mlmd.Artifact.LIVE if item.exists else mlmd.Artifact.UNKNOWN,
        )
        if item.identity is not None:
            artifact.external_id = artifact_external_id(item.uri, item.identity)
        props = artifact.custom_properties
        for name, plain in item.properties.items():
            props[name].CopyFrom(value_of(plain))
        if item.sha256 is not None:
            props["digest"].string_value = f"sha256:{item.sha256}"
        if item.local and item.exists:
            props["size_bytes"].int_value = item.size or 0
            if item.is_dir:
                props["file_count"].int_value = item.file_count or 0
            if item.skipped_reason is not None:
                props["digest_skipped"].string_value = item.skipped_reason
                props["mtime_ns"].int_value = item.mtime_ns or 0
        if item.local and not item.exists:
            props["missing"].bool_value = True
        return artifact

    def _metrics_artifact(self, record: StepRecord) -> mlmd.Artifact:
        artifact = mlmd.Artifact(type_id=self._type_id("artifact", METRICS_TYPE), state=mlmd.Artifact.LIVE)
        for name, number in record.metrics.items():
            artifact.custom_properties[name].double_value = number
        canonical = json.dumps(record.metrics, sort_keys=True, separators=(",", ":"))
        artifact.custom_properties["digest"].string_value = f"sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"
        return artifact

    def _contexts(self, record: StepRecord) -> list[mlmd.Context]:
        contexts = []
        if record.pipeline:
            pipeline = mlmd.Context(type_id=self._type_id("context", PIPELINE_CONTEXT_TYPE), name=record.pipeline)
            pipeline.custom_properties["pipeline_name"].string_value = record.pipeline
            contexts.append(pipeline)
        run = mlmd.Context(
            type_id=self._type_id("context", RUN_CONTEXT_TYPE), name=run_context_name(record.pipeline, record.run)
        )
        if record.pipeline:
            run.custom_properties["pipeline_name"].string_value = record.pipeline
        run.custom_properties["run_id"].string_value = record.run
        contexts.append(run)
        return contexts


def _none_found_is_empty(method: Any, external_ids: list[str]) -> list[Any]:
    # MLMD answers NOT_FOUND when none of the external ids exists (and the list when some do).
    try:
        return list(method(external_ids))
    except Exception as error:
        if status_code(error) == NOT_FOUND:
            return []
        raise


def _event(kind: Any, key: str, index: int) -> mlmd.Event:
    event = mlmd.Event(type=kind)
    event.path.steps.add().key = key
    event.path.steps.add().index = index
    return event
