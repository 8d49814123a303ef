"""LineageDB's Python client: the official ml-metadata client's API, over gRPC or embedded.

    from lineagedb.client import MetadataStore, proto
    store = MetadataStore("localhost:8080", token="...", namespace="team-a")   # a server
    store = MetadataStore("sqlite:///mlmd.sqlite")                              # embedded

See README, "Python client".
"""

from __future__ import annotations

from lineagedb.client import errors
from lineagedb.client.store import (
    MAX_NUM_RESULT,
    ExtraOptions,
    ListOptions,
    MetadataStore,
    OrderByField,
    downgrade_schema,
)
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as proto

__all__ = [
    "MAX_NUM_RESULT",
    "ExtraOptions",
    "ListOptions",
    "MetadataStore",
    "OrderByField",
    "downgrade_schema",
    "errors",
    "proto",
]
