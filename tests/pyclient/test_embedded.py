"""Embedded mode: lineagedb.client runs the server's servicer in this process, on every backend.

Cost: about 1 s per backend plus a few in-memory stores.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lineagedb.client import MetadataStore, errors, proto
from lineagedb.client import store as client_store
from tests.backends import SERVER_BACKENDS
from tests.conftest import LiveServer
from tests.pyclient.workload import exercise


def test_workload_embedded_on_the_backend(database_url: str) -> None:
    with MetadataStore(database_url) as store:
        exercise(store)


def test_mlmd_connection_configs(tmp_path: Path) -> None:
    sqlite = proto.ConnectionConfig()
    sqlite.sqlite.filename_uri = str(tmp_path / "mlmd.sqlite")
    sqlite.sqlite.connection_mode = proto.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    with MetadataStore(sqlite) as store:
        type_id = store.put_artifact_type(proto.ArtifactType(name="Kept"))
    with MetadataStore(sqlite) as reopened:  # the same file: the type is still there
        assert reopened.get_artifact_type("Kept").id == type_id
    readonly = proto.ConnectionConfig()
    readonly.sqlite.filename_uri = str(tmp_path / "mlmd.sqlite")
    readonly.sqlite.connection_mode = proto.SqliteMetadataSourceConfig.READONLY
    with MetadataStore(readonly) as store:
        assert store.get_artifact_type("Kept").id == type_id
        with pytest.raises(errors.StatusError):
            store.put_artifact_type(proto.ArtifactType(name="Refused"))
    fake = proto.ConnectionConfig(fake_database=proto.FakeDatabaseConfig())
    with MetadataStore(fake) as store:
        assert store.get_artifact_types() == []


def test_config_errors_are_those_of_the_official_client() -> None:
    with pytest.raises(RuntimeError):
        MetadataStore(proto.ConnectionConfig())
    retrying = proto.ConnectionConfig(fake_database=proto.FakeDatabaseConfig())
    retrying.retry_options.max_num_retries = 100
    with MetadataStore(retrying) as store:
        assert store._max_num_retries == 100
    with pytest.raises(ValueError):
        MetadataStore(42)  # type: ignore[arg-type]


class FlakyTransport:
    """The real embedded transport behind a given number of failures of one kind."""

    def __init__(self, inner: Any, failures: list[errors.StatusError]) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0

    def call(self, method: str, request: Any, timeout: float | None) -> Any:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.inner.call(method, request, timeout)

    def close(self) -> None:
        self.inner.close()


def test_aborted_is_retried_with_growing_jittered_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    monkeypatch.setattr(client_store.time, "sleep", delays.append)
    with MetadataStore("sqlite://") as store:
        flaky = FlakyTransport(store._transport, [errors.AbortedError("lost a race")] * 3)
        store._transport = flaky
        assert store.put_artifact_type(proto.ArtifactType(name="T")) > 0
        assert flaky.calls == 4 and len(delays) == 3
        assert all(
            0.5 * client_store.RETRY_BASE_S * 2**n <= d <= 1.5 * client_store.RETRY_BASE_S * 2**n
            for n, d in enumerate(delays)
        )
        # Five attempts in all (the official client's default), then the error.
        flaky.failures = [errors.AbortedError("lost a race")] * 5
        with pytest.raises(errors.AbortedError):
            store.get_artifact_types()
        # UNAVAILABLE: a read is tried again, a write is not (it may have been applied).
        flaky.failures = [errors.UnavailableError("down")]
        assert store.get_artifact_types()
        flaky.failures = [errors.UnavailableError("down")]
        with pytest.raises(errors.UnavailableError):
            store.put_artifact_type(proto.ArtifactType(name="T"))
        # Other errors are final at once.
        flaky.calls = 0
        with pytest.raises(errors.NotFoundError):
            store.get_artifact_type("Missing")
        assert flaky.calls == 1


def _outcomes(store: MetadataStore) -> list[tuple[str, str]]:
    """What a few wrong calls answer: (error class, message)."""
    type_id = store.put_artifact_type(proto.ArtifactType(name="Same"))
    store.put_artifacts([proto.Artifact(type_id=type_id, name="taken")])
    calls = [
        lambda: store.put_artifacts([proto.Artifact(type_id=type_id, name="taken")]),
        lambda: store.put_artifacts([proto.Artifact(type_id=type_id + 1000)]),
        lambda: store.put_artifact_type(proto.ArtifactType()),
        lambda: store.get_artifact_type("Missing"),
        lambda: store.put_events([proto.Event(artifact_id=999, execution_id=999, type=proto.Event.INPUT)]),
        lambda: store.get_artifacts(client_store.ListOptions(filter_query="uri = ")),
    ]
    outcomes = []
    for call in calls:
        with pytest.raises(errors.StatusError) as raised:
            call()
        outcomes.append((type(raised.value).__name__, raised.value.message))
    return outcomes


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_embedded_errors_match_the_servers(live_server: LiveServer, tmp_path: Path) -> None:
    with MetadataStore(live_server.address) as remote:
        over_grpc = _outcomes(remote)
    with MetadataStore(f"sqlite:///{tmp_path / 'embedded.db'}") as embedded:
        in_process = _outcomes(embedded)
    assert in_process == over_grpc


def _mlmd_config(url: str, database: str) -> proto.ConnectionConfig:
    """MLMD's ConnectionConfig for a MySQL/PostgreSQL server URL and a database name on it."""
    parsed = make_url(url)
    config = proto.ConnectionConfig()
    if parsed.get_backend_name() == "postgresql":
        config.postgresql.host = parsed.host or "127.0.0.1"
        config.postgresql.port = str(parsed.port or 5432)
        config.postgresql.user = parsed.username or "postgres"
        config.postgresql.dbname = database
    else:
        config.mysql.host = parsed.host or "127.0.0.1"
        config.mysql.port = parsed.port or 3306
        config.mysql.user = parsed.username or "root"
        config.mysql.database = database
    if parsed.password:
        (config.postgresql if config.HasField("postgresql") else config.mysql).password = parsed.password
    return config


@pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
def test_mlmd_server_configs_create_the_database(backend: str, database_url: str) -> None:
    """As MLMD: a missing MySQL/PostgreSQL database is created unless skip_db_creation."""
    name = f"lineagedb_client_{uuid.uuid4().hex[:12]}"
    config = _mlmd_config(database_url, name)
    skipping = proto.ConnectionConfig()
    skipping.CopyFrom(config)
    (skipping.postgresql if backend == "postgresql" else skipping.mysql).skip_db_creation = True
    with pytest.raises(RuntimeError):
        MetadataStore(skipping)
    admin_url = make_url(SERVER_BACKENDS[backend])
    try:
        with MetadataStore(config) as store:
            assert store.put_artifact_type(proto.ArtifactType(name="Created")) > 0
    finally:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            quoted = admin.dialect.identifier_preparer.quote(name)
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))
        admin.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_timeout_bounds_the_statements_of_an_embedded_call(database_url: str) -> None:
    """A write stuck behind another session's lock ends DEADLINE_EXCEEDED after `timeout`, as a
    server's call with that deadline would, instead of waiting for the lock."""
    with MetadataStore(database_url, timeout=1.0) as store:
        store.put_artifact_type(proto.ArtifactType(name="Before"))
        blocker = sa.create_engine(make_url(database_url).set(drivername="postgresql+psycopg2"))
        try:
            with blocker.connect() as connection, connection.begin():
                connection.exec_driver_sql("LOCK TABLE type IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                with pytest.raises(errors.DeadlineExceededError):
                    store.put_artifact_type(proto.ArtifactType(name="Blocked"))
                assert time.monotonic() - started < 5
        finally:
            blocker.dispose()
        assert store.get_artifact_type("Before").name == "Before"
    with MetadataStore(database_url, timeout=0) as expired, pytest.raises(errors.DeadlineExceededError):
        expired.get_artifact_types()
