"""Failure reasons go back to callers and into logs: they never contain the credential or any piece of it."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from lineagedb.security.authn import Authenticator
from lineagedb.security.identity import AuthenticationError
from lineagedb.security.settings import SecuritySettings
from lineagedb.security.static_tokens import new_token, tokens_file_line
from tests.security.conftest import AUDIENCE, ISSUER, JwksServer, SigningKey, auth_context, claims, write_jwks

# Values planted in tokens: none may come back in a reason.
MARKERS = ("KIDMARK", "ISSMARK", "AUDMARK", "SUBMARK", "GRPMARK", "ALGMARK", "SECRETMARK")


def _b64(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _pieces(token: str) -> Iterator[str]:
    """The token, its dot-separated segments, and every 8-character window of it."""
    yield token
    yield from (segment for segment in token.split(".") if len(segment) >= 4)
    yield from (token[i : i + 8] for i in range(max(0, len(token) - 7)))


def _bad_credentials(rsa_key: SigningKey, other_rsa_key: SigningKey) -> list[str]:
    now = int(time.time())
    marked = claims(sub="SUBMARK", groups=["GRPMARK"])
    header, payload, signature = rsa_key.sign(marked).split(".")
    return [
        f"Bearer {new_token()}SECRETMARK",  # unknown static token
        f"Bearer {new_token()}",
        "Basic SECRETMARK",
        "Bearer SECRETMARK extra",
        "SECRETMARK",
        f"Bearer {other_rsa_key.sign(marked)}",  # bad signature
        f"Bearer {rsa_key.sign(claims(sub='SUBMARK', exp=now - 3600))}",  # expired
        f"Bearer {rsa_key.sign(claims(sub='SUBMARK', nbf=now + 3600))}",  # not yet valid
        f"Bearer {rsa_key.sign(claims(iss='ISSMARK'))}",  # issuer
        f"Bearer {rsa_key.sign(claims(aud='AUDMARK'))}",  # audience
        f"Bearer {rsa_key.sign(claims(sub=None))}",  # no principal
        f"Bearer {rsa_key.sign(marked, kid='KIDMARK')}",  # unknown kid
        f"Bearer {rsa_key.sign(claims(groups=[1, 'GRPMARK']))}",  # bad groups
        f"Bearer {_b64({'alg': 'none', 'kid': 'KIDMARK'})}.{_b64(marked)}.",  # alg none
        f"Bearer {_b64({'alg': 'ALGMARK', 'kid': 'KIDMARK'})}.{payload}.{signature}",  # unknown alg
        f"Bearer {jwt.encode(marked, b'SECRETMARK' * 4, algorithm='HS256', headers={'kid': 'KIDMARK'})}",
        f"Bearer {header}.{payload}SECRETMARK.{signature}",  # corrupt payload
        f"Bearer {header[:-2]}.{payload}.{signature}",  # corrupt header
    ]


def _assert_not_echoed(authorization: str, text: str) -> None:
    token = authorization.split(" ", 1)[-1]
    for piece in _pieces(token):
        assert piece not in text, f"{piece!r} echoed in {text!r}"
    for marker in MARKERS:
        assert marker not in text, f"{marker} echoed in {text!r}"


def test_no_reason_contains_the_token(
    tmp_path: Path, rsa_key: SigningKey, other_rsa_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(tokens_file_line(new_token(), "someone") + "\n")
    auth = Authenticator.from_settings(
        SecuritySettings(
            tokens_file=str(tokens),
            jwt_jwks=str(write_jwks(tmp_path / "jwks.json", rsa_key)),
            jwt_issuer=ISSUER,
            jwt_audience=AUDIENCE,
        )
    )
    credentials = _bad_credentials(rsa_key, other_rsa_key)
    reasons = set()
    for authorization in credentials:
        with pytest.raises(AuthenticationError) as raised:
            auth.authenticate(authorization, auth_context(None))
        reason = raised.value.reason
        assert reason == str(raised.value)
        _assert_not_echoed(authorization, reason)
        _assert_not_echoed(authorization, repr(raised.value))
        _assert_not_echoed(authorization, caplog.text)
        reasons.add(reason)
    # The reasons still say different things (they are useful, just not revealing).
    assert len(reasons) >= 10


def test_key_set_outage_reason_and_log_do_not_contain_the_token(
    rsa_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    server = JwksServer({"keys": []})
    server.stop()
    auth = Authenticator.from_settings(SecuritySettings(jwt_jwks=server.url))
    authorization = f"Bearer {rsa_key.sign(claims(sub='SUBMARK'), kid='KIDMARK')}"
    with pytest.raises(AuthenticationError) as raised:
        auth.authenticate(authorization, {})
    _assert_not_echoed(authorization, raised.value.reason)
    _assert_not_echoed(authorization, caplog.text)


def test_pieces_helper_would_catch_an_echo() -> None:
    token = new_token()
    with pytest.raises(AssertionError):
        _assert_not_echoed(f"Bearer {token}", f"bad token {token[5:20]}")
