"""The well-known protobuf types, loaded into the default descriptor pool.

A property's `proto_value` is a google.protobuf.Any. In the JSON mapping an Any is written
as the message it holds ({"@type": "type.googleapis.com/google.protobuf.StringValue",
"value": "..."}), so converting one in either direction needs that message's descriptor.
gRPC passes an Any through as bytes and never needs it; the JSON API does, and only the
types loaded here (and LineageDB's and MLMD's own messages) can be converted.
"""

from __future__ import annotations

from google.protobuf import (
    any_pb2,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)

LOADED = (any_pb2, duration_pb2, empty_pb2, field_mask_pb2, struct_pb2, timestamp_pb2, wrappers_pb2)
