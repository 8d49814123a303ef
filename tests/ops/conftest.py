"""Operations tests: servers started with arbitrary flags, certificates, the official client, a TCP proxy."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.backends import IN_CI
from tests.backends import require_backend as require_backend  # re-exported for the ops tests
from tests.pki import Pki, make_pki

ROOT = Path(__file__).resolve().parents[2]
MLMD_PYTHON = Path(os.environ.get("LINEAGEDB_MLMD_PYTHON") or ROOT / ".venv-mlmd" / "bin" / "python")
MLMD_CLIENT = Path(__file__).with_name("mlmd_client.py")
READY = re.compile(r"^LineageDB listening on (?P<host>[^\s:]+):(?P<port>\d+)$")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0  # a hang guard, not a timing check: a loaded CI machine is slow


def free_port() -> int:
    """A free port for a server to bind later: below the ephemeral range, like
    `free_port_range`. One the kernel chose (bind to port 0) is in that range, where it may
    hand the same port to another socket's connection before the server binds it (a CI run
    lost the metrics port of tests/security that way: "Address already in use")."""
    return free_port_range(1)


def free_port_range(count: int) -> int:
    """The first of `count` consecutive free ports (a server's workers serve metrics on
    --metrics-port + i). Taken below Linux's ephemeral range (32768-60999), where the
    kernel does not hand ports to other sockets meanwhile, and checked all bound at once."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 32_000 - count)
        probes: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


@dataclass
class Server:
    """A `lineagedb serve` process; stdout lines and stderr (in a file) are kept."""

    process: subprocess.Popen[str]
    stderr_path: Path
    port: int = 0
    stdout: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # SIGABRT makes the server's faulthandler write every thread's stack to its
            # log: the failure then says where shutdown was stuck.
            self.process.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"the server did not stop within {STOP_TIMEOUT_S:.0f}s of signal {sig}; its log ends:\n"
                + self.stderr()[-6000:]
            ) from None


def spawn(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    stderr_path = tmp_path / f"server-{time.monotonic_ns()}.log"
    command = [sys.executable, "-m", "lineagedb", *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=stderr_path.open("w"),
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    process.stderr_path = stderr_path  # type: ignore[attr-defined]
    return process


def start(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> Server:
    """Start `lineagedb serve ARGS` and wait for the ready line (fails the test if it never comes)."""
    process = spawn(["serve", *args], tmp_path, env)
    server = Server(process, process.stderr_path)  # type: ignore[attr-defined]
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.stdout.append(line)
            match = READY.match(line.strip())
            if match and not ready.is_set():
                server.port = int(match.group("port"))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(START_TIMEOUT_S) or server.port == 0:
        process.kill()
        process.wait()
        pytest.fail(f"server did not start: {args}\n--- stderr ---\n{server.stderr()[-3000:]}")
    return server


def run_to_exit(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `lineagedb ARGS` expecting it to exit by itself; returns (code, stdout, stderr)."""
    process = spawn(args, tmp_path, env)
    try:
        stdout, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"lineagedb {args} did not exit")
    return process.returncode, stdout, process.stderr_path.read_text()  # type: ignore[attr-defined]


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers appended here are stopped after the test."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def health_status(channel: grpc.Channel, service: str = "", timeout: float = 5.0) -> str:
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


# ------------------------------------------------------------------------- certificates


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), client_name="pipeline-runner", other_client_name="intruder")


# ---------------------------------------------------------------------- official client


@pytest.fixture(scope="session")
def mlmd_python() -> Path:
    if MLMD_PYTHON.exists():
        return MLMD_PYTHON
    reason = f"official ml-metadata client not found at {MLMD_PYTHON}; run `make mlmd-venv`"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def official_client(mlmd_python: Path, port: int, host: str = "localhost", **tls: Any) -> dict[str, Any]:
    """Run the official client against host:port; ca/cert/key are paths for its ssl_config."""
    options = {"host": host, "port": port, **{k: str(v) for k, v in tls.items()}}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    completed = subprocess.run(
        [str(mlmd_python), str(MLMD_CLIENT), json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------ proxy


class TcpProxy:
    """A TCP forwarder to `target` on a fixed local port; `start()` and `stop()` as often as needed.

    Stopping closes the listener and every forwarded connection: to the server behind it,
    the database has gone away.
    """

    def __init__(self, target: tuple[str, int], port: int) -> None:
        self.target = target
        self.port = port
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would leave the port listening.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()
