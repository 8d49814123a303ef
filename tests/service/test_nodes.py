"""Node writes and reads: spec §2.3-§2.4, §3.2-§3.6, §4.4, §4.8."""

from __future__ import annotations

import base64
import math

import pytest
from google.protobuf import field_mask_pb2, struct_pb2

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from tests.conftest import FakeClock
from tests.service.helpers import (
    all_artifacts,
    all_contexts,
    get_artifact,
    get_context,
    get_execution,
    put_artifact_type,
    put_artifacts,
    put_context_type,
    put_contexts,
    put_execution_type,
    put_executions,
)


def artifact_type_with_properties(store: MetadataStore, name: str = "T") -> int:
    return put_artifact_type(store, name, p=mlmd.INT, s=mlmd.STRING, d=mlmd.DOUBLE)


def put_masked(store: MetadataStore, artifact: mlmd.Artifact, *paths: str) -> list[int]:
    request = svc.PutArtifactsRequest(artifacts=[artifact], update_mask=field_mask_pb2.FieldMask(paths=paths))
    return list(store.put_artifacts(request).artifact_ids)


def put_checked(store: MetadataStore, *artifacts: mlmd.Artifact) -> list[int]:
    request = svc.PutArtifactsRequest(artifacts=artifacts)
    request.options.abort_if_latest_updated_time_changed = True
    return list(store.put_artifacts(request).artifact_ids)


def full_artifact(type_id: int) -> mlmd.Artifact:
    artifact = mlmd.Artifact(
        type_id=type_id, name="a", uri="u1", external_id="x1", state=mlmd.Artifact.LIVE, properties={}
    )
    artifact.properties["p"].int_value = 1
    artifact.custom_properties["c"].int_value = 7
    return artifact


# -- creation errors (§3.2) ---------------------------------------------------------------


def test_put_artifacts_without_type_id_is_invalid_argument(store: MetadataStore) -> None:
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, mlmd.Artifact(uri="u"))
    with pytest.raises(errors.InvalidArgumentError):
        put_contexts(store, mlmd.Context(name="c"))


def test_put_nodes_unknown_type_id_is_not_found(store: MetadataStore) -> None:
    with pytest.raises(errors.NotFoundError):
        put_artifacts(store, mlmd.Artifact(type_id=99))
    with pytest.raises(errors.NotFoundError):
        put_executions(store, mlmd.Execution(type_id=99))
    with pytest.raises(errors.NotFoundError):
        put_contexts(store, mlmd.Context(type_id=99, name="c"))


def test_put_nodes_type_id_of_another_kind_is_not_found(store: MetadataStore) -> None:
    artifact_type = put_artifact_type(store)
    execution_type = put_execution_type(store)
    context_type = put_context_type(store)
    with pytest.raises(errors.NotFoundError):
        put_artifacts(store, mlmd.Artifact(type_id=execution_type))
    with pytest.raises(errors.NotFoundError):
        put_artifacts(store, mlmd.Artifact(type_id=5))  # system execution type mlmd.Train
    with pytest.raises(errors.NotFoundError):
        put_executions(store, mlmd.Execution(type_id=context_type))
    with pytest.raises(errors.NotFoundError):
        put_contexts(store, mlmd.Context(type_id=artifact_type, name="c"))


def test_put_artifacts_undeclared_property_is_invalid_argument(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    artifact = mlmd.Artifact(type_id=type_id)
    artifact.properties["nope"].int_value = 1
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, artifact)


@pytest.mark.parametrize(
    ("declared", "value"),
    [
        (mlmd.INT, mlmd.Value(string_value="1")),
        (mlmd.DOUBLE, mlmd.Value(int_value=1)),
        (mlmd.STRING, mlmd.Value(bool_value=True)),
        (mlmd.BOOLEAN, mlmd.Value()),
    ],
    ids=["int-given-string", "double-given-int", "string-given-bool", "bool-given-empty"],
)
def test_put_artifacts_mismatched_property_type_is_invalid_argument(
    store: MetadataStore, declared: mlmd.PropertyType.ValueType, value: mlmd.Value
) -> None:
    type_id = put_artifact_type(store, "T", x=declared)
    artifact = mlmd.Artifact(type_id=type_id)
    artifact.properties["x"].CopyFrom(value)
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, artifact)
    assert not all_artifacts(store)


def test_put_artifacts_empty_custom_property_value_is_invalid_argument(store: MetadataStore) -> None:
    # MLMD aborts the process here; we answer INVALID_ARGUMENT (spec §2.3, "may fix").
    type_id = put_artifact_type(store)
    artifact = mlmd.Artifact(type_id=type_id)
    artifact.custom_properties["empty"].SetInParent()
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, artifact)
    context = mlmd.Context(type_id=put_context_type(store), name="c")
    context.custom_properties["empty"].SetInParent()
    with pytest.raises(errors.InvalidArgumentError):
        put_contexts(store, context)


def test_put_contexts_without_name_is_invalid_argument(store: MetadataStore) -> None:
    type_id = put_context_type(store)
    with pytest.raises(errors.InvalidArgumentError):
        put_contexts(store, mlmd.Context(type_id=type_id))
    with pytest.raises(errors.InvalidArgumentError):
        put_contexts(store, mlmd.Context(type_id=type_id, name=""))
    assert not all_contexts(store)


def test_put_artifacts_property_added_by_type_evolution_is_accepted(store: MetadataStore) -> None:
    type_id = put_artifact_type(store, "T", p=mlmd.INT)
    with_p = mlmd.Artifact(type_id=type_id)
    with_p.properties["p"].int_value = 1
    put_artifacts(store, with_p)  # the type is now cached without q
    evolved = mlmd.ArtifactType(name="T", properties={"p": mlmd.INT, "q": mlmd.STRING})
    store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=evolved, can_add_fields=True))
    with_q = mlmd.Artifact(type_id=type_id)
    with_q.properties["q"].string_value = "new"
    [artifact_id] = put_artifacts(store, with_q)
    assert get_artifact(store, artifact_id).properties["q"].string_value == "new"


