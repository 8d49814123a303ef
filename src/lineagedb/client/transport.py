"""How a call reaches the store: over gRPC (`RemoteTransport`), or in-process (`lineagedb.client.embedded`).

A transport takes an MLMD method name ("PutArtifacts") and a request message, and returns
the response message or raises a `lineagedb.client.errors.StatusError`. Retrying lives in
`MetadataStore`, above both transports, so both retry the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from lineagedb.client import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc

# The header LineageDB reads the namespace from (lineagedb.api.auth.NAMESPACE_METADATA; the
# client cannot import the server's modules, which need the server's extra).
NAMESPACE_METADATA = "x-lineagedb-namespace"
# A LineageDB server with read replicas ends each write with this trailing metadata entry (the
# write's WAL position); sent back with later calls, the server reads them where that write is
# visible (lineagedb.api.read_routing.LSN_METADATA).
LSN_METADATA = "lineagedb-lsn"


class Transport(Protocol):
    def call(self, method: str, request: Any, timeout: float | None) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class TlsOptions:
    """PEM bytes for a TLS channel; all None means the system's trusted CAs and no client certificate."""

    root_certificates: bytes | None = None
    private_key: bytes | None = None
    certificate_chain: bytes | None = None


def tls_from_config(config: mlmd.MetadataStoreClientConfig) -> TlsOptions | None:
    """MLMD's ssl_config: custom_ca verifies the server, client_key with server_cert is the
    client's own key pair (MLMD's field name; it is the certificate the client presents)."""
    if not config.HasField("ssl_config"):
        return None
    ssl = config.ssl_config

    return TlsOptions(
        ssl.custom_ca.encode("ascii") if ssl.HasField("custom_ca") else None,
        ssl.client_key.encode("ascii") if ssl.HasField("client_key") else None,
        ssl.server_cert.encode("ascii") if ssl.HasField("server_cert") else None,
    )


def mlmd_channel_options(config: mlmd.MetadataStoreClientConfig) -> list[tuple[str, int]]:
    options: list[tuple[str, int]] = []
    if config.HasField("channel_arguments"):
        arguments = config.channel_arguments
        if arguments.HasField("max_receive_message_length"):
            options.append(("grpc.max_receive_message_length", arguments.max_receive_message_length))
        if arguments.HasField("http2_max_ping_strikes"):
            options.append(("grpc.http2.max_ping_strikes", arguments.http2_max_ping_strikes))
    return options


class RemoteTransport:
    """A gRPC channel to a LineageDB (or MLMD) server; bearer token and namespace go with every call."""

    def __init__(
        self,
        target: str,
        *,
        tls: TlsOptions | None = None,
        token: str | None = None,
        namespace: str | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if tls is None:
            self._channel = grpc.insecure_channel(target, options=list(options))
        else:
            credentials = grpc.ssl_channel_credentials(tls.root_certificates, tls.private_key, tls.certificate_chain)
            self._channel = grpc.secure_channel(target, credentials, options=list(options))
        metadata: list[tuple[str, str]] = []
        if token is not None:
            metadata.append(("authorization", f"Bearer {token}"))
        if namespace is not None:
            metadata.append((NAMESPACE_METADATA, namespace))
        self._metadata = tuple(metadata)
        self._stub = svc_grpc.MetadataStoreServiceStub(self._channel)
        # The largest write position the server returned (read your writes with read replicas).
        self._lsn: int | None = None
        self._lsn_lock = threading.Lock()

    def call(self, method: str, request: Any, timeout: float | None) -> Any:
        lsn = self._lsn
        metadata = self._metadata if lsn is None else (*self._metadata, (LSN_METADATA, str(lsn)))
        try:
            response, call = getattr(self._stub, method).with_call(request, timeout=timeout, metadata=metadata or None)
        except grpc.RpcError as error:
            if isinstance(error, grpc.Call):
                self._remember_lsn(error.trailing_metadata())
            code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = (error.details() if isinstance(error, grpc.Call) else None) or ""
            raise errors.make_exception(details, code.value[0]) from error
        self._remember_lsn(call.trailing_metadata())
        return response

    def _remember_lsn(self, trailing: Sequence[tuple[str, str | bytes]] | None) -> None:
        for key, value in trailing or ():
            if key == LSN_METADATA and isinstance(value, str) and value.isdigit():
                with self._lsn_lock:
                    self._lsn = max(self._lsn or 0, int(value))

    def close(self) -> None:
        self._channel.close()
