"""`lineagedb serve` starts one worker per usable CPU by default (ops.workers).

tests/conftest.py pins LINEAGEDB_WORKERS=1 for every other test; these remove it (or set
it) to test the default itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lineagedb.cli import _parser, build_settings
from lineagedb.ops import workers
from lineagedb.ops.workers import cgroup_cpu_quota, parse_workers, resolve_workers, usable_cpus
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.store.bootstrap import SYSTEM_TYPE_NAMES
from tests.backends import scratch_database
from tests.ops.conftest import READY, Server, run_to_exit, start

CPUS = usable_cpus()
BAD_VALUES = ["0", "-1", "x", "2.5", ""]
# With this many new connections, SO_REUSEPORT leaves a worker of two without one with
# probability 2**-31: every worker answers.
CONNECTIONS = 32


@pytest.fixture(autouse=True)
def default_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINEAGEDB_WORKERS", raising=False)


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _settings(*args: str) -> object:
    argv = ["serve", *args]
    return build_settings(_parser().parse_args(argv), argv)


def _put_types(server: Server, prefix: str, count: int) -> set[str]:
    for index in range(count):
        # A new connection each time, which the kernel gives to any worker. A channel's own
        # subchannel pool: from the global one, a new channel can take over the connection of
        # one just closed (all 32 calls went to one worker on a loaded machine).
        local = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(server.address, options=local) as channel:
            svc_grpc.MetadataStoreServiceStub(channel).PutArtifactType(
                svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name=f"{prefix}{index}")), timeout=30
            )
    with server.channel() as channel:
        answer = svc_grpc.MetadataStoreServiceStub(channel).GetArtifactTypes(svc.GetArtifactTypesRequest(), timeout=30)
    return {t.name for t in answer.artifact_types}


def _calls_served(metrics_port: int) -> float:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("lineagedb_grpc_calls_total{") and "PutArtifactType" in line
    )


def _stop_cleanly(server: Server, children: list[int]) -> None:
    assert server.stop() == 0
    assert sum(1 for line in server.stdout if READY.match(line.strip())) == 1
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


@pytest.mark.parametrize("value", ["auto", "AUTO", " auto "])
def test_auto_is_accepted(value: str) -> None:
    assert parse_workers(value) == "auto"


def test_a_positive_number_is_kept() -> None:
    assert parse_workers("3") == 3


@pytest.mark.parametrize("value", BAD_VALUES)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="must be 'auto' or a positive integer"):
        parse_workers(value)


def test_usable_cpus_are_the_affinity_mask_capped_by_a_cgroup_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    quota = cgroup_cpu_quota()
    mask = len(os.sched_getaffinity(0))
    assert usable_cpus() == (mask if quota is None else min(mask, quota))
    monkeypatch.setattr(workers, "cgroup_cpu_quota", lambda: 1)
    assert usable_cpus() == 1
    monkeypatch.setattr(workers, "cgroup_cpu_quota", lambda: 10_000)
    assert usable_cpus() == mask
    monkeypatch.setattr(workers, "cgroup_cpu_quota", lambda: None)
    assert usable_cpus() == mask


def _cgroups(tmp_path: Path, membership: str, files: dict[str, str]) -> int | None:
    for name, text in files.items():
        (tmp_path / "fs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fs" / name).write_text(text)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cgroup").write_text(membership)
    return cgroup_cpu_quota(tmp_path / "fs", tmp_path / "cgroup")


def test_a_cgroup_v2_quota_rounds_up_and_the_tightest_ancestor_wins(tmp_path: Path) -> None:
    assert _cgroups(tmp_path / "a", "0::/\n", {"cpu.max": "150000 100000\n"}) == 2
    assert _cgroups(tmp_path / "b", "0::/\n", {"cpu.max": "max 100000\n"}) is None
    nested = {"pod/cpu.max": "100000 100000\n", "pod/app/cpu.max": "max 100000\n"}
    assert _cgroups(tmp_path / "c", "0::/pod/app\n", nested) == 1
    assert _cgroups(tmp_path / "d", "0::/nowhere\n", {}) is None


def test_a_cgroup_v1_quota_inside_a_container(tmp_path: Path) -> None:
    """The membership names the host's path, absent in the container: its mount root is its cgroup."""
    files = {"cpu,cpuacct/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    membership = "5:memory:/kubepods/x\n4:cpu,cpuacct:/kubepods/x\n"
    assert _cgroups(tmp_path / "a", membership, files) == 3
    files = {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    assert _cgroups(tmp_path / "b", membership, files) is None


def test_no_cgroup_file_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_cpu_quota(tmp_path, tmp_path / "absent") is None


def test_auto_is_the_usable_cpus_and_one_for_an_in_memory_sqlite_database() -> None:
    for url in ("sqlite:////srv/m.db", "postgresql://u@h/db", "mysql+pymysql://u@h/db"):
        assert resolve_workers("auto", make_url(url)) == min(CPUS, workers.AUTO_MAX_WORKERS)
    for url in ("sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?cache=shared&uri=true"):
        assert resolve_workers("auto", make_url(url)) == 1
    assert resolve_workers(3, make_url("sqlite:////srv/m.db")) == 3


def test_auto_stops_at_eight_workers_and_an_explicit_count_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each worker may hold 12 database connections: 64 of them would exhaust PostgreSQL's 100.
    monkeypatch.setattr(workers, "usable_cpus", lambda: 64)
    assert resolve_workers("auto", make_url("postgresql://u@h/db")) == 8
    assert resolve_workers(16, make_url("postgresql://u@h/db")) == 16


def test_the_default_setting_is_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = f"sqlite:///{tmp_path}/s.db"
    assert _settings("--database", database).workers == CPUS  # type: ignore[attr-defined]
    assert _settings("--database", database, "--workers", "2").workers == 2  # type: ignore[attr-defined]
    assert _settings("--database", "sqlite://").workers == 1  # type: ignore[attr-defined]
    monkeypatch.setenv("LINEAGEDB_WORKERS", "1")
    assert _settings("--database", database).workers == 1  # type: ignore[attr-defined]
    assert _settings("--database", database, "--workers", "auto").workers == CPUS  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_a_bad_value_is_a_configuration_error(tmp_path: Path, value: str) -> None:
    database = ["--host", "127.0.0.1", "--port", "0", "--database", f"sqlite:///{tmp_path}/s.db"]
    code, stdout, stderr = run_to_exit(["serve", "--workers", value, *database], tmp_path)
    assert code == 2 and stdout == ""
    assert "--workers" in stderr and "must be 'auto' or a positive integer" in stderr
    if value:  # an empty variable means "not set"
        code, stdout, stderr = run_to_exit(["serve", *database], tmp_path, env={"LINEAGEDB_WORKERS": value})
        assert code == 2 and stdout == ""
        assert f"configuration error: LINEAGEDB_WORKERS={value!r} is not valid" in stderr
        assert "must be 'auto' or a positive integer" in stderr and "Traceback" not in stderr


def test_by_default_one_worker_per_usable_cpu_every_one_answers(tmp_path: Path, servers: list[Server]) -> None:
    from tests.ops.conftest import free_port_range

    metrics = free_port_range(max(CPUS, 1))
    args = ["--host", "127.0.0.1", "--port", "0", "--database", f"sqlite:///{tmp_path}/w.db"]
    server = start([*args, "--metrics-port", str(metrics), "--metrics-host", "127.0.0.1"], tmp_path)
    servers.append(server)
    children = _children(server.process.pid)
    # One usable CPU: the server is that one process, as before.
    assert len(children) == (CPUS if CPUS > 1 else 0)
    assert {f"d{i}" for i in range(CONNECTIONS)} <= _put_types(server, "d", CONNECTIONS)
    if CPUS > 1:
        # Worker i serves its own metrics on --metrics-port + i: each one took calls.
        served = [_calls_served(metrics + index) for index in range(CPUS)]
        assert all(count > 0 for count in served) and sum(served) == CONNECTIONS, served
    _stop_cleanly(server, children)


def test_auto_on_the_command_line_wins_over_the_environment(tmp_path: Path, servers: list[Server]) -> None:
    args = ["--host", "127.0.0.1", "--port", "0", "--workers", "auto", "--database", f"sqlite:///{tmp_path}/a.db"]
    server = start(args, tmp_path, env={"LINEAGEDB_WORKERS": "1"})
    servers.append(server)
    children = _children(server.process.pid)
    assert len(children) == (CPUS if CPUS > 1 else 0)
    _stop_cleanly(server, children)


@pytest.mark.skipif(CPUS < 2, reason="one usable CPU: auto is one worker anyway")
def test_one_usable_cpu_means_one_process(tmp_path: Path, servers: list[Server]) -> None:
    """The affinity mask (taskset, a container's cpuset) counts, not the machine's CPUs."""
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(own)})  # the server inherits it from the test process
    try:
        server = start(["--host", "127.0.0.1", "--port", "0", "--database", f"sqlite:///{tmp_path}/o.db"], tmp_path)
    finally:
        os.sched_setaffinity(0, own)
    servers.append(server)
    assert _children(server.process.pid) == []
    _stop_cleanly(server, [])


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_sqlite_database_runs_one_worker(tmp_path: Path, servers: list[Server], url: str) -> None:
    server = start(["--host", "127.0.0.1", "--port", "0", "--database", url], tmp_path)
    servers.append(server)
    assert _children(server.process.pid) == []
    names = _put_types(server, "m", 4)
    assert {f"m{i}" for i in range(4)} <= names  # one database: every call sees the others' writes
    _stop_cleanly(server, [])
    assert server.stderr().count("one worker: an in-memory SQLite database lives in one process") == 1


