"""`lineagedb serve --workers N|auto`: N server processes sharing one port (SO_REUSEPORT).

The default is `auto`, one worker per usable CPU (resolve_workers): a single Python
process is held to about one core by the GIL, and bench/concurrency.py measured one
worker per core ahead of MLMD's store at 4-16 clients where one worker was not.

Pre-fork without a shared socket: the parent binds nothing. Worker 0 starts alone
first, with the same arguments plus its index: it prepares the database (creates the
schema of an empty one, applies --enable-database-upgrade migrations) while no other
worker touches it, says its startup warnings and configuration errors once, and binds
the port with grpc.so_reuseport=1 (for --port 0 the kernel picks one, which it prints
in its ready line: no probe-and-release race). The others then start together on that
port, and the kernel spreads connections across them. The parent prints the ready
line once every child has, forwards SIGTERM/SIGINT/SIGHUP to them, and exits 0 when
they all exit 0. A worker that fails to start ends the group with its exit code (2
configuration, 3 startup), as one process would; one that dies later stops the whole
group (exit 1): a supervisor (systemd, Kubernetes) restarts it.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import math
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy.engine import URL

from lineagedb.ops.signalled import SignalledEvent

log = logging.getLogger(__name__)

READY_MARKER = "LineageDB listening on "
HTTP_READY_MARKER = "http listening on "
START_TIMEOUT_S = 120.0
AUTO = "auto"


def parse_workers(text: str) -> int | str:
    """`--workers` / LINEAGEDB_WORKERS: "auto" or a positive integer."""
    value = text.strip().lower()
    if value == AUTO:
        return AUTO
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"must be 'auto' or a positive integer, not {text!r}")
    return number


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask (taskset, cpusets), else all of them,
    capped by a cgroup CPU quota (a container's CPU limit, systemd's CPUQuota=). The mask
    of a container limited to 2 CPUs on a 64-core node lists 64: that many workers would
    hold 64 sets of database connections and memory for 2 CPUs of work."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cpus, quota) if quota is not None else cpus)


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, membership: Path = Path("/proc/self/cgroup")) -> int | None:
    """The CPUs the tightest CPU quota over this process's cgroups allows, rounded up; None: none."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    limits: list[int] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: "max 100000" or "200000 100000" in cpu.max
            limits += _quotas(root, path, lambda d: (d / "cpu.max").read_text().split())
        elif "cpu" in controllers.split(","):  # cgroup v1: quota -1 means none
            for mount in (root / controllers, root / "cpu,cpuacct", root / "cpu"):
                if mount.is_dir():
                    limits += _quotas(
                        mount,
                        path,
                        lambda d: [(d / "cpu.cfs_quota_us").read_text(), (d / "cpu.cfs_period_us").read_text()],
                    )
                    break
    return min(limits) if limits else None


def _quotas(mount: Path, path: str, read: Callable[[Path], list[str]]) -> list[int]:
    """The quota of each cgroup from `path` up to the mount (inside a container the mount is
    the container's own cgroup and `path`, the host's name for it, is not there)."""
    found = []
    directory = mount / path.strip("/")
    while True:
        try:
            quota, period = (field.strip() for field in read(directory)[:2])
            if quota not in ("max", "-1") and int(period) > 0:
                found.append(max(1, math.ceil(int(quota) / int(period))))
        except (OSError, ValueError):
            pass
        if directory == mount or mount not in directory.parents:
            return found
        directory = directory.parent


def is_in_memory_sqlite(url: URL) -> bool:
    """An in-memory SQLite database lives in one process: each worker would have its own."""
    if url.get_backend_name() != "sqlite":
        return False
    database = url.database or ""
    return database in ("", ":memory:") or database.startswith("file::memory:") or url.query.get("mode") == "memory"


# `auto` stops here: each worker may hold --pool-size + --pool-max-overflow database
# connections (12 by default), and 8 of them already fill most of PostgreSQL's default
# max_connections (100). More takes an explicit --workers N (and a database sized for it).
AUTO_MAX_WORKERS = 8


def resolve_workers(requested: int | str, url: URL) -> int:
    """The number of worker processes for `--workers requested` on the database `url`."""
    in_memory = is_in_memory_sqlite(url)
    if requested != AUTO:
        count = int(requested)
        if count > 1 and in_memory:
            log.warning(
                "--workers %d with an in-memory SQLite database: each worker has its own, empty database", count
            )
        return count
    if in_memory:
        log.info("one worker: an in-memory SQLite database lives in one process (--workers auto)")
        return 1
    return min(usable_cpus(), AUTO_MAX_WORKERS)


def _address_port(line: str) -> int:
    return int(line.strip().rsplit(":", 1)[1])


