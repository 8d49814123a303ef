"""The caller's name from its TLS client certificate.

Takes the gRPC auth context as a plain mapping (`context.auth_context()`: property
name -> list of bytes) so this module does not need grpc. gRPC has already verified
the certificate against the client CA before a call reaches us; here it is only read.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

from lineagedb.security.identity import AuthenticationError

PEM_CERT_PROPERTY = "x509_pem_cert"
_SAN_TYPES: dict[str, type[x509.DNSName | x509.UniformResourceIdentifier | x509.RFC822Name]] = {
    "san-dns": x509.DNSName,
    "san-uri": x509.UniformResourceIdentifier,
    "san-email": x509.RFC822Name,
}


def peer_principal(auth_context: Mapping[str, Sequence[bytes]], source: str) -> str | None:
    """The principal named by `source` ("cn", "san-dns", "san-uri" or "san-email"), or None.

    None when the peer sent no certificate or the certificate has no such field: the call
    may still carry a bearer token or be anonymous, which the caller decides.
    """
    if source != "cn" and source not in _SAN_TYPES:
        raise ValueError(f"unknown mTLS identity source {source!r}")
    pems = auth_context.get(PEM_CERT_PROPERTY) or ()
    if not pems:
        return None
    return _principal_from_pem(bytes(pems[0]), source)


# A client sends the same certificate on every call of a connection: parse it once.
@functools.lru_cache(maxsize=256)
def _principal_from_pem(pem: bytes, source: str) -> str | None:
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise AuthenticationError("the client certificate cannot be read") from None
    if source == "cn":
        return _common_name(certificate)
    return _first_san(certificate, _SAN_TYPES[source])


def _common_name(certificate: x509.Certificate) -> str | None:
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if text:
            return text
    return None


def _first_san(
    certificate: x509.Certificate, kind: type[x509.DNSName | x509.UniformResourceIdentifier | x509.RFC822Name]
) -> str | None:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    values: list[str] = san.get_values_for_type(kind)
    return values[0] if values else None
