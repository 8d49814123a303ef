"""MLMD schema version 10, expressed as SQLAlchemy Core tables for one dialect.

MLMD names its tables in CamelCase and quotes them on SQLite and MySQL, but uses
unquoted (hence lower-case) names on PostgreSQL. SQLAlchemy quotes any name with
upper-case letters, so we build one `MetaData` per dialect family: CamelCase for
SQLite/MySQL, lower-case for PostgreSQL. Everything else (columns, constraints,
index names) is shared.

Use `schema_for(dialect_name)`; it returns a cached `Schema` whose attributes are
the tables (`schema.artifact`, `schema.artifact_property`, ...). Column names are
identical on every backend.

Deliberate differences from MLMD's DDL (documented in the README):
* property `int_value` is BIGINT on MySQL/PostgreSQL (MLMD uses a 32-bit INT and
  so cannot store the int64 values its own protocol carries). MLMD reads the wider
  column unchanged; existing MLMD databases keep their INT column and still work.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.types import TypeDecorator, UserDefinedType

from lineagedb import errors

SCHEMA_VERSION = 10

# type_kind discriminator values stored in Type.type_kind.
EXECUTION_KIND = 0
ARTIFACT_KIND = 1
CONTEXT_KIND = 2


class _PassThroughBlob(UserDefinedType[bytes | str]):
    """A BLOB column whose values reach the driver untouched.

    MLMD stores `proto_value` as base64 *text* inside a BLOB column on SQLite and
    MySQL; SQLAlchemy's LargeBinary would coerce that text to bytes on the way in
    and out. `ProtoValue` does the encoding itself, per dialect.
    """

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **kw: object) -> str:
        return self.spec


class ProtoValue(TypeDecorator[bytes]):
    """Serialized `google.protobuf.Any` bytes, stored the way MLMD stores them.

    SQLite and MySQL: standard base64 text in a BLOB column. PostgreSQL: raw BYTEA
    (MLMD writes it with decode(..., 'base64')). Readers accept padding and line
    breaks, which PostgreSQL's encode() inserts.
    """

    impl = sa.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[object]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.BYTEA())  # type: ignore[arg-type]
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(_PassThroughBlob("MEDIUMBLOB"))  # type: ignore[arg-type]
        return dialect.type_descriptor(_PassThroughBlob("BLOB"))  # type: ignore[arg-type]

    def process_bind_param(self, value: bytes | None, dialect: sa.Dialect) -> object:
        if value is None or dialect.name == "postgresql":
            return value
        import base64

        return base64.b64encode(value).decode("ascii")

    def process_result_value(self, value: object, dialect: sa.Dialect) -> bytes | None:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return bytes(value)  # type: ignore[call-overload]
        import base64

        raw = value if isinstance(value, str) else bytes(value).decode("ascii")  # type: ignore[call-overload]
        return base64.b64decode("".join(raw.split()))


def _mysql_latin1_alphabet() -> str:
    """The 256 characters of MySQL's `latin1` (cp1252, with its five holes mapped to C1 controls)."""
    chars = []
    for byte in range(256):
        try:
            chars.append(bytes([byte]).decode("cp1252"))
        except UnicodeDecodeError:
            chars.append(chr(byte))
    return "".join(chars)


_LATIN1_ALPHABET = _mysql_latin1_alphabet()
_FROM_LATIN1 = {ord(char): byte for byte, char in enumerate(_LATIN1_ALPHABET)}


