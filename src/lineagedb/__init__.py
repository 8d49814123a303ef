"""LineageDB: an ML metadata and lineage store that speaks MLMD's gRPC protocol."""

__version__ = "0.1.0"
