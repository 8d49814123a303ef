"""Sensitive property values: which ones are, sealing them on write, opening or redacting them on read.

One `PropertyProtection` per database (store.unit_of_work.Database hands it to every unit
of work); None when no encryption keys are configured, and then nothing here runs.

* Writes: every property row passes `repositories.nodes.insert_properties`, which calls
  `seal_rows`: a sensitive value becomes an envelope (store.encryption) in `string_value`
  before any statement sees it, so plaintext never reaches the database, a driver error
  text or a log line.
* Reads: every node read passes `repositories.nodes.hydrate`; codecs.fill_properties sets
  envelopes aside and `reveal` decrypts them for callers whose Tenancy lets them read
  secrets in the node's namespace, and puts the REDACTED marker in the others' place.
  Envelopes are recognised by their prefix, not by the policy, so a value encrypted
  under an older policy stays protected.
* Filters: `check_filter` refuses a filter_query naming a sensitive property: comparing
  ciphertext means nothing, and answering would let a caller guess a value one query at
  a time.

What is sensitive (`SensitivePolicy`): a property or custom property whose name matches
one of the patterns (shell-style, case-insensitive), a custom property whose name starts
with one of the custom prefixes, or a property named for its type.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from lineagedb import errors
from lineagedb.store import codecs, tenancy
from lineagedb.store.encryption import Keyring, SealError

log = logging.getLogger(__name__)

DEFAULT_PATTERNS: tuple[str, ...] = ("*password*", "*token*", "*secret*", "env.*")


@dataclass(frozen=True)
class SensitivePolicy:
    """Which properties are sensitive. Names compare case-insensitively."""

    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    custom_prefixes: tuple[str, ...] = ()
    # type name -> names of its properties (and custom properties) that are sensitive
    types: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @functools.cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        if not self.patterns:
            return None
        return re.compile("|".join(f"(?:{fnmatch.translate(p.lower())})" for p in self.patterns), re.DOTALL)

    @functools.cached_property
    def _by_type(self) -> dict[str, frozenset[str]]:
        return {type_name: frozenset(n.lower() for n in names) for type_name, names in self.types.items()}

    @functools.cached_property
    def _any_type_names(self) -> frozenset[str]:
        return frozenset(name for names in self._by_type.values() for name in names)

    @property
    def by_type(self) -> bool:
        """Whether a decision needs the owner's type name."""
        return bool(self.types)

    def _by_name(self, name: str, is_custom: bool) -> bool:
        lowered = name.lower()
        if self._pattern is not None and self._pattern.fullmatch(lowered):
            return True
        return is_custom and any(lowered.startswith(prefix.lower()) for prefix in self.custom_prefixes)

    def is_sensitive(self, type_name: str | None, name: str, is_custom: bool) -> bool:
        """Whether the property `name` of a node of type `type_name` is sensitive. An unknown
        type (None) counts as every type: fail closed."""
        if self._by_name(name, is_custom):
            return True
        if not self.types:
            return False
        lowered = name.lower()
        if type_name is None:
            return lowered in self._any_type_names
        return lowered in self._by_type.get(type_name, frozenset())

    def in_filter(self, name: str, is_custom: bool) -> bool:
        """Whether a filter may not name this property: sensitive for some type (the
        filter's nodes may be of any type, and MLMD lower-cases names in filters)."""
        return self.is_sensitive(None, name, is_custom)


def property_aad(kind: str, owner_id: int, is_custom: bool, name: str) -> bytes:
    """Associated data binding a ciphertext to its row: it decrypts only there."""
    return b"\0".join((b"lineagedb:property:v1", kind.encode(), str(owner_id).encode(), b"%d" % is_custom)) + (
        b"\0" + name.encode("utf-8")
    )


class PropertyProtection:
    """The sensitive-property policy and the keys, for one database."""

    def __init__(self, keyring: Keyring, policy: SensitivePolicy) -> None:
        self.keyring = keyring
        self.policy = policy
        # Type id -> name. Types are never renamed or deleted, so entries never go stale.
        self._type_names: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"PropertyProtection({self.keyring!r})"

    # -- writes ---------------------------------------------------------------------------------

    def seal_rows(self, uow: Any, kind: str, rows: Sequence[Any]) -> list[Any]:
        """`rows` (PropertyRow) with every sensitive value replaced by its envelope."""
        type_names = self._type_names_of(uow, kind, rows) if self.policy.by_type else {}
        sealed = []
        for row in rows:
            type_name = type_names.get(row.owner_id)
            if self.policy.is_sensitive(type_name, row.name, row.is_custom):
                aad = property_aad(kind, row.owner_id, row.is_custom, row.name)
                envelope = self.keyring.seal(codecs.sealed_plaintext(row.columns), aad)
                columns = dict.fromkeys(codecs.PROPERTY_VALUE_COLUMNS)
                columns["string_value"] = envelope
                row = replace(row, columns=columns)
            sealed.append(row)
        return sealed

    def is_sensitive(self, uow: Any, type_id: int | None, name: str, is_custom: bool) -> bool:
        """For the service layer's write rules (the REDACTED marker written back)."""
        type_name = self.type_name(uow, type_id) if type_id is not None and self.policy.by_type else None
        return self.policy.is_sensitive(type_name, name, is_custom)

    def type_name(self, uow: Any, type_id: int) -> str | None:
        if type_id not in self._type_names:
            self._load_type_names(uow, [type_id])
        return self._type_names.get(type_id)

    def _type_names_of(self, uow: Any, kind: str, rows: Sequence[Any]) -> dict[int, str | None]:
        owners_type: dict[int, int | None] = {row.owner_id: row.type_id for row in rows}
        unknown = [owner for owner, type_id in owners_type.items() if type_id is None]
        if unknown:  # rows built without their node's type: look it up (no current caller does)
            node = getattr(uow.schema, kind)
            found = uow.execute(sa.select(node.c.id, node.c.type_id).where(node.c.id.in_(unknown))).all()
            owners_type.update({int(owner): int(type_id) for owner, type_id in found})
        missing = {t for t in owners_type.values() if t is not None and t not in self._type_names}
        if missing:
            self._load_type_names(uow, missing)
        return {owner: self._type_names.get(t) if t is not None else None for owner, t in owners_type.items()}

    def _load_type_names(self, uow: Any, type_ids: Iterable[int]) -> None:
        t = uow.schema.type
        for type_id, name in uow.execute(sa.select(t.c.id, t.c.name).where(t.c.id.in_(list(type_ids)))).all():
            self._type_names[int(type_id)] = name

    # -- reads ----------------------------------------------------------------------------------

    def reveal(self, uow: Any, kind: str, sealed: Sequence[tuple[Any, bool, str, str]]) -> None:
        """Fill the Values codecs.fill_properties set aside: the plaintext where the call may
        read secrets in the node's namespace, REDACTED elsewhere (never decrypted there)."""
        allowed = _secret_readers(uow, kind, {node.id for node, _, _, _ in sealed})
        for node, is_custom, name, envelope in sealed:
            uow.sealed_read.add((kind, int(node.id), is_custom, name))
            target = (node.custom_properties if is_custom else node.properties)[name]
            if not allowed(node.id):
                target.string_value = codecs.REDACTED
                continue
            aad = property_aad(kind, node.id, is_custom, name)
            try:
                codecs.fill_from_plaintext(target, self.keyring.open(envelope, aad))
            except (SealError, ValueError) as error:
                # The reason names a key id at most; the value itself is never logged.
                log.error("%s %d property %r cannot be decrypted: %s", kind, node.id, name, error)
                raise errors.DataLossError(
                    f"{kind} {node.id}: the stored value of property {name!r} cannot be decrypted"
                ) from None

    # -- filters --------------------------------------------------------------------------------

    def check_filter(self, properties: Collection[tuple[bool, str]]) -> None:
        for is_custom, name in properties:
            if self.policy.in_filter(name, is_custom):
                prefix = "custom_properties" if is_custom else "properties"
                raise errors.InvalidArgumentError(
                    f"Invalid `filter_query`: {prefix}.{name} is a sensitive property (encrypted at rest); "
                    "it cannot be used in a filter"
                )


def _secret_readers(uow: Any, kind: str, ids: Collection[int]) -> Any:
    """A predicate on node ids: may this call read secrets of that node?"""
    readable = uow.tenancy.secrets_readable
    if readable is None:
        return lambda _node_id: True
    if not readable:
        return lambda _node_id: False
    namespaces = tenancy.namespaces_of(uow, kind, ids)
    return lambda node_id: namespaces.get(node_id, tenancy.DEFAULT_NAMESPACE) in readable


def reveal(uow: Any, kind: str, sealed: Sequence[tuple[Any, bool, str, str]]) -> None:
    """Envelopes found by a read: decrypt or redact them (see PropertyProtection.reveal)."""
    protection: PropertyProtection | None = uow.protection
    if protection is None:  # pragma: no cover - codecs only sets envelopes aside with a protection
        raise errors.InternalError("encrypted values found without encryption configured")
    protection.reveal(uow, kind, sealed)
