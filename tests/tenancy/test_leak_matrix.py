"""Every read RPC, as a namespace-restricted caller, answers exactly what a store holding
only that caller's readable nodes answers.

For each caller (Alice: team-a + shared; Bob: team-b + shared; Carol: default + team-a)
the reference is a copy of the database with everything the caller cannot read
deleted (tests/tenancy/world.py), queried unrestricted. Requests name every node of
every namespace (ids, names, URIs, external ids, filters through every neighbour
kind, lineage from A into B and back); responses must be equal message for message,
failures equal in class and message. Paged listings are followed to the end in each
store separately and the pages compared (token text aside: Alice's are signed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from google.protobuf import field_mask_pb2, text_format

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.tenancy import Tenancy
from tests.tenancy.world import (
    CALLERS,
    EVENTS,
    MISSING_ID,
    ArtifactSpec,
    ContextSpec,
    ExecutionSpec,
    World,
    acting_as,
    reference_store,
)

Options = mlmd.ListOperationOptions
Order = mlmd.ListOperationOptions.OrderByField
Lineage = mlmd.LineageSubgraphQueryOptions
Cases = Callable[[World], list[Any]]

READ_RPCS = sorted(
    method.name
    for method in svc.DESCRIPTOR.services_by_name["MetadataStoreService"].methods
    if method.name.startswith("Get")
)


def method_of(store: MetadataStore, rpc: str) -> Callable[[Any], Any]:
    """`GetArtifactsByID` -> `store.get_artifacts_by_id`."""
    method: Callable[[Any], Any] = getattr(store, re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", rpc).lower())
    return method


# -- request builders -------------------------------------------------------------------------

# Orderings and page sizes a listing is read with: small pages so every listing spans
# several, each order column in both directions (CREATE_TIME / LAST_UPDATE_TIME have ties).
PAGINGS: tuple[Options, ...] = (
    Options(max_result_size=2),
    Options(max_result_size=3, order_by_field=Order(field=Order.ID, is_asc=False)),
    Options(max_result_size=2, order_by_field=Order(field=Order.CREATE_TIME, is_asc=False)),
    Options(max_result_size=3, order_by_field=Order(field=Order.LAST_UPDATE_TIME, is_asc=True)),
    Options(max_result_size=2, order_by_field=Order(field=Order.LAST_UPDATE_TIME, is_asc=False)),
    Options(max_result_size=100),
)


def _ids(world: World, ids: dict[str, int]) -> list[int]:
    return [*sorted(ids.values()), MISSING_ID]


# Filters name B's (and default's) nodes directly and through every neighbour kind:
# a neighbour the caller cannot read must never satisfy (or, under NOT, spoil) a join.
def artifact_filters(w: World) -> list[str]:
    return [
        "uri = 's3://a/data'",
        "external_id LIKE 'ext-a%'",
        "name LIKE 'a-%' AND state = LIVE",
        "properties.split.string_value = 'train'",
        "custom_properties.framework.string_value = 'tf'",
        "contexts_a.name = 'b-pipeline'",
        "contexts_a.name = 'shared-pipeline'",
        "NOT(contexts_a.name = 'b-pipeline')",
        "contexts_a.type = 'Pipeline' AND contexts_b.name = 'a-run-1'",
        "events_0.type = INPUT",
        f"events_0.execution_id = {w.executions['b_evaluator']}",
        f"events_0.execution_id = {w.executions['b_trainer']} OR name = 'a-data'",
        "type = 'Model'",
        f"id IN ({', '.join(map(str, sorted(w.artifacts.values())))})",
    ]


def execution_filters(w: World) -> list[str]:
    return [
        "type = 'Evaluator'",
        "properties.epochs.int_value > 0",
        "contexts_a.name = 'shared-pipeline'",
        "contexts_a.name LIKE 'b-%'",
        f"events_0.artifact_id = {w.artifacts['a_model']}",
        f"events_0.artifact_id = {w.artifacts['b_model']}",
        "events_0.type = OUTPUT",
        "external_id LIKE 'ext-a%'",
    ]


def context_filters(w: World) -> list[str]:
    return [
        "name = 'a-pipeline'",
        "external_id LIKE 'ext-a%'",
        "properties.owner.string_value = 'bob'",
        "parent_contexts_a.name = 'b-pipeline'",
        "parent_contexts_a.name = 'shared-pipeline'",
        "parent_contexts_a.type = 'Pipeline' AND type = 'Run'",
        "child_contexts_a.name = 'a-run-1'",
        "child_contexts_a.name LIKE '%'",
        "artifacts_a.name = 'a-model-v2'",
        "artifacts_a.uri = 's3://a/data'",
        "executions_a.name = 'b-trainer'",
        "executions_a.last_known_state = FAILED",
        "artifacts_a.name LIKE 'a-%' AND executions_b.name LIKE '%train%'",
    ]


def listing_requests(request_class: type[Any], filters: list[str], **fields: Any) -> list[Any]:
    requests = [request_class(**fields)]
    requests += [request_class(options=options, **fields) for options in PAGINGS]
    requests += [request_class(options=Options(max_result_size=2, filter_query=f), **fields) for f in filters]
    requests.append(request_class(options=Options(max_result_size=1, filter_query="id = = 1"), **fields))
    return requests


def by_ids(request_class: type[Any], field: str, ids: list[int], **extra: Any) -> list[Any]:
    """Each id alone, all together (shuffled, with repeats), and none."""
    mixed = list(reversed(ids)) + ids[:3]
    return [request_class(**{field: [i]}, **extra) for i in ids] + [
        request_class(**{field: mixed}, **extra),
        request_class(**extra),
    ]


def node_names(w: World, kind: str) -> list[tuple[str, str]]:
    """(type name, node name) of every node of `kind`, plus near misses."""
    spec_class = {"artifact": ArtifactSpec, "execution": ExecutionSpec, "context": ContextSpec}[kind]
    pairs = [(s.type, s.name) for s in w.specs.values() if isinstance(s, spec_class)]
    return [*pairs, ("Nope", "a-data"), (pairs[0][0], "nope")]


def external_ids(w: World, kind: str) -> list[list[str]]:
    spec_class = {"artifact": ArtifactSpec, "execution": ExecutionSpec, "context": ContextSpec}[kind]
    known = sorted(s.external_id for s in w.specs.values() if isinstance(s, spec_class) and s.external_id)
    return [[x] for x in known] + [known, ["nope"], [""], ["nope", known[-1]]]


def subgraph(start: str, text: str, hops: int | None, direction: int, **extra: Any) -> svc.GetLineageSubgraphRequest:
    options = Lineage(direction=direction, **extra)  # type: ignore[arg-type]
    getattr(options, start).filter_query = text
    if hops is not None:
        options.max_num_hops = hops
    return svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=options)


def lineage_subgraph_cases(w: World) -> list[Any]:
    a, e = w.artifacts, w.executions
    directions = (Lineage.BIDIRECTIONAL, Lineage.UPSTREAM, Lineage.DOWNSTREAM)
    requests = []
    # From A into B (a_model -> b_evaluator, b_model -> a_eval), from shared into both,
    # from B and from default (which Alice cannot read: NOT_FOUND, as for a missing id).
    for key in ("a_model", "shared_census", "b_model", "legacy_data"):
        for direction in directions:
            for hops in (1, 3):
                requests.append(subgraph("starting_artifacts", f"id = {a[key]}", hops, direction))
        requests.append(subgraph("starting_artifacts", f"id = {a[key]}", None, Lineage.BIDIRECTIONAL))
    for key in ("a_trainer", "b_evaluator"):
        for direction in directions:
            requests.append(subgraph("starting_executions", f"id = {e[key]}", 2, direction))
    for text in ("uri = 's3://a/data'", "name LIKE 'a-%'", "contexts_a.name = 'b-pipeline'", f"id = {MISSING_ID}"):
        requests.append(subgraph("starting_artifacts", text, 2, Lineage.BIDIRECTIONAL))
    requests.append(subgraph("starting_executions", "contexts_a.name = 'shared-pipeline'", 3, Lineage.BIDIRECTIONAL))
    ending_b = Lineage.EndingNodes(filter_query="name = 'b-eval'")
    ending_b_kept = Lineage.EndingNodes(filter_query="name = 'b-eval'", include_ending_nodes=True)
    ending_models = Lineage.EndingNodes(filter_query="type = 'Model'", include_ending_nodes=True)
    # An ending rule that joins neighbours: B's context must not make a node an ending one.
    ending_in_b = Lineage.EndingNodes(filter_query="contexts_a.name = 'b-pipeline'", include_ending_nodes=True)
    requests.append(
        subgraph(
            "starting_executions", f"id = {e['a_trainer']}", 3, Lineage.BIDIRECTIONAL, ending_artifacts=ending_in_b
        )
    )
    for ending in (ending_b, ending_b_kept):
        requests.append(
            subgraph("starting_artifacts", f"id = {a['a_model']}", 4, Lineage.DOWNSTREAM, ending_executions=ending)
        )
    requests.append(
        subgraph("starting_executions", f"id = {e['a_eval']}", 4, Lineage.BIDIRECTIONAL, ending_artifacts=ending_models)
    )
    for paths in (["artifacts", "events"], ["contexts", "attributions", "associations"], ["executions", "nope"]):
        request = subgraph("starting_artifacts", f"id = {a['a_model']}", 3, Lineage.BIDIRECTIONAL)
        request.read_mask.CopyFrom(field_mask_pb2.FieldMask(paths=paths))
        requests.append(request)
    return requests


def lineage_graph_cases(w: World) -> list[Any]:
    a = w.artifacts
    requests = []
    stop = mlmd.LineageGraphQueryOptions.BoundaryConstraint
    for key in ("a_model", "shared_census", "b_model", "legacy_data"):
        for hops in (1, 3):
            options = mlmd.LineageGraphQueryOptions(
                artifacts_options=Options(filter_query=f"id = {a[key]}"), stop_conditions=stop(max_num_hops=hops)
            )
            requests.append(svc.GetLineageGraphRequest(options=options))
    for options in (
        mlmd.LineageGraphQueryOptions(artifacts_options=Options(filter_query="uri = 's3://a/data'")),
        mlmd.LineageGraphQueryOptions(
            artifacts_options=Options(
                filter_query="uri LIKE 's3://a/%'",
                max_result_size=2,
                order_by_field=Order(field=Order.CREATE_TIME, is_asc=False),
            ),
            max_node_size=0,
        ),
        mlmd.LineageGraphQueryOptions(
            artifacts_options=Options(filter_query="name LIKE 'a-%'"),
            max_node_size=4,
            stop_conditions=stop(max_num_hops=4),
        ),
        mlmd.LineageGraphQueryOptions(
            artifacts_options=Options(filter_query=f"id = {a['a_model']}"),
            stop_conditions=stop(max_num_hops=4, boundary_executions="name != 'b-eval'"),
        ),
        mlmd.LineageGraphQueryOptions(
            artifacts_options=Options(filter_query=f"id = {a['shared_census']}"),
            stop_conditions=stop(max_num_hops=4, boundary_artifacts="type != 'Model'"),
        ),
        mlmd.LineageGraphQueryOptions(
            artifacts_options=Options(filter_query=f"id = {a['a_data']}"),
            stop_conditions=stop(max_num_hops=4, boundary_executions="NOT(contexts_a.name = 'b-pipeline')"),
        ),
        mlmd.LineageGraphQueryOptions(artifacts_options=Options(filter_query=f"id = {MISSING_ID}")),
        mlmd.LineageGraphQueryOptions(),
    ):
        requests.append(svc.GetLineageGraphRequest(options=options))
    return requests


def _types(kind: str) -> Cases:
    upper = kind.capitalize()
    names = {"artifact": ["Dataset", "Model", "mlmd.Dataset"], "execution": ["Trainer", "mlmd.Train"]}.get(
        kind, ["Run"]
    )

    def cases(w: World) -> list[Any]:
        request_class = getattr(svc, f"Get{upper}TypeRequest")
        return [request_class(type_name=n) for n in [*names, "Nope"]]

    return cases


def _type_ids(kind: str) -> Cases:
    def cases(w: World) -> list[Any]:
        ids = [*sorted(getattr(w, f"{kind}_types").values()), 1, MISSING_ID]
        return by_ids(getattr(svc, f"Get{kind.capitalize()}TypesByIDRequest"), "type_ids", ids)

    return cases


def _type_external_ids(kind: str) -> Cases:
    def cases(w: World) -> list[Any]:
        request_class = getattr(svc, f"Get{kind.capitalize()}TypesByExternalIdsRequest")
        known = [f"ext-type-{name.lower()}" for name in getattr(w, f"{kind}_types")]
        return [request_class(external_ids=x) for x in ([known[0]], known, ["nope"], [])]

    return cases


def _by_type(kind: str, type_names: list[str], filters: Callable[[World], list[str]]) -> Cases:
    plural = {"artifact": "Artifacts", "execution": "Executions", "context": "Contexts"}[kind]

    def cases(w: World) -> list[Any]:
        request_class = getattr(svc, f"Get{plural}ByTypeRequest")
        requests = []
        for name in [*type_names, "Nope"]:
            requests.append(request_class(type_name=name))
            requests += [request_class(type_name=name, options=options) for options in PAGINGS[::2]]
            requests += [
                request_class(type_name=name, options=Options(max_result_size=2, filter_query=f))
                for f in filters(w)[:2]
            ]
        return requests

    return cases


def _by_type_and_name(kind: str) -> Cases:
    singular = kind.capitalize()

    def cases(w: World) -> list[Any]:
        request_class = getattr(svc, f"Get{singular}ByTypeAndNameRequest")
        return [request_class(type_name=t, **{f"{kind}_name": n}) for t, n in node_names(w, kind)]

    return cases


def _by_external_ids(kind: str) -> Cases:
    plural = {"artifact": "Artifacts", "execution": "Executions", "context": "Contexts"}[kind]

    def cases(w: World) -> list[Any]:
        request_class = getattr(svc, f"Get{plural}ByExternalIdsRequest")
        return [request_class(external_ids=x) for x in external_ids(w, kind)]

    return cases


def _by_context(request_class: type[Any], filters: Callable[[World], list[str]]) -> Cases:
    def cases(w: World) -> list[Any]:
        requests = [request_class(context_id=context_id) for context_id in _ids(w, w.contexts)]
        # Contexts holding nodes of several namespaces: paged, and filtered through neighbours.
        for key in ("shared_pipeline", "a_pipeline", "b_pipeline", "b_run"):
            requests.append(request_class(context_id=w.contexts[key], options=Options(max_result_size=1)))
            requests.append(request_class(context_id=w.contexts[key], options=PAGINGS[4]))
            requests += [
                request_class(context_id=w.contexts[key], options=Options(max_result_size=2, filter_query=f))
                for f in filters(w)[4:8]
            ]
        return requests

    return cases


def _uris(w: World) -> list[Any]:
    uris = sorted({s.uri for s in w.specs.values() if hasattr(s, "uri")})
    return [svc.GetArtifactsByURIRequest(uris=[u]) for u in uris] + [
        svc.GetArtifactsByURIRequest(uris=[*reversed(uris), uris[0], "s3://nope"]),
        svc.GetArtifactsByURIRequest(),
    ]


def _parents_of_many(request_class: type[Any]) -> Cases:
    def cases(w: World) -> list[Any]:
        ids = _ids(w, w.contexts)
        return [request_class(context_ids=[i]) for i in ids] + [request_class(context_ids=ids), request_class()]

    return cases


CASES: dict[str, Cases] = {
    "GetArtifactType": _types("artifact"),
    "GetExecutionType": _types("execution"),
    "GetContextType": _types("context"),
    "GetArtifactTypesByID": _type_ids("artifact"),
    "GetExecutionTypesByID": _type_ids("execution"),
    "GetContextTypesByID": _type_ids("context"),
    "GetArtifactTypes": lambda w: [svc.GetArtifactTypesRequest()],
    "GetExecutionTypes": lambda w: [svc.GetExecutionTypesRequest()],
    "GetContextTypes": lambda w: [svc.GetContextTypesRequest()],
    "GetArtifactTypesByExternalIds": _type_external_ids("artifact"),
    "GetExecutionTypesByExternalIds": _type_external_ids("execution"),
    "GetContextTypesByExternalIds": _type_external_ids("context"),
    "GetArtifacts": lambda w: listing_requests(svc.GetArtifactsRequest, artifact_filters(w)),
    "GetExecutions": lambda w: listing_requests(svc.GetExecutionsRequest, execution_filters(w)),
    "GetContexts": lambda w: listing_requests(svc.GetContextsRequest, context_filters(w)),
    "GetArtifactsByID": lambda w: (
        by_ids(svc.GetArtifactsByIDRequest, "artifact_ids", _ids(w, w.artifacts))
        + by_ids(svc.GetArtifactsByIDRequest, "artifact_ids", _ids(w, w.artifacts), populate_artifact_types=True)[-2:]
    ),
    "GetExecutionsByID": lambda w: by_ids(svc.GetExecutionsByIDRequest, "execution_ids", _ids(w, w.executions)),
    "GetContextsByID": lambda w: by_ids(svc.GetContextsByIDRequest, "context_ids", _ids(w, w.contexts)),
    "GetArtifactsByType": _by_type("artifact", ["Dataset", "Model", "mlmd.Dataset"], artifact_filters),
    "GetExecutionsByType": _by_type("execution", ["Trainer", "Evaluator"], execution_filters),
    "GetContextsByType": _by_type("context", ["Pipeline", "Run"], context_filters),
    "GetArtifactByTypeAndName": _by_type_and_name("artifact"),
    "GetExecutionByTypeAndName": _by_type_and_name("execution"),
    "GetContextByTypeAndName": _by_type_and_name("context"),
    "GetArtifactsByURI": _uris,
    "GetArtifactsByExternalIds": _by_external_ids("artifact"),
    "GetExecutionsByExternalIds": _by_external_ids("execution"),
    "GetContextsByExternalIds": _by_external_ids("context"),
    "GetEventsByExecutionIDs": lambda w: by_ids(
        svc.GetEventsByExecutionIDsRequest, "execution_ids", _ids(w, w.executions)
    ),
    "GetEventsByArtifactIDs": lambda w: by_ids(svc.GetEventsByArtifactIDsRequest, "artifact_ids", _ids(w, w.artifacts)),
    "GetContextsByArtifact": lambda w: [svc.GetContextsByArtifactRequest(artifact_id=i) for i in _ids(w, w.artifacts)],
    "GetContextsByExecution": lambda w: [
        svc.GetContextsByExecutionRequest(execution_id=i) for i in _ids(w, w.executions)
    ],
    "GetParentContextsByContext": lambda w: [
        svc.GetParentContextsByContextRequest(context_id=i) for i in _ids(w, w.contexts)
    ],
    "GetChildrenContextsByContext": lambda w: [
        svc.GetChildrenContextsByContextRequest(context_id=i) for i in _ids(w, w.contexts)
    ],
    "GetParentContextsByContexts": _parents_of_many(svc.GetParentContextsByContextsRequest),
    "GetChildrenContextsByContexts": _parents_of_many(svc.GetChildrenContextsByContextsRequest),
    "GetArtifactsByContext": _by_context(svc.GetArtifactsByContextRequest, artifact_filters),
    "GetExecutionsByContext": _by_context(svc.GetExecutionsByContextRequest, execution_filters),
    "GetLineageSubgraph": lineage_subgraph_cases,
    "GetLineageGraph": lineage_graph_cases,
}

# Types are shared by every namespace: their answers never depend on the caller.
TYPE_RPCS = frozenset(name for name in READ_RPCS if "Type" in name and "ByType" not in name)


# -- running a request -------------------------------------------------------------------------

MAX_PAGES = 50


def _normalised(response: Any) -> Any:
    """The response with a non-empty page token replaced by a marker: whether there is a
    next page must agree, the token text differs when it is signed."""
    if "next_page_token" in response.DESCRIPTOR.fields_by_name and response.next_page_token:
        copy = type(response)()
        copy.CopyFrom(response)
        copy.next_page_token = "<next page>"
        return copy
    return response


def outcome(store: MetadataStore, rpc: str, request: Any, caller: Tenancy | None) -> tuple[Any, ...]:
    """Every page of the answer (following tokens), or the error class and message."""
    method = method_of(store, rpc)
    pages: list[Any] = []
    current = request
    with acting_as(caller):
        try:
            for _ in range(MAX_PAGES):
                response = method(current)
                pages.append(_normalised(response))
                token = getattr(response, "next_page_token", "")
                if not token or "options" not in current.DESCRIPTOR.fields_by_name or not current.HasField("options"):
                    break
                current = type(request)()
                current.CopyFrom(request)
                current.options.next_page_token = token
            else:
                raise AssertionError(f"{rpc}: more than {MAX_PAGES} pages")
        except errors.LineageError as error:
            return ("error", len(pages), type(error).__name__, error.message, *pages)
    return ("ok", *pages)


def describe(request: Any) -> str:
    return f"{type(request).__name__} {{{text_format.MessageToString(request, as_one_line=True)}}}"


# -- the tests ---------------------------------------------------------------------------------


def test_every_read_rpc_has_cases() -> None:
    assert sorted(CASES) == READ_RPCS
    assert len(READ_RPCS) == 40  # MLMD 1.17.1's Get* methods (tests/data/mlmd-wire.json)


@pytest.fixture(scope="module")
def references(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, MetadataStore]]:
    """Per caller, the store holding only what that caller may read."""
    directory = str(tmp_path_factory.mktemp("references"))
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(reference_store(world, caller.readable or frozenset(), directory))
            for name, caller in CALLERS.items()
        }


def test_references_hold_exactly_the_readable_nodes(world: World, references: dict[str, MetadataStore]) -> None:
    """The yardstick itself: each reference keeps the caller's nodes and the edges
    between them, and nothing else."""
    for name, caller in CALLERS.items():
        readable = caller.readable or frozenset()
        keys = set(world.keys_in(*readable))
        store = references[name]
        names = {a.name for a in store.get_artifacts(svc.GetArtifactsRequest()).artifacts}
        names |= {e.name for e in store.get_executions(svc.GetExecutionsRequest()).executions}
        names |= {c.name for c in store.get_contexts(svc.GetContextsRequest()).contexts}
        assert names == {world.specs[key].name for key in keys}, name
        artifact_ids = [world.artifacts[key] for key in keys if key in world.artifacts]
        events = store.get_events_by_artifact_ids(svc.GetEventsByArtifactIDsRequest(artifact_ids=artifact_ids)).events
        assert len(events) == sum(1 for art, exe, _, _ in EVENTS if {art, exe} <= keys), name


@pytest.mark.parametrize("rpc", READ_RPCS)
def test_read_rpc_answers_as_if_only_readable_nodes_existed(
    rpc: str, world: World, references: dict[str, MetadataStore]
) -> None:
    requests = CASES[rpc](world)
    mismatches: list[str] = []
    differs_from_unrestricted = False
    for request in requests:
        # Only until one answer differs: the check is about the dataset, not the store.
        unrestricted = None if differs_from_unrestricted else outcome(world.store, rpc, request, None)
        for name, caller in CALLERS.items():
            actual = outcome(world.store, rpc, request, caller)
            expected = outcome(references[name], rpc, request, None)
            if actual != expected:
                mismatches.append(
                    f"{name}: {describe(request)}\n  expected (reference): {_show(expected)}\n  actual: {_show(actual)}"
                )
            differs_from_unrestricted |= unrestricted is not None and actual != unrestricted
    assert not mismatches, f"{len(mismatches)} of {len(requests) * len(CALLERS)} answers leak or differ:\n" + "\n".join(
        mismatches[:10]
    )
    # Not vacuous: the dataset puts unreadable nodes in reach of every node RPC's requests.
    assert differs_from_unrestricted == (rpc not in TYPE_RPCS), rpc


def _show(result: tuple[Any, ...]) -> str:
    return " | ".join(
        text_format.MessageToString(part, as_one_line=True) if hasattr(part, "DESCRIPTOR") else repr(part)
        for part in result
    )
