"""Hostile input through the real server (RELIABILITY T20, T21), on SQLite.

* T21: a corpus of hostile ``filter_query`` payloads. Each is INVALID_ARGUMENT, or, where the
  query is valid, OK with exactly the right artifacts. No case changes a row or the schema
  (row counts of every table and a hash of ``sqlite_master`` before/after).
* T20: random mutations of valid serialized requests, sent as raw bytes. The server stays up;
  every answer is OK or a client error, INTERNAL only where the bytes do not decode.

Seeds are printed (``-s``) and can be pinned with LINEAGEDB_FUZZ_SEED.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.query.filter_ast import FilterQueryError, NodeKind
from lineagedb.query.filter_parser import parse_filter
from tests.conftest import LiveServer, start_server, stop_server

StatusCode = grpc.StatusCode
SERVICE = svc.DESCRIPTOR.services_by_name["MetadataStoreService"]
UNDECODABLE = "Exception deserializing request!"
# What a client sees when the status message overflows its 8 KiB metadata limit.
OVERSIZED_DETAILS = "received metadata size exceeds"  # gRPC-Python's own message for a failed request_deserializer


# -- a server with known data, and snapshots of its database -----------------------------------------------


@dataclass
class Seeded:
    server: LiveServer
    path: Path
    stub: svc_grpc.MetadataStoreServiceStub
    channel: grpc.Channel
    artifacts: dict[str, int]  # name -> id
    artifact_type: int
    execution_type: int
    context_type: int


NAMES = ["x", "o'brien", "back\\slash", "percent%", "under_score", "ünï", "ABC", "abc", "a", "zeta b"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    path = tmp_path_factory.mktemp("hostile") / "lineagedb.db"
    server = start_server(f"sqlite:///{path}")
    channel = server.channel()
    stub = svc_grpc.MetadataStoreServiceStub(channel)
    artifact_type = mlmd.ArtifactType(name="Data", properties={"p": mlmd.INT})
    a_type = stub.PutArtifactType(svc.PutArtifactTypeRequest(artifact_type=artifact_type)).type_id
    e_type = stub.PutExecutionType(svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="Run"))).type_id
    c_type = stub.PutContextType(svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="Pipe"))).type_id
    artifacts = []
    for index, name in enumerate(NAMES):
        node = mlmd.Artifact(type_id=a_type, name=name, uri=f"gs://bucket/{index}", state=mlmd.Artifact.LIVE)
        node.properties["p"].int_value = index
        artifacts.append(node)
    ids = stub.PutArtifacts(svc.PutArtifactsRequest(artifacts=artifacts)).artifact_ids
    execution = stub.PutExecutions(svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=e_type)]))
    [context_id] = stub.PutContexts(
        svc.PutContextsRequest(contexts=[mlmd.Context(type_id=c_type, name="ctx")])
    ).context_ids
    stub.PutEvents(
        svc.PutEventsRequest(
            events=[mlmd.Event(artifact_id=ids[0], execution_id=execution.execution_ids[0], type=mlmd.Event.INPUT)]
        )
    )
    stub.PutAttributionsAndAssociations(
        svc.PutAttributionsAndAssociationsRequest(
            attributions=[mlmd.Attribution(context_id=context_id, artifact_id=ids[0])],
            associations=[mlmd.Association(context_id=context_id, execution_id=execution.execution_ids[0])],
        )
    )
    yield Seeded(server, path, stub, channel, dict(zip(NAMES, ids, strict=True)), a_type, e_type, c_type)
    channel.close()
    stop_server(server)


def snapshot(path: Path) -> tuple[str, dict[str, int]]:
    """(hash of the schema, row count of every table), read with a separate connection."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = connection.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        digest = hashlib.sha256(repr(schema).encode()).hexdigest()
        tables = [row[1] for row in schema if row[0] == "table"]
        rows = {table: connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables}
    finally:
        connection.close()
    return digest, rows


# -- T21: hostile filter_query -------------------------------------------------------------------------------

INVALID = None  # expected outcome: INVALID_ARGUMENT
EVERYTHING = "*"


def _deep(depth: int) -> str:
    return "(" * depth + "id = 1" + ")" * depth


def _in_list(count: int) -> str:
    return "id IN (" + ", ".join(str(i) for i in range(1, count + 1)) + ")"


