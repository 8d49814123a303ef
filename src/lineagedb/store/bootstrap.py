"""Schema initialization and checks at startup.

* An empty database gets MLMD schema v10 through the Alembic baseline.
* A database that MLMD created at v10 (MLMDEnv says 10, every table present) is
  recognised and stamped with the baseline revision, never recreated.
* Anything else (another MLMD version, a half-created schema, several MLMDEnv
  rows) is refused with a message that says what to do.
The nine system types are upserted on every start, as MLMD does per connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from lineagedb import errors
from lineagedb.store import galera, locks
from lineagedb.store.schema import (
    ARTIFACT_KIND,
    EXECUTION_KIND,
    SCHEMA_VERSION,
    Schema,
    schema_for,
)

log = logging.getLogger(__name__)

VERSION_TABLE = "lineagedb_alembic_version"
# The oldest revision the server can serve; later ones add indexes, the tables of features
# that check for them (namespaces, audit, Galera), or reshape tables (0009) (see _prepare).
REQUIRED_REVISION = "0001"
# The revision tenancy needs (0003 adds the namespace tables, 0004 their foreign key);
# authentication needs it.
NAMESPACES_REVISION = "0004"
# The revision that adds the audit log's tables (store.audit_log); the audit log needs it.
AUDIT_REVISION = "0006"
# The revision that adds the lock tables of a MariaDB Galera cluster (store.galera).
GALERA_REVISION = "0008"
# The one older MLMD schema we upgrade in place (MLMD 1.x before v10 added two columns).
MLMD_V9 = 9

# Created in this order in a fresh database, so they get ids 1-9 as in MLMD.
SYSTEM_TYPES: tuple[tuple[int, str], ...] = (
    (ARTIFACT_KIND, "mlmd.Dataset"),
    (ARTIFACT_KIND, "mlmd.Model"),
    (ARTIFACT_KIND, "mlmd.Metrics"),
    (ARTIFACT_KIND, "mlmd.Statistics"),
    (EXECUTION_KIND, "mlmd.Train"),
    (EXECUTION_KIND, "mlmd.Transform"),
    (EXECUTION_KIND, "mlmd.Process"),
    (EXECUTION_KIND, "mlmd.Evaluate"),
    (EXECUTION_KIND, "mlmd.Deploy"),
)
SYSTEM_TYPE_NAMES = frozenset(name for _, name in SYSTEM_TYPES)


@dataclass(frozen=True)
class SchemaState:
    mlmd_version: int | None  # None: no MLMDEnv table
    missing_tables: tuple[str, ...]
    revision: str | None  # our Alembic revision, None if never stamped
    head: str

    @property
    def empty(self) -> bool:
        return self.mlmd_version is None and len(self.missing_tables) == len(_table_names(None))

    @property
    def has_namespaces(self) -> bool:
        """Migrations 0003 and 0004 (store.tenancy's tables) have run."""
        return self.revision is not None and self.revision >= NAMESPACES_REVISION

    @property
    def current(self) -> bool:
        return self.mlmd_version == SCHEMA_VERSION and not self.missing_tables and self.revision == self.head


def alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", "lineagedb.store:migrations")
    config.attributes["connection"] = connection
    return config


def _table_names(schema: Schema | None) -> list[str]:
    schema = schema or schema_for("sqlite")
    return [table.name for table in schema.metadata.sorted_tables]


def inspect_schema(connection: sa.Connection) -> SchemaState:
    schema = schema_for(connection.dialect.name)
    existing = set(sa.inspect(connection).get_table_names())
    missing = tuple(name for name in _table_names(schema) if name not in existing)
    version: int | None = None
    if schema.mlmd_env.name in existing:
        rows = connection.execute(sa.select(schema.mlmd_env.c.schema_version)).scalars().all()
        if len(rows) > 1:
            raise errors.DataLossError("MLMDEnv holds more than one schema version row")
        version = rows[0] if rows else None
        if not rows:
            raise errors.AbortedError("MLMDEnv is empty: another process is initializing the schema")
    revision = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config(connection)).get_current_head()
    return SchemaState(version, missing, revision, head or "")


def lineagedb_indexes(dialect_name: str) -> list[sa.Index]:
    """The indexes LineageDB adds to MLMD's schema (migration 0002; 0011 widens the two link
    indexes by their context id, store.lineage_indexes.WIDENED)."""
    schema = schema_for(dialect_name)
    # Built on copies: MLMD's table definitions stay exactly schema v10.
    copies = sa.MetaData()
    artifact, execution, context, attribution, association = (
        table.to_metadata(copies)
        for table in (schema.artifact, schema.execution, schema.context, schema.attribution, schema.association)
    )
    return [
        sa.Index("lineagedb_idx_artifact_name", artifact.c.name),
        sa.Index("lineagedb_idx_execution_name", execution.c.name),
        sa.Index("lineagedb_idx_context_name", context.c.name),
        sa.Index("lineagedb_idx_attribution_artifact_id", attribution.c.artifact_id),
        sa.Index("lineagedb_idx_association_execution_id", association.c.execution_id),
    ]


def create_mlmd_schema(connection: sa.Connection) -> None:
    """Create the v10 tables, MLMDEnv and system types (the baseline migration's body)."""
    schema = schema_for(connection.dialect.name)
    schema.metadata.create_all(connection)
    connection.execute(sa.insert(schema.mlmd_env).values(schema_version=SCHEMA_VERSION))
    seed_system_types(connection)


