"""LineageService end to end: a real server on each backend, the TFX-shaped runs written
by the official ml-metadata client, and the answers read over gRPC beside MLMD's service."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lineagedb.api.servicer import LineageServicer
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.lineagedb.v1 import lineage_pb2_grpc as lineage_grpc
from tests.backends import scratch_database
from tests.compat.conftest import _clean_env
from tests.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.compat

WRITER = Path(__file__).with_name("write_pipeline.py")
MLMD_PYTHON = Path(
    os.environ.get("LINEAGEDB_MLMD_PYTHON") or Path(__file__).resolve().parents[2] / ".venv-mlmd/bin/python"
)


@pytest.fixture(scope="module")
def served(module_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Any]]:
    """A server on a fresh database holding the two runs, written by the official client."""
    if not MLMD_PYTHON.exists():
        message = f"official client interpreter missing: {MLMD_PYTHON} (make mlmd-venv)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    with scratch_database(module_backend, str(tmp_path_factory.mktemp("answers-grpc"))) as url:
        server = start_server(url)
        try:
            host, port = server.address.rsplit(":", 1)
            written = subprocess.run(
                [str(MLMD_PYTHON), str(WRITER), host, port],
                capture_output=True,
                text=True,
                timeout=120,
                env=_clean_env(),
                check=True,
            )
            yield server, json.loads(written.stdout)
        finally:
            stop_server(server)


@pytest.fixture
def lineage(served: tuple[LiveServer, Any]) -> Iterator[lineage_grpc.LineageServiceStub]:
    with served[0].channel() as channel:
        yield lineage_grpc.LineageServiceStub(channel)


def test_provenance_over_grpc_matches_the_pipeline_the_official_client_wrote(
    served: tuple[LiveServer, Any], lineage: lineage_grpc.LineageServiceStub
) -> None:
    run = served[1]["run-1"]
    got = lineage.Provenance(pb.ClosureRequest(node=pb.NodeRef(artifact_id=run["pushed_model"])), timeout=30)
    keys = ("examples", "statistics", "schema", "transform_graph", "transformed_examples", "model", "blessing")
    assert sorted(a.id for a in got.artifacts) == sorted([run["pushed_model"], *(run[k] for k in keys)])
    assert len(got.executions) == 7 and len(got.events) == 19 and len(got.contexts) == 9
    # Event paths as the official client wrote them (TFX's role key, then the index).
    pusher_inputs = {e.path.steps[0].key for e in got.events if e.execution_id == run["Pusher"] and e.type == e.INPUT}
    assert pusher_inputs == {"model", "model_blessing"}


def test_impact_over_grpc_reaches_both_runs_through_a_shared_node_only(
    served: tuple[LiveServer, Any], lineage: lineage_grpc.LineageServiceStub
) -> None:
    runs = served[1]
    got = lineage.Impact(
        pb.ImpactRequest(node=pb.NodeRef(artifact_id=runs["run-2"]["examples"]), artifact_types=["PushedModel"]),
        timeout=30,
    )
    assert [a.id for a in got.artifacts] == [runs["run-2"]["pushed_model"]]
    assert [(g.type, g.state, g.count) for g in got.groups] == [("PushedModel", "LIVE", 1)]
    # The pipeline context is shared by both runs; the run context is run-2's.
    assert {c.name for c in got.contexts} >= {"taxi", "run-2"} and "run-1" not in {c.name for c in got.contexts}


def test_a_caller_mistake_is_invalid_argument_not_internal(lineage: lineage_grpc.LineageServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        lineage.Provenance(pb.ClosureRequest(max_nodes=-1), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "node must set" in (raised.value.details() or "")
    with pytest.raises(grpc.RpcError) as missing:
        lineage.Impact(pb.ImpactRequest(node=pb.NodeRef(execution_id=424242)), timeout=30)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_service_is_reflected_beside_mlmds(served: tuple[LiveServer, Any]) -> None:
    with served[0].channel() as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names = {s.name for r in stub.ServerReflectionInfo(iter([request])) for s in r.list_services_response.service}
    assert {"lineagedb.v1.LineageService", "ml_metadata.MetadataStoreService"} <= names


def test_the_servicer_implements_every_method_of_the_service() -> None:
    methods = pb.DESCRIPTOR.services_by_name["LineageService"].methods_by_name
    assert sorted(methods) == sorted(name for name in vars(LineageServicer) if name[0].isupper())
