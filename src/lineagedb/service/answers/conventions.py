"""Which properties mean what: a content digest, a data version, a code version, an
environment, and which are bookkeeping rather than parameters.

MLMD gives properties no meaning; pipelines do. The defaults follow what TFX and
Kubeflow Pipelines record:

* TFX artifacts carry `span`, `version` and (Examples) `input_fingerprint`, plus
  `tfx_version`; TFX executions carry the component's exec properties (`module_file`,
  `module_path`, `train_args`, ...) as custom properties.
* KFP v2 executions carry `image`, `inputs` (the parameters, a struct), `task_name`,
  `display_name`, `pipeline_name`, `cache_fingerprint`, pod bookkeeping and more.
* LineageDB's own capture (lineagedb.track) records `digest`, `code_version`, `git_commit`,
  `module_file`, `environment`, `python_version`, `requirements`, and as bookkeeping
  `start_time_ms`, `end_time_ms`, `error_type`, `pipeline_name`, `run_id`.

A deployment with other habits gives a JSON file to `--lineage-conventions` whose
keys replace these lists (see README, "Lineage answers").
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from lineagedb import errors


@dataclass(frozen=True)
class Conventions:
    # Artifact properties holding a content digest, first found wins.
    digest: tuple[str, ...] = (
        "digest",
        "content_digest",
        "sha256",
        "checksum",
        "md5",
        "fingerprint",
        "input_fingerprint",
    )
    # Artifact properties holding a data or model version.
    version: tuple[str, ...] = ("version", "data_version", "model_version", "span")
    # Execution properties holding the code that ran.
    code_version: tuple[str, ...] = (
        "code_version",
        "git_commit",
        "git_sha",
        "source_version",
        "module_path",
        "module_file",
        "mlflow.source.git.commit",
    )
    # Execution properties describing where it ran.
    environment: tuple[str, ...] = (
        "environment",
        "image",
        "container_image",
        "docker_image",
        "python_version",
        "tfx_version",
        "requirements",
    )
    # Execution properties that are bookkeeping, not parameters.
    not_parameters: tuple[str, ...] = (
        "display_name",
        "task_name",
        "pipeline_name",
        "pipeline_run_component",
        "namespace",
        "resource_name",
        "pod_name",
        "pod_uid",
        "cache_fingerprint",
        "cached_execution_id",
        "parent_dag_id",
        "iteration_index",
        "total_dag_tasks",
        "outputs",
        "component_id",
        "run_id",
        "state",
        "__external_execution_index__",
        # lineagedb.track's bookkeeping: when a step ran and how it failed are not its inputs.
        "start_time_ms",
        "end_time_ms",
        "error_type",
    )
    # Artifact types a compliance report lists as datasets and as evaluations.
    dataset_types: tuple[str, ...] = ("Examples", "Dataset", "system.Dataset", "ExternalArtifact")
    evaluation_types: tuple[str, ...] = (
        "ModelEvaluation",
        "ModelBlessing",
        "InfraBlessing",
        "Metrics",
        "ClassificationMetrics",
        "SlicedClassificationMetrics",
        "system.Metrics",
        "system.ClassificationMetrics",
    )

    def first(self, node: Any, names: tuple[str, ...]) -> tuple[str, Any] | None:
        """The first of `names` the node has (properties before custom properties), as
        (name, plain value); None when it has none of them."""
        for name in names:
            for field in ("properties", "custom_properties"):
                values = getattr(node, field)
                if name in values:
                    return name, plain_value(values[name])
        return None

    def parameters(self, execution: Any) -> dict[str, Any]:
        """An execution's parameters: its properties minus bookkeeping, code and environment."""
        skipped = set(self.not_parameters) | set(self.code_version) | set(self.environment)
        found: dict[str, Any] = {}
        for field in ("custom_properties", "properties"):  # properties win on a name clash
            for name, value in getattr(execution, field).items():
                if name not in skipped:
                    found[name] = plain_value(value)
        return found


DEFAULT = Conventions()


def load(path: str | Path) -> Conventions:
    """Conventions from a JSON object whose keys (any of the fields) replace the defaults."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise errors.InvalidArgumentError(f"cannot read lineage conventions {path}: {exc}") from None
    return from_mapping(data, str(path))


def from_mapping(data: Any, source: str = "conventions") -> Conventions:
    if not isinstance(data, Mapping):
        raise errors.InvalidArgumentError(f"{source} must be a JSON object")
    known = {f.name for f in fields(Conventions)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise errors.InvalidArgumentError(f"{source}: unknown keys {unknown}; known: {sorted(known)}")
    values: dict[str, tuple[str, ...]] = {}
    for key, names in data.items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise errors.InvalidArgumentError(f"{source}: {key} must be a list of property names")
        values[key] = tuple(names)
    return replace(DEFAULT, **values)


def plain_value(value: Any) -> Any:
    """An MLMD Value as plain JSON data: its int, double, string, bool, or struct as a dict;
    a packed proto as its type URL and base64 bytes."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "struct_value":
        return json_format.MessageToDict(value.struct_value)
    if which == "proto_value":
        return {"type_url": value.proto_value.type_url, "value": base64.b64encode(value.proto_value.value).decode()}
    return getattr(value, which)
