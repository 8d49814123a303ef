"""Keys, key sets, tokens and certificates made in the test process (nothing is fetched)."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from lineagedb.security.jwt_tokens import JwtVerifier
from lineagedb.security.settings import SecuritySettings

ISSUER = "https://issuer.test"
AUDIENCE = "lineagedb"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Any
    algorithm: str

    def jwk(self, **extra: Any) -> dict[str, Any]:
        codec = RSAAlgorithm if isinstance(self.private, rsa.RSAPrivateKey) else ECAlgorithm
        data: dict[str, Any] = codec.to_jwk(self.private.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", **extra}

    def sign(self, claims: dict[str, Any], *, kid: str | None = "same", algorithm: str | None = None) -> str:
        headers = {} if kid is None else {"kid": self.kid if kid == "same" else kid}
        return jwt.encode(claims, self.private, algorithm=algorithm or self.algorithm, headers=headers)


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return SigningKey("rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return SigningKey("ec-1", ec.generate_private_key(ec.SECP256R1()), "ES256")


@pytest.fixture(scope="session")
def other_rsa_key() -> SigningKey:
    # Same kid as rsa_key, different key material: a forged signature.
    return SigningKey("rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def write_jwks(path: Path, *keys: SigningKey) -> Path:
    path.write_text(json.dumps({"keys": [key.jwk() for key in keys]}))
    return path


def verifier(jwks: str | Path, **settings: Any) -> JwtVerifier:
    options: dict[str, Any] = {"jwt_jwks": str(jwks), "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
    options.update(settings)
    return JwtVerifier.from_settings(SecuritySettings(**options))


class JwksServer:
    """A key set served over HTTP on 127.0.0.1 by a thread, counting requests."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                body = json.dumps(owner.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def jwks_server(rsa_key: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer({"keys": [rsa_key.jwk()]})
    yield server
    server.stop()


def make_certificate(
    common_name: str | None = "client-cn",
    dns: tuple[str, ...] = (),
    uris: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
) -> bytes:
    """A self-signed client certificate as PEM (gRPC would have verified it against the client CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "LineageDB tests")]
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    name = x509.Name(attributes)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    names: list[x509.GeneralName] = [
        *(x509.DNSName(item) for item in dns),
        *(x509.UniformResourceIdentifier(item) for item in uris),
        *(x509.RFC822Name(item) for item in emails),
    ]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM)


def auth_context(pem: bytes | None) -> dict[str, list[bytes]]:
    """What grpc's context.auth_context() returns for a TLS peer (with or without a client certificate)."""
    context = {"transport_security_type": [b"ssl"], "security_level": [b"TSI_PRIVACY_AND_INTEGRITY"]}
    if pem is not None:
        context["x509_pem_cert"] = [pem]
    return context
