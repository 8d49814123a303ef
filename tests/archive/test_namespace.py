"""Export of one namespace: its nodes, the types they use (with their base types), and only
the edges whose both ends are in it. Imported elsewhere, it reads exactly as the source
reads for a caller who sees only that namespace."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from lineagedb import errors
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import tenancy
from lineagedb.store.tenancy import DEFAULT_NAMESPACE, Tenancy
from tests.archive.conftest import (
    TEAM,
    assert_same_views,
    export,
    import_,
    scratch_store,
    verify,
    views,
    write_varied_store,
)
from tests.tenancy.world import acting_as


def _only(namespace: str) -> Tenancy:
    return Tenancy(namespace=namespace, readable=frozenset({namespace}), writable=frozenset())


def _records(path: Path) -> list[dict[str, object]]:
    with gzip.open(path, "rb") as file:
        return [json.loads(line) for line in file.read().splitlines()]


def test_a_namespace_archive_holds_its_nodes_types_and_inner_edges(
    store: MetadataStore, database_url: str, tmp_path: Path
) -> None:
    ids = write_varied_store(store)
    path = tmp_path / "team.jsonl.gz"
    export(database_url, path, TEAM)
    records = _records(path)
    assert records[0]["namespace"] == TEAM
    rows = records[1:-1]
    counts = Counter(str(r["t"]) for r in rows)
    team = ids["team"]
    assert counts == {
        "namespace": 1,
        "type": 5,  # Everything, Step, Group and their base types mlmd.Dataset, mlmd.Train
        "type_property": 18,
        "parent_type": 2,
        "artifact": 2,
        "artifact_property": 12,
        "execution": 1,
        "context": 2,
        "node_namespace": 5,
        "event": 2,  # not the one from an artifact of `default`
        "attribution": 2,  # nor the attribution of that artifact
        "association": 1,
        "parent_context": 1,
    }
    assert sorted(int(str(r["id"])) for r in rows if r["t"] == "artifact") == team["artifacts"]
    assert {r["name"] for r in rows if r["t"] == "type"} == {
        "Everything",
        "Step",
        "Group",
        "mlmd.Dataset",
        "mlmd.Train",
    }
    assert {r["namespace"] for r in rows if r["t"] == "node_namespace"} == {TEAM}
    equal, text = verify(database_url, path)
    assert equal, text
    assert "(namespace team-a)" in text


@pytest.mark.parametrize("namespace", [TEAM, DEFAULT_NAMESPACE])
def test_an_imported_namespace_reads_as_the_source_does_for_its_readers(
    store: MetadataStore, database_url: str, other_backend: str, tmp_path: Path, namespace: str
) -> None:
    write_varied_store(store)
    with acting_as(_only(namespace)):
        expected = views(store, with_types=False)
    path = tmp_path / "ns.jsonl.gz"
    export(database_url, path, namespace)
    with scratch_store(other_backend, tmp_path / "target") as target:
        import_(target.url, path)
        assert_same_views(expected, views(target.store, with_types=False))
        with target.database.transaction(write=False) as uow:
            listed = dict(tenancy.list_namespaces(uow))
        if namespace == TEAM:
            assert listed == {DEFAULT_NAMESPACE: -1, TEAM: 5}
            # In the target too, the nodes are the namespace's, not default's.
            with acting_as(_only(DEFAULT_NAMESPACE)):
                assert views(target.store, with_types=False)["GetArtifacts"] == ""
        else:
            assert listed == {DEFAULT_NAMESPACE: -1}
        equal, text = verify(target.url, path)
        assert equal, text


def test_an_unknown_namespace_is_refused(store: MetadataStore, database_url: str, tmp_path: Path) -> None:
    with pytest.raises(errors.NotFoundError, match="namespace 'nobody' does not exist"):
        export(database_url, tmp_path / "x.jsonl.gz", "nobody")
    with pytest.raises(errors.InvalidArgumentError, match="a namespace name is"):
        export(database_url, tmp_path / "x.jsonl.gz", "Not A Name")
    assert not list(tmp_path.glob("x.jsonl.gz*"))
