"""`lineagedb namespace create|list|delete`: administration of namespaces, run against
the database directly by whoever holds its credentials (the cluster's administrators)."""

from __future__ import annotations

import time

from sqlalchemy.engine import make_url

from lineagedb import errors
from lineagedb.ops.database import password_from_environment, with_password
from lineagedb.store import tenancy
from lineagedb.store.bootstrap import inspect_schema, upgrade_command
from lineagedb.store.engine import PoolSettings, create_engine
from lineagedb.store.unit_of_work import Database


def run(command: str, url: str, name: str | None) -> list[str]:
    """Run one namespace command; returns the lines to print. Raises LineageError."""
    engine = create_engine(with_password(make_url(url), password_from_environment(None)), PoolSettings(size=1))
    try:
        with engine.connect() as connection:
            if not inspect_schema(connection).has_namespaces:
                raise errors.FailedPreconditionError(
                    "this database has no namespace tables yet; run: "
                    + upgrade_command(engine.url.render_as_string(hide_password=True))
                )
        database = Database(engine)
        with database.transaction(write=command != "list") as uow:
            if command == "create":
                assert name is not None
                tenancy.create_namespace(uow, name, int(time.time() * 1000))
                return [f"created namespace {name}"]
            if command == "delete":
                assert name is not None
                tenancy.delete_namespace(uow, name)
                return [f"deleted namespace {name}"]
            rows = tenancy.list_namespaces(uow)
        return [f"{ns}\t{'(nodes not counted)' if count < 0 else f'{count} nodes'}" for ns, count in rows]
    finally:
        engine.dispose()
