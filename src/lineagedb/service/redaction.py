"""Writes of nodes that were read with redacted values (encryption at rest, store.sensitive).

A caller without secrets:read gets a sensitive value as the string REDACTED. Clients
commonly read a node, change a field and write the whole node back (PutArtifacts with
the id replaces every property), so the marker comes back where the secret was. It must
not replace the secret: a written REDACTED for a property that is sensitive, or whose
stored value the caller sees redacted, means "keep what is stored". A new node has no
stored value to keep, so REDACTED for a sensitive property is refused there.

With encryption off nothing is redacted, and REDACTED is an ordinary string.
"""

from __future__ import annotations

from typing import Any

from lineagedb import errors
from lineagedb.store.codecs import REDACTED
from lineagedb.store.unit_of_work import UnitOfWork

_FIELDS = ((False, "properties"), (True, "custom_properties"))
# How the audit log shows a sensitive value (the JSON form of a Value holding REDACTED).
_REDACTED_JSON = {"string_value": REDACTED}


def is_marker(value: Any) -> bool:
    return bool(value.WhichOneof("value") == "string_value" and value.string_value == REDACTED)


def _sensitive(uow: UnitOfWork, type_id: int | None, name: str, is_custom: bool) -> bool:
    protection = uow.protection
    return protection is not None and protection.is_sensitive(uow, type_id, name, is_custom)


def _refusal(label: str, field: str, name: str) -> errors.InvalidArgumentError:
    return errors.InvalidArgumentError(
        f"{label} {field} {name!r} holds the redaction marker {REDACTED!r} but no value is stored to keep; "
        "write the real value"
    )


def refuse_markers(uow: UnitOfWork, label: str, node: Any) -> None:
    """A new node may not carry REDACTED for a sensitive property (nothing to keep)."""
    if uow.protection is None:
        return
    type_id = node.type_id if node.HasField("type_id") else None
    for is_custom, field in _FIELDS:
        for name, value in getattr(node, field).items():
            if is_marker(value) and _sensitive(uow, type_id, name, is_custom):
                raise _refusal(label, field, name)


def kept_values(uow: UnitOfWork, label: str, node: Any, stored: Any) -> frozenset[tuple[bool, str]]:
    """(is_custom, name) of the properties whose written REDACTED stands for the stored value.

    `stored` was read for this caller: a value it may not read in clear shows REDACTED
    there too (whatever the policy says today, so values encrypted under an older policy
    are kept as well)."""
    if uow.protection is None:
        return frozenset()
    kept = set()
    for is_custom, field in _FIELDS:
        current = getattr(stored, field)
        for name, value in getattr(node, field).items():
            if not is_marker(value):
                continue
            if name in current and (is_marker(current[name]) or _sensitive(uow, stored.type_id, name, is_custom)):
                kept.add((is_custom, name))
            elif _sensitive(uow, stored.type_id, name, is_custom):
                raise _refusal(label, field, name)
    return frozenset(kept)


def declared(kept: frozenset[tuple[bool, str]]) -> frozenset[str]:
    """The type-declared properties among `kept` (their type check is skipped: the marker is a string)."""
    return frozenset(name for is_custom, name in kept if not is_custom)


def redact_changes(
    uow: UnitOfWork, kind: str, node_id: int, type_id: int, changes: list[tuple[str, Any, Any]]
) -> list[tuple[str, Any, Any]]:
    """An update's (field, previous, new) for the audit log, with sensitive values redacted:
    the audit log must never hold what the database only holds encrypted. Sensitive is what
    the policy says now, and what was stored encrypted (under an older policy, perhaps)."""
    if uow.protection is None:
        return changes
    redacted = []
    for field_name, previous, new in changes:
        map_name, _, name = field_name.partition(".")
        is_custom = map_name == "custom_properties"
        if map_name in ("properties", "custom_properties") and (
            _sensitive(uow, type_id, name, is_custom)
            or (kind, node_id, is_custom, name) in uow.sealed_read
            or _REDACTED_JSON in (previous, new)
        ):
            previous = None if previous is None else _REDACTED_JSON
            new = None if new is None else _REDACTED_JSON
        redacted.append((field_name, previous, new))
    return redacted
