"""Authentication and authorization settings: one frozen object, checked when built.

This module imports nothing from lineagedb (config.py imports it for Settings), so
invalid values raise ValueError; the command line turns that into ConfigurationError.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("viewer", "editor", "admin")
MTLS_IDENTITY_SOURCES = ("cn", "san-dns", "san-uri", "san-email")
# Asymmetric algorithms only: "none" would accept unsigned tokens, and an HS* key taken
# from a public key set lets anyone who can read that set forge tokens.
SUPPORTED_JWT_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
DEFAULT_JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA")


def parse_anonymous(raw: str) -> tuple[str, str]:
    """'ROLE@NAMESPACE' -> (role, namespace); ValueError saying what is wrong."""
    role, at, namespace = raw.strip().partition("@")
    if not at:
        raise ValueError(f"anonymous access must be ROLE@NAMESPACE (e.g. viewer@default), not {raw!r}")
    if role not in ROLES:
        raise ValueError(f"anonymous role must be one of {', '.join(ROLES)}, not {role!r}")
    if not namespace or any(ch.isspace() for ch in namespace) or "@" in namespace:
        raise ValueError(f"anonymous namespace must be a non-empty name without spaces or '@', not {namespace!r}")
    return role, namespace


@dataclass(frozen=True)
class SecuritySettings:
    # Static bearer tokens: a file of SHA-256 hashes (lineagedb.security.static_tokens).
    tokens_file: str | None = None
    # JWT bearer tokens: the JSON Web Key Set as a file path or an http(s) URL.
    jwt_jwks: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # Claim names may be dotted paths into nested objects (kubernetes.io.namespace).
    jwt_principal_claim: str = "sub"
    jwt_groups_claim: str = "groups"
    jwt_namespace_claim: str | None = None
    jwt_algorithms: tuple[str, ...] = DEFAULT_JWT_ALGORITHMS
    jwt_leeway_s: float = 30
    # Which part of a verified client certificate names the caller; None: certificates are not identities.
    mtls_identity: str | None = None
    # "ROLE@NAMESPACE" granted to calls without credentials; None: such calls are refused.
    anonymous: str | None = None
    # Authorization policy file (parsed by the policy module).
    authz_policy: str | None = None
    page_token_key_file: str | None = None
    # Encryption at rest of sensitive property values (security.encryption): the key file
    # (the keys may come from LINEAGEDB_ENCRYPTION_KEYS instead) and the policy file
    # saying which properties are sensitive (default patterns without one).
    encryption_keys_file: str | None = None
    sensitive_properties_file: str | None = None

    def __post_init__(self) -> None:
        if self.mtls_identity is not None and self.mtls_identity not in MTLS_IDENTITY_SOURCES:
            raise ValueError(
                f"the mTLS identity must be one of {', '.join(MTLS_IDENTITY_SOURCES)}, not {self.mtls_identity!r}"
            )
        if not self.jwt_algorithms:
            raise ValueError("at least one JWT algorithm must be allowed")
        refused = [name for name in self.jwt_algorithms if name not in SUPPORTED_JWT_ALGORITHMS]
        if refused:
            raise ValueError(
                f"JWT algorithms {', '.join(refused)} are not allowed; "
                f"choose from {', '.join(SUPPORTED_JWT_ALGORITHMS)} (never 'none' or HS*)"
            )
        if not self.jwt_leeway_s >= 0:  # also refuses NaN
            raise ValueError(f"the JWT leeway must be zero or more seconds, not {self.jwt_leeway_s}")
        for name in ("jwt_principal_claim", "jwt_groups_claim", "jwt_namespace_claim"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ValueError(f"{name} must not be empty")
        if self.anonymous is not None:
            parse_anonymous(self.anonymous)

    @property
    def authentication_enabled(self) -> bool:
        return bool(self.tokens_file or self.jwt_jwks or self.mtls_identity)

    @property
    def anonymous_grant(self) -> tuple[str, str] | None:
        """(role, namespace) for calls without credentials, or None."""
        return None if self.anonymous is None else parse_anonymous(self.anonymous)
