"""Import into a database that already holds data: taken ids are remapped consistently, identical
types are shared, differing types and duplicate nodes are refused (nothing imported), and
encrypted values are exported as ciphertext and re-bound when their node gets a new id."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.security.encryption import key_file_text
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import archive
from lineagedb.store.unit_of_work import Database
from tests.archive.conftest import export, import_, scratch_store, views, write_varied_store
from tests.backends import require_backend
from tests.encryption.conftest import (
    READER,
    VIEWER,
    Protected,
    assert_plaintext,
    protected_database,
    sample_artifact,
)
from tests.tenancy.world import acting_as

# -- an id-free picture of a store: what a client sees, nodes named instead of numbered ------------


def _node_key(kind: str, node: Any) -> tuple[str, str, str]:
    return (kind, node.type, node.name or getattr(node, "uri", ""))


def _clean(node: Any) -> str:
    copy = type(node)()
    copy.CopyFrom(node)
    copy.ClearField("id")
    copy.ClearField("type_id")
    return str(copy)


def graph(store: MetadataStore) -> dict[str, Any]:
    """Nodes by (kind, type name, name or uri) and edges between those keys; no ids anywhere."""
    artifacts = store.get_artifacts(svc.GetArtifactsRequest()).artifacts
    executions = store.get_executions(svc.GetExecutionsRequest()).executions
    contexts = store.get_contexts(svc.GetContextsRequest()).contexts
    keys = {("artifact", a.id): _node_key("artifact", a) for a in artifacts}
    keys.update({("execution", e.id): _node_key("execution", e) for e in executions})
    keys.update({("context", c.id): _node_key("context", c) for c in contexts})
    nodes = {
        keys[(kind, n.id)]: _clean(n)
        for kind, ns in (("artifact", artifacts), ("execution", executions), ("context", contexts))
        for n in ns
    }
    assert len(nodes) == len(keys), "node keys must be unique for this comparison"
    events = set()
    for event in store.get_events_by_artifact_ids(
        svc.GetEventsByArtifactIDsRequest(artifact_ids=[a.id for a in artifacts])
    ).events:
        events.add(
            (
                keys[("artifact", event.artifact_id)],
                keys[("execution", event.execution_id)],
                event.type,
                str(event.path),
                event.milliseconds_since_epoch,
            )
        )
    links = set()
    for context in contexts:
        context_key = keys[("context", context.id)]
        for a in store.get_artifacts_by_context(svc.GetArtifactsByContextRequest(context_id=context.id)).artifacts:
            links.add(("attribution", context_key, keys[("artifact", a.id)]))
        for e in store.get_executions_by_context(svc.GetExecutionsByContextRequest(context_id=context.id)).executions:
            links.add(("association", context_key, keys[("execution", e.id)]))
        parents = store.get_parent_contexts_by_context(svc.GetParentContextsByContextRequest(context_id=context.id))
        for parent in parents.contexts:
            links.add(("parent", context_key, keys[("context", parent.id)]))
    types = {}
    listings: tuple[tuple[str, Any], ...] = (
        ("artifact", store.get_artifact_types(svc.GetArtifactTypesRequest()).artifact_types),
        ("execution", store.get_execution_types(svc.GetExecutionTypesRequest()).execution_types),
        ("context", store.get_context_types(svc.GetContextTypesRequest()).context_types),
    )
    for kind, listed in listings:
        for t in listed:
            copy = type(t)()
            copy.CopyFrom(t)
            copy.ClearField("id")
            types[(kind, t.name, t.version)] = str(copy)
    return {"nodes": nodes, "events": events, "links": links, "types": types}


def _merged(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodes": {**first["nodes"], **second["nodes"]},
        "events": first["events"] | second["events"],
        "links": first["links"] | second["links"],
        "types": {**first["types"], **second["types"]},
    }


def write_other_data(store: MetadataStore) -> None:
    """Data of another team in the target: its ids collide with the archive's, its type
    `Examples` is the archive's (identical), `Local` is its own."""
    examples = store.put_artifact_type(
        svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Examples"))
    ).type_id
    local = store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Local"))).type_id
    step = store.put_execution_type(
        svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="LocalStep"))
    ).type_id
    group = store.put_context_type(svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="LocalGroup"))).type_id
    artifacts = store.put_artifacts(
        svc.PutArtifactsRequest(
            artifacts=[mlmd.Artifact(type_id=t, uri=f"s3://local/{n}") for n, t in enumerate((examples, local) * 3)]
        )
    ).artifact_ids
    executions = store.put_executions(
        svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=step, name=f"local-{n}") for n in range(4)])
    ).execution_ids
    contexts = store.put_contexts(
        svc.PutContextsRequest(contexts=[mlmd.Context(type_id=group, name=f"local-{n}") for n in range(3)])
    ).context_ids
    store.put_events(
        svc.PutEventsRequest(
            events=[
                mlmd.Event(artifact_id=a, execution_id=executions[n % 4], type=mlmd.Event.INPUT)
                for n, a in enumerate(artifacts)
            ]
        )
    )
    store.put_attributions_and_associations(
        svc.PutAttributionsAndAssociationsRequest(
            attributions=[mlmd.Attribution(context_id=contexts[0], artifact_id=a) for a in artifacts],
            associations=[mlmd.Association(context_id=contexts[1], execution_id=e) for e in executions],
        )
    )
    store.put_parent_contexts(
        svc.PutParentContextsRequest(parent_contexts=[mlmd.ParentContext(child_id=contexts[1], parent_id=contexts[0])])
    )


