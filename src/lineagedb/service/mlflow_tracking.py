"""MLflow's tracking API over the lineage graph: one public method per RPC, one transaction each.

The graph mapping is lineagedb.service.mlflow_graph; limits and error codes are MLflow's
(INVALID_PARAMETER_VALUE -> InvalidArgumentError, RESOURCE_DOES_NOT_EXIST -> NotFoundError,
RESOURCE_ALREADY_EXISTS -> AlreadyExistsError), checked before anything is written.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import posixpath
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import mlflow_tracking_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.query import mlflow_filter
from lineagedb.service import edges
from lineagedb.service.mlflow_graph import (
    ACTIVE,
    DEFAULT_EXPERIMENT_EXTERNAL_ID,
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    DELETED,
    MlflowTypeIds,
    MlflowTypes,
    experiment_by_id,
    experiment_by_name,
    experiment_id_of,
    logged_model_by_id,
    number,
    params_of,
    run_by_id,
    tags_of,
    text,
)
from lineagedb.service.nodes import NameClash, NodeWriter
from lineagedb.service.type_cache import TypeCache
from lineagedb.store import mlflow as mlflow_store
from lineagedb.store.mlflow import METRIC_PREFIX, PARAM_PREFIX, TAG_PREFIX, MetricRow, RunQuery
from lineagedb.store.repositories import edges as edge_repo
from lineagedb.store.repositories import listing
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.unit_of_work import Database, UnitOfWork

# MLflow's limits (mlflow.utils.validation and mlflow.store.tracking).
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VAL_LENGTH = 20000
MAX_ENTITY_KEY_LENGTH = 250
MAX_DATASET_NAME_SIZE = 500
MAX_DATASET_DIGEST_SIZE = 36
MAX_INPUT_TAG_KEY_SIZE = 255
MAX_INPUT_TAG_VALUE_SIZE = 500
SEARCH_MAX_RESULTS_DEFAULT = 1000
SEARCH_MAX_RESULTS_THRESHOLD = 50000
EXPERIMENTS_MAX_RESULTS_DEFAULT = 1000
MAX_EXPERIMENTS_LISTED_PER_PAGE = 50000
RUN_NAME_TAG = "mlflow.runName"
_MODEL_STATUSES = pb.LoggedModelStatus.DESCRIPTOR.values_by_name
_KEY = re.compile(r"^[/\w.\- :]*$")
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_STATES = {
    pb.RUNNING: mlmd.Execution.RUNNING,
    pb.SCHEDULED: mlmd.Execution.NEW,
    pb.FINISHED: mlmd.Execution.COMPLETE,
    pb.FAILED: mlmd.Execution.FAILED,
    pb.KILLED: mlmd.Execution.CANCELED,
}
_ADJECTIVES = ("able", "bold", "calm", "keen", "mild", "neat", "quick", "sly", "tidy", "wise")
_NOUNS = ("ant", "bee", "cat", "doe", "eel", "fox", "gnu", "hen", "owl", "yak")

ARTIFACT, EXECUTION, CONTEXT = NodeKind.ARTIFACT, NodeKind.EXECUTION, NodeKind.CONTEXT


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def _string(value: str) -> mlmd.Value:
    return mlmd.Value(string_value=value)


def _int(value: int) -> mlmd.Value:
    return mlmd.Value(int_value=value)


def _invalid(message: str) -> errors.InvalidArgumentError:
    return errors.InvalidArgumentError(message)


# MLMD property names hold 255 characters: a key's room is that less its prefix, so params and
# metrics keys stop at 249 and 248 characters, one or two short of MLflow's 250 (README, "MLflow").
_KEY_ROOM = {"param": 255 - len(PARAM_PREFIX), "metric": 255 - len(METRIC_PREFIX)}


def _check_key(kind: str, key: str) -> None:
    if not key:
        raise _invalid(f"Invalid value \"\" for parameter 'key' supplied: {kind} key must not be empty")
    limit = min(MAX_ENTITY_KEY_LENGTH, _KEY_ROOM.get(kind, MAX_ENTITY_KEY_LENGTH))
    if len(key) > limit:
        raise _invalid(f"'{kind}' key '{key[:100]}' exceeds the maximum length of {limit}")
    if _KEY.match(key) is None:
        raise _invalid(
            f"Invalid value \"{key}\" for parameter 'key' supplied: Names may only contain alphanumerics, "
            "underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )
    normalized = posixpath.normpath(key)
    if normalized != key or normalized == "." or normalized.startswith(("..", "/")):
        raise _invalid(f"Invalid value \"{key}\" for parameter 'key' supplied: the name would resolve to another")


def _check_length(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise _invalid(f"{what} '{value[:250]}' had length {len(value)}, which exceeded length limit of {limit}")


def _run_id_of(request: Any) -> str:
    run_id: str = request.run_id or getattr(request, "run_uuid", "")
    if not run_id:
        raise _invalid("Missing value for required parameter 'run_id'. See the API docs for more information")
    if _RUN_ID.match(run_id) is None:
        raise _invalid(f"Invalid value \"{run_id}\" for parameter 'run_id' supplied")
    return run_id


def _offset_token(token: str) -> int:
    if not token:
        return 0
    try:
        value = json.loads(base64.b64decode(token, validate=True))
        offset = value["offset"] if isinstance(value, dict) else None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        offset = None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise _invalid("Invalid page token, could not base64-decode")
    return offset


def _next_token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def _max_results(request: Any, default: int, threshold: int) -> int:
    if not request.HasField("max_results"):
        return default
    value = int(request.max_results)
    if value <= 0 or value > threshold:
        raise _invalid(
            f"Invalid value {value} for parameter 'max_results' supplied. It must be at most {threshold}"
            if value > 0
            else f"Invalid value {value} for parameter 'max_results' supplied. It must be a positive integer"
        )
    return value


class MlflowTracking:
    def __init__(self, database: Database, types: TypeCache, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.db = database
        self.clock = clock
        self.type_cache = types
        self.types = MlflowTypes(types)

    # ------------------------------------------------------------------ shared pieces

    def _writer(self, uow: UnitOfWork, kind: NodeKind) -> NodeWriter:
        return NodeWriter(uow, kind, self.type_cache, self.clock)

    def _write_types(self, uow: UnitOfWork) -> MlflowTypeIds:
        return self.types.ensure(uow)

    def _read_types(self, uow: UnitOfWork) -> MlflowTypeIds | None:
        return self.types.find(uow)

    def _update(self, uow: UnitOfWork, kind: NodeKind, node: Any, stored: Any) -> None:
        self._writer(uow, kind).update(node, stored)

    def _experiment_for_write(self, uow: UnitOfWork, types: MlflowTypeIds, experiment_id: str) -> mlmd.Context:
        if experiment_id == DEFAULT_EXPERIMENT_ID:
            found = node_repo.load_by_external_ids(uow, CONTEXT, [DEFAULT_EXPERIMENT_EXTERNAL_ID])
            if not found:
                return self._create_default(uow, types)
        return experiment_by_id(uow, types, experiment_id)

    def _create_default(self, uow: UnitOfWork, types: MlflowTypeIds) -> mlmd.Context:
        now = self.clock()
        context = mlmd.Context(
            type_id=types.experiment, name=DEFAULT_EXPERIMENT_NAME, external_id=DEFAULT_EXPERIMENT_EXTERNAL_ID
        )
        context.properties["artifact_location"].CopyFrom(_string(f"mlflow-artifacts:/{DEFAULT_EXPERIMENT_ID}"))
        context.properties["lifecycle_stage"].CopyFrom(_string(ACTIVE))
        context.properties["creation_time"].CopyFrom(_int(now))
        context.properties["last_update_time"].CopyFrom(_int(now))
        try:
            context.id = self._writer(uow, CONTEXT).create([context])[0]
        except errors.AlreadyExistsError as error:
            # Another first writer made it; the server's retry of ABORTED finds it.
            raise errors.AbortedError("MLflow's Default experiment was created concurrently; retry") from error
        return context

    def _active_run(self, uow: UnitOfWork, types: MlflowTypeIds, run_id: str) -> mlmd.Execution:
        run = run_by_id(uow, types, run_id)
        stage = text(run, "lifecycle_stage")
        if stage != ACTIVE:
            raise _invalid(f"The run {run_id} must be in the 'active' state. Current state is {stage}.")
        return run

    # ------------------------------------------------------------------ experiments

    def create_experiment(self, request: pb.CreateExperimentRequest) -> pb.CreateExperimentResponse:
        name = request.name
        if not name:
            raise _invalid(f"Invalid experiment name: '{name}'")
        _check_length("Experiment name", name, MAX_EXPERIMENT_NAME_LENGTH)
        for tag in request.tags:
            _check_key("experiment tag", tag.key)
            _check_length("Experiment tag value", tag.value, MAX_EXPERIMENT_TAG_VAL_LENGTH)
        with self.db.transaction() as uow:
            types = self._write_types(uow)
            if name == DEFAULT_EXPERIMENT_NAME and not node_repo.load_by_external_ids(
                uow, CONTEXT, [DEFAULT_EXPERIMENT_EXTERNAL_ID]
            ):
                self._create_default(uow, types)
            if experiment_by_name(uow, types, name) is not None:
                raise errors.AlreadyExistsError(f"Experiment '{name}' already exists.")
            now = self.clock()
            context = mlmd.Context(type_id=types.experiment, name=name)
            context.properties["lifecycle_stage"].CopyFrom(_string(ACTIVE))
            context.properties["creation_time"].CopyFrom(_int(now))
            context.properties["last_update_time"].CopyFrom(_int(now))
            for tag in request.tags:
                context.custom_properties[TAG_PREFIX + tag.key].CopyFrom(_string(tag.value))
            context_id = self._writer(uow, CONTEXT).create([context])[0]
            context.id = context_id
            stored = node_repo.load_by_ids(uow, CONTEXT, [context_id])[0]
            location = request.artifact_location or f"mlflow-artifacts:/{context_id}"
            updated = mlmd.Context()
            updated.CopyFrom(stored)
            updated.properties["artifact_location"].CopyFrom(_string(location))
            self._update(uow, CONTEXT, updated, stored)
        return pb.CreateExperimentResponse(experiment_id=str(context_id))

    def _experiment_message(self, context: mlmd.Context) -> pb.Experiment:
        experiment = pb.Experiment(
            experiment_id=experiment_id_of(context),
            name=context.name,
            artifact_location=text(context, "artifact_location"),
            lifecycle_stage=text(context, "lifecycle_stage") or ACTIVE,
            creation_time=number(context, "creation_time") or 0,
            last_update_time=number(context, "last_update_time") or 0,
        )
        experiment.tags.extend(pb.KeyValue(key=k, value=v) for k, v in tags_of(context).items())
        return experiment

    @staticmethod
    def _virtual_default() -> pb.Experiment:
        """MLflow's Default experiment before anything was written to it (reads create nothing)."""
        return pb.Experiment(
            experiment_id=DEFAULT_EXPERIMENT_ID,
            name=DEFAULT_EXPERIMENT_NAME,
            artifact_location=f"mlflow-artifacts:/{DEFAULT_EXPERIMENT_ID}",
            lifecycle_stage=ACTIVE,
        )

    def _default_missing(self, uow: UnitOfWork) -> bool:
        return not node_repo.load_by_external_ids(uow, CONTEXT, [DEFAULT_EXPERIMENT_EXTERNAL_ID])

    def get_experiment(self, request: pb.GetExperimentRequest) -> pb.GetExperimentResponse:
        experiment_id = request.experiment_id
        if not experiment_id:
            raise _invalid("Missing value for required parameter 'experiment_id'.")
        with self.db.transaction(write=False) as uow:
            types = self._read_types(uow)
            if experiment_id == DEFAULT_EXPERIMENT_ID and (types is None or self._default_missing(uow)):
                return pb.GetExperimentResponse(experiment=self._virtual_default())
            if types is None:
                raise errors.NotFoundError(f"No Experiment with id={experiment_id} exists")
            context = experiment_by_id(uow, types, experiment_id)
        return pb.GetExperimentResponse(experiment=self._experiment_message(context))

    def get_experiment_by_name(self, request: pb.GetExperimentByNameRequest) -> pb.GetExperimentResponse:
        name = request.experiment_name
        with self.db.transaction(write=False) as uow:
            types = self._read_types(uow)
            context = experiment_by_name(uow, types, name) if types is not None else None
            if context is None and name == DEFAULT_EXPERIMENT_NAME and (types is None or self._default_missing(uow)):
                return pb.GetExperimentResponse(experiment=self._virtual_default())
        if context is None:
            raise errors.NotFoundError(f"Could not find experiment with name '{name}'")
        return pb.GetExperimentResponse(experiment=self._experiment_message(context))

    def search_experiments(self, request: pb.SearchExperimentsRequest) -> pb.SearchExperimentsResponse:
        limit = _max_results(request, EXPERIMENTS_MAX_RESULTS_DEFAULT, MAX_EXPERIMENTS_LISTED_PER_PAGE)
        offset = _offset_token(request.page_token)
        view = request.view_type or pb.ACTIVE_ONLY
        conditions = _experiment_filter(request.filter)
        order = _experiment_order(list(request.order_by))
        with self.db.transaction(write=False) as uow:
            types = self._read_types(uow)
            contexts = (
                listing.list_all(uow, CONTEXT, listing.Scope(type_id=types.experiment)) if types is not None else []
            )
            experiments = [self._experiment_message(c) for c in contexts]
            if types is None or self._default_missing(uow):
                experiments.append(self._virtual_default())
        wanted = {pb.ACTIVE_ONLY: {ACTIVE}, pb.DELETED_ONLY: {DELETED}}.get(view, {ACTIVE, DELETED})
        chosen = [e for e in experiments if e.lifecycle_stage in wanted and all(c(e) for c in conditions)]
        for key, ascending in reversed(order):
            chosen.sort(key=key, reverse=not ascending)
        page = chosen[offset : offset + limit]
        token = _next_token(offset + limit) if len(chosen) > offset + limit else ""
        return pb.SearchExperimentsResponse(experiments=page, next_page_token=token)

    def _change_experiment(self, experiment_id: str, change: Callable[[mlmd.Context], None]) -> None:
        with self.db.transaction() as uow:
            types = self._write_types(uow)
            stored = self._experiment_for_write(uow, types, experiment_id)
            updated = mlmd.Context()
            updated.CopyFrom(stored)
            change(updated)
            updated.properties["last_update_time"].CopyFrom(_int(self.clock()))
            self._update(uow, CONTEXT, updated, stored)

    def update_experiment(self, request: pb.UpdateExperimentRequest) -> pb.Empty:
        if not request.experiment_id:
            raise _invalid("Missing value for required parameter 'experiment_id'.")
        if not request.new_name:
            raise _invalid(f"Invalid experiment name: '{request.new_name}'")
        _check_length("Experiment name", request.new_name, MAX_EXPERIMENT_NAME_LENGTH)

        def rename(context: mlmd.Context) -> None:
            if text(context, "lifecycle_stage") != ACTIVE:
                raise _invalid("Cannot rename a non-active experiment.")
            context.name = request.new_name

        try:
            self._change_experiment(request.experiment_id, rename)
        except (errors.AlreadyExistsError, NameClash):  # the update's unique clash (service.nodes)
            raise errors.AlreadyExistsError(f"Experiment '{request.new_name}' already exists.") from None
        return pb.Empty()

    def _set_stage(self, experiment_id: str, stage: str) -> None:
        def change(context: mlmd.Context) -> None:
            context.properties["lifecycle_stage"].CopyFrom(_string(stage))

        if not experiment_id:
            raise _invalid("Missing value for required parameter 'experiment_id'.")
        with self.db.transaction() as uow:
            types = self._write_types(uow)
            stored = self._experiment_for_write(uow, types, experiment_id)
            if stage == DELETED and experiment_id == DEFAULT_EXPERIMENT_ID:
                raise _invalid("Cannot delete the default experiment '0'. This is an internally reserved experiment.")
            if stage == ACTIVE and text(stored, "lifecycle_stage") != DELETED:
                raise _invalid(f"Cannot restore an experiment that is not deleted (id={experiment_id})")
            updated = mlmd.Context()
            updated.CopyFrom(stored)
            change(updated)
            updated.properties["last_update_time"].CopyFrom(_int(self.clock()))
            self._update(uow, CONTEXT, updated, stored)
            # MLflow deletes and restores the experiment's runs with it.
            runs = node_repo.load_by_ids(uow, EXECUTION, self._run_ids_of(uow, stored.id, types))
            before = ACTIVE if stage == DELETED else DELETED
            for run in runs:
                if text(run, "lifecycle_stage") == before:
                    changed = mlmd.Execution()
                    changed.CopyFrom(run)
                    changed.properties["lifecycle_stage"].CopyFrom(_string(stage))
                    self._update(uow, EXECUTION, changed, run)

    @staticmethod
    def _run_ids_of(uow: UnitOfWork, context_id: int, types: MlflowTypeIds) -> list[int]:
        executions = listing.list_all(uow, EXECUTION, listing.Scope(type_id=types.run, context_id=context_id))
        return [int(e.id) for e in executions]

    def delete_experiment(self, request: pb.ExperimentIdRequest) -> pb.Empty:
        self._set_stage(request.experiment_id, DELETED)
        return pb.Empty()

    def restore_experiment(self, request: pb.ExperimentIdRequest) -> pb.Empty:
        self._set_stage(request.experiment_id, ACTIVE)
        return pb.Empty()

    def set_experiment_tag(self, request: pb.SetExperimentTagRequest) -> pb.Empty:
        if not request.experiment_id:
            raise _invalid("Missing value for required parameter 'experiment_id'.")
        _check_key("experiment tag", request.key)
        _check_length("Experiment tag value", request.value, MAX_EXPERIMENT_TAG_VAL_LENGTH)

        def change(context: mlmd.Context) -> None:
            if text(context, "lifecycle_stage") != ACTIVE:
                raise _invalid(f"The experiment {request.experiment_id} must be in the 'active' state.")
            context.custom_properties[TAG_PREFIX + request.key].CopyFrom(_string(request.value))

        self._change_experiment(request.experiment_id, change)
        return pb.Empty()

    def delete_experiment_tag(self, request: pb.DeleteExperimentTagRequest) -> pb.Empty:
        def change(context: mlmd.Context) -> None:
            if TAG_PREFIX + request.key not in context.custom_properties:
                raise errors.NotFoundError(
                    f"No tag with name: {request.key} in experiment with id {request.experiment_id}"
                )
            del context.custom_properties[TAG_PREFIX + request.key]

        self._change_experiment(request.experiment_id, change)
        return pb.Empty()

    # ------------------------------------------------------------------ runs

    def create_run(self, request: pb.CreateRunRequest) -> pb.RunResponse:
        experiment_id = request.experiment_id or DEFAULT_EXPERIMENT_ID
        tags = {tag.key: tag.value[:MAX_TAG_VAL_LENGTH] for tag in request.tags}
        for key in tags:
            _check_key("tag", key)
        run_name = request.run_name or tags.get(RUN_NAME_TAG, "")
        if request.run_name and RUN_NAME_TAG in tags and tags[RUN_NAME_TAG] != request.run_name:
            raise _invalid(
                f"Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values "
                f"(run_name='{request.run_name}', mlflow.runName='{tags[RUN_NAME_TAG]}')."
            )
        if not run_name:
            run_name = f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(0, 999)}"
        tags[RUN_NAME_TAG] = run_name
        with self.db.transaction() as uow:
            types = self._write_types(uow)
            experiment = self._experiment_for_write(uow, types, experiment_id)
            if text(experiment, "lifecycle_stage") != ACTIVE:
                raise _invalid(
                    f"The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
                )
            run_id = uuid.uuid4().hex
            start = request.start_time if request.HasField("start_time") else self.clock()
            location = text(experiment, "artifact_location").rstrip("/")
            run = mlmd.Execution(type_id=types.run, name=run_id, last_known_state=mlmd.Execution.RUNNING)
            for name, attribute in (
                ("experiment_id", _string(experiment_id)),
                ("run_name", _string(run_name)),
                ("user_id", _string(request.user_id)),
                ("status", _string("RUNNING")),
                ("start_time", _int(start)),
                ("lifecycle_stage", _string(ACTIVE)),
                ("artifact_uri", _string(f"{location}/{run_id}/artifacts")),
            ):
                run.properties[name].CopyFrom(attribute)
            for key, value in tags.items():
                run.custom_properties[TAG_PREFIX + key].CopyFrom(_string(value))
            run.id = self._writer(uow, EXECUTION).create([run])[0]
            edges.link_associations(uow, [(experiment.id, run.id)])
            answer = self._runs(uow, types, [run])[0]
        return pb.RunResponse(run=answer)

    def get_run(self, request: pb.RunIdRequest) -> pb.RunResponse:
        run_id = _run_id_of(request)
        with self.db.transaction(write=False) as uow:
            types = self._read_types(uow)
            if types is None:
                raise errors.NotFoundError(f"Run with id={run_id} not found")
            run = run_by_id(uow, types, run_id)
            answer = self._runs(uow, types, [run])[0]
        return pb.RunResponse(run=answer)

    def update_run(self, request: pb.UpdateRunRequest) -> pb.UpdateRunResponse:
        run_id = _run_id_of(request)
        with self.db.transaction() as uow:
            types = self._write_types(uow)
            stored = self._active_run(uow, types, run_id)
            run = mlmd.Execution()
            run.CopyFrom(stored)
            if request.status:
                run.properties["status"].CopyFrom(_string(pb.RunStatus.Name(request.status)))
                run.last_known_state = _STATES[request.status]
            if request.HasField("end_time"):
                run.properties["end_time"].CopyFrom(_int(request.end_time))
            if request.HasField("run_name") and request.run_name:
                run.properties["run_name"].CopyFrom(_string(request.run_name))
                run.custom_properties[TAG_PREFIX + RUN_NAME_TAG].CopyFrom(_string(request.run_name))
            self._update(uow, EXECUTION, run, stored)
            info = self._run_info(run)
        return pb.UpdateRunResponse(run_info=info)

    def _set_run_stage(self, request: pb.RunIdRequest, stage: str) -> None:
        run_id = _run_id_of(request)
        with self.db.transaction() as uow:
            types = self._write_types(uow)
            stored = run_by_id(uow, types, run_id)
            run = mlmd.Execution()
            run.CopyFrom(stored)
            run.properties["lifecycle_stage"].CopyFrom(_string(stage))
            self._update(uow, EXECUTION, run, stored)

    def delete_run(self, request: pb.RunIdRequest) -> pb.Empty:
        self._set_run_stage(request, DELETED)
        return pb.Empty()

    def restore_run(self, request: pb.RunIdRequest) -> pb.Empty:
        self._set_run_stage(request, ACTIVE)
        return pb.Empty()

    def log_metric(self, request: pb.LogMetricRequest) -> pb.Empty:
        run_id = _run_id_of(request)
        if not request.HasField("value"):
            raise _invalid("Missing value for required parameter 'value'.")
        if not request.HasField("timestamp"):
            raise _invalid("Missing value for required parameter 'timestamp'.")
        metric = pb.Metric(key=request.key, value=request.value, timestamp=request.timestamp, step=request.step)
        self._log(run_id, metrics=[metric], params=[], tags=[])
        return pb.Empty()

    def log_param(self, request: pb.LogParamRequest) -> pb.Empty:
        run_id = _run_id_of(request)
        if not request.HasField("value"):
            raise _invalid("Missing value for required parameter 'value'.")
        self._log(run_id, metrics=[], params=[pb.KeyValue(key=request.key, value=request.value)], tags=[])
        return pb.Empty()

    def set_tag(self, request: pb.SetTagRequest) -> pb.Empty:
        run_id = _run_id_of(request)
        if not request.HasField("value"):
            raise _invalid("Missing value for required parameter 'value'.")
        self._log(run_id, metrics=[], params=[], tags=[pb.KeyValue(key=request.key, value=request.value)])
        return pb.Empty()

    def delete_tag(self, request: pb.DeleteTagRequest) -> pb.Empty:
        run_id = _run_id_of(request)
        with self.db.transaction() as uow:
            types = self._write_types(uow)
            stored = self._active_run(uow, types, run_id)
            if TAG_PREFIX + request.key not in stored.custom_properties:
                raise errors.NotFoundError(f"No tag with name: {request.key} in run with id {run_id}")
            run = mlmd.Execution()
            run.CopyFrom(stored)
            del run.custom_properties[TAG_PREFIX + request.key]
            self._update(uow, EXECUTION, run, stored)
        return pb.Empty()

    def log_batch(self, request: pb.LogBatchRequest) -> pb.Empty:
        run_id = _run_id_of(request)
        self._log(run_id, list(request.metrics), list(request.params), list(request.tags))
        return pb.Empty()

    def _log(
        self, run_id: str, metrics: Sequence[pb.Metric], params: Sequence[pb.KeyValue], tags: Sequence[pb.KeyValue]
    ) -> None:
        # MLflow's server truncates over-long param and tag values (MLFLOW_TRUNCATE_LONG_VALUES,
        # on by default) rather than refusing them; so do we.
        params = [pb.KeyValue(key=p.key, value=p.value[:MAX_PARAM_VAL_LENGTH]) for p in params]
        tags = [pb.KeyValue(key=t.key, value=t.value[:MAX_TAG_VAL_LENGTH]) for t in tags]
        _check_batch(metrics, params, tags)
        with self.db.transaction() as uow:
            types = self._write_types(uow)
            stored = self._active_run(uow, types, run_id)
            run = mlmd.Execution()
            run.CopyFrom(stored)
            for param in params:
                name = PARAM_PREFIX + param.key
                if name in stored.custom_properties and stored.custom_properties[name].string_value != param.value:
                    old = stored.custom_properties[name].string_value
                    raise _invalid(
                        f"Changing param values is not allowed. Param with key='{param.key}' was already logged "
                        f"with value='{old}' for run ID='{run_id}'. Attempted logging new value '{param.value}'."
                    )
                run.custom_properties[name].CopyFrom(_string(param.value))
            for tag in tags:
                run.custom_properties[TAG_PREFIX + tag.key].CopyFrom(_string(tag.value))
                if tag.key == RUN_NAME_TAG:
                    run.properties["run_name"].CopyFrom(_string(tag.value))
            if metrics:
                rows = [MetricRow(stored.id, m.key, m.value, m.timestamp, m.step) for m in metrics]
                mlflow_store.insert_metrics(uow, rows)
                latest = {m.key: m for m in mlflow_store.latest_metrics(uow, [stored.id]).get(stored.id, [])}
                changed: dict[str, MetricRow] = {}
                for row in rows:
                    best = changed.get(row.key) or latest.get(row.key)
                    if best is None or row.rank() >= best.rank():
                        changed[row.key] = row
                mlflow_store.replace_latest(uow, stored.id, list(changed.values()))
                for key, row in changed.items():
                    value = row.value if math.isfinite(row.value) else _finite(row.value)
                    run.custom_properties[METRIC_PREFIX + key].CopyFrom(mlmd.Value(double_value=value))
            self._update(uow, EXECUTION, run, stored)

    def log_inputs(self, request: pb.LogInputsRequest) -> pb.Empty:
        run_id = _run_id_of(request)
        for item in request.datasets:
            dataset = item.dataset
            if not dataset.name or not dataset.digest:
                raise _invalid("Dataset name and digest must be set")
            _check_length("Dataset name", dataset.name, MAX_DATASET_NAME_SIZE)
            _check_length("Dataset digest", dataset.digest, MAX_DATASET_DIGEST_SIZE)
            for tag in item.tags:
                _check_length("Input tag key", tag.key, MAX_INPUT_TAG_KEY_SIZE)
                _check_length("Input tag value", tag.value, MAX_INPUT_TAG_VALUE_SIZE)
        with self.db.transaction() as uow:
            types = self._write_types(uow)
            run = self._active_run(uow, types, run_id)
            experiment_id = text(run, "experiment_id")
            experiment = self._experiment_for_write(uow, types, experiment_id)
            present = {
                e.artifact_id for e in edge_repo.events_by(uow, "execution_id", [run.id]) if e.type == mlmd.Event.INPUT
            }
            events: list[mlmd.Event] = []
            for item in request.datasets:
                artifact_id = self._dataset_artifact(uow, types, experiment, experiment_id, item.dataset)
                if artifact_id in present:
                    continue
                present.add(artifact_id)
                event = mlmd.Event(artifact_id=artifact_id, execution_id=run.id, type=mlmd.Event.INPUT)
                for tag in item.tags:
                    event.path.steps.add(key=tag.key)
                    event.path.steps.add(key=tag.value)
                events.append(event)
            for model in request.models:
                artifact = logged_model_by_id(uow, types, model.model_id)
                if artifact.id not in present:
                    present.add(artifact.id)
                    events.append(mlmd.Event(artifact_id=artifact.id, execution_id=run.id, type=mlmd.Event.INPUT))
            edges.put_events(uow, events, self.clock())
        return pb.Empty()

    def _dataset_artifact(
        self, uow: UnitOfWork, types: MlflowTypeIds, experiment: mlmd.Context, experiment_id: str, dataset: pb.Dataset
    ) -> int:
        # One artifact per (experiment, name, digest), as MLflow keeps one dataset row per them.
        name = f"{experiment_id}/{dataset.name}/{dataset.digest}"
        found = node_repo.load_by_type_and_name(uow, ARTIFACT, types.dataset, name)
        if found is not None:
            return int(found.id)
        artifact = mlmd.Artifact(type_id=types.dataset, name=name, state=mlmd.Artifact.LIVE)
        for field in ("name", "digest", "source_type", "source", "schema", "profile"):
            artifact.properties[field].CopyFrom(_string(getattr(dataset, field)))
        try:
            artifact_id = self._writer(uow, ARTIFACT).create([artifact])[0]
        except errors.AlreadyExistsError as error:
            # Another run logged the same dataset at the same moment; the retry reuses it.
            raise errors.AbortedError(f"dataset {dataset.name!r} was logged concurrently; retry") from error
        edges.link_attributions(uow, [(experiment.id, artifact_id)])
        return artifact_id

    def log_outputs(self, request: pb.LogOutputsRequest) -> pb.Empty:
        run_id = _run_id_of(request)
        with self.db.transaction() as uow:
            types = self._write_types(uow)
            run = self._active_run(uow, types, run_id)
            present = {
                e.artifact_id for e in edge_repo.events_by(uow, "execution_id", [run.id]) if e.type == mlmd.Event.OUTPUT
            }
            events = []
            for model in request.models:
                artifact = logged_model_by_id(uow, types, model.model_id)
                if artifact.id in present:
                    continue
                present.add(artifact.id)
                event = mlmd.Event(artifact_id=artifact.id, execution_id=run.id, type=mlmd.Event.OUTPUT)
                event.path.steps.add(index=model.step)
                events.append(event)
            edges.put_events(uow, events, self.clock())
        return pb.Empty()

    def get_metric_history(self, request: pb.GetMetricHistoryRequest) -> pb.GetMetricHistoryResponse:
        run_id = _run_id_of(request)
        if not request.metric_key:
            raise _invalid("Missing value for required parameter 'metric_key'.")
        offset = _offset_token(request.page_token)
        limit = int(request.max_results) if request.HasField("max_results") and request.max_results > 0 else None
        with self.db.transaction(write=False) as uow:
            types = self._read_types(uow)
            if types is None:
                raise errors.NotFoundError(f"Run with id={run_id} not found")
            run = run_by_id(uow, types, run_id)
            rows = mlflow_store.metric_history(
                uow, run.id, request.metric_key, offset, None if limit is None else limit + 1
            )
        token = ""
        if limit is not None and len(rows) > limit:
            rows = rows[:limit]
            token = _next_token(offset + limit)
        metrics = [pb.Metric(key=r.key, value=r.value, timestamp=r.timestamp, step=r.step) for r in rows]
        return pb.GetMetricHistoryResponse(metrics=metrics, next_page_token=token)

    def search_runs(self, request: pb.SearchRunsRequest) -> pb.SearchRunsResponse:
        limit = _max_results(request, SEARCH_MAX_RESULTS_DEFAULT, SEARCH_MAX_RESULTS_THRESHOLD)
        offset = _offset_token(request.page_token)
        try:
            comparisons = mlflow_filter.parse_filter(request.filter)
            order = mlflow_filter.parse_order_by(list(request.order_by))
        except ValueError as error:
            raise _invalid(str(error)) from None
        view = request.run_view_type or pb.ACTIVE_ONLY
        stage = {pb.ACTIVE_ONLY: ACTIVE, pb.DELETED_ONLY: DELETED}.get(view)
        with self.db.transaction(write=False) as uow:
            types = self._read_types(uow)
            if types is None:
                return pb.SearchRunsResponse()
            context_ids = []
            for experiment_id in request.experiment_ids:
                try:
                    context_ids.append(int(experiment_by_id(uow, types, experiment_id).id))
                except errors.NotFoundError:
                    continue  # MLflow answers no runs for an unknown experiment
            if not context_ids:
                return pb.SearchRunsResponse()
            query = RunQuery(types.run, context_ids, stage, comparisons, order, offset, limit + 1, types.dataset)
            ids = mlflow_store.search_run_ids(uow, query)
            more = len(ids) > limit
            ids = ids[:limit]
            by_id = {int(e.id): e for e in node_repo.load_by_ids(uow, EXECUTION, ids)}
            runs = self._runs(uow, types, [by_id[i] for i in ids if i in by_id])
        token = _next_token(offset + limit) if more else ""
        return pb.SearchRunsResponse(runs=runs, next_page_token=token)

    # ------------------------------------------------------------------ run answers

    def _run_info(self, run: mlmd.Execution) -> pb.RunInfo:
        status = text(run, "status") or "RUNNING"
        info = pb.RunInfo(
            run_id=run.name,
            run_uuid=run.name,
            run_name=text(run, "run_name"),
            experiment_id=text(run, "experiment_id"),
            user_id=text(run, "user_id"),
            status=pb.RunStatus.Value(status) if status in pb.RunStatus.DESCRIPTOR.values_by_name else pb.RUNNING,
            start_time=number(run, "start_time") or 0,
            artifact_uri=text(run, "artifact_uri"),
            lifecycle_stage=text(run, "lifecycle_stage") or ACTIVE,
        )
        end = number(run, "end_time")
        if end is not None:
            info.end_time = end
        return info

    def _runs(self, uow: UnitOfWork, types: MlflowTypeIds, runs: Sequence[mlmd.Execution]) -> list[pb.Run]:
        """Whole MLflow runs: three set-based reads (latest metrics, events, their artifacts)."""
        ids = [int(r.id) for r in runs]
        latest = mlflow_store.latest_metrics(uow, ids)
        events = edge_repo.events_by(uow, "execution_id", ids)
        artifacts = {int(a.id): a for a in node_repo.load_by_ids(uow, ARTIFACT, {e.artifact_id for e in events})}
        by_run: dict[int, list[mlmd.Event]] = {}
        for event in events:
            by_run.setdefault(event.execution_id, []).append(event)
        answers = []
        for run in runs:
            answer = pb.Run(info=self._run_info(run))
            for row in latest.get(int(run.id), []):
                answer.data.metrics.add(key=row.key, value=row.value, timestamp=row.timestamp, step=row.step)
            answer.data.params.extend(pb.KeyValue(key=k, value=v) for k, v in params_of(run).items())
            answer.data.tags.extend(pb.KeyValue(key=k, value=v) for k, v in tags_of(run).items())
            for event in by_run.get(int(run.id), []):
                artifact = artifacts.get(event.artifact_id)
                if artifact is None:
                    continue
                self._add_edge(answer, types, event, artifact)
            answers.append(answer)
        return answers

    @staticmethod
    def _add_edge(answer: pb.Run, types: MlflowTypeIds, event: mlmd.Event, artifact: mlmd.Artifact) -> None:
        if artifact.type_id == types.dataset and event.type == mlmd.Event.INPUT:
            item = answer.inputs.dataset_inputs.add()
            for field in ("name", "digest", "source_type", "source", "schema", "profile"):
                setattr(item.dataset, field, text(artifact, field))
            steps = [step.key for step in event.path.steps]
            for key, value in zip(steps[0::2], steps[1::2], strict=False):
                item.tags.add(key=key, value=value)
        elif artifact.type_id == types.logged_model and event.type == mlmd.Event.INPUT:
            answer.inputs.model_inputs.add(model_id=artifact.name)
        elif artifact.type_id == types.logged_model and event.type == mlmd.Event.OUTPUT:
            step = event.path.steps[0].index if event.path.steps else 0
            answer.outputs.model_outputs.add(model_id=artifact.name, step=step)

    # ------------------------------------------------------------------ logged models

    def create_logged_model(self, request: pb.CreateLoggedModelRequest) -> pb.LoggedModelResponse:
        experiment_id = request.experiment_id
        if not experiment_id:
            raise _invalid("Missing value for required parameter 'experiment_id'.")
        for item in request.params:
            _check_key("param", item.key)
            _check_length("Param value", item.value, MAX_PARAM_VAL_LENGTH)
        for item in request.tags:
            _check_key("tag", item.key)
            _check_length("Tag value", item.value, MAX_TAG_VAL_LENGTH)
        with self.db.transaction() as uow:
            types = self._write_types(uow)
            experiment = self._experiment_for_write(uow, types, experiment_id)
            if text(experiment, "lifecycle_stage") != ACTIVE:
                raise _invalid(f"The experiment {experiment_id} must be in the 'active' state.")
            if request.source_run_id:
                run_by_id(uow, types, request.source_run_id)
            model_id = f"m-{uuid.uuid4().hex}"
            name = request.name or f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(0, 999)}"
            now = self.clock()
            location = text(experiment, "artifact_location").rstrip("/")
            artifact = mlmd.Artifact(
                type_id=types.logged_model,
                name=model_id,
                uri=f"{location}/models/{model_id}/artifacts",
                state=mlmd.Artifact.PENDING,
            )
            for field, value in (
                ("experiment_id", _string(experiment_id)),
                ("model_name", _string(name)),
                ("model_type", _string(request.model_type)),
                ("source_run_id", _string(request.source_run_id)),
                ("status", _string("LOGGED_MODEL_PENDING")),
                ("creation_timestamp_ms", _int(now)),
                ("last_updated_timestamp_ms", _int(now)),
            ):
                artifact.properties[field].CopyFrom(value)
            for item in request.params:
                artifact.custom_properties[PARAM_PREFIX + item.key].CopyFrom(_string(item.value))
            for item in request.tags:
                artifact.custom_properties[TAG_PREFIX + item.key].CopyFrom(_string(item.value))
            artifact.id = self._writer(uow, ARTIFACT).create([artifact])[0]
            edges.link_attributions(uow, [(experiment.id, artifact.id)])
            answer = self._logged_model(artifact)
        return pb.LoggedModelResponse(model=answer)

    def _change_model(self, model_id: str, change: Callable[[mlmd.Artifact], None]) -> pb.LoggedModelResponse:
        with self.db.transaction() as uow:
            types = self._write_types(uow)
            stored = logged_model_by_id(uow, types, model_id)
            artifact = mlmd.Artifact()
            artifact.CopyFrom(stored)
            change(artifact)
            artifact.properties["last_updated_timestamp_ms"].CopyFrom(_int(self.clock()))
            self._update(uow, ARTIFACT, artifact, stored)
            answer = self._logged_model(artifact)
        return pb.LoggedModelResponse(model=answer)

    def get_logged_model(self, request: pb.LoggedModelIdRequest) -> pb.LoggedModelResponse:
        with self.db.transaction(write=False) as uow:
            types = self._read_types(uow)
            if types is None:
                raise errors.NotFoundError(f"Logged model with ID '{request.model_id}' not found.")
            answer = self._logged_model(logged_model_by_id(uow, types, request.model_id))
        return pb.LoggedModelResponse(model=answer)

    def finalize_logged_model(self, request: pb.FinalizeLoggedModelRequest) -> pb.LoggedModelResponse:
        if request.status not in (pb.LOGGED_MODEL_READY, pb.LOGGED_MODEL_UPLOAD_FAILED):
            raise _invalid("The status of a finalized logged model must be LOGGED_MODEL_READY or UPLOAD_FAILED")

        def change(artifact: mlmd.Artifact) -> None:
            artifact.properties["status"].CopyFrom(_string(pb.LoggedModelStatus.Name(request.status)))
            artifact.state = mlmd.Artifact.LIVE if request.status == pb.LOGGED_MODEL_READY else mlmd.Artifact.ABANDONED

        return self._change_model(request.model_id, change)

    def set_logged_model_tags(self, request: pb.SetLoggedModelTagsRequest) -> pb.LoggedModelResponse:
        for item in request.tags:
            _check_key("tag", item.key)
            _check_length("Tag value", item.value, MAX_TAG_VAL_LENGTH)

        def change(artifact: mlmd.Artifact) -> None:
            for item in request.tags:
                artifact.custom_properties[TAG_PREFIX + item.key].CopyFrom(_string(item.value))

        return self._change_model(request.model_id, change)

    def log_logged_model_params(self, request: pb.LogLoggedModelParamsRequest) -> pb.Empty:
        for item in request.params:
            _check_key("param", item.key)
            _check_length("Param value", item.value, MAX_PARAM_VAL_LENGTH)

        def change(artifact: mlmd.Artifact) -> None:
            for item in request.params:
                artifact.custom_properties[PARAM_PREFIX + item.key].CopyFrom(_string(item.value))

        self._change_model(request.model_id, change)
        return pb.Empty()

    def search_logged_models(self, request: pb.SearchLoggedModelsRequest) -> pb.SearchLoggedModelsResponse:
        limit = _max_results(request, 100, SEARCH_MAX_RESULTS_THRESHOLD)
        offset = _offset_token(request.page_token)
        conditions = _model_filter(request.filter)
        with self.db.transaction(write=False) as uow:
            types = self._read_types(uow)
            if types is None:
                return pb.SearchLoggedModelsResponse()
            models = []
            for experiment_id in request.experiment_ids:
                try:
                    context = experiment_by_id(uow, types, experiment_id)
                except errors.NotFoundError:
                    continue
                scope = listing.Scope(type_id=types.logged_model, context_id=int(context.id))
                models.extend(listing.list_all(uow, ARTIFACT, scope))
        models = [m for m in models if all(text(m, field) == value for field, value in conditions)]
        models.sort(key=lambda a: (-(number(a, "creation_timestamp_ms") or 0), a.name))
        page = [self._logged_model(a) for a in models[offset : offset + limit]]
        token = _next_token(offset + limit) if len(models) > offset + limit else ""
        return pb.SearchLoggedModelsResponse(models=page, next_page_token=token)

    @staticmethod
    def _logged_model(artifact: mlmd.Artifact) -> pb.LoggedModel:
        status = text(artifact, "status")
        model = pb.LoggedModel(
            info=pb.LoggedModelInfo(
                model_id=artifact.name,
                experiment_id=text(artifact, "experiment_id"),
                name=text(artifact, "model_name"),
                creation_timestamp_ms=number(artifact, "creation_timestamp_ms") or 0,
                last_updated_timestamp_ms=number(artifact, "last_updated_timestamp_ms") or 0,
                artifact_uri=artifact.uri,
                status=pb.LoggedModelStatus.Value(
                    status if status in _MODEL_STATUSES else "LOGGED_MODEL_STATUS_UNSPECIFIED"
                ),
                model_type=text(artifact, "model_type"),
                source_run_id=text(artifact, "source_run_id"),
                status_message=text(artifact, "status_message"),
            )
        )
        model.info.tags.extend(pb.KeyValue(key=k, value=v) for k, v in tags_of(artifact).items())
        model.data.params.extend(pb.KeyValue(key=k, value=v) for k, v in params_of(artifact).items())
        return model