def test_put_artifacts_empty_list_is_ok_and_empty(store: MetadataStore) -> None:
    assert store.put_artifacts(svc.PutArtifactsRequest()) == svc.PutArtifactsResponse()


def test_put_artifacts_output_only_fields_are_ignored_on_create(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    artifact = mlmd.Artifact(
        type_id=type_id, type="Wrong", create_time_since_epoch=5, last_update_time_since_epoch=6, uri="u"
    )
    artifact.system_metadata.Pack(mlmd.Artifact(id=1))
    [artifact_id] = put_masked(store, artifact, "uri", "external_id")
    got = get_artifact(store, artifact_id)
    assert got.type == "Dataset"
    assert got.create_time_since_epoch == got.last_update_time_since_epoch > 6
    assert not got.HasField("system_metadata")


def test_put_artifacts_nodes_read_back_with_minimal_fields(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id))
    got = get_artifact(store, artifact_id)
    present = {field.name for field, _ in got.ListFields()}
    assert present == {"id", "type_id", "uri", "type", "create_time_since_epoch", "last_update_time_since_epoch"}
    assert got.uri == ""
    [execution_id] = put_executions(store, mlmd.Execution(type_id=put_execution_type(store)))
    execution = get_execution(store, execution_id)
    present = {field.name for field, _ in execution.ListFields()}
    assert present == {"id", "type_id", "type", "create_time_since_epoch", "last_update_time_since_epoch"}


def test_put_artifacts_state_unknown_is_stored_distinct_from_unset(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id, state=mlmd.Artifact.UNKNOWN))
    got = get_artifact(store, artifact_id)
    assert got.HasField("state") and got.state == mlmd.Artifact.UNKNOWN
    [execution_id] = put_executions(
        store, mlmd.Execution(type_id=put_execution_type(store), last_known_state=mlmd.Execution.CACHED)
    )
    assert get_execution(store, execution_id).last_known_state == mlmd.Execution.CACHED


# -- uniqueness (§2.9) ------------------------------------------------------------------------


def test_put_artifacts_duplicate_type_and_name_is_already_exists(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    put_artifacts(store, mlmd.Artifact(type_id=type_id, name="a"))
    with pytest.raises(errors.AlreadyExistsError):
        put_artifacts(store, mlmd.Artifact(type_id=type_id, name="a"))
    with pytest.raises(errors.AlreadyExistsError):
        put_artifacts(store, mlmd.Artifact(type_id=type_id, name="b"), mlmd.Artifact(type_id=type_id, name="b"))
    assert [a.name for a in all_artifacts(store)] == ["a"]


def test_put_artifacts_same_name_in_another_type_is_ok(store: MetadataStore) -> None:
    first = put_artifact_type(store, "A")
    second = put_artifact_type(store, "B")
    assert put_artifacts(store, mlmd.Artifact(type_id=first, name="n"), mlmd.Artifact(type_id=second, name="n")) == [
        1,
        2,
    ]


def test_put_artifacts_unset_names_never_collide(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    assert put_artifacts(store, mlmd.Artifact(type_id=type_id), mlmd.Artifact(type_id=type_id)) == [1, 2]
    assert put_artifacts(store, mlmd.Artifact(type_id=type_id)) == [3]


def test_put_artifacts_empty_name_collides_with_empty_name(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id, name=""))
    got = get_artifact(store, artifact_id)
    assert got.HasField("name") and got.name == ""
    with pytest.raises(errors.AlreadyExistsError):
        put_artifacts(store, mlmd.Artifact(type_id=type_id, name=""))


def test_put_executions_duplicate_type_and_name_is_already_exists(store: MetadataStore) -> None:
    type_id = put_execution_type(store)
    put_executions(store, mlmd.Execution(type_id=type_id, name="run"))
    with pytest.raises(errors.AlreadyExistsError):
        put_executions(store, mlmd.Execution(type_id=type_id, name="run"))


def test_put_contexts_duplicate_type_and_name_is_already_exists(store: MetadataStore) -> None:
    type_id = put_context_type(store)
    put_contexts(store, mlmd.Context(type_id=type_id, name="c"))
    with pytest.raises(errors.AlreadyExistsError):
        put_contexts(store, mlmd.Context(type_id=type_id, name="c"))


def test_put_nodes_duplicate_external_id_is_already_exists(store: MetadataStore) -> None:
    artifact_type = put_artifact_type(store)
    execution_type = put_execution_type(store)
    context_type = put_context_type(store)
    put_artifacts(store, mlmd.Artifact(type_id=artifact_type, external_id="x"))
    with pytest.raises(errors.AlreadyExistsError):
        put_artifacts(store, mlmd.Artifact(type_id=artifact_type, external_id="x"))
    # Each node table has its own external_id space.
    put_executions(store, mlmd.Execution(type_id=execution_type, external_id="x"))
    with pytest.raises(errors.AlreadyExistsError):
        put_executions(store, mlmd.Execution(type_id=execution_type, external_id="x"))
    put_contexts(store, mlmd.Context(type_id=context_type, name="c1", external_id="x"))
    with pytest.raises(errors.AlreadyExistsError):
        put_contexts(store, mlmd.Context(type_id=context_type, name="c2", external_id="x"))


def test_put_artifacts_empty_external_id_collides_with_empty_external_id(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id, external_id=""))
    assert get_artifact(store, artifact_id).HasField("external_id")
    with pytest.raises(errors.AlreadyExistsError):
        put_artifacts(store, mlmd.Artifact(type_id=type_id, external_id=""))


def test_put_artifacts_third_artifact_failing_creates_none(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    bad = mlmd.Artifact(type_id=type_id)
    bad.properties["p"].string_value = "not an int"
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, mlmd.Artifact(type_id=type_id, uri="1"), mlmd.Artifact(type_id=type_id, uri="2"), bad)
    with pytest.raises(errors.AlreadyExistsError):
        put_artifacts(
            store,
            mlmd.Artifact(type_id=type_id, name="x"),
            mlmd.Artifact(type_id=type_id, uri="2"),
            mlmd.Artifact(type_id=type_id, name="x"),
        )
    assert not all_artifacts(store)


