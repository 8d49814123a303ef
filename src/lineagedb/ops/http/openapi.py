"""The OpenAPI 3.1 document of the JSON API, generated from the protobuf descriptors.

One POST path per method; request and response bodies are component schemas named by
the messages' full names (nested messages and enums too), following the protobuf JSON
mapping as the API writes it: fields by their .proto names (lowerCamel is accepted in
requests as well), 64-bit integers as strings, enums as their names, bytes as base64,
maps as objects, repeated fields as arrays, a oneof as "at most one of these fields",
and the well-known types in their JSON forms (Struct: any object, Any: an object with
"@type", FieldMask: a comma-separated string, Timestamp: RFC 3339, ...).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, ServiceDescriptor

import lineagedb

Schema = dict[str, Any]

ERROR_SCHEMA = "lineagedb.http.Error"
_FLOAT_WORDS = {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}

_SCALARS: dict[int, Schema] = {
    FieldDescriptor.TYPE_DOUBLE: {"anyOf": [{"type": "number", "format": "double"}, _FLOAT_WORDS]},
    FieldDescriptor.TYPE_FLOAT: {"anyOf": [{"type": "number", "format": "float"}, _FLOAT_WORDS]},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}

# The JSON forms of the well-known types (inlined where used, not components).
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Struct": {"type": "object", "description": "any JSON object"},
    "google.protobuf.Value": {"description": "any JSON value"},
    "google.protobuf.ListValue": {"type": "array", "description": "any JSON array"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string", "description": "type.googleapis.com/<full message name>"}},
        "required": ["@type"],
        "description": "a message of any type: '@type' names it, the other members are its fields "
        "(or 'value' for well-known types)",
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "field paths, lowerCamel, separated by commas (e.g. 'properties,customProperties')",
    },
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$",
        "description": "e.g. 1.5s",
    },
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.DoubleValue": _SCALARS[FieldDescriptor.TYPE_DOUBLE],
    "google.protobuf.FloatValue": _SCALARS[FieldDescriptor.TYPE_FLOAT],
    "google.protobuf.Int64Value": _SCALARS[FieldDescriptor.TYPE_INT64],
    "google.protobuf.UInt64Value": _SCALARS[FieldDescriptor.TYPE_UINT64],
    "google.protobuf.Int32Value": _SCALARS[FieldDescriptor.TYPE_INT32],
    "google.protobuf.UInt32Value": _SCALARS[FieldDescriptor.TYPE_UINT32],
    "google.protobuf.BoolValue": _SCALARS[FieldDescriptor.TYPE_BOOL],
    "google.protobuf.StringValue": _SCALARS[FieldDescriptor.TYPE_STRING],
    "google.protobuf.BytesValue": _SCALARS[FieldDescriptor.TYPE_BYTES],
}

_DESCRIPTION = """\
Every RPC of LineageDB's gRPC services, as JSON over HTTP: POST the request message to
/api/v1/<package.Service>/<Method> with Content-Type: application/json; the answer is the
response message. Bodies follow the protobuf JSON mapping (as grpc-gateway's): field names
as in the .proto files (lowerCamel names are accepted in requests too), 64-bit integers as
strings (numbers are accepted in requests), enums by name, bytes as base64. Unknown fields
are refused. Credentials: the Authorization header (Bearer token), the namespace in
X-LineageDB-Namespace, a deadline in Grpc-Timeout (e.g. 30S). Errors answer with the HTTP
status of the gRPC code (as grpc-gateway maps them) and a body {code, status, message}."""


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


class _Builder:
    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def message(self, descriptor: Descriptor) -> Schema:
        """A reference to the message's component (made on first use), or a well-known type's form."""
        if descriptor.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[descriptor.full_name])
        if descriptor.full_name not in self.schemas:
            schema: Schema = {"type": "object", "title": descriptor.name}
            self.schemas[descriptor.full_name] = schema  # before the fields: messages may be recursive
            schema["properties"] = {field.name: self.field(field) for field in descriptor.fields}
            constraints = [self._at_most_one(oneof.fields) for oneof in descriptor.oneofs if _real(oneof)]
            constraints = [constraint for constraint in constraints if constraint]
            if constraints:
                schema["allOf"] = constraints
        return _ref(descriptor.full_name)

    def enum(self, descriptor: EnumDescriptor) -> Schema:
        if descriptor.full_name == "google.protobuf.NullValue":
            return {"type": "null"}
        if descriptor.full_name not in self.schemas:
            self.schemas[descriptor.full_name] = {
                "type": "string",
                "title": descriptor.name,
                "enum": [value.name for value in descriptor.values],
            }
        return _ref(descriptor.full_name)

    def single(self, field: FieldDescriptor) -> Schema:
        if field.message_type is not None:
            return self.message(field.message_type)
        if field.enum_type is not None:
            return self.enum(field.enum_type)
        return dict(_SCALARS[field.type])

    def field(self, field: FieldDescriptor) -> Schema:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            return {"type": "object", "additionalProperties": self.single(message.fields_by_name["value"])}
        if field.is_repeated:
            return {"type": "array", "items": self.single(field)}
        return self.single(field)

    @staticmethod
    def _at_most_one(fields: Sequence[FieldDescriptor]) -> Schema | None:
        names = [field.name for field in fields]
        if len(names) < 2:
            return None
        pairs = [{"required": list(pair)} for pair in itertools.combinations(names, 2)]
        return {"not": {"anyOf": pairs}, "description": f"at most one of: {', '.join(names)}"}


def _real(oneof: Any) -> bool:
    """False for the one-field oneof protoc makes for a proto3 `optional` field."""
    synthetic = getattr(oneof, "is_synthetic", None)
    if synthetic is not None:
        return not bool(synthetic() if callable(synthetic) else synthetic)
    return len(oneof.fields) > 1


def document(services: Sequence[ServiceDescriptor], prefix: str) -> dict[str, Any]:
    builder = _Builder()
    paths: dict[str, Any] = {}
    short_names = [service.name for service in services]
    for service in services:
        # Operation ids read ServiceName_Method unless two packages share a service name.
        label = service.name if short_names.count(service.name) == 1 else service.full_name.replace(".", "_")
        for method in service.methods:
            if method.client_streaming or method.server_streaming:
                continue
            paths[f"{prefix}/{service.full_name}/{method.name}"] = {
                "post": {
                    "operationId": f"{label}_{method.name}",
                    "summary": f"{service.full_name}.{method.name}",
                    "tags": [service.full_name],
                    "parameters": [
                        {"$ref": "#/components/parameters/Namespace"},
                        {"$ref": "#/components/parameters/GrpcTimeout"},
                    ],
                    "requestBody": {
                        "required": False,
                        "description": f"a {method.input_type.full_name} (an empty body is the default message)",
                        "content": {"application/json": {"schema": builder.message(method.input_type)}},
                    },
                    "responses": {
                        "200": {
                            "description": f"a {method.output_type.full_name}",
                            "content": {"application/json": {"schema": builder.message(method.output_type)}},
                        },
                        "default": {
                            "description": "an error: the gRPC status code, its name and a message",
                            "content": {"application/json": {"schema": _ref(ERROR_SCHEMA)}},
                        },
                    },
                }
            }
    schemas = dict(sorted(builder.schemas.items()))
    schemas[ERROR_SCHEMA] = {
        "type": "object",
        "title": "Error",
        "properties": {
            "code": {"type": "integer", "description": "the gRPC status code number"},
            "status": {"type": "string", "description": "the gRPC status code name, e.g. NOT_FOUND"},
            "message": {"type": "string"},
        },
        "required": ["code", "status", "message"],
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "LineageDB JSON API", "version": lineagedb.__version__, "description": _DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": {
                "Namespace": {
                    "name": "X-LineageDB-Namespace",
                    "in": "header",
                    "required": False,
                    "description": "the namespace to act in (writes) or to read only (reads)",
                    "schema": {"type": "string"},
                },
                "GrpcTimeout": {
                    "name": "Grpc-Timeout",
                    "in": "header",
                    "required": False,
                    "description": "deadline of the call: digits and a unit (H, M, S, m, u, n), e.g. 30S",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,8}[HMSmun]$"},
                },
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        # Authentication is optional on a server that runs without it.
        "security": [{"bearer": []}, {}],
    }
