"""Authorization: roles bound to principals and groups per namespace, from a TOML file.

    # Cluster-wide administrators: every namespace, types, namespace administration.
    cluster_admins = ["alice", "group:platform"]
    # Who may create and change types (shared by all namespaces): "admin" or "editor".
    type_writers = "admin"

    [namespaces.team-a]
    viewer = ["group:analysts"]
    editor = ["group:team-a", "system:serviceaccount:team-a:pipeline"]
    admin = ["bob"]

    [namespaces."*"]            # every namespace, present and future
    viewer = ["group:auditors"]

    [namespaces.team-b]
    editor = ["group:team-b"]
    "secrets:read" = ["group:team-b-leads"]   # sensitive property values in clear

    [defaults]                  # a call without x-lineagedb-namespace acts here
    "system:serviceaccount:team-a:pipeline" = "team-a"
    "group:team-a" = "team-a"

A subject is a principal name, or `group:NAME`. Roles nest: admin > editor > viewer.
Anything the file does not grant is denied; a file that does not parse, or names an
unknown key, role or namespace shape, is refused as a whole.

`secrets:read` is a grant beside the roles, never implied by one (not even by
cluster_admins): with encryption at rest on, it lets its subjects read the sensitive
property values of the nodes they can read in that namespace in clear; everyone else
gets them redacted (store.sensitive). Administering the store and reading its secrets
are different jobs.
"""

from __future__ import annotations

import enum
import functools
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lineagedb.security.identity import Identity
from lineagedb.store.tenancy import DEFAULT_NAMESPACE, NAMESPACE_PATTERN

ALL_NAMESPACES = "*"
GROUP_PREFIX = "group:"
SECRETS_READ = "secrets:read"


class PolicyError(Exception):
    """The policy file cannot be used; the message says where and why."""


class Role(enum.IntEnum):
    VIEWER = 1
    EDITOR = 2
    ADMIN = 3

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise PolicyError(
                f"unknown role {name!r}; roles are viewer, editor and admin (and the grant {SECRETS_READ!r})"
            ) from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Grants:
    """What one identity may do, derived from the policy (and cached per identity)."""

    principal: str
    cluster_admin: bool
    roles: Mapping[str, Role]  # namespace (or "*") -> highest role
    default_namespace: str | None
    type_writer_role: Role
    # Namespaces where sensitive values read in clear (secrets:read); None = every namespace.
    secrets_readable: frozenset[str] | None = frozenset()

    def role_in(self, namespace: str) -> Role | None:
        if self.cluster_admin:
            return Role.ADMIN
        roles = [r for r in (self.roles.get(namespace), self.roles.get(ALL_NAMESPACES)) if r is not None]
        return max(roles) if roles else None

    def _namespaces_with(self, role: Role) -> frozenset[str] | None:
        """Namespaces where the role is at least `role`; None = every namespace."""
        if self.cluster_admin or self.roles.get(ALL_NAMESPACES, 0) >= role:
            return None
        return frozenset(ns for ns, granted in self.roles.items() if granted >= role)

    @functools.cached_property
    def readable(self) -> frozenset[str] | None:
        return self._namespaces_with(Role.VIEWER)

    @functools.cached_property
    def writable(self) -> frozenset[str] | None:
        return self._namespaces_with(Role.EDITOR)

    def may_write_types(self, namespace: str) -> bool:
        role = self.role_in(namespace)
        return role is not None and role >= self.type_writer_role

    def acting_namespace(self, requested: str | None, claimed: str | None) -> str:
        """The namespace a call acts in: asked for, else from the token, else the
        policy's default, else the one namespace the identity has a role in."""
        if requested:
            return requested
        if claimed:
            return claimed
        if self.default_namespace:
            return self.default_namespace
        named = [ns for ns in self.roles if ns != ALL_NAMESPACES]
        return named[0] if len(named) == 1 else DEFAULT_NAMESPACE


@dataclass(frozen=True, eq=False)  # hashed by identity: grants are cached per loaded policy
class Policy:
    cluster_admins: frozenset[str] = frozenset()
    type_writers: Role = Role.ADMIN
    # namespace -> role -> subjects
    bindings: Mapping[str, Mapping[Role, frozenset[str]]] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)
    # From --auth-anonymous ROLE@NAMESPACE: what a call without credentials gets.
    anonymous: tuple[Role, str] | None = None
    # namespace (or "*") -> subjects granted secrets:read there
    secret_readers: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def grants(self, identity: Identity) -> Grants:
        subjects = {identity.principal, *(GROUP_PREFIX + group for group in sorted(identity.groups))}
        if identity.method == "anonymous":
            subjects = set()
        roles: dict[str, Role] = {}
        for namespace, by_role in self.bindings.items():
            for role, bound in by_role.items():
                if bound & subjects and role > roles.get(namespace, 0):
                    roles[namespace] = role
        if identity.method == "anonymous" and self.anonymous is not None:
            role, namespace = self.anonymous
            roles[namespace] = max(role, roles.get(namespace, role))
        default = self.defaults.get(identity.principal)
        if default is None:
            default = next((self.defaults[s] for s in sorted(subjects) if s in self.defaults), None)
        secrets = {namespace for namespace, bound in self.secret_readers.items() if bound & subjects}
        return Grants(
            principal=identity.principal,
            cluster_admin=bool(self.cluster_admins & subjects),
            roles=roles,
            default_namespace=default,
            type_writer_role=self.type_writers,
            secrets_readable=None if ALL_NAMESPACES in secrets else frozenset(secrets),
        )

    def subjects(self) -> list[str]:
        """Every subject the policy names, for `lineagedb authz check`."""
        named = set(self.cluster_admins) | set(self.defaults)
        for by_role in self.bindings.values():
            for bound in by_role.values():
                named |= bound
        for bound in self.secret_readers.values():
            named |= bound
        return sorted(named)