def test_put_artifacts_failing_update_rolls_back_earlier_create(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, mlmd.Artifact(type_id=type_id, uri="new"), mlmd.Artifact(id=42, type_id=type_id))
    assert not all_artifacts(store)


# -- values (§2.3) -----------------------------------------------------------------------------


def test_put_artifacts_every_value_kind_round_trips(store: MetadataStore) -> None:
    type_id = put_artifact_type(
        store, "T", i=mlmd.INT, d=mlmd.DOUBLE, s=mlmd.STRING, st=mlmd.STRUCT, pr=mlmd.PROTO, b=mlmd.BOOLEAN
    )
    artifact = mlmd.Artifact(type_id=type_id)
    artifact.properties["i"].int_value = -(2**40)
    artifact.properties["d"].double_value = -2.5
    artifact.properties["s"].string_value = "héllo ✓"
    artifact.properties["st"].struct_value.update({"k": [1, "x", None, True], "n": {"deep": 1.5}})
    artifact.properties["pr"].proto_value.Pack(mlmd.Execution(id=5, name="packed"))
    artifact.properties["b"].bool_value = True
    artifact.custom_properties["i"].int_value = 0
    artifact.custom_properties["s"].string_value = ""
    artifact.custom_properties["b"].bool_value = False
    artifact.custom_properties["st"].struct_value.SetInParent()
    [artifact_id] = put_artifacts(store, artifact)
    got = get_artifact(store, artifact_id)
    assert got.properties == artifact.properties
    assert got.custom_properties == artifact.custom_properties
    for name in ("i", "s", "b"):
        assert got.custom_properties[name].WhichOneof("value") == artifact.custom_properties[name].WhichOneof("value")


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (0.123456789, 0.123457),
        (1e-10, 0.0),
        (2.5e-7, 0.0),
        (123456789.123456789, 123456789.123457),
        (1e20, 1e20),
        (1e300, 1e300),
        (-1.23456789, -1.234568),
    ],
)
def test_put_artifacts_double_is_rounded_like_printf_f(store: MetadataStore, written: float, read: float) -> None:
    type_id = put_artifact_type(store, "T", d=mlmd.DOUBLE)
    artifact = mlmd.Artifact(type_id=type_id)
    artifact.properties["d"].double_value = written
    artifact.custom_properties["d"].double_value = written
    [artifact_id] = put_artifacts(store, artifact)
    got = get_artifact(store, artifact_id)
    assert got.properties["d"].double_value == read
    assert got.custom_properties["d"].double_value == read


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_put_artifacts_non_finite_double_is_invalid_argument(store: MetadataStore, value: float) -> None:
    # MLMD fails with INTERNAL (the SQL text breaks); we reject it cleanly ("may fix").
    type_id = put_artifact_type(store)
    artifact = mlmd.Artifact(type_id=type_id)
    artifact.custom_properties["d"].double_value = value
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, artifact)
    assert not all_artifacts(store)


def test_put_artifacts_string_with_struct_prefix_reads_back_as_struct(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    struct = struct_pb2.Struct()
    struct.update({"a": "b"})
    artifact = mlmd.Artifact(type_id=type_id)
    artifact.custom_properties["empty"].string_value = "mlmd-struct::"
    encoded = base64.b64encode(struct.SerializeToString()).decode()
    artifact.custom_properties["encoded"].string_value = "mlmd-struct::" + encoded
    artifact.custom_properties["inner"].string_value = "not a prefix: mlmd-struct::"
    [artifact_id] = put_artifacts(store, artifact)
    got = get_artifact(store, artifact_id).custom_properties
    assert got["empty"].WhichOneof("value") == "struct_value"
    assert got["empty"].struct_value == struct_pb2.Struct()
    assert got["encoded"].struct_value == struct
    assert got["inner"].string_value == "not a prefix: mlmd-struct::"


def test_put_artifacts_undecodable_struct_prefixed_string_is_invalid_argument(store: MetadataStore) -> None:
    # Spec §2.3 allows rejecting at write time what would poison every later read.
    type_id = put_artifact_type(store)
    artifact = mlmd.Artifact(type_id=type_id)
    artifact.custom_properties["bad"].string_value = "mlmd-struct::%%% not base64"
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, artifact)


def test_put_artifacts_proto_value_without_type_url_is_invalid_argument(store: MetadataStore) -> None:
    # MLMD stores it and then fails every read with INTERNAL; we reject at write ("may fix").
    type_id = put_artifact_type(store)
    artifact = mlmd.Artifact(type_id=type_id)
    artifact.custom_properties["p"].proto_value.value = b"\x08\x01"
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, artifact)


def test_put_artifacts_same_name_property_and_custom_property_are_independent(store: MetadataStore) -> None:
    # MLMD's statements ignore the custom flag and corrupt such pairs (§3.5 quirk, "may fix").
    type_id = put_artifact_type(store, "T", p=mlmd.INT)
    artifact = mlmd.Artifact(type_id=type_id)
    artifact.properties["p"].int_value = 1
    artifact.custom_properties["p"].int_value = 7
    [artifact_id] = put_artifacts(store, artifact)
    artifact.id = artifact_id
    artifact.custom_properties["p"].int_value = 8
    put_artifacts(store, artifact)
    got = get_artifact(store, artifact_id)
    assert got.properties["p"].int_value == 1
    assert got.custom_properties["p"].int_value == 8
    del artifact.custom_properties["p"]
    put_artifacts(store, artifact)
    got = get_artifact(store, artifact_id)
    assert got.properties["p"].int_value == 1
    assert "p" not in got.custom_properties


# -- whole updates (§3.3) ------------------------------------------------------------------------


