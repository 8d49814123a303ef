"""Certificates for TLS and mTLS tests, made with `cryptography` (short-lived, EC P-256)."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOCALHOST_SANS: tuple[x509.GeneralName, ...] = (
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def issue_certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    ca: bool | None = None,
    sans: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:
    """A certificate for `subject` signed by `issuer` (self-signed, a CA, when None).
    `ca` defaults to "self-signed"; `sans` become a SubjectAlternativeName extension."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer if issuer else (name, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=issuer is None if ca is None else ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def pem_bytes(item: x509.Certificate | ec.EllipticCurvePrivateKey) -> bytes:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM)
    return item.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_pem(path: Path, item: x509.Certificate | ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(pem_bytes(item))
    return path


@dataclass(frozen=True)
class Pki:
    """A CA with a server certificate for localhost and a client certificate, and an
    unrelated CA with a client certificate of its own (for refusals)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_client_cert: Path
    other_client_key: Path
    other_server_key: Path


def make_pki(directory: Path, client_name: str, other_client_name: str, ca_name: str = "LineageDB test CA") -> Pki:
    """Write a Pki's PEM files into `directory`; keys are readable by their owner only
    (libpq refuses a client key others can read)."""
    ca_key, other_ca_key = new_key(), new_key()
    ca = issue_certificate(ca_name, ca_key, None, ca=True)
    other_ca = issue_certificate("Some other CA", other_ca_key, None, ca=True)
    server_key, client_key, other_client_key, other_server_key = new_key(), new_key(), new_key(), new_key()
    server = issue_certificate("localhost", server_key, (ca.subject, ca_key), sans=LOCALHOST_SANS)
    client = issue_certificate(client_name, client_key, (ca.subject, ca_key))
    other_client = issue_certificate(other_client_name, other_client_key, (other_ca.subject, other_ca_key))
    pki = Pki(
        ca=write_pem(directory / "ca.pem", ca),
        server_cert=write_pem(directory / "server.pem", server),
        server_key=write_pem(directory / "server.key", server_key),
        client_cert=write_pem(directory / "client.pem", client),
        client_key=write_pem(directory / "client.key", client_key),
        other_ca=write_pem(directory / "other-ca.pem", other_ca),
        other_client_cert=write_pem(directory / "other-client.pem", other_client),
        other_client_key=write_pem(directory / "other-client.key", other_client_key),
        other_server_key=write_pem(directory / "other-server.key", other_server_key),
    )
    for key in (pki.server_key, pki.client_key, pki.other_client_key, pki.other_server_key):
        key.chmod(0o600)
    return pki
