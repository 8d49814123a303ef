"""Encryption at rest: a service-level store whose Database seals sensitive values, raw SQL over
the property tables, callers with and without secrets:read, and a sample of every value kind.

Most tests share one database per backend and module (`protected`; each test writes nodes
of its own), so the matrix of three backends stays fast; rotation and the startup checks
change the database's keys and get a database of their own (`fresh_protected`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import any_pb2, struct_pb2, wrappers_pb2

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.security.encryption import StaticKeyProvider
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import encryption
from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import create_engine
from lineagedb.store.schema import schema_for
from lineagedb.store.sensitive import PropertyProtection, SensitivePolicy
from lineagedb.store.tenancy import Tenancy
from lineagedb.store.unit_of_work import Database
from tests.backends import scratch_database
from tests.conftest import FakeClock
from tests.ops.conftest import mlmd_python  # noqa: F401 - the official client's interpreter (a fixture)

# A type whose declared property `dsn` is sensitive by the policy's [types] rule.
CONNECTION_TYPE = "enc.Connection"
POLICY = SensitivePolicy(custom_prefixes=("private.",), types={CONNECTION_TYPE: frozenset({"dsn"})})

READER = Tenancy(secrets_readable=None)  # secrets:read everywhere
VIEWER = Tenancy()  # what every call without secrets:read gets (and every call with auth off)


def new_keys(*ids: str) -> dict[str, bytes]:
    return {key_id: os.urandom(32) for key_id in ids}


def protection(keys: dict[str, bytes], active: str, policy: SensitivePolicy = POLICY) -> PropertyProtection:
    return PropertyProtection(encryption.Keyring(StaticKeyProvider(keys, active)), policy)


@dataclass
class Protected:
    """A database with encryption on, its store, and raw access to what it holds."""

    backend: str
    url: str
    database: Database
    keys: dict[str, bytes]
    store: MetadataStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = MetadataStore(self.database, clock=FakeClock())

    @property
    def engine(self) -> sa.Engine:
        return self.database.engine

    def use(self, active: str, keys: dict[str, bytes] | None = None) -> None:
        """Switch the server's key set (as a restart with another key file would)."""
        if keys is not None:
            self.keys = keys
        self.database.protection = protection(self.keys, active)

    def raw_rows(self, table: str = "artifact") -> list[tuple[Any, ...]]:
        """Every row of a property table, straight from the database."""
        schema = schema_for(self.engine.dialect.name)
        properties: sa.Table = getattr(schema, f"{table}_property")
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.select(properties))]

    def raw_values(self, table: str, owner_id: int) -> dict[tuple[bool, str], tuple[Any, ...]]:
        """(is_custom, name) -> (int, double, string, proto, bool) as stored, for one node."""
        schema = schema_for(self.engine.dialect.name)
        properties: sa.Table = getattr(schema, f"{table}_property")
        owner = properties.c[f"{table}_id"]
        columns = [properties.c[c] for c in ("int_value", "double_value", "string_value", "proto_value", "bool_value")]
        query = sa.select(properties.c.is_custom_property, properties.c.name, *columns).where(owner == owner_id)
        with self.engine.connect() as connection:
            return {(bool(row[0]), row[1]): tuple(row[2:]) for row in connection.execute(query)}


@contextmanager
def protected_database(backend: str, directory: str, active: str = "k1") -> Iterator[Protected]:
    with scratch_database(backend, directory) as url:
        engine = create_engine(url)
        prepare_database(engine, allow_upgrade=True)
        keys = new_keys(active)
        guard = protection(keys, active)
        encryption.check_database_keys(engine, guard.keyring, url)
        database = Database(engine, protection=guard)
        try:
            yield Protected(backend, url, database, keys)
        finally:
            database.dispose()


@pytest.fixture(scope="module")
def protected(module_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Protected]:
    """One encrypted database per backend for a module's tests (each writes its own nodes)."""
    with protected_database(module_backend, str(tmp_path_factory.mktemp("encryption"))) as built:
        yield built