def seed_system_types(connection: sa.Connection) -> None:
    """Insert any missing system type (by kind and name, unversioned)."""
    t = schema_for(connection.dialect.name).type
    present = {
        (row.type_kind, row.name)
        for row in connection.execute(
            sa.select(t.c.type_kind, t.c.name).where(t.c.name.in_(SYSTEM_TYPE_NAMES), t.c.version.is_(None))
        )
    }
    for kind, name in SYSTEM_TYPES:
        if (kind, name) not in present:
            connection.execute(sa.insert(t).values(name=name, type_kind=kind))


def upgrade_command(url: str) -> str:
    return f"lineagedb db upgrade --database '{url}'"


def prepare_database(engine: sa.Engine, allow_upgrade: bool = False) -> SchemaState:
    """Make the database ready to serve, or raise FailedPreconditionError saying why not."""
    with engine.begin() as connection:
        # One initializer at a time: processes starting together on an empty database
        # must not both create the schema.
        release = locks.acquire(connection, "schema")
        try:
            return _prepare(engine, connection, allow_upgrade)
        finally:
            if release is not None:
                release()


def _prepare(engine: sa.Engine, connection: sa.Connection, allow_upgrade: bool) -> SchemaState:
    state = inspect_schema(connection)
    fix = upgrade_command(engine.url.render_as_string(hide_password=True))
    if state.empty:
        log.info("empty database: creating MLMD schema v%d", SCHEMA_VERSION)
        command.upgrade(alembic_config(connection), "head")
    elif state.mlmd_version == MLMD_V9 and not state.missing_tables:
        if not allow_upgrade:
            raise errors.FailedPreconditionError(
                f"database has MLMD schema version {MLMD_V9}; this server needs {SCHEMA_VERSION}. Run: {fix}"
            )
        log.info("upgrading MLMD schema v%d to v%d", MLMD_V9, SCHEMA_VERSION)
        upgrade_mlmd_v9_to_v10(connection)
        command.stamp(alembic_config(connection), "0001")
        command.upgrade(alembic_config(connection), "head")
    elif state.mlmd_version == SCHEMA_VERSION and not state.missing_tables:
        known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config(connection)).walk_revisions()}
        if state.revision is None:
            log.info("database created by MLMD at schema v%d: stamping it", SCHEMA_VERSION)
            command.stamp(alembic_config(connection), "0001")
            if allow_upgrade:
                command.upgrade(alembic_config(connection), "head")
            else:
                log.warning("LineageDB's extra indexes are not in this MLMD database yet. Run: %s", fix)
        elif state.revision not in known:
            raise errors.FailedPreconditionError(
                f"database schema revision {state.revision} is newer than this server knows; upgrade LineageDB"
            )
        elif state.revision != state.head:
            if allow_upgrade:
                command.upgrade(alembic_config(connection), "head")
            elif _order(connection, state.revision) < _order(connection, REQUIRED_REVISION):
                raise errors.FailedPreconditionError(
                    f"database schema revision {state.revision} is behind {state.head}. Run: {fix}"
                )
            else:
                # Later revisions only add indexes: serve, but say how to get them.
                log.warning(
                    "database schema revision %s is behind %s (LineageDB's extra indexes are missing; "
                    "filters and relationship reads scan more). Run: %s",
                    state.revision,
                    state.head,
                    fix,
                )
    elif state.mlmd_version is not None and state.mlmd_version > SCHEMA_VERSION:
        raise errors.FailedPreconditionError(
            f"database schema version {state.mlmd_version} is newer than this server supports "
            f"({SCHEMA_VERSION}); upgrade LineageDB"
        )
    elif state.mlmd_version is not None and state.mlmd_version < SCHEMA_VERSION:
        raise errors.FailedPreconditionError(
            f"database schema version {state.mlmd_version} is older than {MLMD_V9}; "
            "upgrade it with MLMD's own migration first"
        )
    else:
        raise errors.FailedPreconditionError(
            f"database holds an incomplete MLMD schema (missing tables: {', '.join(state.missing_tables)})"
        )
    if galera.is_galera(connection) and not sa.inspect(connection).has_table(galera.SLOT_TABLE):
        # Without them every write would fail: row locks do not hold across Galera nodes.
        raise errors.FailedPreconditionError(
            f"this database is on a MariaDB Galera cluster, whose locks need schema revision {GALERA_REVISION}. "
            f"Run: {fix}"
        )
    seed_system_types(connection)
    return inspect_schema(connection)


def _order(connection: sa.Connection, revision: str) -> int:
    """Position of `revision` in the (linear) migration history, 0 = baseline."""
    history = [rev.revision for rev in ScriptDirectory.from_config(alembic_config(connection)).walk_revisions()]
    return list(reversed(history)).index(revision)


def upgrade_mlmd_v9_to_v10(connection: sa.Connection) -> None:
    """MLMD's own v9 -> v10 step: proto_value and bool_value on the three property tables."""
    schema = schema_for(connection.dialect.name)
    preparer = connection.dialect.identifier_preparer
    for table in (schema.artifact_property, schema.execution_property, schema.context_property):
        present = {column["name"] for column in sa.inspect(connection).get_columns(table.name)}
        for name in ("proto_value", "bool_value"):
            if name in present:
                continue
            column_type = table.c[name].type.compile(dialect=connection.dialect)
            connection.execute(
                sa.text(f"ALTER TABLE {preparer.quote(table.name)} ADD COLUMN {preparer.quote(name)} {column_type}")
            )
    connection.execute(sa.update(schema.mlmd_env).values(schema_version=SCHEMA_VERSION))
