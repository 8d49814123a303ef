"""Field-presence probe: MLMD's C++ store and LineageDB, answering the same serialized requests.

Runs under the official client's interpreter (``.venv-mlmd``)::

    .venv-mlmd/bin/python tests/compat/presence_probe.py            # starts LineageDB on SQLite itself
    .venv-mlmd/bin/python tests/compat/presence_probe.py --lineagedb-address 127.0.0.1:8080 \
        --mlmd-database postgresql://postgres@127.0.0.1:5432/scratch   # a running server, MLMD on PostgreSQL

proto2 fields have observable presence (``HasField``, Go pointers, JSON), so a response that
leaves a field unset where MLMD sets it to its default (or the reverse) is a wire difference
even when every value compares equal. The scenario (``scenario.py``) compares values through
the official client, whose Python API mostly returns lists; this probe sends one fixed
sequence of requests to every RPC of ``MetadataStoreService``, as bytes, to MLMD's in-process
C++ store (the ``metadata_store_serialized`` entry points the wheel's own client uses) and to
LineageDB over gRPC, and records for each answer its status code and the set of fields present
(recursively, by ``ListFields()``). The sequence reads an empty store first, then writes data
with every optional field used, then reads it back in the empty and non-empty shapes each RPC
has (with and without ``options``, a filter matching nothing, an unknown type, unknown ids...).

Elements of repeated fields are keyed by their id (or, for events, by artifact, execution and
type) rather than their position, so backends that return rows in another order still compare.
Prints one line per differing case and exits 1 if any; ``--json`` prints everything recorded.
The three RPCs the wheel's C++ layer does not export (MLMD's server answers UNIMPLEMENTED) have
no reference and are not probed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import message
from ml_metadata.metadata_store.pywrap.metadata_store_extension import (
    metadata_store as metadata_store_serialized,
)
from ml_metadata.proto import metadata_store_pb2 as mlmd
from ml_metadata.proto import metadata_store_service_pb2 as svc
from scenario import (  # the sibling script (this one's directory is on sys.path)
    PAST_THE_END,
    present_fields,
    server_connection,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE = "ml_metadata.MetadataStoreService"
NOT_EXPORTED = {"GetParentContextsByContexts", "GetChildrenContextsByContexts", "GetLineageGraph"}
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
LISTENING = re.compile(r"listening on (?P<host>[^\s:]+):(?P<port>\d+)")


# ------------------------------------------------------------------------------ answers


@dataclass
class Answer:
    code: str
    present: list[str]
    response: message.Message | None


def answer(method: str, payload: bytes | None, code: str) -> Answer:
    if code != "OK" or payload is None:
        return Answer(code, [], None)
    response = getattr(svc, f"{method}Response")()
    response.ParseFromString(payload)
    return Answer(code, present_fields(response), response)


# ------------------------------------------------------------------------------- targets


class MLMDStore:
    """MLMD's C++ store, called with serialized requests exactly as the wheel's client does."""

    def __init__(self, connection: mlmd.ConnectionConfig) -> None:
        migration = mlmd.MigrationOptions()
        self.store = metadata_store_serialized.CreateMetadataStore(
            connection.SerializeToString(), migration.SerializeToString()
        )

    def __call__(self, method: str, request: bytes) -> Answer:
        payload, _message, code = getattr(metadata_store_serialized, method)(self.store, request)
        return answer(method, payload, _CODE_NAMES.get(code, str(code)))


class GrpcTarget:
    """Any server speaking MetadataStoreService; requests and responses travel as raw bytes."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)

    def __call__(self, method: str, request: bytes) -> Answer:
        call = self.channel.unary_unary(f"/{SERVICE}/{method}")  # no (de)serializers: bytes in, bytes out
        try:
            payload = call(request, timeout=30)
        except grpc.RpcError as error:
            return Answer(error.code().name, [], None)
        return answer(method, payload, "OK")


