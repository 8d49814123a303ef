"""Wire contract: the compiled LineageDB descriptors against the official MLMD dump.

``tests/data/mlmd-wire.json`` is a descriptor dump of the official ml-metadata
1.17.1 wheel. This module describes our compiled descriptors in exactly the same
shape as that dump and compares the two, item by item:

* both ``.proto`` files: name, package, syntax, dependencies and their top-level
  messages, enums, extensions and services;
* every message (nested and map-entry ones included) and every field in it;
* every enum with its values and value options (``system_type_extension``);
* the ``system_type_extension`` extension itself;
* the service, each of its 52 RPCs, and the gRPC paths and message classes that
  the generated ``*_pb2_grpc`` stub and servicer registration really use.

Declaration order is compared as well. The .proto files are meant to be faithful
re-statements of upstream, and for enums the order is part of the wire contract:
in proto2 the first declared value is the default of an enum field.

The comparison helpers return a list of human-readable mismatches instead of
asserting, so the tests at the bottom can feed them a tampered spec, or a
tampered descriptor pool, and show that the check really does fail.

Needs the generated code: ``.venv/bin/python scripts/gen_protos.py``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.protobuf import (
    any_pb2,
    descriptor,
    descriptor_pb2,
    descriptor_pool,
    field_mask_pb2,
    message_factory,
    struct_pb2,
)
from google.protobuf.json_format import MessageToDict

from lineagedb.proto.ml_metadata.proto import (
    metadata_store_pb2,
    metadata_store_service_pb2,
    metadata_store_service_pb2_grpc,
)

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "mlmd-wire.json"

# A JSON object as loaded from the spec (or built to look like one).
JsonObject = dict[str, Any]

FieldDescriptorProto = descriptor_pb2.FieldDescriptorProto

# Wire type of a single element, by field type (see the spec's "conventions").
WIRE_TYPES: dict[int, int] = {
    FieldDescriptorProto.TYPE_INT32: 0,
    FieldDescriptorProto.TYPE_INT64: 0,
    FieldDescriptorProto.TYPE_UINT32: 0,
    FieldDescriptorProto.TYPE_UINT64: 0,
    FieldDescriptorProto.TYPE_SINT32: 0,
    FieldDescriptorProto.TYPE_SINT64: 0,
    FieldDescriptorProto.TYPE_BOOL: 0,
    FieldDescriptorProto.TYPE_ENUM: 0,
    FieldDescriptorProto.TYPE_FIXED64: 1,
    FieldDescriptorProto.TYPE_SFIXED64: 1,
    FieldDescriptorProto.TYPE_DOUBLE: 1,
    FieldDescriptorProto.TYPE_STRING: 2,
    FieldDescriptorProto.TYPE_BYTES: 2,
    FieldDescriptorProto.TYPE_MESSAGE: 2,
    FieldDescriptorProto.TYPE_GROUP: 3,
    FieldDescriptorProto.TYPE_FIXED32: 5,
    FieldDescriptorProto.TYPE_SFIXED32: 5,
    FieldDescriptorProto.TYPE_FLOAT: 5,
}

# Which generated-stub channel method (or which pair of handler flags) goes
# with which (client_streaming, server_streaming) combination.
CHANNEL_METHOD_STREAMING: dict[str, tuple[bool, bool]] = {
    "unary_unary": (False, False),
    "unary_stream": (False, True),
    "stream_unary": (True, False),
    "stream_stream": (True, True),
}

EXPECTED_COUNTS: JsonObject = {
    "messages": 174,
    "map_entry_messages": 13,
    "enums": 10,
    "rpcs": 52,
}


def load_spec() -> JsonObject:
    with SPEC_PATH.open(encoding="utf-8") as handle:
        spec: JsonObject = json.load(handle)
    return spec


SPEC: JsonObject = load_spec()


# --------------------------------------------------------------------------
# Indexing the compiled descriptors
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledFile:
    descriptor: descriptor.FileDescriptor
    proto: descriptor_pb2.FileDescriptorProto


@dataclass(frozen=True)
class CompiledMessage:
    descriptor: descriptor.Descriptor
    proto: descriptor_pb2.DescriptorProto


@dataclass(frozen=True)
class CompiledEnum:
    descriptor: descriptor.EnumDescriptor
    proto: descriptor_pb2.EnumDescriptorProto


@dataclass(frozen=True)
class CompiledExtension:
    descriptor: descriptor.FieldDescriptor
    proto: descriptor_pb2.FieldDescriptorProto
    file_name: str


@dataclass(frozen=True)
class CompiledService:
    descriptor: descriptor.ServiceDescriptor
    proto: descriptor_pb2.ServiceDescriptorProto


@dataclass(frozen=True)
class Compiled:
    """Everything declared in a set of compiled .proto files, by full name."""

    files: dict[str, CompiledFile]
    messages: dict[str, CompiledMessage]
    enums: dict[str, CompiledEnum]
    extensions: dict[str, CompiledExtension]
    services: dict[str, CompiledService]


def _qualify(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else name


def index_compiled(files: Sequence[descriptor.FileDescriptor]) -> Compiled:
    """Walk the FileDescriptorProtos (declaration order) and pair each item with
    its runtime descriptor from the file's pool."""
    compiled = Compiled(files={}, messages={}, enums={}, extensions={}, services={})

    def add_enums(
        pool: descriptor_pool.DescriptorPool,
        scope: str,
        enums: Sequence[descriptor_pb2.EnumDescriptorProto],
    ) -> None:
        for enum_proto in enums:
            full_name = _qualify(scope, enum_proto.name)
            compiled.enums[full_name] = CompiledEnum(pool.FindEnumTypeByName(full_name), enum_proto)

    def add_extensions(
        pool: descriptor_pool.DescriptorPool,
        scope: str,
        file_name: str,
        extensions: Sequence[descriptor_pb2.FieldDescriptorProto],
    ) -> None:
        for ext_proto in extensions:
            full_name = _qualify(scope, ext_proto.name)
            compiled.extensions[full_name] = CompiledExtension(
                pool.FindExtensionByName(full_name), ext_proto, file_name
            )

    def add_messages(
        pool: descriptor_pool.DescriptorPool,
        scope: str,
        file_name: str,
        messages: Sequence[descriptor_pb2.DescriptorProto],
    ) -> None:
        for message_proto in messages:
            full_name = _qualify(scope, message_proto.name)
            compiled.messages[full_name] = CompiledMessage(pool.FindMessageTypeByName(full_name), message_proto)
            add_messages(pool, full_name, file_name, message_proto.nested_type)
            add_enums(pool, full_name, message_proto.enum_type)
            add_extensions(pool, full_name, file_name, message_proto.extension)

    for file_descriptor in files:
        file_proto = descriptor_pb2.FileDescriptorProto()
        file_descriptor.CopyToProto(file_proto)
        pool = file_descriptor.pool
        compiled.files[file_proto.name] = CompiledFile(file_descriptor, file_proto)
        package = file_proto.package
        add_messages(pool, package, file_proto.name, file_proto.message_type)
        add_enums(pool, package, file_proto.enum_type)
        add_extensions(pool, package, file_proto.name, file_proto.extension)
        for service_proto in file_proto.service:
            full_name = _qualify(package, service_proto.name)
            compiled.services[full_name] = CompiledService(pool.FindServiceByName(full_name), service_proto)
    return compiled


