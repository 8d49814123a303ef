"""Retention: plan which old runs to delete without touching anything a protected
artifact depends on, then carry out exactly that plan, resumably.

A policy has rules and protections (ops.retention reads them from a TOML file):

* a rule selects contexts (runs) with an MLMD filter_query and an age; the contexts
  older than that expire, and with them every artifact and execution that belongs to
  no other context the rule's filter selects ("everything only they reach");
* a protection selects artifacts with filter_queries (LIVE models of a type, artifacts
  in a production context, artifacts carrying a deployment marker, ...). A protected
  artifact and its whole upstream closure are never deleted.

The plan is then closed under lineage: a planned node that a surviving node depends on
(a consumer outside the plan, an output kept) is kept too, until nothing kept depends on
anything planned. It lists the nodes dependents-first and carries an id (SHA-256 of its
content) so `apply` can check it carries out exactly what was reviewed. Applying runs the
deletion service's batches: each batch its own transaction that re-checks dependents,
so a crash leaves a consistent store and applying the same plan again finishes it
(nodes already gone are skipped).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lineagedb import errors
from lineagedb.service.answers.closure import ARTIFACT, CONTEXT, EXECUTION, Direction, Node, walk
from lineagedb.service.deletion import Deletion, Plan, dependents_first
from lineagedb.store.repositories import deletion as deletion_repo
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.unit_of_work import UnitOfWork

PLAN_FORMAT = "lineagedb-retention-plan"
# The most nodes one filter may select or one plan may hold.
MAX_SELECTED = 1_000_000
DAY_MS = 86_400_000
SAMPLE = 10


@dataclass(frozen=True)
class Rule:
    name: str
    contexts: str  # filter_query over contexts
    older_than_days: float


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    # filter_queries over artifacts; a match and its upstream are never deleted.
    protect: tuple[str, ...] = ()


@dataclass
class RetentionPlan:
    created_ms: int
    policy: dict[str, Any]
    order: list[Node] = field(default_factory=list)
    # What protection and lineage kept back, for the report.
    kept_protected: int = 0
    kept_dependents: int = 0
    types: dict[str, int] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        body = {
            "format": PLAN_FORMAT,
            "version": 1,
            "created_ms": self.created_ms,
            "policy": self.policy,
            "order": [[kind.value, node_id] for kind, node_id in self.order],
            "kept_protected": self.kept_protected,
            "kept_dependents": self.kept_dependents,
            "types": self.types,
        }
        return {"plan_id": plan_id(body), **body}


def plan_id(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_plan(document: Any) -> tuple[str, list[Node]]:
    """The id and node order of a plan document, refusing one that was edited."""
    if not isinstance(document, dict) or document.get("format") != PLAN_FORMAT or document.get("version") != 1:
        raise errors.InvalidArgumentError("not a LineageDB retention plan (version 1)")
    body = {key: value for key, value in document.items() if key != "plan_id"}
    if plan_id(body) != document.get("plan_id"):
        raise errors.InvalidArgumentError("the plan was changed after it was made (its plan_id does not match)")
    kinds = {kind.value: kind for kind in (ARTIFACT, EXECUTION, CONTEXT)}
    try:
        order = [(kinds[kind], int(node_id)) for kind, node_id in document["order"]]
    except (KeyError, TypeError, ValueError):
        raise errors.InvalidArgumentError("the plan's order is malformed") from None
    return str(document["plan_id"]), order


class Retention:
    def __init__(self, deletion: Deletion) -> None:
        self.deletion = deletion
        self.db = deletion.db

    def plan(self, policy: Policy, now_ms: int, describe: dict[str, Any]) -> RetentionPlan:
        with self.db.transaction(write=False) as uow:
            return _plan(uow, policy, now_ms, describe)

    def apply(self, order: Sequence[Node], progress: Callable[[int, int], None] = lambda done, total: None) -> None:
        """Carry out a plan's order; already deleted nodes are skipped, so a plan
        interrupted half-way finishes when applied again."""
        selection: dict[NodeKind, set[int]] = {ARTIFACT: set(), EXECUTION: set(), CONTEXT: set()}
        for kind, node_id in order:
            selection[kind].add(node_id)
        plan = Plan(list(order), deletion_repo.Removed(), tombstone=False, selection=selection)
        self.deletion.carry_out(plan, progress)


def _plan(uow: UnitOfWork, policy: Policy, now_ms: int, describe: dict[str, Any]) -> RetentionPlan:
    expiring: set[int] = set()
    candidates: dict[NodeKind, set[int]] = {ARTIFACT: set(), EXECUTION: set()}
    for rule in policy.rules:
        cutoff = now_ms - int(rule.older_than_days * DAY_MS)
        selected = f"({rule.contexts}) AND create_time_since_epoch < {cutoff}"
        old = set(lineage_repo.first_matching_ids(uow, CONTEXT, selected, MAX_SELECTED))
        expiring |= old
        artifact_ids, execution_ids = lineage_repo.context_members(uow, old)
        # Members that also belong to a context the rule keeps are not "only theirs".
        for kind, members, links in (
            (ARTIFACT, artifact_ids, lineage_repo.attributions(uow, artifact_ids)),
            (EXECUTION, execution_ids, lineage_repo.associations(uow, execution_ids)),
        ):
            others = {link.context_id for link in links} - old
            kept_contexts = lineage_repo.ids_matching(uow, CONTEXT, others, rule.contexts) if others else set()
            shared = {link.node_id for link in links if link.context_id in kept_contexts}
            candidates[kind] |= members - shared
    planned = sum(len(ids) for ids in candidates.values())
    protected_ids: set[int] = set()
    for text in policy.protect:
        protected_ids |= set(lineage_repo.first_matching_ids(uow, ARTIFACT, text, MAX_SELECTED))
    kept_protected = 0
    if protected_ids and planned:
        upstream = walk(uow, [(ARTIFACT, i) for i in protected_ids], Direction.UPSTREAM, MAX_SELECTED)
        if upstream.truncated:
            raise errors.FailedPreconditionError(
                f"the protected artifacts' upstream exceeds {MAX_SELECTED} nodes; protect fewer artifacts"
            )
        for kind in (ARTIFACT, EXECUTION):
            before = len(candidates[kind])
            candidates[kind] -= upstream.ids(kind)
            kept_protected += before - len(candidates[kind])
    # Keep anything a surviving node depends on, until nothing kept depends on the plan.
    kept_dependents = 0
    while True:
        found = deletion_repo.dependents(uow, candidates[ARTIFACT], candidates[EXECUTION])
        depended_on = {(on_kind, on_id) for _, _, on_kind, on_id in found}
        if not depended_on:
            break
        for kind, node_id in depended_on:
            candidates[kind].discard(node_id)
        kept_dependents += len(depended_on)
    order = dependents_first(uow, candidates[ARTIFACT], candidates[EXECUTION])
    order += [(CONTEXT, i) for i in sorted(expiring)]
    plan = RetentionPlan(now_ms, describe, order, kept_protected, kept_dependents)
    plan.types = _count_types(uow, candidates, expiring)
    return plan


def _count_types(uow: UnitOfWork, candidates: dict[NodeKind, set[int]], contexts: set[int]) -> dict[str, int]:
    """Planned nodes per "kind/type name", for the report."""
    counts: Counter[str] = Counter()
    for kind, ids in ((ARTIFACT, candidates[ARTIFACT]), (EXECUTION, candidates[EXECUTION]), (CONTEXT, contexts)):
        for type_name in node_repo.type_names_of(uow, kind, ids):
            counts[f"{kind.value}/{type_name}"] += 1
    return dict(sorted(counts.items()))