@contextmanager
def lineagedb_server(python: str, database: str) -> Iterator[str]:
    """`python -m lineagedb serve` on a free loopback port; yields its address."""
    command = [python, "-m", "lineagedb", "serve", "--host", "127.0.0.1", "--port", "0", "--database", database]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert process.stdout is not None
    try:
        for line in process.stdout:
            match = LISTENING.search(line)
            if match:
                yield f"{match.group('host')}:{match.group('port')}"
                return
        raise SystemExit(f"lineagedb did not start (exit {process.wait()})")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------------------- requests

Case = tuple[str, str, message.Message]  # (case name, method, request)

LOS = mlmd.ListOperationOptions
Starting = mlmd.LineageSubgraphQueryOptions.StartingNodes
Ending = mlmd.LineageSubgraphQueryOptions.EndingNodes


def _options(**fields: Any) -> mlmd.ListOperationOptions:
    options = LOS(**fields)
    options.SetInParent()
    return options


def reads_of_lists(prefix: str, kind: str, type_name: str, context_id: int) -> list[Case]:
    """Every list read of one node kind, in each shape that can come back empty or not."""
    plural = {"artifact": "Artifacts", "execution": "Executions", "context": "Contexts"}[kind]
    cases: list[Case] = [
        (f"{prefix}.{kind}s.no_options", f"Get{plural}", getattr(svc, f"Get{plural}Request")()),
        (f"{prefix}.{kind}s.options", f"Get{plural}", getattr(svc, f"Get{plural}Request")(options=_options())),
        (
            f"{prefix}.{kind}s.first_page",
            f"Get{plural}",
            getattr(svc, f"Get{plural}Request")(options=_options(max_result_size=1)),
        ),
        (
            f"{prefix}.{kind}s.filter_none",
            f"Get{plural}",
            getattr(svc, f"Get{plural}Request")(options=_options(filter_query="id < 0")),
        ),
    ]
    by_type = getattr(svc, f"Get{plural}ByTypeRequest")
    for label, name, version in (("type", type_name, None), ("unknown_type", "probe.Nope", None)):
        for shape, options in (
            ("no_options", None),
            ("options", _options()),
            ("first_page", _options(max_result_size=1)),
            ("last_page", _options(max_result_size=100)),
            ("filter_none", _options(filter_query="id < 0")),
            ("past_the_end", _options(next_page_token=PAST_THE_END)),
        ):
            request = by_type(type_name=name)
            if version:
                request.type_version = version
            if options is not None:
                request.options.CopyFrom(options)
            cases.append((f"{prefix}.{kind}s.by_{label}.{shape}", f"Get{plural}ByType", request))
    cases.append(
        (
            f"{prefix}.{kind}s.by_type_version",
            f"Get{plural}ByType",
            by_type(type_name=type_name, type_version="v1", options=_options()),
        )
    )
    cases.append(
        (
            f"{prefix}.{kind}s.by_empty_type.options",
            f"Get{plural}ByType",
            by_type(type_name=f"{type_name}.Empty", options=_options()),
        )
    )
    cases.append(
        (f"{prefix}.{kind}s.by_empty_type.no_options", f"Get{plural}ByType", by_type(type_name=f"{type_name}.Empty"))
    )
    if kind != "context":
        by_context = getattr(svc, f"Get{plural}ByContextRequest")
        for label, context in (("context", context_id), ("unknown_context", 999)):
            for shape, options in (
                ("no_options", None),
                ("options", _options()),
                ("first_page", _options(max_result_size=1)),
                ("filter_none", _options(filter_query="id < 0")),
            ):
                request = by_context(context_id=context)
                if options is not None:
                    request.options.CopyFrom(options)
                cases.append((f"{prefix}.{kind}s.by_{label}.{shape}", f"Get{plural}ByContext", request))
        request = by_context(context_id=context_id)
        request.transaction_options.SetInParent()
        cases.append((f"{prefix}.{kind}s.by_context.transaction_options", f"Get{plural}ByContext", request))
    return cases