def test_a_configuration_error_found_by_a_worker_is_said_once_with_its_exit_code(tmp_path: Path) -> None:
    """Worker 0 starts alone first: the others never start to say it again, and the group
    exits 2 as one process would (not 1, a worker that died)."""
    database = f"sqlite:///{tmp_path}/c.db"
    (tmp_path / "policy.yaml").write_text("")
    args = ["serve", "--host", "127.0.0.1", "--port", "0", "--workers", "2", "--database", database]
    code, stdout, stderr = run_to_exit([*args, "--authz-policy", str(tmp_path / "policy.yaml")], tmp_path)
    assert code == 2 and stdout == ""
    assert stderr.count("--authz-policy needs a way to authenticate callers") == 1


def test_a_startup_warning_is_said_once(tmp_path: Path, servers: list[Server]) -> None:
    args = ["--host", "0.0.0.0", "--port", "0", "--workers", "2", "--database", f"sqlite:///{tmp_path}/x.db"]
    server = start(args, tmp_path)
    servers.append(server)
    children = _children(server.process.pid)
    assert len(children) == 2
    _stop_cleanly(server, children)
    assert server.stderr().count("authentication is off and the server listens on") == 1


@pytest.fixture
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    with scratch_database(backend, str(tmp_path)) as url:
        yield url


