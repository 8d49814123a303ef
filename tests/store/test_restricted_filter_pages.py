"""A namespace-restricted caller's filtered pages when hidden matches come first.

Each node of one namespace sits between nodes of another that match the same filter, so
a page's first matches in id order are partly unreadable. SQLite's probe leaves the
matches' own namespaces to the page statement, which checks the first `limit` of them and
goes on among the rest only when some are hidden (store.repositories.listing._sqlite_shape);
PostgreSQL's page reads its rows from the subquery that checks them
(listing._first_readable). Either way the pages hold the readable matches, each once, in
order, as if the others did not exist.
"""

from __future__ import annotations

import pytest

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import tenancy
from lineagedb.store.tenancy import Tenancy
from lineagedb.store.unit_of_work import Database
from tests.conftest import FakeClock
from tests.tenancy.world import acting_as

READER = Tenancy(
    namespace="team-a", readable=frozenset({"team-a"}), writable=frozenset({"team-a"}), page_token_key=b"k"
)
WRITERS = {
    name: Tenancy(namespace=name, readable=frozenset({name}), writable=frozenset({name}))
    for name in ("team-a", "team-b")
}
FILTER = "properties.split.string_value = 'train'"


def _put(store: MetadataStore, type_id: int, namespace: str, count: int, split: str) -> list[int]:
    artifacts = [
        mlmd.Artifact(
            type_id=type_id, uri=f"s3://{namespace}/{i}", properties={"split": mlmd.Value(string_value=split)}
        )
        for i in range(count)
    ]
    with acting_as(WRITERS[namespace]):
        return list(store.put_artifacts(svc.PutArtifactsRequest(artifacts=artifacts)).artifact_ids)


def _pages(store: MetadataStore, size: int) -> list[list[int]]:
    options = mlmd.ListOperationOptions(max_result_size=size, filter_query=FILTER)
    pages = []
    with acting_as(READER):
        while True:
            response = store.get_artifacts(svc.GetArtifactsRequest(options=options))
            pages.append([artifact.id for artifact in response.artifacts])
            if not response.next_page_token:
                return pages
            options.next_page_token = response.next_page_token


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_pages_skip_hidden_matches_that_come_first(database: Database, size: int) -> None:
    store = MetadataStore(database, clock=FakeClock())
    with acting_as(None):
        with database.transaction() as uow:
            for name in WRITERS:
                tenancy.create_namespace(uow, name, store.clock())
        type_id = store.put_artifact_type(
            svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Data", properties={"split": mlmd.STRING}))
        ).type_id
    readable: list[int] = []
    for round_ in range(4):
        # Hidden matches before, between and after the readable ones; some readable nodes do not match.
        _put(store, type_id, "team-b", 2 + round_, "train")
        readable += _put(store, type_id, "team-a", 1 + round_, "train")
        _put(store, type_id, "team-a", 1, "test")
    _put(store, type_id, "team-b", 3, "train")
    pages = _pages(store, size)
    assert [node_id for page in pages for node_id in page] == sorted(readable)
    assert all(len(page) == size for page in pages[:-1]) and 0 < len(pages[-1]) <= size
