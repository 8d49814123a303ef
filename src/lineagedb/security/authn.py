"""Authentication: call credentials in, an Identity (or None, or AuthenticationError) out.

A bearer token in the `authorization` metadata is authoritative: when one is present
it decides, even if the peer also presented a client certificate. Without one, a
configured mTLS identity applies. Without either the result is None, and the caller
decides between anonymous access and UNAUTHENTICATED.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lineagedb.security.identity import AuthenticationError, Identity
from lineagedb.security.jwt_tokens import JwtVerifier, is_jwt
from lineagedb.security.peer_certs import peer_principal
from lineagedb.security.settings import SecuritySettings
from lineagedb.security.static_tokens import StaticTokens

BAD_SCHEME = "the authorization metadata must be 'Bearer <token>'"
REVOKED = "the bearer token is not valid or has been revoked"
NO_BEARER = "this server does not accept bearer tokens"


@dataclass(frozen=True)
class _State:
    """Everything a reload replaces, swapped as one reference so a call never sees half of a reload."""

    tokens: StaticTokens | None
    jwt: JwtVerifier | None


def bearer_token(authorization: str) -> str:
    """The token of a 'Bearer <token>' value (scheme case-insensitive, exactly one space)."""
    scheme, space, token = authorization.partition(" ")
    # No whitespace anywhere in the token: str.split() splits at exactly the characters
    # re's \s matches in a str (both are Py_UNICODE_ISSPACE; checked for every code point
    # in tests/security/test_admission.py), in half the time of a regex search.
    if not space or scheme.lower() != "bearer" or not token or token.split(maxsplit=1) != [token]:
        raise AuthenticationError(BAD_SCHEME)
    return token


class Authenticator:
    def __init__(self, settings: SecuritySettings, tokens: StaticTokens | None, jwt: JwtVerifier | None) -> None:
        self.settings = settings
        # Settings are frozen: read the flag once, not through two properties per call.
        self._enabled = settings.authentication_enabled
        self._state = _State(tokens, jwt)
        # Only reloads take the lock; calls read self._state once, which is atomic.
        self._reload_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> Authenticator:
        """Reads the tokens file and key set file; raises ConfigurationError (exit 2) when they are unusable."""
        tokens = StaticTokens.load(settings.tokens_file) if settings.tokens_file else None
        verifier = JwtVerifier.from_settings(settings) if settings.jwt_jwks else None
        return cls(settings, tokens, verifier)

    @property
    def enabled(self) -> bool:
        return self._enabled

    def authenticate(self, authorization: str | None, auth_context: Mapping[str, Sequence[bytes]]) -> Identity | None:
        if not self._enabled:
            # Off unless configured: credentials meant for someone else (a proxy) are ignored.
            return None
        state = self._state
        if authorization is not None:
            return self._bearer(state, bearer_token(authorization))
        if self.settings.mtls_identity is not None:
            principal = peer_principal(auth_context, self.settings.mtls_identity)
            if principal is not None:
                return Identity(principal=principal, method="mtls")
        return None

    @staticmethod
    def _bearer(state: _State, token: str) -> Identity:
        if state.jwt is not None and is_jwt(token):
            return state.jwt.verify(token)
        if state.tokens is None:
            raise AuthenticationError(REVOKED if state.jwt is not None else NO_BEARER)
        identity = state.tokens.lookup(token)
        if identity is None:
            raise AuthenticationError(REVOKED)
        return identity

    def reload(self) -> None:
        """Re-read the tokens file and the key set file.

        The new state is built completely before it replaces the old one; if either file
        cannot be read, the old state stays in force and the error (a ConfigurationError
        saying why) is raised for the caller to log.
        """
        with self._reload_lock:
            old = self._state
            tokens = StaticTokens.load(self.settings.tokens_file) if self.settings.tokens_file else None
            verifier = old.jwt.reloaded() if old.jwt is not None else None
            self._state = _State(tokens, verifier)