class MLMDText(TypeDecorator[str]):
    """Text stored exactly as MLMD stores it.

    MLMD's MySQL client talks to the server in `latin1`, so the UTF-8 bytes of its
    strings are taken as latin1 characters and converted again: a MySQL database
    written by MLMD holds "double-encoded" text (✓ is stored as 'âœ“'). To read
    such databases, and to write text MLMD reads back, LineageDB applies the same
    transformation on MySQL/MariaDB. ASCII, the common case, is untouched. On
    SQLite and PostgreSQL MLMD stores plain UTF-8 and so do we.

    `field_name` is how an error about a bound value names it to the client (the
    request field the column holds, e.g. "artifact uri").
    """

    impl = sa.Text
    cache_ok = True

    def __init__(self, length: int | None = None, medium: bool = False, field_name: str = "a text field") -> None:
        super().__init__()
        self.length = length
        self.medium = medium
        self.field_name = field_name

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[object]:
        if self.length is not None:
            return dialect.type_descriptor(sa.String(self.length))  # type: ignore[arg-type]
        if self.medium and dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.MEDIUMTEXT())  # type: ignore[arg-type]
        return dialect.type_descriptor(sa.Text())  # type: ignore[arg-type]

    # Results need no processing outside MySQL: these columns are read on every hot path.
    # Parameters are always checked (see _text_check), here because every value written
    # to or compared with a text column passes this one place, on every backend.
    def bind_processor(self, dialect: sa.Dialect) -> Any:
        checked = _text_check(self.field_name)
        if dialect.name in ("mysql", "mariadb"):
            transform = super().bind_processor(dialect)

            def checked_and_transformed(value: Any) -> Any:
                return transform(checked(value)) if transform is not None else checked(value)

            return checked_and_transformed
        return checked

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Any:
        return super().result_processor(dialect, coltype) if dialect.name in ("mysql", "mariadb") else None

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        if value is None or value.isascii() or dialect.name not in ("mysql", "mariadb"):
            return value
        return "".join(_LATIN1_ALPHABET[byte] for byte in value.encode("utf-8"))

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> str | None:
        if value is None or value.isascii() or dialect.name not in ("mysql", "mariadb"):
            return value
        try:
            return bytes(_FROM_LATIN1[ord(char)] for char in value).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            return value  # not MLMD's encoding (written by another tool): show it as stored


def _text_check(field_name: str) -> Callable[[Any], Any]:
    """The parameter check of a text column whose values are `field_name` to the client.

    * Invalid UTF-8: proto2 string fields are not UTF-8-validated when a request is parsed,
      so such text reaches us as bytes; stored, it would make every later read fail.
    * NUL (U+0000): PostgreSQL text cannot hold it (the driver refuses the statement, which
      was an INTERNAL error), SQLite and MySQL would store it, and MLMD keeps only the text
      before it. One answer on every backend instead: INVALID_ARGUMENT naming the field,
      for writes and for lookups alike (a value that cannot be stored matches nothing).
    """

    def checked(value: Any) -> Any:
        if isinstance(value, str):
            if "\x00" in value:
                raise errors.InvalidArgumentError(
                    f"{field_name} contains a NUL character (U+0000), which LineageDB does not store"
                )
        elif isinstance(value, bytes):
            raise errors.InvalidArgumentError(f"{field_name} is not valid UTF-8")
        return value

    return checked


def check_text(value: str, field_name: str) -> None:
    """The text column check, for a value a call may answer without binding it."""
    _text_check(field_name)(value)


def _id_column() -> sa.Column[int]:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


def _time_column(name: str) -> sa.Column[int]:
    # MLMD: INT on SQLite (64-bit there anyway), BIGINT on MySQL and PostgreSQL.
    return sa.Column(
        name,
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        nullable=False,
        server_default=sa.text("0"),
    )


def _flag_column(name: str) -> sa.Column[bool]:
    # TINYINT(1) on SQLite/MySQL (SQLAlchemy renders BOOL there), BOOLEAN on PostgreSQL.
    return sa.Column(name, sa.Boolean(create_constraint=False), nullable=False)


_INT_VALUE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


@dataclass(frozen=True)
class Schema:
    """The fifteen MLMD tables for one dialect family."""

    metadata: sa.MetaData
    type: sa.Table
    type_property: sa.Table
    parent_type: sa.Table
    artifact: sa.Table
    artifact_property: sa.Table
    execution: sa.Table
    execution_property: sa.Table
    context: sa.Table
    context_property: sa.Table
    event: sa.Table
    event_path: sa.Table
    association: sa.Table
    attribution: sa.Table
    parent_context: sa.Table
    mlmd_env: sa.Table


