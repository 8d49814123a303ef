"""Values longer than MLMD's schema holds on PostgreSQL and MySQL/MariaDB (255 characters in
names, property names and external ids) are the caller's mistake: INVALID_ARGUMENT, nothing
stored, never INTERNAL; also when the INSERT travels with a later statement (MySQL's deferred
property rows, store.engine.defer)."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore

pytestmark = pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)

LONG = "n" * 300


def _artifact_count(store: MetadataStore) -> int:
    with store.db.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(store.db.schema.artifact)).scalar_one())


@pytest.mark.parametrize("field", ["name", "external_id", "custom_property_name"])
def test_a_value_longer_than_its_column_is_invalid_argument_and_stores_nothing(
    store: MetadataStore, field: str
) -> None:
    type_id = store.put_artifact_type(
        svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Data", properties={"split": mlmd.STRING}))
    ).type_id
    artifact = mlmd.Artifact(type_id=type_id, uri="s3://a")
    if field == "custom_property_name":
        artifact.custom_properties[LONG].string_value = "x"
    else:
        setattr(artifact, field, LONG)
    with pytest.raises(errors.InvalidArgumentError, match="longer than its database column"):
        store.put_artifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id), artifact]))
    assert _artifact_count(store) == 0
    # The store goes on working.
    assert store.put_artifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id)])).artifact_ids


def test_a_type_whose_property_name_is_too_long_is_invalid_argument(store: MetadataStore) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="longer than its database column"):
        store.put_artifact_type(
            svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Data", properties={LONG: mlmd.STRING}))
        )
    with pytest.raises(errors.NotFoundError):
        store.get_artifact_type(svc.GetArtifactTypeRequest(type_name="Data"))


def test_a_string_value_too_large_for_postgresqls_index_is_invalid_argument(store: MetadataStore) -> None:
    """PostgreSQL: MLMD's index of string property values holds ~2,700 bytes per entry after
    compression; a larger value that does not compress is refused as the caller's to fix,
    nothing stored. MySQL/MariaDB index the first 255 characters only and store it."""
    type_id = store.put_artifact_type(
        svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Data", properties={"config": mlmd.STRING}))
    ).type_id
    artifact = mlmd.Artifact(type_id=type_id, uri="s3://a")
    artifact.properties["config"].string_value = secrets.token_hex(4000)  # 8,000 characters, incompressible
    if store.db.engine.dialect.name != "postgresql":
        assert store.put_artifacts(svc.PutArtifactsRequest(artifacts=[artifact])).artifact_ids
        return
    with pytest.raises(errors.InvalidArgumentError, match="too large for the database's index"):
        store.put_artifacts(svc.PutArtifactsRequest(artifacts=[artifact]))
    assert _artifact_count(store) == 0
    artifact.properties["config"].string_value = "x" * 100_000  # compresses: indexed and stored
    assert store.put_artifacts(svc.PutArtifactsRequest(artifacts=[artifact])).artifact_ids
