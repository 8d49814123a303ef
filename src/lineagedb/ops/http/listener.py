"""The HTTP listener: a socket bound at startup, uvicorn serving the ASGI application in a thread.

The socket is bound before anything starts (a taken port stops startup with one line,
like the gRPC port), then uvicorn runs on its own asyncio event loop in a daemon thread.
Stopping asks uvicorn to close the socket, lets in-flight requests finish within the
grace period and runs the application's shutdown; the gRPC server stops afterwards, so
requests being forwarded to it still get their answers.

uvicorn is configured to leave LineageDB's logging alone (no log config of its own, no
access log) and to take the TCP peer as the client: X-Forwarded-For is not trusted,
because the client address ends up in the audit log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from lineagedb.config import TlsSettings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
BACKLOG = 2048


class HttpStartError(Exception):
    """The HTTP listener cannot start (the port is taken, the application failed to start)."""


def bind_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on host:port (all interfaces for "" and 0.0.0.0; "[::]" is dual-stack)."""
    name = host.strip("[]") or "0.0.0.0"
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise HttpStartError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # --workers: every worker process binds the same port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and name == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        raise HttpStartError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    return sock


def tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server context with the gRPC port's key pair and, when gRPC requires them, client certificates.

    Python's ssl module loads a key pair only from files; the PEM material (possibly
    inline in MLMD's ssl_config) is written to a private directory for that one call.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="lineagedb-tls-") as directory:  # mode 0700
        cert, key = Path(directory, "cert.pem"), Path(directory, "key.pem")
        for path, data in ((cert, tls.cert_chain), (key, tls.private_key)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
        context.load_cert_chain(cert, key)
    if tls.client_ca is not None and tls.require_client_cert:
        context.load_verify_locations(cadata=tls.client_ca.decode("ascii"))
        context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["http/1.1"])
    return context


class HttpListener:
    """uvicorn serving `app` on an already bound socket, in a thread of its own."""

    def __init__(self, app: ASGIApp, sock: socket.socket, context: ssl.SSLContext | None, grace_s: float) -> None:
        self.app = app
        self.socket = sock
        self.context = context
        self.grace_s = grace_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    @property
    def scheme(self) -> str:
        return "https" if self.context is not None else "http"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        context = self.context
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            log_config=None,  # LineageDB's logging stays as configured
            access_log=False,
            proxy_headers=False,  # the TCP peer is the client (it goes into the audit log)
            server_header=False,
            ws="none",
            loop="asyncio",
            timeout_graceful_shutdown=math.ceil(self.grace_s),
            ssl_context_factory=(lambda _config, _default: context) if context is not None else None,
        )
        if not logging.getLogger("lineagedb").isEnabledFor(logging.DEBUG):
            # uvicorn announces its start and stop at INFO; the server's own lines say it.
            logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=self._run, args=(server,), name="http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop(0)
                raise HttpStartError("the HTTP application did not start; see the log above")
            time.sleep(0.01)

    def _run(self, server: uvicorn.Server) -> None:
        try:
            asyncio.run(server.serve(sockets=[self.socket]))
        except BaseException:  # the thread's end is noticed by start() and stop()
            log.exception("the HTTP listener stopped with an error")

    def stop(self, grace_s: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish within `grace_s`, run the shutdown hooks."""
        grace = self.grace_s if grace_s is None else max(grace_s, 0.0)
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.config.timeout_graceful_shutdown = math.ceil(grace)
            server.should_exit = True
            thread.join(grace + 5.0)
            if thread.is_alive():
                server.force_exit = True
                thread.join(5.0)
        self.socket.close()