def test_put_artifacts_update_with_only_id_clears_fields_and_keeps_name(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    [artifact_id] = put_artifacts(store, full_artifact(type_id))
    assert put_artifacts(store, mlmd.Artifact(id=artifact_id)) == [artifact_id]
    got = get_artifact(store, artifact_id)
    assert got.name == "a"
    assert got.HasField("uri") and got.uri == ""
    assert not got.HasField("state")
    assert not got.HasField("external_id")
    assert not got.properties
    assert not got.custom_properties
    assert got.type_id == type_id


def test_put_artifacts_update_ignores_a_different_name(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id, name="a"))
    put_artifacts(store, mlmd.Artifact(id=artifact_id, name="renamed", uri="u"))
    got = get_artifact(store, artifact_id)
    assert (got.name, got.uri) == ("a", "u")
    [execution_id] = put_executions(store, mlmd.Execution(type_id=put_execution_type(store), name="e"))
    put_executions(store, mlmd.Execution(id=execution_id))
    assert get_execution(store, execution_id).name == "e"


def test_put_artifacts_update_replaces_properties(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    [artifact_id] = put_artifacts(store, full_artifact(type_id))
    update = mlmd.Artifact(id=artifact_id, uri="u2")
    update.properties["s"].string_value = "new"
    update.custom_properties["c"].string_value = "changed kind"
    update.custom_properties["e"].bool_value = True
    put_artifacts(store, update)
    got = get_artifact(store, artifact_id)
    assert dict(got.properties) == {"s": mlmd.Value(string_value="new")}
    assert dict(got.custom_properties) == {
        "c": mlmd.Value(string_value="changed kind"),
        "e": mlmd.Value(bool_value=True),
    }


def test_put_executions_update_clears_last_known_state_and_external_id(store: MetadataStore) -> None:
    type_id = put_execution_type(store)
    execution = mlmd.Execution(type_id=type_id, last_known_state=mlmd.Execution.RUNNING, external_id="x")
    [execution_id] = put_executions(store, execution)
    put_executions(store, mlmd.Execution(id=execution_id, type_id=type_id))
    got = get_execution(store, execution_id)
    assert not got.HasField("last_known_state")
    assert not got.HasField("external_id")


def test_put_contexts_update_renames_context(store: MetadataStore) -> None:
    type_id = put_context_type(store)
    [context_id] = put_contexts(store, mlmd.Context(type_id=type_id, name="old", external_id="x"))
    put_contexts(store, mlmd.Context(id=context_id, name="new"))
    got = get_context(store, context_id)
    assert got.name == "new"
    assert not got.HasField("external_id")
    found = store.get_context_by_type_and_name(
        svc.GetContextByTypeAndNameRequest(type_name="Pipeline", context_name="new")
    )
    assert found.context.id == context_id


def test_put_contexts_update_without_name_is_invalid_argument(store: MetadataStore) -> None:
    type_id = put_context_type(store)
    [context_id] = put_contexts(store, mlmd.Context(type_id=type_id, name="c"))
    with pytest.raises(errors.InvalidArgumentError):
        put_contexts(store, mlmd.Context(id=context_id))
    with pytest.raises(errors.InvalidArgumentError):
        put_contexts(store, mlmd.Context(id=context_id, name=""))
    assert get_context(store, context_id).name == "c"


def test_put_nodes_update_of_unknown_id_is_invalid_argument(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, mlmd.Artifact(id=1, type_id=type_id))
    with pytest.raises(errors.InvalidArgumentError):
        put_executions(store, mlmd.Execution(id=1))
    with pytest.raises(errors.InvalidArgumentError):
        put_contexts(store, mlmd.Context(id=1, name="c"))


def test_put_artifacts_update_with_different_type_id_is_invalid_argument(store: MetadataStore) -> None:
    first = put_artifact_type(store, "A")
    second = put_artifact_type(store, "B")
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=first, uri="u"))
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, mlmd.Artifact(id=artifact_id, type_id=second))
    assert put_artifacts(store, mlmd.Artifact(id=artifact_id, type_id=first, uri="v")) == [artifact_id]
    assert get_artifact(store, artifact_id).type_id == first


def test_put_artifacts_update_validates_properties_against_stored_type(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id))
    update = mlmd.Artifact(id=artifact_id)
    update.properties["undeclared"].int_value = 1
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, update)
    update = mlmd.Artifact(id=artifact_id)
    update.properties["p"].double_value = 1.0
    with pytest.raises(errors.InvalidArgumentError):
        put_artifacts(store, update)


def test_put_artifacts_update_onto_taken_external_id_is_internal(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    put_artifacts(store, mlmd.Artifact(type_id=type_id, external_id="taken"))
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id, external_id="mine"))
    with pytest.raises(errors.InternalError):
        put_artifacts(store, mlmd.Artifact(id=artifact_id, external_id="taken"))
    assert get_artifact(store, artifact_id).external_id == "mine"


def test_put_contexts_rename_onto_existing_name_is_internal(store: MetadataStore) -> None:
    type_id = put_context_type(store)
    put_contexts(store, mlmd.Context(type_id=type_id, name="taken"))
    [context_id] = put_contexts(store, mlmd.Context(type_id=type_id, name="mine"))
    with pytest.raises(errors.InternalError):
        put_contexts(store, mlmd.Context(id=context_id, name="taken"))
    assert get_context(store, context_id).name == "mine"


def test_put_artifacts_same_id_twice_in_one_request_applies_both_in_order(store: MetadataStore) -> None:
    # Later items see the effects of earlier ones (§1.3).
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id))
    first = mlmd.Artifact(id=artifact_id, uri="first")
    first.custom_properties["c"].int_value = 1
    second = mlmd.Artifact(id=artifact_id, uri="second")
    second.custom_properties["c"].int_value = 2
    assert put_artifacts(store, first, second) == [artifact_id, artifact_id]
    got = get_artifact(store, artifact_id)
    assert got.uri == "second"
    assert got.custom_properties["c"].int_value == 2


# -- masked updates (§3.4) -----------------------------------------------------------------------


