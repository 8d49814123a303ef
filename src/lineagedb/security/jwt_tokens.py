"""JWT bearer tokens verified against a JSON Web Key Set (a file or an http(s) URL).

Only asymmetric keys and algorithms are used: the key set is public, so an HMAC key
taken from it would let anyone forge tokens. Failure reasons go back to the caller,
so they are chosen from fixed texts and never carry anything read from the token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from lineagedb.config import ConfigurationError
from lineagedb.security.identity import AuthenticationError, Identity
from lineagedb.security.settings import SecuritySettings

log = logging.getLogger("lineagedb.security.jwt")

KEYS_UNAVAILABLE = "cannot verify the token: the key set is unavailable"
# Seconds a key-set URL that failed is not asked again: every call would otherwise wait for it.
URL_RETRY_AFTER_S = 5.0
URL_CACHE_LIFESPAN_S = 300.0
URL_TIMEOUT_S = 5.0
URL_REFRESH_COOLDOWN_S = 30.0

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

# Most specific first: InvalidSignatureError is a DecodeError, ExpiredSignatureError an InvalidTokenError.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not yet valid"),
    (jwt.InvalidIssuerError, "the token's issuer is not trusted"),
    (jwt.InvalidAudienceError, "the token is meant for another audience"),
    (jwt.InvalidAlgorithmError, "the token's signing algorithm is not allowed for its key"),
    (jwt.InvalidKeyError, "the token's signing algorithm is not allowed for its key"),
    (jwt.DecodeError, "the token is malformed"),
)


class JwksError(ConfigurationError):
    """The key set file cannot be read or holds no usable key."""


def is_jwt(token: str) -> bool:
    """Three base64url segments (the last, the signature, may be empty: alg=none must still be judged a JWT)."""
    parts = token.split(".")
    return len(parts) == 3 and bool(parts[0]) and bool(parts[1]) and all(_is_base64url(part) for part in parts)


def _is_base64url(text: str) -> bool:
    return all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in text)


def resolve_claim(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted claim path, or None.

    Claim names contain dots themselves ("kubernetes.io", "https://example.com/groups"),
    so at each level the longest key that is a prefix of the remaining path wins, then
    shorter ones: "kubernetes.io.namespace" is claims["kubernetes.io"]["namespace"].
    """
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key not in claims:
            continue
        value = claims[key]
        if cut == len(parts):
            return value
        if isinstance(value, Mapping):
            found = resolve_claim(value, ".".join(parts[cut:]))
            if found is not None:
                return found
    return None


def _usable(key: jwt.PyJWK) -> bool:
    # Signing keys only, and never a symmetric one (see the module docstring).
    return key.key_type != "oct" and key.public_key_use in (None, "sig")


def _algorithms_for(key: Any, allowed: frozenset[str]) -> list[str]:
    """The allowed algorithms that fit this key's type, so an RSA key never verifies an ES256 token."""
    if isinstance(key, rsa.RSAPublicKey):
        fitting: frozenset[str] = _RSA_ALGORITHMS
    elif isinstance(key, ec.EllipticCurvePublicKey):
        name = _EC_ALGORITHMS.get(key.curve.name)
        fitting = frozenset({name}) if name else frozenset()
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        fitting = frozenset({"EdDSA"})
    else:
        fitting = frozenset()
    return sorted(fitting & allowed)


