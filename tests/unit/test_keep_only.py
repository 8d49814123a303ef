"""service.answers.service._keep_only: filtering a repeated field in place, both ways it does it."""

from __future__ import annotations

import pytest

from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.service.answers.service import _FEW, _keep_only


@pytest.mark.parametrize("dropped_every", [1000, 2])  # a few removals, then many (rebuilt)
def test_keeps_the_kept_in_order_with_their_content(dropped_every: int) -> None:
    response = pb.ImpactResponse()
    for i in range(200):
        artifact = response.artifacts.add(id=i, type=f"T{i % 3}")
        artifact.properties["p"].int_value = i
    keep = lambda artifact: artifact.id % dropped_every != 1  # noqa: E731
    expected = [(i, f"T{i % 3}", i) for i in range(200) if i % dropped_every != 1]
    assert (200 - len(expected) <= _FEW) == (dropped_every == 1000)
    _keep_only(response.artifacts, keep)
    got = [(a.id, a.type, a.properties["p"].int_value) for a in response.artifacts]
    assert got == expected
    # The response serializes what it holds (nothing detached left behind).
    again = pb.ImpactResponse.FromString(response.SerializeToString())
    assert [a.id for a in again.artifacts] == [i for i, _, _ in expected]
