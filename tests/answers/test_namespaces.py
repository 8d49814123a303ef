"""Lineage answers in a store shared by teams: a caller's answer is exactly the answer
computed over only the nodes that caller may read. Nodes in a namespace the caller
cannot read are left out entirely: no placeholder and no count, since even a count
would tell one team that another's work depends on theirs.

The yardstick is tests/tenancy's: the multi-tenant dataset, and per caller a copy of
the database with every node the caller cannot read deleted, queried unrestricted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.service.answers.service import LineageAnswers
from lineagedb.store.tenancy import Tenancy
from tests.tenancy.world import CALLERS, World, acting_as, reference_store, world_database


@pytest.fixture(scope="module")
def world(module_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world_database(module_backend, str(tmp_path_factory.mktemp("answers-tenancy"))) as built:
        yield built


@pytest.fixture(scope="module")
def references(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LineageAnswers]]:
    directory = str(tmp_path_factory.mktemp("answers-references"))
    with ExitStack() as stack:
        yield {
            name: LineageAnswers(
                stack.enter_context(reference_store(world, caller.readable or frozenset(), directory)).db
            )
            for name, caller in CALLERS.items()
        }


def _refs(world: World) -> list[pb.NodeRef]:
    return (
        [pb.NodeRef(artifact_id=i) for i in world.artifacts.values()]
        + [pb.NodeRef(execution_id=i) for i in world.executions.values()]
        + [pb.NodeRef(context_id=i) for i in world.contexts.values()]
    )


Ask = Callable[[LineageAnswers, pb.NodeRef], Any]


def _outcome(ask: Ask, answers: LineageAnswers, node: pb.NodeRef, caller: Tenancy | None) -> Any:
    with acting_as(caller):
        try:
            return ask(answers, node)
        except errors.LineageError as error:
            return (type(error).__name__, error.message)


ANSWERS: dict[str, Ask] = {
    "Provenance": lambda answers, node: answers.provenance(pb.ClosureRequest(node=node)),
    "Impact": lambda answers, node: answers.impact(pb.ImpactRequest(node=node)),
    "Provenance, budget 3": lambda answers, node: answers.provenance(pb.ClosureRequest(node=node, max_nodes=3)),
}


@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_answers_are_as_if_only_readable_nodes_existed(
    answer: str, world: World, references: dict[str, LineageAnswers]
) -> None:
    full = LineageAnswers(world.database)
    ask = ANSWERS[answer]
    mismatches, differs = [], False
    for node in _refs(world):
        unrestricted = _outcome(ask, full, node, None)
        for name, caller in CALLERS.items():
            actual = _outcome(ask, full, node, caller)
            expected = _outcome(ask, references[name], node, None)
            if actual != expected:
                mismatches.append(f"{name} {node}: expected {expected}\nactual {actual}")
            differs |= actual != unrestricted
    assert not mismatches, f"{len(mismatches)} answers leak or differ:\n" + "\n".join(mismatches[:5])
    # Not vacuous: some caller's answer differs from the unrestricted one.
    assert differs