# (payload, expected artifact names, or INVALID, or EVERYTHING)
CORPUS: list[tuple[str, list[str] | str | None]] = [
    # SQL fragments and statement stacking
    ("name = 'x' OR 1=1 --", EVERYTHING),  # a legal (if silly) filter: 1=1 is a comparison of literals
    ("name = 'x' OR 1=1", EVERYTHING),
    ("'; DROP TABLE Artifact;--", INVALID),
    ("name = 'x'; DROP TABLE Artifact", INVALID),
    ("name = 'x'; DROP TABLE Artifact; --", INVALID),
    ("name = 'x' UNION SELECT name FROM sqlite_master", INVALID),
    ("name = 'x' UNION ALL SELECT 1", INVALID),
    ("state = LIVE; DROP TABLE Artifact", INVALID),
    ("id = 1; --", INVALID),
    ("id = 1 -- '; DROP TABLE Artifact", ["x"]),
    ("name = 'x' /* '; DROP TABLE Artifact; */", ["x"]),
    ("name = 'x' /* unterminated", INVALID),
    ("name = 'x' # hash comment", ["x"]),
    ("1 = 1", EVERYTHING),
    ("TRUE", EVERYTHING),
    ("FALSE", []),
    ("NOT FALSE AND name = 'a'", ["a"]),
    # quotes and backslashes
    ("name = 'x\\'; DROP TABLE Artifact; --'", []),
    ('name = "o\'brien"', ["o'brien"]),
    ("name = 'o\\'brien'", ["o'brien"]),
    ("name = 'o''brien'", INVALID),
    ("name = '''o'brien'''", ["o'brien"]),
    ('name = """o\'brien"""', ["o'brien"]),
    ("name = 'back\\\\slash'", ["back\\slash"]),
    ("name = r'back\\slash'", ["back\\slash"]),
    ("name = 'x\\'", INVALID),
    ("name = 'x", INVALID),
    ("name = 'x\\q'", INVALID),
    ("name = '\\x78'", ["x"]),
    ("name = '\\170'", ["x"]),
    ("name = '\\u00fcn\\u00ef'", ["ünï"]),
    ("name = '\\U0001F600'", []),
    ("name = b'x'", INVALID),
    ("name = x'78'", INVALID),
    ("`name` = 'x'", ["x"]),
    ("`name`` = 1", INVALID),
    ("properties.`p'; DROP TABLE Artifact; --`.int_value = 1", []),
    ("properties.`p`.int_value = 1", ["o'brien"]),
    # NUL bytes and control characters
    ("name = 'x\x00'", INVALID),
    ("name = 'x'\x00 OR 1=1", INVALID),
    ("\x00", INVALID),
    ("name = 'x\x01\x02'", []),
    ("name\t=\n'x'\r", ["x"]),
    # unknown columns, tables, functions, casts, collations
    ("password = 'x'", INVALID),
    ("Artifact.id = 1", INVALID),
    ("sqlite_master.name = 'Artifact'", INVALID),
    ("rowid = 1", INVALID),
    ("oid = 1", INVALID),
    ("LOWER(name) = 'x'", INVALID),
    ("load_extension('/tmp/x') IS NULL", INVALID),
    ("randomblob(1000000000) IS NOT NULL", INVALID),
    ("pg_sleep(10) IS NULL", INVALID),
    ("SLEEP(10) = 0", INVALID),
    ("CAST(id AS STRING) = '1'", INVALID),
    ("name COLLATE NOCASE = 'x'", INVALID),
    ("name LIKE 'x' ESCAPE '\\\\'", INVALID),
    ("id = 1 || 1", INVALID),
    ("id = 1/0", INVALID),
    ("id % 2 = 0", INVALID),
    ("uri = 'a' IS TRUE", INVALID),
    ("custom_properties.p.proto_value = 1", INVALID),
    ("contexts_a.external_id = 'x'", INVALID),
    ("executions_a.name = 'x'", INVALID),  # not a neighbor of artifacts
    # subqueries
    ("id IN (SELECT id FROM Artifact)", INVALID),
    ("EXISTS (SELECT 1)", INVALID),
    ("(SELECT 1) = 1", INVALID),
    ("id = (SELECT MAX(id) FROM Artifact)", INVALID),
    # parameters
    ("id = @p", INVALID),
    ("id = @@version", INVALID),
    ("id = ?", INVALID),
    ("id = :id", INVALID),
    ("id = $1", INVALID),
    # numbers
    ("id = 99999999999999999999999", INVALID),
    ("id = 1e400", INVALID),
    ("id = -9223372036854775808 OR id = 9223372036854775807", []),
    ("id = 0x1", ["x"]),
    ("id > 1e308", []),
    ("id = NaN", INVALID),
    ("id = 'NaN'", INVALID),
    ("id = ---1", INVALID),  # `--` starts a comment
    ("id = -(-(1))", ["x"]),
    # nesting and size
    (_deep(10), ["x"]),
    (_deep(60), ["x"]),
    (_deep(10_000), INVALID),
    ("(" * 10_000, INVALID),
    (")" * 10_000, INVALID),
    ("NOT " * 10_000 + "id = 1", INVALID),
    ("-" * 10_000 + "1 = id", INVALID),
    ("id = 1 AND " * 5_000 + "id = 1", INVALID),  # too many tokens
    ("name = '" + "a" * (1024 * 1024) + "'", INVALID),  # 1 MiB
    ("name = '" + "a" * 60_000 + "'", []),
    (" " * 100_000 + "id = 1", INVALID),
    (_in_list(5_000), EVERYTHING),
    (_in_list(20_000), INVALID),
    ("name IN (" + ", ".join(f"'n{i}'" for i in range(3_000)) + ", 'a')", ["a"]),
    # LIKE wildcards (SQLite LIKE is ASCII-case-insensitive and has no escape character)
    ("name LIKE '" + "%" * 5_000 + "b'", ["zeta b"]),
    ("name LIKE '" + "%_" * 2_000 + "'", []),
    (
        "name LIKE '" + "_%" * 3 + "'",
        ["o'brien", "back\\slash", "percent%", "under_score", "ünï", "ABC", "abc", "zeta b"],
    ),
    ("name LIKE 'abc'", ["ABC", "abc"]),
    ("name LIKE '%\\\\%'", ["back\\slash"]),
    ("name LIKE 'percent%'", ["percent%"]),
    ("name LIKE '%\\'%'", ["o'brien"]),
    ("uri LIKE '" + "%a%" * 1_000 + "'", []),
    # unicode
    ("name = 'ünï'", ["ünï"]),
    ("name = 'u\u0308n\u0131'", []),  # decomposed and dotless: not the same string
    ("nämé = 'x'", INVALID),
    ("name = '\u202ex\u202c'", []),
    ("name = '\U0001d535'", []),  # MATHEMATICAL FRAKTUR SMALL X
    ("name = '" + "ü" * 30_000 + "'", []),  # 60 KB of UTF-8
    ("name = '" + "ü" * 40_000 + "'", INVALID),  # 80 KB of UTF-8: over the byte limit
    # enums
    ("state = LIVE", EVERYTHING),
    ("state = live", INVALID),
    ("state = 2", INVALID),
    ("state = 'LIVE'", INVALID),
    ("state IN(LIVE)", INVALID),
    ("state = ABANDONED", INVALID),
    ("state != DELETED", EVERYTHING),
    # empty and odd
    ("   ", INVALID),
    ("-- only a comment", INVALID),
    ("id", INVALID),
    ("name", INVALID),
    ("name = NULL", INVALID),
    ("id IN ()", INVALID),
]


