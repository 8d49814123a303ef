"""Paging through large listings: spec §5 (ListOperationOptions, page tokens) and §4.8.

One data set per test function (module-level builder, per-test database): 257 artifacts of
one type plus distractors of another type, 130 executions, 45 contexts; create and
last-update times tie in runs and are not monotonic in id (the FakeClock is rewound).
Every walk checks that each node appears exactly once, in (order column, id) order.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import pagination
from tests.conftest import FakeClock
from tests.service.helpers import (
    put_artifact_type,
    put_artifacts,
    put_context_type,
    put_contexts,
    put_execution_type,
    put_executions,
)

Field = mlmd.ListOperationOptions.OrderByField
ORDERINGS = [
    (field, ascending) for field in (Field.ID, Field.CREATE_TIME, Field.LAST_UPDATE_TIME) for ascending in (True, False)
]
ORDERING_IDS = [f"{Field.Field.Name(field)}-{'asc' if asc else 'desc'}" for field, asc in ORDERINGS]
PAGE_SIZES = (1, 7, 20, 100, 101, 200)
COLUMN: dict[int, str] = {
    Field.ID: "id",
    Field.CREATE_TIME: "create_time_since_epoch",
    Field.LAST_UPDATE_TIME: "last_update_time_since_epoch",
}
BASE = 1_700_000_000_000
KEEP_FILTER = "uri LIKE 'gs://keep/%'"

N_ARTIFACTS, N_EXECUTIONS, N_CONTEXTS = 257, 130, 45


@dataclass
class Data:
    artifact_type: str
    execution_type: str
    context_type: str
    context_id: int  # has every even-indexed artifact and every third execution


def _tick(clock: FakeClock, step: int) -> None:
    """Rewind/advance the clock so that batches collide: times repeat and go backwards."""
    clock.now = BASE + (step * 7919 % 23) * 10


def _batches(total: int) -> list[int]:
    sizes, left, step = [], total, 0
    while left:
        size = min(left, 1 + step * 5 % 9)
        sizes.append(size)
        left -= size
        step += 1
    return sizes


def build(store: MetadataStore, clock: FakeClock) -> Data:
    a_type = put_artifact_type(store, "Paged")
    other_a = put_artifact_type(store, "Other")
    e_type = put_execution_type(store, "PagedRun")
    other_e = put_execution_type(store, "OtherRun")
    c_type = put_context_type(store, "PagedCtx")

    artifact_ids: list[int] = []
    index = 0
    for step, size in enumerate(_batches(N_ARTIFACTS)):
        _tick(clock, step)
        batch = []
        for _ in range(size):
            kept = "keep" if index % 3 == 0 else "drop"
            batch.append(mlmd.Artifact(type_id=a_type, name=f"a{index}", uri=f"gs://{kept}/{index}"))
            index += 1
        artifact_ids += put_artifacts(store, *batch)
        if step % 4 == 0:  # distractors of another type, interleaved in id and time
            put_artifacts(store, mlmd.Artifact(type_id=other_a, uri=f"gs://keep/other{step}"))
    # Whole updates (one per request) bump last_update_time into shared values.
    for position, artifact_id in enumerate(artifact_ids[::5]):
        clock.now = BASE + 1_000 + (position % 4) * 10 - 1
        put_artifacts(store, mlmd.Artifact(id=artifact_id, type_id=a_type, uri=f"gs://keep/updated{artifact_id}"))

    execution_ids: list[int] = []
    index = 0
    for step, size in enumerate(_batches(N_EXECUTIONS)):
        _tick(clock, step + 3)
        execution_ids += put_executions(
            store, *(mlmd.Execution(type_id=e_type, name=f"e{index + i}") for i in range(size))
        )
        index += size
        if step % 5 == 0:
            put_executions(store, mlmd.Execution(type_id=other_e))
    for position, execution_id in enumerate(execution_ids[::4]):
        clock.now = BASE + 1_000 + (position % 3) * 10 - 1
        put_executions(store, mlmd.Execution(id=execution_id, type_id=e_type, name=f"e-updated{execution_id}"))

    index = 0
    for step, size in enumerate(_batches(N_CONTEXTS)):
        _tick(clock, step + 5)
        put_contexts(store, *(mlmd.Context(type_id=c_type, name=f"c{index + i}") for i in range(size)))
        index += size
    [holder] = put_contexts(store, mlmd.Context(type_id=c_type, name="holder"))
    store.put_attributions_and_associations(
        svc.PutAttributionsAndAssociationsRequest(
            attributions=[mlmd.Attribution(context_id=holder, artifact_id=a) for a in artifact_ids[::2]],
            associations=[mlmd.Association(context_id=holder, execution_id=e) for e in execution_ids[::3]],
        )
    )
    return Data("Paged", "PagedRun", "PagedCtx", holder)


@pytest.fixture
def data(store: MetadataStore, clock: FakeClock) -> Data:
    return build(store, clock)


# -- walking -------------------------------------------------------------------------------------------

Call = Callable[[mlmd.ListOperationOptions], Any]  # options -> response


@dataclass(frozen=True)
class Listing:
    name: str
    call: Callable[[MetadataStore, Data, mlmd.ListOperationOptions], Any]
    everything: Callable[[MetadataStore, Data], list[Any]]  # the scope, unpaged
    nodes_field: str
    token_always_set: bool  # Get*ByType (§5.5)
    filter_query: str = ""


def _unpaged(response: Any, field: str) -> list[Any]:
    assert not response.HasField("next_page_token")
    return list(getattr(response, field))


LISTINGS = [
    Listing(
        "GetArtifacts",
        lambda s, d, o: s.get_artifacts(svc.GetArtifactsRequest(options=o)),
        lambda s, d: _unpaged(s.get_artifacts(svc.GetArtifactsRequest()), "artifacts"),
        "artifacts",
        token_always_set=False,
    ),
    Listing(
        "GetArtifacts+filter",
        lambda s, d, o: s.get_artifacts(svc.GetArtifactsRequest(options=o)),
        lambda s, d: [
            a for a in s.get_artifacts(svc.GetArtifactsRequest()).artifacts if a.uri.startswith("gs://keep/")
        ],
        "artifacts",
        token_always_set=False,
        filter_query=KEEP_FILTER,
    ),
    Listing(
        "GetArtifactsByType",
        lambda s, d, o: s.get_artifacts_by_type(svc.GetArtifactsByTypeRequest(type_name=d.artifact_type, options=o)),
        lambda s, d: _unpaged(
            s.get_artifacts_by_type(svc.GetArtifactsByTypeRequest(type_name=d.artifact_type)), "artifacts"
        ),
        "artifacts",
        token_always_set=True,
    ),
    Listing(
        "GetExecutionsByType",
        lambda s, d, o: s.get_executions_by_type(svc.GetExecutionsByTypeRequest(type_name=d.execution_type, options=o)),
        lambda s, d: _unpaged(
            s.get_executions_by_type(svc.GetExecutionsByTypeRequest(type_name=d.execution_type)), "executions"
        ),
        "executions",
        token_always_set=True,
    ),
    Listing(
        "GetContextsByType",
        lambda s, d, o: s.get_contexts_by_type(svc.GetContextsByTypeRequest(type_name=d.context_type, options=o)),
        lambda s, d: _unpaged(
            s.get_contexts_by_type(svc.GetContextsByTypeRequest(type_name=d.context_type)), "contexts"
        ),
        "contexts",
        token_always_set=True,
    ),
    Listing(
        "GetArtifactsByContext",
        lambda s, d, o: s.get_artifacts_by_context(
            svc.GetArtifactsByContextRequest(context_id=d.context_id, options=o)
        ),
        lambda s, d: _unpaged(
            s.get_artifacts_by_context(svc.GetArtifactsByContextRequest(context_id=d.context_id)), "artifacts"
        ),
        "artifacts",
        token_always_set=False,
    ),
    Listing(
        "GetExecutionsByContext",
        lambda s, d, o: s.get_executions_by_context(
            svc.GetExecutionsByContextRequest(context_id=d.context_id, options=o)
        ),
        lambda s, d: _unpaged(
            s.get_executions_by_context(svc.GetExecutionsByContextRequest(context_id=d.context_id)), "executions"
        ),
        "executions",
        token_always_set=False,
    ),
]


def options(
    size: int | None = None, field: int | None = None, ascending: bool | None = None, token: str = "", query: str = ""
) -> mlmd.ListOperationOptions:
    result = mlmd.ListOperationOptions()
    if size is not None:
        result.max_result_size = size
    if field is not None:
        result.order_by_field.field = field  # type: ignore[assignment]
    if ascending is not None:
        result.order_by_field.is_asc = ascending
    if token:
        result.next_page_token = token
    if query:
        result.filter_query = query
    return result


def expected_order(nodes: Sequence[Any], field: int, ascending: bool) -> list[int]:
    column = COLUMN[field]
    ordered = sorted(nodes, key=lambda n: (getattr(n, column), n.id))
    ids = [n.id for n in ordered]
    return ids if ascending else ids[::-1]


def walk(listing: Listing, store: MetadataStore, data: Data, size: int, field: int, ascending: bool) -> list[int]:
    """Follow tokens to the end; check page sizes and token presence on the way."""
    seen: list[int] = []
    token = ""
    for _ in range(10_000):
        response = listing.call(store, data, options(size, field, ascending, token, listing.filter_query))
        page = [n.id for n in getattr(response, listing.nodes_field)]
        assert len(page) <= min(size, pagination.MAX_FETCH)
        seen += page
        token = response.next_page_token
        if token:
            assert len(page) == size, "a token only follows a full page"
            continue
        if listing.token_always_set:
            assert response.HasField("next_page_token"), f"{listing.name}: the last page carries next_page_token ''"
        else:
            assert not response.HasField("next_page_token"), f"{listing.name}: no token on the last page"
        return seen
    raise AssertionError("paging did not terminate")


def _check_walk(listing: Listing, store: MetadataStore, data: Data, sizes: Sequence[int]) -> None:
    everything = listing.everything(store, data)
    assert len(everything) >= 40
    for field, ascending in ORDERINGS:
        expected = expected_order(everything, field, ascending)
        for size in sizes:
            seen = walk(listing, store, data, size, field, ascending)
            label = f"{listing.name} {Field.Field.Name(field)} asc={ascending} size={size}"
            assert len(seen) == len(set(seen)), f"{label}: a node repeated"
            if size > 100:
                # [quirk §5.2] one page of at most 101 nodes and never a token.
                assert seen == expected[: pagination.MAX_FETCH], label
            else:
                assert seen == expected, label


@pytest.mark.parametrize("listing", LISTINGS, ids=[listing.name for listing in LISTINGS])
def test_paging_every_ordering_and_page_size_returns_each_node_once_in_order(
    store: MetadataStore, data: Data, listing: Listing
) -> None:
    # Page size 1 walks every node one request at a time: once for the big listing,
    # and it is covered with the other sizes for the smaller scopes.
    sizes = PAGE_SIZES if listing.name in ("GetArtifacts", "GetContextsByType") else PAGE_SIZES[1:]
    _check_walk(listing, store, data, sizes)


@pytest.mark.soak
@pytest.mark.skipif(not os.environ.get("LINEAGEDB_SOAK"), reason="soak: set LINEAGEDB_SOAK=1")
@pytest.mark.parametrize("listing", LISTINGS, ids=[listing.name for listing in LISTINGS])
def test_paging_page_size_one_walks_every_listing(store: MetadataStore, data: Data, listing: Listing) -> None:
    _check_walk(listing, store, data, (1,))


def test_data_has_ties_and_non_monotonic_times(store: MetadataStore, data: Data) -> None:
    artifacts = LISTINGS[2].everything(store, data)
    assert len(artifacts) == N_ARTIFACTS
    creates = [a.create_time_since_epoch for a in artifacts]
    updates = [a.last_update_time_since_epoch for a in artifacts]
    assert len(set(creates)) < len(creates) / 4
    assert len(set(updates)) < len(updates) / 4
    assert creates != sorted(creates), "create times should not follow ids"
    assert updates != sorted(updates)


# -- sizes, defaults and tokens on the wire (§5.2, §5.4) --------------------------------------------------


def test_options_empty_returns_twenty_and_mlmd_token(store: MetadataStore, data: Data) -> None:
    response = store.get_artifacts(svc.GetArtifactsRequest(options=mlmd.ListOperationOptions()))
    assert [a.id for a in response.artifacts] == list(range(1, 21))
    assert response.next_page_token == "CBQQFBoA"


def test_max_result_size_one_token_is_mlmd_format(store: MetadataStore, data: Data) -> None:
    response = store.get_artifacts(svc.GetArtifactsRequest(options=options(1)))
    assert [a.id for a in response.artifacts] == [1]
    assert response.next_page_token == "CAEQARoCCAE"


def test_max_result_size_100_token_is_mlmd_format(store: MetadataStore, data: Data) -> None:
    response = store.get_artifacts(svc.GetArtifactsRequest(options=options(100)))
    assert len(response.artifacts) == 100
    assert response.next_page_token == "CGQQZBoCCGQ"


@pytest.mark.parametrize("size", [101, 200, 2**31 - 1])
def test_max_result_size_above_100_returns_101_and_no_token(store: MetadataStore, data: Data, size: int) -> None:
    response = store.get_artifacts(svc.GetArtifactsRequest(options=options(size)))
    assert [a.id for a in response.artifacts] == list(range(1, 102))
    assert not response.HasField("next_page_token")


@pytest.mark.parametrize("size", [0, -1, -(2**31)])
def test_max_result_size_not_positive_is_invalid_argument(store: MetadataStore, data: Data, size: int) -> None:
    for listing in LISTINGS:
        with pytest.raises(errors.InvalidArgumentError):
            listing.call(store, data, options(size))


def test_order_by_field_unspecified_is_invalid_argument(store: MetadataStore, data: Data) -> None:
    for listing in LISTINGS:
        with pytest.raises(errors.InvalidArgumentError):
            listing.call(store, data, options(5, Field.FIELD_UNSPECIFIED))


def test_by_type_token_absent_for_unknown_or_empty_type(store: MetadataStore, data: Data) -> None:
    put_artifact_type(store, "Empty")
    for name in ("Empty", "NoSuchType"):
        response = store.get_artifacts_by_type(svc.GetArtifactsByTypeRequest(type_name=name, options=options(5)))
        assert list(response.artifacts) == []
        assert not response.HasField("next_page_token")


def test_by_context_unknown_context_is_empty_without_token(store: MetadataStore, data: Data) -> None:
    response = store.get_artifacts_by_context(svc.GetArtifactsByContextRequest(context_id=9999, options=options(5)))
    assert list(response.artifacts) == []
    assert not response.HasField("next_page_token")


# -- stability between pages (§5.4) ---------------------------------------------------------------------------


def test_rows_inserted_between_pages_appear_at_the_end_and_none_repeat(
    store: MetadataStore, clock: FakeClock, data: Data
) -> None:
    type_id = store.get_artifact_type(svc.GetArtifactTypeRequest(type_name=data.artifact_type)).artifact_type.id
    before = [a.id for a in store.get_artifacts(svc.GetArtifactsRequest()).artifacts]
    seen: list[int] = []
    token = ""
    added: list[int] = []
    for page_number in range(1_000):
        response = store.get_artifacts(svc.GetArtifactsRequest(options=options(20, token=token)))
        seen += [a.id for a in response.artifacts]
        token = response.next_page_token
        if page_number < 3:
            clock.now = BASE - 5  # older timestamps than anything: irrelevant to ID order
            added += put_artifacts(
                store, *(mlmd.Artifact(type_id=type_id, uri=f"new{page_number}{i}") for i in range(3))
            )
        if not token:
            break
    assert len(seen) == len(set(seen))
    assert seen == sorted(before + added)
    assert seen[-len(added) :] == added


def test_token_reused_with_different_ordering_is_invalid_argument(store: MetadataStore, data: Data) -> None:
    for field, ascending in ORDERINGS:
        token = store.get_artifacts(svc.GetArtifactsRequest(options=options(7, field, ascending))).next_page_token
        assert token
        for other_field, other_ascending in ORDERINGS:
            request = svc.GetArtifactsRequest(options=options(7, other_field, other_ascending, token))
            if (other_field, other_ascending) == (field, ascending):
                assert len(store.get_artifacts(request).artifacts) == 7
                continue
            with pytest.raises(errors.InvalidArgumentError):
                store.get_artifacts(request)


def test_token_from_default_options_is_valid_for_explicit_id_ascending(store: MetadataStore, data: Data) -> None:
    token = store.get_artifacts(svc.GetArtifactsRequest(options=mlmd.ListOperationOptions())).next_page_token
    response = store.get_artifacts(svc.GetArtifactsRequest(options=options(5, Field.ID, True, token)))
    assert [a.id for a in response.artifacts] == list(range(21, 26))


def test_token_from_another_query_is_accepted_with_the_new_filter_and_size(store: MetadataStore, data: Data) -> None:
    # §5.4: MLMD compares only the ordering; the official client changes sizes between pages.
    token = store.get_artifacts(svc.GetArtifactsRequest(options=options(20))).next_page_token
    response = store.get_artifacts(svc.GetArtifactsRequest(options=options(5, token=token, query=KEEP_FILTER)))
    ids = [a.id for a in response.artifacts]
    assert len(ids) == 5 and all(i > 20 for i in ids)
    assert all(a.uri.startswith("gs://keep/") for a in response.artifacts)
    # ...and across RPCs: a GetArtifacts token continues a GetExecutionsByType listing.
    executions = store.get_executions_by_type(
        svc.GetExecutionsByTypeRequest(type_name=data.execution_type, options=options(3, token=token))
    )
    assert all(e.id > 20 for e in executions.executions)


def test_last_update_time_token_without_listed_ids_is_invalid_argument(store: MetadataStore, data: Data) -> None:
    token = mlmd.ListOperationNextPageToken(field_offset=BASE)
    token.set_options.order_by_field.field = Field.LAST_UPDATE_TIME
    text = base64.urlsafe_b64encode(token.SerializeToString()).decode().rstrip("=")
    with pytest.raises(errors.InvalidArgumentError):
        store.get_artifacts(svc.GetArtifactsRequest(options=options(5, Field.LAST_UPDATE_TIME, token=text)))


def test_padded_token_is_accepted(store: MetadataStore, data: Data) -> None:
    token = store.get_artifacts(svc.GetArtifactsRequest(options=options(1))).next_page_token
    assert len(token) % 4 != 0
    padded = token + "=" * (-len(token) % 4)
    response = store.get_artifacts(svc.GetArtifactsRequest(options=options(1, token=padded)))
    assert [a.id for a in response.artifacts] == [2]


BAD_BASE64 = [
    "!!!!",
    "CBQQ!FBoA",  # a valid token with a foreign character inside
    "CBQQ FBoA",
    "CBQQFBoA\n",
    "CBQQ+BoA",  # standard, not URL-safe, alphabet
    "CBQQ/BoA",
    "A",  # length 1 mod 4 can never be base64
    "CBQQF",
    "==CBQQFBoA",
    "CBQQFBoA===",
    "é",
    "\x00",
]


@pytest.mark.parametrize("token", BAD_BASE64)
def test_undecodable_token_is_invalid_argument(store: MetadataStore, data: Data, token: str) -> None:
    with pytest.raises(errors.InvalidArgumentError):
        store.get_artifacts(svc.GetArtifactsRequest(options=options(5, token=token)))


@pytest.mark.parametrize("raw", [b"\xff", b"\x08", b"\x1a\x05\x08", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"])
def test_token_bytes_that_do_not_parse_are_invalid_argument(store: MetadataStore, data: Data, raw: bytes) -> None:
    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with pytest.raises(errors.InvalidArgumentError):
        store.get_artifacts(svc.GetArtifactsRequest(options=options(5, token=token)))


def _call_tolerating_invalid_argument(store: MetadataStore, data: Data, opts: mlmd.ListOperationOptions) -> str:
    """'ok' or 'invalid'; anything else (a crash, another error) fails the test."""
    try:
        store.get_artifacts(svc.GetArtifactsRequest(options=opts))
        store.get_artifacts_by_type(svc.GetArtifactsByTypeRequest(type_name=data.artifact_type, options=opts))
    except errors.InvalidArgumentError:
        return "invalid"
    return "ok"


def test_tampered_tokens_are_invalid_argument_or_harmless_never_internal(store: MetadataStore, data: Data) -> None:
    seed = random.randrange(2**32)
    print(f"tampered-token seed: {seed}")
    rng = random.Random(seed)
    real = {
        (field, asc): store.get_artifacts(svc.GetArtifactsRequest(options=options(7, field, asc))).next_page_token
        for field, asc in ORDERINGS
    }
    outcomes: dict[str, int] = {}
    for _ in range(150):
        (field, asc), token = rng.choice(list(real.items()))
        raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        how = rng.choice(["random", "truncate", "flip", "text-truncate", "append"])
        if how == "random":
            candidate = base64.urlsafe_b64encode(rng.randbytes(rng.randrange(1, 40))).decode().rstrip("=")
        elif how == "truncate":
            candidate = base64.urlsafe_b64encode(raw[: rng.randrange(len(raw))]).decode().rstrip("=")
        elif how == "flip":
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
            candidate = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
        elif how == "text-truncate":
            candidate = token[: rng.randrange(1, len(token))]
        else:
            candidate = token + rng.choice(["A", "AA", "AAA", "-", "_"])
        outcome = _call_tolerating_invalid_argument(store, data, options(7, field, asc, candidate))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"tampered-token outcomes: {outcomes}")
    assert outcomes.get("invalid", 0) > 0


def test_forged_offsets_never_return_nodes_outside_the_filter(store: MetadataStore, data: Data) -> None:
    for offset in (-(2**63), -1, 0, 5, 2**63 - 1):
        token = mlmd.ListOperationNextPageToken(id_offset=offset, field_offset=offset, listed_ids=[offset])
        text = base64.urlsafe_b64encode(token.SerializeToString()).decode().rstrip("=")
        response = store.get_artifacts(svc.GetArtifactsRequest(options=options(50, token=text, query=KEEP_FILTER)))
        assert all(a.uri.startswith("gs://keep/") for a in response.artifacts)
        assert all(a.id > offset for a in response.artifacts)


# -- the token codec (property) -------------------------------------------------------------------------------

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def page_options(draw: st.DrawFn) -> mlmd.ListOperationOptions:
    result = mlmd.ListOperationOptions()
    if draw(st.booleans()):
        result.max_result_size = draw(st.integers(min_value=1, max_value=2**31 - 1))
    if draw(st.booleans()):
        result.order_by_field.field = draw(st.sampled_from([Field.ID, Field.CREATE_TIME, Field.LAST_UPDATE_TIME]))
    if draw(st.booleans()):
        result.order_by_field.is_asc = draw(st.booleans())
    if draw(st.booleans()):
        result.filter_query = draw(st.text(max_size=40))
    if draw(st.booleans()):
        result.next_page_token = draw(st.text(alphabet="ABCxyz019-_", max_size=20))  # cleared in the token
    return result


@dataclass(frozen=True)
class _Row:
    id: int
    sort_value: int


@given(
    opts=page_options(),
    rows=st.lists(st.tuples(_INT64, st.integers(min_value=0, max_value=3)), min_size=1, max_size=12),
)
def test_page_token_encode_decode_round_trip(opts: mlmd.ListOperationOptions, rows: list[tuple[int, int]]) -> None:
    field, ascending = opts.order_by_field.field, opts.order_by_field.is_asc
    page = pagination.Page(opts, opts.max_result_size, field, ascending, None)
    page_rows = [_Row(i, v) for i, v in rows]
    text = pagination.encode_token(page, page_rows)
    assert "=" not in text and set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    token = pagination.decode_token(text)
    expected_options = mlmd.ListOperationOptions()
    expected_options.CopyFrom(opts)
    expected_options.ClearField("next_page_token")
    assert token.set_options == expected_options
    assert token.field_offset == page_rows[-1].sort_value
    if field == Field.LAST_UPDATE_TIME:
        assert not token.HasField("id_offset")
        same = 0
        for row in reversed(page_rows):
            if row.sort_value != page_rows[-1].sort_value:
                break
            same += 1
        assert list(token.listed_ids) == [r.id for r in reversed(page_rows)][:same]
    else:
        assert token.id_offset == page_rows[-1].id
        assert list(token.listed_ids) == []
    # Decoding accepts the padded form too, and re-encoding is byte-identical.
    assert pagination.decode_token(text + "=" * (-len(text) % 4)) == token
    assert base64.urlsafe_b64encode(token.SerializeToString()).decode().rstrip("=") == text
    # A continued request with the same ordering validates.
    follow = mlmd.ListOperationOptions()
    follow.CopyFrom(opts)
    follow.next_page_token = text
    if field != Field.LAST_UPDATE_TIME or token.listed_ids:
        assert pagination.parse_page(follow).token == token


@given(st.binary(max_size=64))
def test_decode_token_of_any_bytes_is_a_token_or_invalid_argument(raw: bytes) -> None:
    text = base64.urlsafe_b64encode(raw).decode()
    try:
        token = pagination.decode_token(text)
    except errors.InvalidArgumentError:
        return
    assert isinstance(token, mlmd.ListOperationNextPageToken)


@given(st.text(max_size=32))
def test_decode_token_of_any_text_is_a_token_or_invalid_argument(text: str) -> None:
    with contextlib.suppress(errors.InvalidArgumentError):
        pagination.decode_token(text)
