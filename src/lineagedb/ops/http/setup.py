"""The HTTP listener from the server's settings: the checks, the private gRPC socket, the components.

Forwarded calls reach the gRPC server on a Unix socket in a fresh directory of mode 0700:
only this user can connect, and no other worker process (--workers share TCP ports) can
receive a call meant for this one, whose secret signs the forwarded client address.

Client certificates: the HTTPS listener asks for them exactly when the gRPC port does,
checked against the same CA, so the transport admits the same callers. A certificate
cannot name the caller, though (--auth-mtls-identity): the forwarded call carries no
certificate and uvicorn does not hand the verified one to the application, so that
combination is refused at startup rather than served with a weaker identity.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.descriptor import ServiceDescriptor

from lineagedb.config import ConfigurationError, Settings
from lineagedb.ops.artifact_store import open_store
from lineagedb.ops.http import mlflow_api, mlflow_artifacts
from lineagedb.ops.http.app import HttpComponent, build_app
from lineagedb.ops.http.explorer import Explorer
from lineagedb.ops.http.json_api import JsonApi
from lineagedb.ops.http.listener import HttpListener, HttpStartError, bind_socket, tls_context
from lineagedb.ops.http.mlflow_registry_routes import REGISTRY_ROUTES

# sockaddr_un holds 108 bytes.
_MAX_SOCKET_PATH = 100
LINE = "http listening on {host}:{port}"


@dataclass
class HttpServer:
    listener: HttpListener
    grpc_target: str  # where the gRPC server must also listen (unix:/.../grpc.sock)
    directory: Path
    host: str

    @property
    def ready_line(self) -> str:
        host = self.host if self.host not in ("", "0.0.0.0", "[::]") else "0.0.0.0"
        return LINE.format(host=host, port=self.listener.port)

    def start(self) -> None:
        self.listener.start()

    def stop(self, grace_s: float | None) -> None:
        self.listener.stop(grace_s)

    def close(self) -> None:
        """After the gRPC server stopped: remove the private socket's directory."""
        shutil.rmtree(self.directory, ignore_errors=True)


def check(settings: Settings, authentication_on: bool, loopback: bool) -> None:
    """Refuse what the HTTP listener cannot serve safely (ConfigurationError)."""
    if settings.security.mtls_identity:
        raise ConfigurationError(
            "--http-port cannot be combined with --auth-mtls-identity: the HTTP listener cannot pass the verified "
            "client certificate on to authorization; authenticate HTTP callers with bearer tokens instead"
        )
    host = settings.http_host if settings.http_host is not None else settings.host
    if authentication_on and settings.tls is None and not loopback and not settings.insecure_i_know:
        raise ConfigurationError(
            f"refusing to accept credentials in plaintext over HTTP on {host}:{settings.http_port}: configure "
            "TLS (--tls-cert/--tls-key), listen on loopback (--http-host), or pass --insecure-i-know"
        )


def private_socket_directory() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="lineagedb-"))  # mode 0700
    if len(str(directory / "grpc.sock")) > _MAX_SOCKET_PATH:
        shutil.rmtree(directory, ignore_errors=True)
        directory = Path(tempfile.mkdtemp(prefix="lineagedb-", dir="/tmp"))
    return directory


def build(settings: Settings, services: Sequence[ServiceDescriptor]) -> HttpServer:
    """Bind the HTTP port and prepare the application (raises HttpStartError if the port is taken)."""
    assert settings.http_port is not None
    host = settings.http_host if settings.http_host is not None else settings.host
    try:
        context = tls_context(settings.tls) if settings.tls is not None else None
    except ssl.SSLError as error:
        raise ConfigurationError(f"the TLS key pair cannot serve HTTPS: {error}") from error
    # The artifact store is checked first (a missing bucket or refused credentials stop startup with
    # the reason, ConfigurationError), before anything is bound.
    store = open_store(settings.artifact_root)
    store.check()
    try:
        directory = private_socket_directory()
    except OSError as error:
        raise HttpStartError(f"cannot create a private directory for the HTTP listener's socket: {error}") from error
    try:
        sock = bind_socket(host, settings.http_port, reuse_port=settings.so_reuseport)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    target = f"unix:{directory / 'grpc.sock'}"
    # Each HTTP API is one component under its own prefix (the MLflow REST API joins here).
    components: list[HttpComponent] = [
        JsonApi(services, target, settings.max_receive_message_bytes, settings.max_send_message_bytes),
        Explorer(),
        mlflow_artifacts.MlflowArtifacts(store, target),
        # MLflow's tracking ListArtifacts, under /api/2.0/mlflow/artifacts and /ajax-api/2.0/mlflow/artifacts.
        *mlflow_artifacts.list_components(store, target),
        # MLflow's REST API under /api/2.0/mlflow and /ajax-api/2.0/mlflow.
        *mlflow_api.components(
            [*mlflow_api.TRACKING_ROUTES, *REGISTRY_ROUTES],
            target,
            settings.max_receive_message_bytes,
            settings.max_send_message_bytes,
        ),
    ]
    listener = HttpListener(build_app(components), sock, context, settings.shutdown_grace_s)
    return HttpServer(listener, target, directory, host)
