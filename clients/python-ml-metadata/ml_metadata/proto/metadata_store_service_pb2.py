"""ml_metadata.proto.metadata_store_service_pb2: LineageDB's generated module itself (not a copy)."""

import sys

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as _generated

sys.modules[__name__] = _generated