def _counts(database: Database) -> dict[str, int]:
    with database.engine.connect() as connection:
        return {
            section.tag: int(
                connection.execute(
                    sa.select(sa.func.count()).select_from(archive.table_for(database.schema, section.tag))
                ).scalar_one()
            )
            for section in archive.STORED_SECTIONS
        }


def _ids(database: Database) -> dict[str, set[int]]:
    with database.engine.connect() as connection:
        return {
            tag: set(connection.execute(sa.select(archive.table_for(database.schema, tag).c.id)).scalars())
            for tag in archive.ID_TAGS
        }


def _archive_ids(path: Path) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {tag: set() for tag in archive.ID_TAGS}
    with gzip.open(path, "rb") as file:
        for line in file.read().splitlines()[1:-1]:
            record = json.loads(line)
            if record["t"] in found:
                found[record["t"]].add(record["id"])
    return found


def test_import_into_a_non_empty_store_remaps_taken_ids(
    store: MetadataStore, database_url: str, other_backend: str, tmp_path: Path
) -> None:
    write_varied_store(store)
    source = graph(store)
    path = tmp_path / "store.jsonl.gz"
    export(database_url, path)
    with scratch_store(other_backend, tmp_path) as target:
        write_other_data(target.store)
        before = graph(target.store)
        counts_before = _counts(target.database)
        ids_before = _ids(target.database)
        output = import_(target.url, path)
        after = graph(target.store)
        assert after == _merged(before, source)
        # Every taken id was remapped, and the output says how many.
        counts_after = _counts(target.database)
        archive_ids = _archive_ids(path)
        for tag in ("artifact", "execution", "context", "event", "attribution", "association"):
            assert counts_after[tag] == counts_before[tag] + len(archive_ids[tag]), tag
        remapped_line = next(line for line in output.text.splitlines() if "ids remapped" in line)
        said = dict(item.rsplit(" ", 1) for item in remapped_line.split("(")[1].rstrip(")").split(", "))
        for tag in ("artifact", "execution", "context", "event", "attribution", "association"):
            assert int(said[tag]) == len(archive_ids[tag] & ids_before[tag]) > 0, tag
        total = int(remapped_line.split(":")[1].split()[0].replace(",", ""))
        assert total == sum(int(count) for count in said.values())
        assert "types already in the database (identical, used as they are): 10" in output.text  # 9 system + Examples