def _expected_ids(seeded: Seeded, expected: list[str] | str) -> list[int]:
    if expected == EVERYTHING:
        return sorted(seeded.artifacts.values())
    return sorted(seeded.artifacts[name] for name in expected)


def test_hostile_filter_corpus_is_invalid_argument_or_correct_and_changes_nothing(seeded: Seeded) -> None:
    before = snapshot(seeded.path)
    failures: list[str] = []
    timings: list[tuple[float, str]] = []
    for payload, expected in CORPUS:
        label = repr(payload if len(payload) < 60 else payload[:40] + f"...({len(payload)} chars)")
        best = float("inf")
        for _ in range(3):  # best of three: the figure is the parser's cost, not the machine's load
            started = time.perf_counter()
            with contextlib.suppress(FilterQueryError):
                parse_filter(payload, NodeKind.ARTIFACT)
            best = min(best, time.perf_counter() - started)
        timings.append((best, label))
        request = svc.GetArtifactsRequest(options=mlmd.ListOperationOptions(max_result_size=100, filter_query=payload))
        try:
            response = seeded.stub.GetArtifacts(request, timeout=30)
        except grpc.RpcError as error:
            if expected is not INVALID or error.code() is not StatusCode.INVALID_ARGUMENT:
                failures.append(f"{label}: {error.code().name} {error.details()!r}, expected {expected!r}")
            continue
        if expected is INVALID:
            failures.append(f"{label}: OK, expected INVALID_ARGUMENT")
            continue
        got = sorted(a.id for a in response.artifacts)
        if got != _expected_ids(seeded, expected):
            failures.append(f"{label}: returned {got}, expected {expected!r}")
    assert snapshot(seeded.path) == before, "a filter changed the database"
    assert failures == []
    durations = sorted(seconds for seconds, _ in timings)
    slowest = max(timings)
    print(
        f"\nT21 corpus: {len(CORPUS)} payloads; parse p50 {statistics.median(durations) * 1e3:.3f} ms, "
        f"p100 {slowest[0] * 1e3:.2f} ms ({slowest[1]})"
    )
    # The figure is reported, not asserted: a wall-clock threshold fails on a loaded machine
    # (it did, at 167 ms under a parallel run). The parser's bounds are its size, depth and
    # token limits, which tests/unit/test_filter_parser.py checks without a clock.


