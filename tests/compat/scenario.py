"""Scripted MLMD call sequence used by the compatibility tests.

This script runs under the *official* ``ml-metadata`` client (the ``.venv-mlmd``
virtualenv, protobuf < 5), never under LineageDB's own environment. It drives one
fixed sequence of RPCs against either

* ``--target inprocess``: MLMD's own C++ store embedded in the wheel, on a fresh
  SQLite file in a temporary directory (the reference behavior), or
* ``--target grpc --host H --port P``: any server speaking
  ``ml_metadata.MetadataStoreService`` (LineageDB under test),

and prints a JSON list of steps: ``{"step", "ok", "code", "result"}``. ``presence.*``
steps (``Recorder.wire``) record a response as ``{"present", "response"}``: the paths of
the fields it has set, recursively, since proto2 presence is part of the answer. Two runs
against stores that started empty must print identical documents. Wall-clock
timestamps are replaced by a placeholder; where the timestamp behavior itself is
part of the contract (``last_update_time_since_epoch`` moving or not), tracked
reads add booleans computed on the client side. Ids are kept verbatim: both stores
must assign the same ones (system types 1-9, first user type 10, nodes from 1).

Suites:

* ``api1`` (default): type, node and edge writes and the plain reads.
* ``api2``: list options and pagination, filter queries, PutExecution,
  PutLineageSubgraph and GetLineageSubgraph (a later tier; the tests run it only
  when ``LINEAGEDB_COMPAT_API2`` is set).
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from google.protobuf import any_pb2, json_format, message, wrappers_pb2
from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd
from ml_metadata.proto import metadata_store_service_pb2 as svc

Json = Any
M = TypeVar("M", bound=message.Message)

TIMESTAMP_FIELDS = frozenset(
    {
        "create_time_since_epoch",
        "last_update_time_since_epoch",
        "milliseconds_since_epoch",
    }
)
# Values at or above this are treated as wall-clock readings (2001-09-09 in ms) and
# replaced; smaller ones (explicit event times such as 0 or 12345) are compared as is.
WALL_CLOCK_FLOOR_MS = 10**12
TIMESTAMP_PLACEHOLDER = "<wall-clock>"
# Pause before every step so that a rewritten row always gets a strictly newer
# millisecond timestamp; this keeps the "last update changed" booleans deterministic.
STEP_PAUSE_SECONDS = 0.003
# A hung server shows up as DeadlineExceededError steps instead of a stuck run.
GRPC_TIMEOUT_SECONDS = 30.0

INT = mlmd.INT
DOUBLE = mlmd.DOUBLE
STRING = mlmd.STRING
STRUCT = mlmd.STRUCT
PROTO = mlmd.PROTO
BOOLEAN = mlmd.BOOLEAN
UNKNOWN = mlmd.UNKNOWN

Event = mlmd.Event
AT = mlmd.ArtifactType
ET = mlmd.ExecutionType
CT = mlmd.ContextType

# Names used throughout the scenario (type ids are noted as assigned on a fresh store).
DATASET = "compat.Dataset"  # artifact type 10 (unversioned), 11 (v1)
MODEL = "compat.Model"  # artifact type 12
TRAINER = "compat.Trainer"  # execution type 13
PIPELINE = "compat.Pipeline"  # context type 14 (unversioned), 15 (v2)


# --------------------------------------------------------------------------- values


def packed(msg: message.Message) -> any_pb2.Any:
    container = any_pb2.Any()
    container.Pack(msg)
    return container


def set_values(target: Any, values: Mapping[str, object]) -> None:
    """Fill a ``map<string, Value>`` from plain Python values."""
    for key, value in values.items():
        slot = target[key]
        if isinstance(value, bool):
            slot.bool_value = value
        elif isinstance(value, int):
            slot.int_value = value
        elif isinstance(value, float):
            slot.double_value = value
        elif isinstance(value, str):
            slot.string_value = value
        elif isinstance(value, dict):
            slot.struct_value.SetInParent()
            slot.struct_value.update(value)
        elif isinstance(value, any_pb2.Any):
            slot.proto_value.CopyFrom(value)
        else:  # pragma: no cover - scenario authoring error
            raise TypeError(f"unsupported property value {value!r}")


def node(cls: type[M], **fields: object) -> M:
    """Build a node message; ``properties``/``custom_properties`` take plain dicts."""
    msg = cls()
    for name, value in fields.items():
        if name in ("properties", "custom_properties"):
            assert isinstance(value, Mapping)
            set_values(getattr(msg, name), value)
        else:
            setattr(msg, name, value)
    return msg


def artifact(**fields: object) -> mlmd.Artifact:
    return node(mlmd.Artifact, **fields)


def execution(**fields: object) -> mlmd.Execution:
    return node(mlmd.Execution, **fields)


def context(**fields: object) -> mlmd.Context:
    return node(mlmd.Context, **fields)


def a_type(name: str, props: Mapping[str, int] | None = None, **fields: object) -> AT:
    msg = AT(name=name, **fields)
    for key, kind in (props or {}).items():
        msg.properties[key] = kind
    return msg


def e_type(name: str, props: Mapping[str, int] | None = None, **fields: object) -> ET:
    msg = ET(name=name, **fields)
    for key, kind in (props or {}).items():
        msg.properties[key] = kind
    return msg


def c_type(name: str, props: Mapping[str, int] | None = None, **fields: object) -> CT:
    msg = CT(name=name, **fields)
    for key, kind in (props or {}).items():
        msg.properties[key] = kind
    return msg


def event(
    artifact_id: int | None,
    execution_id: int | None,
    kind: int | None,
    *,
    steps: Sequence[int | str | None] = (),
    millis: int | None = None,
) -> mlmd.Event:
    msg = mlmd.Event()
    if artifact_id is not None:
        msg.artifact_id = artifact_id
    if execution_id is not None:
        msg.execution_id = execution_id
    if kind is not None:
        msg.type = kind
    for step in steps:
        added = msg.path.steps.add()
        if isinstance(step, int):
            added.index = step
        elif isinstance(step, str):
            added.key = step
    if millis is not None:
        msg.milliseconds_since_epoch = millis
    return msg


# ---------------------------------------------------------------------- normalizing


def scrub_timestamps(value: Json) -> Json:
    if isinstance(value, dict):
        out: dict[str, Json] = {}
        for key, item in value.items():
            if key in TIMESTAMP_FIELDS and int(item) >= WALL_CLOCK_FLOOR_MS:
                out[key] = TIMESTAMP_PLACEHOLDER
            else:
                out[key] = scrub_timestamps(item)
        return out
    if isinstance(value, list):
        return [scrub_timestamps(item) for item in value]
    return value


def to_json(value: object) -> Json:
    """Turn a step's return value (messages, lists, dicts, scalars) into JSON data."""
    if isinstance(value, message.Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot normalize {type(value).__name__}")


def _is_repeated(field: Any) -> bool:
    """protobuf 4 (the official wheel) has `label`; protobuf 7 (the drop-in on 3.13) only `is_repeated`."""
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return bool(field.label == field.LABEL_REPEATED)


def present_fields(msg: message.Message, prefix: str = "") -> list[str]:
    """Paths of every field set in `msg`, recursively, sorted.

    proto2 presence is visible to clients (``HasField``, Go pointers, JSON), so "unset" and
    "set to the default" are different answers. Elements of repeated message fields are keyed
    by their identity (id; artifact, execution and type for events; ...) rather than their
    position, so stores that return rows in another order still compare.
    """
    paths: list[str] = []
    for field, value in msg.ListFields():
        path = prefix + field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key in sorted(value):
                entry_path = f"{path}[{key!r}]"
                paths.append(entry_path)
                if value_field.message_type is not None:
                    paths += present_fields(value[key], entry_path + ".")
        elif _is_repeated(field):
            for position, item in enumerate(value):
                if field.message_type is None:
                    paths.append(f"{path}[{position}]")
                    continue
                item_path = f"{path}[{_identity(item, position)}]"
                paths.append(item_path)
                paths += present_fields(item, item_path + ".")
        else:
            paths.append(path)
            if field.message_type is not None:
                paths += present_fields(value, path + ".")
    return sorted(paths)


def _identity(item: Any, position: int) -> str:
    names = {field.name for field, _ in item.ListFields()}
    if "id" in names:
        return f"id={item.id}"
    if {"artifact_id", "execution_id"} <= names:  # an event
        kind = f",type={item.type}" if "type" in names else ""
        return f"a={item.artifact_id},e={item.execution_id}{kind}"
    if "context_id" in names:  # an attribution or association
        other = "artifact_id" if "artifact_id" in names else "execution_id"
        return f"c={item.context_id},{other}={getattr(item, other, '')}"
    return str(position)


# ------------------------------------------------------------------------- recorder


class Recorder:
    """Runs steps against one store and records their normalized outcomes."""

    def __init__(self, store: metadata_store.MetadataStore) -> None:
        self.store = store
        self.steps: list[dict[str, Json]] = []
        self._names: set[str] = set()
        # (kind, id) -> last_update_time_since_epoch seen by the previous tracked read
        self._last_seen: dict[tuple[str, int], int] = {}

    def step(self, name: str, action: Callable[[], object]) -> Any:
        """Run ``action``; record success with its result or the error class."""
        if name in self._names:  # pragma: no cover - scenario authoring error
            raise ValueError(f"duplicate step name {name}")
        self._names.add(name)
        time.sleep(STEP_PAUSE_SECONDS)
        try:
            value = action()
        except errors.StatusError as exc:
            self.steps.append({"step": name, "ok": False, "code": type(exc).__name__, "result": None})
            return None
        self.steps.append(
            {
                "step": name,
                "ok": True,
                "code": "OK",
                "result": scrub_timestamps(to_json(value)),
            }
        )
        return value

    def rpc(self, method: str, request: message.Message) -> message.Message:
        """Call any RPC by name through the client's generic dispatcher."""
        response = getattr(svc, f"{method}Response")()
        self.store._call(method, request, response)
        return response

    def call(self, name: str, method: str, request: message.Message) -> Any:
        return self.step(name, lambda: self.rpc(method, request))

    def wire(self, name: str, method: str, request: message.Message, shape: Callable[[Any], Json] = to_json) -> Any:
        """Like `call`, and also record which fields the response has set (recursively).

        The client's Python API returns plain lists for most reads, which hides presence;
        this goes through the serialized response instead (parsed from MLMD's bytes in
        process, copied from the gRPC answer otherwise, presence kept either way). `shape`
        turns the response into the recorded value (e.g. sorting what MLMD leaves unordered)."""

        def answer() -> dict[str, Json]:
            response = self.rpc(method, request)
            return {"present": present_fields(response), "response": shape(response)}

        return self.step(name, answer)

    def tracked(self, kind: str, nodes: Sequence[Any]) -> dict[str, Json]:
        """Describe timestamp behavior of freshly read nodes.

        ``create_equals_update``: both timestamps equal (true right after insert).
        ``update_changed``: last_update differs from the previous tracked read of the
        same node (``None`` the first time a node is seen).
        """
        info = []
        for item in nodes:
            key = (kind, item.id)
            previous = self._last_seen.get(key)
            current = item.last_update_time_since_epoch
            self._last_seen[key] = current
            info.append(
                {
                    "id": item.id,
                    "create_equals_update": item.create_time_since_epoch == current,
                    "update_changed": None if previous is None else previous != current,
                }
            )
        return {"nodes": list(nodes), "timestamps": info}

    def read_artifacts(self, name: str, ids: Sequence[int]) -> Any:
        return self.step(name, lambda: self.tracked("artifact", self.store.get_artifacts_by_id(ids)))

    def read_executions(self, name: str, ids: Sequence[int]) -> Any:
        return self.step(
            name,
            lambda: self.tracked("execution", self.store.get_executions_by_id(ids)),
        )

    def read_contexts(self, name: str, ids: Sequence[int]) -> Any:
        return self.step(name, lambda: self.tracked("context", self.store.get_contexts_by_id(ids)))


def masked(cls: type[M], field: str, nodes: Sequence[message.Message], mask: Sequence[str]) -> M:
    request = cls()
    getattr(request, field).extend(nodes)
    request.update_mask.paths.extend(mask)
    return request


# ------------------------------------------------------------------------ suite api1


def type_writes(r: Recorder) -> None:
    s = r.store
    dataset_props = {
        "p_int": INT,
        "p_double": DOUBLE,
        "p_str": STRING,
        "p_struct": STRUCT,
        "p_proto": PROTO,
        "p_bool": BOOLEAN,
    }
    with_q = {**dataset_props, "q": INT}

    # -- PutArtifactType: creation and evolution
    r.step(
        "artifact_type.create",
        lambda: s.put_artifact_type(a_type(DATASET, dataset_props, description="first", external_id="at-ext-1")),
    )
    r.step(
        "artifact_type.put_identical",
        lambda: s.put_artifact_type(a_type(DATASET, dataset_props)),
    )
    r.step(
        "artifact_type.conflicting_property_type",
        lambda: s.put_artifact_type(a_type(DATASET, {**dataset_props, "p_int": STRING})),
    )
    r.step(
        "artifact_type.add_field_not_allowed",
        lambda: s.put_artifact_type(a_type(DATASET, with_q)),
    )
    r.step(
        "artifact_type.add_field_allowed",
        lambda: s.put_artifact_type(a_type(DATASET, with_q), can_add_fields=True),
    )
    r.step(
        "artifact_type.omit_fields_not_allowed",
        lambda: s.put_artifact_type(a_type(DATASET, {"p_int": INT})),
    )
    r.step(
        "artifact_type.omit_fields_allowed_description_ignored",
        lambda: s.put_artifact_type(a_type(DATASET, {"p_int": INT}, description="changed"), can_omit_fields=True),
    )
    r.step("artifact_type.get_after_evolution", lambda: s.get_artifact_type(DATASET))
    r.step(
        "artifact_type.create_version_v1",
        lambda: s.put_artifact_type(a_type(DATASET, {"p_int": INT}, version="v1")),
    )
    r.step(
        "artifact_type.empty_version_is_unversioned",
        lambda: s.put_artifact_type(a_type(DATASET, with_q, version="")),
    )
    r.step("artifact_type.empty_name", lambda: s.put_artifact_type(a_type("", {"p": INT})))
    r.step(
        "artifact_type.create_unknown_property_type",
        lambda: s.put_artifact_type(a_type("compat.Bad", {"p": UNKNOWN})),
    )
    r.step(
        "artifact_type.add_unknown_property_type",
        lambda: s.put_artifact_type(a_type(DATASET, {**with_q, "r": UNKNOWN}), can_add_fields=True),
    )
    r.call(
        "artifact_type.all_fields_match_false",
        "PutArtifactType",
        svc.PutArtifactTypeRequest(artifact_type=a_type(DATASET, with_q), all_fields_match=False),
    )
    r.call(
        "artifact_type.request_without_type",
        "PutArtifactType",
        svc.PutArtifactTypeRequest(),
    )
    r.call(
        "artifact_type.can_delete_fields_ignored",
        "PutArtifactType",
        svc.PutArtifactTypeRequest(artifact_type=a_type(DATASET, with_q), can_delete_fields=True),
    )

    # -- base_type on artifact types
    r.step(
        "artifact_type.base_type_create",
        lambda: s.put_artifact_type(a_type(MODEL, {"acc": DOUBLE}, base_type=AT.MODEL)),
    )
    r.step(
        "artifact_type.base_type_same",
        lambda: s.put_artifact_type(a_type(MODEL, {"acc": DOUBLE}, base_type=AT.MODEL)),
    )
    r.step(
        "artifact_type.base_type_absent_keeps_link",
        lambda: s.put_artifact_type(a_type(MODEL, {"acc": DOUBLE})),
    )
    r.step(
        "artifact_type.base_type_changed",
        lambda: s.put_artifact_type(a_type(MODEL, {"acc": DOUBLE}, base_type=AT.DATASET)),
    )
    r.step(
        "artifact_type.base_type_unset",
        lambda: s.put_artifact_type(a_type(MODEL, {"acc": DOUBLE}, base_type=AT.UNSET)),
    )
    r.step("artifact_type.get_with_base_type", lambda: s.get_artifact_type(MODEL))
    r.step(
        "artifact_type.base_type_set_on_existing",
        lambda: s.put_artifact_type(a_type(DATASET, {"p_int": INT}, version="v1", base_type=AT.DATASET)),
    )

    # -- external ids on types
    r.step(
        "artifact_type.external_id_same_kind_clash",
        lambda: s.put_artifact_type(a_type("compat.Other", external_id="at-ext-1")),
    )
    r.step(
        "artifact_type.external_id_set_on_existing",
        lambda: s.put_artifact_type(a_type(DATASET, {"p_int": INT}, version="v1", external_id="at-ext-v1")),
    )
    r.step(
        "artifact_type.external_id_empty_keeps_stored",
        lambda: s.put_artifact_type(a_type(DATASET, {"p_int": INT}, version="v1", external_id="")),
    )
    r.step(
        "artifact_type.get_version_v1",
        lambda: s.get_artifact_type(DATASET, type_version="v1"),
    )

    # -- PutExecutionType
    trainer = e_type(
        TRAINER,
        {"lr": DOUBLE, "steps": INT},
        description="trains",
        external_id="et-ext-1",
        base_type=ET.TRAIN,
    )
    trainer.input_type.simple.name = DATASET
    trainer.output_type.none.SetInParent()
    r.step("execution_type.create", lambda: s.put_execution_type(trainer))
    r.step(
        "execution_type.put_identical_without_extras",
        lambda: s.put_execution_type(e_type(TRAINER, {"lr": DOUBLE, "steps": INT})),
    )
    r.step(
        "execution_type.conflicting_property_type",
        lambda: s.put_execution_type(e_type(TRAINER, {"lr": INT, "steps": INT})),
    )
    r.step(
        "execution_type.add_field_allowed",
        lambda: s.put_execution_type(
            e_type(TRAINER, {"lr": DOUBLE, "steps": INT, "seed": INT}),
            can_add_fields=True,
        ),
    )
    r.step(
        "execution_type.external_id_cross_kind_clash",
        lambda: s.put_execution_type(e_type("compat.Clash", external_id="at-ext-1")),
    )
    r.step(
        "execution_type.base_type_changed",
        lambda: s.put_execution_type(
            e_type(
                TRAINER,
                {"lr": DOUBLE, "steps": INT, "seed": INT},
                base_type=ET.EVALUATE,
            )
        ),
    )
    r.call(
        "execution_type.all_fields_match_false",
        "PutExecutionType",
        svc.PutExecutionTypeRequest(execution_type=e_type(TRAINER), all_fields_match=False),
    )
    r.step("execution_type.get", lambda: s.get_execution_type(TRAINER))

    # -- PutContextType
    r.step(
        "context_type.create",
        lambda: s.put_context_type(c_type(PIPELINE, {"owner": STRING}, description="runs", external_id="ct-ext-1")),
    )
    r.step(
        "context_type.put_identical",
        lambda: s.put_context_type(c_type(PIPELINE, {"owner": STRING})),
    )
    r.step(
        "context_type.omit_fields_not_allowed",
        lambda: s.put_context_type(c_type(PIPELINE)),
    )
    r.step(
        "context_type.base_type_unset",
        lambda: s.put_context_type(c_type(PIPELINE, {"owner": STRING}, base_type=CT.UNSET)),
    )
    r.step(
        "context_type.create_version_v2",
        lambda: s.put_context_type(c_type(PIPELINE, {"owner": STRING, "n": INT}, version="v2")),
    )
    r.call(
        "context_type.all_fields_match_false",
        "PutContextType",
        svc.PutContextTypeRequest(context_type=c_type(PIPELINE), all_fields_match=False),
    )

    # -- PutTypes
    r.call(
        "put_types.mixed_create_and_reuse",
        "PutTypes",
        svc.PutTypesRequest(
            artifact_types=[
                a_type(DATASET, with_q),
                a_type("compat.Schema", {"s": STRING}),
            ],
            execution_types=[e_type("compat.Evaluator", {"score": DOUBLE})],
            context_types=[c_type("compat.Run"), c_type("compat.Run")],
        ),
    )
    r.call("put_types.empty", "PutTypes", svc.PutTypesRequest())
    r.call(
        "put_types.conflict_is_atomic",
        "PutTypes",
        svc.PutTypesRequest(
            artifact_types=[a_type("compat.Atomic")],
            context_types=[c_type(PIPELINE, {"owner": INT})],
        ),
    )
    r.step(
        "put_types.conflict_created_nothing",
        lambda: s.get_artifact_type("compat.Atomic"),
    )
    r.call(
        "put_types.all_fields_match_false",
        "PutTypes",
        svc.PutTypesRequest(artifact_types=[a_type(DATASET, with_q)], all_fields_match=False),
    )
    r.call(
        "put_types.add_field_not_allowed",
        "PutTypes",
        svc.PutTypesRequest(artifact_types=[a_type("compat.Schema", {"s": STRING, "t": INT})]),
    )
    r.call(
        "put_types.add_field_allowed",
        "PutTypes",
        svc.PutTypesRequest(
            artifact_types=[a_type("compat.Schema", {"s": STRING, "t": INT})],
            can_add_fields=True,
        ),
    )
    r.call(
        "put_types.omit_fields_not_allowed",
        "PutTypes",
        svc.PutTypesRequest(execution_types=[e_type("compat.Evaluator")]),
    )
    r.call(
        "put_types.omit_fields_allowed",
        "PutTypes",
        svc.PutTypesRequest(execution_types=[e_type("compat.Evaluator")], can_omit_fields=True),
    )
    r.call(
        "put_types.conflicting_property_type",
        "PutTypes",
        svc.PutTypesRequest(execution_types=[e_type("compat.Evaluator", {"score": STRING})]),
    )
    r.call(
        "put_types.versions",
        "PutTypes",
        svc.PutTypesRequest(
            artifact_types=[
                a_type("compat.Schema", {"s": STRING}, version="v2"),
                a_type("compat.Schema", {"s": STRING, "t": INT}, version=""),
            ],
            context_types=[c_type(PIPELINE, {"owner": STRING, "n": INT}, version="v2")],
        ),
    )
    r.call(
        "put_types.external_id_same_kind_clash",
        "PutTypes",
        svc.PutTypesRequest(context_types=[c_type("compat.Fresh", external_id="ct-ext-1")]),
    )
    r.call(
        "put_types.external_id_new",
        "PutTypes",
        svc.PutTypesRequest(
            artifact_types=[
                a_type(
                    "compat.Schema",
                    {"s": STRING},
                    version="v2",
                    external_id="at-ext-s2",
                )
            ],
            execution_types=[e_type("compat.Evaluator", {"score": DOUBLE}, external_id="et-ext-eval")],
        ),
    )
    r.call(
        "put_types.base_type_set",
        "PutTypes",
        svc.PutTypesRequest(
            artifact_types=[a_type("compat.Schema", {"s": STRING, "t": INT}, base_type=AT.STATISTICS)],
            execution_types=[e_type("compat.Evaluator", {"score": DOUBLE}, base_type=ET.EVALUATE)],
        ),
    )
    r.call(
        "put_types.base_type_unchanged",
        "PutTypes",
        svc.PutTypesRequest(artifact_types=[a_type("compat.Schema", {"s": STRING, "t": INT}, base_type=AT.STATISTICS)]),
    )
    r.call(
        "put_types.base_type_changed",
        "PutTypes",
        svc.PutTypesRequest(artifact_types=[a_type("compat.Schema", {"s": STRING, "t": INT}, base_type=AT.METRICS)]),
    )
    r.call(
        "put_types.base_type_unset",
        "PutTypes",
        svc.PutTypesRequest(execution_types=[e_type("compat.Evaluator", {"score": DOUBLE}, base_type=ET.UNSET)]),
    )
    r.call(
        "put_types.context_base_type_unset",
        "PutTypes",
        svc.PutTypesRequest(context_types=[c_type("compat.Run", base_type=CT.UNSET)]),
    )


def type_reads(r: Recorder) -> None:
    s = r.store
    r.step("artifact_type.get_unknown", lambda: s.get_artifact_type("compat.Nope"))
    r.step(
        "artifact_type.get_unknown_version",
        lambda: s.get_artifact_type(DATASET, type_version="v9"),
    )
    r.step("artifact_type.get_system", lambda: s.get_artifact_type("mlmd.Model"))
    r.step("execution_type.get_unknown", lambda: s.get_execution_type("compat.Nope"))
    r.step("execution_type.get_other_kind_name", lambda: s.get_execution_type(DATASET))
    r.step("context_type.get", lambda: s.get_context_type(PIPELINE))
    r.step(
        "context_type.get_version_v2",
        lambda: s.get_context_type(PIPELINE, type_version="v2"),
    )
    r.step("context_type.get_unknown", lambda: s.get_context_type("compat.Nope"))

    r.step("artifact_types.list", s.get_artifact_types)
    r.step("execution_types.list", s.get_execution_types)
    r.step("context_types.list", s.get_context_types)

    r.step(
        "artifact_types.by_id_duplicates_missing_cross_kind",
        lambda: s.get_artifact_types_by_id([10, 10, 99, 1, 13]),
    )
    r.step("artifact_types.by_id_empty", lambda: s.get_artifact_types_by_id([]))
    r.step("execution_types.by_id", lambda: s.get_execution_types_by_id([13, 10, 5, 13]))
    r.step("context_types.by_id", lambda: s.get_context_types_by_id([15, 14, 14, 1, 99]))

    r.step(
        "artifact_types.by_external_ids_partial",
        lambda: s.get_artifact_types_by_external_ids(["at-ext-v1", "nope", "at-ext-1"]),
    )
    r.step(
        "artifact_types.by_external_ids_none_found",
        lambda: s.get_artifact_types_by_external_ids(["nope"]),
    )
    r.step(
        "artifact_types.by_external_ids_empty_string",
        lambda: s.get_artifact_types_by_external_ids(["at-ext-1", ""]),
    )
    r.call(
        "artifact_types.by_external_ids_empty_list",
        "GetArtifactTypesByExternalIds",
        svc.GetArtifactTypesByExternalIdsRequest(),
    )
    r.step(
        "execution_types.by_external_ids",
        lambda: s.get_execution_types_by_external_ids(["et-ext-eval", "et-ext-1"]),
    )
    r.step(
        "execution_types.by_external_ids_other_kind",
        lambda: s.get_execution_types_by_external_ids(["at-ext-1"]),
    )
    r.step(
        "execution_types.by_external_ids_empty_string",
        lambda: s.get_execution_types_by_external_ids([""]),
    )
    r.call(
        "context_types.by_external_ids",
        "GetContextTypesByExternalIds",
        svc.GetContextTypesByExternalIdsRequest(external_ids=["ct-ext-1", "x"]),
    )
    r.step(
        "context_types.by_external_ids_none_found",
        lambda: s.get_context_types_by_external_ids(["x"]),
    )
    r.step(
        "context_types.by_external_ids_empty_string",
        lambda: s.get_context_types_by_external_ids([""]),
    )


def artifact_writes(r: Recorder) -> None:
    s = r.store
    rich = artifact(
        type_id=10,
        name="a1",
        uri="mem://u1",
        external_id="art-ext-1",
        state=mlmd.Artifact.LIVE,
        properties={
            "p_int": 42,
            "p_double": 0.123456789,
            "p_str": "hello",
            "p_struct": {
                "k": "v",
                "n": 1.5,
                "l": [1, "two", True],
                "nested": {"x": None},
            },
            "p_proto": packed(wrappers_pb2.StringValue(value="packed")),
            "p_bool": True,
        },
        custom_properties={
            "c_int": -7,
            "c_huge": HUGE_INT,
            "c_tiny": 1e-10,
            "c_big": 123456789.123456789,
            "c_sci": HUGE_DOUBLE,
            "c_str": "",
            "c_struct": {},
            "c_proto": packed(wrappers_pb2.Int64Value(value=5)),
            "c_bool": False,
        },
    )
    second = artifact(type_id=10, name="a2", uri="mem://u1", custom_properties={"x": "keep", "y": 1})
    r.step(
        "artifacts.create_batch",
        lambda: s.put_artifacts([rich, second, artifact(type_id=10)]),
    )
    r.step(
        "artifacts.create_with_system_type",
        lambda: s.put_artifacts([artifact(type_id=1, uri="mem://sys")]),
    )
    r.step(
        "artifacts.create_same_name_other_type",
        lambda: s.put_artifacts([artifact(type_id=11, name="a1", properties={"p_int": 1})]),
    )
    r.step(
        "artifacts.create_empty_name",
        lambda: s.put_artifacts([artifact(type_id=10, name="")]),
    )
    r.step(
        "artifacts.duplicate_empty_name",
        lambda: s.put_artifacts([artifact(type_id=10, name="")]),
    )
    r.step(
        "artifacts.duplicate_name_is_atomic",
        lambda: s.put_artifacts([artifact(type_id=10, name="a7"), artifact(type_id=10, name="a1")]),
    )
    r.step(
        "artifacts.duplicate_name_created_nothing",
        lambda: s.get_artifact_by_type_and_name(DATASET, "a7"),
    )
    r.step(
        "artifacts.duplicate_external_id",
        lambda: s.put_artifacts([artifact(type_id=12, external_id="art-ext-1")]),
    )
    r.step("artifacts.unknown_type_id", lambda: s.put_artifacts([artifact(type_id=999)]))
    r.step("artifacts.execution_type_id", lambda: s.put_artifacts([artifact(type_id=13)]))
    r.step(
        "artifacts.missing_type_id",
        lambda: s.put_artifacts([artifact(uri="mem://none")]),
    )
    r.step(
        "artifacts.unknown_property",
        lambda: s.put_artifacts([artifact(type_id=10, properties={"nope": 1})]),
    )
    r.step(
        "artifacts.mismatched_property_type",
        lambda: s.put_artifacts([artifact(type_id=10, properties={"p_int": "forty-two"})]),
    )
    r.step(
        "artifacts.property_on_system_type",
        lambda: s.put_artifacts([artifact(type_id=1, properties={"p_int": 1})]),
    )
    r.call("artifacts.put_empty_list", "PutArtifacts", svc.PutArtifactsRequest())

    r.read_artifacts("artifacts.read_created", [3, 1, 3, 99, 2, 4, 5, 6])

    # -- whole updates (no mask)
    r.step("artifacts.update_no_mask_wipes", lambda: s.put_artifacts([artifact(id=5)]))
    r.step(
        "artifacts.update_no_mask_replaces",
        lambda: s.put_artifacts(
            [
                artifact(
                    id=2,
                    type_id=10,
                    name="renamed-ignored",
                    uri="mem://u2",
                    custom_properties={"y": 2},
                )
            ]
        ),
    )
    r.step(
        "artifacts.update_no_mask_unchanged_content",
        lambda: s.put_artifacts([artifact(id=3, type_id=10)]),
    )
    r.read_artifacts("artifacts.read_after_whole_updates", [2, 3, 5])
    echoed = r.step("artifacts.read_for_echo", lambda: s.get_artifacts_by_id([2]))
    r.step("artifacts.update_echo_of_read", lambda: s.put_artifacts(list(echoed or [])))
    r.read_artifacts("artifacts.read_after_echo", [2])

    # -- masked updates on artifact 1
    r.call(
        "artifacts.update_mask_uri",
        "PutArtifacts",
        masked(
            svc.PutArtifactsRequest,
            "artifacts",
            [
                artifact(
                    id=1,
                    uri="mem://u1-new",
                    external_id="ignored",
                    custom_properties={"c_int": 100},
                )
            ],
            ["uri"],
        ),
    )
    r.call(
        "artifacts.update_mask_custom_properties",
        "PutArtifacts",
        masked(
            svc.PutArtifactsRequest,
            "artifacts",
            [artifact(id=1, custom_properties={"c_str": "now set", "c_new": 1})],
            ["custom_properties.c_str", "custom_properties.c_bool"],
        ),
    )
    r.call(
        "artifacts.update_mask_one_property_ignores_others",
        "PutArtifacts",
        masked(
            svc.PutArtifactsRequest,
            "artifacts",
            [artifact(id=1, properties={"p_str": "world", "p_int": "not-an-int"})],
            ["properties.p_str"],
        ),
    )
    r.call(
        "artifacts.update_mask_invalid_listed_property",
        "PutArtifacts",
        masked(
            svc.PutArtifactsRequest,
            "artifacts",
            [artifact(id=1, properties={"p_int": "not-an-int"})],
            ["properties.p_int"],
        ),
    )
    r.read_artifacts("artifacts.read_after_masked_updates", [1])
    r.call(
        "artifacts.update_mask_all_properties",
        "PutArtifacts",
        masked(
            svc.PutArtifactsRequest,
            "artifacts",
            [artifact(id=1, properties={"p_int": 43, "p_bool": False})],
            ["properties", "properties.p_str"],
        ),
    )
    r.call(
        "artifacts.update_mask_clears_external_id_and_state",
        "PutArtifacts",
        masked(
            svc.PutArtifactsRequest,
            "artifacts",
            [artifact(id=1)],
            ["external_id", "state"],
        ),
    )
    r.read_artifacts("artifacts.read_after_clearing", [1])
    r.call(
        "artifacts.update_mask_sets_external_id",
        "PutArtifacts",
        masked(
            svc.PutArtifactsRequest,
            "artifacts",
            [
                artifact(
                    id=1,
                    external_id="art-ext-1b",
                    state=mlmd.Artifact.MARKED_FOR_DELETION,
                )
            ],
            ["external_id", "state", "no_such_field"],
        ),
    )
    r.read_artifacts("artifacts.read_after_setting_external_id", [1])
    r.step(
        "artifacts.update_nonexistent",
        lambda: s.put_artifacts([artifact(id=999, type_id=10)]),
    )
    r.call(
        "artifacts.update_nonexistent_masked",
        "PutArtifacts",
        masked(svc.PutArtifactsRequest, "artifacts", [artifact(id=999, uri="x")], ["uri"]),
    )
    r.step(
        "artifacts.update_type_id_mismatch",
        lambda: s.put_artifacts([artifact(id=1, type_id=11)]),
    )
    r.step(
        "artifacts.update_external_id_clash",
        lambda: s.put_artifacts([artifact(id=2, type_id=10, external_id="art-ext-1b")]),
    )
    r.call(
        "artifacts.update_mask_with_insert",
        "PutArtifacts",
        masked(
            svc.PutArtifactsRequest,
            "artifacts",
            [
                artifact(id=2, uri="mem://u2-masked"),
                artifact(type_id=10, name="a8", uri="mem://u8"),
            ],
            ["uri"],
        ),
    )
    r.read_artifacts("artifacts.read_after_mixed", [2, 7])

    # -- optimistic concurrency (abort_if_latest_updated_time_changed)
    current = s.get_artifacts_by_id([1])[0].last_update_time_since_epoch

    def occ_request(artifact_msg: mlmd.Artifact) -> svc.PutArtifactsRequest:
        request = masked(svc.PutArtifactsRequest, "artifacts", [artifact_msg], ["uri"])
        request.options.abort_if_latest_updated_time_changed = True
        return request

    r.call(
        "artifacts.occ_mismatch",
        "PutArtifacts",
        occ_request(artifact(id=1, uri="mem://occ-stale", last_update_time_since_epoch=current - 1)),
    )
    r.call(
        "artifacts.occ_missing_timestamp",
        "PutArtifacts",
        occ_request(artifact(id=1, uri="mem://occ-none")),
    )
    r.call(
        "artifacts.occ_nonexistent",
        "PutArtifacts",
        occ_request(artifact(id=999, uri="mem://occ", last_update_time_since_epoch=current)),
    )
    r.call(
        "artifacts.occ_match",
        "PutArtifacts",
        occ_request(artifact(id=1, uri="mem://occ-ok", last_update_time_since_epoch=current)),
    )
    r.read_artifacts("artifacts.read_after_occ", [1])
    r.step(
        "artifacts.create_struct_prefix_string",
        lambda: s.put_artifacts(
            [
                artifact(
                    type_id=10,
                    name="a-prefix",
                    custom_properties={"s": "mlmd-struct::"},
                )
            ]
        ),
    )
    r.read_artifacts("artifacts.read_struct_prefix_string", [8])


def artifact_reads(r: Recorder) -> None:
    s = r.store
    r.step("artifacts.get_all", s.get_artifacts)
    r.step(
        "artifacts.get_by_id_dedup_order",
        lambda: s.get_artifacts_by_id([4, 3, 1, 3, 99]),
    )
    r.step(
        "artifacts.get_by_id_populate_types",
        lambda: s.get_artifacts_and_types_by_artifact_ids([5, 2, 4, 1]),
    )
    r.step("artifacts.get_by_id_empty", lambda: s.get_artifacts_by_id([]))
    r.step("artifacts.get_by_type", lambda: s.get_artifacts_by_type(DATASET))
    r.step("artifacts.get_by_type_version", lambda: s.get_artifacts_by_type(DATASET, "v1"))
    r.step("artifacts.get_by_type_system", lambda: s.get_artifacts_by_type("mlmd.Dataset"))
    r.step("artifacts.get_by_type_unknown", lambda: s.get_artifacts_by_type("compat.Nope"))
    r.step(
        "artifacts.get_by_type_unknown_version",
        lambda: s.get_artifacts_by_type(DATASET, "v9"),
    )
    r.step(
        "artifacts.get_by_type_and_name",
        lambda: s.get_artifact_by_type_and_name(DATASET, "a1"),
    )
    r.step(
        "artifacts.get_by_type_and_name_version",
        lambda: s.get_artifact_by_type_and_name(DATASET, "a1", type_version="v1"),
    )
    r.step(
        "artifacts.get_by_type_and_name_empty_name",
        lambda: s.get_artifact_by_type_and_name(DATASET, ""),
    )
    r.step(
        "artifacts.get_by_type_and_name_absent",
        lambda: s.get_artifact_by_type_and_name(DATASET, "zzz"),
    )
    r.call(
        "artifacts.get_by_type_and_name_unknown_type",
        "GetArtifactByTypeAndName",
        svc.GetArtifactByTypeAndNameRequest(type_name="compat.Nope", artifact_name="a1"),
    )
    r.step("artifacts.get_by_uri", lambda: s.get_artifacts_by_uri("mem://u2-masked"))
    r.step("artifacts.get_by_uri_stale", lambda: s.get_artifacts_by_uri("mem://u1"))
    r.call(
        "artifacts.get_by_uris_duplicated",
        "GetArtifactsByURI",
        svc.GetArtifactsByURIRequest(uris=["mem://u8", "mem://u8"]),
    )
    r.call(
        "artifacts.get_by_uris_empty_string",
        "GetArtifactsByURI",
        svc.GetArtifactsByURIRequest(uris=[""]),
    )
    # MLMD returns URI groups in hash order, so this step compares a sorted result.
    r.step(
        "artifacts.get_by_uris_several_sorted",
        lambda: sorted(
            r.rpc(
                "GetArtifactsByURI",
                svc.GetArtifactsByURIRequest(uris=["mem://sys", "mem://none", "mem://u8", "mem://sys"]),
            ).artifacts,
            key=lambda item: item.id,
        ),
    )
    r.call(
        "artifacts.get_by_uris_empty_list",
        "GetArtifactsByURI",
        svc.GetArtifactsByURIRequest(),
    )
    deprecated = svc.GetArtifactsByURIRequest.FromString(b"\x0a\x08mem://u1")
    r.call("artifacts.get_by_uri_deprecated_field", "GetArtifactsByURI", deprecated)
    r.step(
        "artifacts.get_by_external_ids",
        lambda: s.get_artifacts_by_external_ids(["nope", "art-ext-1b", "art-ext-1b"]),
    )
    r.step(
        "artifacts.get_by_external_ids_none_found",
        lambda: s.get_artifacts_by_external_ids(["art-ext-1"]),
    )
    r.step(
        "artifacts.get_by_external_ids_empty_string",
        lambda: s.get_artifacts_by_external_ids([""]),
    )
    r.call(
        "artifacts.get_by_external_ids_empty_list",
        "GetArtifactsByExternalIds",
        svc.GetArtifactsByExternalIdsRequest(),
    )


def execution_writes_and_reads(r: Recorder) -> None:
    s = r.store
    first = execution(
        type_id=13,
        name="e1",
        external_id="exe-ext-1",
        last_known_state=mlmd.Execution.RUNNING,
        properties={"lr": 0.001, "steps": 100},
        custom_properties={"note": "n", "ratio": 2.5e-7},
    )
    r.step(
        "executions.create_batch",
        lambda: s.put_executions([first, execution(type_id=13, name="e2"), execution(type_id=5)]),
    )
    r.step(
        "executions.duplicate_name",
        lambda: s.put_executions([execution(type_id=13, name="e1")]),
    )
    r.step(
        "executions.duplicate_external_id",
        lambda: s.put_executions([execution(type_id=5, external_id="exe-ext-1")]),
    )
    r.step("executions.unknown_type_id", lambda: s.put_executions([execution(type_id=999)]))
    r.step("executions.artifact_type_id", lambda: s.put_executions([execution(type_id=10)]))
    r.step(
        "executions.missing_type_id",
        lambda: s.put_executions([execution(name="untyped")]),
    )
    r.step(
        "executions.unknown_property",
        lambda: s.put_executions([execution(type_id=13, properties={"nope": 1})]),
    )
    r.step(
        "executions.mismatched_property_type",
        lambda: s.put_executions([execution(type_id=13, properties={"steps": 1.5})]),
    )
    r.read_executions("executions.read_created", [3, 1, 2])

    r.step(
        "executions.update_no_mask",
        lambda: s.put_executions([execution(id=1, type_id=13, last_known_state=mlmd.Execution.COMPLETE)]),
    )
    r.call(
        "executions.update_mask",
        "PutExecutions",
        masked(
            svc.PutExecutionsRequest,
            "executions",
            [
                execution(
                    id=2,
                    last_known_state=mlmd.Execution.FAILED,
                    external_id="exe-ext-2",
                    properties={"steps": 5, "lr": "ignored"},
                    custom_properties={"tag": True},
                )
            ],
            [
                "last_known_state",
                "external_id",
                "properties.steps",
                "custom_properties",
            ],
        ),
    )
    r.read_executions("executions.read_after_updates", [1, 2])
    r.step(
        "executions.update_nonexistent",
        lambda: s.put_executions([execution(id=999, type_id=13)]),
    )
    r.step(
        "executions.update_type_id_mismatch",
        lambda: s.put_executions([execution(id=1, type_id=5)]),
    )
    r.step(
        "executions.update_external_id_clash",
        lambda: s.put_executions([execution(id=3, type_id=5, external_id="exe-ext-2")]),
    )

    r.step("executions.get_all", s.get_executions)
    r.step(
        "executions.get_by_id_dedup_order",
        lambda: s.get_executions_by_id([3, 1, 3, 99]),
    )
    r.step("executions.get_by_type", lambda: s.get_executions_by_type(TRAINER))
    r.step("executions.get_by_type_system", lambda: s.get_executions_by_type("mlmd.Train"))
    r.step(
        "executions.get_by_type_unknown",
        lambda: s.get_executions_by_type("compat.Nope"),
    )
    r.step(
        "executions.get_by_type_and_name",
        lambda: s.get_execution_by_type_and_name(TRAINER, "e2"),
    )
    r.step(
        "executions.get_by_type_and_name_absent",
        lambda: s.get_execution_by_type_and_name(TRAINER, "zzz"),
    )
    r.step(
        "executions.get_by_external_ids",
        lambda: s.get_executions_by_external_ids(["exe-ext-2", "x"]),
    )
    r.step(
        "executions.get_by_external_ids_none_found",
        lambda: s.get_executions_by_external_ids(["exe-ext-1"]),
    )
    r.step(
        "executions.get_by_external_ids_empty_string",
        lambda: s.get_executions_by_external_ids([""]),
    )


def context_writes_and_reads(r: Recorder) -> None:
    s = r.store
    r.step(
        "contexts.create_batch",
        lambda: s.put_contexts(
            [
                context(
                    type_id=14,
                    name="c1",
                    external_id="ctx-ext-1",
                    properties={"owner": "alice"},
                ),
                context(type_id=14, name="c2"),
                context(type_id=14, name="c3"),
                context(type_id=18, name="c4"),
            ]
        ),
    )
    r.step(
        "contexts.create_same_name_other_type",
        lambda: s.put_contexts([context(type_id=15, name="c1")]),
    )
    r.step("contexts.create_without_name", lambda: s.put_contexts([context(type_id=14)]))
    r.step(
        "contexts.create_empty_name",
        lambda: s.put_contexts([context(type_id=14, name="")]),
    )
    r.step(
        "contexts.duplicate_name",
        lambda: s.put_contexts([context(type_id=14, name="c1")]),
    )
    r.step(
        "contexts.duplicate_external_id",
        lambda: s.put_contexts([context(type_id=14, name="c9", external_id="ctx-ext-1")]),
    )
    r.step(
        "contexts.unknown_type_id",
        lambda: s.put_contexts([context(type_id=999, name="c9")]),
    )
    r.step(
        "contexts.artifact_type_id",
        lambda: s.put_contexts([context(type_id=10, name="c9")]),
    )
    r.step("contexts.missing_type_id", lambda: s.put_contexts([context(name="c9")]))
    r.step(
        "contexts.unknown_property",
        lambda: s.put_contexts([context(type_id=14, name="c9", properties={"nope": "x"})]),
    )
    r.step(
        "contexts.mismatched_property_type",
        lambda: s.put_contexts([context(type_id=14, name="c9", properties={"owner": 1})]),
    )
    r.read_contexts("contexts.read_created", [1, 2, 3, 4, 5])

    r.step(
        "contexts.update_rename",
        lambda: s.put_contexts([context(id=4, type_id=18, name="c4-renamed")]),
    )
    r.step("contexts.update_without_name", lambda: s.put_contexts([context(id=4)]))
    r.step(
        "contexts.update_rename_onto_existing",
        lambda: s.put_contexts([context(id=3, name="c2")]),
    )
    r.call(
        "contexts.update_mask_clears_name",
        "PutContexts",
        masked(svc.PutContextsRequest, "contexts", [context(id=3)], ["name"]),
    )
    r.call(
        "contexts.update_mask_properties",
        "PutContexts",
        masked(
            svc.PutContextsRequest,
            "contexts",
            [context(id=1, properties={"owner": "bob"}, custom_properties={"tag": "t"})],
            ["properties.owner", "custom_properties"],
        ),
    )
    r.step(
        "contexts.update_nonexistent",
        lambda: s.put_contexts([context(id=999, type_id=14, name="c9")]),
    )
    r.step(
        "contexts.update_type_id_mismatch",
        lambda: s.put_contexts([context(id=1, type_id=15, name="c1")]),
    )
    r.read_contexts("contexts.read_after_updates", [1, 3, 4])

    r.step("contexts.get_all", s.get_contexts)
    r.step("contexts.get_by_id_dedup_order", lambda: s.get_contexts_by_id([2, 1, 2, 99]))
    r.step("contexts.get_by_type", lambda: s.get_contexts_by_type(PIPELINE))
    r.step("contexts.get_by_type_version", lambda: s.get_contexts_by_type(PIPELINE, "v2"))
    r.step("contexts.get_by_type_unknown", lambda: s.get_contexts_by_type("compat.Nope"))
    r.step(
        "contexts.get_by_type_and_name",
        lambda: s.get_context_by_type_and_name(PIPELINE, "c1"),
    )
    r.step(
        "contexts.get_by_type_and_name_version",
        lambda: s.get_context_by_type_and_name(PIPELINE, "c1", type_version="v2"),
    )
    r.step(
        "contexts.get_by_type_and_name_absent",
        lambda: s.get_context_by_type_and_name(PIPELINE, "c4"),
    )
    r.step(
        "contexts.get_by_external_ids",
        lambda: s.get_contexts_by_external_ids(["ctx-ext-1"]),
    )
    r.step(
        "contexts.get_by_external_ids_none_found",
        lambda: s.get_contexts_by_external_ids(["x", "y"]),
    )
    r.step(
        "contexts.get_by_external_ids_empty_string",
        lambda: s.get_contexts_by_external_ids(["ctx-ext-1", ""]),
    )


def events(r: Recorder) -> None:
    s = r.store
    r.step(
        "events.put",
        lambda: s.put_events(
            [
                event(1, 1, Event.INPUT, steps=[0, "k"]),
                event(2, 1, Event.OUTPUT),
                event(2, 2, Event.INPUT, millis=12345),
                event(1, 2, Event.DECLARED_INPUT, millis=0),
                event(3, 1, Event.OUTPUT, steps=[None, "kept", 7]),
            ]
        ),
    )
    r.step("events.duplicate", lambda: s.put_events([event(1, 1, Event.INPUT)]))
    r.step(
        "events.duplicate_within_request",
        lambda: s.put_events([event(4, 3, Event.INPUT), event(4, 3, Event.INPUT)]),
    )
    r.step("events.same_pair_other_type", lambda: s.put_events([event(1, 1, Event.OUTPUT)]))
    r.step("events.missing_artifact", lambda: s.put_events([event(999, 1, Event.INPUT)]))
    r.step("events.missing_execution", lambda: s.put_events([event(1, 999, Event.INPUT)]))
    r.step("events.unknown_type", lambda: s.put_events([event(4, 1, Event.UNKNOWN)]))
    r.step("events.missing_type", lambda: s.put_events([event(4, 1, None)]))
    r.step(
        "events.missing_artifact_id",
        lambda: s.put_events([event(None, 1, Event.INPUT)]),
    )
    r.step(
        "events.missing_execution_id",
        lambda: s.put_events([event(4, None, Event.INPUT)]),
    )
    r.call("events.put_empty", "PutEvents", svc.PutEventsRequest())
    r.step("events.by_artifact_ids", lambda: s.get_events_by_artifact_ids([2, 1, 99, 3]))
    r.step("events.by_artifact_ids_none", lambda: s.get_events_by_artifact_ids([4]))
    r.step("events.by_execution_ids", lambda: s.get_events_by_execution_ids([2, 1]))
    r.step(
        "events.by_execution_ids_duplicates",
        lambda: s.get_events_by_execution_ids([1, 1]),
    )
    r.call(
        "events.by_execution_ids_empty",
        "GetEventsByExecutionIDs",
        svc.GetEventsByExecutionIDsRequest(),
    )


def attributions_and_parents(r: Recorder) -> None:
    s = r.store
    links = (
        [
            mlmd.Attribution(context_id=1, artifact_id=1),
            mlmd.Attribution(context_id=1, artifact_id=2),
            mlmd.Attribution(context_id=2, artifact_id=1),
        ],
        [
            mlmd.Association(context_id=1, execution_id=1),
            mlmd.Association(context_id=2, execution_id=2),
            mlmd.Association(context_id=1, execution_id=2),
        ],
    )
    r.step("attributions.put", lambda: s.put_attributions_and_associations(*links))
    r.step(
        "attributions.put_again_idempotent",
        lambda: s.put_attributions_and_associations(*links),
    )
    r.step(
        "attributions.missing_context",
        lambda: s.put_attributions_and_associations([mlmd.Attribution(context_id=99, artifact_id=1)], []),
    )
    r.step(
        "attributions.missing_artifact",
        lambda: s.put_attributions_and_associations([mlmd.Attribution(context_id=1, artifact_id=999)], []),
    )
    r.step(
        "attributions.missing_execution",
        lambda: s.put_attributions_and_associations([], [mlmd.Association(context_id=1, execution_id=999)]),
    )
    r.step(
        "attributions.unset_ids",
        lambda: s.put_attributions_and_associations([mlmd.Attribution(context_id=1)], []),
    )
    r.step(
        "attributions.failure_is_atomic",
        lambda: s.put_attributions_and_associations(
            [mlmd.Attribution(context_id=3, artifact_id=3)],
            [mlmd.Association(context_id=3, execution_id=999)],
        ),
    )
    r.call(
        "attributions.put_empty",
        "PutAttributionsAndAssociations",
        svc.PutAttributionsAndAssociationsRequest(),
    )

    r.step("contexts.by_artifact", lambda: s.get_contexts_by_artifact(1))
    r.step("contexts.by_artifact_none", lambda: s.get_contexts_by_artifact(3))
    r.step("contexts.by_artifact_unknown", lambda: s.get_contexts_by_artifact(999))
    r.step("contexts.by_execution", lambda: s.get_contexts_by_execution(2))
    r.step("contexts.by_execution_none", lambda: s.get_contexts_by_execution(3))
    r.step("artifacts.by_context", lambda: s.get_artifacts_by_context(1))
    r.step("artifacts.by_context_none", lambda: s.get_artifacts_by_context(3))
    r.step("artifacts.by_context_unknown", lambda: s.get_artifacts_by_context(999))
    # The public get_executions_by_context always sends list options; call it bare.
    r.call(
        "executions.by_context",
        "GetExecutionsByContext",
        svc.GetExecutionsByContextRequest(context_id=1),
    )
    r.call(
        "executions.by_context_none",
        "GetExecutionsByContext",
        svc.GetExecutionsByContextRequest(context_id=3),
    )

    parent = mlmd.ParentContext
    r.step(
        "parent_contexts.put",
        lambda: s.put_parent_contexts([parent(child_id=2, parent_id=1), parent(child_id=3, parent_id=2)]),
    )
    r.step(
        "parent_contexts.self_link",
        lambda: s.put_parent_contexts([parent(child_id=1, parent_id=1)]),
    )
    r.step(
        "parent_contexts.cycle",
        lambda: s.put_parent_contexts([parent(child_id=1, parent_id=3)]),
    )
    r.step(
        "parent_contexts.duplicate",
        lambda: s.put_parent_contexts([parent(child_id=2, parent_id=1)]),
    )
    r.step(
        "parent_contexts.missing_parent",
        lambda: s.put_parent_contexts([parent(child_id=2, parent_id=99)]),
    )
    r.step(
        "parent_contexts.missing_child",
        lambda: s.put_parent_contexts([parent(child_id=99, parent_id=2)]),
    )
    r.step(
        "parent_contexts.unset_child",
        lambda: s.put_parent_contexts([parent(parent_id=2)]),
    )
    r.step(
        "parent_contexts.failure_is_atomic",
        lambda: s.put_parent_contexts([parent(child_id=4, parent_id=1), parent(child_id=1, parent_id=1)]),
    )
    r.step(
        "parent_contexts.second_parent",
        lambda: s.put_parent_contexts([parent(child_id=3, parent_id=4)]),
    )
    r.call("parent_contexts.put_empty", "PutParentContexts", svc.PutParentContextsRequest())
    r.step("parent_contexts.parents_of_3", lambda: s.get_parent_contexts_by_context(3))
    r.step("parent_contexts.parents_of_root", lambda: s.get_parent_contexts_by_context(1))
    r.step(
        "parent_contexts.parents_of_unknown",
        lambda: s.get_parent_contexts_by_context(99),
    )
    r.step("parent_contexts.children_of_1", lambda: s.get_children_contexts_by_context(1))
    r.step("parent_contexts.children_of_2", lambda: s.get_children_contexts_by_context(2))
    r.step(
        "parent_contexts.children_of_leaf",
        lambda: s.get_children_contexts_by_context(3),
    )


def final_state(r: Recorder) -> None:
    s = r.store
    r.step("final.artifact_types", s.get_artifact_types)
    r.step("final.execution_types", s.get_execution_types)
    r.step("final.context_types", s.get_context_types)
    r.step("final.system_types", lambda: s.get_artifact_types_by_id(range(1, 10)))
    r.step(
        "final.system_execution_types",
        lambda: s.get_execution_types_by_id(range(1, 10)),
    )
    r.step("final.artifacts", s.get_artifacts)
    r.step("final.executions", s.get_executions)
    r.step("final.contexts", s.get_contexts)


# A page token (id order) positioned after every id: an empty page whatever the store holds.
PAST_THE_END = (
    base64.urlsafe_b64encode(
        mlmd.ListOperationNextPageToken(
            id_offset=2**40, field_offset=2**40, set_options=mlmd.ListOperationOptions()
        ).SerializeToString()
    )
    .decode("ascii")
    .rstrip("=")
)


def request(method: str, **fields: Any) -> message.Message:
    """The request message of `method`, with `fields` set (empty strings left unset)."""
    return getattr(svc, f"{method}Request")(**{k: v for k, v in fields.items() if v != ""})


# Node kinds for loops over the three families of node RPCs: (kind, plural, type name).
KINDS = (("artifact", "Artifacts", DATASET), ("execution", "Executions", TRAINER), ("context", "Contexts", PIPELINE))


def field_presence(r: Recorder) -> None:
    """Every read RPC once more, through the serialized response, recording which fields
    are present: on the rich data of api1 (versions, descriptions, external ids, base
    types, every property kind, event paths, parent links) and in empty answers."""
    w = r.wire
    for label, kind, name, version in (
        ("artifact_type", "Artifact", DATASET, ""),
        ("artifact_type_v1", "Artifact", DATASET, "v1"),
        ("artifact_type_with_base_type", "Artifact", MODEL, ""),
        ("execution_type", "Execution", TRAINER, ""),
        ("context_type", "Context", PIPELINE, ""),
        ("context_type_v2", "Context", PIPELINE, "v2"),
    ):
        w(f"presence.{label}", f"Get{kind}Type", request(f"Get{kind}Type", type_name=name, type_version=version))
    for kind, external_ids in (
        # MLMD returns these in external_id order (its index), LineageDB in id order: the
        # ids are chosen so both orders agree; this step is about presence.
        ("Artifact", ["at-ext-1", "at-ext-v1"]),
        ("Execution", ["et-ext-1", "et-ext-eval"]),
        ("Context", ["ct-ext-1"]),
    ):
        lower = kind.lower()
        w(f"presence.{lower}_types", f"Get{kind}Types", request(f"Get{kind}Types"))
        type_ids = [*range(1, 20), 99]
        w(f"presence.{lower}_types_by_id", f"Get{kind}TypesByID", request(f"Get{kind}TypesByID", type_ids=type_ids))
        w(f"presence.{lower}_types_by_id_empty", f"Get{kind}TypesByID", request(f"Get{kind}TypesByID"))
        method = f"Get{kind}TypesByExternalIds"
        w(f"presence.{lower}_types_by_external_ids", method, request(method, external_ids=external_ids))

    for kind, plural, type_name in KINDS:
        w(f"presence.{kind}s.all", f"Get{plural}", request(f"Get{plural}"))
        w(f"presence.{kind}s.page", f"Get{plural}", request(f"Get{plural}", options=options(size=2)))
        w(
            f"presence.{kind}s.filter_matches_none",
            f"Get{plural}",
            request(f"Get{plural}", options=options(query="id < 0")),
        )
        ids = {f"{kind}_ids": [*range(1, 8), 99]}
        w(f"presence.{kind}s.by_id", f"Get{plural}ByID", request(f"Get{plural}ByID", **ids))
        w(
            f"presence.{kind}s.by_id_unknown",
            f"Get{plural}ByID",
            request(f"Get{plural}ByID", **{f"{kind}_ids": [99]}),
        )
        by_type = functools.partial(request, f"Get{plural}ByType")
        w(f"presence.{kind}s.by_type", f"Get{plural}ByType", by_type(type_name=type_name))
        w(f"presence.{kind}s.by_type_page", f"Get{plural}ByType", by_type(type_name=type_name, options=options()))
        w(
            f"presence.{kind}s.by_type_filter_matches_none",
            f"Get{plural}ByType",
            by_type(type_name=type_name, options=options(query="id < 0")),
        )
        w(
            f"presence.{kind}s.by_type_past_the_end",
            f"Get{plural}ByType",
            by_type(type_name=type_name, options=options(token=PAST_THE_END)),
        )
        w(
            f"presence.{kind}s.by_unknown_type",
            f"Get{plural}ByType",
            by_type(type_name="compat.Nope", options=options()),
        )
        w(f"presence.{kind}s.by_unknown_type_all", f"Get{plural}ByType", by_type(type_name="compat.Nope"))
        by_name = functools.partial(request, f"Get{kind.capitalize()}ByTypeAndName")
        for label, name in (("", f"{kind[0]}1"), ("_absent", "zzz")):
            w(
                f"presence.{kind}.by_type_and_name{label}",
                f"Get{kind.capitalize()}ByTypeAndName",
                by_name(type_name=type_name, **{f"{kind}_name": name}),
            )
    w(
        "presence.artifacts.by_id_with_types",
        "GetArtifactsByID",
        svc.GetArtifactsByIDRequest(artifact_ids=[*range(1, 8), 99], populate_artifact_types=True),
    )
    w(
        "presence.artifacts.by_id_unknown_with_types",
        "GetArtifactsByID",
        svc.GetArtifactsByIDRequest(artifact_ids=[99], populate_artifact_types=True),
    )
    w("presence.artifacts.by_uri", "GetArtifactsByURI", svc.GetArtifactsByURIRequest(uris=["mem://u8"]))
    w("presence.artifacts.by_uri_unset", "GetArtifactsByURI", svc.GetArtifactsByURIRequest(uris=[""]))
    w(
        "presence.artifacts.by_external_ids",
        "GetArtifactsByExternalIds",
        svc.GetArtifactsByExternalIdsRequest(external_ids=["art-ext-1b"]),
    )
    w(
        "presence.executions.by_external_ids",
        "GetExecutionsByExternalIds",
        svc.GetExecutionsByExternalIdsRequest(external_ids=["exe-ext-1", "exe-ext-2"]),
    )
    w(
        "presence.contexts.by_external_ids",
        "GetContextsByExternalIds",
        svc.GetContextsByExternalIdsRequest(external_ids=["ctx-ext-1"]),
    )
    w(
        "presence.events.by_artifacts",
        "GetEventsByArtifactIDs",
        svc.GetEventsByArtifactIDsRequest(artifact_ids=[1, 2, 3, 4]),
    )
    w(
        "presence.events.by_executions",
        "GetEventsByExecutionIDs",
        svc.GetEventsByExecutionIDsRequest(execution_ids=[1, 2, 3]),
    )
    w("presence.contexts.by_artifact", "GetContextsByArtifact", svc.GetContextsByArtifactRequest(artifact_id=1))
    w("presence.contexts.by_execution", "GetContextsByExecution", svc.GetContextsByExecutionRequest(execution_id=2))
    for context_id in (1, 3):
        w(
            f"presence.contexts.parents_of_{context_id}",
            "GetParentContextsByContext",
            svc.GetParentContextsByContextRequest(context_id=context_id),
        )
        w(
            f"presence.contexts.children_of_{context_id}",
            "GetChildrenContextsByContext",
            svc.GetChildrenContextsByContextRequest(context_id=context_id),
        )
    for kind, plural, _ in KINDS[:2]:
        by_context = functools.partial(request, f"Get{plural}ByContext")
        w(f"presence.{kind}s.by_context", f"Get{plural}ByContext", by_context(context_id=1))
        w(f"presence.{kind}s.by_context_page", f"Get{plural}ByContext", by_context(context_id=1, options=options()))
        w(
            f"presence.{kind}s.by_context_filter_matches_none",
            f"Get{plural}ByContext",
            by_context(context_id=1, options=options(query="id < 0")),
        )
        w(
            f"presence.{kind}s.by_unknown_context",
            f"Get{plural}ByContext",
            by_context(context_id=99, options=options()),
        )
    starting = mlmd.LineageSubgraphQueryOptions.StartingNodes
    w(
        "presence.lineage_subgraph",
        "GetLineageSubgraph",
        svc.GetLineageSubgraphRequest(
            lineage_subgraph_query_options=mlmd.LineageSubgraphQueryOptions(
                starting_artifacts=starting(filter_query="id = 1"), max_num_hops=2
            )
        ),
        shape=sorted_graph,
    )


def suite_api1(r: Recorder) -> None:
    type_writes(r)
    type_reads(r)
    artifact_writes(r)
    artifact_reads(r)
    execution_writes_and_reads(r)
    context_writes_and_reads(r)
    events(r)
    attributions_and_parents(r)
    final_state(r)
    field_presence(r)


# ------------------------------------------------------------------------ suite api2

LOS = mlmd.ListOperationOptions
ORDER = LOS.OrderByField


def options(
    size: int | None = None,
    field: int | None = None,
    asc: bool | None = None,
    query: str | None = None,
    token: str | None = None,
) -> mlmd.ListOperationOptions:
    msg = LOS()
    msg.SetInParent()
    if size is not None:
        msg.max_result_size = size
    if field is not None:
        msg.order_by_field.field = field
    if asc is not None:
        msg.order_by_field.is_asc = asc
    if query is not None:
        msg.filter_query = query
    if token is not None:
        msg.next_page_token = token
    return msg


def page_summary(response: Any, field: str, keep_token: bool = True) -> dict[str, Json]:
    """Ids of one page plus its token (verbatim for id order, presence for time order)."""
    summary: dict[str, Json] = {"ids": [item.id for item in getattr(response, field)]}
    if not response.HasField("next_page_token"):
        summary["next_page_token"] = None
    elif keep_token or not response.next_page_token:
        summary["next_page_token"] = response.next_page_token
    else:
        summary["next_page_token"] = "<time-based token>"
    return summary


def sorted_graph(response: Any) -> dict[str, Json]:
    """A lineage graph with its id lists sorted (MLMD emits them in hash-set order)."""
    graph = to_json(response.lineage_subgraph)
    for items in graph.values():
        items.sort(key=lambda item: json.dumps(item, sort_keys=True))
    return graph


def list_options_and_filters(r: Recorder) -> None:
    s = r.store
    page_type = s.put_artifact_type(a_type("compat.Page", {"score": DOUBLE}))
    run_type = s.put_context_type(c_type("compat.Run"))
    step_type = s.put_execution_type(e_type("compat.Step"))
    r.step(
        "setup.artifacts",
        lambda: s.put_artifacts(
            [
                artifact(
                    type_id=page_type,
                    name=f"p{i}",
                    uri=f"mem://page/{i}",
                    state=mlmd.Artifact.LIVE if i % 2 else mlmd.Artifact.PENDING,
                    properties={"score": i / 10},
                )
                for i in range(1, 26)
            ]
        ),
    )
    r.step(
        "setup.contexts",
        lambda: s.put_contexts([context(type_id=run_type, name="run")]),
    )
    r.step(
        "setup.executions",
        lambda: s.put_executions([execution(type_id=step_type, name=f"s{i}") for i in range(3)]),
    )
    r.step(
        "setup.attributions",
        lambda: s.put_attributions_and_associations(
            [mlmd.Attribution(context_id=1, artifact_id=i) for i in range(1, 8)],
            [mlmd.Association(context_id=1, execution_id=i) for i in (1, 2, 3)],
        ),
    )

    def list_call(name: str, method: str, field: str, keep_token: bool = True, **request: Any) -> Any:
        request_msg = getattr(svc, f"{method}Request")(**request)
        return r.step(name, lambda: page_summary(r.rpc(method, request_msg), field, keep_token))

    first = list_call("list.artifacts_default_page", "GetArtifacts", "artifacts", options=options())
    list_call("list.artifacts_no_options", "GetArtifacts", "artifacts")
    list_call("list.artifacts_size_1", "GetArtifacts", "artifacts", options=options(size=1))
    list_call("list.artifacts_size_0", "GetArtifacts", "artifacts", options=options(size=0))
    list_call(
        "list.artifacts_size_200",
        "GetArtifacts",
        "artifacts",
        options=options(size=200),
    )
    list_call(
        "list.artifacts_next_page",
        "GetArtifacts",
        "artifacts",
        options=options(token=(first or {}).get("next_page_token") or ""),
    )
    list_call(
        "list.artifacts_token_order_mismatch",
        "GetArtifacts",
        "artifacts",
        options=options(asc=False, token=(first or {}).get("next_page_token") or ""),
    )
    list_call(
        "list.artifacts_bad_token",
        "GetArtifacts",
        "artifacts",
        options=options(token="!!not-base64!!"),
    )
    list_call(
        "list.artifacts_id_desc",
        "GetArtifacts",
        "artifacts",
        options=options(size=5, field=ORDER.ID, asc=False),
    )
    list_call(
        "list.artifacts_create_time_desc",
        "GetArtifacts",
        "artifacts",
        keep_token=False,
        options=options(size=5, field=ORDER.CREATE_TIME, asc=False),
    )
    list_call(
        "list.artifacts_update_time_asc",
        "GetArtifacts",
        "artifacts",
        keep_token=False,
        options=options(size=5, field=ORDER.LAST_UPDATE_TIME),
    )
    list_call(
        "list.artifacts_field_unspecified",
        "GetArtifacts",
        "artifacts",
        options=options(field=ORDER.FIELD_UNSPECIFIED),
    )
    list_call(
        "list.artifacts_by_type_last_page",
        "GetArtifactsByType",
        "artifacts",
        type_name="compat.Page",
        options=options(size=50),
    )
    list_call(
        "list.artifacts_by_unknown_type",
        "GetArtifactsByType",
        "artifacts",
        type_name="compat.Nope",
        options=options(),
    )
    list_call(
        "list.artifacts_by_type_filter_matches_none",
        "GetArtifactsByType",
        "artifacts",
        type_name="compat.Page",
        options=options(query="id < 0"),
    )
    list_call(
        "list.executions_by_type",
        "GetExecutionsByType",
        "executions",
        type_name="compat.Step",
        options=options(size=2),
    )
    list_call("list.contexts", "GetContexts", "contexts", options=options(size=1))
    list_call(
        "list.artifacts_by_context",
        "GetArtifactsByContext",
        "artifacts",
        context_id=1,
        options=options(size=3),
    )
    list_call(
        "list.executions_by_context_desc",
        "GetExecutionsByContext",
        "executions",
        context_id=1,
        options=options(size=2, field=ORDER.ID, asc=False),
    )
    r.step(
        "list.client_paginates_all",
        lambda: [
            a.id for a in s.get_artifacts(metadata_store.ListOptions(limit=22, order_by=metadata_store.OrderByField.ID))
        ],
    )

    for index, query in enumerate(
        [
            "id != 1",
            "id IN (1, 3)",
            "uri IS NOT NULL AND name LIKE 'p1%'",
            "state IN (PENDING)",
            "properties.score.double_value > 2.05",
            "type = 'compat.Page' AND state = LIVE",
            "contexts_a.name = 'run'",
            "id = '1'",
            "name = NULL",
            "state = ABANDONED",
            "no_such_field = 1",
        ]
    ):
        list_call(
            f"filter.artifacts_{index}",
            "GetArtifacts",
            "artifacts",
            options=options(size=100, query=query),
        )
    list_call(
        "filter.contexts_by_artifact",
        "GetContexts",
        "contexts",
        options=options(query="artifacts_x.state = LIVE"),
    )
    list_call(
        "filter.executions_state_not_in",
        "GetExecutions",
        "executions",
        options=options(query="last_known_state NOT IN (FAILED, CANCELED)"),
    )


def composite_writes_and_lineage(r: Recorder) -> None:
    s = r.store
    data = s.put_artifact_type(a_type("compat.Data"))
    job = s.put_execution_type(e_type("compat.Job"))
    run = s.put_context_type(c_type("compat.Job.Run"))

    def put_execution(name: str, request: svc.PutExecutionRequest) -> Any:
        return r.call(name, "PutExecution", request)

    pair = svc.PutExecutionRequest.ArtifactAndEvent
    put_execution(
        "put_execution.basic",
        svc.PutExecutionRequest(
            execution=execution(type_id=job, name="j1"),
            artifact_event_pairs=[
                pair(
                    artifact=artifact(type_id=data, uri="mem://in"),
                    event=event(None, None, Event.INPUT),
                ),
                pair(
                    artifact=artifact(type_id=data, uri="mem://out", external_id="out-1"),
                    event=event(None, None, Event.OUTPUT),
                ),
                pair(),
            ],
            contexts=[context(type_id=run, name="r1")],
        ),
    )
    put_execution(
        "put_execution.reuse_context_and_artifact",
        svc.PutExecutionRequest(
            execution=execution(type_id=job, name="j2"),
            artifact_event_pairs=[
                pair(
                    artifact=artifact(type_id=data, external_id="out-1", uri="mem://out2"),
                    event=event(None, None, Event.INPUT),
                ),
            ],
            contexts=[context(type_id=run, name="r1", properties={})],
            options=svc.PutExecutionRequest.Options(
                reuse_context_if_already_exist=True,
                reuse_artifact_if_already_exist_by_external_id=True,
            ),
        ),
    )
    put_execution(
        "put_execution.duplicate_context",
        svc.PutExecutionRequest(execution=execution(type_id=job), contexts=[context(type_id=run, name="r1")]),
    )
    put_execution(
        "put_execution.force_reuse_missing_context",
        svc.PutExecutionRequest(
            execution=execution(type_id=job),
            contexts=[context(id=999)],
            options=svc.PutExecutionRequest.Options(force_reuse_context=True),
        ),
    )
    put_execution("put_execution.without_execution", svc.PutExecutionRequest())

    edge = svc.PutLineageSubgraphRequest.EventEdge
    r.call(
        "put_lineage_subgraph.basic",
        "PutLineageSubgraph",
        svc.PutLineageSubgraphRequest(
            executions=[execution(type_id=job, name="j3")],
            artifacts=[artifact(type_id=data, uri="mem://ls")],
            contexts=[context(type_id=run, name="r2")],
            event_edges=[
                edge(
                    execution_index=0,
                    artifact_index=0,
                    event=event(None, None, Event.OUTPUT),
                )
            ],
        ),
    )
    r.call(
        "put_lineage_subgraph.index_out_of_range",
        "PutLineageSubgraph",
        svc.PutLineageSubgraphRequest(
            executions=[execution(type_id=job)],
            event_edges=[
                edge(
                    execution_index=3,
                    artifact_index=0,
                    event=event(None, None, Event.INPUT),
                )
            ],
        ),
    )
    r.call(
        "put_lineage_subgraph.empty",
        "PutLineageSubgraph",
        svc.PutLineageSubgraphRequest(),
    )
    r.step("lineage.artifacts_after_writes", s.get_artifacts)
    r.step("lineage.events_after_writes", lambda: s.get_events_by_execution_ids([4, 5, 6]))

    def lineage(name: str, **query: Any) -> None:
        request = svc.GetLineageSubgraphRequest(
            lineage_subgraph_query_options=mlmd.LineageSubgraphQueryOptions(**query)
        )
        r.step(name, lambda: sorted_graph(r.rpc("GetLineageSubgraph", request)))

    starting = mlmd.LineageSubgraphQueryOptions.StartingNodes
    lineage(
        "lineage.from_artifact",
        starting_artifacts=starting(filter_query="uri = 'mem://in'"),
    )
    lineage(
        "lineage.zero_hops",
        starting_artifacts=starting(filter_query="uri = 'mem://in'"),
        max_num_hops=0,
    )
    lineage(
        "lineage.upstream_from_execution",
        starting_executions=starting(filter_query="name = 'j2'"),
        direction=mlmd.LineageSubgraphQueryOptions.UPSTREAM,
    )
    lineage("lineage.no_match", starting_artifacts=starting(filter_query="id = 999"))
    lineage("lineage.no_starting_nodes")
    lineage(
        "lineage.negative_hops",
        starting_artifacts=starting(filter_query="id = 1"),
        max_num_hops=-1,
    )


def suite_api2(r: Recorder) -> None:
    """List options, filter queries, composite writes and lineage (a later tier)."""
    list_options_and_filters(r)
    composite_writes_and_lineage(r)


# MLMD's MySQL/PostgreSQL schemas store int properties in 32-bit columns, so its own
# store rejects 2**40 there (INTERNAL), and its MySQL store writes doubles as decimal
# literals that MySQL clamps to 65 digits (1e300 reads back as 1e65). LineageDB keeps
# both exactly on every backend. Runs on those backends pass --portable-values so both
# sides get values MLMD can hold; tests/service covers the full ranges.
HUGE_INT = 2**40
HUGE_DOUBLE = 1e300

SUITES: dict[str, Callable[[Recorder], None]] = {"api1": suite_api1, "api2": suite_api2}


# --------------------------------------------------------------------------- driver


@contextmanager
def open_store(args: argparse.Namespace) -> Iterator[metadata_store.MetadataStore]:
    if args.target == "grpc":
        config = mlmd.MetadataStoreClientConfig(host=args.host, port=args.port, client_timeout_sec=GRPC_TIMEOUT_SECONDS)
        yield metadata_store.MetadataStore(config)
        return
    if args.mlmd_database:
        yield metadata_store.MetadataStore(server_connection(args.mlmd_database))
        return
    with tempfile.TemporaryDirectory(prefix="mlmd-compat-") as tmp:
        connection = mlmd.ConnectionConfig()
        connection.sqlite.filename_uri = os.path.join(tmp, "mlmd.sqlite")
        connection.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        yield metadata_store.MetadataStore(connection)


def server_connection(url: str) -> mlmd.ConnectionConfig:
    """ConnectionConfig for MLMD's own MySQL or PostgreSQL client, from `scheme://user@host:port/db`."""
    parsed = urllib.parse.urlsplit(url)
    connection = mlmd.ConnectionConfig()
    database = parsed.path.lstrip("/")
    if parsed.scheme.startswith("mysql") or parsed.scheme.startswith("mariadb"):
        connection.mysql.host = parsed.hostname or "127.0.0.1"
        connection.mysql.port = parsed.port or 3306
        connection.mysql.database = database
        connection.mysql.user = parsed.username or "root"
        connection.mysql.password = parsed.password or ""
    elif parsed.scheme.startswith("postgres"):
        connection.postgresql.host = parsed.hostname or "127.0.0.1"
        connection.postgresql.port = str(parsed.port or 5432)
        connection.postgresql.dbname = database
        connection.postgresql.user = parsed.username or "postgres"
        if parsed.password:
            connection.postgresql.password = parsed.password
    else:
        raise SystemExit(f"--mlmd-database must be a mysql:// or postgresql:// URL, got {url!r}")
    return connection


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("inprocess", "grpc"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--suite", choices=sorted(SUITES), default="api1")
    parser.add_argument("--portable-values", action="store_true", help="ints within 32 bits, doubles within 65 digits")
    parser.add_argument(
        "--mlmd-database",
        help="with --target inprocess: run MLMD's store on this MySQL/PostgreSQL database instead of SQLite",
    )
    args = parser.parse_args(argv)
    if args.target == "grpc" and args.port is None:
        parser.error("--target grpc needs --port")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    global HUGE_INT, HUGE_DOUBLE
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.portable_values:
        HUGE_INT, HUGE_DOUBLE = 2**30, 1e60
    with open_store(args) as store:
        recorder = Recorder(store)
        SUITES[args.suite](recorder)
    json.dump(recorder.steps, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
