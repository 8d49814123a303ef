"""How MLflow's tracking entities live in the lineage graph (README, "MLflow").

* An experiment is a context of type `mlflow.Experiment` named as the experiment; its id is
  the context id as text, except MLflow's "Default" experiment "0", the context whose
  external_id is `mlflow.experiment/0`.
* A run is an execution of type `mlflow.Run` named by its run id (32 hex digits),
  associated with its experiment's context. Its MLflow attributes are the type's
  properties; status also sets last_known_state. Params, tags and the latest value of each
  metric are custom properties `param.<key>`, `tag.<key>`, `metric.<key>`.
* A dataset given to log_input is an artifact of type `mlflow.Dataset` (one per experiment,
  name and digest), attributed to the experiment, with an INPUT event from the run; the
  input's tags are the event's path, key and value steps in turn.
* A logged model (MLflow 3) is an artifact of type `mlflow.LoggedModel` named by its model
  id, attributed to the experiment, with an OUTPUT event from the run that logged it.

The types are registered once, in the first write transaction that needs them.
"""

from __future__ import annotations

import threading
from dataclasses import astuple, dataclass

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service import types as type_rules
from lineagedb.service.type_cache import TypeCache
from lineagedb.store.mlflow import PARAM_PREFIX, TAG_PREFIX
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories import types as type_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.schema import ARTIFACT_KIND, CONTEXT_KIND, EXECUTION_KIND
from lineagedb.store.unit_of_work import UnitOfWork

EXPERIMENT_TYPE = "mlflow.Experiment"
RUN_TYPE = "mlflow.Run"
DATASET_TYPE = "mlflow.Dataset"
LOGGED_MODEL_TYPE = "mlflow.LoggedModel"
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
DEFAULT_EXPERIMENT_EXTERNAL_ID = "mlflow.experiment/0"
ACTIVE = "active"
DELETED = "deleted"

_S, _I = mlmd.STRING, mlmd.INT
_TYPES: tuple[tuple[int, str, dict[str, int]], ...] = (
    (
        CONTEXT_KIND,
        EXPERIMENT_TYPE,
        {"artifact_location": _S, "lifecycle_stage": _S, "creation_time": _I, "last_update_time": _I},
    ),
    (
        EXECUTION_KIND,
        RUN_TYPE,
        {
            "experiment_id": _S,
            "run_name": _S,
            "user_id": _S,
            "status": _S,
            "start_time": _I,
            "end_time": _I,
            "lifecycle_stage": _S,
            "artifact_uri": _S,
        },
    ),
    (
        ARTIFACT_KIND,
        DATASET_TYPE,
        {"name": _S, "digest": _S, "source_type": _S, "source": _S, "schema": _S, "profile": _S},
    ),
    (
        ARTIFACT_KIND,
        LOGGED_MODEL_TYPE,
        {
            "experiment_id": _S,
            "model_name": _S,
            "model_type": _S,
            "source_run_id": _S,
            "status": _S,
            "status_message": _S,
            "creation_timestamp_ms": _I,
            "last_updated_timestamp_ms": _I,
        },
    ),
)
_MESSAGES = {CONTEXT_KIND: mlmd.ContextType, EXECUTION_KIND: mlmd.ExecutionType, ARTIFACT_KIND: mlmd.ArtifactType}


# The id of an MLflow type not registered (yet) beside the others: no node has it.
NO_TYPE = 0


@dataclass(frozen=True)
class MlflowTypeIds:
    experiment: int
    run: int
    dataset: int
    logged_model: int


class MlflowTypes:
    """The ids of the MLflow types in this database, found or registered once."""

    def __init__(self, cache: TypeCache) -> None:
        self.cache = cache
        self._ids: MlflowTypeIds | None = None
        self._lock = threading.Lock()

    def find(self, uow: UnitOfWork) -> MlflowTypeIds | None:
        """The ids, for reads: None if no MLflow type exists (nothing MLflow was ever written).
        A type missing beside the others is NO_TYPE, which no node has: a namespace archive
        holds only the types its nodes use, so its runs may come without the dataset type."""
        if self._ids is not None:
            return self._ids
        ids = []
        for kind, name, _properties in _TYPES:
            record = type_repo.by_name(uow, kind, name, None)
            ids.append(record.id if record is not None else NO_TYPE)
        if all(type_id == NO_TYPE for type_id in ids):
            return None
        found = MlflowTypeIds(*ids)
        if NO_TYPE not in ids:
            uow.after_commit(lambda: self._remember(found))
        return found

    def ensure(self, uow: UnitOfWork) -> MlflowTypeIds:
        """The ids, registering missing types (and their missing properties) in this write."""
        found = self.find(uow)
        if found is not None and NO_TYPE not in astuple(found):
            return found
        ids = []
        for kind, name, properties in _TYPES:
            requested = _MESSAGES[kind](name=name, properties=properties)
            record = type_rules.put_type_record(uow, kind, requested, True, True)
            self.cache.remember(uow, record)
            ids.append(record.id)
        created = MlflowTypeIds(*ids)
        uow.after_commit(lambda: self._remember(created))
        return created

    def _remember(self, ids: MlflowTypeIds) -> None:
        with self._lock:
            self._ids = ids