@pytest.mark.parametrize(
    "rpc",
    ["GetExecutions", "GetContexts", "GetArtifactsByType", "GetArtifactsByContext", "GetLineageSubgraph"],
)
def test_hostile_filters_in_other_rpcs_are_invalid_argument(seeded: Seeded, rpc: str) -> None:
    before = snapshot(seeded.path)
    for payload in ("'; DROP TABLE Artifact;--", _deep(10_000), "id IN (SELECT 1)", "name = 'x\x00'", "id = @p"):
        options = mlmd.ListOperationOptions(filter_query=payload)
        request: Message
        if rpc == "GetArtifactsByType":
            request = svc.GetArtifactsByTypeRequest(type_name="Data", options=options)
        elif rpc == "GetArtifactsByContext":
            request = svc.GetArtifactsByContextRequest(context_id=1, options=options)
        elif rpc == "GetLineageSubgraph":
            query = mlmd.LineageSubgraphQueryOptions(
                starting_artifacts=mlmd.LineageSubgraphQueryOptions.StartingNodes(filter_query=payload)
            )
            request = svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=query)
        else:
            request = getattr(svc, f"{rpc}Request")(options=options)
        with pytest.raises(grpc.RpcError) as raised:
            getattr(seeded.stub, rpc)(request, timeout=30)
        assert raised.value.code() is StatusCode.INVALID_ARGUMENT, (rpc, payload[:40], raised.value.details())
    assert snapshot(seeded.path) == before


