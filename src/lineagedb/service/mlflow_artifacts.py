"""lineagedb.v1.MlflowArtifactsService: who may read or write an MLflow artifact path.

Artifact files live outside the database (under --artifact-root); their access is decided by
the graph node that owns them, the same way every other read and write is: the run's
execution for `<experiment_id>/<run_id>/...`, else the experiment's context for
`<experiment_id>/...`. A node the caller cannot see reads as missing (NOT_FOUND, as for any
other hidden node); one in a namespace it may read but not write refuses writes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import mlflow_artifacts_pb2 as pb
from lineagedb.service import access
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories import types as type_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.schema import CONTEXT_KIND, EXECUTION_KIND
from lineagedb.store.unit_of_work import Database, UnitOfWork

# The tracking API's types (lineagedb.service.mlflow_graph): an experiment's id is its context's
# id, but for MLflow's "0" (Default), the context with this external_id.
EXPERIMENT_TYPE = "mlflow.Experiment"
RUN_TYPE = "mlflow.Run"
DEFAULT_EXPERIMENT_EXTERNAL_ID = "mlflow.experiment/0"


def path_segments(path: str) -> list[str]:
    """The '/'-separated segments of a relative artifact path; INVALID_ARGUMENT for anything that
    could leave the artifact root or name something odd (.., ., absolute, backslash, NUL, drive)."""
    if not path:
        return []
    if path.startswith("/") or "\\" in path or "\x00" in path or "#" in path:
        raise errors.InvalidArgumentError("Invalid path")
    segments = path.split("/")
    if segments and segments[-1] == "":
        segments.pop()  # a trailing slash names the same directory
    for segment in segments:
        if segment in ("", ".", "..") or (len(segment) >= 2 and segment[1] == ":"):
            raise errors.InvalidArgumentError("Invalid path")
    if "%" in path:
        # As MLflow's server: a path that still holds percent-escapes must be safe once decoded too
        # (a store or a later hop could decode it).
        decoded = path
        while (unquoted := unquote(decoded)) != decoded:
            decoded = unquoted
        path_segments(decoded)
    return segments


class MlflowArtifactAccess:
    def __init__(self, database: Database) -> None:
        self.db = database

    def authorize_read(self, request: pb.ArtifactPath) -> pb.ArtifactOwner:
        return self._authorize(request.path, write=False)

    def authorize_write(self, request: pb.ArtifactPath) -> pb.ArtifactOwner:
        return self._authorize(request.path, write=True)

    def authorize_list_artifacts(self, request: pb.ListArtifactsRequest) -> pb.RunArtifactLocation:
        """MLflow's ListArtifacts: the run's artifact root and where its listing is in this server's
        store. READ on the run, and on the owner of what that root names (an experiment's
        artifact_location is the caller's choice: it must not reach another run's files)."""
        run_id = request.run_id or request.run_uuid
        if not run_id:
            raise errors.InvalidArgumentError(
                "Missing value for required parameter 'run_id'. See the API docs for more information"
            )
        relative = path_segments(request.path)  # MLflow's "Invalid path" for anything leaving the root
        with self.db.transaction(write=False) as uow:
            run = _run(uow, run_id)
            if run is None:
                raise errors.NotFoundError(f"Run with id={run_id} not found")
            root_uri = run.properties["artifact_uri"].string_value if "artifact_uri" in run.properties else ""
            root = proxied_root(root_uri)
            if root is None:
                raise errors.UnimplementedError(
                    f"the artifacts of run {run_id} are at {root_uri or 'no artifact location'}, outside this "
                    "server's artifact store (only mlflow-artifacts: roots are listed here)"
                )
            segments = [*root, *relative]
            self._owner(uow, segments, write=False)
        return pb.RunArtifactLocation(root_uri=root_uri, path="/".join(segments))

    def _authorize(self, path: str, write: bool) -> pb.ArtifactOwner:
        segments = path_segments(path)
        # A write is authorized in a write transaction: with the audit log on, that transaction's
        # record names the caller, the owner and the path (before the bytes move).
        with self.db.transaction(write=write) as uow:
            return self._owner(uow, segments, write)

    def _owner(self, uow: UnitOfWork, segments: list[str], write: bool) -> pb.ArtifactOwner:
        if not segments:
            raise errors.InvalidArgumentError(
                "an artifact path must start with an experiment id: <experiment_id>/<run_id>/artifacts/..."
            )
        experiment = _experiment(uow, segments[0])
        if experiment is None:
            raise errors.NotFoundError(f"No artifacts for experiment {segments[0]!r}: it does not exist")
        run = _run(uow, segments[1]) if len(segments) >= 2 else None
        stored_experiment = run.properties.get("experiment_id") if run is not None else None
        if stored_experiment is not None and stored_experiment.string_value != segments[0]:
            # A run's files live under its own experiment only.
            raise errors.NotFoundError(f"Run {segments[1]!r} is not in experiment {segments[0]!r}")
        if run is not None:
            owner = pb.ArtifactOwner(experiment_id=segments[0], run_id=run.name)
            kind, node_id = "execution", run.id
        else:
            owner = pb.ArtifactOwner(experiment_id=segments[0])
            kind, node_id = "context", experiment.id
        if write and access.read_only(uow, kind, {node_id}):
            raise errors.PermissionDeniedError(
                f"you may read the artifacts of this {'run' if run is not None else 'experiment'} but not change "
                "them (its namespace)"
            )
        if write and uow.changes is not None:
            uow.changes.add_updated(kind, node_id, [("mlflow_artifact", None, "/".join(segments))])
        return owner


def proxied_root(uri: str) -> list[str] | None:
    """The segments, relative to the artifact root, of an `mlflow-artifacts:` URI (as MLflow's
    server takes its path, any host part ignored); None for any other kind of location."""
    if not uri.lower().startswith("mlflow-artifacts:"):
        return None
    path = urlsplit(uri).path
    try:
        return path_segments(path.lstrip("/"))
    except errors.InvalidArgumentError:
        return None


def _experiment(uow: UnitOfWork, experiment_id: str) -> Any | None:
    experiment_type = type_repo.by_name(uow, CONTEXT_KIND, EXPERIMENT_TYPE, None)
    if experiment_type is None:
        return None
    if experiment_id == "0":
        found = node_repo.load_by_external_ids(uow, NodeKind.CONTEXT, [DEFAULT_EXPERIMENT_EXTERNAL_ID])
    elif experiment_id.isdigit() and len(experiment_id) < 19:
        found = node_repo.load_by_ids(uow, NodeKind.CONTEXT, [int(experiment_id)])
    else:
        return None
    matching = [c for c in found if c.type_id == experiment_type.id]
    return matching[0] if matching else None


def _run(uow: UnitOfWork, run_id: str) -> Any | None:
    run_type = type_repo.by_name(uow, EXECUTION_KIND, RUN_TYPE, None)
    if run_type is None:
        return None
    return node_repo.load_by_type_and_name(uow, NodeKind.EXECUTION, run_type.id, run_id)
