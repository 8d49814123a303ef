"""TLS and mTLS for the gRPC port: load PEM material, check it, build server credentials."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lineagedb.config import ConfigurationError, TlsSettings

log = logging.getLogger(__name__)

PEM_MARKER = "-----BEGIN"


def read_pem(value: str, what: str) -> bytes:
    """`value` is PEM text (as in MLMD's ssl_config) or the path of a PEM file (as in our flags)."""
    if PEM_MARKER in value:
        return value.encode("ascii")
    try:
        data = Path(value).expanduser().read_bytes()
    except OSError as error:
        raise ConfigurationError(f"cannot read the {what} file {value}: {error.strerror or error}") from error
    if PEM_MARKER.encode() not in data:
        raise ConfigurationError(f"the {what} file {value} does not contain PEM data")
    return data


def load_tls(
    cert: str, key: str, client_ca: str | None, require_client_cert: bool | None, origin: str = "flags"
) -> TlsSettings:
    """Read and check the server key pair and the optional client CA.

    With a client CA, client certificates are required unless `require_client_cert` is
    explicitly false (gRPC then does not ask for one, so the CA is unused).
    """
    cert_pem = read_pem(cert, "TLS certificate")
    key_pem = read_pem(key, "TLS private key")
    ca_pem = read_pem(client_ca, "TLS client CA") if client_ca else None
    if require_client_cert is None:
        require_client_cert = ca_pem is not None
    if require_client_cert and ca_pem is None:
        raise ConfigurationError("requiring client certificates needs a client CA (--tls-client-ca or custom_ca)")
    if ca_pem is not None and not require_client_cert:
        log.warning("a TLS client CA is configured but client certificates are not required: it is unused")
    tls = TlsSettings(cert_pem, key_pem, ca_pem, require_client_cert, origin)
    check_tls(tls)
    return tls


def check_tls(tls: TlsSettings) -> None:
    """Refuse a key that does not match the certificate; warn about expiry."""
    try:
        certs = x509.load_pem_x509_certificates(tls.cert_chain)
    except ValueError as error:
        raise ConfigurationError(f"the TLS certificate is not valid PEM: {error}") from error
    try:
        key = serialization.load_pem_private_key(tls.private_key, password=None)
    except (ValueError, TypeError) as error:
        raise ConfigurationError(f"the TLS private key cannot be loaded (unencrypted PEM expected): {error}") from error
    if tls.client_ca is not None:
        try:
            x509.load_pem_x509_certificates(tls.client_ca)
        except ValueError as error:
            raise ConfigurationError(f"the TLS client CA is not valid PEM: {error}") from error
    leaf = certs[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if leaf.public_key().public_bytes(encoding, public) != key.public_key().public_bytes(encoding, public):
        raise ConfigurationError("the TLS private key does not belong to the TLS certificate")
    now = datetime.datetime.now(datetime.UTC)
    if leaf.not_valid_after_utc < now:
        log.warning("the TLS certificate expired on %s; clients will refuse it", leaf.not_valid_after_utc.isoformat())
    elif leaf.not_valid_before_utc > now:
        log.warning("the TLS certificate is not valid before %s", leaf.not_valid_before_utc.isoformat())


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(tls.private_key, tls.cert_chain)],
        root_certificates=tls.client_ca,
        require_client_auth=tls.require_client_cert,
    )
