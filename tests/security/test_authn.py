"""The Authenticator: which credential decides, failure reasons, reloads under load."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from lineagedb.security.authn import Authenticator, bearer_token
from lineagedb.security.identity import AuthenticationError, Identity
from lineagedb.security.settings import SecuritySettings
from lineagedb.security.static_tokens import new_token, tokens_file_line
from tests.security.conftest import (
    AUDIENCE,
    ISSUER,
    SigningKey,
    auth_context,
    claims,
    make_certificate,
    write_jwks,
)

BAD_SCHEME = "the authorization metadata must be 'Bearer <token>'"


@pytest.fixture
def static_token() -> str:
    return new_token()


@pytest.fixture
def settings(tmp_path: Path, rsa_key: SigningKey, static_token: str) -> SecuritySettings:
    tokens = tmp_path / "tokens"
    tokens.write_text(tokens_file_line(static_token, "robot", ["bots"]) + "\n")
    return SecuritySettings(
        tokens_file=str(tokens),
        jwt_jwks=str(write_jwks(tmp_path / "jwks.json", rsa_key)),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_namespace_claim="ns",
        mtls_identity="cn",
    )


@pytest.fixture
def cert() -> bytes:
    return make_certificate(common_name="mtls-client")


def test_static_jwt_and_mtls_identities(
    settings: SecuritySettings, static_token: str, rsa_key: SigningKey, cert: bytes
) -> None:
    auth = Authenticator.from_settings(settings)
    assert auth.authenticate(f"Bearer {static_token}", {}) == Identity("robot", frozenset({"bots"}), None, "token")
    assert auth.authenticate(f"Bearer {rsa_key.sign(claims(ns='team-a'))}", {}) == Identity(
        "alice", frozenset(), "team-a", "jwt"
    )
    assert auth.authenticate(None, auth_context(cert)) == Identity("mtls-client", method="mtls")
    assert auth.authenticate(None, auth_context(None)) is None
    assert auth.authenticate(None, {}) is None


def test_a_bearer_token_outranks_the_certificate(settings: SecuritySettings, static_token: str, cert: bytes) -> None:
    auth = Authenticator.from_settings(settings)
    assert auth.authenticate(f"Bearer {static_token}", auth_context(cert)).principal == "robot"  # type: ignore[union-attr]
    # A bad token fails even though the certificate alone would have been accepted.
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.authenticate(f"Bearer {new_token()}", auth_context(cert))
    with pytest.raises(AuthenticationError, match="Bearer <token>"):
        auth.authenticate("Basic dXNlcjpwYXNz", auth_context(cert))


def test_certificates_are_not_identities_unless_configured(tmp_path: Path, cert: bytes, static_token: str) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(tokens_file_line(static_token, "robot") + "\n")
    auth = Authenticator.from_settings(SecuritySettings(tokens_file=str(tokens)))
    assert auth.authenticate(None, auth_context(cert)) is None


@pytest.mark.parametrize(
    "value",
    ["", "Bearer", "Bearer ", "Bearer  ldb_x", "Bearer a b", "Basic ldb_x", "ldb_x", "Token ldb_x", "Bearer\tldb_x"],
)
def test_malformed_authorization_values(value: str) -> None:
    with pytest.raises(AuthenticationError) as raised:
        bearer_token(value)
    assert raised.value.reason == BAD_SCHEME


def test_the_scheme_is_case_insensitive() -> None:
    assert bearer_token("bearer abc") == bearer_token("BEARER abc") == bearer_token("Bearer abc") == "abc"


def test_jwt_shaped_tokens_go_to_the_static_file_when_jwt_is_off(tmp_path: Path, rsa_key: SigningKey) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("")
    auth = Authenticator.from_settings(SecuritySettings(tokens_file=str(tokens)))
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.authenticate(f"Bearer {rsa_key.sign(claims())}", {})


def test_opaque_tokens_without_a_tokens_file(tmp_path: Path, rsa_key: SigningKey, cert: bytes) -> None:
    jwt_only = Authenticator.from_settings(SecuritySettings(jwt_jwks=str(write_jwks(tmp_path / "k.json", rsa_key))))
    with pytest.raises(AuthenticationError, match="revoked"):
        jwt_only.authenticate(f"Bearer {new_token()}", {})
    mtls_only = Authenticator.from_settings(SecuritySettings(mtls_identity="cn"))
    with pytest.raises(AuthenticationError, match="does not accept bearer tokens"):
        mtls_only.authenticate(f"Bearer {new_token()}", auth_context(cert))


def test_off_unless_configured(static_token: str) -> None:
    auth = Authenticator.from_settings(SecuritySettings())
    assert not auth.enabled
    assert auth.authenticate(f"Bearer {static_token}", {}) is None
    assert auth.authenticate("garbage", {}) is None


def test_reload_is_all_or_nothing(
    settings: SecuritySettings, static_token: str, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    auth = Authenticator.from_settings(settings)
    fresh = new_token()
    Path(settings.tokens_file or "").write_text(tokens_file_line(fresh, "fresh") + "\n")
    Path(settings.jwt_jwks or "").write_text("{broken")
    with pytest.raises(Exception, match="key set"):
        auth.reload()
    # Neither file took effect: the valid new tokens file waits for a reload that fully succeeds.
    assert auth.authenticate(f"Bearer {static_token}", {}) is not None
    with pytest.raises(AuthenticationError):
        auth.authenticate(f"Bearer {fresh}", {})
    write_jwks(Path(settings.jwt_jwks or ""), rsa_key, ec_key)
    auth.reload()
    assert auth.authenticate(f"Bearer {fresh}", {}) == Identity("fresh", method="token")
    assert auth.authenticate(f"Bearer {ec_key.sign(claims())}", {}) is not None
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.authenticate(f"Bearer {static_token}", {})


def test_calls_during_reloads_always_see_a_whole_state(tmp_path: Path) -> None:
    stable = new_token()
    path = tmp_path / "tokens"
    path.write_text(tokens_file_line(stable, "stable") + "\n")
    auth = Authenticator.from_settings(SecuritySettings(tokens_file=str(path)))
    failures: list[BaseException] = []
    stop = threading.Event()

    def caller() -> None:
        while not stop.is_set():
            try:
                assert auth.authenticate(f"Bearer {stable}", {}) == Identity("stable", method="token")
            except BaseException as error:  # collected, reported below
                failures.append(error)
                return
            time.sleep(0)  # let the reloading thread run on a busy 2-core machine

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for round_ in range(40):
        extra = "\n".join(tokens_file_line(new_token(), f"p{round_}-{i}") for i in range(20))
        path.write_text(f"{tokens_file_line(stable, 'stable')}\n{extra}\n")
        auth.reload()
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert not failures


def test_from_settings_refuses_unreadable_files(tmp_path: Path) -> None:
    from lineagedb.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="tokens file"):
        Authenticator.from_settings(SecuritySettings(tokens_file=str(tmp_path / "absent")))
    with pytest.raises(ConfigurationError, match="key set"):
        Authenticator.from_settings(SecuritySettings(jwt_jwks=str(tmp_path / "absent.json")))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"keys": "x"}))
    with pytest.raises(ConfigurationError):
        Authenticator.from_settings(SecuritySettings(jwt_jwks=str(bad)))
