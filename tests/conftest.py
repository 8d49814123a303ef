"""Shared fixtures: the backend matrix, a service-level store, and a live server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, settings

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import create_engine
from lineagedb.store.unit_of_work import Database
from tests.backends import (
    one_connection_database,
    require_backend,
    scratch_database,
    selected_backends,
    unreachable_reason,
)
from tests.browser import browser  # noqa: F401  (the browser tests' Chromium, a fixture)

ROOT = Path(__file__).resolve().parent.parent

# `lineagedb serve` starts one worker process per usable CPU by default (ops.workers). The
# tests that start servers take the process they started for the server: they signal its
# PID, read its /proc entries and count its threads and connections. Pinned here, in the
# environment the servers inherit, they get one process unless they pass --workers;
# tests/ops/test_default_workers.py removes the variable to test the default itself.
os.environ["LINEAGEDB_WORKERS"] = "1"

# These 2-core machines are shared and noisy: generation speed and per-example time
# say nothing about correctness, so neither may fail a property test.
settings.register_profile("lineagedb", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("lineagedb")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for backend in selected_backends():
        reason = unreachable_reason(backend)
        lines.append(f"backend {backend}: {'ready' if reason is None else 'SKIPPED - ' + reason}")
    return lines


@pytest.fixture(params=selected_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return require_backend(request.param)


@pytest.fixture(scope="module", params=selected_backends())
def module_backend(request: pytest.FixtureRequest) -> str:
    """A backend for a module's shared data (one database per backend and module)."""
    return require_backend(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with scratch_database(backend, str(tmp_path)) as url:
        yield url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    engine = create_engine(database_url)
    prepare_database(engine)
    db = Database(engine)
    yield db
    db.dispose()


class FakeClock:
    """Milliseconds that only move when a test says so (plus 1 ms per read, like real time)."""

    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(database: Database, clock: FakeClock) -> MetadataStore:
    return MetadataStore(database, clock=clock)


@pytest.fixture
def one_session_store(tmp_path: Path) -> Iterator[MetadataStore]:
    """A store on a scratch PostgreSQL database behind a pool of one connection, so a test's own
    queries of the session (pg_prepared_statements, EXPLAIN of a prepared statement) see the
    session the store's reads used."""
    with one_connection_database("postgresql", str(tmp_path)) as database:
        yield MetadataStore(database, clock=FakeClock())


@dataclass
class LiveServer:
    process: subprocess.Popen[str]
    address: str
    database_url: str

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)


def start_server(database_url: str, *extra: str) -> LiveServer:
    """Start `python -m lineagedb serve` on a free port and wait for its ready line."""
    command = [sys.executable, "-m", "lineagedb", "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--database", database_url, *extra]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=dict(os.environ)
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"server did not start (exit {process.wait()}): {line!r}")
    port = int(line.strip().rsplit(":", 1)[1])
    return LiveServer(process, f"127.0.0.1:{port}", database_url)


def stop_server(server: LiveServer) -> int:
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        return server.process.wait()


@pytest.fixture
def live_server(database_url: str) -> Iterator[LiveServer]:
    server = start_server(database_url)
    yield server
    stop_server(server)


@pytest.fixture
def stub(live_server: LiveServer) -> Iterator[svc_grpc.MetadataStoreServiceStub]:
    with live_server.channel() as channel:
        yield svc_grpc.MetadataStoreServiceStub(channel)