def test_a_type_defined_differently_in_the_target_is_refused(
    store: MetadataStore, database_url: str, other_backend: str, tmp_path: Path
) -> None:
    write_varied_store(store)
    path = tmp_path / "store.jsonl.gz"
    export(database_url, path)
    with scratch_store(other_backend, tmp_path) as target:
        target.store.put_artifact_type(
            svc.PutArtifactTypeRequest(
                artifact_type=mlmd.ArtifactType(name="Everything", version="v2", properties={"i": mlmd.STRING})
            )
        )
        before = _counts(target.database)
        with pytest.raises(errors.FailedPreconditionError) as refused:
            import_(target.url, path)
        message = refused.value.message
        assert "artifact type 'Everything' version 'v2' differs from the target database's" in message
        assert "properties: archive {b: BOOLEAN, d: DOUBLE, i: INT, p: PROTO, s: STRING, st: STRUCT}" in message
        assert "target {i: STRING}" in message
        assert "description: archive 'a property of every kind', target None" in message
        assert "base types: archive artifact type 'mlmd.Dataset', target none" in message
        assert _counts(target.database) == before


def test_importing_the_same_archive_twice_is_refused_and_changes_nothing(
    store: MetadataStore, database_url: str, other_backend: str, tmp_path: Path
) -> None:
    write_varied_store(store)
    path = tmp_path / "store.jsonl.gz"
    export(database_url, path)
    with scratch_store(other_backend, tmp_path) as target:
        import_(target.url, path)
        expected = views(target.store)
        counts = _counts(target.database)
        with pytest.raises(errors.FailedPreconditionError) as refused:
            import_(target.url, path)
        assert "the target database already has" in refused.value.message
        assert "an import adds nodes, it does not merge them" in refused.value.message
        assert _counts(target.database) == counts
        assert views(target.store) == expected


@contextmanager
def _protected(backend: str, directory: Path) -> Iterator[Protected]:
    require_backend(backend)
    directory.mkdir(parents=True)
    with protected_database(backend, str(directory)) as built:
        yield built


def test_encrypted_values_travel_as_ciphertext_and_are_rebound_when_remapped(
    backend: str, other_backend: str, tmp_path: Path
) -> None:
    with _protected(backend, tmp_path / "source") as source:
        with acting_as(READER):
            sample = sample_artifact(source.store)
        path = tmp_path / "secrets.jsonl.gz"
        export(source.url, path)
        with gzip.open(path, "rb") as file:
            text = file.read().decode("ascii")
        for secret in sample.secrets:
            assert secret not in text
            assert base64.b64encode(secret.encode()).decode() not in text
        assert text.count('"string_value":"lineagedb:enc:v1:k1:') == len(sample.sensitive)
        assert '"t":"encryption_key","key_id":"k1"' in text
        key_file = tmp_path / "keys.toml"
        key_file.write_text(key_file_text("k1", {"k1": base64.b64encode(source.keys["k1"]).decode()}))
        # Ids free in the target: kept, and the envelopes read back under the same keys.
        with _protected(other_backend, tmp_path / "kept") as kept:
            kept.use("k1", dict(source.keys))
            output = import_(kept.url, path)
            assert "encrypted values re-encrypted" not in output.text
            with acting_as(READER):
                node = kept.store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[sample.node_id]))
            assert_plaintext(node.artifacts[0], sample)
        # Ids taken in the target: refused without the keys, re-encrypted with them.
        with _protected(other_backend, tmp_path / "taken") as taken:
            taken.use("k1", dict(source.keys))
            with acting_as(READER):
                sample_artifact(taken.store)  # takes the archive's artifact id
            before = _counts(taken.database)
            with pytest.raises(errors.FailedPreconditionError) as refused:
                import_(taken.url, path)
            assert "holds encrypted values and is imported as artifact" in refused.value.message
            assert "--encryption-keys-file" in refused.value.message
            assert _counts(taken.database) == before
            output = import_(taken.url, path, str(key_file))
            assert f"encrypted values re-encrypted for their new ids: {len(sample.sensitive)}" in output.text
            with acting_as(READER):
                listed = taken.store.get_artifacts(svc.GetArtifactsRequest()).artifacts
            imported = [a for a in listed if a.uri == sample.written.uri]
            assert len(imported) == 1 and imported[0].id != sample.node_id
            assert_plaintext(imported[0], sample)
            with acting_as(VIEWER):
                redacted = taken.store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[imported[0].id]))
            assert redacted.artifacts[0].custom_properties["db_password"].string_value == "lineagedb:redacted"
