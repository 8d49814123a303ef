"""A faster `database` for service tests.

Creating a scratch PostgreSQL/MariaDB database and migrating it costs ~0.3 s per
test. Here each server backend gets one scratch database per session, and every
table the previous test wrote to (or tried to) is emptied before the next test,
its id counter restarted and the system types re-seeded. That leaves it
indistinguishable from a fresh database to the service: system types get ids
1-9 and every other id counter starts at 1. SQLite gets a copy of a database
file prepared once per session.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lineagedb.store import encoded_cache, tenancy
from lineagedb.store.bootstrap import prepare_database, seed_system_types
from lineagedb.store.engine import create_engine
from lineagedb.store.schema import schema_for
from lineagedb.store.unit_of_work import Database
from tests.backends import scratch_database

# The table a data-changing statement targets (MySQL quotes with `, PostgreSQL not at all; a
# PostgreSQL write transaction's first statement carries its BEGIN and the writers' lock, see
# store.engine).
_WRITE = re.compile(
    r"\s*(?:BEGIN;\s*(?:SELECT pg_advisory_xact_lock\w*\(-?\d+\);\s*)?)?"
    r"(INSERT\s+(?:IGNORE\s+)?INTO|UPDATE|DELETE\s+FROM)\s+[`\"]?(\w+)",
    re.IGNORECASE,
)


class SharedDatabases:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._stack = ExitStack()
        self._databases: dict[str, Database] = {}
        self._written: dict[str, dict[str, bool]] = {}
        self._sqlite_template: Path | None = None

    def sqlite_copy(self, target: Path) -> str:
        """A fresh SQLite database: a copy of one prepared once per session."""
        if self._sqlite_template is None:
            template = self._directory / "template.db"
            engine = create_engine(f"sqlite:///{template}")
            prepare_database(engine)
            engine.dispose()  # the last connection to close checkpoints and removes the WAL
            assert not template.with_name("template.db-wal").exists()
            self._sqlite_template = template
        shutil.copyfile(self._sqlite_template, target)
        return f"sqlite:///{target}"

    def fresh(self, backend: str) -> Database:
        """The backend's shared database, reset to the state of a fresh one."""
        if backend not in self._databases:
            url = self._stack.enter_context(scratch_database(backend, str(self._directory)))
            engine = create_engine(url)
            self._stack.callback(engine.dispose)
            prepare_database(engine)
            written: dict[str, bool] = {}  # table -> whether an INSERT (which moves its id counter) ran

            @sa.event.listens_for(engine, "before_cursor_execute")
            def _track(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
                match = _WRITE.match(statement)
                if match:
                    table = match.group(2).lower()
                    written[table] = written.get(table, False) or match.group(1).upper().startswith("INSERT")

            self._databases[backend] = Database(engine)
            self._written[backend] = written
        database = self._databases[backend]
        # A new type may be written on the driver's own cursor, which no SQLAlchemy event sees
        # (store.repositories.types.insert_if_absent), and on MySQL/MariaDB small INSERTs whose
        # result nobody reads travel with the next statement or the COMMIT (store.engine.defer):
        # those tables are always reset.
        self._written[backend].update(
            type=True,
            typeproperty=False,
            parenttype=False,
            attribution=True,
            association=True,
            event=True,
            eventpath=False,
            artifactproperty=False,
            executionproperty=False,
            contextproperty=False,
        )
        _reset(database.engine, self._written[backend])
        return database

    def close(self) -> None:
        self._stack.close()


def _reset(engine: sa.Engine, written: dict[str, bool]) -> None:
    """Empty the written tables (never MLMDEnv), restart the id counters inserts moved,
    re-seed the system types."""
    schema = schema_for(engine.dialect.name)
    candidates = [*schema.metadata.sorted_tables, *tenancy.METADATA.sorted_tables]
    tables = [t for t in candidates if t is not schema.mlmd_env and t.name.lower() in written]
    if not tables:
        return
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as connection:
        for table in tables:
            connection.execute(sa.delete(table))
        for table in tables:
            if "id" not in table.c or not table.c.id.primary_key or not written[table.name.lower()]:
                continue
            if engine.dialect.name == "postgresql":
                sequence = f"pg_get_serial_sequence('{table.name}', 'id')"
                connection.execute(sa.text(f"SELECT setval({sequence}, 1, false)"))
            else:
                # InnoDB keeps the counter past failed inserts; with no rows left, 1 means "max + 1".
                connection.execute(sa.text(f"ALTER TABLE {quote(table.name)} AUTO_INCREMENT = 1"))
        seed_system_types(connection)
    written.clear()
    # The service keeps encodings of rows it read (store.encoded_cache); rows written again
    # with the fake clock can equal earlier ones with other properties.
    encoded_cache.forget(engine)


@pytest.fixture(scope="session")
def shared_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedDatabases]:
    shared = SharedDatabases(tmp_path_factory.mktemp("shared-db"))
    yield shared
    shared.close()


@pytest.fixture
def database(backend: str, shared_databases: SharedDatabases, tmp_path: Path) -> Iterator[Database]:
    if backend == "sqlite":
        engine = create_engine(shared_databases.sqlite_copy(tmp_path / "lineagedb.db"))

        @sa.event.listens_for(engine, "connect")
        def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
            # Runs after the engine's own hook: durability is irrelevant for a throwaway file.
            dbapi_connection.execute("PRAGMA synchronous=OFF")

        db = Database(engine)
        yield db
        db.dispose()
    else:
        yield shared_databases.fresh(backend)