def reads(prefix: str) -> list[Case]:
    """Every read RPC, on whatever the store holds at this point."""
    cases: list[Case] = []
    for kind, type_name in (("artifact", "probe.A"), ("execution", "probe.E"), ("context", "probe.C")):
        cap = kind.capitalize()
        cases += [
            (f"{prefix}.{kind}_type", f"Get{cap}Type", getattr(svc, f"Get{cap}TypeRequest")(type_name=type_name)),
            (
                f"{prefix}.{kind}_type_version",
                f"Get{cap}Type",
                getattr(svc, f"Get{cap}TypeRequest")(type_name=type_name, type_version="v1"),
            ),
            (f"{prefix}.{kind}_types", f"Get{cap}Types", getattr(svc, f"Get{cap}TypesRequest")()),
            (
                f"{prefix}.{kind}_types_by_id",
                f"Get{cap}TypesByID",
                getattr(svc, f"Get{cap}TypesByIDRequest")(type_ids=list(range(1, 20))),
            ),
            (f"{prefix}.{kind}_types_by_id_empty", f"Get{cap}TypesByID", getattr(svc, f"Get{cap}TypesByIDRequest")()),
            (
                f"{prefix}.{kind}_types_by_external_ids",
                f"Get{cap}TypesByExternalIds",
                getattr(svc, f"Get{cap}TypesByExternalIdsRequest")(external_ids=[f"{kind}-type-ext", "nope"]),
            ),
            (
                f"{prefix}.{kind}_types_by_external_ids_empty",
                f"Get{cap}TypesByExternalIds",
                getattr(svc, f"Get{cap}TypesByExternalIdsRequest")(),
            ),
        ]
        cases += reads_of_lists(prefix, kind, type_name, context_id=1)
        plural = f"{cap}s"
        ids_field = f"{kind}_ids"
        cases += [
            (
                f"{prefix}.{kind}s.by_id",
                f"Get{plural}ByID",
                getattr(svc, f"Get{plural}ByIDRequest")(**{ids_field: [1, 2, 3, 999]}),
            ),
            (f"{prefix}.{kind}s.by_id_empty", f"Get{plural}ByID", getattr(svc, f"Get{plural}ByIDRequest")()),
            (
                f"{prefix}.{kind}s.by_id_unknown",
                f"Get{plural}ByID",
                getattr(svc, f"Get{plural}ByIDRequest")(**{ids_field: [999]}),
            ),
            (
                f"{prefix}.{kind}s.by_external_ids",
                f"Get{plural}ByExternalIds",
                getattr(svc, f"Get{plural}ByExternalIdsRequest")(external_ids=[f"{kind}-ext-1", "nope"]),
            ),
            (
                f"{prefix}.{kind}s.by_external_ids_empty",
                f"Get{plural}ByExternalIds",
                getattr(svc, f"Get{plural}ByExternalIdsRequest")(),
            ),
        ]
        by_name = getattr(svc, f"Get{cap}ByTypeAndNameRequest")
        name_field = f"{kind}_name"
        cases += [
            (
                f"{prefix}.{kind}.by_type_and_name",
                f"Get{cap}ByTypeAndName",
                by_name(type_name=type_name, **{name_field: f"{kind[0]}1"}),
            ),
            (
                f"{prefix}.{kind}.by_type_and_name_absent",
                f"Get{cap}ByTypeAndName",
                by_name(type_name=type_name, **{name_field: "nope"}),
            ),
            (
                f"{prefix}.{kind}.by_unknown_type_and_name",
                f"Get{cap}ByTypeAndName",
                by_name(type_name="probe.Nope", **{name_field: f"{kind[0]}1"}),
            ),
        ]
    with_types = svc.GetArtifactsByIDRequest(artifact_ids=[2, 1, 999], populate_artifact_types=True)
    cases += [
        (f"{prefix}.artifacts.by_id_with_types", "GetArtifactsByID", with_types),
        (
            f"{prefix}.artifacts.by_id_unknown_with_types",
            "GetArtifactsByID",
            svc.GetArtifactsByIDRequest(artifact_ids=[999], populate_artifact_types=True),
        ),
        (f"{prefix}.artifacts.by_uri", "GetArtifactsByURI", svc.GetArtifactsByURIRequest(uris=["mem://a1", "nope"])),
        (f"{prefix}.artifacts.by_uri_unset", "GetArtifactsByURI", svc.GetArtifactsByURIRequest(uris=[""])),
        (f"{prefix}.artifacts.by_uri_empty", "GetArtifactsByURI", svc.GetArtifactsByURIRequest()),
        (
            f"{prefix}.events.by_artifacts",
            "GetEventsByArtifactIDs",
            svc.GetEventsByArtifactIDsRequest(artifact_ids=[1, 2, 999]),
        ),
        (f"{prefix}.events.by_artifacts_empty", "GetEventsByArtifactIDs", svc.GetEventsByArtifactIDsRequest()),
        (
            f"{prefix}.events.by_executions",
            "GetEventsByExecutionIDs",
            svc.GetEventsByExecutionIDsRequest(execution_ids=[1, 2, 999]),
        ),
        (f"{prefix}.events.by_executions_empty", "GetEventsByExecutionIDs", svc.GetEventsByExecutionIDsRequest()),
        (f"{prefix}.contexts.by_artifact", "GetContextsByArtifact", svc.GetContextsByArtifactRequest(artifact_id=1)),
        (
            f"{prefix}.contexts.by_artifact_unknown",
            "GetContextsByArtifact",
            svc.GetContextsByArtifactRequest(artifact_id=999),
        ),
        (
            f"{prefix}.contexts.by_execution",
            "GetContextsByExecution",
            svc.GetContextsByExecutionRequest(execution_id=1),
        ),
        (
            f"{prefix}.contexts.by_execution_unknown",
            "GetContextsByExecution",
            svc.GetContextsByExecutionRequest(execution_id=999),
        ),
    ]
    for context_id in (1, 2, 3, 999):
        cases += [
            (
                f"{prefix}.contexts.parents_of_{context_id}",
                "GetParentContextsByContext",
                svc.GetParentContextsByContextRequest(context_id=context_id),
            ),
            (
                f"{prefix}.contexts.children_of_{context_id}",
                "GetChildrenContextsByContext",
                svc.GetChildrenContextsByContextRequest(context_id=context_id),
            ),
        ]
    cases += lineage_reads(prefix)
    return cases


