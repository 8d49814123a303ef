"""Statements, batching and eager loads, one module per MLMD concept.

Repositories run statements through a `UnitOfWork`; they never commit and never
raise gRPC errors.
"""
