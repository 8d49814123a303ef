"""Deleting while others write: no INTERNAL, no deadlock left unresolved, no orphan row,
and the retention schedule inside a running server."""

from __future__ import annotations

import gzip
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import deletion_pb2 as pb
from lineagedb.proto.lineagedb.v1 import deletion_pb2_grpc as deletion_grpc
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.service.deletion import Deletion
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.unit_of_work import Database
from tests.auth.conftest import bearer, make_callers, write_tokens
from tests.conftest import start_server, stop_server
from tests.deletion.consistency import orphans

Mode = pb.DeleteRequest.Mode
# Outcomes a deletion racing with writers may meet and a client handles: a dependent
# appeared (refused, consistent), or the database chose it as a deadlock victim.
EXPECTED = (errors.FailedPreconditionError, errors.AbortedError)


def _types(store: MetadataStore) -> tuple[int, int]:
    blob = store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="Blob"))).type_id
    step = store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="Step"))).type_id
    return blob, step


def test_deletes_racing_with_writers_never_fail_internally_or_orphan_rows(
    database: Database, store: MetadataStore, clock: Any
) -> None:
    blob, step = _types(store)
    seeds = list(
        store.put_artifacts(svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=blob)] * 60)).artifact_ids
    )
    deletion = Deletion(database, clock)
    stop = threading.Event()
    unexpected: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            request = svc.PutExecutionRequest(execution=mlmd.Execution(type_id=step))
            for artifact_id in rng.sample(seeds, 2):
                request.artifact_event_pairs.add(
                    artifact=mlmd.Artifact(id=artifact_id, type_id=blob), event=mlmd.Event(type=mlmd.Event.INPUT)
                )
            request.artifact_event_pairs.add(
                artifact=mlmd.Artifact(type_id=blob), event=mlmd.Event(type=mlmd.Event.OUTPUT)
            )
            try:
                store.put_execution(request)
            except (errors.InvalidArgumentError, errors.FailedPreconditionError, errors.AbortedError):
                # An input deleted before (missing) or while (changed concurrently) we wrote, or a
                # deadlock victim: each told to the client as such, none INTERNAL.
                pass
            except BaseException as error:
                unexpected.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    outcomes: list[str] = []
    try:
        for artifact_id in seeds[:30]:
            mode = Mode.CASCADE_DOWNSTREAM if artifact_id % 2 else Mode.REFUSE_IF_DOWNSTREAM
            try:
                deletion.delete(pb.DeleteRequest(artifact_ids=[artifact_id], mode=mode, confirm=True))
                outcomes.append("deleted")
            except errors.NotFoundError:
                outcomes.append("gone")
            except EXPECTED as error:
                outcomes.append(type(error).__name__)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not unexpected, unexpected[:3]
    assert "deleted" in outcomes
    assert orphans(database.engine) == {}


def test_the_server_applies_a_retention_policy_on_schedule(database_url: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[[rule]]\ncontexts = \"type = 'pipeline_run'\"\nolder_than_days = 0\n")
    archives = tmp_path / "archives"
    server = start_server(
        database_url,
        "--retention-policy",
        str(policy),
        "--retention-interval",
        "0.3",
        "--retention-archive",
        str(archives),
    )
    try:
        with server.channel() as channel:
            stub = svc_grpc.MetadataStoreServiceStub(channel)
            run_type = stub.PutContextType(
                svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="pipeline_run"))
            ).type_id
            stub.PutContexts(svc.PutContextsRequest(contexts=[mlmd.Context(type_id=run_type, name="old")]))
            # The deletion service answers beside it (a dry run here).
            plan = deletion_grpc.DeletionServiceStub(channel).Delete(
                pb.DeleteRequest(contexts_filter="name = 'old'"), timeout=10
            )
            assert plan.dry_run and plan.contexts == 1
            for _ in range(200):
                if not stub.GetContexts(svc.GetContextsRequest()).contexts:
                    break
                time.sleep(0.1)
            assert not stub.GetContexts(svc.GetContextsRequest()).contexts
        # Each run that deleted something archived it first.
        [archive] = archives.glob("retention-*.lineagedb.gz")
        with gzip.open(archive, "rb") as file:
            rows = [json.loads(line) for line in file]
        assert [row["name"] for row in rows if row.get("t") == "context"] == ["old"]
    finally:
        assert stop_server(server) == 0


def test_a_bad_retention_policy_stops_the_server_at_start(database_url: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[[rule]]\nolder_than_days = 1\n")
    try:
        server = start_server(database_url, "--retention-policy", str(policy))
    except RuntimeError as error:
        assert "did not start" in str(error)
    else:
        stop_server(server)
        raise AssertionError("the server started with a bad policy")


def test_delete_needs_the_right_to_write(database_url: str, tmp_path: Path) -> None:
    carol = make_callers({"carol": ()})["carol"]
    tokens = write_tokens(tmp_path / "tokens", [carol])
    policy = tmp_path / "authz.toml"
    policy.write_text('[namespaces.default]\nviewer = ["carol"]\n')
    server = start_server(database_url, "--auth-tokens", str(tokens), "--authz-policy", str(policy))
    try:
        with server.channel() as channel:
            stub = deletion_grpc.DeletionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.Delete(pb.DeleteRequest(artifact_ids=[1]), metadata=bearer(carol.token), timeout=10)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.RpcError) as anonymous:
                stub.Delete(pb.DeleteRequest(artifact_ids=[1]), timeout=10)
            assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        stop_server(server)
