"""`MetadataStore`: the official ml-metadata client's API over gRPC, or in-process.

Method names, arguments, defaults and return values follow `ml_metadata.MetadataStore`
(ml-metadata 1.17), so code written for it runs unchanged. Beyond it: bearer tokens,
LineageDB namespaces, TLS from PEM bytes, a per-call deadline, `close()` and the context
manager. Construct it with

* `MetadataStoreClientConfig(host=..., port=...)` or a target string "host:port" (a server),
* `ConnectionConfig(sqlite=..., mysql=..., postgresql=..., fake_database=...)` or a database URL
  ("sqlite:///path.db", "postgresql://..."): embedded, no server (needs `lineagedb[server]`).
"""

from __future__ import annotations

import enum
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from lineagedb.client import errors
from lineagedb.client.transport import RemoteTransport, TlsOptions, Transport, mlmd_channel_options, tls_from_config
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc

# Page size of list calls; the official client asks for 100 per page too.
MAX_NUM_RESULT = 100
DEFAULT_MAX_RETRIES = 5
# Backoff between attempts: BASE doubling per attempt up to CAP, jittered by +-50% so
# clients that lost the same race do not meet again in step.
RETRY_BASE_S = 0.05
RETRY_CAP_S = 2.0
# Defaults of token= and namespace= for server connections, so code written for the official
# client (which cannot send either) authenticates unchanged through the ml_metadata drop-in.
TOKEN_ENV = "LINEAGEDB_TOKEN"
NAMESPACE_ENV = "LINEAGEDB_NAMESPACE"
# A database URL runs embedded; anything else is a gRPC target.
_DATABASE_URL = re.compile(r"^(sqlite|postgresql|postgres|mysql|mariadb)(\+\w+)?://", re.IGNORECASE)
_GRPC_SCHEME = re.compile(r"^grpcs?://", re.IGNORECASE)

T = TypeVar("T")


@enum.unique
class OrderByField(enum.Enum):
    """The fields list calls can order by."""

    CREATE_TIME = mlmd.ListOperationOptions.OrderByField.Field.CREATE_TIME
    UPDATE_TIME = mlmd.ListOperationOptions.OrderByField.Field.LAST_UPDATE_TIME
    ID = mlmd.ListOperationOptions.OrderByField.Field.ID


@dataclass
class ListOptions:
    """Options of list calls: at most `limit` results (all when None), ordered by `order_by`
    (the backend's order when None) ascending unless `is_asc` is False, and an MLMD
    `filter_query`."""

    limit: int | None = None
    order_by: OrderByField | None = None
    is_asc: bool = True
    filter_query: str | None = None


class ExtraOptions:
    """Accepted for compatibility with the official client, which ignores it too."""

    def __init__(self, euc: Any = None) -> None:
        del euc


_LINEAGE_FIELDS = ("artifacts", "executions", "contexts", "events", "associations", "attributions")