COMPILED: Compiled = index_compiled((metadata_store_pb2.DESCRIPTOR, metadata_store_service_pb2.DESCRIPTOR))


# --------------------------------------------------------------------------
# Describing compiled descriptors in the spec's JSON shape
# --------------------------------------------------------------------------


def _label_name(label: int) -> str:
    return FieldDescriptorProto.Label.Name(cast(Any, label)).removeprefix("LABEL_").lower()


def _type_name(field_type: int) -> str:
    return FieldDescriptorProto.Type.Name(cast(Any, field_type)).removeprefix("TYPE_").lower()


def _reference(type_name: str) -> str | None:
    """``.ml_metadata.Value`` -> ``ml_metadata.Value``; empty -> None."""
    return type_name.removeprefix(".") or None


def _syntax(file_proto: descriptor_pb2.FileDescriptorProto) -> str:
    # protoc leaves `syntax` empty for proto2 files (proto2 is the default).
    if file_proto.edition != descriptor_pb2.EDITION_UNKNOWN:
        return f"editions:{descriptor_pb2.Edition.Name(file_proto.edition)}"
    return file_proto.syntax or "proto2"


def _inclusive_ranges(
    ranges: Sequence[descriptor_pb2.DescriptorProto.ExtensionRange]
    | Sequence[descriptor_pb2.DescriptorProto.ReservedRange],
) -> list[list[int]]:
    # DescriptorProto ranges are half-open; the spec's are inclusive.
    return [[item.start, item.end - 1] for item in ranges]


def _options_as_json(options: Any) -> JsonObject:
    """Every option that is set (extensions included), by its field name."""
    result: JsonObject = {}
    for option_field, value in options.ListFields():
        if option_field.message_type is not None:
            result[option_field.name] = MessageToDict(value, preserving_proto_field_name=True)
        else:
            result[option_field.name] = value
    return result


def _reader_default(field: descriptor.FieldDescriptor) -> Any:
    """What a reader sees for the field on a fresh, empty message instance."""
    if field.is_repeated or field.message_type is not None:
        return None
    assert field.containing_type is not None
    message_class = message_factory.GetMessageClass(field.containing_type)
    value = getattr(message_class(), field.name)
    if field.enum_type is not None:
        return {"number": value, "name": field.enum_type.values_by_number[value].name}
    return value


def describe_field(message: CompiledMessage, field_proto: FieldDescriptorProto) -> JsonObject:
    field = message.descriptor.fields_by_name[field_proto.name]
    options = field.GetOptions()
    oneof = message.proto.oneof_decl[field_proto.oneof_index].name if field_proto.HasField("oneof_index") else None
    entry = field.message_type
    is_map = field.is_repeated and entry is not None and entry.GetOptions().map_entry
    described: JsonObject = {
        "name": field_proto.name,
        "number": field_proto.number,
        "json_name": field.json_name,
        "label": _label_name(field_proto.label),
        "type": _type_name(field_proto.type),
        "wire_type": WIRE_TYPES[field_proto.type],
        "type_name": _reference(field_proto.type_name),
        "oneof": oneof,
        "has_presence": field.has_presence,
        "has_explicit_default": field_proto.HasField("default_value"),
        "default": _reader_default(field),
        "default_text": (field_proto.default_value if field_proto.HasField("default_value") else None),
        # What the runtime really does on the wire; for proto2 this is exactly
        # "the .proto asked for [packed = true]".
        "packed": field.is_packed,
        "deprecated": options.deprecated,
        "is_map": is_map,
    }
    if is_map:
        assert entry is not None
        key = entry.fields_by_name["key"]
        value = entry.fields_by_name["value"]
        value_type = value.message_type or value.enum_type
        described["map_key_type"] = _type_name(key.type)
        described["map_value_type"] = _type_name(value.type)
        described["map_value_type_name"] = value_type.full_name if value_type else None
    return described


