"""Edge semantics: events (§3.7), attributions/associations (§3.8), parent contexts (§4.7)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service import access
from lineagedb.store.repositories import edges as edge_repo
from lineagedb.store.unit_of_work import UniqueViolation, UnitOfWork


def check_event_fields(event: mlmd.Event) -> None:
    if not event.HasField("artifact_id"):
        raise errors.InvalidArgumentError("event artifact_id is missing")
    if not event.HasField("execution_id"):
        raise errors.InvalidArgumentError("event execution_id is missing")
    if not event.HasField("type") or event.type == mlmd.Event.UNKNOWN:
        raise errors.InvalidArgumentError("event type must be set and not UNKNOWN")


def put_events(
    uow: UnitOfWork, events: Sequence[mlmd.Event], now_ms: int, check_nodes: bool = True, new_execution: bool = False
) -> None:
    """Insert events; `check_nodes` requires the artifact and execution to exist
    (PutEvents does, PutExecution and PutLineageSubgraph do not: spec §3.7). `new_execution`:
    every event belongs to an execution this transaction created, so only a repeat within
    `events` can clash (told here, before anything is sent)."""
    for event in events:
        check_event_fields(event)
    # MLMD lets composite writes name ids that exist nowhere. A caller restricted to some
    # namespaces may not: a hidden node and a missing one must read the same, and the only
    # answer that leaks neither is "does not exist" for both.
    check_nodes = check_nodes or uow.tenancy.readable is not None
    if check_nodes and events:
        artifacts = access.readable_ids(uow, "artifact", {e.artifact_id for e in events})
        executions = access.readable_ids(uow, "execution", {e.execution_id for e in events})
        for event in events:
            if event.artifact_id not in artifacts:
                raise errors.InvalidArgumentError(f"event refers to artifact {event.artifact_id}, which does not exist")
            if event.execution_id not in executions:
                raise errors.InvalidArgumentError(
                    f"event refers to execution {event.execution_id}, which does not exist"
                )
    # Also when the nodes are not checked (PutExecution): never an edge into a namespace
    # the caller cannot see, nor between two nodes it may not write.
    access.require_link_rights(
        uow, [(("artifact", e.artifact_id), ("execution", e.execution_id)) for e in events], "an event"
    )
    clash_free = False
    if new_execution:
        if len({(e.artifact_id, e.execution_id, e.type) for e in events}) != len(events):
            raise errors.AlreadyExistsError(_DUPLICATE_EVENT)
        clash_free = True
    try:
        edge_repo.insert_events(uow, events, now_ms, clash_free)
    except UniqueViolation as error:
        raise errors.AlreadyExistsError(_DUPLICATE_EVENT) from error


_DUPLICATE_EVENT = "an event with the same artifact_id, execution_id and type already exists"


def put_attributions_and_associations(
    uow: UnitOfWork, attributions: Sequence[mlmd.Attribution], associations: Sequence[mlmd.Association]
) -> None:
    schema = uow.schema
    contexts = edge_repo.existing_ids(
        uow, schema.context, [a.context_id for a in attributions] + [a.context_id for a in associations]
    )
    artifacts = edge_repo.existing_ids(uow, schema.artifact, (a.artifact_id for a in attributions))
    executions = edge_repo.existing_ids(uow, schema.execution, (a.execution_id for a in associations))
    for attribution in attributions:
        if attribution.context_id not in contexts:
            raise errors.InvalidArgumentError(f"attribution context {attribution.context_id} does not exist")
        if attribution.artifact_id not in artifacts:
            raise errors.InvalidArgumentError(f"attribution artifact {attribution.artifact_id} does not exist")
    for association in associations:
        if association.context_id not in contexts:
            raise errors.InvalidArgumentError(f"association context {association.context_id} does not exist")
        if association.execution_id not in executions:
            raise errors.InvalidArgumentError(f"association execution {association.execution_id} does not exist")
    link_attributions(uow, ((a.context_id, a.artifact_id) for a in attributions))
    link_associations(uow, ((a.context_id, a.execution_id) for a in associations))


def link_attributions(uow: UnitOfWork, pairs: Iterable[tuple[int, int]]) -> None:
    rows = [{"context_id": c, "artifact_id": a} for c, a in pairs]
    access.require_link_rights(
        uow,
        [(("context", r["context_id"]), ("artifact", r["artifact_id"])) for r in rows],
        "an attribution",
        lambda links: _existing_links(uow, uow.schema.attribution, "artifact_id", links),
    )
    edge_repo.insert_ignoring_duplicates(uow, uow.schema.attribution, rows)


def link_associations(uow: UnitOfWork, pairs: Iterable[tuple[int, int]]) -> None:
    rows = [{"context_id": c, "execution_id": e} for c, e in pairs]
    access.require_link_rights(
        uow,
        [(("context", r["context_id"]), ("execution", r["execution_id"])) for r in rows],
        "an association",
        lambda links: _existing_links(uow, uow.schema.association, "execution_id", links),
    )
    edge_repo.insert_ignoring_duplicates(uow, uow.schema.association, rows)


def _existing_links(
    uow: UnitOfWork, table: Any, owner_column: str, links: list[tuple[access.End, access.End]]
) -> set[tuple[access.End, access.End]]:
    """Those of `links` (context end first) that are stored already."""
    stored = edge_repo.existing_links(uow, table, owner_column, [(c[1], n[1]) for c, n in links])
    return {link for link in links if (link[0][1], link[1][1]) in stored}


def put_parent_contexts(uow: UnitOfWork, links: Sequence[mlmd.ParentContext]) -> None:
    for link in links:
        if not link.HasField("child_id") or not link.HasField("parent_id"):
            raise errors.InvalidArgumentError("parent context link needs both child_id and parent_id")
    existing = edge_repo.existing_ids(
        uow, uow.schema.context, [x for link in links for x in (link.child_id, link.parent_id)]
    )
    for link in links:
        # MLMD fetches both ids and wants two rows, so a self-link reads as "not found".
        if link.child_id == link.parent_id or link.child_id not in existing or link.parent_id not in existing:
            raise errors.InvalidArgumentError(
                f"parent context link {link.child_id} -> {link.parent_id}: both contexts must exist and differ "
                "(cannot be found)"
            )
        # After the existence check, so an invisible context reads as a missing one.
        access.require_link_rights(
            uow, [(("context", link.child_id), ("context", link.parent_id))], "a parent context link"
        )
        if _reaches(uow, start=link.parent_id, target=link.child_id):
            raise errors.InvalidArgumentError(
                f"parent context link {link.child_id} -> {link.parent_id} would create a cycle (cycle detected)"
            )
        try:
            edge_repo.insert_parent_context(uow, link.child_id, link.parent_id)
        except UniqueViolation as error:
            raise errors.AlreadyExistsError(
                f"context {link.parent_id} is already a parent of context {link.child_id}"
            ) from error


def _reaches(uow: UnitOfWork, start: int, target: int) -> bool:
    """Whether `target` is an ancestor-or-self of `start`, one query per level."""
    frontier, seen = {start}, {start}
    while frontier:
        if target in frontier:
            return True
        parents = {parent for _, parent in edge_repo.parent_links(uow, frontier, integrity_check=True)}
        frontier = parents - seen
        seen |= frontier
    return False
