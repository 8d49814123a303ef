"""lineagedb.v1.MlflowRegistryService: MLflow's model registry stored in the lineage graph.

One graph with the tracking API (lineagedb.service.mlflow_graph):
- a registered model is a context of type `mlflow.RegisteredModel` named like the model; its
  tags are custom properties `tag.<key>`, its aliases custom properties `alias.<alias>` holding
  the version number, and `last_version` the highest version ever given (MLflow never reuses one);
- a model version is an artifact of type `mlflow.ModelVersion` named `<model's context id>/<version>`
  (MLMD names never change; the model's name, which can, is its property `model_name`),
  attributed to its registered model, its uri the download location; when its `run_id` names a
  run the caller can see, that run's execution has an OUTPUT event to it, so the lineage answers
  (Provenance of the version) reach the run and the run's input datasets.

Each request is one transaction; the types are registered once, in the first writing request.
Errors follow MLflow's (NOT_FOUND = RESOURCE_DOES_NOT_EXIST, ALREADY_EXISTS =
RESOURCE_ALREADY_EXISTS, INVALID_ARGUMENT = INVALID_PARAMETER_VALUE) with MLflow's wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import mlflow_registry_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service import access, edges, mlflow_search
from lineagedb.service import types as type_rules
from lineagedb.service.nodes import NameClash, NodeWriter
from lineagedb.service.type_cache import TypeCache
from lineagedb.store.repositories import deletion as deletion_repo
from lineagedb.store.repositories import listing, row_locks
from lineagedb.store.repositories import nodes as node_repo
from lineagedb.store.repositories import types as type_repo
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.schema import ARTIFACT_KIND, CONTEXT_KIND, EXECUTION_KIND
from lineagedb.store.unit_of_work import Database, UnitOfWork

REGISTERED_MODEL_TYPE = "mlflow.RegisteredModel"
MODEL_VERSION_TYPE = "mlflow.ModelVersion"
# The tracking API's run type: an execution named by the MLflow run_id (lineagedb.service.mlflow_graph).
RUN_TYPE = "mlflow.Run"

TAG = "tag."
ALIAS = "alias."
STAGES = ("None", "Staging", "Production", "Archived")
_CANONICAL_STAGE = {stage.lower(): stage for stage in STAGES}
MAX_MODELS_PER_PAGE = 1000
DEFAULT_MODELS_PER_PAGE = 100
MAX_VERSIONS_PER_PAGE = 200_000

_S, _I = mlmd.STRING, mlmd.INT
MODEL_PROPERTIES = {
    "description": _S,
    "user_id": _S,
    "creation_timestamp": _I,
    "last_updated_timestamp": _I,
    "last_version": _I,
}
VERSION_PROPERTIES = {
    "model_name": _S,
    "version": _I,
    "current_stage": _S,
    "description": _S,
    "user_id": _S,
    "source": _S,
    "run_id": _S,
    "run_link": _S,
    "status": _S,
    "status_message": _S,
    "model_id": _S,
    "creation_timestamp": _I,
    "last_updated_timestamp": _I,
}
_MODEL_FILTER_KEYS = ("name",)
_VERSION_FILTER_KEYS = ("name", "run_id", "source_path", "version_number", "model_id")
_MODEL_ORDER = {
    "name": "name",
    "timestamp": "last_updated_timestamp",
    "last_updated_timestamp": "last_updated_timestamp",
    "creation_timestamp": "creation_timestamp",
}
_VERSION_ORDER = {**_MODEL_ORDER, "version_number": "version_number"}
_RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)
_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)(?:/(?P<path>.*))?$")


@dataclass(frozen=True)
class RegistryTypes:
    model: int
    version: int


def _text(node: Any, name: str) -> str:
    value = node.properties.get(name)
    return str(value.string_value) if value is not None else ""


def _number(node: Any, name: str) -> int:
    value = node.properties.get(name)
    return int(value.int_value) if value is not None else 0


def _tags(node: Any) -> dict[str, str]:
    return {k[len(TAG) :]: v.string_value for k, v in node.custom_properties.items() if k.startswith(TAG)}


def _aliases(model: mlmd.Context) -> dict[str, int]:
    return {k[len(ALIAS) :]: v.int_value for k, v in model.custom_properties.items() if k.startswith(ALIAS)}


def _check_name(name: str) -> None:
    if not name:
        raise errors.InvalidArgumentError("Registered model name cannot be empty.")


def _version_number(version: str) -> int:
    try:
        number = int(version)
    except ValueError:
        number = -1
    if number < 1 and not (number == 0 and version.strip() == "0"):
        raise errors.InvalidArgumentError(f"Parameter 'version' must be an integer, got '{version}'.")
    return number


def _stage(stage: str) -> str:
    canonical = _CANONICAL_STAGE.get(stage.strip().lower())
    if canonical is None:
        raise errors.InvalidArgumentError(
            f"Invalid Model Version stage: {stage}. Value must be one of {', '.join(STAGES)}."
        )
    return canonical


def _check_tag(key: str) -> None:
    if not key:
        raise errors.InvalidArgumentError("Missing value for required parameter 'key'.")
    if len(key) > 250:
        raise errors.InvalidArgumentError(f"Tag key '{key[:32]}...' exceeds the maximum length of 250")


def _check_alias(alias: str) -> None:
    if not alias:
        raise errors.InvalidArgumentError("Missing value for required parameter 'alias'.")
    if len(alias) > 255 or _RESERVED_ALIAS.match(alias):
        raise errors.InvalidArgumentError(
            f"Invalid alias name: '{alias}'. Aliases cannot be 'latest' or of the form 'v<number>', "
            "and are at most 255 characters long."
        )


def _model_missing(name: str) -> errors.NotFoundError:
    return errors.NotFoundError(f"Registered Model with name={name} not found")


def _version_missing(name: str, version: str) -> errors.NotFoundError:
    return errors.NotFoundError(f"Model Version (name={name}, version={version}) not found")


def _string(value: str) -> mlmd.Value:
    return mlmd.Value(string_value=value)


def _int(value: int) -> mlmd.Value:
    return mlmd.Value(int_value=value)


class MlflowRegistry:
    def __init__(self, database: Database, clock: Callable[[], int], types: TypeCache | None = None) -> None:
        self.db = database
        self.clock = clock
        self.types = types or TypeCache()
        self._type_ids: RegistryTypes | None = None

    # -- types ------------------------------------------------------------------------------

    def _ensure_types(self, uow: UnitOfWork) -> RegistryTypes:
        if self._type_ids is not None:
            return self._type_ids
        model = type_rules.put_type_record(
            uow,
            CONTEXT_KIND,
            mlmd.ContextType(
                name=REGISTERED_MODEL_TYPE,
                description="An MLflow registered model (its versions are attributed to it)",
                properties=MODEL_PROPERTIES,
            ),
            can_add_fields=True,
            can_omit_fields=True,
        )
        version = type_rules.put_type_record(
            uow,
            ARTIFACT_KIND,
            mlmd.ArtifactType(
                name=MODEL_VERSION_TYPE,
                description="A version of an MLflow registered model; an output of the run that produced it",
                properties=VERSION_PROPERTIES,
            ),
            can_add_fields=True,
            can_omit_fields=True,
        )
        ids = RegistryTypes(model.id, version.id)
        self.types.remember(uow, model)
        self.types.remember(uow, version)

        def keep() -> None:
            self._type_ids = ids

        uow.after_commit(keep)
        return ids

    def _stored_types(self, uow: UnitOfWork) -> RegistryTypes | None:
        """The types if registered (reads never create them)."""
        if self._type_ids is not None:
            return self._type_ids
        model = type_repo.by_name(uow, CONTEXT_KIND, REGISTERED_MODEL_TYPE, None)
        version = type_repo.by_name(uow, ARTIFACT_KIND, MODEL_VERSION_TYPE, None)
        if model is None or version is None:
            return None
        return RegistryTypes(model.id, version.id)

    # -- loading ----------------------------------------------------------------------------

    def _model(self, uow: UnitOfWork, types: RegistryTypes | None, name: str) -> mlmd.Context:
        _check_name(name)
        found = node_repo.load_by_type_and_name(uow, NodeKind.CONTEXT, types.model, name) if types else None
        if found is None:
            raise _model_missing(name)
        return found

    def _versions(self, uow: UnitOfWork, types: RegistryTypes, model_ids: Iterable[int]) -> dict[int, list[Any]]:
        """Each model's versions, oldest first: one read through the attributions for one model,
        one read of every version for a page of models (never a read per model)."""
        wanted = list(model_ids)
        found: dict[int, list[Any]] = {model_id: [] for model_id in wanted}
        if len(wanted) == 1:
            scope = listing.Scope(type_id=types.version, context_id=wanted[0])
            found[wanted[0]] = listing.list_all(uow, NodeKind.ARTIFACT, scope)
        elif wanted:
            for version in listing.list_all(uow, NodeKind.ARTIFACT, listing.Scope(type_id=types.version)):
                owner = _model_id_of(version)
                if owner in found:
                    found[owner].append(version)
        for versions in found.values():
            versions.sort(key=lambda v: _number(v, "version"))
        return found

    def _version(self, uow: UnitOfWork, types: RegistryTypes, model: mlmd.Context, version: str) -> Any:
        number = _version_number(version)
        found = node_repo.load_by_type_and_name(uow, NodeKind.ARTIFACT, types.version, _version_name(model, number))
        if found is None:
            raise _version_missing(model.name, version)
        return found

    def _run(self, uow: UnitOfWork, run_id: str) -> Any | None:
        """The execution of an MLflow run the caller can see, or None."""
        run_type = type_repo.by_name(uow, EXECUTION_KIND, RUN_TYPE, None)
        if run_type is None or not run_id:
            return None
        return node_repo.load_by_type_and_name(uow, NodeKind.EXECUTION, run_type.id, run_id)

    # -- messages ---------------------------------------------------------------------------

    def _version_message(self, node: Any, aliases: dict[str, int] | None = None) -> pb.ModelVersion:
        number = _number(node, "version")
        return pb.ModelVersion(
            name=_text(node, "model_name"),
            version=str(number),
            creation_timestamp=_number(node, "creation_timestamp"),
            last_updated_timestamp=_number(node, "last_updated_timestamp"),
            user_id=_text(node, "user_id"),
            current_stage=_text(node, "current_stage"),
            description=_text(node, "description"),
            source=_text(node, "source"),
            run_id=_text(node, "run_id"),
            status=pb.ModelVersionStatus.Value(_text(node, "status") or "READY"),
            status_message=_text(node, "status_message"),
            tags=[pb.ModelVersionTag(key=k, value=v) for k, v in sorted(_tags(node).items())],
            run_link=_text(node, "run_link"),
            aliases=sorted(a for a, v in (aliases or {}).items() if v == number),
            model_id=_text(node, "model_id"),
        )

    def _model_message(self, model: mlmd.Context, versions: Sequence[Any]) -> pb.RegisteredModel:
        aliases = _aliases(model)
        return pb.RegisteredModel(
            name=model.name,
            creation_timestamp=_number(model, "creation_timestamp"),
            last_updated_timestamp=_number(model, "last_updated_timestamp"),
            user_id=_text(model, "user_id"),
            description=_text(model, "description"),
            latest_versions=[self._version_message(v, aliases) for v in _latest(versions, STAGES)],
            tags=[pb.RegisteredModelTag(key=k, value=v) for k, v in sorted(_tags(model).items())],
            aliases=[pb.RegisteredModelAlias(alias=a, version=str(v)) for a, v in sorted(aliases.items())],
        )

    def _model_answer(self, uow: UnitOfWork, types: RegistryTypes, model: mlmd.Context) -> pb.RegisteredModelResponse:
        versions = self._versions(uow, types, [model.id])[model.id]
        return pb.RegisteredModelResponse(registered_model=self._model_message(model, versions))

    # -- writes helpers ---------------------------------------------------------------------

    def _writer(self, uow: UnitOfWork, kind: NodeKind) -> NodeWriter:
        return NodeWriter(uow, kind, self.types, self.clock)

    def _rewrite(self, uow: UnitOfWork, kind: NodeKind, changed: Any, stored: Any) -> None:
        """Store `changed` (a modified copy of `stored`) in place of it."""
        writer = self._writer(uow, kind)
        writer.load_stored([stored.id])  # learns whether the caller may write its namespace
        writer.update(changed, stored)

    def _touch_model(self, uow: UnitOfWork, model: mlmd.Context, now: int, **changes: Any) -> mlmd.Context:
        changed = mlmd.Context()
        changed.CopyFrom(model)
        for name, value in changes.items():
            if name == "name":
                changed.name = value
            elif isinstance(value, int):
                changed.properties[name].CopyFrom(_int(value))
            else:
                changed.properties[name].CopyFrom(_string(value))
        changed.properties["last_updated_timestamp"].CopyFrom(_int(now))
        self._rewrite(uow, NodeKind.CONTEXT, changed, model)
        return changed

    def _copy(self, node: Any) -> Any:
        copied = type(node)()
        copied.CopyFrom(node)
        return copied

    # -- registered models ------------------------------------------------------------------

    def create_registered_model(self, request: pb.CreateRegisteredModelRequest) -> pb.RegisteredModelResponse:
        _check_name(request.name)
        for tag in request.tags:
            _check_tag(tag.key)
        now = self.clock()
        with self.db.transaction() as uow:
            types = self._ensure_types(uow)
            if node_repo.load_by_type_and_name(uow, NodeKind.CONTEXT, types.model, request.name) is not None:
                raise errors.AlreadyExistsError(f"Registered Model (name={request.name}) already exists.")
            model = mlmd.Context(type_id=types.model, name=request.name)
            model.properties["description"].CopyFrom(_string(request.description))
            model.properties["creation_timestamp"].CopyFrom(_int(now))
            model.properties["last_updated_timestamp"].CopyFrom(_int(now))
            model.properties["last_version"].CopyFrom(_int(0))
            for tag in request.tags:
                model.custom_properties[TAG + tag.key].CopyFrom(_string(tag.value))
            try:
                (model.id,) = self._writer(uow, NodeKind.CONTEXT).create([model])
            except errors.AlreadyExistsError as error:
                raise errors.AlreadyExistsError(f"Registered Model (name={request.name}) already exists.") from error
            return pb.RegisteredModelResponse(registered_model=self._model_message(model, []))

    def get_registered_model(self, request: pb.RegisteredModelName) -> pb.RegisteredModelResponse:
        with self.db.transaction(write=False) as uow:
            types = self._stored_types(uow)
            model = self._model(uow, types, request.name)
            assert types is not None
            return self._model_answer(uow, types, model)

    def rename_registered_model(self, request: pb.RenameRegisteredModelRequest) -> pb.RegisteredModelResponse:
        if not request.new_name:
            raise errors.InvalidArgumentError("Registered model name cannot be empty.")
        now = self.clock()
        with self.db.transaction() as uow:
            types = self._ensure_types(uow)
            model = self._model(uow, types, request.name)
            if request.new_name != request.name and (
                node_repo.load_by_type_and_name(uow, NodeKind.CONTEXT, types.model, request.new_name) is not None
                or node_repo.exists_unscoped(uow, NodeKind.CONTEXT, types.model, request.new_name)
            ):
                raise errors.AlreadyExistsError(f"Registered Model (name={request.new_name}) already exists.")
            try:
                renamed = self._touch_model(uow, model, now, name=request.new_name)
            except NameClash as error:
                # A create (or rename) of that name committed after the check above.
                raise errors.AlreadyExistsError(
                    f"Registered Model (name={request.new_name}) already exists."
                ) from error
            # The versions carry the model's name as a property: rename them too.
            for version in self._versions(uow, types, [model.id])[model.id]:
                changed = self._copy(version)
                changed.properties["model_name"].CopyFrom(_string(request.new_name))
                self._rewrite(uow, NodeKind.ARTIFACT, changed, version)
            return self._model_answer(uow, types, renamed)

    def update_registered_model(self, request: pb.UpdateRegisteredModelRequest) -> pb.RegisteredModelResponse:
        now = self.clock()
        with self.db.transaction() as uow:
            types = self._ensure_types(uow)
            model = self._model(uow, types, request.name)
            if request.HasField("description"):
                model = self._touch_model(uow, model, now, description=request.description)
            return self._model_answer(uow, types, model)

    def delete_registered_model(self, request: pb.RegisteredModelName) -> pb.Empty:
        with self.db.transaction() as uow:
            types = self._ensure_types(uow)
            model = self._model(uow, types, request.name)
            versions = self._versions(uow, types, [model.id])[model.id]
            artifact_ids = {v.id for v in versions}
            if access.read_only(uow, "context", {model.id}) or access.read_only(uow, "artifact", artifact_ids):
                raise errors.PermissionDeniedError(
                    f"you may read registered model {request.name!r} but not delete it (its namespace)"
                )
            deletion_repo.remove(uow, artifact_ids, set(), {model.id})
            if uow.changes is not None:  # the audit record names what went
                uow.changes.add_deleted("artifact", sorted(artifact_ids))
                uow.changes.add_deleted("context", [model.id])
        return pb.Empty()

    def search_registered_models(self, request: pb.SearchRequest) -> pb.SearchRegisteredModelsResponse:
        limit = request.max_results or DEFAULT_MODELS_PER_PAGE
        if limit < 1 or limit > MAX_MODELS_PER_PAGE:
            raise errors.InvalidArgumentError(
                f"Invalid value for request parameter max_results. It must be at most {MAX_MODELS_PER_PAGE}, "
                f"but got value {limit}"
            )
        clauses = mlflow_search.parse_filter(request.filter, _MODEL_FILTER_KEYS)
        order = mlflow_search.parse_order_by(request.order_by, _MODEL_ORDER)
        if not any(key.field == "name" for key in order):
            order.append(mlflow_search.OrderKey("name", True))
        with self.db.transaction(write=False) as uow:
            types = self._stored_types(uow)
            if types is None:
                return pb.SearchRegisteredModelsResponse()
            models = listing.list_all(uow, NodeKind.CONTEXT, listing.Scope(type_id=types.model))
            chosen = [m for m in models if mlflow_search.matches(clauses, {"name": m.name}, _tags(m))]
            mlflow_search.sort(chosen, order, lambda m, f: m.name if f == "name" else _number(m, f))
            page, token = mlflow_search.page(chosen, limit, request.page_token)
            versions = self._versions(uow, types, [m.id for m in page])
            return pb.SearchRegisteredModelsResponse(
                registered_models=[self._model_message(m, versions[m.id]) for m in page], next_page_token=token
            )

    def _change_model(
        self, name: str, change: Callable[[UnitOfWork, RegistryTypes, mlmd.Context, mlmd.Context], None]
    ) -> pb.Empty:
        """One transaction: `change` edits a copy of the model (given the stored one too); a copy
        that differs is written back."""
        with self.db.transaction() as uow:
            types = self._ensure_types(uow)
            model = self._model(uow, types, name)
            changed = self._copy(model)
            change(uow, types, changed, model)
            if changed != model:
                self._rewrite(uow, NodeKind.CONTEXT, changed, model)
        return pb.Empty()

    def set_registered_model_tag(self, request: pb.SetRegisteredModelTagRequest) -> pb.Empty:
        _check_tag(request.key)

        def change(uow: UnitOfWork, types: RegistryTypes, model: mlmd.Context, stored: mlmd.Context) -> None:
            model.custom_properties[TAG + request.key].CopyFrom(_string(request.value))

        return self._change_model(request.name, change)

    def delete_registered_model_tag(self, request: pb.DeleteRegisteredModelTagRequest) -> pb.Empty:
        _check_tag(request.key)

        def change(uow: UnitOfWork, types: RegistryTypes, model: mlmd.Context, stored: mlmd.Context) -> None:
            model.custom_properties.pop(TAG + request.key, None)

        return self._change_model(request.name, change)

    def set_registered_model_alias(self, request: pb.SetRegisteredModelAliasRequest) -> pb.Empty:
        _check_alias(request.alias)

        def change(uow: UnitOfWork, types: RegistryTypes, model: mlmd.Context, stored: mlmd.Context) -> None:
            version = self._version(uow, types, stored, request.version)
            model.custom_properties[ALIAS + request.alias].CopyFrom(_int(_number(version, "version")))

        return self._change_model(request.name, change)

    def delete_registered_model_alias(self, request: pb.RegisteredModelAliasName) -> pb.Empty:
        _check_alias(request.alias)

        def change(uow: UnitOfWork, types: RegistryTypes, model: mlmd.Context, stored: mlmd.Context) -> None:
            model.custom_properties.pop(ALIAS + request.alias, None)

        return self._change_model(request.name, change)

    def get_model_version_by_alias(self, request: pb.RegisteredModelAliasName) -> pb.ModelVersionResponse:
        with self.db.transaction(write=False) as uow:
            types = self._stored_types(uow)
            model = self._model(uow, types, request.name)
            assert types is not None
            aliases = _aliases(model)
            if request.alias not in aliases:
                # MLflow answers INVALID_PARAMETER_VALUE here, not RESOURCE_DOES_NOT_EXIST.
                raise errors.InvalidArgumentError(f"Registered model alias {request.alias} not found.")
            version = self._version(uow, types, model, str(aliases[request.alias]))
            return pb.ModelVersionResponse(model_version=self._version_message(version, aliases))

    def get_latest_versions(self, request: pb.GetLatestVersionsRequest) -> pb.ModelVersionsResponse:
        stages = [_stage(s) for s in request.stages] or list(STAGES)
        with self.db.transaction(write=False) as uow:
            types = self._stored_types(uow)
            model = self._model(uow, types, request.name)
            assert types is not None
            versions = self._versions(uow, types, [model.id])[model.id]
            aliases = _aliases(model)
            return pb.ModelVersionsResponse(
                model_versions=[self._version_message(v, aliases) for v in _latest(versions, stages)]
            )

    # -- model versions ---------------------------------------------------------------------

    def create_model_version(self, request: pb.CreateModelVersionRequest) -> pb.ModelVersionResponse:
        _check_name(request.name)
        if not request.source:
            raise errors.InvalidArgumentError("Missing value for required parameter 'source'.")
        for tag in request.tags:
            _check_tag(tag.key)
        now = self.clock()
        with self.db.transaction() as uow:
            types = self._ensure_types(uow)
            # Versions of one model are numbered one after another: writers of the same model wait
            # for each other on its row (locked before it is read, so its last_version is current).
            row_locks.lock_by_type_and_name(uow, NodeKind.CONTEXT, types.model, request.name)
            model = self._model(uow, types, request.name)
            number = _number(model, "last_version") + 1
            run = self._run(uow, request.run_id)
            version = mlmd.Artifact(
                type_id=types.version,
                name=_version_name(model, number),
                uri=self._download_uri(uow, request.source, run),
                state=mlmd.Artifact.LIVE,
            )
            values: dict[str, mlmd.Value] = {
                "model_name": _string(model.name),
                "version": _int(number),
                "current_stage": _string("None"),
                "description": _string(request.description),
                "source": _string(request.source),
                "run_id": _string(request.run_id),
                "run_link": _string(request.run_link),
                "status": _string("READY"),
                "model_id": _string(request.model_id),
                "creation_timestamp": _int(now),
                "last_updated_timestamp": _int(now),
            }
            for name, value in values.items():
                version.properties[name].CopyFrom(value)
            for tag in request.tags:
                version.custom_properties[TAG + tag.key].CopyFrom(_string(tag.value))
            try:
                (version.id,) = self._writer(uow, NodeKind.ARTIFACT).create([version])
            except errors.AlreadyExistsError as error:
                # A writer the lock did not hold back took the number: the server retries ABORTED.
                raise errors.AbortedError(f"version {number} of {model.name!r} was just created; retry") from error
            edges.link_attributions(uow, [(model.id, version.id)])
            if run is not None:
                edges.put_events(
                    uow, [mlmd.Event(artifact_id=version.id, execution_id=run.id, type=mlmd.Event.OUTPUT)], now
                )
            self._touch_model(uow, model, now, last_version=number)
            return pb.ModelVersionResponse(model_version=self._version_message(version))

    def _download_uri(self, uow: UnitOfWork, source: str, run: Any | None) -> str:
        """Where the version's files are: a `runs:/<id>/<path>` source resolves against the run's
        artifact_uri (as MLflow's server does); any other source is the location itself."""
        match = _RUNS_URI.match(source)
        if match is None:
            return source
        if run is None or run.name != match.group("run_id"):
            run = self._run(uow, match.group("run_id"))
        root = _text(run, "artifact_uri") if run is not None else ""
        if not root:
            return source
        path = match.group("path") or ""
        return f"{root.rstrip('/')}/{path}" if path else root

    def get_model_version(self, request: pb.ModelVersionName) -> pb.ModelVersionResponse:
        with self.db.transaction(write=False) as uow:
            types = self._stored_types(uow)
            model = self._model(uow, types, request.name)
            assert types is not None
            version = self._version(uow, types, model, request.version)
            return pb.ModelVersionResponse(model_version=self._version_message(version, _aliases(model)))

    def _change_version(
        self, name: str, version_text: str, change: Callable[[UnitOfWork, RegistryTypes, mlmd.Context, Any], Any]
    ) -> pb.ModelVersionResponse:
        with self.db.transaction() as uow:
            types = self._ensure_types(uow)
            model = self._model(uow, types, name)
            version = self._version(uow, types, model, version_text)
            changed = self._copy(version)
            change(uow, types, model, changed)
            if changed != version:
                changed.properties["last_updated_timestamp"].CopyFrom(_int(self.clock()))
                self._rewrite(uow, NodeKind.ARTIFACT, changed, version)
            return pb.ModelVersionResponse(model_version=self._version_message(changed, _aliases(model)))

    def update_model_version(self, request: pb.UpdateModelVersionRequest) -> pb.ModelVersionResponse:
        def change(uow: UnitOfWork, types: RegistryTypes, model: mlmd.Context, version: Any) -> None:
            if request.HasField("description"):
                version.properties["description"].CopyFrom(_string(request.description))

        return self._change_version(request.name, request.version, change)

    def set_model_version_tag(self, request: pb.SetModelVersionTagRequest) -> pb.Empty:
        _check_tag(request.key)

        def change(uow: UnitOfWork, types: RegistryTypes, model: mlmd.Context, version: Any) -> None:
            version.custom_properties[TAG + request.key].CopyFrom(_string(request.value))

        self._change_version(request.name, request.version, change)
        return pb.Empty()

    def delete_model_version_tag(self, request: pb.DeleteModelVersionTagRequest) -> pb.Empty:
        _check_tag(request.key)

        def change(uow: UnitOfWork, types: RegistryTypes, model: mlmd.Context, version: Any) -> None:
            version.custom_properties.pop(TAG + request.key, None)

        self._change_version(request.name, request.version, change)
        return pb.Empty()

    def transition_model_version_stage(self, request: pb.TransitionModelVersionStageRequest) -> pb.ModelVersionResponse:
        stage = _stage(request.stage)
        if request.archive_existing_versions and stage not in ("Staging", "Production"):
            raise errors.InvalidArgumentError(
                f"When archiving existing model versions, the target stage must be Staging or Production, got {stage}"
            )

        def change(uow: UnitOfWork, types: RegistryTypes, model: mlmd.Context, version: Any) -> None:
            version.properties["current_stage"].CopyFrom(_string(stage))
            if not request.archive_existing_versions:
                return
            now = self.clock()
            for other in self._versions(uow, types, [model.id])[model.id]:
                if other.id != version.id and _text(other, "current_stage") == stage:
                    archived = self._copy(other)
                    archived.properties["current_stage"].CopyFrom(_string("Archived"))
                    archived.properties["last_updated_timestamp"].CopyFrom(_int(now))
                    self._rewrite(uow, NodeKind.ARTIFACT, archived, other)

        return self._change_version(request.name, request.version, change)

    def delete_model_version(self, request: pb.ModelVersionName) -> pb.Empty:
        with self.db.transaction() as uow:
            types = self._ensure_types(uow)
            model = self._model(uow, types, request.name)
            version = self._version(uow, types, model, request.version)
            if access.read_only(uow, "artifact", {version.id}):
                raise errors.PermissionDeniedError(
                    f"you may read model version {request.version} of {request.name!r} but not delete it "
                    "(its namespace)"
                )
            # Aliases pointing at the version go with it (MLflow's behaviour).
            number = _number(version, "version")
            gone = [a for a, v in _aliases(model).items() if v == number]
            if gone:
                changed = self._copy(model)
                for alias in gone:
                    del changed.custom_properties[ALIAS + alias]
                self._rewrite(uow, NodeKind.CONTEXT, changed, model)
            deletion_repo.remove(uow, {version.id}, set(), set())
            if uow.changes is not None:  # the audit record names what went
                uow.changes.add_deleted("artifact", [version.id])
        return pb.Empty()

    def search_model_versions(self, request: pb.SearchRequest) -> pb.SearchModelVersionsResponse:
        limit = request.max_results or MAX_VERSIONS_PER_PAGE
        if limit < 1 or limit > MAX_VERSIONS_PER_PAGE:
            raise errors.InvalidArgumentError(
                f"Invalid value for request parameter max_results. It must be at most {MAX_VERSIONS_PER_PAGE}, "
                f"but got value {limit}"
            )
        clauses = mlflow_search.parse_filter(request.filter, _VERSION_FILTER_KEYS)
        order = mlflow_search.parse_order_by(request.order_by, _VERSION_ORDER) or [
            mlflow_search.OrderKey("last_updated_timestamp", False)
        ]
        order += [mlflow_search.OrderKey("name", True), mlflow_search.OrderKey("version_number", False)]
        with self.db.transaction(write=False) as uow:
            types = self._stored_types(uow)
            if types is None:
                return pb.SearchModelVersionsResponse()
            versions = listing.list_all(uow, NodeKind.ARTIFACT, listing.Scope(type_id=types.version))
            chosen = [v for v in versions if mlflow_search.matches(clauses, _version_fields(v), _tags(v))]
            mlflow_search.sort(chosen, order, lambda v, f: _version_fields(v)[f])
            page, token = mlflow_search.page(chosen, limit, request.page_token)
            models = {m.name: m for m in listing.list_all(uow, NodeKind.CONTEXT, listing.Scope(type_id=types.model))}
            return pb.SearchModelVersionsResponse(
                model_versions=[
                    self._version_message(v, _aliases(models[_text(v, "model_name")]))
                    if _text(v, "model_name") in models
                    else self._version_message(v)
                    for v in page
                ],
                next_page_token=token,
            )

    def get_model_version_download_uri(self, request: pb.ModelVersionName) -> pb.GetModelVersionDownloadUriResponse:
        with self.db.transaction(write=False) as uow:
            types = self._stored_types(uow)
            model = self._model(uow, types, request.name)
            assert types is not None
            version = self._version(uow, types, model, request.version)
            return pb.GetModelVersionDownloadUriResponse(artifact_uri=version.uri or _text(version, "source"))


def _version_name(model: mlmd.Context, number: int) -> str:
    return f"{model.id}/{number}"


def _model_id_of(version: Any) -> int:
    """The registered model's context id, from the version's name (`<model id>/<version>`)."""
    return int(str(version.name).split("/", 1)[0])


def _version_fields(version: Any) -> dict[str, Any]:
    return {
        "name": _text(version, "model_name"),
        "run_id": _text(version, "run_id"),
        "source_path": _text(version, "source"),
        "version_number": _number(version, "version"),
        "model_id": _text(version, "model_id"),
        "creation_timestamp": _number(version, "creation_timestamp"),
        "last_updated_timestamp": _number(version, "last_updated_timestamp"),
    }


def _latest(versions: Sequence[Any], stages: Sequence[str]) -> list[Any]:
    """The highest version in each of `stages`, in the order of `stages` (MLflow's answer)."""
    latest: dict[str, Any] = {}
    for version in versions:
        stage = _text(version, "current_stage")
        if stage not in latest or _number(version, "version") > _number(latest[stage], "version"):
            latest[stage] = version
    return [latest[stage] for stage in stages if stage in latest]
