"""Admission of one call: who is calling, may they call this method, in which namespace.

The transport edge (lineagedb.api.auth) hands over the method's permission, the
`authorization` and `x-lineagedb-namespace` metadata and the TLS peer; this module
answers with the call's Tenancy (what the store lets it see and change) or raises
UnauthenticatedError / PermissionDeniedError. Nothing here knows gRPC.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lineagedb import errors
from lineagedb.security.authn import Authenticator
from lineagedb.security.identity import AuthenticationError, Identity
from lineagedb.security.policy import Grants, Policy, Role, load_policy
from lineagedb.security.settings import SecuritySettings
from lineagedb.store.audit_log import CURRENT_CALL, CallContext
from lineagedb.store.tenancy import DEFAULT_NAMESPACE, NAMESPACE_PATTERN, UNRESTRICTED, Tenancy

log = logging.getLogger(__name__)

PAGE_TOKEN_KEY_ENV = "LINEAGEDB_PAGE_TOKEN_KEY"
NO_CREDENTIALS = (
    "this server requires credentials: a bearer token ('authorization: Bearer <token>' metadata) "
    "or a client certificate"
)
# Stands for reflection: authenticated, but it reads no metadata.
NO_DATA = Tenancy(readable=frozenset(), writable=frozenset())


# Admissions remembered per loaded policy (see _State.admitted); past this many
# distinct (identity, permission, namespace) keys the memory starts over.
ADMITTED_CACHE_SIZE = 4096


@dataclass(frozen=True)
class _State:
    policy: Policy
    authenticator: Authenticator
    # (identity, permission, requested namespace) -> (acting namespace, Tenancy) of an
    # admitted call: what the policy decided depends on nothing else, and a reload
    # replaces the whole state, this memory with it.
    admitted: dict[tuple[Identity, str, str | None], tuple[str, Tenancy]] = field(default_factory=dict)


class AccessControl:
    """Authentication plus the policy, both reloadable (SIGHUP) without a restart."""

    def __init__(self, settings: SecuritySettings, page_token_secret: bytes | None = None) -> None:
        self.settings = settings
        self.enabled = settings.authentication_enabled or settings.anonymous is not None
        self._secret = page_token_secret or secrets.token_bytes(32)
        self._lock = threading.Lock()
        # Whether the database has the namespace tables (set once it is prepared).
        self.namespaces_available = True
        self._state = self._load() if self.enabled else None

    def _load(self) -> _State:
        if self.settings.authz_policy is None:
            raise errors.FailedPreconditionError("authentication needs an --authz-policy file")
        policy = load_policy(self.settings.authz_policy, self.settings.anonymous_grant)
        return _State(policy, Authenticator.from_settings(self.settings))

    def reload(self) -> None:
        """Re-read the policy, tokens and key files; on any error keep the old ones and raise."""
        if not self.enabled:
            return
        state = self._load()
        with self._lock:
            self._state = state
            self._grants.cache_clear()

    @property
    def policy(self) -> Policy | None:
        return self._state.policy if self._state is not None else None

    def admit(
        self,
        permission: str,
        authorization: str | None,
        requested_namespace: str | None,
        auth_context: Mapping[str, Sequence[bytes]],
        claimed_principal: str | None = None,
    ) -> Tenancy | None:
        """The call's Tenancy (None: a public method that reads nothing). `claimed_principal`:
        the user name of HTTP Basic credentials whose password is the token; it must be the
        principal the token names."""
        if requested_namespace is not None and NAMESPACE_PATTERN.fullmatch(requested_namespace) is None:
            raise errors.InvalidArgumentError(
                "x-lineagedb-namespace must be a namespace name (lower-case letters, digits, '-', '_', '.')"
            )
        if not self.enabled:
            if permission == "public" or not requested_namespace:
                return None
            if not self.namespaces_available and requested_namespace != DEFAULT_NAMESPACE:
                raise errors.FailedPreconditionError(
                    "namespaces need LineageDB's schema revision 0004; run `lineagedb db upgrade`"
                )
            return Tenancy(namespace=requested_namespace)  # authentication off: namespaces organize, not protect
        if permission == "public":
            return None
        state = self._state
        assert state is not None
        try:
            identity = state.authenticator.authenticate(authorization, auth_context)
        except AuthenticationError as error:
            raise errors.UnauthenticatedError(error.reason) from None
        if identity is None:
            if state.policy.anonymous is None:
                raise errors.UnauthenticatedError(NO_CREDENTIALS)
            identity = Identity(principal="anonymous", method="anonymous")
        if claimed_principal is not None and identity.principal != claimed_principal:
            raise errors.UnauthenticatedError("the user name is not the principal of the token given as the password")
        call = CURRENT_CALL.get()  # the audit record says who, refused or not
        if call is not None:
            call.principal = identity.principal
        if permission == "authenticated":
            return NO_DATA
        key = (identity, permission, requested_namespace)
        admitted = state.admitted.get(key)
        if admitted is None:
            admitted = self._decide(state, identity, permission, requested_namespace, call)
            if len(state.admitted) >= ADMITTED_CACHE_SIZE:
                state.admitted.clear()
            state.admitted[key] = admitted
        namespace, tenancy = admitted
        if call is not None:
            call.namespace = namespace
        return tenancy

    def _decide(
        self,
        state: _State,
        identity: Identity,
        permission: str,
        requested_namespace: str | None,
        call: CallContext | None,
    ) -> tuple[str, Tenancy]:
        """The acting namespace and Tenancy of an admitted call, or PermissionDeniedError.

        The same answer for the same identity, permission and requested namespace under
        one loaded policy, so `admit` keeps it: every call reuses one immutable Tenancy
        (its statement parameters computed once) instead of building one per call.
        Refusals are not kept; they are decided again on every call."""
        grants, page_token_key = self._grants(state.policy, identity)
        namespace = grants.acting_namespace(requested_namespace, identity.default_namespace)
        if call is not None:
            call.namespace = namespace  # a refused call's audit record names it too
        who = f"{identity.principal!r}"
        if permission == "read":
            if grants.readable is not None and not grants.readable:
                raise errors.PermissionDeniedError(f"{who} may not read any namespace")
            if requested_namespace and grants.role_in(requested_namespace) is None:
                raise errors.PermissionDeniedError(f"{who} may not read namespace {requested_namespace!r}")
        elif permission == "write":
            role = grants.role_in(namespace)
            if role is None or role < Role.EDITOR:
                raise errors.PermissionDeniedError(f"{who} may not write in namespace {namespace!r} (needs editor)")
        elif permission == "write_types":
            if not grants.may_write_types(namespace):
                raise errors.PermissionDeniedError(
                    f"{who} may not create or change types in namespace {namespace!r} "
                    f"(needs {grants.type_writer_role.label})"
                )
        elif permission == "admin":
            if not grants.cluster_admin:
                raise errors.PermissionDeniedError(f"{who} may not call this method (needs cluster_admins)")
            return namespace, Tenancy(namespace=namespace)
        else:
            raise errors.PermissionDeniedError(f"{who} may not call this method")
        tenancy = Tenancy(
            namespace=namespace,
            readable=grants.readable,
            writable=grants.writable,
            page_token_key=page_token_key,
            secrets_readable=grants.secrets_readable,  # encryption at rest: who reads sensitive values
        )
        return namespace, tenancy

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one AccessControl per server; cleared on reload
    def _grants(self, policy: Policy, identity: Identity) -> tuple[Grants, bytes]:
        grants = policy.grants(identity)
        readable = "*" if grants.readable is None else "\0".join(sorted(grants.readable))
        binding = f"{identity.principal}\n{readable}".encode()
        return grants, hmac.new(self._secret, binding, hashlib.sha256).digest()


def page_token_secret(settings: SecuritySettings, environ: Mapping[str, str]) -> bytes | None:
    """The secret page tokens are signed with: a file, or the environment; None = a random
    one per process (tokens then only work on the process that issued them)."""
    if settings.page_token_key_file:
        try:
            with open(settings.page_token_key_file, "rb") as handle:
                secret = handle.read().strip()
        except OSError as error:
            raise errors.FailedPreconditionError(
                f"cannot read the page token key file {settings.page_token_key_file}: {error.strerror or error}"
            ) from error
    else:
        secret = environ.get(PAGE_TOKEN_KEY_ENV, "").encode()
    if not secret:
        return None
    if len(secret) < 16:
        raise errors.FailedPreconditionError("the page token key must be at least 16 bytes")
    return secret


__all__ = ["DEFAULT_NAMESPACE", "UNRESTRICTED", "AccessControl", "page_token_secret"]
