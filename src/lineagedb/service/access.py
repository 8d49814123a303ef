"""Namespace rules for writes that touch stored nodes (the policy decided the rest).

Reads need nothing here: the store scopes every statement by the call's readable
namespaces. Writes add two rules the store cannot know: an update needs the right to
write the node's own namespace, and an edge (event, attribution, association,
parent context) needs both ends readable and at least one end writable, so one team
can link its model to another team's dataset but not wire two of that team's nodes
together.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from lineagedb import errors
from lineagedb.store import tenancy
from lineagedb.store.repositories import edges as edge_repo
from lineagedb.store.unit_of_work import UnitOfWork

# An edge end: (node kind value, node id, what to call it in a message).
End = tuple[str, int]


def _unrestricted(uow: UnitOfWork) -> bool:
    return uow.tenancy.readable is None and uow.tenancy.writable is None


def learn_namespaces(uow: UnitOfWork, wanted: Mapping[str, Collection[int]]) -> None:
    """Look up, in one statement, the stored nodes a composite write names, so that the
    checks that follow (read_only, readable_ids, require_link_rights) find them known.
    On MySQL/MariaDB the lookup rides with the write's next statement (tenancy.locate_ahead):
    a check failing after a write rolls the write back with the rest."""
    if not _unrestricted(uow) and any(wanted.values()):
        tenancy.locate_ahead(uow, wanted)


def read_only(uow: UnitOfWork, kind_value: str, ids: Collection[int]) -> set[int]:
    """Those of `ids` (readable nodes) whose namespace the call may not write."""
    if uow.tenancy.writable is None or not ids:
        return set()
    namespaces = tenancy.namespaces_of(uow, kind_value, ids)
    return {node_id for node_id, namespace in namespaces.items() if not uow.tenancy.may_write(namespace)}


def readable_ids(uow: UnitOfWork, kind_value: str, ids: Collection[int]) -> set[int]:
    """The ids among `ids` of stored nodes the call may read. For a restricted caller the
    lookup also learns their namespaces, which the link checks that follow then reuse."""
    if uow.tenancy.readable is None:
        return edge_repo.existing_ids(uow, getattr(uow.schema, kind_value), ids)
    located = tenancy.locate(uow, kind_value, ids)
    return {node_id for node_id, namespace in located.items() if uow.tenancy.may_read(namespace)}


def require_link_rights(
    uow: UnitOfWork,
    links: Sequence[tuple[End, End]],
    what: str,
    already_linked: Callable[[list[tuple[End, End]]], set[tuple[End, End]]] | None = None,
) -> None:
    """Each link's ends readable (else reported as missing) and one of them writable.

    `already_linked` says which links exist already: re-stating one (PutExecution links
    every artifact of the call to every context, a shared input to a shared pipeline
    context included) changes nothing, so it needs no write right."""
    if _unrestricted(uow) or not links:
        return
    # The transaction usually knows every end already (it looked them up or created them):
    # only the others are looked up, in one statement.
    known = uow.known_namespaces
    unknown: dict[str, set[int]] = {}
    for ends in links:
        for kind_value, node_id in ends:
            if (tenancy.kind_number(kind_value), node_id) not in known:
                unknown.setdefault(kind_value, set()).add(node_id)
    if unknown or uow.namespaces_ahead:
        tenancy.locate_many(uow, unknown)  # also takes in the answers of a lookup sent ahead

    def namespace(end: End) -> str:
        # A node that does not exist (None: looked up, not found) counts as `default`, as
        # tenancy.namespaces_of says.
        return known[tenancy.kind_number(end[0]), end[1]] or tenancy.DEFAULT_NAMESPACE

    may_read, may_write = uow.tenancy.may_read, uow.tenancy.may_write
    unwritable: list[tuple[End, End]] = []
    for ends in links:
        for end in ends:
            if not may_read(namespace(end)):
                raise errors.InvalidArgumentError(f"{what} refers to {end[0]} {end[1]}, which does not exist")
        if not any(may_write(namespace(end)) for end in ends):
            unwritable.append(ends)
    if unwritable and already_linked is not None:
        existing = already_linked(unwritable)
        unwritable = [ends for ends in unwritable if ends not in existing]
    if unwritable:
        (kind_a, id_a), (kind_b, id_b) = unwritable[0]
        raise errors.PermissionDeniedError(
            f"{what} between {kind_a} {id_a} and {kind_b} {id_b} needs the right to write "
            "the namespace of at least one of them"
        )
