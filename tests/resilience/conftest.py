"""Fault tests (RELIABILITY.md T1, T3, T4, T7, T8): private databases, batch workloads, invariants.

Every test here is smoke-sized by default; `@pytest.mark.soak` versions only run with `-m soak`
(or LINEAGEDB_SOAK=1). Each test prints its RNG seed (LINEAGEDB_SEED replays one).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.store.engine import create_engine
from lineagedb.store.schema import schema_for
from tests.ops.conftest import Server, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ARTIFACTS_PER_BATCH = 10
CONTEXTS_PER_BATCH = 2
CALL_TIMEOUT_S = 10.0
# Clients reconnect quickly to a restarted server (gRPC's default backoff starts at 1 s, grows to 120 s).
FAST_RECONNECT: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]
RESILIENCE_DIR = Path(__file__).parent


def soak_enabled(config: pytest.Config) -> bool:
    return "soak" in (config.getoption("-m") or "") or os.environ.get("LINEAGEDB_SOAK", "") in ("1", "true")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if soak_enabled(config):
        return
    skip = pytest.mark.skip(reason="soak run: use -m soak or LINEAGEDB_SOAK=1")
    for item in items:
        if RESILIENCE_DIR in Path(str(item.path)).parents and item.get_closest_marker("soak"):
            item.add_marker(skip)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    seed = int(os.environ.get("LINEAGEDB_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\n{request.node.name}: RNG seed {seed} (replay with LINEAGEDB_SEED={seed})")
    return random.Random(seed)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers appended here are killed after the test."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=FAST_RECONNECT)


# ------------------------------------------------------------------ private PostgreSQL


class PrivatePostgres:
    """A throw-away PostgreSQL 15 cluster on a free port, run as the `postgres` OS user.

    The shared service on 5432 is never touched; this one may be crashed at will.
    """

    def __init__(self, settings: dict[str, str] | None = None, password: str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lineagedb-pg-"))
        shutil.chown(self.root, "postgres")
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.password = password
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "max_connections": "50",
            "shared_buffers": "32MB",
            **(settings or {}),
        }
        command = [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--no-sync", "-E", "UTF8"]
        if password is None:
            command += ["--auth=trust"]
        else:
            pwfile = self.root / "pw"
            pwfile.write_text(password + "\n")
            shutil.chown(pwfile, "postgres")
            command += ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        self._run(command)

    def _run(self, command: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True, check=check, timeout=60
        )

    def start(self) -> None:
        options = " ".join(f"-c {key}={value}" for key, value in self.settings.items())
        options += f" -p {self.port}"
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"], check=False)

    def url(self, database: str = "postgres", with_password: bool = True) -> str:
        secret = f":{self.password}" if self.password and with_password else ""
        return f"postgresql+psycopg2://postgres{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        admin = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        return self.url(name)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    cluster.start()
    yield cluster
    cluster.destroy()


# ----------------------------------------------------------------- the batch workload


@dataclass
class Workload:
    """Batches of 1 execution + 10 artifacts (10 OUTPUT events) + 2 contexts, tagged by `batch_id`.

    `acked` holds every batch whose PutExecution returned OK; `statuses` counts every outcome.
    """

    execution_type_id: int = 0
    artifact_type_id: int = 0
    context_type_id: int = 0
    acked: set[str] = field(default_factory=set)
    attempted: set[str] = field(default_factory=set)
    statuses: Counter[str] = field(default_factory=Counter)
    ok_times: list[float] = field(default_factory=list)  # time.monotonic() of each OK
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create_types(self, stub: svc_grpc.MetadataStoreServiceStub) -> None:
        response = stub.PutTypes(
            svc.PutTypesRequest(
                execution_types=[mlmd.ExecutionType(name="resilience.Step")],
                artifact_types=[mlmd.ArtifactType(name="resilience.Blob")],
                context_types=[mlmd.ContextType(name="resilience.Run")],
            ),
            timeout=CALL_TIMEOUT_S,
        )
        self.execution_type_id = response.execution_type_ids[0]
        self.artifact_type_id = response.artifact_type_ids[0]
        self.context_type_id = response.context_type_ids[0]

    def request(self, batch_id: str) -> svc.PutExecutionRequest:
        def tag(node: mlmd.Artifact | mlmd.Execution | mlmd.Context) -> None:
            node.custom_properties["batch_id"].string_value = batch_id

        execution = mlmd.Execution(type_id=self.execution_type_id, last_known_state=mlmd.Execution.COMPLETE)
        tag(execution)
        request = svc.PutExecutionRequest(execution=execution)
        for i in range(ARTIFACTS_PER_BATCH):
            artifact = mlmd.Artifact(
                type_id=self.artifact_type_id, uri=f"mem://{batch_id}/{i}", name=f"{batch_id}-a{i}"
            )
            tag(artifact)
            request.artifact_event_pairs.add(artifact=artifact, event=mlmd.Event(type=mlmd.Event.OUTPUT))
        for i in range(CONTEXTS_PER_BATCH):
            context = mlmd.Context(type_id=self.context_type_id, name=f"{batch_id}-c{i}")
            tag(context)
            request.contexts.append(context)
        return request

    def put(self, stub: svc_grpc.MetadataStoreServiceStub, batch_id: str | None = None) -> str:
        """One PutExecution; returns the status name and records the outcome."""
        batch_id = batch_id or uuid.uuid4().hex
        with self.lock:
            self.attempted.add(batch_id)
        try:
            stub.PutExecution(self.request(batch_id), timeout=CALL_TIMEOUT_S)
            code = "OK"
        except grpc.RpcError as error:
            code = error.code().name
        with self.lock:
            self.statuses[code] += 1
            if code == "OK":
                self.acked.add(batch_id)
                self.ok_times.append(time.monotonic())
        return code


# ------------------------------------------------------------------ invariant checker


@dataclass
class InvariantReport:
    batches_present: int
    acked_missing: list[str]
    partial: dict[str, tuple[int, ...]]
    orphans: dict[str, int]
    integrity: str = "n/a"

    def assert_ok(self) -> None:
        assert not self.acked_missing, f"acknowledged but missing: {self.acked_missing[:10]}"
        assert not self.partial, f"partial batches: {dict(list(self.partial.items())[:10])}"
        assert not any(self.orphans.values()), f"orphans: {self.orphans}"
        assert self.integrity in ("ok", "n/a"), self.integrity


def check_invariants(database_url: str, acked: set[str]) -> InvariantReport:
    """RELIABILITY.md's invariants 1-3 and 5 for the Workload's batches."""
    engine = create_engine(database_url)
    s = schema_for(engine.dialect.name)
    try:
        with engine.connect() as connection:

            def tags(table: sa.Table, owner: str) -> dict[int, str]:
                rows = connection.execute(
                    sa.select(table.c[owner], table.c.string_value).where(table.c.name == "batch_id")
                )
                return {int(row[0]): str(row[1]) for row in rows}

            executions = tags(s.execution_property, "execution_id")
            artifacts = tags(s.artifact_property, "artifact_id")
            contexts = tags(s.context_property, "context_id")
            events = connection.execute(sa.select(s.event.c.execution_id, s.event.c.artifact_id)).all()
            associations = connection.execute(sa.select(s.association.c.context_id, s.association.c.execution_id)).all()
            attributions = connection.execute(sa.select(s.attribution.c.context_id, s.attribution.c.artifact_id)).all()
            node_ids = {
                "execution": set(connection.execute(sa.select(s.execution.c.id)).scalars()),
                "artifact": set(connection.execute(sa.select(s.artifact.c.id)).scalars()),
                "context": set(connection.execute(sa.select(s.context.c.id)).scalars()),
            }
            integrity = "n/a"
            if engine.dialect.name == "sqlite":
                integrity = str(connection.exec_driver_sql("PRAGMA integrity_check").scalar())
    finally:
        engine.dispose()

    counts: dict[str, list[int]] = {}

    def bump(batch: str, index: int) -> None:
        counts.setdefault(batch, [0] * 6)[index] += 1

    for index, tagged in enumerate((executions, artifacts, contexts)):
        for tag in tagged.values():
            bump(tag, index)
    for execution_id, artifact_id in events:
        owner = executions.get(int(execution_id))
        if owner is not None and artifacts.get(int(artifact_id)) == owner:
            bump(owner, 3)
    for context_id, execution_id in associations:
        owner = executions.get(int(execution_id))
        if owner is not None and contexts.get(int(context_id)) == owner:
            bump(owner, 4)
    for context_id, artifact_id in attributions:
        owner = artifacts.get(int(artifact_id))
        if owner is not None and contexts.get(int(context_id)) == owner:
            bump(owner, 5)
    expected = (
        1,
        ARTIFACTS_PER_BATCH,
        CONTEXTS_PER_BATCH,
        ARTIFACTS_PER_BATCH,
        CONTEXTS_PER_BATCH,
        ARTIFACTS_PER_BATCH * CONTEXTS_PER_BATCH,
    )
    partial = {batch: tuple(c) for batch, c in counts.items() if tuple(c) != expected}
    orphans = {
        "event": sum(1 for e, a in events if int(e) not in node_ids["execution"] or int(a) not in node_ids["artifact"]),
        "association": sum(
            1 for c, e in associations if int(c) not in node_ids["context"] or int(e) not in node_ids["execution"]
        ),
        "attribution": sum(
            1 for c, a in attributions if int(c) not in node_ids["context"] or int(a) not in node_ids["artifact"]
        ),
    }
    return InvariantReport(
        batches_present=len(counts),
        acked_missing=sorted(acked - set(counts)),
        partial=partial,
        orphans=orphans,
        integrity=integrity,
    )


def wait_serving(address: str, timeout: float = 30.0) -> None:
    """Until a cheap MetadataStoreService call succeeds."""
    deadline = time.monotonic() + timeout
    with channel(address) as ch:
        stub = svc_grpc.MetadataStoreServiceStub(ch)
        while True:
            try:
                stub.GetExecutionTypes(svc.GetExecutionTypesRequest(), timeout=2)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def start_writers(address: str, workload: Workload, stop: threading.Event, threads: int) -> list[threading.Thread]:
    """`threads` clients looping `workload.put` against `address` until `stop` is set
    (pausing 20 ms after a failed call, so an outage is not a busy loop)."""

    def loop() -> None:
        with channel(address) as ch:
            stub = svc_grpc.MetadataStoreServiceStub(ch)
            while not stop.is_set():
                if workload.put(stub) != "OK":
                    time.sleep(0.02)

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    return workers