def test_invalid_utf8_filter_query_is_invalid_argument(seeded: Seeded) -> None:
    # proto2 string fields are not UTF-8-checked on parse (upb), so these bytes reach the server.
    marker = "name = 'MARK'"
    raw = svc.GetArtifactsRequest(options=mlmd.ListOperationOptions(filter_query=marker)).SerializeToString()
    for bad in (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf"):
        payload = raw.replace(b"MARK", bad + b"MAR")
        try:
            svc.GetArtifactsRequest.FromString(payload)
        except DecodeError:
            # upb refuses some sequences (an encoded surrogate) outright: the whole request is undecodable.
            assert call_raw(seeded.channel, "GetArtifacts", payload)[0] is StatusCode.INVALID_ARGUMENT
            continue
        code, _ = call_raw(seeded.channel, "GetArtifacts", payload)
        assert code is StatusCode.INVALID_ARGUMENT, bad


def test_invalid_utf8_page_token_is_invalid_argument(seeded: Seeded) -> None:
    raw = svc.GetArtifactsRequest(options=mlmd.ListOperationOptions(next_page_token="TOKEN")).SerializeToString()
    code, _ = call_raw(seeded.channel, "GetArtifacts", raw.replace(b"TOKEN", b"\xffTOKE"))
    assert code is StatusCode.INVALID_ARGUMENT


# -- T20: mutated wire bytes -----------------------------------------------------------------------------------


def call_raw(channel: grpc.Channel, rpc: str, payload: bytes) -> tuple[grpc.StatusCode, str]:
    method = channel.unary_unary(
        f"/ml_metadata.MetadataStoreService/{rpc}", request_serializer=None, response_deserializer=None
    )
    try:
        method(payload, timeout=30)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return StatusCode.OK, ""


def _request_class(rpc: str) -> type[Message]:
    cls: type[Message] = getattr(svc, SERVICE.methods_by_name[rpc].input_type.name)
    return cls


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(getattr(field, "is_repeated", False)) or getattr(field, "label", None) == FieldDescriptor.LABEL_REPEATED


def has_invalid_utf8(message: Message) -> bool:
    """Whether a parsed message carries a string field whose bytes are not UTF-8 (upb hands
    those back as `bytes` for proto2, or raises when a map key is read)."""
    try:
        return _has_invalid_utf8(message)
    except UnicodeDecodeError:
        return True


def _has_invalid_utf8(message: Message) -> bool:
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(key, bytes):
                    return True
                if isinstance(item, Message) and _has_invalid_utf8(item):
                    return True
                if (
                    isinstance(item, bytes)
                    and field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_STRING
                ):
                    return True
            continue
        values = value if _is_repeated(field) else [value]
        for item in values:
            if field.type == FieldDescriptor.TYPE_STRING and isinstance(item, bytes):
                return True
            if isinstance(item, Message) and _has_invalid_utf8(item):
                return True
    return False


def seed_requests(seeded: Seeded) -> list[tuple[str, bytes]]:
    """Valid requests of many shapes, serialized."""
    t_a, t_e, t_c = seeded.artifact_type, seeded.execution_type, seeded.context_type
    a0 = seeded.artifacts["x"]
    artifact = mlmd.Artifact(type_id=t_a, name="fz", uri="gs://fuzz", external_id="fz-x", state=mlmd.Artifact.LIVE)
    artifact.properties["p"].int_value = 7
    artifact.custom_properties["note"].string_value = "hello"
    event = mlmd.Event(type=mlmd.Event.OUTPUT)
    event.path.steps.add().key = "out"
    options = mlmd.ListOperationOptions(
        max_result_size=5,
        order_by_field=mlmd.ListOperationOptions.OrderByField(field=mlmd.ListOperationOptions.OrderByField.CREATE_TIME),
        filter_query="name LIKE 'a%' AND properties.p.int_value >= 0",
    )
    requests: list[tuple[str, Message]] = [
        (
            "PutArtifactType",
            svc.PutArtifactTypeRequest(
                artifact_type=mlmd.ArtifactType(name="FuzzT", version="v1", properties={"k": mlmd.STRING}),
                can_add_fields=True,
            ),
        ),
        ("PutTypes", svc.PutTypesRequest(context_types=[mlmd.ContextType(name="FuzzC", description="d")])),
        ("PutArtifacts", svc.PutArtifactsRequest(artifacts=[artifact])),
        ("PutArtifacts", svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(id=a0, type_id=t_a, uri="u")])),
        ("PutExecutions", svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=t_e, name="fe")])),
        ("PutContexts", svc.PutContextsRequest(contexts=[mlmd.Context(type_id=t_c, name="fc")])),
        (
            "PutExecution",
            svc.PutExecutionRequest(
                execution=mlmd.Execution(type_id=t_e, last_known_state=mlmd.Execution.RUNNING),
                artifact_event_pairs=[svc.PutExecutionRequest.ArtifactAndEvent(artifact=artifact, event=event)],
                contexts=[mlmd.Context(type_id=t_c, name="pe-ctx")],
                options=svc.PutExecutionRequest.Options(reuse_context_if_already_exist=True),
            ),
        ),
        (
            "PutLineageSubgraph",
            svc.PutLineageSubgraphRequest(
                executions=[mlmd.Execution(type_id=t_e)],
                artifacts=[mlmd.Artifact(type_id=t_a, uri="ls")],
                contexts=[mlmd.Context(type_id=t_c, name="ls-ctx")],
                event_edges=[svc.PutLineageSubgraphRequest.EventEdge(execution_index=0, artifact_index=0, event=event)],
            ),
        ),
        ("GetArtifacts", svc.GetArtifactsRequest(options=options)),
        ("GetArtifactsByType", svc.GetArtifactsByTypeRequest(type_name="Data", options=options)),
        ("GetArtifactsByID", svc.GetArtifactsByIDRequest(artifact_ids=[a0, a0 + 1], populate_artifact_types=True)),
        ("GetArtifactsByURI", svc.GetArtifactsByURIRequest(uris=["gs://bucket/0"])),
        ("GetArtifactsByExternalIds", svc.GetArtifactsByExternalIdsRequest(external_ids=["fz-x"])),
        ("GetContextsByArtifact", svc.GetContextsByArtifactRequest(artifact_id=a0)),
        ("GetEventsByArtifactIDs", svc.GetEventsByArtifactIDsRequest(artifact_ids=[a0])),
        ("GetArtifactType", svc.GetArtifactTypeRequest(type_name="Data")),
        (
            "PutParentContexts",
            svc.PutParentContextsRequest(parent_contexts=[mlmd.ParentContext(child_id=1, parent_id=2)]),
        ),
        (
            "GetLineageSubgraph",
            svc.GetLineageSubgraphRequest(
                lineage_subgraph_query_options=mlmd.LineageSubgraphQueryOptions(
                    starting_artifacts=mlmd.LineageSubgraphQueryOptions.StartingNodes(filter_query="id > 0"),
                    max_num_hops=2,
                )
            ),
        ),
    ]
    return [(rpc, message.SerializeToString()) for rpc, message in requests]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    how = rng.randrange(8)
    if how == 0 and buf:  # bit flips
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif how == 1 and buf:  # truncation
        del buf[rng.randrange(len(buf)) :]
    elif how == 2:  # random bytes inserted
        at = rng.randrange(len(buf) + 1)
        buf[at:at] = rng.randbytes(rng.randint(1, 8))
    elif how == 3 and buf:  # a byte set to a length-ish / invalid-UTF-8 value
        buf[rng.randrange(len(buf))] = rng.choice([0x00, 0x7F, 0x80, 0xC0, 0xC3, 0xED, 0xFE, 0xFF])
    elif how == 4:  # a bogus field with a huge declared length
        buf += _varint((rng.randint(1, 40) << 3) | 2) + _varint(rng.choice([2**31, 2**32 + 5, 2**63]))
    elif how == 5:  # unknown fields of every wire type (ignored when well formed)
        for wire_type in (0, 1, 2, 5):
            buf += _varint((rng.randint(100, 10_000) << 3) | wire_type)
            buf += {0: _varint(rng.getrandbits(32)), 1: rng.randbytes(8), 2: b"\x02ab", 5: rng.randbytes(4)}[wire_type]
    elif how == 6 and len(buf) > 2:  # splice: duplicate a random slice
        start = rng.randrange(len(buf))
        end = rng.randint(start, len(buf))
        at = rng.randrange(len(buf))
        buf[at:at] = buf[start:end]
    else:  # pure garbage
        buf = bytearray(rng.randbytes(rng.randint(0, 64)))
    return bytes(buf)


