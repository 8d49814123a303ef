"""JWT bearer tokens: signatures, algorithms, time claims, issuer and audience, claims, key sets."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from lineagedb.security.identity import AuthenticationError, Identity
from lineagedb.security.jwt_tokens import JwksError, JwtVerifier, is_jwt, resolve_claim
from lineagedb.security.settings import SecuritySettings
from tests.security.conftest import AUDIENCE, ISSUER, JwksServer, SigningKey, claims, verifier, write_jwks


@pytest.fixture
def jwks(tmp_path: Path, rsa_key: SigningKey, ec_key: SigningKey) -> Path:
    return write_jwks(tmp_path / "jwks.json", rsa_key, ec_key)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_valid_rsa_and_ec_tokens(jwks: Path, rsa_key: SigningKey, ec_key: SigningKey) -> None:
    check = verifier(jwks)
    assert check.verify(rsa_key.sign(claims())) == Identity("alice", frozenset(), None, "jwt")
    assert check.verify(ec_key.sign(claims(sub="bob"))).principal == "bob"
    # Other RSA algorithms verify with the same RSA key.
    assert check.verify(rsa_key.sign(claims(), algorithm="PS256")).principal == "alice"
    assert check.verify(rsa_key.sign(claims(), algorithm="RS512")).principal == "alice"


def test_a_signature_by_another_key_is_refused(jwks: Path, other_rsa_key: SigningKey) -> None:
    with pytest.raises(AuthenticationError, match="signature does not verify"):
        verifier(jwks).verify(other_rsa_key.sign(claims()))


def test_a_tampered_payload_is_refused(jwks: Path, rsa_key: SigningKey) -> None:
    header, _, signature = rsa_key.sign(claims()).split(".")
    forged = ".".join([header, _b64(claims(sub="root")), signature])
    with pytest.raises(AuthenticationError, match="signature does not verify"):
        verifier(jwks).verify(forged)


def test_time_claims_with_leeway(jwks: Path, rsa_key: SigningKey) -> None:
    now = int(time.time())
    check = verifier(jwks, jwt_leeway_s=30)
    with pytest.raises(AuthenticationError, match="has expired"):
        check.verify(rsa_key.sign(claims(exp=now - 120)))
    with pytest.raises(AuthenticationError, match="not yet valid"):
        check.verify(rsa_key.sign(claims(nbf=now + 120)))
    # Within the leeway: a clock a few seconds off is not an error.
    assert check.verify(rsa_key.sign(claims(exp=now - 10))).principal == "alice"
    assert check.verify(rsa_key.sign(claims(nbf=now + 10, iat=now + 10))).principal == "alice"
    strict = verifier(jwks, jwt_leeway_s=0)
    with pytest.raises(AuthenticationError, match="has expired"):
        strict.verify(rsa_key.sign(claims(exp=now - 10)))


def test_exp_is_required(jwks: Path, rsa_key: SigningKey) -> None:
    with pytest.raises(AuthenticationError, match="no 'exp' claim"):
        verifier(jwks).verify(rsa_key.sign(claims(exp=None)))


def test_issuer_and_audience(jwks: Path, rsa_key: SigningKey) -> None:
    check = verifier(jwks)
    with pytest.raises(AuthenticationError, match="issuer is not trusted"):
        check.verify(rsa_key.sign(claims(iss="https://elsewhere.test")))
    with pytest.raises(AuthenticationError, match="another audience"):
        check.verify(rsa_key.sign(claims(aud="someone-else")))
    assert check.verify(rsa_key.sign(claims(aud=["someone-else", AUDIENCE]))).principal == "alice"
    with pytest.raises(AuthenticationError, match="no 'iss' claim"):
        check.verify(rsa_key.sign(claims(iss=None)))
    with pytest.raises(AuthenticationError, match="no 'aud' claim"):
        check.verify(rsa_key.sign(claims(aud=None)))
    # Not configured: not checked.
    lax = verifier(jwks, jwt_issuer=None, jwt_audience=None)
    assert lax.verify(rsa_key.sign(claims(iss="https://elsewhere.test", aud="x"))).principal == "alice"


def test_alg_none_is_refused(jwks: Path) -> None:
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims())}."
    assert is_jwt(unsigned)
    with pytest.raises(AuthenticationError, match="algorithm is not allowed"):
        verifier(jwks).verify(unsigned)


def test_hs256_is_refused_even_keyed_with_the_public_key(jwks: Path, rsa_key: SigningKey) -> None:
    # The classic confusion attack: HMAC keyed with the (public) RSA key bytes.
    public_pem = rsa_key.jwk()["n"].encode()
    token = jwt.encode(claims(), public_pem, algorithm="HS256", headers={"kid": rsa_key.kid})
    with pytest.raises(AuthenticationError, match="algorithm is not allowed"):
        verifier(jwks).verify(token)


def test_hmac_keys_in_the_key_set_are_ignored(tmp_path: Path, rsa_key: SigningKey) -> None:
    secret = base64.urlsafe_b64encode(b"k" * 32).rstrip(b"=").decode()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_key.jwk(), {"kty": "oct", "k": secret, "kid": "hmac"}]}))
    token = jwt.encode(claims(), b"k" * 32, algorithm="HS256", headers={"kid": "hmac"})
    with pytest.raises(AuthenticationError, match="algorithm is not allowed"):
        verifier(path).verify(token)
    only_hmac = tmp_path / "hmac.json"
    only_hmac.write_text(json.dumps({"keys": [{"kty": "oct", "k": secret, "kid": "hmac"}]}))
    with pytest.raises(JwksError, match="no asymmetric signing key"):
        verifier(only_hmac)


def test_an_algorithm_that_does_not_fit_the_key_is_refused(jwks: Path, rsa_key: SigningKey, ec_key: SigningKey) -> None:
    # An RSA-signed token naming the EC key's kid.
    token = rsa_key.sign(claims(), kid=ec_key.kid)
    with pytest.raises(AuthenticationError, match="not allowed for its key"):
        verifier(jwks).verify(token)


def test_algorithms_outside_the_allow_list_are_refused(jwks: Path, rsa_key: SigningKey) -> None:
    with pytest.raises(AuthenticationError, match="algorithm is not allowed"):
        verifier(jwks, jwt_algorithms=("ES256",)).verify(rsa_key.sign(claims()))


def test_key_ids(tmp_path: Path, jwks: Path, rsa_key: SigningKey, ec_key: SigningKey) -> None:
    with pytest.raises(AuthenticationError, match="key id is not in the trusted key set"):
        verifier(jwks).verify(rsa_key.sign(claims(), kid="rotated-away"))
    # Without a kid the key is ambiguous in a set of two, and obvious in a set of one.
    with pytest.raises(AuthenticationError, match="no key id"):
        verifier(jwks).verify(rsa_key.sign(claims(), kid=None))
    single = write_jwks(tmp_path / "single.json", ec_key)
    assert verifier(single).verify(ec_key.sign(claims(), kid=None)).principal == "alice"


def test_malformed_tokens(jwks: Path, rsa_key: SigningKey) -> None:
    check = verifier(jwks)
    odd_headers = [{"alg": ["RS256"]}, {"alg": "RS256", "kid": 5}, [1], {"alg": "RS256", "crit": ["x"]}]
    tokens = ["a.b.c", f"{_b64({'alg': 'RS256'})}.!!!.sig", "e30.e30.e30", "eyJ" * 500 + ".a.b"]
    for token in tokens + [f"{_b64(header)}.{_b64(claims())}.c2ln" for header in odd_headers]:
        with pytest.raises(AuthenticationError):
            check.verify(token)
    header, payload, signature = rsa_key.sign(claims()).split(".")
    with pytest.raises(AuthenticationError, match=r"malformed|signature"):
        check.verify(f"{header}.{payload}x.{signature}")


def test_groups_claim_as_a_list_a_string_or_missing(jwks: Path, rsa_key: SigningKey) -> None:
    check = verifier(jwks)
    assert check.verify(rsa_key.sign(claims(groups=["a", "b"]))).groups == frozenset({"a", "b"})
    assert check.verify(rsa_key.sign(claims(groups="solo"))).groups == frozenset({"solo"})
    assert check.verify(rsa_key.sign(claims())).groups == frozenset()
    with pytest.raises(AuthenticationError, match="must be a string or a list of strings"):
        check.verify(rsa_key.sign(claims(groups=["a", 1])))
    custom = verifier(jwks, jwt_groups_claim="roles", jwt_principal_claim="email")
    identity = custom.verify(rsa_key.sign(claims(email="a@example.com", roles=["r"])))
    assert (identity.principal, identity.groups) == ("a@example.com", frozenset({"r"}))


def test_missing_or_non_string_principal(jwks: Path, rsa_key: SigningKey) -> None:
    with pytest.raises(AuthenticationError, match="no 'sub' claim"):
        verifier(jwks).verify(rsa_key.sign(claims(sub=None)))
    with pytest.raises(AuthenticationError, match="no 'email' claim"):
        verifier(jwks, jwt_principal_claim="email").verify(rsa_key.sign(claims()))
    with pytest.raises(AuthenticationError, match="'uid' claim is not a string"):
        verifier(jwks, jwt_principal_claim="uid").verify(rsa_key.sign(claims(uid=42)))


def test_kubernetes_service_account_token(jwks: Path, rsa_key: SigningKey) -> None:
    token = rsa_key.sign(
        claims(
            sub="system:serviceaccount:team-a:trainer",
            aud=[AUDIENCE],
            **{
                "kubernetes.io": {
                    "namespace": "team-a",
                    "serviceaccount": {"name": "trainer", "uid": "0b1c"},
                    "pod": {"name": "trainer-abc", "uid": "9f"},
                }
            },
        )
    )
    check = verifier(jwks, jwt_namespace_claim="kubernetes.io.namespace", jwt_groups_claim="kubernetes.io.groups")
    assert check.verify(token) == Identity("system:serviceaccount:team-a:trainer", frozenset(), "team-a", "jwt")
    by_name = verifier(jwks, jwt_principal_claim="kubernetes.io.serviceaccount.name")
    assert by_name.verify(token).principal == "trainer"


def test_resolve_claim_prefers_the_longest_key() -> None:
    data = {
        "kubernetes.io": {"namespace": "long"},
        "kubernetes": {"io": {"namespace": "short"}},
        "https://example.com/groups": ["g"],
        "a": {"b.c": 1, "b": {"c": 2}},
        "x.y": {"other": 1},
        "x": {"y": {"z": "fallback"}},
    }
    assert resolve_claim(data, "kubernetes.io.namespace") == "long"
    assert resolve_claim(data, "https://example.com/groups") == ["g"]
    assert resolve_claim(data, "a.b.c") == 1
    assert resolve_claim(data, "x.y.z") == "fallback"  # the longer key has no such field: a shorter one does
    assert resolve_claim(data, "missing.path") is None
    assert resolve_claim({"sub": "s"}, "sub.deeper") is None


def test_reload_rereads_the_key_set_file(tmp_path: Path, rsa_key: SigningKey, ec_key: SigningKey) -> None:
    path = write_jwks(tmp_path / "jwks.json", rsa_key)
    check = verifier(path)
    with pytest.raises(AuthenticationError, match="key id"):
        check.verify(ec_key.sign(claims()))
    write_jwks(path, rsa_key, ec_key)
    check.reload()
    assert check.verify(ec_key.sign(claims())).principal == "alice"
    path.write_text("{not json")
    with pytest.raises(JwksError):
        check.reload()
    assert check.verify(ec_key.sign(claims())).principal == "alice"  # the old keys stay


def test_unusable_key_set_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(JwksError, match="cannot load"):
        verifier(tmp_path / "absent.json")
    empty = tmp_path / "empty.json"
    empty.write_text('{"keys": []}')
    with pytest.raises(JwksError):
        verifier(empty)


def test_key_set_from_a_url(jwks_server: JwksServer, rsa_key: SigningKey, ec_key: SigningKey) -> None:
    check = verifier(jwks_server.url)
    assert check.verify(rsa_key.sign(claims())).principal == "alice"
    assert check.verify(rsa_key.sign(claims(sub="bob"))).principal == "bob"
    assert jwks_server.requests == 1  # cached
    # A rotated-in key is found by fetching the set again for its unknown kid...
    jwks_server.document = {"keys": [rsa_key.jwk(), ec_key.jwk()]}
    assert check.verify(ec_key.sign(claims())).principal == "alice"
    assert jwks_server.requests == 2
    # ...but made-up kids do not make every call fetch it.
    for _ in range(3):
        with pytest.raises(AuthenticationError, match="key id"):
            check.verify(rsa_key.sign(claims(), kid="made-up"))
    assert jwks_server.requests == 2


def test_an_unreachable_key_set_url_is_an_authentication_error(rsa_key: SigningKey) -> None:
    server = JwksServer({"keys": []})
    url = server.url
    server.stop()  # nothing listens on that port any more
    check = verifier(url)
    for _ in range(2):
        with pytest.raises(AuthenticationError) as raised:
            check.verify(rsa_key.sign(claims()))
        assert raised.value.reason == "cannot verify the token: the key set is unavailable"


def test_a_url_serving_garbage_is_unavailable(rsa_key: SigningKey) -> None:
    server = JwksServer({"not": "a key set"})
    try:
        with pytest.raises(AuthenticationError, match="key set is unavailable"):
            verifier(server.url).verify(rsa_key.sign(claims()))
    finally:
        server.stop()


def test_settings_refuse_unsafe_algorithms() -> None:
    for algorithms in [("none",), ("HS256",), ("RS256", "HS512"), ()]:
        with pytest.raises(ValueError):
            SecuritySettings(jwt_jwks="x", jwt_algorithms=algorithms)


def test_verifier_needs_a_key_set() -> None:
    with pytest.raises(Exception, match="key set"):
        JwtVerifier.from_settings(SecuritySettings(jwt_issuer=ISSUER))