def _finite(value: float) -> float:
    """A stand-in double for a property (MLMD's filter sees a number): NaN as 0, +-inf clamped."""
    if math.isnan(value):
        return 0.0
    return 1.7976931348623157e308 if value > 0 else -1.7976931348623157e308


def _check_batch(metrics: Sequence[pb.Metric], params: Sequence[pb.KeyValue], tags: Sequence[pb.KeyValue]) -> None:
    if len(metrics) > MAX_METRICS_PER_BATCH:
        raise _invalid(
            f"A batch logging request can contain at most {MAX_METRICS_PER_BATCH} metrics. Got {len(metrics)} "
            "metrics. Please split up metrics across multiple requests and try again."
        )
    if len(params) > MAX_PARAMS_TAGS_PER_BATCH:
        raise _invalid(
            f"A batch logging request can contain at most {MAX_PARAMS_TAGS_PER_BATCH} params. Got {len(params)} "
            "params. Please split up params across multiple requests and try again."
        )
    if len(tags) > MAX_PARAMS_TAGS_PER_BATCH:
        raise _invalid(
            f"A batch logging request can contain at most {MAX_PARAMS_TAGS_PER_BATCH} tags. Got {len(tags)} "
            "tags. Please split up tags across multiple requests and try again."
        )
    if len(metrics) + len(params) + len(tags) > MAX_ENTITIES_PER_BATCH:
        raise _invalid(
            f"A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} metrics, params and tags in total."
        )
    for metric in metrics:
        _check_key("metric", metric.key)
    seen: dict[str, str] = {}
    for param in params:
        _check_key("param", param.key)
        _check_length("Param value", param.value, MAX_PARAM_VAL_LENGTH)
        if param.key in seen and seen[param.key] != param.value:
            raise _invalid(
                f"Duplicate parameter keys have been submitted: ['{param.key}']. Please ensure the request "
                "contains only one param value per param key."
            )
        seen[param.key] = param.value
    for tag in tags:
        _check_key("tag", tag.key)
        _check_length("Tag value", tag.value, MAX_TAG_VAL_LENGTH)


