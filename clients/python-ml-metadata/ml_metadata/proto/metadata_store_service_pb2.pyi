# Type checkers see the generated module this one stands for.
from lineagedb.proto.ml_metadata.proto.metadata_store_service_pb2 import *  # noqa: F403
