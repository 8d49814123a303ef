"""Persistence: SQLAlchemy Core over MLMD's schema v10; never imports grpc."""