def lineage_reads(prefix: str) -> list[Case]:
    def query(**fields: Any) -> svc.GetLineageSubgraphRequest:
        return svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=mlmd.LineageSubgraphQueryOptions(**fields))

    masked = query(starting_artifacts=Starting(filter_query="id = 1"))
    masked.read_mask.paths.extend(["artifacts", "events"])
    return [
        (f"{prefix}.lineage.no_starting_nodes", "GetLineageSubgraph", query()),
        (f"{prefix}.lineage.request_empty", "GetLineageSubgraph", svc.GetLineageSubgraphRequest()),
        (
            f"{prefix}.lineage.match_none",
            "GetLineageSubgraph",
            query(starting_artifacts=Starting(filter_query="id < 0")),
        ),
        (
            f"{prefix}.lineage.from_artifact",
            "GetLineageSubgraph",
            query(starting_artifacts=Starting(filter_query="id = 1")),
        ),
        (
            f"{prefix}.lineage.from_execution_zero_hops",
            "GetLineageSubgraph",
            query(starting_executions=Starting(filter_query="id = 1"), max_num_hops=0),
        ),
        (
            f"{prefix}.lineage.downstream_ending",
            "GetLineageSubgraph",
            query(
                starting_artifacts=Starting(filter_query="id = 1"),
                direction=mlmd.LineageSubgraphQueryOptions.DOWNSTREAM,
                ending_executions=Ending(filter_query="id = 1"),
            ),
        ),
        (f"{prefix}.lineage.read_mask", "GetLineageSubgraph", masked),
    ]