WEIRD_STRINGS = [
    "",
    " ",
    "a" * 10_000,
    "ünï",
    "\x00",
    "'; DROP TABLE Artifact;--",
    "%_\\",
    "\U0001f600",
    "mlmd-struct::garbage",
]
_INT_BOUNDS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
}


def _fields(message: Message) -> list[tuple[Message, Any]]:
    """Every field of `message` and of the sub-messages it has set."""
    found: list[tuple[Message, Any]] = [(message, field) for field in message.DESCRIPTOR.fields]
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        for item in value if _is_repeated(field) else [value]:
            found += _fields(item)
    return found


def _scalar(rng: random.Random, field: FieldDescriptor) -> Any:
    if field.type in _INT_BOUNDS:
        low, high = _INT_BOUNDS[field.type]
        return rng.choice([0, 1, -1 if low < 0 else 2, low, high, rng.randint(low, high)])
    if field.type == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return rng.choice([0.0, -0.0, 1e308, -1e-308, float("inf"), float("nan"), rng.random()])
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return rng.choice([v.number for v in field.enum_type.values])
    if field.type == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.randint(0, 16))
    return rng.choice(WEIRD_STRINGS)


def mutate_fields(rng: random.Random, rpc: str, data: bytes) -> bytes:
    """Well-formed but odd values: a random field set to an extreme, cleared, or repeated."""
    message = _request_class(rpc).FromString(data)
    for _ in range(rng.randint(1, 3)):
        owner, field = rng.choice(_fields(message))
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entries = getattr(owner, field.name)
            key = rng.choice(WEIRD_STRINGS)
            value_field = field.message_type.fields_by_name["value"]
            if value_field.message_type is None:
                entries[key] = _scalar(rng, value_field)
            elif value_field.message_type.name == "Value":
                kind = rng.choice(["int_value", "double_value", "string_value", "bool_value", None])
                entry = entries[key]  # None leaves an empty Value{} (it crashed MLMD, §11)
                if kind is not None:
                    setattr(entry, kind, _scalar(rng, mlmd.Value.DESCRIPTOR.fields_by_name[kind]))
        elif field.message_type is not None:
            if _is_repeated(field):
                items = getattr(owner, field.name)
                if items and rng.random() < 0.5:
                    items.add().CopyFrom(items[rng.randrange(len(items))])
                else:
                    del items[:]
            elif rng.random() < 0.5:
                owner.ClearField(field.name)
            else:
                getattr(owner, field.name).SetInParent()
        elif _is_repeated(field):
            getattr(owner, field.name).append(_scalar(rng, field))
        else:
            setattr(owner, field.name, _scalar(rng, field))
    return message.SerializeToString()


