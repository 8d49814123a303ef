"""The caller's name from its client certificate (CN or a SAN of the configured type)."""

from __future__ import annotations

import pytest

from lineagedb.security.identity import AuthenticationError
from lineagedb.security.peer_certs import peer_principal
from tests.security.conftest import auth_context, make_certificate


@pytest.fixture(scope="module")
def full_cert() -> bytes:
    return make_certificate(
        common_name="trainer.team-a",
        dns=("trainer.team-a.svc", "second.example"),
        uris=("spiffe://cluster.local/ns/team-a/sa/trainer",),
        emails=("trainer@example.com",),
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("cn", "trainer.team-a"),
        ("san-dns", "trainer.team-a.svc"),
        ("san-uri", "spiffe://cluster.local/ns/team-a/sa/trainer"),
        ("san-email", "trainer@example.com"),
    ],
)
def test_each_identity_source(full_cert: bytes, source: str, expected: str) -> None:
    assert peer_principal(auth_context(full_cert), source) == expected


def test_no_certificate_is_no_identity() -> None:
    assert peer_principal(auth_context(None), "cn") is None
    assert peer_principal({}, "san-dns") is None
    assert peer_principal({"x509_pem_cert": []}, "cn") is None


def test_a_missing_field_is_no_identity() -> None:
    only_cn = make_certificate(common_name="just-cn")
    for source in ("san-dns", "san-uri", "san-email"):
        assert peer_principal(auth_context(only_cn), source) is None
    no_cn = make_certificate(common_name=None, dns=("host.example",))
    assert peer_principal(auth_context(no_cn), "cn") is None
    assert peer_principal(auth_context(no_cn), "san-dns") == "host.example"
    assert peer_principal(auth_context(no_cn), "san-email") is None


def test_an_unreadable_certificate_is_an_error_not_anonymous() -> None:
    with pytest.raises(AuthenticationError, match="cannot be read"):
        peer_principal({"x509_pem_cert": [b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"]}, "cn")


def test_unknown_source_is_a_programming_error(full_cert: bytes) -> None:
    with pytest.raises(ValueError):
        peer_principal(auth_context(full_cert), "serial")