def describe_message(compiled: Compiled, full_name: str) -> JsonObject:
    message = compiled.messages[full_name]
    desc, proto = message.descriptor, message.proto
    options = desc.GetOptions()
    return {
        "name": proto.name,
        "full_name": desc.full_name,
        "file": desc.file.name,
        "containing_type": desc.containing_type.full_name if desc.containing_type else None,
        "is_map_entry": options.map_entry,
        "deprecated": options.deprecated,
        "fields": [describe_field(message, field_proto) for field_proto in proto.field],
        "oneofs": [
            {
                "name": oneof.name,
                "fields": [f.name for f in proto.field if f.HasField("oneof_index") and f.oneof_index == index],
            }
            for index, oneof in enumerate(proto.oneof_decl)
        ],
        "nested_types": [_qualify(full_name, nested.name) for nested in proto.nested_type],
        "nested_enums": [_qualify(full_name, nested.name) for nested in proto.enum_type],
        "extension_ranges": _inclusive_ranges(proto.extension_range),
        "reserved_ranges": _inclusive_ranges(proto.reserved_range),
        "reserved_names": list(proto.reserved_name),
    }


def describe_enum(compiled: Compiled, full_name: str) -> JsonObject:
    enum = compiled.enums[full_name].descriptor
    values: list[JsonObject] = []
    for value in enum.values:
        described: JsonObject = {"name": value.name, "number": value.number}
        options = _options_as_json(value.GetOptions())
        if options:
            described["options"] = options
        values.append(described)
    return {
        "name": enum.name,
        "full_name": enum.full_name,
        "file": enum.file.name,
        "containing_type": enum.containing_type.full_name if enum.containing_type else None,
        "deprecated": enum.GetOptions().deprecated,
        "values": values,
    }


def describe_extension(compiled: Compiled, full_name: str) -> JsonObject:
    extension = compiled.extensions[full_name]
    proto = extension.proto
    return {
        "name": proto.name,
        "full_name": extension.descriptor.full_name,
        "number": proto.number,
        "extendee": _reference(proto.extendee),
        "label": _label_name(proto.label),
        "type": _type_name(proto.type),
        "type_name": _reference(proto.type_name),
        "file": extension.file_name,
    }


def describe_method(service: CompiledService, method_name: str) -> JsonObject:
    method = service.descriptor.methods_by_name[method_name]
    proto = next(m for m in service.proto.method if m.name == method_name)
    return {
        "name": method.name,
        "full_name": method.full_name,
        "grpc_path": f"/{service.descriptor.full_name}/{method.name}",
        "input_type": _reference(proto.input_type),
        "output_type": _reference(proto.output_type),
        "client_streaming": proto.client_streaming,
        "server_streaming": proto.server_streaming,
        "deprecated": method.GetOptions().deprecated,
    }


def describe_service(compiled: Compiled, full_name: str) -> JsonObject:
    service = compiled.services[full_name]
    return {
        "name": service.descriptor.name,
        "full_name": service.descriptor.full_name,
        "file": service.descriptor.file.name,
        "method_count": len(service.descriptor.methods),
        "methods": [describe_method(service, m.name) for m in service.proto.method],
    }


def describe_file(compiled: Compiled, file_name: str) -> JsonObject:
    proto = compiled.files[file_name].proto
    package = proto.package
    return {
        "name": proto.name,
        "package": package,
        "syntax": _syntax(proto),
        "dependencies": list(proto.dependency),
        "top_level_messages": [_qualify(package, m.name) for m in proto.message_type],
        "top_level_enums": [_qualify(package, e.name) for e in proto.enum_type],
        "extensions": [_qualify(package, e.name) for e in proto.extension],
        "services": [_qualify(package, s.name) for s in proto.service],
    }


def compiled_counts(compiled: Compiled) -> JsonObject:
    return {
        "messages": len(compiled.messages),
        "map_entry_messages": sum(1 for m in compiled.messages.values() if m.descriptor.GetOptions().map_entry),
        "enums": len(compiled.enums),
        "rpcs": sum(len(s.proto.method) for s in compiled.services.values()),
    }


# --------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------


def _is_named_list(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items)


def _same_scalar(expected: Any, actual: Any) -> bool:
    # Strict on type so that True != 1 and 0 != 0.0 (a bool default is not an int).
    return type(expected) is type(actual) and expected == actual