class _Child:
    def __init__(self, index: int, command: list[str], wants_http: bool) -> None:
        self.index = index
        self.wants_http = wants_http
        self.ready = threading.Event()
        self.port: int | None = None
        self.http_port: int | None = None
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        self.reader = threading.Thread(target=self._read, name=f"worker-{index}-stdout", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            # The parent says both ready lines once for all workers.
            if line.startswith(READY_MARKER) and self.port is None:
                self.port = _address_port(line)
            elif line.startswith(HTTP_READY_MARKER) and self.http_port is None:
                self.http_port = _address_port(line)
            else:
                sys.stdout.write(line)
                sys.stdout.flush()
                continue
            if self.port is not None and (self.http_port is not None or not self.wants_http):
                self.ready.set()
        self.ready.set()  # ended: let the waiter notice

    def started(self, stop: SignalledEvent) -> bool:
        """Wait until the worker is ready (True), or exited, timed out or we were told to stop."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ready.wait(0.1):
            if stop.is_set() or time.monotonic() > deadline:
                return False
        return self.process.poll() is None and self.port is not None


def run_workers(
    workers: int,
    host: str,
    port: int,
    serve_argv: Sequence[str],
    display_host: str,
    http: tuple[str, int] | None = None,
) -> int:
    """`http`: the HTTP listener's (host, port), which the workers share like the gRPC port."""
    base = [sys.executable, "-m", "lineagedb", "serve", *serve_argv]
    stop = SignalledEvent()
    children: list[_Child] = []

    # As in lineagedb.server.serve: SIGABRT from a supervisor of ours that gave up waiting
    # leaves every thread's Python stack in the log.
    with contextlib.suppress(ValueError, OSError):
        faulthandler.enable()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received signal %d, stopping %d workers", signum, workers)
        stop.set_from_signal()  # not Event.set(): see lineagedb.ops.signalled

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    # Page tokens issued by one worker must verify on the others: without a configured
    # key, the workers share one made here (lineagedb.security.access_control).
    os.environ.setdefault("LINEAGEDB_PAGE_TOKEN_KEY", secrets.token_urlsafe(32))

    # SIGHUP (reload the policy and tokens) goes to every worker.
    def _forward_reload(_signum: int, _frame: object) -> None:
        for child in list(children):
            child.process.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGHUP, _forward_reload)

    def launch(index: int, grpc_port: int, http_port: int | None) -> _Child:
        command = [
            *base,
            *("--worker-index", str(index), "--worker-port", str(grpc_port)),
            *(("--worker-http-port", str(http_port)) if http_port is not None else ()),
        ]
        return _Child(index, command, wants_http=http is not None)

    failed: _Child | None = None
    first = launch(0, port, http[1] if http is not None else None)
    children.append(first)
    if first.started(stop):
        assert first.port is not None
        port, http_port = first.port, first.http_port
        children.extend(launch(index, port, http_port) for index in range(1, workers))
        failed = next((child for child in children[1:] if not child.started(stop)), None)
    else:
        failed = first
    if failed is None and not stop.is_set():
        print(f"{READY_MARKER}{display_host}:{port}", flush=True)
        if http is not None:
            http_host = http[0] if http[0] not in ("", "0.0.0.0", "[::]") else "0.0.0.0"
            print(f"{HTTP_READY_MARKER}{http_host}:{http_port}", flush=True)
        log.info("%d workers serving on port %d (pids %s)", workers, port, [c.process.pid for c in children])
        while not stop.wait(0.2):
            exited = [c for c in children if c.process.poll() is not None]
            if exited:
                log.error(
                    "worker %d exited with %s; stopping the others", exited[0].index, exited[0].process.returncode
                )
                return _stop_all(children, 1)
        return _stop_all(children, None)
    if stop.is_set():  # told to stop while starting: a clean stop, as for one process
        return _stop_all(children, None)
    assert failed is not None
    code = failed.process.poll()
    if code is None and not failed.reader.is_alive():  # its output ended: it is exiting
        try:
            code = failed.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
    log.error("worker %d did not start (exit code %s)", failed.index, code)
    # A worker's own startup failure keeps its exit code (2 configuration, 3 startup).
    return _stop_all(children, code if code is not None and code > 0 else 1)


def _stop_all(children: list[_Child], code: int | None) -> int:
    """Stop every worker; `code`, or else 0 when they all stopped cleanly."""
    signalled = set()
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
            signalled.add(child.index)
    clean = True
    for child in children:
        try:
            exit_code = child.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            child.process.kill()
            exit_code = child.process.wait()
        child.reader.join(timeout=5)
        # Stopped while still importing, before its handler was installed, it died of the
        # SIGTERM we sent: the stop we asked for.
        clean = clean and (exit_code == 0 or (exit_code == -signal.SIGTERM and child.index in signalled))
    if code is not None:
        return code
    return 0 if clean else 1
