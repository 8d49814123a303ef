"""`lineagedb serve --workers N`: N server processes sharing one port (SO_REUSEPORT).

Pre-fork without a shared socket: the parent binds nothing. It picks the port (a free
one for --port 0), starts N children with the same arguments plus their worker index
and the port, each binding it with grpc.so_reuseport=1, so the kernel spreads
connections across them. The parent prints the ready line once every child has,
forwards SIGTERM/SIGINT to them, and exits 0 when they all exit 0. A child that dies
on its own stops the whole group (exit 1): a supervisor (systemd, Kubernetes) restarts it.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence

log = logging.getLogger(__name__)

READY_MARKER = "LineageDB listening on "
HTTP_READY_MARKER = "http listening on "
START_TIMEOUT_S = 120.0


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host.strip("[]") if host not in ("", "0.0.0.0") else "0.0.0.0", 0))
        return int(probe.getsockname()[1])


class _Child:
    def __init__(self, index: int, command: list[str]) -> None:
        self.index = index
        self.ready = threading.Event()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        self.reader = threading.Thread(target=self._read, name=f"worker-{index}-stdout", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(READY_MARKER) and not self.ready.is_set():
                self.ready.set()
                continue
            if line.startswith(HTTP_READY_MARKER):  # the parent says it once for all
                continue
            sys.stdout.write(line)
            sys.stdout.flush()
        self.ready.set()  # ended: let the waiter notice


def run_workers(
    workers: int,
    host: str,
    port: int,
    serve_argv: Sequence[str],
    display_host: str,
    http: tuple[str, int] | None = None,
) -> int:
    """`http`: the HTTP listener's (host, port), which the workers share like the gRPC port."""
    if port == 0:
        port = free_port(host)
    http_port = None
    if http is not None:
        http_port = http[1] or free_port(http[0])
    base = [sys.executable, "-m", "lineagedb", "serve", *serve_argv]
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received signal %d, stopping %d workers", signum, workers)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    # Page tokens issued by one worker must verify on the others: without a configured
    # key, the workers share one made here (lineagedb.security.access_control).
    os.environ.setdefault("LINEAGEDB_PAGE_TOKEN_KEY", secrets.token_urlsafe(32))

    # SIGHUP (reload the policy and tokens) goes to every worker.
    def _forward_reload(_signum: int, _frame: object) -> None:
        for child in children:
            child.process.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGHUP, _forward_reload)
    children = [
        _Child(
            index,
            [
                *base,
                *("--worker-index", str(index), "--worker-port", str(port)),
                *(("--worker-http-port", str(http_port)) if http_port is not None else ()),
            ],
        )
        for index in range(workers)
    ]
    failed = False
    for child in children:
        if not child.ready.wait(START_TIMEOUT_S) or child.process.poll() is not None:
            log.error("worker %d did not start (exit code %s)", child.index, child.process.poll())
            failed = True
            break
    if not failed and not stop.is_set():
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
                failed = True
                break
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    codes = []
    for child in children:
        try:
            codes.append(child.process.wait(timeout=120))
        except subprocess.TimeoutExpired:
            child.process.kill()
            codes.append(child.process.wait())
        child.reader.join(timeout=5)
    if failed:
        return 1
    return 0 if all(code == 0 for code in codes) else 1