def test_servers_starting_together_on_an_empty_database_create_one_schema(empty_database: str, tmp_path: Path) -> None:
    """Several servers (hosts, pods) at once on an empty database: one creates the schema
    under the schema lock (store.bootstrap), the others wait and find it. Under --workers,
    worker 0 prepares the database before the others start."""
    together = 4
    command = [sys.executable, "-m", "lineagedb", "serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1"]
    processes = [
        subprocess.Popen(
            [*command, "--database", empty_database],
            stdout=subprocess.PIPE,
            stderr=(tmp_path / f"s{index}.log").open("w"),
            text=True,
            cwd=tmp_path,
        )
        for index in range(together)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert READY.match(line.strip()), (line, [p.read_text() for p in tmp_path.glob("s*.log")])
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=60) for process in processes]
    assert codes == [0] * together
    logs = [(tmp_path / f"s{index}.log").read_text() for index in range(together)]
    assert sum(log.count("empty database: creating MLMD schema") for log in logs) == 1
    engine = sa.create_engine(empty_database)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT COUNT(*) FROM MLMDEnv")).scalar() == 1
            names = connection.execute(sa.text("SELECT name FROM Type")).scalars().all()
    finally:
        engine.dispose()
    assert sorted(names) == sorted(SYSTEM_TYPE_NAMES)


def test_workers_on_an_empty_database_start_and_serve(
    empty_database: str, tmp_path: Path, servers: list[Server]
) -> None:
    server = start(["--host", "127.0.0.1", "--port", "0", "--workers", "3", "--database", empty_database], tmp_path)
    servers.append(server)
    children = _children(server.process.pid)
    assert len(children) == 3
    assert {f"e{i}" for i in range(6)} <= _put_types(server, "e", 6)
    _stop_cleanly(server, children)
    assert server.stderr().count("empty database: creating MLMD schema") == 1
