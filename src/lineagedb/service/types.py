"""Type semantics: the upsert/evolution rules of spec §3.1 and the per-read field rules of §2.2."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.store.repositories import types as type_repo
from lineagedb.store.repositories.types import TypeRecord
from lineagedb.store.schema import ARTIFACT_KIND, CONTEXT_KIND, EXECUTION_KIND
from lineagedb.store.unit_of_work import Database, UniqueViolation, UnitOfWork

if TYPE_CHECKING:
    from lineagedb.service.type_cache import TypeCache

TypeMessage = mlmd.ArtifactType | mlmd.ExecutionType | mlmd.ContextType

KIND_MESSAGES: dict[int, type[Any]] = {
    ARTIFACT_KIND: mlmd.ArtifactType,
    EXECUTION_KIND: mlmd.ExecutionType,
    CONTEXT_KIND: mlmd.ContextType,
}
KIND_LABELS = {ARTIFACT_KIND: "artifact type", EXECUTION_KIND: "execution type", CONTEXT_KIND: "context type"}


def _base_type_names(message: type[Any]) -> dict[int, str]:
    """SystemDefinedBaseType number -> system type name, from the enum value options."""
    enum = message.DESCRIPTOR.enum_types_by_name["SystemDefinedBaseType"]
    extension = mlmd.system_type_extension
    return {value.number: value.GetOptions().Extensions[extension].type_name for value in enum.values}


BASE_TYPE_NAMES = {kind: _base_type_names(message) for kind, message in KIND_MESSAGES.items()}
BASE_TYPE_NUMBERS = {kind: {name: number for number, name in names.items()} for kind, names in BASE_TYPE_NAMES.items()}


@dataclass(frozen=True)
class TypeFields:
    """Which optional fields a read path returns (spec §2.2 table)."""

    external_id: bool = True
    base_type: bool = True
    io_types: bool = True


FULL = TypeFields()
LIST_ALL = TypeFields(external_id=False)
BY_EXTERNAL_ID = TypeFields(base_type=False, io_types=False)
LINEAGE = TypeFields(external_id=False, base_type=False)


def to_message(record: TypeRecord, fields: TypeFields = FULL) -> Any:
    message = KIND_MESSAGES[record.kind]()
    message.id = record.id
    message.name = record.name
    if record.version is not None:
        message.version = record.version
    if record.description is not None:
        message.description = record.description
    if fields.external_id and record.external_id is not None:
        message.external_id = record.external_id
    for name, data_type in record.properties.items():
        message.properties[name] = data_type
    if record.kind != CONTEXT_KIND:
        if fields.base_type and record.parent_type_names:
            number = BASE_TYPE_NUMBERS[record.kind].get(record.parent_type_names[0])
            if number is not None:
                message.base_type = number
        if fields.io_types and record.kind == EXECUTION_KIND:
            for field in ("input_type", "output_type"):
                text = getattr(record, field)
                if text:
                    json_format.Parse(text, getattr(message, field), ignore_unknown_fields=True)
    return message


def put_type(uow: UnitOfWork, kind: int, requested: Any, can_add_fields: bool, can_omit_fields: bool) -> int:
    """Create or evolve one type; returns its id (spec §3.1)."""
    return put_type_record(uow, kind, requested, can_add_fields, can_omit_fields).id


def put_type_record(
    uow: UnitOfWork, kind: int, requested: Any, can_add_fields: bool, can_omit_fields: bool, alone: bool = False
) -> TypeRecord:
    """Create or evolve one type; returns it as a read after this transaction would load it,
    so the caller can cache it without reading it back (a round trip on a server database).

    `alone`: the caller runs nothing else in this transaction (see type_repo.insert_if_absent)."""
    label = KIND_LABELS[kind]
    if not requested.name:
        raise errors.InvalidArgumentError(f"{label} name must not be empty")
    version = requested.version or None
    # No unique key covers a type's identity; serialize creators of the same type.
    lock_name = f"type/{kind}/{requested.name}/{version or ''}"
    direct = _insertable(uow, requested)
    locked = False
    if not direct or uow.dialect != "postgresql":  # PostgreSQL's lock goes with the INSERT
        # The transaction's first statement (store.locks.env_locked_exclusively_first).
        uow.lock(lock_name)
        locked = True
    if direct:
        new = _new_record(kind, requested, version)
        if type_repo.insert_if_absent(uow, new, lock_name, alone) is not None:
            return new
        if not locked:
            # PostgreSQL, the type exists. Re-putting it unchanged (a pipeline after a server
            # restart) writes nothing and needs no lock; anything else takes it (again, if the
            # statement above committed itself) and reads the type under it.
            stored = type_repo.by_name(uow, kind, requested.name, version)
            if stored is not None and is_noop_put(kind, stored, requested):
                return stored
            uow.lock(lock_name)
    stored = type_repo.by_name(uow, kind, requested.name, version)
    if stored is None:
        record = _create(uow, kind, requested, version)
    else:
        record = stored
        _evolve(uow, stored, requested, can_add_fields, can_omit_fields)
    if requested.HasField("base_type"):
        _link_base_type(uow, kind, record, requested.base_type, stored)
    return record


def unchanged_put_id(db: Database, cache: TypeCache, kind: int, requested: Any, can_omit_fields: bool) -> int | None:
    """The id of `requested`'s type when putting it again would change nothing and succeed,
    decided from the cache and at most one read; None: run the write path (put_type_record).

    Types are never deleted, a property's data type never changes and properties are only
    added, so a cached type is a subset of the stored one. A request declaring exactly the
    cached properties (is_noop_put) can then fail only because the stored type gained
    properties the request omits: with `can_omit_fields` that is allowed, so no read is
    needed at all (TFX re-puts its types this way on every component run); without it, an
    unchanged property count proves there are none.

    With the audit log on, None: a write RPC's record goes with a write transaction
    (store.audit_log), and a re-put is a write RPC like any other.
    """
    if db.audit is not None:
        return None
    cached = cache.by_identity(kind, requested.name, requested.version or None)
    if cached is None or not is_noop_put(kind, cached, requested):
        return None
    if can_omit_fields:
        return cached.id
    with db.transaction(write=False, single_statement=True) as uow:
        if type_repo.property_count(uow, cached.id) == len(cached.properties):
            return cached.id
    return None


def is_noop_put(kind: int, stored: TypeRecord, requested: Any) -> bool:
    """Would putting `requested` over `stored` change nothing and succeed?

    True when the request declares exactly the stored properties, sets no
    external_id, and names either no base type or the linked one. Pipelines re-put
    their types on every run, so this case is worth answering from the cache.
    """
    if requested.external_id or dict(requested.properties.items()) != stored.properties:
        return False
    if not requested.HasField("base_type"):
        return True
    linked = stored.parent_type_names[0] if stored.parent_type_names else None
    return requested.base_type != 0 and linked == BASE_TYPE_NAMES[kind][requested.base_type]


def _check_property_types(label: str, name: str, properties: Any) -> dict[str, int]:
    for prop, data_type in properties.items():
        if data_type == mlmd.UNKNOWN:
            raise errors.InvalidArgumentError(f"{label} {name!r}: property {prop!r} has type UNKNOWN")
    return dict(properties.items())


def _insertable(uow: UnitOfWork, requested: Any) -> bool:
    """Whether a new type can go in by type_repo.insert_if_absent: no external_id (its
    uniqueness decides the error), no base type (a link to a system type, read first), no
    property of type UNKNOWN (MLMD rejects it after writing the row, see _create)."""
    if requested.HasField("external_id") or requested.HasField("base_type"):
        return False
    if any(data_type == mlmd.UNKNOWN for data_type in requested.properties.values()):
        return False
    return type_repo.can_insert_if_absent(uow)


def _new_record(kind: int, requested: Any, version: str | None) -> TypeRecord:
    record = TypeRecord(
        id=0,
        kind=kind,
        name=requested.name,
        version=version,
        description=requested.description if requested.HasField("description") else None,
        external_id=requested.external_id if requested.HasField("external_id") else None,
        properties=dict(requested.properties.items()),
    )
    if kind == EXECUTION_KIND:
        record.input_type = _struct_json(requested, "input_type")
        record.output_type = _struct_json(requested, "output_type")
    return record


def _create(uow: UnitOfWork, kind: int, requested: Any, version: str | None) -> TypeRecord:
    label = KIND_LABELS[kind]
    if requested.HasField("external_id") and type_repo.by_external_ids(uow, kind, [requested.external_id]):
        raise errors.AlreadyExistsError(f"an {label} with external_id {requested.external_id!r} already exists")
    record = _new_record(kind, requested, version)
    try:
        # Like MLMD, write the row before checking property types: a rejected type then
        # uses up an id on every backend the same way.
        record.id = type_repo.insert(uow, replace(record, properties={}))
        type_repo.add_properties(uow, record.id, _check_property_types(label, requested.name, requested.properties))
        return record
    except UniqueViolation as error:
        # Only a type of another kind can hold this external_id; MLMD answers INTERNAL.
        raise errors.InternalError(
            f"a type of another kind already uses external_id {requested.external_id!r}"
        ) from error


def _struct_json(requested: Any, field: str) -> str | None:
    if not requested.HasField(field):
        return None
    as_dict = json_format.MessageToDict(getattr(requested, field))
    return json.dumps(as_dict, separators=(",", ":"))


def _evolve(uow: UnitOfWork, stored: TypeRecord, requested: Any, can_add: bool, can_omit: bool) -> None:
    label = KIND_LABELS[stored.kind]
    wanted = dict(requested.properties.items())
    for name, data_type in stored.properties.items():
        if name in wanted and wanted[name] != data_type:
            raise errors.AlreadyExistsError(
                f"{label} {stored.name!r}: property {name!r} is stored as {_type_name(data_type)}, "
                f"the request declares {_type_name(wanted[name])}"
            )
        if name not in wanted and not can_omit:
            raise errors.AlreadyExistsError(
                f"{label} {stored.name!r}: the request omits stored property {name!r}; set can_omit_fields"
            )
    added = {name: data_type for name, data_type in wanted.items() if name not in stored.properties}
    if added:
        if not can_add:
            raise errors.AlreadyExistsError(
                f"{label} {stored.name!r}: the request adds properties {sorted(added)}; set can_add_fields"
            )
        _check_property_types(label, stored.name, added)
        type_repo.add_properties(uow, stored.id, added)
        stored.properties.update(added)
    if requested.external_id:
        try:
            type_repo.set_external_id(uow, stored.id, requested.external_id)
            stored.external_id = requested.external_id
        except UniqueViolation as error:
            raise errors.InternalError(f"another type already uses external_id {requested.external_id!r}") from error


def _type_name(data_type: int) -> str:
    return mlmd.PropertyType.Name(data_type)  # type: ignore[arg-type]


def _link_base_type(uow: UnitOfWork, kind: int, record: TypeRecord, base_type: int, stored: TypeRecord | None) -> None:
    if base_type == 0:
        raise errors.UnimplementedError("removing a base_type (setting it to UNSET) is not supported")
    system_name = BASE_TYPE_NAMES[kind][base_type]
    current = stored.parent_type_names if stored is not None else []
    if current:
        if current[0] == system_name:
            return
        raise errors.UnimplementedError("changing the base_type of an existing type is not supported")
    system_type = type_repo.by_name(uow, kind, system_name, None)
    if system_type is None:
        raise errors.NotFoundError(f"system type {system_name!r} is missing from the database")
    type_repo.add_parent(uow, record.id, system_type.id)
    record.parent_type_names = [system_name]


def put_types(
    uow: UnitOfWork, requests: Sequence[tuple[int, Sequence[Any]]], can_add: bool, can_omit: bool
) -> list[list[int]]:
    return [[put_type(uow, kind, t, can_add, can_omit) for t in items] for kind, items in requests]