def _value(**case: Any) -> mlmd.Value:
    value = mlmd.Value(**{k: v for k, v in case.items() if k != "struct"})
    if "struct" in case:
        value.struct_value.update(case["struct"])
    return value


def writes() -> list[Case]:
    """Types, nodes, edges and composite writes that use every optional field at least once."""
    props = {"i": mlmd.INT, "d": mlmd.DOUBLE, "s": mlmd.STRING, "st": mlmd.STRUCT, "p": mlmd.PROTO, "b": mlmd.BOOLEAN}
    artifact_type = mlmd.ArtifactType(
        name="probe.A",
        description="d",
        external_id="artifact-type-ext",
        properties=props,
        base_type=mlmd.ArtifactType.DATASET,
    )
    execution_type = mlmd.ExecutionType(name="probe.E", properties={"i": mlmd.INT}, external_id="execution-type-ext")
    execution_type.input_type.any.SetInParent()
    execution_type.output_type.none.SetInParent()
    context_type = mlmd.ContextType(name="probe.C", properties={"s": mlmd.STRING}, external_id="context-type-ext")
    proto_value = mlmd.Value()
    proto_value.proto_value.Pack(mlmd.Artifact(id=5))
    artifact_values = {
        "i": _value(int_value=3),
        "d": _value(double_value=0.5),
        "s": _value(string_value=""),
        "st": _value(struct={"k": [1, "x", None, True]}),
        "p": proto_value,
        "b": _value(bool_value=False),
    }
    a1 = mlmd.Artifact(type_id=10, name="a1", uri="mem://a1", external_id="artifact-ext-1", state=mlmd.Artifact.LIVE)
    for key, value in artifact_values.items():
        a1.properties[key].CopyFrom(value)
    a1.custom_properties["c"].CopyFrom(_value(int_value=0))
    a2 = mlmd.Artifact(type_id=10)  # nothing optional
    a3 = mlmd.Artifact(type_id=10, name="", uri="", state=mlmd.Artifact.UNKNOWN)
    # Type ids on a fresh store: system types 1-9, then 10 probe.A, 11 probe.A v1, 12 probe.E, 13 probe.C.
    e1 = mlmd.Execution(type_id=12, name="e1", external_id="execution-ext-1", last_known_state=mlmd.Execution.COMPLETE)
    e1.properties["i"].int_value = 0  # a default value, set: present
    e2 = mlmd.Execution(type_id=12)
    c1 = mlmd.Context(type_id=13, name="c1", external_id="context-ext-1")
    c1.properties["s"].string_value = "v"
    c1.custom_properties["zero"].double_value = 0.0
    c2, c3 = mlmd.Context(type_id=13, name="c2"), mlmd.Context(type_id=13, name="c3")
    path = mlmd.Event.Path()
    path.steps.add().index = 0
    path.steps.add().key = "k"
    path.steps.add()  # a step with neither
    pair = svc.PutExecutionRequest.ArtifactAndEvent
    edge = svc.PutLineageSubgraphRequest.EventEdge
    cases: list[Case] = [
        ("write.artifact_type", "PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=artifact_type)),
        (
            "write.artifact_type_v1",
            "PutArtifactType",
            svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="probe.A", version="v1")),
        ),
        ("write.artifact_type_again", "PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=artifact_type)),
        ("write.execution_type", "PutExecutionType", svc.PutExecutionTypeRequest(execution_type=execution_type)),
        ("write.context_type", "PutContextType", svc.PutContextTypeRequest(context_type=context_type)),
        ("write.types_empty", "PutTypes", svc.PutTypesRequest()),
        (
            "write.types",
            "PutTypes",
            svc.PutTypesRequest(
                artifact_types=[mlmd.ArtifactType(name="probe.A.Empty")],
                execution_types=[mlmd.ExecutionType(name="probe.E.Empty")],
                context_types=[mlmd.ContextType(name="probe.C.Empty")],
            ),
        ),
    ]
    cases += [
        ("write.artifacts_empty", "PutArtifacts", svc.PutArtifactsRequest()),
        ("write.artifacts", "PutArtifacts", svc.PutArtifactsRequest(artifacts=[a1, a2, a3])),
        ("write.executions", "PutExecutions", svc.PutExecutionsRequest(executions=[e1, e2])),
        ("write.contexts", "PutContexts", svc.PutContextsRequest(contexts=[c1, c2, c3])),
        (
            "write.artifacts_update_masked",
            "PutArtifacts",
            svc.PutArtifactsRequest(
                artifacts=[mlmd.Artifact(id=3, custom_properties={"m": _value(string_value="x")})],
                update_mask={"paths": ["custom_properties.m"]},
            ),
        ),
        (
            "write.artifacts_update_with_options",
            "PutArtifacts",
            svc.PutArtifactsRequest(
                artifacts=[mlmd.Artifact(id=2, type_id=10, uri="mem://a2")],
                options=svc.PutArtifactsRequest.Options(abort_if_latest_updated_time_changed=False),
            ),
        ),
        (
            "write.artifacts_update_clears_state",
            "PutArtifacts",
            svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(id=3, type_id=10)]),
        ),
        ("write.events_empty", "PutEvents", svc.PutEventsRequest()),
        (
            "write.events",
            "PutEvents",
            svc.PutEventsRequest(
                events=[
                    mlmd.Event(artifact_id=1, execution_id=1, type=mlmd.Event.INPUT, path=path),
                    mlmd.Event(artifact_id=2, execution_id=1, type=mlmd.Event.OUTPUT, milliseconds_since_epoch=0),
                    mlmd.Event(artifact_id=1, execution_id=2, type=mlmd.Event.DECLARED_OUTPUT),
                ]
            ),
        ),
        ("write.attributions_empty", "PutAttributionsAndAssociations", svc.PutAttributionsAndAssociationsRequest()),
        (
            "write.attributions",
            "PutAttributionsAndAssociations",
            svc.PutAttributionsAndAssociationsRequest(
                attributions=[
                    mlmd.Attribution(context_id=1, artifact_id=1),
                    mlmd.Attribution(context_id=1, artifact_id=2),
                ],
                associations=[mlmd.Association(context_id=1, execution_id=1)],
            ),
        ),
        ("write.parent_contexts_empty", "PutParentContexts", svc.PutParentContextsRequest()),
        (
            "write.parent_contexts",
            "PutParentContexts",
            svc.PutParentContextsRequest(parent_contexts=[mlmd.ParentContext(child_id=2, parent_id=1)]),
        ),
        (
            "write.execution",
            "PutExecution",
            svc.PutExecutionRequest(
                execution=mlmd.Execution(type_id=12, name="e3"),
                artifact_event_pairs=[
                    pair(artifact=mlmd.Artifact(type_id=10, uri="mem://pe"), event=mlmd.Event(type=mlmd.Event.OUTPUT)),
                    pair(artifact=mlmd.Artifact(type_id=10)),
                    pair(),
                ],
                contexts=[mlmd.Context(type_id=13, name="c4")],
            ),
        ),
        ("write.execution_minimal", "PutExecution", svc.PutExecutionRequest(execution=mlmd.Execution(type_id=12))),
        (
            "write.execution_update",
            "PutExecution",
            svc.PutExecutionRequest(execution=mlmd.Execution(id=2, last_known_state=mlmd.Execution.RUNNING)),
        ),
        ("write.lineage_subgraph_empty", "PutLineageSubgraph", svc.PutLineageSubgraphRequest()),
        (
            "write.lineage_subgraph",
            "PutLineageSubgraph",
            svc.PutLineageSubgraphRequest(
                executions=[mlmd.Execution(type_id=12, name="e9")],
                artifacts=[mlmd.Artifact(type_id=10, uri="mem://ls")],
                contexts=[mlmd.Context(type_id=13, name="c9")],
                event_edges=[edge(execution_index=0, artifact_index=0, event=mlmd.Event(type=mlmd.Event.INPUT))],
            ),
        ),
    ]
    return cases


