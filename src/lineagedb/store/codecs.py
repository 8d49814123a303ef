"""Rows <-> protobuf messages. The only module that knows the property (EAV) layout.

Property values are stored the way MLMD stores them, so either server can read
the other's database (spec §2.3, §8.4):
* doubles are rounded to the text of C's `%f` (6 fractional digits);
* STRUCT values live in `string_value` as "mlmd-struct::" + base64(Struct bytes),
  and every string read with that prefix decodes as a Struct;
* PROTO values are serialized `Any` bytes (encoded per dialect by schema.ProtoValue).

Sensitive values (store.sensitive) are stored as an *envelope* in `string_value`,
whatever their kind: ENVELOPE_PREFIX + "v1:<key id>:<base64url(nonce | AES-GCM ciphertext)>".
The ciphertext's plaintext is a one-byte kind tag and the value's bytes
(`sealed_plaintext`), so a read restores the exact Value the client wrote. MLMD
opening the database sees a string property holding ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from google.protobuf import any_pb2, struct_pb2
from google.protobuf.message import DecodeError

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd

STRUCT_PREFIX = "mlmd-struct::"
# Strings starting with this are envelopes (encrypted values); clients may not write such strings,
# or a read would take them for ciphertext.
ENVELOPE_PREFIX = "lineagedb:enc:"
# What callers without secrets:read get in place of a sensitive value (a string_value,
# whatever the value's kind). Written back for a sensitive property, it keeps the stored value.
REDACTED = "lineagedb:redacted"
PROPERTY_VALUE_COLUMNS = ("int_value", "double_value", "string_value", "proto_value", "bool_value")


def round_double(value: float) -> float:
    """MLMD writes doubles as printf("%f") text; replicate the rounding."""
    return float(format(value, "f"))


def value_to_columns(name: str, value: mlmd.Value) -> dict[str, Any]:
    """The value columns of one property row. Raises InvalidArgumentError for values
    MLMD would store but never read back (or would crash on)."""
    case = value.WhichOneof("value")
    columns: dict[str, Any] = dict.fromkeys(PROPERTY_VALUE_COLUMNS)
    if case == "int_value":
        columns["int_value"] = value.int_value
    elif case == "double_value":
        if not math.isfinite(value.double_value):
            raise errors.InvalidArgumentError(f"property {name!r}: NaN and infinite doubles cannot be stored")
        columns["double_value"] = round_double(value.double_value)
    elif case == "string_value":
        if isinstance(value.string_value, bytes):  # proto2 leaves invalid UTF-8 as bytes
            raise errors.InvalidArgumentError(f"property {name!r}: string_value is not valid UTF-8")
        if value.string_value.startswith(STRUCT_PREFIX) and _decode_struct(value.string_value) is None:
            raise errors.InvalidArgumentError(
                f"property {name!r}: a string starting with {STRUCT_PREFIX!r} must carry a base64-encoded Struct"
            )
        if value.string_value.startswith(ENVELOPE_PREFIX):
            raise errors.InvalidArgumentError(
                f"property {name!r}: strings starting with {ENVELOPE_PREFIX!r} are reserved for encrypted values"
            )
        columns["string_value"] = value.string_value
    elif case == "struct_value":
        encoded = base64.b64encode(value.struct_value.SerializeToString()).decode("ascii")
        columns["string_value"] = STRUCT_PREFIX + encoded
    elif case == "proto_value":
        if not value.proto_value.type_url:
            raise errors.InvalidArgumentError(f"property {name!r}: proto_value needs a type_url")
        columns["proto_value"] = value.proto_value.SerializeToString()
    elif case == "bool_value":
        columns["bool_value"] = value.bool_value
    else:
        raise errors.InvalidArgumentError(f"property {name!r} has no value set")
    return columns


def _decode_struct(text: str) -> struct_pb2.Struct | None:
    try:
        raw = base64.b64decode("".join(text[len(STRUCT_PREFIX) :].split()), validate=True)
        struct = struct_pb2.Struct()
        struct.ParseFromString(raw)
        return struct
    except (binascii.Error, ValueError, DecodeError):
        return None


def fill_properties(rows: Any, nodes: dict[int, Any], sealed: list[tuple[Any, bool, str, str]] | None = None) -> None:
    """Add property rows (owner, name, is_custom, int, double, string, proto, bool) to
    the nodes they belong to. The hot loop of every node read, so it is flat.

    With `sealed` (encryption configured), envelopes are not decoded here: they are
    appended as (node, is_custom, name, envelope) for store.sensitive to decrypt or
    redact, and their Value stays empty until then."""
    for owner, name, is_custom, int_value, double_value, string_value, proto_value, bool_value in rows:
        node = nodes.get(owner)
        if node is None:
            continue
        target = (node.custom_properties if is_custom else node.properties)[name]
        if int_value is not None:
            target.int_value = int_value
        elif double_value is not None:
            target.double_value = double_value
        elif string_value is not None:
            if string_value.startswith(STRUCT_PREFIX):
                struct = _decode_struct(string_value)
                if struct is None:
                    raise errors.InvalidArgumentError("a stored struct property cannot be decoded")
                target.struct_value.CopyFrom(struct)
            elif sealed is not None and string_value.startswith(ENVELOPE_PREFIX):
                sealed.append((node, bool(is_custom), name, string_value))
            else:
                target.string_value = string_value
        elif proto_value is not None:
            any_value = any_pb2.Any()
            any_value.ParseFromString(proto_value)
            if not any_value.type_url:
                raise errors.InternalError("a stored proto property has no type_url")
            target.proto_value.CopyFrom(any_value)
        elif bool_value is not None:
            target.bool_value = bool(bool_value)


# -- sealed values: the plaintext inside an envelope ------------------------------------------
# One tag byte for the value's kind, then its bytes. Doubles keep the text of their already
# rounded value (repr round-trips exactly); structs their serialized bytes.
_INT, _DOUBLE, _STRING, _STRUCT, _PROTO, _BOOL = b"i", b"d", b"s", b"S", b"p", b"b"


def sealed_plaintext(columns: dict[str, Any]) -> bytes:
    """The plaintext to encrypt for the value columns of one property row."""
    if columns.get("int_value") is not None:
        return _INT + str(int(columns["int_value"])).encode("ascii")
    if columns.get("double_value") is not None:
        return _DOUBLE + repr(float(columns["double_value"])).encode("ascii")
    text = columns.get("string_value")
    if text is not None:
        if text.startswith(STRUCT_PREFIX):
            struct = _decode_struct(text)
            assert struct is not None  # value_to_columns refused undecodable ones
            return _STRUCT + struct.SerializeToString()
        return _STRING + text.encode("utf-8")
    if columns.get("proto_value") is not None:
        return _PROTO + bytes(columns["proto_value"])
    if columns.get("bool_value") is not None:
        return _BOOL + (b"1" if columns["bool_value"] else b"0")
    raise errors.InvalidArgumentError("a property without a value cannot be stored")


def fill_from_plaintext(target: mlmd.Value, plaintext: bytes) -> None:
    """Set `target` to the value `sealed_plaintext` encoded. Raises ValueError when the
    plaintext is not one (only a bug or a forged envelope with a valid tag gets here)."""
    tag, payload = plaintext[:1], plaintext[1:]
    try:
        if tag == _INT:
            target.int_value = int(payload.decode("ascii"))
        elif tag == _DOUBLE:
            target.double_value = float(payload.decode("ascii"))
        elif tag == _STRING:
            target.string_value = payload.decode("utf-8")
        elif tag == _STRUCT:
            struct = struct_pb2.Struct()
            struct.ParseFromString(payload)
            target.struct_value.CopyFrom(struct)
        elif tag == _PROTO:
            any_value = any_pb2.Any()
            any_value.ParseFromString(payload)
            target.proto_value.CopyFrom(any_value)
        elif tag == _BOOL:
            target.bool_value = payload == b"1"
        else:
            raise ValueError("unknown value kind")
    except (ValueError, DecodeError):
        # Never chained: int()'s message would quote the plaintext into a log line.
        raise ValueError("undecodable sealed value") from None