def test_put_artifacts_masked_update_spec_example_uri_and_one_custom_property(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    original = mlmd.Artifact(type_id=type_id, uri="u1", external_id="x1")
    original.custom_properties["c"].int_value = 1
    [artifact_id] = put_artifacts(store, original)
    update = mlmd.Artifact(id=artifact_id, uri="u3", external_id="x3")
    update.custom_properties["c"].string_value = "now string"
    update.custom_properties["d"].int_value = 1
    put_masked(store, update, "uri", "custom_properties.c")
    got = get_artifact(store, artifact_id)
    assert got.uri == "u3"
    assert got.external_id == "x1"
    assert dict(got.custom_properties) == {"c": mlmd.Value(string_value="now string")}


def test_put_artifacts_masked_update_listed_custom_property_absent_deletes_it(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    original = mlmd.Artifact(type_id=type_id, uri="u1")
    original.custom_properties["c"].int_value = 1
    original.custom_properties["keep"].int_value = 2
    [artifact_id] = put_artifacts(store, original)
    put_masked(store, mlmd.Artifact(id=artifact_id), "custom_properties.c")
    got = get_artifact(store, artifact_id)
    assert dict(got.custom_properties) == {"keep": mlmd.Value(int_value=2)}
    assert got.uri == "u1"


def test_put_artifacts_masked_update_ignores_invalid_unlisted_properties(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    original = mlmd.Artifact(type_id=type_id, uri="u1")
    original.properties["p"].int_value = 5
    [artifact_id] = put_artifacts(store, original)
    update = mlmd.Artifact(id=artifact_id)
    update.properties["p"].string_value = "bad"
    update.properties["undeclared"].int_value = 1
    put_masked(store, update, "uri")
    got = get_artifact(store, artifact_id)
    assert got.uri == ""
    assert got.properties["p"].int_value == 5


def test_put_artifacts_masked_update_validates_listed_properties(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id))
    update = mlmd.Artifact(id=artifact_id)
    update.properties["p"].string_value = "bad"
    with pytest.raises(errors.InvalidArgumentError):
        put_masked(store, update, "properties.p")
    with pytest.raises(errors.InvalidArgumentError):
        put_masked(store, update, "properties")
    update = mlmd.Artifact(id=artifact_id)
    update.properties["undeclared"].int_value = 1
    with pytest.raises(errors.InvalidArgumentError):
        put_masked(store, update, "properties.undeclared")


def test_put_artifacts_masked_whole_properties_path_overrides_named_paths(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    original = mlmd.Artifact(type_id=type_id)
    original.properties["p"].int_value = 1
    original.properties["s"].string_value = "s"
    [artifact_id] = put_artifacts(store, original)
    update = mlmd.Artifact(id=artifact_id)
    update.properties["d"].double_value = 2.5
    put_masked(store, update, "properties.p", "properties")
    got = get_artifact(store, artifact_id)
    assert dict(got.properties) == {"d": mlmd.Value(double_value=2.5)}


def test_put_artifacts_masked_named_property_updates_only_that_property(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    original = mlmd.Artifact(type_id=type_id)
    original.properties["p"].int_value = 1
    original.properties["s"].string_value = "s"
    [artifact_id] = put_artifacts(store, original)
    update = mlmd.Artifact(id=artifact_id)
    update.properties["p"].int_value = 2
    update.properties["d"].double_value = 3.0
    put_masked(store, update, "properties.p")
    got = get_artifact(store, artifact_id)
    assert dict(got.properties) == {"p": mlmd.Value(int_value=2), "s": mlmd.Value(string_value="s")}


def test_put_artifacts_masked_whole_custom_properties_path_replaces_the_map(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    original = mlmd.Artifact(type_id=type_id, uri="u")
    original.properties["p"].int_value = 1
    original.custom_properties["a"].int_value = 1
    original.custom_properties["b"].int_value = 2
    [artifact_id] = put_artifacts(store, original)
    update = mlmd.Artifact(id=artifact_id)
    update.custom_properties["b"].string_value = "two"
    update.custom_properties["c"].bool_value = True
    put_masked(store, update, "custom_properties", "custom_properties.a")
    got = get_artifact(store, artifact_id)
    assert dict(got.custom_properties) == {"b": mlmd.Value(string_value="two"), "c": mlmd.Value(bool_value=True)}
    assert got.properties["p"].int_value == 1
    assert got.uri == "u"


def test_put_artifacts_masked_absent_fields_are_cleared(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(
        store, mlmd.Artifact(type_id=type_id, uri="u", external_id="x", state=mlmd.Artifact.LIVE)
    )
    put_masked(store, mlmd.Artifact(id=artifact_id, uri="kept"), "state", "external_id", "uri")
    got = get_artifact(store, artifact_id)
    assert got.uri == "kept"
    assert not got.HasField("state")
    assert not got.HasField("external_id")


def test_put_artifacts_masked_unknown_and_output_only_paths_are_ignored(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id, name="n", uri="u"))
    update = mlmd.Artifact(id=artifact_id, name="other", uri="ignored")
    put_masked(store, update, "no_such_field", "name", "type_id", "id", "create_time_since_epoch")
    got = get_artifact(store, artifact_id)
    assert (got.name, got.uri, got.type_id) == ("n", "u", type_id)


def test_put_contexts_masked_name_absent_is_invalid_argument(store: MetadataStore) -> None:
    type_id = put_context_type(store)
    [context_id] = put_contexts(store, mlmd.Context(type_id=type_id, name="c"))
    request = svc.PutContextsRequest(
        contexts=[mlmd.Context(id=context_id)], update_mask=field_mask_pb2.FieldMask(paths=["name"])
    )
    with pytest.raises(errors.InvalidArgumentError):
        store.put_contexts(request)
    request.contexts[0].name = "renamed"
    store.put_contexts(request)
    assert get_context(store, context_id).name == "renamed"
    # Without `name` in the mask, a context update needs no name.
    request = svc.PutContextsRequest(
        contexts=[mlmd.Context(id=context_id, external_id="x")],
        update_mask=field_mask_pb2.FieldMask(paths=["external_id"]),
    )
    store.put_contexts(request)
    got = get_context(store, context_id)
    assert (got.name, got.external_id) == ("renamed", "x")


def test_put_artifacts_mask_is_ignored_for_creates(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [existing] = put_artifacts(store, mlmd.Artifact(type_id=type_id, uri="old", external_id="e"))
    new = mlmd.Artifact(type_id=type_id, uri="new", external_id="n")
    new.custom_properties["c"].int_value = 1
    ids = put_masked(store, mlmd.Artifact(id=existing, uri="changed"), "uri") + put_masked(store, new, "uri")
    assert ids == [existing, existing + 1]
    created = get_artifact(store, existing + 1)
    assert (created.uri, created.external_id, created.custom_properties["c"].int_value) == ("new", "n", 1)
    assert get_artifact(store, existing).external_id == "e"


def test_put_executions_masked_update_sets_last_known_state(store: MetadataStore) -> None:
    type_id = put_execution_type(store)
    [execution_id] = put_executions(store, mlmd.Execution(type_id=type_id, external_id="x"))
    request = svc.PutExecutionsRequest(
        executions=[mlmd.Execution(id=execution_id, last_known_state=mlmd.Execution.COMPLETE)],
        update_mask=field_mask_pb2.FieldMask(paths=["last_known_state"]),
    )
    store.put_executions(request)
    got = get_execution(store, execution_id)
    assert got.last_known_state == mlmd.Execution.COMPLETE
    assert got.external_id == "x"


# -- last_update_time_since_epoch (§3.6) ------------------------------------------------------


def test_put_artifacts_echoing_read_node_keeps_last_update_time(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    [artifact_id] = put_artifacts(store, full_artifact(type_id))
    before = get_artifact(store, artifact_id)
    put_artifacts(store, before)
    assert get_artifact(store, artifact_id) == before


def test_put_artifacts_update_without_type_field_moves_last_update_time(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    [artifact_id] = put_artifacts(store, full_artifact(type_id))
    before = get_artifact(store, artifact_id)
    echo = mlmd.Artifact()
    echo.CopyFrom(before)
    echo.ClearField("type")
    put_artifacts(store, echo)
    after = get_artifact(store, artifact_id)
    assert after.last_update_time_since_epoch > before.last_update_time_since_epoch
    assert after.create_time_since_epoch == before.create_time_since_epoch
    after.ClearField("last_update_time_since_epoch")
    before.ClearField("last_update_time_since_epoch")
    assert after == before


def test_put_artifacts_echo_with_changed_property_moves_last_update_time(store: MetadataStore) -> None:
    type_id = artifact_type_with_properties(store)
    [artifact_id] = put_artifacts(store, full_artifact(type_id))
    before = get_artifact(store, artifact_id)
    echo = mlmd.Artifact()
    echo.CopyFrom(before)
    echo.custom_properties["c"].int_value = 8
    put_artifacts(store, echo)
    after = get_artifact(store, artifact_id)
    assert after.last_update_time_since_epoch > before.last_update_time_since_epoch
    assert after.custom_properties["c"].int_value == 8


def test_put_artifacts_echo_with_different_name_moves_time_but_keeps_name(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id, name="a"))
    before = get_artifact(store, artifact_id)
    echo = mlmd.Artifact()
    echo.CopyFrom(before)
    echo.name = "b"
    put_artifacts(store, echo)
    after = get_artifact(store, artifact_id)
    assert after.name == "a"
    assert after.last_update_time_since_epoch > before.last_update_time_since_epoch


def test_put_artifacts_masked_update_compares_the_unmasked_request(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id, uri="u"))
    before = get_artifact(store, artifact_id)
    echo = mlmd.Artifact()
    echo.CopyFrom(before)
    put_masked(store, echo, "uri")
    assert get_artifact(store, artifact_id) == before
    echo.uri = "changed but not masked"
    put_masked(store, echo, "custom_properties.x")
    after = get_artifact(store, artifact_id)
    assert after.uri == "u"
    assert after.last_update_time_since_epoch > before.last_update_time_since_epoch


def test_put_contexts_echoing_read_context_keeps_last_update_time(store: MetadataStore) -> None:
    type_id = put_context_type(store)
    context = mlmd.Context(type_id=type_id, name="c")
    context.custom_properties["k"].string_value = "v"
    [context_id] = put_contexts(store, context)
    before = get_context(store, context_id)
    put_contexts(store, before)
    assert get_context(store, context_id) == before


# -- optimistic concurrency (§4.4) -------------------------------------------------------------


def test_put_artifacts_abort_if_changed_with_matching_time_updates_and_advances_time(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id, uri="u"))
    before = get_artifact(store, artifact_id)
    update = mlmd.Artifact(id=artifact_id, uri="v", last_update_time_since_epoch=before.last_update_time_since_epoch)
    assert put_checked(store, update) == [artifact_id]
    after = get_artifact(store, artifact_id)
    assert after.uri == "v"
    assert after.last_update_time_since_epoch > before.last_update_time_since_epoch


def test_put_artifacts_abort_if_changed_advances_time_even_when_the_clock_does_not(
    store: MetadataStore, clock: FakeClock
) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id, uri="u"))
    before = get_artifact(store, artifact_id)
    clock.now = before.last_update_time_since_epoch - 1000  # wall clock stepped back
    update = mlmd.Artifact(id=artifact_id, uri="v", last_update_time_since_epoch=before.last_update_time_since_epoch)
    put_checked(store, update)
    assert get_artifact(store, artifact_id).last_update_time_since_epoch > before.last_update_time_since_epoch


def test_put_artifacts_abort_if_changed_with_stale_time_is_failed_precondition(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id, uri="u"))
    stale = get_artifact(store, artifact_id).last_update_time_since_epoch
    put_artifacts(store, mlmd.Artifact(id=artifact_id, uri="concurrent"))
    update = mlmd.Artifact(id=artifact_id, uri="mine", last_update_time_since_epoch=stale)
    with pytest.raises(errors.FailedPreconditionError):
        put_checked(store, mlmd.Artifact(type_id=type_id, uri="created first"), update)
    assert [a.uri for a in all_artifacts(store)] == ["concurrent"]


def test_put_artifacts_abort_if_changed_without_time_compares_with_zero(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=type_id, uri="u"))
    with pytest.raises(errors.FailedPreconditionError):
        put_checked(store, mlmd.Artifact(id=artifact_id, uri="v"))
    assert get_artifact(store, artifact_id).uri == "u"


def test_put_artifacts_abort_if_changed_ignores_creates_and_unknown_ids_are_invalid(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    assert put_checked(store, mlmd.Artifact(type_id=type_id)) == [1]
    with pytest.raises(errors.InvalidArgumentError):
        put_checked(store, mlmd.Artifact(id=99, last_update_time_since_epoch=0))


# -- reads (§4.8) ------------------------------------------------------------------------------


def test_get_artifacts_by_id_deduplicates_and_orders_by_id(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    put_artifacts(store, *(mlmd.Artifact(type_id=type_id) for _ in range(4)))
    request = svc.GetArtifactsByIDRequest(artifact_ids=[3, 1, 3, 99])
    assert [a.id for a in store.get_artifacts_by_id(request).artifacts] == [1, 3]
    request = svc.GetArtifactsByIDRequest(artifact_ids=[4, 3, 1])
    assert [a.id for a in store.get_artifacts_by_id(request).artifacts] == [1, 3, 4]
    assert not store.get_artifacts_by_id(svc.GetArtifactsByIDRequest()).artifacts


def test_get_executions_and_contexts_by_id_deduplicate_and_order_by_id(store: MetadataStore) -> None:
    execution_type = put_execution_type(store)
    put_executions(store, mlmd.Execution(type_id=execution_type), mlmd.Execution(type_id=execution_type))
    context_type = put_context_type(store)
    put_contexts(store, mlmd.Context(type_id=context_type, name="a"), mlmd.Context(type_id=context_type, name="b"))
    executions = store.get_executions_by_id(svc.GetExecutionsByIDRequest(execution_ids=[2, 2, 1, 7])).executions
    assert [e.id for e in executions] == [1, 2]
    contexts = store.get_contexts_by_id(svc.GetContextsByIDRequest(context_ids=[2, 5, 1])).contexts
    assert [(c.id, c.name) for c in contexts] == [(1, "a"), (2, "b")]


def test_get_artifacts_by_id_populate_artifact_types_lists_each_type_once(store: MetadataStore) -> None:
    first = put_artifact_type(store, "A")
    second = put_artifact_type(store, "B")
    put_artifacts(
        store,
        mlmd.Artifact(type_id=second),
        mlmd.Artifact(type_id=first),
        mlmd.Artifact(type_id=second),
    )
    request = svc.GetArtifactsByIDRequest(artifact_ids=[3, 2, 1], populate_artifact_types=True)
    response = store.get_artifacts_by_id(request)
    assert [a.id for a in response.artifacts] == [1, 2, 3]
    assert [t.name for t in response.artifact_types] == ["B", "A"]
    without = store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[1]))
    assert not without.artifact_types


def test_get_artifacts_by_type_resolves_version_exactly(store: MetadataStore) -> None:
    unversioned = put_artifact_type(store, "T")
    versioned = store.put_artifact_type(
        svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="T", version="v1"))
    ).type_id
    put_artifacts(
        store,
        mlmd.Artifact(type_id=versioned, uri="v1"),
        mlmd.Artifact(type_id=unversioned, uri="plain"),
        mlmd.Artifact(type_id=versioned, uri="v1 again"),
    )

    def uris(version: str | None) -> list[str]:
        request = svc.GetArtifactsByTypeRequest(type_name="T")
        if version is not None:
            request.type_version = version
        return [a.uri for a in store.get_artifacts_by_type(request).artifacts]

    assert uris(None) == ["plain"]
    assert uris("") == ["plain"]
    assert uris("v1") == ["v1", "v1 again"]
    assert uris("v2") == []


