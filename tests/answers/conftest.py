"""Fixtures for the lineage answers: a TFX-shaped pipeline written in process through
an adapter with the official client's method names, and the answers over it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.answers.service import LineageAnswers
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store.audit_log import AuditLog
from lineagedb.store.unit_of_work import Database
from tests.answers import tfx_pipeline
from tests.audit.conftest import KEY, audited_db, audited_store  # noqa: F401  (fixtures, on the `audit` below)


class LocalClient:
    """The few official-client methods the pipeline builders call, over the service layer."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def put_artifact_type(self, artifact_type: mlmd.ArtifactType) -> int:
        request = svc.PutArtifactTypeRequest(artifact_type=artifact_type, can_add_fields=True)
        return self.store.put_artifact_type(request).type_id

    def put_execution_type(self, execution_type: mlmd.ExecutionType) -> int:
        request = svc.PutExecutionTypeRequest(execution_type=execution_type, can_add_fields=True)
        return self.store.put_execution_type(request).type_id

    def put_context_type(self, context_type: mlmd.ContextType) -> int:
        request = svc.PutContextTypeRequest(context_type=context_type, can_add_fields=True)
        return self.store.put_context_type(request).type_id

    def put_execution(
        self,
        execution: mlmd.Execution,
        artifact_and_events: Sequence[tuple[mlmd.Artifact, mlmd.Event | None]],
        contexts: Sequence[mlmd.Context],
        reuse_context_if_already_exist: bool = False,
    ) -> tuple[int, list[int], list[int]]:
        request = svc.PutExecutionRequest(execution=execution, contexts=contexts)
        for artifact, event in artifact_and_events:
            pair = request.artifact_event_pairs.add(artifact=artifact)
            if event is not None:
                pair.event.CopyFrom(event)
        request.options.reuse_context_if_already_exist = reuse_context_if_already_exist
        response = self.store.put_execution(request)
        return response.execution_id, list(response.artifact_ids), list(response.context_ids)


@pytest.fixture
def audit(clock: Any) -> AuditLog:
    """An audit log on the store's clock, so a time between two writes is also one between
    their records (as_of reads the log by time)."""
    return AuditLog(KEY, clock=clock)


@pytest.fixture
def client(store: MetadataStore) -> LocalClient:
    return LocalClient(store)


@pytest.fixture
def answers(database: Database) -> LineageAnswers:
    return LineageAnswers(database)


@pytest.fixture
def two_runs(client: LocalClient) -> dict[str, dict[str, int]]:
    """Two TFX-shaped runs differing in Trainer's num_steps and in ExampleGen's input."""
    return tfx_pipeline.write_two_runs(mlmd, client)


def ids_of(nodes: Any) -> list[int]:
    return sorted(node.id for node in nodes)