def diff(expected: Any, actual: Any, path: str) -> list[str]:
    """Every difference between a spec value and our description of it."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        problems: list[str] = []
        for key in expected:
            if key not in actual:
                problems.append(f"{path}.{key}: in the spec but not in the descriptors")
            else:
                problems.extend(diff(expected[key], actual[key], f"{path}.{key}"))
        problems.extend(
            f"{path}.{key}: in the descriptors ({actual[key]!r}) but not in the spec"
            for key in actual
            if key not in expected
        )
        return problems
    if isinstance(expected, list) and isinstance(actual, list):
        if _is_named_list(expected) and _is_named_list(actual):
            return _diff_named_lists(expected, actual, path)
        same_length = len(expected) == len(actual)
        if same_length and any(isinstance(i, (list, dict)) for i in expected + actual):
            return [
                problem
                for index, (e, a) in enumerate(zip(expected, actual, strict=True))
                for problem in diff(e, a, f"{path}[{index}]")
            ]
        if same_length and all(map(_same_scalar, expected, actual)):
            return []
        return [_describe_list_difference(expected, actual, path)]
    if _same_scalar(expected, actual):
        return []
    return [f"{path}: spec has {expected!r}, descriptors have {actual!r}"]


def _describe_list_difference(expected: list[Any], actual: list[Any], path: str) -> str:
    # A multiset difference under diff()'s strict equality (items may be unhashable).
    extra = list(actual)
    missing: list[Any] = []
    for item in expected:
        match = next((i for i, e in enumerate(extra) if not diff(item, e, "")), None)
        if match is None:
            missing.append(item)
        else:
            del extra[match]
    if not missing and not extra:
        first = next(i for i, (e, a) in enumerate(zip(expected, actual, strict=True)) if diff(e, a, ""))
        return (
            f"{path}: same items in a different order, first at position {first}: "
            f"spec {expected[first : first + 5]!r}..., descriptors {actual[first : first + 5]!r}..."
        )
    return f"{path}: missing {missing!r}, unexpected {extra!r}"


def _diff_named_lists(expected: list[JsonObject], actual: list[JsonObject], path: str) -> list[str]:
    problems: list[str] = []
    expected_names = [item["name"] for item in expected]
    actual_names = [item["name"] for item in actual]
    for names, side in ((expected_names, "spec"), (actual_names, "descriptors")):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(f"{path}: duplicate names in the {side}: {duplicates}")
    if expected_names != actual_names:
        problems.append(_describe_list_difference(expected_names, actual_names, path))
    by_name = {item["name"]: item for item in actual}
    for item in expected:
        if item["name"] in by_name:
            problems.extend(diff(item, by_name[item["name"]], f"{path}[{item['name']}]"))
    return problems


def _field_names(message: JsonObject) -> JsonObject:
    """The message without its field details (those are compared per field)."""
    return {**message, "fields": [field["name"] for field in message["fields"]]}


def _method_names(service: JsonObject) -> JsonObject:
    return {**service, "methods": [method["name"] for method in service["methods"]]}


def file_mismatches(spec: JsonObject, compiled: Compiled, file_name: str) -> list[str]:
    expected = next((f for f in spec["files"] if f["name"] == file_name), None)
    if expected is None:
        return [f"{file_name}: not in the spec"]
    if file_name not in compiled.files:
        return [f"{file_name}: not compiled"]
    return diff(expected, describe_file(compiled, file_name), file_name)


def message_mismatches(spec: JsonObject, compiled: Compiled, full_name: str) -> list[str]:
    expected = spec["messages"].get(full_name)
    if expected is None:
        return [f"{full_name}: message not in the spec"]
    if full_name not in compiled.messages:
        return [f"{full_name}: message missing from the descriptors"]
    actual = describe_message(compiled, full_name)
    return diff(_field_names(expected), _field_names(actual), full_name)


def field_mismatches(spec: JsonObject, compiled: Compiled, message_name: str, field_name: str) -> list[str]:
    where = f"{message_name}.fields[{field_name}]"
    spec_message = spec["messages"].get(message_name)
    expected = next(
        (f for f in (spec_message or {}).get("fields", []) if f["name"] == field_name),
        None,
    )
    if expected is None:
        return [f"{where}: not in the spec"]
    message = compiled.messages.get(message_name)
    if message is not None:
        for field_proto in message.proto.field:
            if field_proto.name == field_name:
                return diff(expected, describe_field(message, field_proto), where)
    return [f"{where}: missing from the descriptors"]


def enum_mismatches(spec: JsonObject, compiled: Compiled, full_name: str) -> list[str]:
    expected = spec["enums"].get(full_name)
    if expected is None:
        return [f"{full_name}: enum not in the spec"]
    if full_name not in compiled.enums:
        return [f"{full_name}: enum missing from the descriptors"]
    return diff(expected, describe_enum(compiled, full_name), full_name)


def extension_mismatches(spec: JsonObject, compiled: Compiled, full_name: str) -> list[str]:
    expected = next((e for e in spec["extensions"] if e["full_name"] == full_name), None)
    if expected is None:
        return [f"{full_name}: extension not in the spec"]
    if full_name not in compiled.extensions:
        return [f"{full_name}: extension missing from the descriptors"]
    return diff(expected, describe_extension(compiled, full_name), full_name)


def service_mismatches(spec: JsonObject, compiled: Compiled, full_name: str) -> list[str]:
    expected = spec["services"].get(full_name)
    if expected is None:
        return [f"{full_name}: service not in the spec"]
    if full_name not in compiled.services:
        return [f"{full_name}: service missing from the descriptors"]
    actual = describe_service(compiled, full_name)
    return diff(_method_names(expected), _method_names(actual), full_name)


def method_mismatches(spec: JsonObject, compiled: Compiled, service_name: str, method_name: str) -> list[str]:
    where = f"{service_name}.methods[{method_name}]"
    spec_service = spec["services"].get(service_name) or {}
    expected = next((m for m in spec_service.get("methods", []) if m["name"] == method_name), None)
    if expected is None:
        return [f"{where}: not in the spec"]
    service = compiled.services.get(service_name)
    if service is None or method_name not in service.descriptor.methods_by_name:
        return [f"{where}: missing from the descriptors"]
    return diff(expected, describe_method(service, method_name), where)


def declared_names_in_spec(spec: JsonObject) -> dict[str, set[str]]:
    return {
        "file": {f["name"] for f in spec["files"]},
        "message": set(spec["messages"]),
        "enum": set(spec["enums"]),
        "extension": {e["full_name"] for e in spec["extensions"]},
        "service": set(spec["services"]),
        "rpc": {m["full_name"] for s in spec["services"].values() for m in s["methods"]},
    }


def declared_names_in_descriptors(compiled: Compiled) -> dict[str, set[str]]:
    return {
        "file": set(compiled.files),
        "message": set(compiled.messages),
        "enum": set(compiled.enums),
        "extension": set(compiled.extensions),
        "service": set(compiled.services),
        "rpc": {m.full_name for s in compiled.services.values() for m in s.descriptor.methods},
    }


def name_set_mismatches(spec_names: set[str], compiled_names: set[str], what: str) -> list[str]:
    problems = [f"{what} {n}: in the spec, missing from the descriptors" for n in sorted(spec_names - compiled_names)]
    problems += [f"{what} {n}: in the descriptors, not in the spec" for n in sorted(compiled_names - spec_names)]
    return problems


def declared_name_mismatches(spec: JsonObject, compiled: Compiled, kind: str) -> list[str]:
    return name_set_mismatches(
        declared_names_in_spec(spec)[kind],
        declared_names_in_descriptors(compiled)[kind],
        kind,
    )


def _report(problems: list[str]) -> str:
    return "wire contract mismatches:\n  " + "\n  ".join(problems)


# --------------------------------------------------------------------------
# Parameters (taken from the spec; anything extra in the descriptors is caught
# by the both-directions name-set test)
# --------------------------------------------------------------------------

FILE_NAMES = [f["name"] for f in SPEC["files"]]
MESSAGE_NAMES = list(SPEC["messages"])
FIELD_PARAMS = [
    pytest.param(message_name, field["name"], id=f"{message_name}.{field['name']}")
    for message_name, message in SPEC["messages"].items()
    for field in message["fields"]
]
ENUM_NAMES = list(SPEC["enums"])
EXTENSION_NAMES = [e["full_name"] for e in SPEC["extensions"]]
SERVICE_NAMES = list(SPEC["services"])
METHOD_PARAMS = [
    pytest.param(service_name, method["name"], id=method["full_name"])
    for service_name, service in SPEC["services"].items()
    for method in service["methods"]
]


# --------------------------------------------------------------------------
# The spec itself
# --------------------------------------------------------------------------


def test_spec_is_the_ml_metadata_1_17_1_dump() -> None:
    assert SPEC["source"]["ml_metadata_wheel_version"] == "1.17.1"
    assert SPEC["package"] == "ml_metadata"
    assert FILE_NAMES == [
        "ml_metadata/proto/metadata_store.proto",
        "ml_metadata/proto/metadata_store_service.proto",
    ]


def test_spec_counts_block_says_174_messages_13_map_entries_10_enums_52_rpcs() -> None:
    assert SPEC["counts"] == EXPECTED_COUNTS


def test_spec_counts_block_agrees_with_the_spec_contents() -> None:
    messages = SPEC["messages"].values()
    assert {
        "messages": len(SPEC["messages"]),
        "map_entry_messages": sum(1 for m in messages if m["is_map_entry"]),
        "enums": len(SPEC["enums"]),
        "rpcs": sum(len(s["methods"]) for s in SPEC["services"].values()),
    } == SPEC["counts"]


# --------------------------------------------------------------------------
# Compiled descriptors against the spec
# --------------------------------------------------------------------------


def test_compiled_counts_match_spec_counts_block() -> None:
    assert compiled_counts(COMPILED) == EXPECTED_COUNTS


@pytest.mark.parametrize("kind", list(declared_names_in_spec(SPEC)))
def test_declared_names_match_spec_in_both_directions(kind: str) -> None:
    """Nothing in the descriptors that the spec lacks, nothing missing from them."""
    problems = declared_name_mismatches(SPEC, COMPILED, kind)
    assert not problems, _report(problems)


@pytest.mark.parametrize("file_name", FILE_NAMES)
def test_file_name_package_syntax_dependencies_and_top_level_items_match_spec(
    file_name: str,
) -> None:
    problems = file_mismatches(SPEC, COMPILED, file_name)
    assert not problems, _report(problems)


@pytest.mark.parametrize("full_name", MESSAGE_NAMES)
def test_message_shape_oneofs_nesting_and_ranges_match_spec(full_name: str) -> None:
    problems = message_mismatches(SPEC, COMPILED, full_name)
    assert not problems, _report(problems)


@pytest.mark.parametrize(("message_name", "field_name"), FIELD_PARAMS)
def test_field_number_label_type_presence_default_and_options_match_spec(message_name: str, field_name: str) -> None:
    problems = field_mismatches(SPEC, COMPILED, message_name, field_name)
    assert not problems, _report(problems)


@pytest.mark.parametrize("full_name", ENUM_NAMES)
def test_enum_values_in_order_and_value_options_match_spec(full_name: str) -> None:
    problems = enum_mismatches(SPEC, COMPILED, full_name)
    assert not problems, _report(problems)


@pytest.mark.parametrize("full_name", EXTENSION_NAMES)
def test_extension_number_extendee_and_type_match_spec(full_name: str) -> None:
    problems = extension_mismatches(SPEC, COMPILED, full_name)
    assert not problems, _report(problems)


def test_system_type_extension_is_enum_value_option_384560917() -> None:
    # Belt and braces on top of the generic check: the generated module exposes it.
    extension = metadata_store_pb2.system_type_extension
    assert extension.number == 384560917
    assert extension.containing_type is not None
    assert extension.containing_type.full_name == "google.protobuf.EnumValueOptions"
    assert extension.message_type is not None
    assert extension.message_type.full_name == "ml_metadata.SystemTypeExtension"


@pytest.mark.parametrize("full_name", SERVICE_NAMES)
def test_service_has_exactly_52_rpcs_in_spec_order(full_name: str) -> None:
    problems = service_mismatches(SPEC, COMPILED, full_name)
    assert not problems, _report(problems)
    assert len(COMPILED.services[full_name].descriptor.methods) == 52


@pytest.mark.parametrize(("service_name", "method_name"), METHOD_PARAMS)
def test_rpc_types_streaming_deprecation_and_grpc_path_match_spec(service_name: str, method_name: str) -> None:
    problems = method_mismatches(SPEC, COMPILED, service_name, method_name)
    assert not problems, _report(problems)


# --------------------------------------------------------------------------
# The generated gRPC glue uses the same paths and message classes
# --------------------------------------------------------------------------


@dataclass
class RecordedClientCall:
    streaming: tuple[bool, bool]
    response_deserializer: Any


class RecordingChannel:
    """Stands in for grpc.Channel and records what the generated stub asks for."""

    def __init__(self) -> None:
        self.calls: dict[str, RecordedClientCall] = {}

    def _record(self, kind: str, method: str, kwargs: dict[str, Any]) -> object:
        self.calls[method] = RecordedClientCall(CHANNEL_METHOD_STREAMING[kind], kwargs.get("response_deserializer"))
        return object()

    def unary_unary(self, method: str, **kwargs: Any) -> object:
        return self._record("unary_unary", method, kwargs)

    def unary_stream(self, method: str, **kwargs: Any) -> object:
        return self._record("unary_stream", method, kwargs)

    def stream_unary(self, method: str, **kwargs: Any) -> object:
        return self._record("stream_unary", method, kwargs)

    def stream_stream(self, method: str, **kwargs: Any) -> object:
        return self._record("stream_stream", method, kwargs)


class RecordingServer:
    """Stands in for grpc.Server and records the handlers the servicer registers."""

    def __init__(self) -> None:
        self.registered: dict[str, dict[str, grpc.RpcMethodHandler]] = {}

    def add_generic_rpc_handlers(self, handlers: Sequence[object]) -> None:
        del handlers

    def add_registered_method_handlers(self, service_name: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.registered[service_name] = dict(handlers)


def _recorded_client_calls() -> dict[str, RecordedClientCall]:
    channel = RecordingChannel()
    metadata_store_service_pb2_grpc.MetadataStoreServiceStub(cast(grpc.Channel, channel))
    return channel.calls


def _recorded_server_handlers() -> dict[str, dict[str, grpc.RpcMethodHandler]]:
    server = RecordingServer()
    # The generated base servicer is concrete at runtime (every method answers
    # UNIMPLEMENTED); only its .pyi marks the methods abstract.
    servicer_class: Any = metadata_store_service_pb2_grpc.MetadataStoreServiceServicer
    metadata_store_service_pb2_grpc.add_MetadataStoreServiceServicer_to_server(
        servicer_class(),
        cast(grpc.Server, server),
    )
    return server.registered


CLIENT_CALLS = _recorded_client_calls()
SERVER_HANDLERS = _recorded_server_handlers()


def _message_name_of_parser(parser: Any) -> str | None:
    """``SomeMessage.FromString`` is bound to its class; name that class."""
    owner = getattr(parser, "__self__", None)
    message_descriptor = getattr(owner, "DESCRIPTOR", None)
    return cast(str, message_descriptor.full_name) if message_descriptor else None


def test_generated_stub_and_servicer_cover_exactly_the_spec_grpc_paths() -> None:
    spec_paths = {m["grpc_path"] for s in SPEC["services"].values() for m in s["methods"]}
    server_paths = {f"/{service}/{name}" for service, handlers in SERVER_HANDLERS.items() for name in handlers}
    problems = name_set_mismatches(spec_paths, set(CLIENT_CALLS), "client stub path")
    problems += name_set_mismatches(spec_paths, server_paths, "servicer path")
    assert not problems, _report(problems)


@pytest.mark.parametrize(("service_name", "method_name"), METHOD_PARAMS)
def test_generated_grpc_glue_uses_spec_path_streaming_and_message_classes(service_name: str, method_name: str) -> None:
    spec_method = next(m for m in SPEC["services"][service_name]["methods"] if m["name"] == method_name)
    streaming = (spec_method["client_streaming"], spec_method["server_streaming"])

    client = CLIENT_CALLS.get(spec_method["grpc_path"])
    assert client is not None, f"stub has no call for {spec_method['grpc_path']}"
    assert client.streaming == streaming
    assert _message_name_of_parser(client.response_deserializer) == spec_method["output_type"]

    handler = SERVER_HANDLERS.get(service_name, {}).get(method_name)
    assert handler is not None, f"servicer registers no handler for {method_name}"
    assert (handler.request_streaming, handler.response_streaming) == streaming
    assert _message_name_of_parser(handler.request_deserializer) == spec_method["input_type"]


# --------------------------------------------------------------------------
# The checks can fail: tampered spec, tampered descriptors
# --------------------------------------------------------------------------


def _spec_field(spec: JsonObject, message_name: str, field_name: str) -> JsonObject:
    field: JsonObject = next(f for f in spec["messages"][message_name]["fields"] if f["name"] == field_name)
    return field


def _spec_method(spec: JsonObject, method_name: str) -> JsonObject:
    service = spec["services"]["ml_metadata.MetadataStoreService"]
    method: JsonObject = next(m for m in service["methods"] if m["name"] == method_name)
    return method


def _spec_enum_value(spec: JsonObject, enum_name: str, value_name: str) -> JsonObject:
    value: JsonObject = next(v for v in spec["enums"][enum_name]["values"] if v["name"] == value_name)
    return value


@dataclass(frozen=True)
class Tampering:
    """Edit a copy of the spec; then ``check`` must report ``expected_fragment``."""

    tamper: Callable[[JsonObject], None]
    check: Callable[[JsonObject], list[str]]
    expected_fragment: str


def _set(obj: Callable[[JsonObject], JsonObject], key: str, value: Any) -> Callable[[JsonObject], None]:
    def tamper(spec: JsonObject) -> None:
        obj(spec)[key] = value

    return tamper


def _drop_message(name: str) -> Callable[[JsonObject], None]:
    def tamper(spec: JsonObject) -> None:
        del spec["messages"][name]

    return tamper


def _swap_first_two_enum_values(name: str) -> Callable[[JsonObject], None]:
    def tamper(spec: JsonObject) -> None:
        values = spec["enums"][name]["values"]
        values[0], values[1] = values[1], values[0]

    return tamper


ARTIFACT = "ml_metadata.Artifact"
ORDER_BY = "ml_metadata.ListOperationOptions.OrderByField"
BASE_TYPE = "ml_metadata.ArtifactType.SystemDefinedBaseType"
SERVICE = "ml_metadata.MetadataStoreService"

TAMPERINGS = {
    "field number": Tampering(
        _set(lambda s: _spec_field(s, ARTIFACT, "type_id"), "number", 33),
        lambda s: field_mismatches(s, COMPILED, ARTIFACT, "type_id"),
        f"{ARTIFACT}.fields[type_id].number: spec has 33, descriptors have 2",
    ),
    "field label": Tampering(
        _set(lambda s: _spec_field(s, ARTIFACT, "uri"), "label", "repeated"),
        lambda s: field_mismatches(s, COMPILED, ARTIFACT, "uri"),
        f"{ARTIFACT}.fields[uri].label",
    ),
    "field json_name": Tampering(
        _set(lambda s: _spec_field(s, ARTIFACT, "type_id"), "json_name", "type_id"),
        lambda s: field_mismatches(s, COMPILED, ARTIFACT, "type_id"),
        f"{ARTIFACT}.fields[type_id].json_name",
    ),
    "explicit enum default": Tampering(
        _set(
            lambda s: _spec_field(s, ORDER_BY, "field"),
            "default",
            {"number": 1, "name": "CREATE_TIME"},
        ),
        lambda s: field_mismatches(s, COMPILED, ORDER_BY, "field"),
        f"{ORDER_BY}.fields[field].default.number",
    ),
    "bool default is not an int": Tampering(
        _set(lambda s: _spec_field(s, ORDER_BY, "is_asc"), "default", 1),
        lambda s: field_mismatches(s, COMPILED, ORDER_BY, "is_asc"),
        f"{ORDER_BY}.fields[is_asc].default",
    ),
    "field presence": Tampering(
        _set(lambda s: _spec_field(s, ARTIFACT, "name"), "has_presence", False),
        lambda s: field_mismatches(s, COMPILED, ARTIFACT, "name"),
        f"{ARTIFACT}.fields[name].has_presence",
    ),
    "extra field in the spec": Tampering(
        lambda s: s["messages"][ARTIFACT]["fields"].append(
            {**_spec_field(s, ARTIFACT, "uri"), "name": "uri2", "number": 99}
        ),
        lambda s: message_mismatches(s, COMPILED, ARTIFACT),
        "uri2",
    ),
    "reserved range": Tampering(
        _set(
            lambda s: s["messages"]["ml_metadata.MigrationOptions"],
            "reserved_ranges",
            [[1, 2]],
        ),
        lambda s: message_mismatches(s, COMPILED, "ml_metadata.MigrationOptions"),
        "ml_metadata.MigrationOptions.reserved_ranges",
    ),
    "enum value number": Tampering(
        _set(lambda s: _spec_enum_value(s, BASE_TYPE, "MODEL"), "number", 7),
        lambda s: enum_mismatches(s, COMPILED, BASE_TYPE),
        f"{BASE_TYPE}.values[MODEL].number",
    ),
    "enum value order": Tampering(
        _swap_first_two_enum_values(BASE_TYPE),
        lambda s: enum_mismatches(s, COMPILED, BASE_TYPE),
        "different order",
    ),
    "enum value system_type_extension": Tampering(
        _set(
            lambda s: _spec_enum_value(s, BASE_TYPE, "MODEL"),
            "options",
            {"system_type_extension": {"type_name": "mlmd.Modell"}},
        ),
        lambda s: enum_mismatches(s, COMPILED, BASE_TYPE),
        f"{BASE_TYPE}.values[MODEL].options.system_type_extension.type_name",
    ),
    "extension number": Tampering(
        _set(lambda s: s["extensions"][0], "number", 384560918),
        lambda s: extension_mismatches(s, COMPILED, "ml_metadata.system_type_extension"),
        "ml_metadata.system_type_extension.number",
    ),
    "rpc input type": Tampering(
        _set(
            lambda s: _spec_method(s, "GetArtifacts"),
            "input_type",
            "ml_metadata.GetExecutionsRequest",
        ),
        lambda s: method_mismatches(s, COMPILED, SERVICE, "GetArtifacts"),
        f"{SERVICE}.methods[GetArtifacts].input_type",
    ),
    "rpc streaming": Tampering(
        _set(lambda s: _spec_method(s, "GetArtifacts"), "server_streaming", True),
        lambda s: method_mismatches(s, COMPILED, SERVICE, "GetArtifacts"),
        f"{SERVICE}.methods[GetArtifacts].server_streaming",
    ),
    "message in descriptors but not in spec": Tampering(
        _drop_message("ml_metadata.Event.Path.Step"),
        lambda s: declared_name_mismatches(s, COMPILED, "message"),
        "message ml_metadata.Event.Path.Step: in the descriptors, not in the spec",
    ),
    "message in spec but not in descriptors": Tampering(
        lambda s: s["messages"].update(
            {
                "ml_metadata.Ghost": {
                    **s["messages"]["ml_metadata.Value"],
                    "name": "Ghost",
                }
            }
        ),
        lambda s: declared_name_mismatches(s, COMPILED, "message"),
        "message ml_metadata.Ghost: in the spec, missing from the descriptors",
    ),
    "enum in descriptors but not in spec": Tampering(
        lambda s: s["enums"].pop("ml_metadata.PropertyType"),
        lambda s: declared_name_mismatches(s, COMPILED, "enum"),
        "enum ml_metadata.PropertyType: in the descriptors, not in the spec",
    ),
    "file dependency": Tampering(
        lambda s: s["files"][0]["dependencies"].pop(),
        lambda s: file_mismatches(s, COMPILED, "ml_metadata/proto/metadata_store.proto"),
        "ml_metadata/proto/metadata_store.proto.dependencies",
    ),
}


@pytest.mark.parametrize("tampering", TAMPERINGS.values(), ids=list(TAMPERINGS))
def test_comparison_reports_a_tampered_spec(tampering: Tampering) -> None:
    untouched = tampering.check(SPEC)
    assert not any(tampering.expected_fragment in p for p in untouched), _report(untouched)
    tampered = copy.deepcopy(SPEC)
    tampering.tamper(tampered)
    problems = tampering.check(tampered)
    assert any(tampering.expected_fragment in p for p in problems), _report(problems)


def _pool_with(
    store_file: descriptor_pb2.FileDescriptorProto,
) -> Iterator[descriptor.FileDescriptor]:
    """A fresh pool holding our two files, with ``store_file`` swapped in."""
    pool = descriptor_pool.DescriptorPool()
    for well_known in (any_pb2, struct_pb2, descriptor_pb2, field_mask_pb2):
        dependency = descriptor_pb2.FileDescriptorProto()
        well_known.DESCRIPTOR.CopyToProto(dependency)
        pool.Add(dependency)
    service_file = descriptor_pb2.FileDescriptorProto()
    metadata_store_service_pb2.DESCRIPTOR.CopyToProto(service_file)
    pool.Add(store_file)
    pool.Add(service_file)
    yield pool.FindFileByName(store_file.name)
    yield pool.FindFileByName(service_file.name)


def _store_file_copy() -> descriptor_pb2.FileDescriptorProto:
    store_file = descriptor_pb2.FileDescriptorProto()
    metadata_store_pb2.DESCRIPTOR.CopyToProto(store_file)
    return store_file


def test_comparison_reports_a_field_number_changed_in_the_proto() -> None:
    # Control: rebuilding the pool from our own descriptors changes nothing.
    untouched = index_compiled(list(_pool_with(_store_file_copy())))
    assert field_mismatches(SPEC, untouched, ARTIFACT, "uri") == field_mismatches(SPEC, COMPILED, ARTIFACT, "uri")

    # Renumber Artifact.uri, as an edit to the .proto would.
    spec_number = _spec_field(SPEC, ARTIFACT, "uri")["number"]
    store_file = _store_file_copy()
    artifact = next(m for m in store_file.message_type if m.name == "Artifact")
    uri = next(f for f in artifact.field if f.name == "uri")
    uri.number = spec_number + 93
    tampered = index_compiled(list(_pool_with(store_file)))

    problems = field_mismatches(SPEC, tampered, ARTIFACT, "uri")
    assert (
        f"{ARTIFACT}.fields[uri].number: spec has {spec_number}, descriptors have {spec_number + 93}"
    ) in problems, _report(problems)