def test_get_nodes_by_type_unknown_type_is_ok_and_empty(store: MetadataStore) -> None:
    put_artifact_type(store, "A")
    response = store.get_artifacts_by_type(svc.GetArtifactsByTypeRequest(type_name="missing"))
    assert response == svc.GetArtifactsByTypeResponse()
    executions = store.get_executions_by_type(svc.GetExecutionsByTypeRequest(type_name="A"))
    assert executions == svc.GetExecutionsByTypeResponse()
    contexts = store.get_contexts_by_type(svc.GetContextsByTypeRequest(type_name="A"))
    assert contexts == svc.GetContextsByTypeResponse()


def test_get_executions_and_contexts_by_type_return_that_type_only(store: MetadataStore) -> None:
    first = put_execution_type(store, "E1")
    second = put_execution_type(store, "E2")
    put_executions(store, mlmd.Execution(type_id=first), mlmd.Execution(type_id=second), mlmd.Execution(type_id=first))
    found = store.get_executions_by_type(svc.GetExecutionsByTypeRequest(type_name="E1")).executions
    assert [e.id for e in found] == [1, 3]
    context_type = put_context_type(store, "C")
    put_contexts(store, mlmd.Context(type_id=context_type, name="z"), mlmd.Context(type_id=context_type, name="a"))
    contexts = store.get_contexts_by_type(svc.GetContextsByTypeRequest(type_name="C")).contexts
    assert [c.name for c in contexts] == ["z", "a"]


def test_get_artifact_by_type_and_name_finds_exact_name(store: MetadataStore, backend: str) -> None:
    type_id = put_artifact_type(store, "T")
    put_artifacts(store, mlmd.Artifact(type_id=type_id, name="a", uri="named"))
    put_artifacts(store, mlmd.Artifact(type_id=type_id, name="", uri="empty name"))
    put_artifacts(store, mlmd.Artifact(type_id=type_id, uri="unnamed"))

    def find(type_name: str, name: str) -> svc.GetArtifactByTypeAndNameResponse:
        request = svc.GetArtifactByTypeAndNameRequest(type_name=type_name, artifact_name=name)
        return store.get_artifact_by_type_and_name(request)

    assert find("T", "a").artifact.uri == "named"
    assert find("T", "").artifact.uri == "empty name"
    if backend != "mysql":  # MySQL's default collation compares case-insensitively (§8.5)
        assert not find("T", "A").HasField("artifact")
    assert not find("missing", "a").HasField("artifact")


def test_get_execution_and_context_by_type_and_name_absent_when_not_found(store: MetadataStore) -> None:
    execution_type = put_execution_type(store, "E")
    put_executions(store, mlmd.Execution(type_id=execution_type, name="run"))
    found = store.get_execution_by_type_and_name(
        svc.GetExecutionByTypeAndNameRequest(type_name="E", execution_name="run")
    )
    assert found.execution.name == "run"
    missing = store.get_execution_by_type_and_name(
        svc.GetExecutionByTypeAndNameRequest(type_name="E", type_version="v1", execution_name="run")
    )
    assert not missing.HasField("execution")
    context = store.get_context_by_type_and_name(svc.GetContextByTypeAndNameRequest(type_name="E", context_name="run"))
    assert not context.HasField("context")


