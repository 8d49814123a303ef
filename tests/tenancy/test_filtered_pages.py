"""Filtered listings read page by page in every order, as a namespace-restricted caller:
the same pages as a store holding only the caller's nodes.

The leak matrix pages through each filter in id order only; these cross every paging
order and size with filters, because a restricted filtered page is its own statement
shape on PostgreSQL (the matches in page order, checked for their namespace until the
page is full: store.repositories.listing._first_readable) and on SQLite (the probe's
matches bound as ids, the page statement checking the namespaces of the first `limit` of
them, and of the rest only if some are hidden). Broad filters (most nodes match) and
narrow ones, through a neighbour too, so a page can end on either side of an unreadable
match.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from tests.tenancy.test_leak_matrix import Options, Order, _show, describe, outcome
from tests.tenancy.world import CALLERS, World, reference_store

FILTERS = {
    "GetArtifacts": (
        "uri LIKE 's3://%'",
        "name LIKE '%a%'",
        "properties.split.string_value = 'train'",
        "type = 'Model' OR type = 'Dataset'",
        "contexts_a.name LIKE '%pipeline%'",
        "NOT(contexts_a.name = 'b-pipeline')",
    ),
    "GetExecutions": ("name LIKE '%'", "type = 'Evaluator'", "events_0.type = OUTPUT"),
    "GetContexts": ("name LIKE '%'", "child_contexts_a.name LIKE '%'", "type = 'Run'"),
}
REQUESTS = {"GetArtifacts": svc.GetArtifactsRequest, "GetExecutions": svc.GetExecutionsRequest}
REQUESTS["GetContexts"] = svc.GetContextsRequest
ORDERS = [
    Order(field=field, is_asc=ascending)
    for field in (Order.ID, Order.CREATE_TIME, Order.LAST_UPDATE_TIME)
    for ascending in (True, False)
]


@pytest.fixture(scope="module")
def references(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, MetadataStore]]:
    directory = str(tmp_path_factory.mktemp("references"))
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(reference_store(world, caller.readable or frozenset(), directory))
            for name, caller in CALLERS.items()
        }


@pytest.mark.parametrize("rpc", sorted(FILTERS))
def test_filtered_pages_in_every_order_hold_only_readable_nodes(
    rpc: str, world: World, references: dict[str, MetadataStore]
) -> None:
    requests = [
        REQUESTS[rpc](options=Options(max_result_size=size, filter_query=text, order_by_field=order))
        for text in FILTERS[rpc]
        for order in ORDERS
        for size in (1, 2)
    ]
    mismatches: list[str] = []
    paged = 0
    for request in requests:
        for name, caller in CALLERS.items():
            actual = outcome(world.store, rpc, request, caller)
            expected = outcome(references[name], rpc, request, None)
            paged += len(expected) > 2  # followed at least one token
            if actual != expected:
                shown = f"expected: {_show(expected)}\n  actual: {_show(actual)}"
                mismatches.append(f"{name}: {describe(request)}\n  {shown}")
    assert not mismatches, f"{len(mismatches)} answers differ:\n" + "\n".join(mismatches[:5])
    assert paged, "no filter spans several pages: the test would not see a page boundary"


def test_pages_are_not_vacuous(world: World) -> None:
    """The dataset puts unreadable nodes among the matches of these filters."""
    request = svc.GetArtifactsRequest(options=Options(max_result_size=100, filter_query=FILTERS["GetArtifacts"][0]))
    everything = outcome(world.store, "GetArtifacts", request, None)
    for caller in CALLERS.values():
        assert outcome(world.store, "GetArtifacts", request, caller) != everything
