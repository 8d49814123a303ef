"""The result of authentication: who is calling, never how they proved it."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field


class AuthenticationError(Exception):
    """Credentials were missing, malformed, expired, revoked or not trusted.

    `reason` is shown to the caller (UNAUTHENTICATED) and logged: it must never
    contain the credential itself.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    principal: str
    groups: frozenset[str] = field(default_factory=frozenset)
    # From a token claim; the policy's default applies when None.
    default_namespace: str | None = None
    # "token" (static bearer token), "jwt", "mtls" or "anonymous".
    method: str = "token"

    # Hashed on every authenticated call (the key of the admission memory): the hash of
    # the same fields dataclass would hash, computed once per object. A __hash__ defined
    # here is kept by @dataclass; equality stays the generated field-by-field one.
    def __hash__(self) -> int:
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        return hash((self.principal, self.groups, self.default_namespace, self.method))