def load_policy(path: str | Path, anonymous: tuple[str, str] | None = None) -> Policy:
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise PolicyError(f"cannot read the policy file {path}: {error.strerror or error}") from error
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise PolicyError(f"the policy file {path} is not valid TOML: {error}") from error
    try:
        return parse_policy(document, anonymous)
    except PolicyError as error:
        raise PolicyError(f"the policy file {path}: {error}") from error


def parse_policy(document: Mapping[str, Any], anonymous: tuple[str, str] | None = None) -> Policy:
    unknown = set(document) - {"cluster_admins", "type_writers", "namespaces", "defaults"}
    if unknown:
        raise PolicyError(f"unknown key(s) {', '.join(sorted(unknown))}")
    type_writers = Role.named(_text(document.get("type_writers", "admin"), "type_writers"))
    if type_writers is Role.VIEWER:
        raise PolicyError("type_writers must be editor or admin")
    bindings: dict[str, dict[Role, frozenset[str]]] = {}
    secret_readers: dict[str, frozenset[str]] = {}
    namespaces = document.get("namespaces", {})
    if not isinstance(namespaces, dict):
        raise PolicyError("[namespaces] must be a table of namespaces")
    for namespace, by_role in namespaces.items():
        _check_namespace(namespace, allow_all=True)
        if not isinstance(by_role, dict):
            raise PolicyError(f"[namespaces.{namespace}] must be a table of roles")
        bindings[namespace] = {
            Role.named(role): _subjects(subjects, f"namespaces.{namespace}.{role}")
            for role, subjects in by_role.items()
            if role != SECRETS_READ
        }
        if SECRETS_READ in by_role:
            secret_readers[namespace] = _subjects(by_role[SECRETS_READ], f'namespaces.{namespace}."{SECRETS_READ}"')
    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict):
        raise PolicyError("[defaults] must map subjects to namespaces")
    for subject, namespace in defaults.items():
        _check_subject(subject, "defaults")
        _check_namespace(_text(namespace, f"defaults.{subject}"), allow_all=False)
    anonymous_grant = None
    if anonymous is not None:
        _check_namespace(anonymous[1], allow_all=False)
        anonymous_grant = (Role.named(anonymous[0]), anonymous[1])
    return Policy(
        cluster_admins=_subjects(document.get("cluster_admins", []), "cluster_admins"),
        type_writers=type_writers,
        bindings=bindings,
        defaults=dict(defaults),
        anonymous=anonymous_grant,
        secret_readers=secret_readers,
    )


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise PolicyError(f"{where} must be a string")
    return value


def _subjects(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list):
        raise PolicyError(f"{where} must be a list of principals and group:NAME entries")
    return frozenset(_check_subject(subject, where) for subject in value)


def _check_subject(subject: Any, where: str) -> str:
    if not isinstance(subject, str) or not subject.strip() or subject != subject.strip() or subject == GROUP_PREFIX:
        raise PolicyError(f"{where}: {subject!r} is not a principal or group:NAME")
    return subject


def _check_namespace(name: str, allow_all: bool) -> None:
    if allow_all and name == ALL_NAMESPACES:
        return
    if NAMESPACE_PATTERN.fullmatch(name) is None:
        raise PolicyError(
            f"{name!r} is not a namespace name (1-63 lower-case letters, digits, '-', '_' or '.')"
            + (", or '*'" if allow_all else "")
        )


def describe(policy: Policy, extra_subjects: Iterable[str] = ()) -> list[str]:
    """Lines saying what each subject the policy names may do (`lineagedb authz check`)."""
    lines = [f"types are created and changed by: {policy.type_writers.label}s (and cluster admins)"]
    if policy.anonymous is not None:
        role, namespace = policy.anonymous
        lines.append(f"calls without credentials: {role.label} in {namespace}")
    for subject in sorted({*policy.subjects(), *extra_subjects}):
        if subject.startswith(GROUP_PREFIX):
            identity = Identity(principal="", groups=frozenset({subject[len(GROUP_PREFIX) :]}))
        else:
            identity = Identity(principal=subject)
        grants = policy.grants(identity)
        if grants.cluster_admin:
            scope = "cluster admin: everything in every namespace"
        elif grants.roles:
            scope = ", ".join(f"{role.label} in {ns}" for ns, role in sorted(grants.roles.items()))
        else:
            scope = "nothing"
        default = f"; acts in {grants.acting_namespace(None, None)} by default"
        lines.append(f"{subject}: {scope}{_secrets_scope(grants)}{default}")
    return lines


def _secrets_scope(grants: Grants) -> str:
    if grants.secrets_readable is None:
        return f"; {SECRETS_READ} in every namespace"
    if grants.secrets_readable:
        return f"; {SECRETS_READ} in {', '.join(sorted(grants.secrets_readable))}"
    return ""
