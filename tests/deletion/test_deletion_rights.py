"""Deleting in a shared store: only what the caller may write, never a node another team
depends on, and no word about what the caller cannot read; and every deletion audited."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import deletion_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service.deletion import Deletion
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import audit_store
from lineagedb.store.unit_of_work import Database
from tests.answers import tfx_pipeline
from tests.answers.conftest import LocalClient
from tests.audit.conftest import KEY, as_call, records
from tests.tenancy.world import ALICE, World, acting_as

Mode = pb.DeleteRequest.Mode


def test_a_dependent_in_a_namespace_the_caller_cannot_read_refuses_without_being_named(
    fresh_world: World, clock: Any
) -> None:
    deletion = Deletion(fresh_world.database, clock)
    a_model, a_eval = fresh_world.artifacts["a_model"], fresh_world.executions["a_eval"]
    with acting_as(ALICE), pytest.raises(errors.FailedPreconditionError) as refused:
        deletion.delete(pb.DeleteRequest(artifact_ids=[a_model], confirm=True))
    b_evaluator = fresh_world.executions["b_evaluator"]
    assert f"execution {a_eval} (depends on artifact {a_model})" in refused.value.message
    assert "and nodes in namespaces you cannot read" in refused.value.message
    assert str(b_evaluator) not in refused.value.message.replace(f"artifact {a_model}", "")
    # Cascading cannot reach into team B either: the walk stays in what Alice reads.
    with acting_as(ALICE), pytest.raises(errors.FailedPreconditionError, match="namespaces you cannot read"):
        deletion.delete(
            pb.DeleteRequest(artifact_ids=[fresh_world.artifacts["a_data"]], mode=Mode.CASCADE_DOWNSTREAM, confirm=True)
        )
    # An administrator, who reads everything, is told which.
    with acting_as(None), pytest.raises(errors.FailedPreconditionError) as told:
        deletion.delete(pb.DeleteRequest(artifact_ids=[a_model]))
    assert f"execution {b_evaluator} (depends on artifact {a_model})" in told.value.message
    assert "cannot read" not in told.value.message


def test_only_nodes_the_caller_may_write_are_deleted(fresh_world: World, clock: Any) -> None:
    deletion = Deletion(fresh_world.database, clock)
    with acting_as(ALICE), pytest.raises(errors.NotFoundError, match="does not exist"):
        deletion.delete(pb.DeleteRequest(artifact_ids=[fresh_world.artifacts["b_model"]]))
    holdout = fresh_world.artifacts["shared_holdout"]
    with acting_as(ALICE), pytest.raises(errors.PermissionDeniedError, match=f"artifact {holdout} needs the right"):
        deletion.delete(pb.DeleteRequest(artifact_ids=[holdout], mode=Mode.TOMBSTONE, confirm=True))
    # Her own leaf goes.
    extra = fresh_world.artifacts["a_extra_2"]
    with acting_as(ALICE):
        assert deletion.delete(pb.DeleteRequest(artifact_ids=[extra], confirm=True)).artifacts == 1


def test_each_deleting_batch_is_audited(audited_store: MetadataStore, audited_db: Database, clock: Any) -> None:
    with as_call("PutExecution"):
        run = tfx_pipeline.write_run(mlmd, LocalClient(audited_store), "run-1")
    deletion = Deletion(audited_db, clock)
    with as_call("Delete"):
        deletion.delete(pb.DeleteRequest(artifact_ids=[run["pushed_model"]], confirm=True))
        deletion.delete(pb.DeleteRequest(artifact_ids=[run["model"]], mode=Mode.TOMBSTONE, confirm=True))
    kept = records(audited_db)
    assert json.loads(kept[-2]["detail"]) == {"deleted": {"artifact": [run["pushed_model"]]}}
    assert json.loads(kept[-1]["detail"]) == {"tombstoned": {"artifact": [run["model"]]}}
    with audited_db.engine.connect() as connection:
        assert audit_store.verify(connection, KEY).ok
        history = audit_store.history(connection, (1, run["pushed_model"]))
    assert [entry["created"] for entry in history] == [True, False]