class MetadataStore:
    """A metadata store: a LineageDB (or MLMD) server, or an embedded database."""

    def __init__(
        self,
        config: mlmd.ConnectionConfig | mlmd.MetadataStoreClientConfig | str,
        enable_upgrade_migration: bool = False,
        *,
        token: str | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        tls: bool | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """Connect to a server or open an embedded store.

        Args:
          config: a `MetadataStoreClientConfig` or "host:port" (prefix grpcs:// for TLS with the
            system's CAs) for a server; a `ConnectionConfig` or a database URL for embedded mode.
          enable_upgrade_migration: embedded mode only: upgrade an older schema (as MLMD).
          token: bearer token sent as `authorization: Bearer <token>` with every call (default:
            the environment's LINEAGEDB_TOKEN, for a server connection).
          namespace: LineageDB namespace sent with every call (default: LINEAGEDB_NAMESPACE).
          timeout: deadline of each call in seconds (default: the config's client_timeout_sec,
            else none).
          max_retries: attempts for a call that ends ABORTED (and UNAVAILABLE for reads); default
            the config's retry_options.max_num_retries, else 5.
          root_certificates, private_key, certificate_chain: PEM bytes; any of them (or tls=True)
            makes the channel TLS; a key and chain make it mutual TLS.
          channel_options: extra gRPC channel arguments.
        """
        self._config = config
        self._closed = False
        self._max_num_retries = DEFAULT_MAX_RETRIES
        self._grpc_timeout_sec: float | None = None
        self._transport: Transport
        remote_only = {
            "token": token,
            "namespace": namespace,
            "root_certificates": root_certificates,
            "private_key": private_key,
            "certificate_chain": certificate_chain,
            "tls": tls,
        }
        if isinstance(config, str) and _DATABASE_URL.match(config):
            self._reject_remote_options(remote_only)
            self._transport = _open_embedded(config, enable_upgrade_migration)
        elif isinstance(config, mlmd.ConnectionConfig):
            self._reject_remote_options(remote_only)
            if config.HasField("retry_options"):
                self._max_num_retries = config.retry_options.max_num_retries
            self._transport = _open_embedded(config, enable_upgrade_migration)
        else:
            if enable_upgrade_migration:
                raise ValueError(
                    "Upgrade migration is not allowed when using gRPC connection client. "
                    "Upgrade needs to be performed on the server side."
                )
            if isinstance(config, str):
                target, secure = _target(config)
                options: list[tuple[str, Any]] = []
                tls_options = TlsOptions() if secure else None
            elif isinstance(config, mlmd.MetadataStoreClientConfig):
                target = f"{config.host}:{config.port}"
                options = list(mlmd_channel_options(config))
                tls_options = tls_from_config(config)
                if config.HasField("client_timeout_sec"):
                    self._grpc_timeout_sec = config.client_timeout_sec
            else:
                raise ValueError(
                    "MetadataStore is expecting either proto.ConnectionConfig, "
                    "proto.MetadataStoreClientConfig, a server target or a database URL"
                )
            if token is None:
                token = os.environ.get(TOKEN_ENV) or None
            if namespace is None:
                namespace = os.environ.get(NAMESPACE_ENV) or None
            if root_certificates or private_key or certificate_chain or tls:
                tls_options = TlsOptions(root_certificates, private_key, certificate_chain)
            self._transport = RemoteTransport(
                target,
                tls=tls_options,
                token=token,
                namespace=namespace,
                options=[*options, *channel_options],
            )
        if timeout is not None:
            self._grpc_timeout_sec = timeout
        if max_retries is not None:
            self._max_num_retries = max_retries

    @staticmethod
    def _reject_remote_options(options: dict[str, Any]) -> None:
        given = sorted(name for name, value in options.items() if value is not None)
        if given:
            raise ValueError(f"{', '.join(given)}: only for a server connection, not for an embedded store")

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel (or the embedded database's connections). Idempotent."""
        if not self._closed:
            self._closed = True
            self._transport.close()

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def pipeline_asset(self) -> None:
        """None: there is no pipeline asset outside Google's internal store (as in the official client)."""
        return None

    # -- calls -----------------------------------------------------------------------

    def _call(self, method: str, request: Any, response: Any = None, extra_options: ExtraOptions | None = None) -> Any:
        """One RPC, run again after ABORTED (a lost race), and after UNAVAILABLE when it only reads.

        Returns the response; given `response` (the official client's private signature, which
        some tools call as a generic dispatcher) it is also filled with it."""
        answer = self._call_with_retries(method, request)
        if response is not None:
            response.CopyFrom(answer)
        return answer

    def _call_with_retries(self, method: str, request: Any) -> Any:
        if self._closed:
            raise ValueError("the MetadataStore is closed")
        attempts = max(1, self._max_num_retries)
        retryable: tuple[type[errors.StatusError], ...] = (errors.AbortedError,)
        if method.startswith("Get"):
            retryable = (errors.AbortedError, errors.UnavailableError)
        for attempt in range(attempts):
            try:
                return self._transport.call(method, request, self._grpc_timeout_sec)
            except retryable:
                if attempt + 1 == attempts:
                    raise
                time.sleep(min(RETRY_CAP_S, RETRY_BASE_S * 2**attempt) * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")

    def _list(
        self,
        method: str,
        field: str,
        request: Any,
        list_options: ListOptions | None,
    ) -> list[Any]:
        """All pages of a list call, up to list_options.limit results."""
        remaining: int | None = None
        if list_options is not None:
            if list_options.limit is not None and list_options.limit < 1:
                raise errors.make_exception(
                    "Invalid list_options.limit value passed. list_options.limit is expected to be greater than 1",
                    errors.INVALID_ARGUMENT,
                )
            request.options.max_result_size = MAX_NUM_RESULT
            request.options.order_by_field.is_asc = list_options.is_asc
            if list_options.order_by is not None:
                request.options.order_by_field.field = list_options.order_by.value
            if list_options.filter_query:
                request.options.filter_query = list_options.filter_query
            remaining = list_options.limit
        found: list[Any] = []
        while True:
            if remaining is not None and remaining < MAX_NUM_RESULT:
                request.options.max_result_size = remaining
            response = self._call(method, request)
            page = getattr(response, field)
            found.extend(page)
            if remaining is not None:
                remaining -= len(page)
                if remaining <= 0:
                    break
            if not response.next_page_token:
                break
            request.options.next_page_token = response.next_page_token
        return found

    # -- types -----------------------------------------------------------------------

    def put_artifact_type(
        self,
        artifact_type: mlmd.ArtifactType,
        can_add_fields: bool = False,
        can_omit_fields: bool = False,
        extra_options: ExtraOptions | None = None,
    ) -> int:
        """Create the type, or update a stored one compatibly; returns its id."""
        request = svc.PutArtifactTypeRequest(
            artifact_type=artifact_type, can_add_fields=can_add_fields, can_omit_fields=can_omit_fields
        )
        return int(self._call("PutArtifactType", request).type_id)

    def put_execution_type(
        self,
        execution_type: mlmd.ExecutionType,
        can_add_fields: bool = False,
        can_omit_fields: bool = False,
        extra_options: ExtraOptions | None = None,
    ) -> int:
        """Create the type, or update a stored one compatibly; returns its id."""
        request = svc.PutExecutionTypeRequest(
            execution_type=execution_type, can_add_fields=can_add_fields, can_omit_fields=can_omit_fields
        )
        return int(self._call("PutExecutionType", request).type_id)

    def put_context_type(
        self,
        context_type: mlmd.ContextType,
        can_add_fields: bool = False,
        can_omit_fields: bool = False,
        extra_options: ExtraOptions | None = None,
    ) -> int:
        """Create the type, or update a stored one compatibly; returns its id."""
        request = svc.PutContextTypeRequest(
            context_type=context_type, can_add_fields=can_add_fields, can_omit_fields=can_omit_fields
        )
        return int(self._call("PutContextType", request).type_id)

    def _get_type(self, method: str, request: Any, field: str, type_name: str, type_version: str | None) -> Any:
        request.type_name = type_name
        if type_version:
            request.type_version = type_version
        return getattr(self._call(method, request), field)

    def get_artifact_type(
        self, type_name: str, type_version: str | None = None, extra_options: ExtraOptions | None = None
    ) -> mlmd.ArtifactType:
        """The type by name (and version); NotFoundError if there is none."""
        request = svc.GetArtifactTypeRequest()
        found: mlmd.ArtifactType = self._get_type("GetArtifactType", request, "artifact_type", type_name, type_version)
        return found

    def get_execution_type(
        self, type_name: str, type_version: str | None = None, extra_options: ExtraOptions | None = None
    ) -> mlmd.ExecutionType:
        """The type by name (and version); NotFoundError if there is none."""
        request = svc.GetExecutionTypeRequest()
        found: mlmd.ExecutionType = self._get_type(
            "GetExecutionType", request, "execution_type", type_name, type_version
        )
        return found

    def get_context_type(
        self, type_name: str, type_version: str | None = None, extra_options: ExtraOptions | None = None
    ) -> mlmd.ContextType:
        """The type by name (and version); NotFoundError if there is none."""
        request = svc.GetContextTypeRequest()
        found: mlmd.ContextType = self._get_type("GetContextType", request, "context_type", type_name, type_version)
        return found

    def get_artifact_types(self, extra_options: ExtraOptions | None = None) -> list[mlmd.ArtifactType]:
        return list(self._call("GetArtifactTypes", svc.GetArtifactTypesRequest()).artifact_types)

    def get_execution_types(self, extra_options: ExtraOptions | None = None) -> list[mlmd.ExecutionType]:
        return list(self._call("GetExecutionTypes", svc.GetExecutionTypesRequest()).execution_types)

    def get_context_types(self, extra_options: ExtraOptions | None = None) -> list[mlmd.ContextType]:
        return list(self._call("GetContextTypes", svc.GetContextTypesRequest()).context_types)

    def get_artifact_types_by_id(
        self, type_ids: Iterable[int], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.ArtifactType]:
        request = svc.GetArtifactTypesByIDRequest(type_ids=list(type_ids))
        return list(self._call("GetArtifactTypesByID", request).artifact_types)

    def get_execution_types_by_id(
        self, type_ids: Iterable[int], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.ExecutionType]:
        request = svc.GetExecutionTypesByIDRequest(type_ids=list(type_ids))
        return list(self._call("GetExecutionTypesByID", request).execution_types)

    def get_context_types_by_id(
        self, type_ids: Iterable[int], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.ContextType]:
        request = svc.GetContextTypesByIDRequest(type_ids=list(type_ids))
        return list(self._call("GetContextTypesByID", request).context_types)

    def get_artifact_types_by_external_ids(
        self, external_ids: Iterable[str], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.ArtifactType]:
        request = svc.GetArtifactTypesByExternalIdsRequest(external_ids=list(external_ids))
        return list(self._call("GetArtifactTypesByExternalIds", request).artifact_types)

    def get_execution_types_by_external_ids(
        self, external_ids: Iterable[str], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.ExecutionType]:
        request = svc.GetExecutionTypesByExternalIdsRequest(external_ids=list(external_ids))
        return list(self._call("GetExecutionTypesByExternalIds", request).execution_types)

    def get_context_types_by_external_ids(
        self, external_ids: Iterable[str], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.ContextType]:
        request = svc.GetContextTypesByExternalIdsRequest(external_ids=list(external_ids))
        return list(self._call("GetContextTypesByExternalIds", request).context_types)

    # -- node writes -----------------------------------------------------------------

    def put_artifacts(
        self,
        artifacts: Sequence[mlmd.Artifact],
        field_mask_paths: Sequence[str] | None = None,
        extra_options: ExtraOptions | None = None,
    ) -> list[int]:
        """Insert artifacts without an id, update those with one (only the masked fields when
        `field_mask_paths` is given); returns the ids in input order."""
        request = svc.PutArtifactsRequest(artifacts=artifacts)
        if field_mask_paths:
            request.update_mask.paths.extend(field_mask_paths)
        return list(self._call("PutArtifacts", request).artifact_ids)

    def put_executions(
        self,
        executions: Sequence[mlmd.Execution],
        field_mask_paths: Sequence[str] | None = None,
        extra_options: ExtraOptions | None = None,
    ) -> list[int]:
        """As `put_artifacts`, for executions."""
        request = svc.PutExecutionsRequest(executions=executions)
        if field_mask_paths:
            request.update_mask.paths.extend(field_mask_paths)
        return list(self._call("PutExecutions", request).execution_ids)

    def put_contexts(
        self,
        contexts: Sequence[mlmd.Context],
        field_mask_paths: Sequence[str] | None = None,
        extra_options: ExtraOptions | None = None,
    ) -> list[int]:
        """As `put_artifacts`, for contexts."""
        request = svc.PutContextsRequest(contexts=contexts)
        if field_mask_paths:
            request.update_mask.paths.extend(field_mask_paths)
        return list(self._call("PutContexts", request).context_ids)

    def put_events(self, events: Sequence[mlmd.Event], extra_options: ExtraOptions | None = None) -> None:
        self._call("PutEvents", svc.PutEventsRequest(events=events))

    def put_execution(
        self,
        execution: mlmd.Execution,
        artifact_and_events: Sequence[tuple[mlmd.Artifact, mlmd.Event | None]],
        contexts: Sequence[mlmd.Context] | None,
        reuse_context_if_already_exist: bool = False,
        reuse_artifact_if_already_exist_by_external_id: bool = False,
        force_reuse_context: bool = False,
        force_update_time: bool = False,
        extra_options: ExtraOptions | None = None,
    ) -> tuple[int, list[int], list[int]]:
        """Write an execution, its artifacts and events, and its contexts in one transaction.

        Returns (execution id, artifact ids in input order, context ids in input order).
        """
        request = svc.PutExecutionRequest(
            execution=execution,
            contexts=contexts,
            options=svc.PutExecutionRequest.Options(
                reuse_context_if_already_exist=reuse_context_if_already_exist,
                reuse_artifact_if_already_exist_by_external_id=reuse_artifact_if_already_exist_by_external_id,
                force_reuse_context=force_reuse_context,
                force_update_time=force_update_time,
            ),
        )
        for pair in artifact_and_events:
            if not pair:
                continue
            event = pair[1] if len(pair) == 2 else None
            request.artifact_event_pairs.add(artifact=pair[0], event=event)
        response = self._call("PutExecution", request)
        return response.execution_id, list(response.artifact_ids), list(response.context_ids)

    def put_lineage_subgraph(
        self,
        executions: Sequence[mlmd.Execution],
        artifacts: Sequence[mlmd.Artifact],
        contexts: Sequence[mlmd.Context],
        event_edges: Sequence[tuple[int | None, int | None, mlmd.Event]],
        reuse_context_if_already_exist: bool = False,
        reuse_artifact_if_already_exist_by_external_id: bool = False,
        extra_options: ExtraOptions | None = None,
    ) -> tuple[list[int], list[int], list[int]]:
        """Write a whole subgraph in one transaction; event edges index `executions` and
        `artifacts`. Returns (execution ids, artifact ids, context ids), each in input order."""
        request = svc.PutLineageSubgraphRequest(
            executions=executions,
            artifacts=artifacts,
            contexts=contexts,
            options=svc.PutLineageSubgraphRequest.Options(
                reuse_context_if_already_exist=reuse_context_if_already_exist,
                reuse_artifact_if_already_exist_by_external_id=reuse_artifact_if_already_exist_by_external_id,
            ),
        )
        for execution_index, artifact_index, event in event_edges:
            request.event_edges.add(execution_index=execution_index, artifact_index=artifact_index, event=event)
        response = self._call("PutLineageSubgraph", request)
        return list(response.execution_ids), list(response.artifact_ids), list(response.context_ids)

    def put_attributions_and_associations(
        self,
        attributions: Sequence[mlmd.Attribution],
        associations: Sequence[mlmd.Association],
        extra_options: ExtraOptions | None = None,
    ) -> None:
        request = svc.PutAttributionsAndAssociationsRequest(attributions=attributions, associations=associations)
        self._call("PutAttributionsAndAssociations", request)

    def put_parent_contexts(
        self, parent_contexts: Sequence[mlmd.ParentContext], extra_options: ExtraOptions | None = None
    ) -> None:
        self._call("PutParentContexts", svc.PutParentContextsRequest(parent_contexts=parent_contexts))

    # -- node reads ------------------------------------------------------------------

    def get_artifacts(
        self, list_options: ListOptions | None = None, extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Artifact]:
        return self._list("GetArtifacts", "artifacts", svc.GetArtifactsRequest(), list_options)

    def get_executions(
        self, list_options: ListOptions | None = None, extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Execution]:
        return self._list("GetExecutions", "executions", svc.GetExecutionsRequest(), list_options)

    def get_contexts(
        self, list_options: ListOptions | None = None, extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Context]:
        return self._list("GetContexts", "contexts", svc.GetContextsRequest(), list_options)

    def get_artifacts_by_id(
        self, artifact_ids: Iterable[int], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Artifact]:
        request = svc.GetArtifactsByIDRequest(artifact_ids=list(artifact_ids))
        return list(self._call("GetArtifactsByID", request).artifacts)

    def get_artifacts_and_types_by_artifact_ids(
        self, artifact_ids: Iterable[int], extra_options: ExtraOptions | None = None
    ) -> tuple[list[mlmd.Artifact], list[mlmd.ArtifactType]]:
        request = svc.GetArtifactsByIDRequest(artifact_ids=list(artifact_ids), populate_artifact_types=True)
        response = self._call("GetArtifactsByID", request)
        return list(response.artifacts), list(response.artifact_types)

    def get_executions_by_id(
        self, execution_ids: Iterable[int], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Execution]:
        request = svc.GetExecutionsByIDRequest(execution_ids=list(execution_ids))
        return list(self._call("GetExecutionsByID", request).executions)

    def get_contexts_by_id(
        self, context_ids: Iterable[int], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Context]:
        request = svc.GetContextsByIDRequest(context_ids=list(context_ids))
        return list(self._call("GetContextsByID", request).contexts)

    def get_artifacts_by_external_ids(
        self, external_ids: Iterable[str], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Artifact]:
        request = svc.GetArtifactsByExternalIdsRequest(external_ids=list(external_ids))
        return list(self._call("GetArtifactsByExternalIds", request).artifacts)

    def get_executions_by_external_ids(
        self, external_ids: Iterable[str], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Execution]:
        request = svc.GetExecutionsByExternalIdsRequest(external_ids=list(external_ids))
        return list(self._call("GetExecutionsByExternalIds", request).executions)

    def get_contexts_by_external_ids(
        self, external_ids: Iterable[str], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Context]:
        request = svc.GetContextsByExternalIdsRequest(external_ids=list(external_ids))
        return list(self._call("GetContextsByExternalIds", request).contexts)

    def _by_type(self, method: str, request: Any, field: str, type_name: str, type_version: str | None) -> list[Any]:
        request.type_name = type_name
        if type_version:
            request.type_version = type_version
        return list(getattr(self._call(method, request), field))

    def get_artifacts_by_type(
        self, type_name: str, type_version: str | None = None, extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Artifact]:
        request = svc.GetArtifactsByTypeRequest()
        return self._by_type("GetArtifactsByType", request, "artifacts", type_name, type_version)

    def get_executions_by_type(
        self, type_name: str, type_version: str | None = None, extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Execution]:
        request = svc.GetExecutionsByTypeRequest()
        return self._by_type("GetExecutionsByType", request, "executions", type_name, type_version)

    def get_contexts_by_type(
        self, type_name: str, type_version: str | None = None, extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Context]:
        return self._by_type("GetContextsByType", svc.GetContextsByTypeRequest(), "contexts", type_name, type_version)

    def _by_type_and_name(self, method: str, request: Any, field: str, type_version: str | None) -> Any:
        if type_version:
            request.type_version = type_version
        response = self._call(method, request)
        return getattr(response, field) if response.HasField(field) else None

    def get_artifact_by_type_and_name(
        self,
        type_name: str,
        artifact_name: str,
        type_version: str | None = None,
        extra_options: ExtraOptions | None = None,
    ) -> mlmd.Artifact | None:
        """The artifact, or None when the type has no artifact of that name."""
        request = svc.GetArtifactByTypeAndNameRequest(type_name=type_name, artifact_name=artifact_name)
        found: mlmd.Artifact | None = self._by_type_and_name(
            "GetArtifactByTypeAndName", request, "artifact", type_version
        )
        return found

    def get_execution_by_type_and_name(
        self,
        type_name: str,
        execution_name: str,
        type_version: str | None = None,
        extra_options: ExtraOptions | None = None,
    ) -> mlmd.Execution | None:
        """The execution, or None when the type has no execution of that name."""
        request = svc.GetExecutionByTypeAndNameRequest(type_name=type_name, execution_name=execution_name)
        found: mlmd.Execution | None = self._by_type_and_name(
            "GetExecutionByTypeAndName", request, "execution", type_version
        )
        return found

    def get_context_by_type_and_name(
        self,
        type_name: str,
        context_name: str,
        type_version: str | None = None,
        extra_options: ExtraOptions | None = None,
    ) -> mlmd.Context | None:
        """The context, or None when the type has no context of that name."""
        request = svc.GetContextByTypeAndNameRequest(type_name=type_name, context_name=context_name)
        found: mlmd.Context | None = self._by_type_and_name("GetContextByTypeAndName", request, "context", type_version)
        return found

    def get_artifacts_by_uri(self, uri: str, extra_options: ExtraOptions | None = None) -> list[mlmd.Artifact]:
        return list(self._call("GetArtifactsByURI", svc.GetArtifactsByURIRequest(uris=[uri])).artifacts)

    # -- relations -------------------------------------------------------------------

    def get_contexts_by_artifact(
        self, artifact_id: int, extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Context]:
        request = svc.GetContextsByArtifactRequest(artifact_id=artifact_id)
        return list(self._call("GetContextsByArtifact", request).contexts)

    def get_contexts_by_execution(
        self, execution_id: int, extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Context]:
        request = svc.GetContextsByExecutionRequest(execution_id=execution_id)
        return list(self._call("GetContextsByExecution", request).contexts)

    def get_artifacts_by_context(
        self, context_id: int, list_options: ListOptions | None = None, extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Artifact]:
        request = svc.GetArtifactsByContextRequest(context_id=context_id)
        return self._list("GetArtifactsByContext", "artifacts", request, list_options)

    def get_executions_by_context(
        self, context_id: int, list_options: ListOptions | None = None, extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Execution]:
        """The context's executions; newest first unless `list_options` says otherwise (as MLMD)."""
        if list_options is None:
            list_options = ListOptions(order_by=OrderByField.CREATE_TIME, is_asc=False)
        request = svc.GetExecutionsByContextRequest(context_id=context_id)
        return self._list("GetExecutionsByContext", "executions", request, list_options)

    def get_events_by_execution_ids(
        self, execution_ids: Iterable[int], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Event]:
        request = svc.GetEventsByExecutionIDsRequest(execution_ids=list(execution_ids))
        return list(self._call("GetEventsByExecutionIDs", request).events)

    def get_events_by_artifact_ids(
        self, artifact_ids: Iterable[int], extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Event]:
        request = svc.GetEventsByArtifactIDsRequest(artifact_ids=list(artifact_ids))
        return list(self._call("GetEventsByArtifactIDs", request).events)

    def get_parent_contexts_by_context(
        self, context_id: int, extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Context]:
        request = svc.GetParentContextsByContextRequest(context_id=context_id)
        return list(self._call("GetParentContextsByContext", request).contexts)

    def get_children_contexts_by_context(
        self, context_id: int, extra_options: ExtraOptions | None = None
    ) -> list[mlmd.Context]:
        request = svc.GetChildrenContextsByContextRequest(context_id=context_id)
        return list(self._call("GetChildrenContextsByContext", request).contexts)

    def get_lineage_subgraph(
        self,
        query_options: mlmd.LineageSubgraphQueryOptions,
        field_mask_paths: Sequence[str] | None = None,
        extra_options: ExtraOptions | None = None,
    ) -> mlmd.LineageGraph:
        """The subgraph around the starting nodes, with the fields `field_mask_paths` names
        (all of LineageGraph's when empty). The server answers node ids and edges; the nodes
        and their types are then read by id, as the official client does."""
        paths = list(field_mask_paths) if field_mask_paths else [f.name for f in mlmd.LineageGraph.DESCRIPTOR.fields]
        request = svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=query_options)
        request.read_mask.paths.extend(path for path in paths if not path.endswith("_types"))
        skeleton = self._call("GetLineageSubgraph", request).lineage_subgraph
        graph = mlmd.LineageGraph()
        wanted = set(paths)
        if wanted & {"artifacts", "artifact_types"}:
            artifacts, artifact_types = self.get_artifacts_and_types_by_artifact_ids(a.id for a in skeleton.artifacts)
            if "artifacts" in wanted:
                graph.artifacts.extend(artifacts)
            if "artifact_types" in wanted:
                graph.artifact_types.extend(artifact_types)
        self._fill_nodes(
            graph, wanted, "executions", "execution_types", skeleton.executions, self.get_executions_by_id,
            self.get_execution_types_by_id,
        )  # fmt: skip
        self._fill_nodes(
            graph, wanted, "contexts", "context_types", skeleton.contexts, self.get_contexts_by_id,
            self.get_context_types_by_id,
        )  # fmt: skip
        for field in ("events", "associations", "attributions"):
            if field in wanted:
                getattr(graph, field).extend(getattr(skeleton, field))
        return graph

    @staticmethod
    def _fill_nodes(
        graph: mlmd.LineageGraph,
        wanted: set[str],
        field: str,
        types_field: str,
        skeleton_nodes: Iterable[Any],
        by_id: Callable[[Iterable[int]], list[Any]],
        types_by_id: Callable[[Iterable[int]], list[Any]],
    ) -> None:
        if not wanted & {field, types_field}:
            return
        nodes = by_id(node.id for node in skeleton_nodes)
        if field in wanted:
            getattr(graph, field).extend(nodes)
        if types_field in wanted:
            getattr(graph, types_field).extend(types_by_id({node.type_id for node in nodes}))


def _target(text: str) -> tuple[str, bool]:
    """("host:port", TLS?) from "host:port", "grpc://host:port" or "grpcs://host:port"."""
    secure = text.lower().startswith("grpcs://")
    return _GRPC_SCHEME.sub("", text).rstrip("/"), secure


def _open_embedded(config: mlmd.ConnectionConfig | str, enable_upgrade_migration: bool) -> Transport:
    try:
        from lineagedb.client.embedded import EmbeddedTransport
    except ImportError as error:
        raise ImportError(
            "embedded mode runs LineageDB's store in this process and needs the server's dependencies: "
            f"pip install 'lineagedb[server]' ({error})"
        ) from error
    return EmbeddedTransport(config, enable_upgrade_migration)


def downgrade_schema(config: mlmd.ConnectionConfig, downgrade_to_schema_version: int) -> None:
    """Not supported: LineageDB serves MLMD schema v10 only (as its server's downgrade flag)."""
    if downgrade_to_schema_version < 0:
        raise errors.make_exception("downgrade_to_schema_version not specified", errors.INVALID_ARGUMENT)
    raise errors.make_exception(
        f"schema downgrades are not supported (downgrade_to_schema_version={downgrade_to_schema_version}); "
        "LineageDB serves MLMD schema v10 only",
        errors.UNIMPLEMENTED,
    )


__all__ = [
    "MAX_NUM_RESULT",
    "ExtraOptions",
    "ListOptions",
    "MetadataStore",
    "OrderByField",
    "downgrade_schema",
]
