"""MLMD semantics: one public method per RPC; imports neither grpc nor sqlalchemy."""
