"""JSON for answers that hold a google.protobuf.Any of a type this server does not know.

The protobuf JSON mapping writes an Any as the message it holds, which needs that
message's descriptor; a client may store any type in a `proto_value` over gRPC (as bytes),
and the server has no descriptor for most of them. Rather than fail the whole answer,
such an Any is written as {"@type": "<its type URL>", "value_base64": "<its bytes>"}:
lossless, and unlike the mapping's own forms (an object with "@type" and the message's
fields, or "value" for a well-known type), so a reader can tell it apart. Such a value
cannot be written back over JSON (the parser needs the descriptor too): write it over gRPC.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor_pool import Default
from google.protobuf.message import Message

ANY = "google.protobuf.Any"
_STRUCT_URL = "type.googleapis.com/google.protobuf.Struct"
# Marks the Struct that stands in for an unknown Any until the JSON is built.
_MARK = "@lineagedb.opaque_any.9f1c2e"


def message_to_json(message: Message) -> str:
    """The message in the JSON mapping (proto field names), with unknown Anys as above."""
    try:
        return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=None, ensure_ascii=False)
    except TypeError:  # an Any whose type the descriptor pool lacks
        pass
    copy = type(message)()
    copy.CopyFrom(message)
    _mark_unknown_anys(copy)
    data = json_format.MessageToDict(copy, preserving_proto_field_name=True)
    return json.dumps(_unmark(data), ensure_ascii=False, separators=(",", ":"))


def _known(type_url: str) -> bool:
    try:
        Default().FindMessageTypeByName(type_url.rsplit("/", 1)[-1])
    except KeyError:
        return False
    return True


def _mark_unknown_anys(message: Message) -> None:
    if message.DESCRIPTOR.full_name == ANY:
        if not _known(message.type_url):  # type: ignore[attr-defined]
            stand_in = struct_pb2.Struct()
            stand_in.update(
                {
                    _MARK: message.type_url,  # type: ignore[attr-defined]
                    "value_base64": base64.b64encode(message.value).decode("ascii"),  # type: ignore[attr-defined]
                }
            )
            message.Pack(stand_in)  # type: ignore[attr-defined]
        return
    for field, value in message.ListFields():
        entry = field.message_type
        if entry is None:
            continue  # not a message field
        if entry.GetOptions().map_entry:
            if entry.fields_by_name["value"].message_type is not None:
                for item in value.values():
                    _mark_unknown_anys(item)
        elif field.is_repeated:
            for item in value:
                _mark_unknown_anys(item)
        else:
            _mark_unknown_anys(value)


def _unmark(data: Any) -> Any:
    if isinstance(data, list):
        return [_unmark(item) for item in data]
    if not isinstance(data, dict):
        return data
    inner = data.get("value")
    if data.get("@type") == _STRUCT_URL and isinstance(inner, dict) and _MARK in inner and len(data) == 2:
        return {"@type": inner[_MARK], "value_base64": inner["value_base64"]}
    return {key: _unmark(item) for key, item in data.items()}