# ------------------------------------------------------------------ logged model search

_MODEL_CONDITION = re.compile(
    r"""^\s*(?:attributes?\.)?(?P<field>name|source_run_id|model_type|status)\s*=\s*(?P<value>'[^']*'|"[^"]*")\s*$""",
    re.IGNORECASE,
)
_MODEL_FIELDS = {"name": "model_name", "source_run_id": "source_run_id", "model_type": "model_type", "status": "status"}


def _model_filter(text_: str) -> list[tuple[str, str]]:
    """(property, value) equalities of a logged-model filter: what the client sends when it lists
    a run's artifacts (`name = '<x>'`) or a run's models (`source_run_id = '<id>'`)."""
    conditions: list[tuple[str, str]] = []
    if not text_.strip():
        return conditions
    for part in re.split(r"\s+AND\s+", text_.strip(), flags=re.IGNORECASE):
        match = _MODEL_CONDITION.match(part)
        if match is None:
            raise _invalid(
                f"Invalid filter {text_!r}: this server filters logged models by equality on name, "
                "source_run_id, model_type and status, joined by AND"
            )
        conditions.append((_MODEL_FIELDS[match.group("field").lower()], match.group("value")[1:-1]))
    return conditions


# ------------------------------------------------------------------ experiment search

_EXPERIMENT_FILTER = re.compile(
    r"""^\s*(?:attributes?\.|attr\.)?
    (?P<field>name|creation_time|last_update_time|tags?\.(?P<tag>[\w.\-/:]+|`[^`]+`))\s*
    (?P<op>=|!=|>=|<=|>|<|LIKE|ILIKE)\s*(?P<value>'[^']*'|"[^"]*"|-?\d+)\s*$""",
    re.VERBOSE | re.IGNORECASE,
)


