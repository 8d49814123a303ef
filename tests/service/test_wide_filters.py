"""Filters naming very many properties or neighbor aliases (more tables than one join holds).

SQLite joins at most 64 tables in a SELECT and MySQL 61; such filters used to answer
INTERNAL. Past the join limit properties become lookups and neighbor aliases a
correlated subquery each; a filter whose OR/NOT terms mix many aliases, or that names
more than MAX_FILTER_REFERENCES of them, is refused with the limit, never INTERNAL.
"""

from __future__ import annotations

import pytest

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.filter_query import MAX_FILTER_REFERENCES, MAX_JOINED_TABLES
from tests.service.helpers import put_artifact_type, put_artifacts, put_context_type, put_contexts

PROPERTIES = 250  # just under MAX_FILTER_REFERENCES
ALIASES = 200


def _filtered_names(store: MetadataStore, text: str) -> list[str]:
    names: list[str] = []
    options = mlmd.ListOperationOptions(max_result_size=100, filter_query=text)
    while True:
        page = store.get_artifacts(svc.GetArtifactsRequest(options=options))
        names += [a.name for a in page.artifacts]
        if not page.next_page_token:
            return names
        options.next_page_token = page.next_page_token


@pytest.fixture
def wide(store: MetadataStore) -> MetadataStore:
    """`full` has custom properties p0..p999 = their index; `part` only p0..p9; contexts c0..c199
    each attribute `full`, and `part` only c0."""
    type_id = put_artifact_type(store)
    full = mlmd.Artifact(type_id=type_id, name="full")
    for i in range(PROPERTIES):
        full.custom_properties[f"p{i}"].int_value = i
    part = mlmd.Artifact(type_id=type_id, name="part")
    for i in range(10):
        part.custom_properties[f"p{i}"].int_value = i
    full_id, part_id = put_artifacts(store, full, part)
    context_type = put_context_type(store)
    contexts = put_contexts(store, *(mlmd.Context(type_id=context_type, name=f"c{i}") for i in range(ALIASES)))
    attributions = [mlmd.Attribution(context_id=c, artifact_id=full_id) for c in contexts]
    attributions.append(mlmd.Attribution(context_id=contexts[0], artifact_id=part_id))
    store.put_attributions_and_associations(svc.PutAttributionsAndAssociationsRequest(attributions=attributions))
    return store


def test_a_filter_on_a_thousand_properties_is_refused_with_the_limit(wide: MetadataStore) -> None:
    thousand = " AND ".join(f"custom_properties.p{i}.int_value = {i}" for i in range(1000))
    with pytest.raises(errors.InvalidArgumentError) as refused:
        _filtered_names(wide, thousand)
    assert f"at most {MAX_FILTER_REFERENCES}" in refused.value.message


def test_a_filter_on_many_properties_matches_like_a_join(wide: MetadataStore) -> None:
    every = " AND ".join(f"custom_properties.p{i}.int_value = {i}" for i in range(PROPERTIES))
    assert _filtered_names(wide, every) == ["full"]
    # OR keeps MLMD's inner-join meaning: a node lacking any named property never matches.
    either = " OR ".join(f"custom_properties.p{i}.int_value = {i}" for i in range(PROPERTIES))
    assert _filtered_names(wide, either) == ["full"]
    negated = " AND ".join(f"NOT custom_properties.p{i}.int_value = -1" for i in range(PROPERTIES))
    assert _filtered_names(wide, negated) == ["full"]


def test_a_filter_on_two_hundred_context_aliases_matches_like_a_join(wide: MetadataStore) -> None:
    every = " AND ".join(f"contexts_a{i}.name = 'c{i}'" for i in range(ALIASES))
    assert _filtered_names(wide, every) == ["full"]
    # Terms with one alias each, mixed with properties and OR inside one alias's term.
    mixed = (
        " AND ".join(f"(contexts_a{i}.name = 'c{i}' OR contexts_a{i}.name = 'none')" for i in range(ALIASES))
        + " AND custom_properties.p3.int_value = 3"
    )
    assert _filtered_names(wide, mixed) == ["full"]
    assert _filtered_names(wide, every + " AND name = 'part'") == []


def test_a_filter_whose_or_mixes_too_many_aliases_is_refused_with_the_limit(wide: MetadataStore) -> None:
    mixed = " OR ".join(f"contexts_a{i}.name = 'c{i}'" for i in range(ALIASES))
    with pytest.raises(errors.InvalidArgumentError) as refused:
        _filtered_names(wide, mixed)
    assert str(MAX_JOINED_TABLES) in refused.value.message


def test_a_filter_just_under_the_limit_still_joins(wide: MetadataStore) -> None:
    few = " AND ".join(f"custom_properties.p{i}.int_value = {i}" for i in range(MAX_JOINED_TABLES - 1))
    assert _filtered_names(wide, few) == ["full"]