def _pick(keys: list[jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
    if kid is None:
        # A token without a key id is only unambiguous when the set has a single key.
        return keys[0] if len(keys) == 1 else None
    return next((key for key in keys if key.key_id == kid), None)


class KeySource(Protocol):
    def find(self, kid: str | None) -> jwt.PyJWK: ...

    def reloaded(self) -> KeySource: ...


def _unknown_key(kid: str | None) -> AuthenticationError:
    if kid is None:
        return AuthenticationError("the token has no key id and the key set has several keys")
    return AuthenticationError("the token's key id is not in the trusted key set")


class FileKeys:
    """A key set read from a file once; reloaded() re-reads it into a new object."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            text = Path(path).read_text(encoding="utf-8")
            key_set = jwt.PyJWKSet.from_json(text)
        except (OSError, UnicodeDecodeError, ValueError, jwt.PyJWTError) as error:
            raise JwksError(f"cannot load the JWT key set {path}: {error}") from error
        self.keys = [key for key in key_set.keys if _usable(key)]
        if not self.keys:
            raise JwksError(f"the JWT key set {path} has no asymmetric signing key")

    def find(self, kid: str | None) -> jwt.PyJWK:
        key = _pick(self.keys, kid)
        if key is None:
            raise _unknown_key(kid)
        return key

    def reloaded(self) -> FileKeys:
        return FileKeys(self.path)


class UrlKeys:
    """A key set fetched over http(s), cached, and fetched again for a key id it does not know yet."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._client = jwt.PyJWKClient(
                url, cache_jwk_set=True, lifespan=URL_CACHE_LIFESPAN_S, timeout=URL_TIMEOUT_S
            )
        except jwt.PyJWTError as error:
            raise JwksError(f"cannot use the JWT key set URL {url}: {error}") from error
        self._lock = threading.Lock()
        self._failed_until = 0.0
        self._refreshed_at = -URL_REFRESH_COOLDOWN_S

    def find(self, kid: str | None) -> jwt.PyJWK:
        key = _pick(self._keys(refresh=False), kid)
        # Keys rotate: a key id not seen yet fetches the set again, but at most once per cooldown,
        # so tokens with made-up key ids cannot make every call hit the URL.
        if key is None and kid is not None and self._may_refresh():
            key = _pick(self._keys(refresh=True), kid)
        if key is None:
            raise _unknown_key(kid)
        return key

    def _keys(self, refresh: bool) -> list[jwt.PyJWK]:
        if time.monotonic() < self._failed_until:
            raise AuthenticationError(KEYS_UNAVAILABLE)
        try:
            key_set = self._client.get_jwk_set(refresh=refresh)
        except (jwt.PyJWTError, ValueError, OSError) as error:
            with self._lock:
                self._failed_until = time.monotonic() + URL_RETRY_AFTER_S
            log.warning("cannot fetch the JWT key set %s: %s", self.url, error)
            raise AuthenticationError(KEYS_UNAVAILABLE) from None
        return [key for key in key_set.keys if _usable(key)]

    def _may_refresh(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._refreshed_at < URL_REFRESH_COOLDOWN_S:
                return False
            self._refreshed_at = now
            return True

    def reloaded(self) -> UrlKeys:
        # The URL is re-read on its own schedule (cache lifespan, unknown key ids).
        return self


def key_source(location: str) -> KeySource:
    if location.startswith(("http://", "https://")):
        return UrlKeys(location)
    return FileKeys(location)


class JwtVerifier:
    def __init__(self, settings: SecuritySettings, keys: KeySource) -> None:
        self._settings = settings
        self._keys = keys
        self._allowed = frozenset(settings.jwt_algorithms)
        self._require = ["exp"] + (["iss"] if settings.jwt_issuer else []) + (["aud"] if settings.jwt_audience else [])

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> JwtVerifier:
        if not settings.jwt_jwks:
            raise ConfigurationError("JWT verification needs a key set (--auth-jwt-jwks)")
        return cls(settings, key_source(settings.jwt_jwks))

    def reloaded(self) -> JwtVerifier:
        """A verifier with the key set file read again (raises, leaving this one intact, if it cannot be)."""
        return JwtVerifier(self._settings, self._keys.reloaded())

    def reload(self) -> None:
        self._keys = self._keys.reloaded()

    def verify(self, token: str) -> Identity:
        header = self._header(token)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationError("the token is malformed")
        key = self._keys.find(kid)
        algorithms = _algorithms_for(key.key, self._allowed)
        if header.get("alg") not in algorithms:
            raise AuthenticationError("the token's signing algorithm is not allowed for its key")
        claims = self._decode(token, key.key, algorithms)
        return self._identity(claims)

    def _header(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError):
            raise AuthenticationError("the token is malformed") from None
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise AuthenticationError("the token is malformed")
        # Checked before any key is looked up, so "none" and HS* fail the same way with any key set.
        if alg not in self._allowed:
            raise AuthenticationError("the token's signing algorithm is not allowed")
        return header

    def _decode(self, token: str, key: Any, algorithms: list[str]) -> dict[str, Any]:
        settings = self._settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=algorithms,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway_s,
                # Without a configured audience, "aud" is not checked (PyJWT would refuse any token carrying one).
                options={"require": self._require, "verify_aud": settings.jwt_audience is not None},
            )
        except jwt.MissingRequiredClaimError as error:
            raise AuthenticationError(f"the token has no {error.claim!r} claim") from None
        except jwt.PyJWTError as error:
            raise AuthenticationError(_reason(error)) from None
        except (ValueError, TypeError, OverflowError):
            # Claims of unexpected types that PyJWT does not wrap: still the caller's bad token, not INTERNAL.
            raise AuthenticationError("the token is malformed") from None
        return claims

    def _identity(self, claims: dict[str, Any]) -> Identity:
        settings = self._settings
        principal = resolve_claim(claims, settings.jwt_principal_claim)
        if principal is None or principal == "":
            raise AuthenticationError(f"the token has no {settings.jwt_principal_claim!r} claim")
        if not isinstance(principal, str):
            raise AuthenticationError(f"the token's {settings.jwt_principal_claim!r} claim is not a string")
        groups = resolve_claim(claims, settings.jwt_groups_claim)
        if groups is None:
            groups = []
        elif isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list) or not all(isinstance(group, str) for group in groups):
            raise AuthenticationError(
                f"the token's {settings.jwt_groups_claim!r} claim must be a string or a list of strings"
            )
        namespace = None
        if settings.jwt_namespace_claim:
            namespace = resolve_claim(claims, settings.jwt_namespace_claim)
            if namespace is not None and not isinstance(namespace, str):
                raise AuthenticationError(f"the token's {settings.jwt_namespace_claim!r} claim is not a string")
        return Identity(
            principal=principal, groups=frozenset(groups), default_namespace=namespace or None, method="jwt"
        )


def _reason(error: Exception) -> str:
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "the token is not valid"