# ------------------------------------------------------------------------------ lookups


def experiment_id_of(context: mlmd.Context) -> str:
    return DEFAULT_EXPERIMENT_ID if context.external_id == DEFAULT_EXPERIMENT_EXTERNAL_ID else str(context.id)


def experiment_by_id(uow: UnitOfWork, types: MlflowTypeIds, experiment_id: str) -> mlmd.Context:
    """The experiment's context (NotFoundError in MLflow's words when there is none)."""
    missing = errors.NotFoundError(f"No Experiment with id={experiment_id} exists")
    if experiment_id == DEFAULT_EXPERIMENT_ID:
        found = node_repo.load_by_external_ids(uow, NodeKind.CONTEXT, [DEFAULT_EXPERIMENT_EXTERNAL_ID])
    elif experiment_id.isdigit() and len(experiment_id) < 19:
        found = node_repo.load_by_ids(uow, NodeKind.CONTEXT, [int(experiment_id)])
    else:
        raise missing
    if not found or found[0].type_id != types.experiment or found[0].external_id not in ("", _external(experiment_id)):
        raise missing
    context: mlmd.Context = found[0]
    return context


def _external(experiment_id: str) -> str:
    return DEFAULT_EXPERIMENT_EXTERNAL_ID if experiment_id == DEFAULT_EXPERIMENT_ID else ""


def experiment_by_name(uow: UnitOfWork, types: MlflowTypeIds, name: str) -> mlmd.Context | None:
    found: mlmd.Context | None = node_repo.load_by_type_and_name(uow, NodeKind.CONTEXT, types.experiment, name)
    return found


def run_by_id(uow: UnitOfWork, types: MlflowTypeIds, run_id: str) -> mlmd.Execution:
    """The run's execution (NotFoundError in MLflow's words when there is none)."""
    found: mlmd.Execution | None = node_repo.load_by_type_and_name(uow, NodeKind.EXECUTION, types.run, run_id)
    if found is None:
        raise errors.NotFoundError(f"Run with id={run_id} not found")
    return found


def logged_model_by_id(uow: UnitOfWork, types: MlflowTypeIds, model_id: str) -> mlmd.Artifact:
    found: mlmd.Artifact | None = node_repo.load_by_type_and_name(uow, NodeKind.ARTIFACT, types.logged_model, model_id)
    if found is None:
        raise errors.NotFoundError(f"Logged model with ID '{model_id}' not found.")
    return found


# ------------------------------------------------------------------------------ values


def text(node: mlmd.Context | mlmd.Execution | mlmd.Artifact, name: str) -> str:
    value = node.properties.get(name)
    return value.string_value if value is not None else ""


def number(node: mlmd.Context | mlmd.Execution | mlmd.Artifact, name: str) -> int | None:
    value = node.properties.get(name)
    return value.int_value if value is not None and value.HasField("int_value") else None


def prefixed(node: mlmd.Context | mlmd.Execution | mlmd.Artifact, prefix: str) -> dict[str, str]:
    """Custom properties under `prefix` (params, tags), keyed without it, sorted by key."""
    return {
        name[len(prefix) :]: value.string_value
        for name, value in sorted(node.custom_properties.items())
        if name.startswith(prefix)
    }


def params_of(node: mlmd.Execution | mlmd.Artifact) -> dict[str, str]:
    return prefixed(node, PARAM_PREFIX)


def tags_of(node: mlmd.Context | mlmd.Execution | mlmd.Artifact) -> dict[str, str]:
    return prefixed(node, TAG_PREFIX)
