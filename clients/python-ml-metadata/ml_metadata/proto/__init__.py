"""ml_metadata.proto: the message classes official-client code uses by name."""

from lineagedb.proto.ml_metadata.proto.metadata_store_pb2 import (
    Artifact,
    ArtifactType,
    Association,
    Attribution,
    ConnectionConfig,
    Context,
    ContextType,
    Event,
    Execution,
    ExecutionType,
    FakeDatabaseConfig,
    MetadataStoreClientConfig,
    MySQLDatabaseConfig,
    ParentContext,
    PostgreSQLDatabaseConfig,
    SqliteMetadataSourceConfig,
)

__all__ = [
    "Artifact",
    "ArtifactType",
    "Association",
    "Attribution",
    "ConnectionConfig",
    "Context",
    "ContextType",
    "Event",
    "Execution",
    "ExecutionType",
    "FakeDatabaseConfig",
    "MetadataStoreClientConfig",
    "MySQLDatabaseConfig",
    "ParentContext",
    "PostgreSQLDatabaseConfig",
    "SqliteMetadataSourceConfig",
]