ALLOWED = {
    StatusCode.OK,
    StatusCode.INVALID_ARGUMENT,
    StatusCode.NOT_FOUND,
    StatusCode.ALREADY_EXISTS,
    StatusCode.FAILED_PRECONDITION,
    StatusCode.OUT_OF_RANGE,
    StatusCode.UNIMPLEMENTED,
}


# MLMD answers INTERNAL when an update (not an insert) clashes with a unique name or
# external_id, and LineageDB replicates it (spec §2.9); those are not server faults.
MLMD_INTERNAL_CLASH = re.compile(
    r"clashes with another \w+'s name or external_id|^a type of another kind already uses|^another type already uses"
)


def invalid_utf8_rows(path: Path) -> list[tuple[str, str, int]]:
    """(table, column, row position) of every stored TEXT-declared value that is not valid
    UTF-8 (a position, not a rowid: some of LineageDB's tables are WITHOUT ROWID)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    connection.text_factory = bytes
    found: list[tuple[str, str, int]] = []
    try:
        tables = [r[0].decode() for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [
                row[1].decode()
                for row in connection.execute(f'PRAGMA table_info("{table}")')
                if b"CHAR" in row[2].upper() or b"TEXT" in row[2].upper()
            ]
            for column in columns:
                for position, (value,) in enumerate(connection.execute(f'SELECT "{column}" FROM "{table}"')):
                    if isinstance(value, bytes):
                        try:
                            value.decode("utf-8")
                        except UnicodeDecodeError:
                            found.append((table, column, position))
    finally:
        connection.close()
    return found


def fuzz_seed() -> int:
    seed = int(os.environ.get("LINEAGEDB_FUZZ_SEED", random.randrange(2**32)))
    print(f"\nT20 fuzz seed: {seed} (set LINEAGEDB_FUZZ_SEED={seed} to replay)")
    return seed


@dataclass
class FuzzResult:
    codes: dict[str, int]
    offenders: list[str]


def _decodes(rpc: str, payload: bytes) -> bool:
    try:
        _request_class(rpc).FromString(payload)
    except DecodeError:
        return False
    return True


def run_fuzz(seeded: Seeded, rounds: int, seed: int) -> FuzzResult:
    rng = random.Random(seed)
    corpus = seed_requests(seeded)
    codes: dict[str, int] = {}
    offenders: list[str] = []
    for round_number in range(rounds):
        rpc, valid = rng.choice(corpus)
        payload = mutate_fields(rng, rpc, valid) if rng.random() < 0.5 else mutate(rng, valid)
        code, details = call_raw(seeded.channel, rpc, payload)
        codes[code.name] = codes.get(code.name, 0) + 1
        assert seeded.server.process.poll() is None, f"server died on round {round_number}: {rpc} {payload!r}"
        if code in ALLOWED or (code is StatusCode.INTERNAL and MLMD_INTERNAL_CLASH.search(details)):
            continue
        offenders.append(f"{rpc} {code.name} {details!r} (decodes: {_decodes(rpc, payload)}) {payload.hex()}")
    return FuzzResult(codes, offenders)


def test_mutated_requests_keep_the_server_alive_and_never_fail_internally(seeded: Seeded) -> None:
    seed = fuzz_seed()
    result = run_fuzz(seeded, 200, seed)
    print(f"T20 codes over 200 mutations: {result.codes}")
    assert result.offenders == [], f"seed {seed}"
    # Still serving, and well.
    assert seeded.stub.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=[1])).artifacts


@pytest.mark.soak
@pytest.mark.skipif(not os.environ.get("LINEAGEDB_SOAK"), reason="soak: set LINEAGEDB_SOAK=1")
def test_soak_mutated_requests(seeded: Seeded) -> None:
    seed = fuzz_seed()
    result = run_fuzz(seeded, 5_000, seed)
    print(f"T20 soak codes: {result.codes}")
    assert result.offenders == [], f"seed {seed}"


def test_undecodable_bytes_are_invalid_argument(seeded: Seeded) -> None:
    """gRPC-Python answers INTERNAL when a request does not parse; LineageDB's status
    interceptor turns that into INVALID_ARGUMENT before any handler runs."""
    for payload in (b"\xff\xff\xff", b"\x0a\x05ab", b"\x08"):
        code, details = call_raw(seeded.channel, "PutArtifacts", payload)
        assert code is StatusCode.INVALID_ARGUMENT, details
        assert "PutArtifactsRequest" in details


UTF8_PROBES: list[tuple[str, Callable[[Seeded], Message], str]] = [
    ("PutArtifactType", lambda s: svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="MARKT")), "MARKT"),
    (
        "PutArtifacts",
        lambda s: svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=s.artifact_type, uri="MARKU")]),
        "MARKU",
    ),
    (
        "PutContexts",
        lambda s: svc.PutContextsRequest(contexts=[mlmd.Context(type_id=s.context_type, name="MARKC")]),
        "MARKC",
    ),
    (
        "PutArtifacts",
        lambda s: svc.PutArtifactsRequest(
            artifacts=[
                mlmd.Artifact(type_id=s.artifact_type, custom_properties={"k": mlmd.Value(string_value="MARKV")})
            ]
        ),
        "MARKV",
    ),
]


@pytest.mark.parametrize(("rpc", "build", "marker"), UTF8_PROBES, ids=[f"{p[0]}-{p[2]}" for p in UTF8_PROBES])
def test_invalid_utf8_in_string_fields_is_never_stored(
    tmp_path: Path, rpc: str, build: Callable[[Seeded], Message], marker: str
) -> None:
    # A server of its own: a stored invalid row would poison later reads of the shared one.
    path = tmp_path / "utf8.db"
    server = start_server(f"sqlite:///{path}")
    try:
        with server.channel() as channel:
            stub = svc_grpc.MetadataStoreServiceStub(channel)
            a_type = stub.PutArtifactType(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="A"))).type_id
            c_type = stub.PutContextType(svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="C"))).type_id
            fake = Seeded(server, path, stub, channel, {}, a_type, 0, c_type)
            payload = build(fake).SerializeToString().replace(marker.encode(), b"\xff\xfe" + marker.encode()[2:])
            code, _ = call_raw(channel, rpc, payload)
            assert invalid_utf8_rows(path) == []
            assert code is StatusCode.INVALID_ARGUMENT
            # Reads of everything still work.
            stub.GetArtifactTypes(svc.GetArtifactTypesRequest())
            stub.GetArtifacts(svc.GetArtifactsRequest())
            stub.GetContexts(svc.GetContextsRequest())
    finally:
        stop_server(server)


def test_error_details_fit_the_default_metadata_limit(seeded: Seeded) -> None:
    long_name = "n" * 20_000  # over gRPC's 16 KiB hard limit (between 8 and 16 KiB it drops at random)
    with pytest.raises(grpc.RpcError) as raised:
        seeded.stub.GetArtifactType(svc.GetArtifactTypeRequest(type_name=long_name), timeout=30)
    assert raised.value.code() is StatusCode.NOT_FOUND, raised.value.details()