@pytest.fixture
def fresh_protected(backend: str, tmp_path: Any) -> Iterator[Protected]:
    """An encrypted database of its own, for tests that change its keys."""
    with protected_database(backend, str(tmp_path)) as built:
        yield built


# -- a sample of every value kind -------------------------------------------------------------------


def proto_secret(text: str) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.StringValue(value=text))
    return packed


@dataclass(frozen=True)
class Sample:
    """A node written with sensitive values of every kind, and the secrets to look for in raw rows."""

    kind: str  # artifact | execution | context
    node_id: int
    written: Any  # the message as written (without id)
    secrets: tuple[str, ...]  # texts that must never appear in the database
    sensitive: frozenset[tuple[bool, str]]
    plain: frozenset[tuple[bool, str]]


def connection_type(store: MetadataStore) -> int:
    request = svc.PutArtifactTypeRequest(
        artifact_type=mlmd.ArtifactType(name=CONNECTION_TYPE, properties={"dsn": mlmd.STRING, "port": mlmd.INT})
    )
    return int(store.put_artifact_type(request).type_id)


def sample_artifact(store: MetadataStore) -> Sample:
    tag = uuid.uuid4().hex[:10]
    artifact = mlmd.Artifact(type_id=connection_type(store), uri=f"s3://enc/{tag}", name=f"conn-{tag}")
    artifact.external_id = f"ext-{tag}"
    artifact.properties["dsn"].string_value = f"postgresql://app:pw-{tag}@db/prod"  # by the [types] rule
    artifact.properties["port"].int_value = 5432  # not sensitive
    custom = artifact.custom_properties
    custom["db_password"].string_value = f"hunter2-{tag}"
    custom["API_TOKEN"].int_value = 918273645546372  # patterns match case-insensitively
    custom["secret_ratio"].double_value = 0.125
    custom["env.DEBUG"].bool_value = True
    custom["private.settings"].struct_value.update({"user": f"svc-{tag}", "retries": 3, "nested": {"k": [1, "x"]}})
    custom["client_secret_blob"].proto_value.CopyFrom(proto_secret(f"proto-secret-{tag}"))
    custom["note"].string_value = f"plain-note-{tag}"  # not sensitive
    artifact_id = store.put_artifacts(svc.PutArtifactsRequest(artifacts=[artifact])).artifact_ids[0]
    return Sample(
        kind="artifact",
        node_id=artifact_id,
        written=artifact,
        secrets=(
            f"pw-{tag}",
            f"hunter2-{tag}",
            "918273645546372",
            f"svc-{tag}",
            f"proto-secret-{tag}",
        ),
        sensitive=frozenset(
            {
                (False, "dsn"),
                (True, "db_password"),
                (True, "API_TOKEN"),
                (True, "secret_ratio"),
                (True, "env.DEBUG"),
                (True, "private.settings"),
                (True, "client_secret_blob"),
            }
        ),
        plain=frozenset({(False, "port"), (True, "note")}),
    )


def values(node: Any) -> dict[tuple[bool, str], mlmd.Value]:
    found = {(False, name): value for name, value in node.properties.items()}
    found.update({(True, name): value for name, value in node.custom_properties.items()})
    return found


def assert_plaintext(node: Any, sample: Sample) -> None:
    """Every property reads back exactly as written (kind and value)."""
    assert values(node) == values(sample.written)


def assert_redacted(node: Any, sample: Sample) -> None:
    """Sensitive values read as the marker; the others as written."""
    read, written = values(node), values(sample.written)
    assert set(read) == set(written)
    for key in sample.sensitive:
        assert read[key] == mlmd.Value(string_value="lineagedb:redacted"), key
    for key in sample.plain:
        assert read[key] == written[key], key


def struct_of(data: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct
