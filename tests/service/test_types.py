"""Type writes and reads: spec §2.1-§2.2, §3.1, §4.2, §4.3."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from tests.service.helpers import (
    artifact_type,
    context_type,
    execution_type,
    put_artifact_type,
    put_artifacts,
    put_context_type,
    put_execution_type,
)

SYSTEM_ARTIFACT_TYPES = ["mlmd.Dataset", "mlmd.Model", "mlmd.Metrics", "mlmd.Statistics"]
SYSTEM_EXECUTION_TYPES = ["mlmd.Train", "mlmd.Transform", "mlmd.Process", "mlmd.Evaluate", "mlmd.Deploy"]


def put_type(store: MetadataStore, message: mlmd.ArtifactType, **flags: bool) -> int:
    request = svc.PutArtifactTypeRequest(artifact_type=message)
    for flag, value in flags.items():
        setattr(request, flag, value)
    return store.put_artifact_type(request).type_id


def get_type(store: MetadataStore, name: str, version: str | None = None) -> mlmd.ArtifactType:
    request = svc.GetArtifactTypeRequest(type_name=name)
    if version is not None:
        request.type_version = version
    return store.get_artifact_type(request).artifact_type


def artifact_types_by_id(store: MetadataStore, *ids: int) -> list[mlmd.ArtifactType]:
    return list(store.get_artifact_types_by_id(svc.GetArtifactTypesByIDRequest(type_ids=ids)).artifact_types)


def user_type_count(store: MetadataStore) -> int:
    return len(store.get_artifact_types(svc.GetArtifactTypesRequest()).artifact_types)


# -- system types (§2.1) ---------------------------------------------------------------


def test_fresh_store_system_types_have_ids_1_to_9(store: MetadataStore) -> None:
    artifacts = artifact_types_by_id(store, *range(1, 10))
    executions = store.get_execution_types_by_id(svc.GetExecutionTypesByIDRequest(type_ids=range(1, 10)))
    assert [(t.id, t.name) for t in artifacts] == list(zip(range(1, 5), SYSTEM_ARTIFACT_TYPES, strict=True))
    assert [(t.id, t.name) for t in executions.execution_types] == list(
        zip(range(5, 10), SYSTEM_EXECUTION_TYPES, strict=True)
    )
    dataset = artifacts[0]
    for field in ("version", "description", "external_id", "base_type"):
        assert not dataset.HasField(field)
    assert not dataset.properties


def test_put_artifact_type_in_fresh_store_gets_id_10(store: MetadataStore) -> None:
    assert put_artifact_type(store) == 10
    assert put_execution_type(store) == 11
    assert put_context_type(store) == 12


def test_get_artifact_and_execution_types_hide_system_types(store: MetadataStore) -> None:
    assert not store.get_artifact_types(svc.GetArtifactTypesRequest()).artifact_types
    assert not store.get_execution_types(svc.GetExecutionTypesRequest()).execution_types
    put_artifact_type(store, "Mine")
    put_execution_type(store, "MyRun")
    assert [t.name for t in store.get_artifact_types(svc.GetArtifactTypesRequest()).artifact_types] == ["Mine"]
    assert [t.name for t in store.get_execution_types(svc.GetExecutionTypesRequest()).execution_types] == ["MyRun"]


def test_get_artifact_types_user_type_with_a_system_name_of_another_kind_is_hidden(store: MetadataStore) -> None:
    # The filter is by name against all nine names, regardless of kind (§2.1).
    type_id = put_type(store, mlmd.ArtifactType(name="mlmd.Train"))
    assert type_id == 10
    assert not store.get_artifact_types(svc.GetArtifactTypesRequest()).artifact_types
    assert [t.id for t in artifact_types_by_id(store, type_id)] == [10]


def test_get_artifact_type_by_name_finds_system_type(store: MetadataStore) -> None:
    assert get_type(store, "mlmd.Model").id == 2
    response = store.get_execution_type(svc.GetExecutionTypeRequest(type_name="mlmd.Deploy"))
    assert response.execution_type.id == 9


def test_get_context_types_lists_every_context_type_in_id_order(store: MetadataStore) -> None:
    second = put_context_type(store, "B")
    first_versioned = store.put_context_type(
        svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="A", version="v1"))
    ).type_id
    types = store.get_context_types(svc.GetContextTypesRequest()).context_types
    assert [(t.id, t.name) for t in types] == [(second, "B"), (first_versioned, "A")]


def test_put_artifact_type_with_system_base_type_node_creation_works(store: MetadataStore) -> None:
    # Nodes may use a system type like any other type.
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=1, uri="u"))
    assert store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[artifact_id])).artifacts[0].type == (
        "mlmd.Dataset"
    )


# -- create and evolve (§3.1) ----------------------------------------------------------


def test_put_artifact_type_same_definition_returns_same_id(store: MetadataStore) -> None:
    first = put_artifact_type(store, "A", p=mlmd.INT)
    assert put_artifact_type(store, "A", p=mlmd.INT) == first
    assert user_type_count(store) == 1


def test_put_artifact_type_changing_property_type_is_already_exists(store: MetadataStore) -> None:
    put_artifact_type(store, "A", p=mlmd.INT)
    with pytest.raises(errors.AlreadyExistsError):
        put_type(store, artifact_type("A", p=mlmd.STRING), can_add_fields=True, can_omit_fields=True)
    assert get_type(store, "A").properties["p"] == mlmd.INT


def test_put_artifact_type_declaring_stored_property_as_unknown_is_already_exists(store: MetadataStore) -> None:
    put_artifact_type(store, "A", p=mlmd.INT)
    with pytest.raises(errors.AlreadyExistsError):
        put_type(store, artifact_type("A", p=mlmd.UNKNOWN))


def test_put_artifact_type_adding_property_without_can_add_fields_is_already_exists(store: MetadataStore) -> None:
    put_artifact_type(store, "A", p=mlmd.INT)
    with pytest.raises(errors.AlreadyExistsError):
        put_type(store, artifact_type("A", p=mlmd.INT, q=mlmd.INT))
    assert dict(get_type(store, "A").properties) == {"p": mlmd.INT}


def test_put_artifact_type_adding_property_with_can_add_fields_adds_it(store: MetadataStore) -> None:
    type_id = put_artifact_type(store, "A", p=mlmd.INT)
    assert put_type(store, artifact_type("A", p=mlmd.INT, q=mlmd.STRUCT), can_add_fields=True) == type_id
    assert dict(get_type(store, "A").properties) == {"p": mlmd.INT, "q": mlmd.STRUCT}


def test_put_artifact_type_omitting_property_without_can_omit_fields_is_already_exists(store: MetadataStore) -> None:
    put_artifact_type(store, "A", p=mlmd.INT)
    with pytest.raises(errors.AlreadyExistsError):
        put_type(store, artifact_type("A"))
    with pytest.raises(errors.AlreadyExistsError):
        put_type(store, artifact_type("A", q=mlmd.INT), can_add_fields=True)


def test_put_artifact_type_omitting_property_with_can_omit_fields_keeps_it(store: MetadataStore) -> None:
    type_id = put_artifact_type(store, "A", p=mlmd.INT, q=mlmd.DOUBLE)
    assert put_type(store, artifact_type("A", q=mlmd.DOUBLE), can_omit_fields=True) == type_id
    assert put_type(store, artifact_type("A", r=mlmd.BOOLEAN), can_omit_fields=True, can_add_fields=True) == type_id
    assert dict(get_type(store, "A").properties) == {"p": mlmd.INT, "q": mlmd.DOUBLE, "r": mlmd.BOOLEAN}


def test_put_artifact_type_with_unknown_property_type_is_invalid_argument(store: MetadataStore) -> None:
    with pytest.raises(errors.InvalidArgumentError):
        put_artifact_type(store, "A", p=mlmd.INT, bad=mlmd.UNKNOWN)
    with pytest.raises(errors.NotFoundError):
        get_type(store, "A")


def test_put_artifact_type_adding_unknown_property_type_is_invalid_argument(store: MetadataStore) -> None:
    put_artifact_type(store, "A", p=mlmd.INT)
    with pytest.raises(errors.InvalidArgumentError):
        put_type(store, artifact_type("A", p=mlmd.INT, bad=mlmd.UNKNOWN), can_add_fields=True)
    assert dict(get_type(store, "A").properties) == {"p": mlmd.INT}


def test_put_artifact_type_without_name_is_invalid_argument(store: MetadataStore) -> None:
    with pytest.raises(errors.InvalidArgumentError):
        store.put_artifact_type(svc.PutArtifactTypeRequest())
    with pytest.raises(errors.InvalidArgumentError):
        store.put_context_type(svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="")))


def test_put_artifact_type_new_version_creates_separate_type(store: MetadataStore) -> None:
    unversioned = put_artifact_type(store, "A", p=mlmd.INT)
    versioned = put_type(store, mlmd.ArtifactType(name="A", version="v1"))
    assert versioned != unversioned
    assert put_type(store, mlmd.ArtifactType(name="A", version="v1")) == versioned
    assert get_type(store, "A", "v1").id == versioned
    assert not get_type(store, "A", "v1").properties
    assert get_type(store, "A").id == unversioned


def test_put_artifact_type_empty_version_is_the_unversioned_type(store: MetadataStore) -> None:
    type_id = put_type(store, mlmd.ArtifactType(name="test", version=""))
    assert put_type(store, mlmd.ArtifactType(name="test")) == type_id
    assert put_type(store, mlmd.ArtifactType(name="test", version="")) == type_id
    stored = get_type(store, "test", "")
    assert stored.id == type_id
    assert not stored.HasField("version")


def test_get_artifact_type_empty_version_does_not_find_versioned_type(store: MetadataStore) -> None:
    put_type(store, mlmd.ArtifactType(name="A", version="v1"))
    with pytest.raises(errors.NotFoundError):
        get_type(store, "A")
    with pytest.raises(errors.NotFoundError):
        get_type(store, "A", "")
    with pytest.raises(errors.NotFoundError):
        get_type(store, "A", "v2")


@pytest.mark.parametrize(
    "get",
    [
        lambda s: s.get_artifact_type(svc.GetArtifactTypeRequest(type_name="nope")),
        lambda s: s.get_execution_type(svc.GetExecutionTypeRequest(type_name="nope")),
        lambda s: s.get_context_type(svc.GetContextTypeRequest(type_name="nope")),
    ],
    ids=["artifact", "execution", "context"],
)
def test_get_type_unknown_name_is_not_found(store: MetadataStore, get: Callable[[MetadataStore], Any]) -> None:
    with pytest.raises(errors.NotFoundError):
        get(store)


def test_get_execution_type_of_artifact_type_name_is_not_found(store: MetadataStore) -> None:
    put_artifact_type(store, "Shared")
    with pytest.raises(errors.NotFoundError):
        store.get_execution_type(svc.GetExecutionTypeRequest(type_name="Shared"))


def test_put_artifact_type_changed_description_is_ignored(store: MetadataStore) -> None:
    type_id = put_type(store, mlmd.ArtifactType(name="A", description="first"))
    assert put_type(store, mlmd.ArtifactType(name="A", description="second")) == type_id
    assert get_type(store, "A").description == "first"
    put_type(store, mlmd.ArtifactType(name="B"))
    put_type(store, mlmd.ArtifactType(name="B", description="late"))
    assert not get_type(store, "B").HasField("description")


def test_put_artifact_type_request_id_is_ignored(store: MetadataStore) -> None:
    type_id = put_type(store, mlmd.ArtifactType(id=3, name="A"))
    assert type_id == 10
    assert put_type(store, mlmd.ArtifactType(id=999, name="A")) == type_id
    assert artifact_types_by_id(store, 3)[0].name == "mlmd.Metrics"


# -- external_id (§3.1 2.2, 3.3; §2.9) -------------------------------------------------------


def test_put_artifact_type_external_id_is_set_on_existing_type(store: MetadataStore) -> None:
    type_id = put_artifact_type(store, "A")
    assert put_type(store, mlmd.ArtifactType(name="A", external_id="ext-1")) == type_id
    assert get_type(store, "A").external_id == "ext-1"
    assert put_type(store, mlmd.ArtifactType(name="A", external_id="ext-2")) == type_id
    assert get_type(store, "A").external_id == "ext-2"


def test_put_artifact_type_without_external_id_never_clears_it(store: MetadataStore) -> None:
    put_type(store, mlmd.ArtifactType(name="A", external_id="ext"))
    put_type(store, mlmd.ArtifactType(name="A"))
    put_type(store, mlmd.ArtifactType(name="A", external_id=""))
    assert get_type(store, "A").external_id == "ext"


def test_put_artifact_type_external_id_of_same_kind_type_is_already_exists(store: MetadataStore) -> None:
    put_type(store, mlmd.ArtifactType(name="A", external_id="ext"))
    with pytest.raises(errors.AlreadyExistsError):
        put_type(store, mlmd.ArtifactType(name="B", external_id="ext"))
    with pytest.raises(errors.NotFoundError):
        get_type(store, "B")


def test_put_artifact_type_empty_external_id_is_a_real_value(store: MetadataStore) -> None:
    put_type(store, mlmd.ArtifactType(name="A", external_id=""))
    assert get_type(store, "A").HasField("external_id")
    with pytest.raises(errors.AlreadyExistsError):
        put_type(store, mlmd.ArtifactType(name="B", external_id=""))


def test_put_execution_type_external_id_of_artifact_type_is_internal(store: MetadataStore) -> None:
    put_type(store, mlmd.ArtifactType(name="A", external_id="ext"))
    request = svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="E", external_id="ext"))
    with pytest.raises(errors.InternalError):
        store.put_execution_type(request)
    with pytest.raises(errors.NotFoundError):
        store.get_execution_type(svc.GetExecutionTypeRequest(type_name="E"))


def test_put_artifact_type_evolving_onto_taken_external_id_is_internal(store: MetadataStore) -> None:
    put_type(store, mlmd.ArtifactType(name="A", external_id="taken"))
    put_type(store, mlmd.ArtifactType(name="B"))
    with pytest.raises(errors.InternalError):
        put_type(store, mlmd.ArtifactType(name="B", external_id="taken"))
    store.put_context_type(svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="C")))
    with pytest.raises(errors.InternalError):
        store.put_context_type(svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="C", external_id="taken")))
    assert not get_type(store, "B").HasField("external_id")


# -- deprecated flags (§1.8) -------------------------------------------------------------


@pytest.mark.parametrize(
    "put",
    [
        lambda s: s.put_artifact_type(
            svc.PutArtifactTypeRequest(artifact_type=artifact_type("A"), all_fields_match=False)
        ),
        lambda s: s.put_execution_type(
            svc.PutExecutionTypeRequest(execution_type=execution_type("E"), all_fields_match=False)
        ),
        lambda s: s.put_context_type(svc.PutContextTypeRequest(context_type=context_type("C"), all_fields_match=False)),
        lambda s: s.put_types(svc.PutTypesRequest(artifact_types=[artifact_type("A")], all_fields_match=False)),
    ],
    ids=["artifact", "execution", "context", "types"],
)
def test_put_type_all_fields_match_false_is_unimplemented(
    store: MetadataStore, put: Callable[[MetadataStore], Any]
) -> None:
    with pytest.raises(errors.UnimplementedError):
        put(store)
    assert user_type_count(store) == 0


def test_put_artifact_type_all_fields_match_true_and_can_delete_fields_are_accepted(store: MetadataStore) -> None:
    type_id = put_type(store, artifact_type("A", p=mlmd.INT), all_fields_match=True, can_delete_fields=True)
    assert put_type(store, artifact_type("A", p=mlmd.INT), can_delete_fields=True) == type_id
    # can_delete_fields does not delete anything, nor allow omitting.
    with pytest.raises(errors.AlreadyExistsError):
        put_type(store, artifact_type("A"), can_delete_fields=True)


# -- base_type (§3.1 step 4) ---------------------------------------------------------------


def test_put_artifact_type_with_base_type_links_it(store: MetadataStore) -> None:
    type_id = put_type(store, mlmd.ArtifactType(name="A", base_type=mlmd.ArtifactType.MODEL))
    assert get_type(store, "A").base_type == mlmd.ArtifactType.MODEL
    assert artifact_types_by_id(store, type_id)[0].base_type == mlmd.ArtifactType.MODEL


def test_put_execution_type_with_base_type_links_it(store: MetadataStore) -> None:
    request = svc.PutExecutionTypeRequest(
        execution_type=mlmd.ExecutionType(name="E", base_type=mlmd.ExecutionType.EVALUATE)
    )
    store.put_execution_type(request)
    got = store.get_execution_type(svc.GetExecutionTypeRequest(type_name="E")).execution_type
    assert got.base_type == mlmd.ExecutionType.EVALUATE


def test_put_artifact_type_same_base_type_again_is_noop(store: MetadataStore) -> None:
    type_id = put_type(store, mlmd.ArtifactType(name="A", base_type=mlmd.ArtifactType.DATASET))
    assert put_type(store, mlmd.ArtifactType(name="A", base_type=mlmd.ArtifactType.DATASET)) == type_id
    assert get_type(store, "A").base_type == mlmd.ArtifactType.DATASET


def test_put_artifact_type_base_type_on_existing_type_without_one_links_it(store: MetadataStore) -> None:
    type_id = put_type(store, mlmd.ArtifactType(name="A"))
    assert not get_type(store, "A").HasField("base_type")
    assert put_type(store, mlmd.ArtifactType(name="A", base_type=mlmd.ArtifactType.METRICS)) == type_id
    assert get_type(store, "A").base_type == mlmd.ArtifactType.METRICS


def test_put_artifact_type_without_base_type_keeps_stored_link(store: MetadataStore) -> None:
    put_type(store, mlmd.ArtifactType(name="A", base_type=mlmd.ArtifactType.STATISTICS))
    put_type(store, mlmd.ArtifactType(name="A"))
    assert get_type(store, "A").base_type == mlmd.ArtifactType.STATISTICS


def test_put_artifact_type_changing_base_type_is_unimplemented(store: MetadataStore) -> None:
    put_type(store, mlmd.ArtifactType(name="A", base_type=mlmd.ArtifactType.DATASET))
    with pytest.raises(errors.UnimplementedError):
        put_type(store, mlmd.ArtifactType(name="A", base_type=mlmd.ArtifactType.MODEL))
    assert get_type(store, "A").base_type == mlmd.ArtifactType.DATASET


def test_put_type_base_type_unset_is_unimplemented(store: MetadataStore) -> None:
    with pytest.raises(errors.UnimplementedError):
        put_type(store, mlmd.ArtifactType(name="A", base_type=mlmd.ArtifactType.UNSET))
    with pytest.raises(errors.NotFoundError):  # rolled back
        get_type(store, "A")
    put_type(store, mlmd.ArtifactType(name="B", base_type=mlmd.ArtifactType.MODEL))
    with pytest.raises(errors.UnimplementedError):
        put_type(store, mlmd.ArtifactType(name="B", base_type=mlmd.ArtifactType.UNSET))
    context = mlmd.ContextType(name="C", base_type=mlmd.ContextType.UNSET)
    with pytest.raises(errors.UnimplementedError):
        store.put_context_type(svc.PutContextTypeRequest(context_type=context))


# -- PutTypes (§1.3, §3.1) ---------------------------------------------------------------------


def test_put_types_returns_ids_aligned_with_request_lists(store: MetadataStore) -> None:
    response = store.put_types(
        svc.PutTypesRequest(
            artifact_types=[artifact_type("A1"), artifact_type("A2")],
            execution_types=[execution_type("E1")],
            context_types=[context_type("C1"), context_type("C2")],
        )
    )
    assert list(response.artifact_type_ids) == [10, 11]
    assert list(response.execution_type_ids) == [12]
    assert list(response.context_type_ids) == [13, 14]


def test_put_types_empty_request_is_ok_and_empty(store: MetadataStore) -> None:
    assert store.put_types(svc.PutTypesRequest()) == svc.PutTypesResponse()


def test_put_types_identical_new_types_get_the_same_id(store: MetadataStore) -> None:
    response = store.put_types(
        svc.PutTypesRequest(artifact_types=[artifact_type("A", p=mlmd.INT), artifact_type("A", p=mlmd.INT)])
    )
    assert list(response.artifact_type_ids) == [10, 10]
    assert user_type_count(store) == 1


def test_put_types_later_conflict_rolls_back_earlier_creates(store: MetadataStore) -> None:
    put_context_type(store, "C", p=mlmd.INT)
    request = svc.PutTypesRequest(
        artifact_types=[artifact_type("A")],
        execution_types=[execution_type("E")],
        context_types=[context_type("C", p=mlmd.STRING)],
    )
    with pytest.raises(errors.AlreadyExistsError):
        store.put_types(request)
    assert user_type_count(store) == 0
    assert not store.get_execution_types(svc.GetExecutionTypesRequest()).execution_types


def test_put_types_flags_apply_to_every_list(store: MetadataStore) -> None:
    put_artifact_type(store, "A", p=mlmd.INT)
    put_context_type(store, "C", p=mlmd.INT)
    request = svc.PutTypesRequest(
        artifact_types=[artifact_type("A", q=mlmd.INT)],
        context_types=[context_type("C", q=mlmd.INT)],
        can_add_fields=True,
        can_omit_fields=True,
    )
    store.put_types(request)
    context = store.get_context_type(svc.GetContextTypeRequest(type_name="C")).context_type
    assert dict(context.properties) == {"p": mlmd.INT, "q": mlmd.INT}


# -- reads by id (§4.3) --------------------------------------------------------------------


def test_get_artifact_types_by_id_keeps_duplicates_and_request_order(store: MetadataStore) -> None:
    put_artifact_type(store, "A")
    assert [t.id for t in artifact_types_by_id(store, 10, 10, 99, 1)] == [10, 10, 1]
    assert [t.id for t in artifact_types_by_id(store, 2, 10, 1)] == [2, 10, 1]


def test_get_types_by_id_of_another_kind_is_skipped(store: MetadataStore) -> None:
    artifact = put_artifact_type(store, "A")
    execution = put_execution_type(store, "E")
    context = put_context_type(store, "C")
    assert [t.id for t in artifact_types_by_id(store, execution, context, artifact)] == [artifact]
    by_exec = store.get_execution_types_by_id(svc.GetExecutionTypesByIDRequest(type_ids=[artifact, 1, execution]))
    assert [t.id for t in by_exec.execution_types] == [execution]
    by_context = store.get_context_types_by_id(svc.GetContextTypesByIDRequest(type_ids=[artifact, 5, context]))
    assert [t.id for t in by_context.context_types] == [context]


def test_get_types_by_id_empty_list_is_ok_and_empty(store: MetadataStore) -> None:
    assert not artifact_types_by_id(store)
    assert not store.get_context_types_by_id(svc.GetContextTypesByIDRequest()).context_types


# -- reads by external id (§4.3) ---------------------------------------------------------------


def test_get_artifact_types_by_external_ids_returns_matches_in_id_order(store: MetadataStore) -> None:
    first = put_type(store, mlmd.ArtifactType(name="A", external_id="a"))
    second = put_type(store, mlmd.ArtifactType(name="B", external_id="b"))
    request = svc.GetArtifactTypesByExternalIdsRequest(external_ids=["b", "missing", "a", "b"])
    found = store.get_artifact_types_by_external_ids(request).artifact_types
    assert [t.id for t in found] == [first, second]


def test_get_artifact_types_by_external_ids_empty_list_is_ok_and_empty(store: MetadataStore) -> None:
    response = store.get_artifact_types_by_external_ids(svc.GetArtifactTypesByExternalIdsRequest())
    assert not response.artifact_types


def test_get_types_by_external_ids_empty_string_is_invalid_argument(store: MetadataStore) -> None:
    put_type(store, mlmd.ArtifactType(name="A", external_id="a"))
    with pytest.raises(errors.InvalidArgumentError):
        store.get_artifact_types_by_external_ids(svc.GetArtifactTypesByExternalIdsRequest(external_ids=["a", ""]))
    with pytest.raises(errors.InvalidArgumentError):
        store.get_context_types_by_external_ids(svc.GetContextTypesByExternalIdsRequest(external_ids=[""]))


def test_get_types_by_external_ids_nothing_found_is_not_found(store: MetadataStore) -> None:
    put_type(store, mlmd.ArtifactType(name="A", external_id="a"))
    with pytest.raises(errors.NotFoundError):
        store.get_artifact_types_by_external_ids(svc.GetArtifactTypesByExternalIdsRequest(external_ids=["zzz"]))
    # Lookups are per kind: an artifact type's external_id is not an execution type's.
    with pytest.raises(errors.NotFoundError):
        store.get_execution_types_by_external_ids(svc.GetExecutionTypesByExternalIdsRequest(external_ids=["a"]))


# -- field presence per read path (§2.2) -------------------------------------------------------


def _rich_types(store: MetadataStore) -> None:
    store.put_artifact_type(
        svc.PutArtifactTypeRequest(
            artifact_type=mlmd.ArtifactType(
                name="A",
                version="v1",
                description="d",
                external_id="ext-a",
                properties={"p": mlmd.INT},
                base_type=mlmd.ArtifactType.MODEL,
            )
        )
    )
    execution = mlmd.ExecutionType(
        name="E",
        description="d",
        external_id="ext-e",
        properties={"q": mlmd.STRING},
        base_type=mlmd.ExecutionType.TRAIN,
    )
    execution.input_type.simple.name = "A"
    execution.output_type.none.SetInParent()
    store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=execution))
    store.put_context_type(
        svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="C", description="d", external_id="ext-c"))
    )


def _fields(message: Any) -> set[str]:
    return {descriptor.name for descriptor, _ in message.ListFields()}


def test_get_type_by_name_returns_every_field(store: MetadataStore) -> None:
    _rich_types(store)
    artifact = get_type(store, "A", "v1")
    assert _fields(artifact) == {"id", "name", "version", "description", "external_id", "properties", "base_type"}
    execution = store.get_execution_type(svc.GetExecutionTypeRequest(type_name="E")).execution_type
    assert _fields(execution) == {
        "id",
        "name",
        "description",
        "external_id",
        "properties",
        "base_type",
        "input_type",
        "output_type",
    }
    context = store.get_context_type(svc.GetContextTypeRequest(type_name="C")).context_type
    assert _fields(context) == {"id", "name", "description", "external_id"}


def test_get_types_by_id_returns_every_field(store: MetadataStore) -> None:
    _rich_types(store)
    [artifact] = artifact_types_by_id(store, 10)
    assert _fields(artifact) == {"id", "name", "version", "description", "external_id", "properties", "base_type"}
    [execution] = store.get_execution_types_by_id(svc.GetExecutionTypesByIDRequest(type_ids=[11])).execution_types
    assert {"external_id", "base_type", "input_type", "output_type"} <= _fields(execution)
    [context] = store.get_context_types_by_id(svc.GetContextTypesByIDRequest(type_ids=[12])).context_types
    assert context.external_id == "ext-c"


def test_get_all_types_omits_external_id(store: MetadataStore) -> None:
    _rich_types(store)
    [artifact] = store.get_artifact_types(svc.GetArtifactTypesRequest()).artifact_types
    assert _fields(artifact) == {"id", "name", "version", "description", "properties", "base_type"}
    [execution] = store.get_execution_types(svc.GetExecutionTypesRequest()).execution_types
    assert _fields(execution) == {"id", "name", "description", "properties", "base_type", "input_type", "output_type"}
    [context] = store.get_context_types(svc.GetContextTypesRequest()).context_types
    assert _fields(context) == {"id", "name", "description"}


def test_get_types_by_external_ids_omits_base_type_and_io_types(store: MetadataStore) -> None:
    _rich_types(store)
    request = svc.GetArtifactTypesByExternalIdsRequest(external_ids=["ext-a"])
    [artifact] = store.get_artifact_types_by_external_ids(request).artifact_types
    assert _fields(artifact) == {"id", "name", "version", "description", "external_id", "properties"}
    execution_request = svc.GetExecutionTypesByExternalIdsRequest(external_ids=["ext-e"])
    [execution] = store.get_execution_types_by_external_ids(execution_request).execution_types
    assert _fields(execution) == {"id", "name", "description", "external_id", "properties"}
    context_request = svc.GetContextTypesByExternalIdsRequest(external_ids=["ext-c"])
    [context] = store.get_context_types_by_external_ids(context_request).context_types
    assert _fields(context) == {"id", "name", "description", "external_id"}


def test_get_artifacts_by_id_populated_types_omit_base_type(store: MetadataStore) -> None:
    _rich_types(store)
    [artifact_id] = put_artifacts(store, mlmd.Artifact(type_id=10))
    request = svc.GetArtifactsByIDRequest(artifact_ids=[artifact_id], populate_artifact_types=True)
    [artifact] = store.get_artifacts_by_id(request).artifact_types
    assert _fields(artifact) == {"id", "name", "version", "description", "external_id", "properties"}


def test_put_execution_type_input_and_output_types_round_trip(store: MetadataStore) -> None:
    execution = mlmd.ExecutionType(name="E")
    union = execution.input_type.union_type.candidates
    union.add().simple.name = "A"
    union.add().list.element.any.SetInParent()
    execution.output_type.dict.properties["out"].simple.name = "M"
    store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=execution))
    got = store.get_execution_type(svc.GetExecutionTypeRequest(type_name="E")).execution_type
    assert got.input_type == execution.input_type
    assert got.output_type == execution.output_type
    [listed] = store.get_execution_types(svc.GetExecutionTypesRequest()).execution_types
    assert listed.input_type == execution.input_type


def test_put_execution_type_changed_io_types_are_ignored(store: MetadataStore) -> None:
    first = mlmd.ExecutionType(name="E")
    first.input_type.none.SetInParent()
    type_id = store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=first)).type_id
    second = mlmd.ExecutionType(name="E")
    second.input_type.simple.name = "Other"
    second.output_type.any.SetInParent()
    assert store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=second)).type_id == type_id
    got = store.get_execution_type(svc.GetExecutionTypeRequest(type_name="E")).execution_type
    assert got.input_type == first.input_type
    assert not got.HasField("output_type")