def test_get_artifacts_by_uri_deduplicates_and_groups_in_first_occurrence_order(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    put_artifacts(
        store,
        mlmd.Artifact(type_id=type_id, uri="a"),
        mlmd.Artifact(type_id=type_id, uri="b"),
        mlmd.Artifact(type_id=type_id, uri="a"),
        mlmd.Artifact(type_id=type_id),
    )
    request = svc.GetArtifactsByURIRequest(uris=["b", "a", "b", "missing"])
    assert [a.id for a in store.get_artifacts_by_uri(request).artifacts] == [2, 1, 3]
    request = svc.GetArtifactsByURIRequest(uris=["a", "", "b"])
    assert [a.id for a in store.get_artifacts_by_uri(request).artifacts] == [1, 3, 4, 2]
    assert not store.get_artifacts_by_uri(svc.GetArtifactsByURIRequest()).artifacts


def test_get_nodes_by_external_ids_returns_matches_in_id_order(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    put_artifacts(
        store,
        mlmd.Artifact(type_id=type_id, external_id="b"),
        mlmd.Artifact(type_id=type_id, external_id="a"),
        mlmd.Artifact(type_id=type_id),
    )
    request = svc.GetArtifactsByExternalIdsRequest(external_ids=["a", "missing", "b", "a"])
    assert [a.id for a in store.get_artifacts_by_external_ids(request).artifacts] == [1, 2]
    execution_type = put_execution_type(store)
    put_executions(store, mlmd.Execution(type_id=execution_type, external_id="e"))
    executions = store.get_executions_by_external_ids(svc.GetExecutionsByExternalIdsRequest(external_ids=["e"]))
    assert [e.external_id for e in executions.executions] == ["e"]
    context_type = put_context_type(store)
    put_contexts(store, mlmd.Context(type_id=context_type, name="c", external_id="e"))
    contexts = store.get_contexts_by_external_ids(svc.GetContextsByExternalIdsRequest(external_ids=["e", "z"]))
    assert [c.name for c in contexts.contexts] == ["c"]


def test_get_nodes_by_external_ids_empty_list_is_ok_and_empty(store: MetadataStore) -> None:
    assert not store.get_artifacts_by_external_ids(svc.GetArtifactsByExternalIdsRequest()).artifacts
    assert not store.get_contexts_by_external_ids(svc.GetContextsByExternalIdsRequest()).contexts


def test_get_nodes_by_external_ids_empty_string_is_invalid_argument(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    put_artifacts(store, mlmd.Artifact(type_id=type_id, external_id=""))
    with pytest.raises(errors.InvalidArgumentError):
        store.get_artifacts_by_external_ids(svc.GetArtifactsByExternalIdsRequest(external_ids=[""]))
    with pytest.raises(errors.InvalidArgumentError):
        store.get_executions_by_external_ids(svc.GetExecutionsByExternalIdsRequest(external_ids=["x", ""]))


def test_get_nodes_by_external_ids_nothing_found_is_not_found(store: MetadataStore) -> None:
    type_id = put_artifact_type(store)
    put_artifacts(store, mlmd.Artifact(type_id=type_id, external_id="a"))
    with pytest.raises(errors.NotFoundError):
        store.get_artifacts_by_external_ids(svc.GetArtifactsByExternalIdsRequest(external_ids=["zzz"]))
    with pytest.raises(errors.NotFoundError):
        store.get_executions_by_external_ids(svc.GetExecutionsByExternalIdsRequest(external_ids=["a"]))
    with pytest.raises(errors.NotFoundError):
        store.get_contexts_by_external_ids(svc.GetContextsByExternalIdsRequest(external_ids=["a"]))


def test_get_nodes_without_options_returns_everything_in_id_order(store: MetadataStore) -> None:
    artifact_type = put_artifact_type(store)
    put_artifacts(store, *(mlmd.Artifact(type_id=artifact_type, uri=str(i)) for i in range(25)))
    response = store.get_artifacts(svc.GetArtifactsRequest())
    assert [a.id for a in response.artifacts] == list(range(1, 26))
    assert not response.HasField("next_page_token")
    execution_type = put_execution_type(store)
    put_executions(store, mlmd.Execution(type_id=execution_type), mlmd.Execution(type_id=execution_type))
    assert [e.id for e in store.get_executions(svc.GetExecutionsRequest()).executions] == [1, 2]
    context_type = put_context_type(store)
    put_contexts(store, mlmd.Context(type_id=context_type, name="b"), mlmd.Context(type_id=context_type, name="a"))
    assert [c.name for c in all_contexts(store)] == ["b", "a"]


def test_get_nodes_in_empty_store_is_ok_and_empty(store: MetadataStore) -> None:
    assert store.get_artifacts(svc.GetArtifactsRequest()) == svc.GetArtifactsResponse()
    assert store.get_executions(svc.GetExecutionsRequest()) == svc.GetExecutionsResponse()
    assert store.get_contexts(svc.GetContextsRequest()) == svc.GetContextsResponse()
