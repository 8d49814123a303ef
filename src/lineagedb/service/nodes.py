"""Node write semantics: creation (§3.2), whole and masked updates (§3.3-§3.6).

`NodeWriter` processes a request's nodes in order. Consecutive creations are
validated together and written with one multi-row INSERT (plus one for their
properties); updates load every stored node they touch in one query first.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import field_mask_pb2, json_format

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service import access, redaction
from lineagedb.service.type_cache import TypeCache
from lineagedb.store.codecs import value_to_columns
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories.nodes import NodeKind, PropertyRow
from lineagedb.store.repositories.types import TypeRecord
from lineagedb.store.unit_of_work import UniqueViolation, UnitOfWork

Clock = Callable[[], int]

# Fields the §3.6 change detection ignores.
_IGNORED_FOR_CHANGE = (
    "type_id",
    "properties",
    "custom_properties",
    "create_time_since_epoch",
    "last_update_time_since_epoch",
)
_PROPERTY_TYPE_TO_CASE: dict[int, str] = {
    mlmd.INT: "int_value",
    mlmd.DOUBLE: "double_value",
    mlmd.STRING: "string_value",
    mlmd.STRUCT: "struct_value",
    mlmd.PROTO: "proto_value",
    mlmd.BOOLEAN: "bool_value",
}


class NameClash(errors.InternalError):
    """An update gave a node the name or external_id of another node of its type. MLMD answers
    INTERNAL there (spec §2.9), and so do MLMD's RPCs; services whose protocol has a code for it
    (MLflow's RESOURCE_ALREADY_EXISTS) catch this."""


@dataclass(frozen=True)
class UpdateOptions:
    mask: field_mask_pb2.FieldMask | None = None
    force_update_time: bool = False
    # PutArtifacts' optimistic concurrency: compare the request's timestamp.
    check_last_update_time: bool = False


def validate_properties(
    kind: NodeKind,
    node: Any,
    record: TypeRecord,
    only: set[str] | None = None,
    check_custom: bool = True,
    skip: frozenset[str] = frozenset(),
) -> str | None:
    """Check `node`'s properties against its type. Returns the name of a property
    the type does not declare (the caller may refresh a stale cached type and retry),
    raises InvalidArgumentError for every other problem. Properties in `skip` hold the
    redaction marker for a stored value they keep (service.redaction): not checked."""
    for name, value in node.properties.items():
        if (only is not None and name not in only) or name in skip:
            continue
        if name not in record.properties:
            return name
        expected = _PROPERTY_TYPE_TO_CASE.get(record.properties[name])
        if value.WhichOneof("value") != expected:
            # The leading words match MLMD's message; clients match on them.
            raise errors.InvalidArgumentError(
                f"Found unmatched property type: {name} ({kind.label} property must hold a {expected} value)"
            )
    if check_custom:
        for name, value in node.custom_properties.items():
            if value.WhichOneof("value") is None:
                raise errors.InvalidArgumentError(f"{kind.label} custom property {name!r} has no value set")
    return None


class NodeWriter:
    def __init__(self, uow: UnitOfWork, kind: NodeKind, types: TypeCache, clock: Clock) -> None:
        self.uow = uow
        self.kind = kind
        self.types = types
        self.clock = clock
        # Stored nodes this call may read but not change (namespaces it may not write).
        self.read_only: set[int] = set()

    # -- validation --------------------------------------------------------------

    def _type_of(self, type_id: int) -> TypeRecord | None:
        return self.types.get_many(self.uow, self.kind.type_kind, [type_id]).get(type_id)

    def check_new(self, nodes: Sequence[Any]) -> None:
        """Validate nodes to be created (§3.2 steps 1-4); raise the first problem."""
        failure = self.first_invalid(nodes)
        if failure is not None:
            raise failure[1]

    def first_invalid(self, nodes: Sequence[Any]) -> tuple[int, errors.LineageError] | None:
        """The position of the first node that cannot be created, and why (types loaded at once)."""
        records = self.types.get_many(
            self.uow, self.kind.type_kind, {node.type_id for node in nodes if node.HasField("type_id")}
        )
        for index, node in enumerate(nodes):
            try:
                if not node.HasField("type_id"):
                    raise errors.InvalidArgumentError(f"{self.kind.label} type_id is missing")
                record = records.get(node.type_id)
                if record is None:
                    raise errors.NotFoundError(f"no {self.kind.label} type with id {node.type_id}")
                redaction.refuse_markers(self.uow, self.kind.label, node)
                self._validate(node, record)
                if self.kind is NodeKind.CONTEXT and not node.name:
                    raise errors.InvalidArgumentError("context name must not be empty")
            except errors.LineageError as error:
                return index, error
        return None

    def _validate(
        self,
        node: Any,
        record: TypeRecord,
        only: set[str] | None = None,
        check_custom: bool = True,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        unknown = validate_properties(self.kind, node, record, only, check_custom, skip)
        if unknown is not None:
            fresh = self.types.get_many(self.uow, self.kind.type_kind, [record.id], refresh=True).get(record.id)
            if fresh is None or validate_properties(self.kind, node, fresh, only, check_custom, skip) is not None:
                raise errors.InvalidArgumentError(
                    f"Found unknown property: {unknown} (type {record.name!r} does not declare it)"
                )

    # -- writes ------------------------------------------------------------------

    def put(self, nodes: Sequence[Any], options: UpdateOptions = UpdateOptions()) -> list[int]:
        """Create nodes without id and update nodes with one, in request order."""
        updated = [node.id for node in nodes if node.HasField("id")]
        stored = self.load_stored(updated)
        repeated = {node_id for node_id, count in Counter(updated).items() if count > 1}
        ids: list[int] = []
        pending: list[Any] = []
        for node in nodes:
            if not node.HasField("id"):
                pending.append(node)
                continue
            ids.extend(self.create(pending))
            pending = []
            ids.append(self.update(node, stored.get(node.id), options))
            if node.id in repeated and node.id in stored:
                # A later item for the same id must see this update (spec §1.3).
                stored.update(self.load_stored([node.id]))
        ids.extend(self.create(pending))
        return ids

    def load_stored(self, ids: Any) -> dict[int, Any]:
        """The stored nodes among `ids` that this call may read (others read as missing)."""
        wanted = list(ids)
        if not wanted:
            return {}
        stored = {node.id: node for node in node_repo.load_by_ids(self.uow, self.kind, wanted)}
        self.read_only |= access.read_only(self.uow, self.kind.value, stored)
        return stored

    def create(self, nodes: Sequence[Any], validated: bool = False) -> list[int]:
        if not nodes:
            return []
        failure = None if validated else self.first_invalid(nodes)
        if failure is not None:
            # Errors surface in request order, as MLMD reports them: a unique clash of an
            # earlier node wins over a validation error of a later one.
            self._insert(nodes[: failure[0]])
            raise failure[1]
        return self._insert(nodes)

    def _insert(self, nodes: Sequence[Any]) -> list[int]:
        if not nodes:
            return []
        try:
            return node_repo.insert_nodes(self.uow, self.kind, nodes, self.clock())
        except UniqueViolation as error:
            raise errors.AlreadyExistsError(
                f"a {self.kind.label} with the same type and name, or the same external_id, already exists"
            ) from error

    def update(self, node: Any, stored: Any | None, options: UpdateOptions = UpdateOptions()) -> int:
        """Update one stored node from `node` (whole replacement or masked)."""
        label = self.kind.label
        if stored is None:
            raise errors.InvalidArgumentError(f"cannot find the given id {node.id} among stored {label}s")
        if stored.id in self.read_only:
            raise errors.PermissionDeniedError(f"you may read {label} {node.id} but not change it (its namespace)")
        if options.check_last_update_time:
            requested_time = node.last_update_time_since_epoch
            if requested_time != stored.last_update_time_since_epoch:
                raise errors.FailedPreconditionError(
                    f"{label} {node.id} was updated at {stored.last_update_time_since_epoch}, "
                    f"after the {requested_time} the request was based on"
                )
        if node.HasField("type_id") and node.type_id != stored.type_id:
            raise errors.InvalidArgumentError(
                f"{label} {node.id} has type_id {stored.type_id}; the request gives {node.type_id}"
            )
        record = self._type_of(stored.type_id)
        paths = list(options.mask.paths) if options.mask is not None else []
        scope = _MaskScope(paths)
        # Properties written back as the redaction marker keep their stored value.
        kept = redaction.kept_values(self.uow, label, node, stored)
        if record is not None:
            only = None if scope.all_properties else scope.properties
            self._validate(node, record, only=only, check_custom=not scope.masked, skip=redaction.declared(kept))
        if scope.masked:
            for name, value in node.custom_properties.items():
                if (scope.all_custom or name in scope.custom) and value.WhichOneof("value") is None:
                    raise errors.InvalidArgumentError(f"{label} custom property {name!r} has no value set")
        merged = self._merge(node, stored, scope)
        property_changes = self._write_properties(node, stored, scope, kept)
        if property_changes or options.force_update_time or _differs(node, stored):
            self._rewrite_row(merged, stored, options.check_last_update_time)
            if self.uow.changes is not None:
                changes = self._field_changes(merged, stored) + property_changes
                self.uow.changes.add_updated(self.kind.value, int(stored.id), changes)
        return int(stored.id)

    def _field_changes(self, merged: Any, stored: Any) -> list[tuple[str, Any, Any]]:
        """(field, previous, new) of the row fields an update changed, for the audit log."""
        before, after = node_repo.row_values(self.kind, stored), node_repo.row_values(self.kind, merged)
        if self.kind is NodeKind.CONTEXT:
            before["name"], after["name"] = stored.name, merged.name
        enum = _STATE_ENUMS.get(self.kind)
        changes = []
        for name, value in after.items():
            previous = before.get(name)
            if value != previous:
                if enum is not None and name in ("state", "last_known_state"):
                    previous, value = _enum_name(enum, previous), _enum_name(enum, value)
                changes.append((name, previous, value))
        return changes

    def _merge(self, node: Any, stored: Any, scope: _MaskScope) -> Any:
        """The node whose fields the row is written from."""
        if not scope.masked:
            merged = node
        else:
            merged = type(stored)()
            merged.CopyFrom(stored)
            for path in scope.fields:
                descriptor = merged.DESCRIPTOR.fields_by_name.get(path)
                if descriptor is None or descriptor.message_type is not None:
                    continue  # unknown paths and message fields are ignored
                if node.HasField(path):
                    setattr(merged, path, getattr(node, path))
                else:
                    merged.ClearField(path)
        if self.kind is NodeKind.CONTEXT and not merged.name:
            raise errors.InvalidArgumentError("context name must not be empty")
        return merged

    def _write_properties(
        self, node: Any, stored: Any, scope: _MaskScope, kept: frozenset[tuple[bool, str]] = frozenset()
    ) -> list[tuple[str, Any, Any]]:
        """Apply the §3.5 diff for both maps; returns what changed: (map.name, previous, new).
        `kept` properties (the redaction marker written back) stay as stored."""
        deletes: list[tuple[int, str, bool]] = []
        inserts: list[PropertyRow] = []
        changes: list[tuple[str, Any, Any]] = []
        for is_custom, field in ((False, "properties"), (True, "custom_properties")):
            wanted, current = getattr(node, field), getattr(stored, field)
            names = scope.names(is_custom, set(wanted) | set(current))
            for name in sorted(names):
                if (is_custom, name) in kept:
                    continue
                if name in wanted and name in current:
                    if wanted[name] == current[name]:
                        continue
                    deletes.append((stored.id, name, is_custom))
                    columns = value_to_columns(name, wanted[name])
                    inserts.append(PropertyRow(stored.id, name, is_custom, columns, stored.type_id))
                elif name in wanted:
                    columns = value_to_columns(name, wanted[name])
                    inserts.append(PropertyRow(stored.id, name, is_custom, columns, stored.type_id))
                elif name in current:
                    deletes.append((stored.id, name, is_custom))
                else:
                    continue
                if self.uow.changes is None:  # no audit log: only that something changed matters
                    changes.append((f"{field}.{name}", None, None))
                else:
                    changes.append((f"{field}.{name}", _value_json(current.get(name)), _value_json(wanted.get(name))))
        node_repo.delete_properties(self.uow, self.kind, deletes)
        node_repo.insert_properties(self.uow, self.kind, inserts)
        # The audit log gets sensitive values redacted, never in clear.
        return redaction.redact_changes(self.uow, self.kind.value, int(stored.id), stored.type_id, changes)

    def _rewrite_row(self, merged: Any, stored: Any, optimistic: bool) -> None:
        values = node_repo.row_values(self.kind, merged)
        if self.kind is NodeKind.CONTEXT:
            values["name"] = merged.name
        # Strictly increasing, so a concurrent optimistic writer always sees a change.
        values["last_update_time_since_epoch"] = max(self.clock(), stored.last_update_time_since_epoch + 1)
        expected = stored.last_update_time_since_epoch if optimistic else None
        try:
            updated = node_repo.update_row(self.uow, self.kind, stored.id, values, expected)
        except UniqueViolation as error:
            # MLMD reports unique clashes on the update path as INTERNAL (spec §2.9).
            raise NameClash(
                f"updating {self.kind.label} {stored.id} clashes with another {self.kind.label}'s name or external_id"
            ) from error
        if not updated:
            raise errors.FailedPreconditionError(
                f"{self.kind.label} {stored.id} was updated concurrently; read it again and retry"
            )


_STATE_ENUMS = {NodeKind.ARTIFACT: mlmd.Artifact.State, NodeKind.EXECUTION: mlmd.Execution.State}


def _enum_name(enum: Any, value: int | None) -> str | None:
    if value is None:
        return None
    try:
        return str(enum.Name(value))
    except ValueError:
        return str(value)


def _value_json(value: mlmd.Value | None) -> Any:
    """A property value as the audit log keeps it: {"<oneof field>": value}; None: absent.
    A proto_value stays packed (its type_url and base64 bytes): the server need not know
    the message type a client packed."""
    if value is None:
        return None
    which = value.WhichOneof("value")
    if which is None:
        return {}
    if which == "proto_value":
        packed = value.proto_value
        return {which: {"type_url": packed.type_url, "value": base64.b64encode(packed.value).decode()}}
    if which == "struct_value":
        return {which: json_format.MessageToDict(value.struct_value)}
    return {which: getattr(value, which)}


def _differs(node: Any, stored: Any) -> bool:
    """§3.6: does the request differ from the stored node outside the ignored fields?"""
    left, right = type(node)(), type(stored)()
    left.CopyFrom(node)
    right.CopyFrom(stored)
    for field in _IGNORED_FOR_CHANGE:
        left.ClearField(field)
        right.ClearField(field)
    return bool(left != right)


class _MaskScope:
    """The update mask, classified (spec §3.4)."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.masked = bool(paths)
        self.all_properties = not self.masked or "properties" in paths
        self.all_custom = not self.masked or "custom_properties" in paths
        self.properties = {p[len("properties.") :] for p in paths if p.startswith("properties.")}
        self.custom = {p[len("custom_properties.") :] for p in paths if p.startswith("custom_properties.")}
        self.fields = [p for p in paths if "." not in p and p not in ("properties", "custom_properties")]

    def names(self, is_custom: bool, candidates: set[str]) -> set[str]:
        if is_custom:
            return candidates if self.all_custom else self.custom
        return candidates if self.all_properties else self.properties