def _property_table(metadata: sa.MetaData, name: str, owner: str, prefix: str) -> sa.Table:
    table = sa.Table(
        name,
        metadata,
        sa.Column(owner, sa.Integer, nullable=False),
        sa.Column("name", MLMDText(255, field_name=f"{prefix} property name"), nullable=False),
        _flag_column("is_custom_property"),
        sa.Column("int_value", _INT_VALUE),
        sa.Column("double_value", sa.Double().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")),
        sa.Column("string_value", MLMDText(medium=True, field_name=f"{prefix} property string_value")),
        sa.Column(
            "byte_value",
            sa.LargeBinary()
            .with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")
            .with_variant(postgresql.BYTEA(), "postgresql"),
        ),
        sa.Column("proto_value", ProtoValue()),
        sa.Column("bool_value", sa.Boolean(create_constraint=False)),
        sa.PrimaryKeyConstraint(owner, "name", "is_custom_property"),
    )
    for kind in ("int", "double", "string"):
        column = table.c[f"{kind}_value"]
        sa.Index(
            f"idx_{prefix}_property_{kind}",
            table.c.name,
            table.c.is_custom_property,
            column,
            sqlite_where=column.isnot(None),
            mysql_length={"string_value": 255} if kind == "string" else None,
        )
    return table


def _node_table(metadata: sa.MetaData, name: str, prefix: str, lower_case: bool, *extra: sa.Column[object]) -> sa.Table:
    constraint_name = {"artifact": "UniqueArtifactTypeName", "execution": "UniqueExecutionTypeName"}.get(prefix)
    if constraint_name and lower_case:
        constraint_name = constraint_name.lower()
    name_nullable = prefix != "context"
    table = sa.Table(
        name,
        metadata,
        _id_column(),
        sa.Column("type_id", sa.Integer, nullable=False),
        *extra,
        sa.Column("name", MLMDText(255, field_name=f"{prefix} name"), nullable=name_nullable),
        sa.Column("external_id", MLMDText(255, field_name=f"{prefix} external_id"), unique=True),
        _time_column("create_time_since_epoch"),
        _time_column("last_update_time_since_epoch"),
        sa.UniqueConstraint("type_id", "name", name=constraint_name),
        sqlite_autoincrement=True,
    )
    sa.Index(f"idx_{prefix}_create_time_since_epoch", table.c.create_time_since_epoch)
    sa.Index(f"idx_{prefix}_last_update_time_since_epoch", table.c.last_update_time_since_epoch)
    sa.Index(f"idx_{prefix}_external_id", table.c.external_id)
    return table


def build_schema(lower_case_names: bool) -> Schema:
    """Build the tables; `lower_case_names` is True for PostgreSQL."""

    def n(name: str) -> str:
        return name.lower() if lower_case_names else name

    md = sa.MetaData()
    type_ = sa.Table(
        n("Type"),
        md,
        _id_column(),
        sa.Column("name", MLMDText(255, field_name="type name"), nullable=False),
        sa.Column("version", MLMDText(255, field_name="type version")),
        sa.Column(
            "type_kind",
            sa.SmallInteger().with_variant(mysql.TINYINT(1), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("description", MLMDText(field_name="type description")),
        sa.Column("input_type", MLMDText(field_name="execution type input_type")),
        sa.Column("output_type", MLMDText(field_name="execution type output_type")),
        sa.Column("external_id", MLMDText(255, field_name="type external_id"), unique=True),
        sqlite_autoincrement=True,
    )
    sa.Index("idx_type_name", type_.c.name)
    sa.Index("idx_type_external_id", type_.c.external_id)
    type_property = sa.Table(
        n("TypeProperty"),
        md,
        sa.Column("type_id", sa.Integer, nullable=False),
        sa.Column("name", MLMDText(255, field_name="type property name"), nullable=False),
        sa.Column("data_type", sa.Integer),
        sa.PrimaryKeyConstraint("type_id", "name"),
    )
    parent_type = sa.Table(
        n("ParentType"),
        md,
        sa.Column("type_id", sa.Integer, nullable=False),
        sa.Column("parent_type_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("type_id", "parent_type_id"),
    )
    artifact = _node_table(
        md,
        n("Artifact"),
        "artifact",
        lower_case_names,
        sa.Column("uri", MLMDText(field_name="artifact uri")),
        sa.Column("state", sa.Integer),
    )
    sa.Index("idx_artifact_uri", artifact.c.uri, mysql_length=255)
    execution = _node_table(
        md, n("Execution"), "execution", lower_case_names, sa.Column("last_known_state", sa.Integer)
    )
    context = _node_table(md, n("Context"), "context", lower_case_names)
    artifact_property = _property_table(md, n("ArtifactProperty"), "artifact_id", "artifact")
    execution_property = _property_table(md, n("ExecutionProperty"), "execution_id", "execution")
    context_property = _property_table(md, n("ContextProperty"), "context_id", "context")
    event = sa.Table(
        n("Event"),
        md,
        _id_column(),
        sa.Column("artifact_id", sa.Integer, nullable=False),
        sa.Column("execution_id", sa.Integer, nullable=False),
        sa.Column("type", sa.Integer, nullable=False),
        sa.Column("milliseconds_since_epoch", sa.BigInteger().with_variant(sa.Integer(), "sqlite")),
        sa.UniqueConstraint("artifact_id", "execution_id", "type", name=n("UniqueEvent")),
        sqlite_autoincrement=True,
    )
    sa.Index("idx_event_execution_id", event.c.execution_id)
    event_path = sa.Table(
        n("EventPath"),
        md,
        sa.Column("event_id", sa.Integer, nullable=False),
        _flag_column("is_index_step"),
        sa.Column("step_index", sa.Integer),
        sa.Column("step_key", MLMDText(field_name="event path step key")),
    )
    sa.Index("idx_eventpath_event_id", event_path.c.event_id)
    association = sa.Table(
        n("Association"),
        md,
        _id_column(),
        sa.Column("context_id", sa.Integer, nullable=False),
        sa.Column("execution_id", sa.Integer, nullable=False),
        sa.UniqueConstraint("context_id", "execution_id"),
        sqlite_autoincrement=True,
    )
    attribution = sa.Table(
        n("Attribution"),
        md,
        _id_column(),
        sa.Column("context_id", sa.Integer, nullable=False),
        sa.Column("artifact_id", sa.Integer, nullable=False),
        sa.UniqueConstraint("context_id", "artifact_id"),
        sqlite_autoincrement=True,
    )
    parent_context = sa.Table(
        n("ParentContext"),
        md,
        sa.Column("context_id", sa.Integer, nullable=False),
        sa.Column("parent_context_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("context_id", "parent_context_id"),
    )
    sa.Index("idx_parentcontext_parent_context_id", parent_context.c.parent_context_id)
    mlmd_env = sa.Table(
        n("MLMDEnv"),
        md,
        sa.Column("schema_version", sa.Integer, primary_key=True, autoincrement=False),
    )
    return Schema(
        metadata=md,
        type=type_,
        type_property=type_property,
        parent_type=parent_type,
        artifact=artifact,
        artifact_property=artifact_property,
        execution=execution,
        execution_property=execution_property,
        context=context,
        context_property=context_property,
        event=event,
        event_path=event_path,
        association=association,
        attribution=attribution,
        parent_context=parent_context,
        mlmd_env=mlmd_env,
    )


@functools.cache
def schema_for(dialect_name: str) -> Schema:
    """The schema for a SQLAlchemy dialect name ('sqlite', 'postgresql', 'mysql', 'mariadb')."""
    return build_schema(lower_case_names=dialect_name == "postgresql")