def _experiment_filter(text_: str) -> list[Callable[[pb.Experiment], bool]]:
    """MLflow's experiment filter (name, times, tags; AND only) as predicates."""
    conditions: list[Callable[[pb.Experiment], bool]] = []
    if not text_.strip():
        return conditions
    for part in re.split(r"\s+AND\s+", text_.strip(), flags=re.IGNORECASE):
        match = _EXPERIMENT_FILTER.match(part)
        if match is None:
            raise _invalid(f"Invalid filter string: {text_!r}")
        conditions.append(_experiment_condition(match))
    return conditions


def _experiment_condition(match: re.Match[str]) -> Callable[[pb.Experiment], bool]:
    field, op, raw = match.group("field").lower(), match.group("op").upper(), match.group("value")
    tag = match.group("tag")
    value: Any = raw[1:-1] if raw[0] in "'\"" else int(raw)

    def current(experiment: pb.Experiment) -> Any:
        if tag is not None:
            key = tag.strip("`")
            return next((t.value for t in experiment.tags if t.key == key), None)
        return getattr(experiment, field)

    def check(experiment: pb.Experiment) -> bool:
        left = current(experiment)
        if left is None:
            return False
        return _compare(left, op, value)

    return check


def _compare(left: Any, op: str, right: Any) -> bool:
    if op in ("LIKE", "ILIKE"):
        pattern = "^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in str(right)) + "$"
        return re.match(pattern, str(left), re.IGNORECASE if op == "ILIKE" else 0) is not None
    if type(left) is not type(right):
        return False
    result: bool = {
        "=": left == right,
        "!=": left != right,
        ">": left > right,
        ">=": left >= right,
        "<": left < right,
        "<=": left <= right,
    }[op]
    return result


def _experiment_order(clauses: Iterable[str]) -> list[tuple[Callable[[pb.Experiment], Any], bool]]:
    order: list[tuple[Callable[[pb.Experiment], Any], bool]] = []
    named = set()
    for clause in clauses:
        parts = clause.strip().split()
        field = parts[0].split(".", 1)[-1] if parts else ""
        if field not in ("name", "creation_time", "last_update_time", "experiment_id") or len(parts) > 2:
            raise _invalid(f"Invalid order_by clause '{clause}'")
        ascending = len(parts) == 1 or parts[1].upper() == "ASC"
        if len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC"):
            raise _invalid(f"Invalid order_by clause '{clause}'")
        named.add(field)
        order.append((_experiment_key(field), ascending))
    if "creation_time" not in named:
        order.append((_experiment_key("creation_time"), False))
    if "experiment_id" not in named:
        order.append((_experiment_key("experiment_id"), True))
    return order


def _experiment_key(field: str) -> Callable[[pb.Experiment], Any]:
    if field == "experiment_id":
        return lambda e: int(e.experiment_id)
    return lambda e: getattr(e, field)