def sequence() -> list[Case]:
    return [*reads("empty"), *writes(), *reads("full")]


# ------------------------------------------------------------------------------- driver


@dataclass
class Difference:
    case: str
    method: str
    mlmd: Answer
    lineagedb: Answer

    def render(self) -> str:
        if self.mlmd.code != self.lineagedb.code:
            return f"{self.case} ({self.method}): MLMD {self.mlmd.code}, LineageDB {self.lineagedb.code}"
        only_mlmd = sorted(set(self.mlmd.present) - set(self.lineagedb.present))
        only_ours = sorted(set(self.lineagedb.present) - set(self.mlmd.present))
        return f"{self.case} ({self.method}): present only in MLMD {only_mlmd}; present only in LineageDB {only_ours}"


def run(targets: tuple[Callable[[str, bytes], Answer], Callable[[str, bytes], Answer]]) -> list[dict[str, Any]]:
    reference, candidate = targets
    records = []
    for case, method, request in sequence():
        payload = request.SerializeToString()
        records.append(
            {
                "case": case,
                "method": method,
                "mlmd": reference(method, payload),
                "lineagedb": candidate(method, payload),
            }
        )
    return records


def differences(records: list[dict[str, Any]], ignore: set[str]) -> list[Difference]:
    """Cases whose status or present fields differ; `ignore` holds CASE (the whole case)
    or CASE:PATH (one field of it) for differences documented elsewhere."""
    found = []
    for record in records:
        case = record["case"]
        if case in ignore:
            continue
        ignored = {entry.split(":", 1)[1] for entry in ignore if entry.startswith(case + ":")}
        mine, theirs = record["lineagedb"], record["mlmd"]
        ours = [path for path in mine.present if path not in ignored]
        reference = [path for path in theirs.present if path not in ignored]
        if mine.code != theirs.code or ours != reference:
            found.append(Difference(case, record["method"], theirs, mine))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lineagedb-address", help="HOST:PORT of a running LineageDB on an empty database")
    parser.add_argument("--lineagedb-python", default=str(REPO_ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--lineagedb-database", help="database URL for the LineageDB this probe starts")
    parser.add_argument("--mlmd-database", help="mysql:// or postgresql:// URL of an empty database for MLMD")
    parser.add_argument(
        "--ignore", action="append", default=[], help="CASE or CASE:FIELD_PATH whose difference is documented"
    )
    parser.add_argument("--json", action="store_true", help="print every case's codes and present fields")
    args = parser.parse_args(argv)
    for name in NOT_EXPORTED:
        assert not hasattr(metadata_store_serialized, name), f"the wheel now exports {name}: probe it"
    with tempfile.TemporaryDirectory(prefix="presence-probe-") as tmp:
        if args.mlmd_database:
            connection = server_connection(args.mlmd_database)
        else:
            connection = mlmd.ConnectionConfig()
            connection.sqlite.filename_uri = os.path.join(tmp, "mlmd.sqlite")
            connection.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        reference = MLMDStore(connection)
        if args.lineagedb_address:
            records = run((reference, GrpcTarget(args.lineagedb_address)))
        else:
            database = args.lineagedb_database or f"sqlite:///{tmp}/lineagedb.sqlite"
            with lineagedb_server(args.lineagedb_python, database) as address:
                records = run((reference, GrpcTarget(address)))
    found = differences(records, set(args.ignore))
    if args.json:
        document = [
            {
                "case": r["case"],
                "method": r["method"],
                **{side: {"code": r[side].code, "present": r[side].present} for side in ("mlmd", "lineagedb")},
            }
            for r in records
        ]
        json.dump({"cases": document, "differences": [d.render() for d in found]}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for difference in found:
            print(difference.render())
        print(f"{len(records)} cases, {len(found)} with a difference in status or field presence")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
