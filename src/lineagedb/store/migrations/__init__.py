"""Alembic migrations shipped inside the package (script_location lineagedb.store:migrations)."""
