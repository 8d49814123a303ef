"""Alembic environment: always run with a connection handed over by lineagedb.store.bootstrap."""

from __future__ import annotations

from alembic import context

from lineagedb.store.bootstrap import VERSION_TABLE
from lineagedb.store.schema import schema_for

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=schema_for(connection.dialect.name).metadata,
    version_table=VERSION_TABLE,
    transactional_ddl=connection.dialect.name != "mysql",
)
with context.begin_transaction():
    context.run_migrations()
