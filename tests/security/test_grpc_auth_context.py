"""A real gRPC mTLS call: the auth context gRPC hands a servicer is what peer_principal and Authenticator read."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lineagedb.security.authn import Authenticator
from lineagedb.security.identity import AuthenticationError, Identity
from lineagedb.security.settings import SecuritySettings
from tests.pki import issue_certificate, new_key, pem_bytes

METHOD = "/lineagedb.test.Echo/Who"


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _issue(
    subject: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None, sans: list[x509.GeneralName]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = new_key()
    return issue_certificate(subject, key, issuer, sans=sans), key


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    return Pem(pem_bytes(cert), pem_bytes(key))


@pytest.fixture(scope="module")
def pki() -> tuple[bytes, Pem, Pem]:
    ca_cert, ca_key = _issue("test CA", None, [])
    server = _pem(*_issue("localhost", (ca_cert.subject, ca_key), [x509.DNSName("localhost")]))
    client = _pem(
        *_issue(
            "trainer",
            (ca_cert.subject, ca_key),
            [x509.UniformResourceIdentifier("spiffe://cluster.local/ns/team-a/sa/trainer")],
        )
    )
    return ca_cert.public_bytes(serialization.Encoding.PEM), server, client


@pytest.fixture(scope="module")
def server(pki: tuple[bytes, Pem, Pem]) -> Iterator[tuple[int, list[Any]]]:
    ca, server_pem, _ = pki
    seen: list[Any] = []
    authenticators = {
        source: Authenticator.from_settings(SecuritySettings(mtls_identity=source)) for source in ("cn", "san-uri")
    }

    def who(request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata())
        auth_context = context.auth_context()
        seen.append(auth_context)
        try:
            identity = authenticators[request.decode()].authenticate(metadata.get("authorization"), auth_context)
        except AuthenticationError as error:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, error.reason)
        return repr(identity).encode()

    handler = grpc.method_handlers_generic_handler(
        "lineagedb.test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(who)}
    )
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    grpc_server.add_generic_rpc_handlers((handler,))
    credentials = grpc.ssl_server_credentials(
        [(server_pem.key, server_pem.cert)], root_certificates=ca, require_client_auth=True
    )
    port = grpc_server.add_secure_port("127.0.0.1:0", credentials)
    grpc_server.start()
    yield port, seen
    grpc_server.stop(grace=None)


def _call(port: int, pki: tuple[bytes, Pem, Pem], source: str, metadata: tuple[tuple[str, str], ...] = ()) -> str:
    ca, _, client = pki
    credentials = grpc.ssl_channel_credentials(ca, client.key, client.cert)
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        call = channel.unary_unary(METHOD)
        result: bytes = call(source.encode(), metadata=metadata, timeout=10)
        return result.decode()


def test_the_client_certificate_names_the_caller(server: tuple[int, list[Any]], pki: tuple[bytes, Pem, Pem]) -> None:
    port, seen = server
    assert _call(port, pki, "cn") == repr(Identity("trainer", method="mtls"))
    assert _call(port, pki, "san-uri") == repr(Identity("spiffe://cluster.local/ns/team-a/sa/trainer", method="mtls"))
    assert seen[-1]["x509_pem_cert"][0].startswith(b"-----BEGIN CERTIFICATE-----")


def test_a_bad_bearer_token_fails_despite_the_certificate(
    server: tuple[int, list[Any]], pki: tuple[bytes, Pem, Pem]
) -> None:
    port, _ = server
    with pytest.raises(grpc.RpcError) as raised:
        _call(port, pki, "cn", (("authorization", "Bearer ldb_not-a-real-token"),))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.details() == "this server does not accept bearer tokens"
