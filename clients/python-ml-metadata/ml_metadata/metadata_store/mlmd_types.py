"""ml_metadata.metadata_store.mlmd_types: MLMD's system-defined base types (mlmd.Dataset, mlmd.Train, ...).

The name of each base type is an option of its enum value in metadata_store.proto
(`system_type_extension`), so it is read from the descriptor; the official client gets the
same names from its C++ library.
"""

from __future__ import annotations

from lineagedb.client import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2

_ArtifactBase = metadata_store_pb2.ArtifactType.SystemDefinedBaseType
_ExecutionBase = metadata_store_pb2.ExecutionType.SystemDefinedBaseType


def _type_name(enum_descriptor: object, value: int) -> str:
    values = enum_descriptor.values_by_number  # type: ignore[attr-defined]
    if value not in values:
        raise errors.make_exception(f"Type name: system type {value} is not found", errors.NOT_FOUND)
    name: str = values[value].GetOptions().Extensions[metadata_store_pb2.system_type_extension].type_name
    if not name:
        raise errors.make_exception(f"Type name: system type {value} has no name", errors.NOT_FOUND)
    return name


class ArtifactType:
    """A system artifact type, for annotating an artifact type's base_type."""

    def __init__(self, system_type: _ArtifactBase.ValueType) -> None:
        self._system_type = system_type
        self._type = metadata_store_pb2.ArtifactType(name=_type_name(_ArtifactBase.DESCRIPTOR, system_type))

    @property
    def name(self) -> str:
        return self._type.name

    @property
    def system_type(self) -> _ArtifactBase.ValueType:
        return self._system_type


class ExecutionType:
    """A system execution type, for annotating an execution type's base_type."""

    def __init__(self, system_type: _ExecutionBase.ValueType) -> None:
        self._system_type = system_type
        self._type = metadata_store_pb2.ExecutionType(name=_type_name(_ExecutionBase.DESCRIPTOR, system_type))

    @property
    def name(self) -> str:
        return self._type.name

    @property
    def system_type(self) -> _ExecutionBase.ValueType:
        return self._system_type


class Dataset(ArtifactType):
    def __init__(self) -> None:
        super().__init__(metadata_store_pb2.ArtifactType.DATASET)


class Model(ArtifactType):
    def __init__(self) -> None:
        super().__init__(metadata_store_pb2.ArtifactType.MODEL)


class Metrics(ArtifactType):
    def __init__(self) -> None:
        super().__init__(metadata_store_pb2.ArtifactType.METRICS)


class Statistics(ArtifactType):
    def __init__(self) -> None:
        super().__init__(metadata_store_pb2.ArtifactType.STATISTICS)


class Train(ExecutionType):
    def __init__(self) -> None:
        super().__init__(metadata_store_pb2.ExecutionType.TRAIN)


class Transform(ExecutionType):
    def __init__(self) -> None:
        super().__init__(metadata_store_pb2.ExecutionType.TRANSFORM)


class Process(ExecutionType):
    def __init__(self) -> None:
        super().__init__(metadata_store_pb2.ExecutionType.PROCESS)


class Evaluate(ExecutionType):
    def __init__(self) -> None:
        super().__init__(metadata_store_pb2.ExecutionType.EVALUATE)


class Deploy(ExecutionType):
    def __init__(self) -> None:
        super().__init__(metadata_store_pb2.ExecutionType.DEPLOY)
