"""ml_metadata, backed by LineageDB's client (distribution lineagedb-ml-metadata).

Code written for Google's ml-metadata runs unchanged: `import ml_metadata as mlmd`,
`mlmd.MetadataStore(config)`, `from ml_metadata.proto import metadata_store_pb2`,
`from ml_metadata import errors`. Both distributions install a package named ml_metadata,
and whichever was installed last overwrites files of the other; importing refuses that
mixture rather than running half of each.
"""

from __future__ import annotations

from importlib import metadata as _metadata


def _refuse_official_wheel() -> None:
    try:
        official = _metadata.distribution("ml-metadata")
    except _metadata.PackageNotFoundError:
        return
    raise ImportError(
        f"both lineagedb-ml-metadata and Google's ml-metadata {official.version} are installed; they provide "
        "the same ml_metadata package and overwrite each other's files. Keep one: "
        "pip uninstall ml-metadata lineagedb-ml-metadata && pip install lineagedb-ml-metadata"
    )


_refuse_official_wheel()

# errors is an attribute of the package with the official client too (its metadata_store imports it).
from ml_metadata import errors, proto  # noqa: E402
from ml_metadata.metadata_store import ListOptions, MetadataStore, OrderByField, downgrade_schema  # noqa: E402
from ml_metadata.version import __version__  # noqa: E402

__all__ = ["ListOptions", "MetadataStore", "OrderByField", "__version__", "downgrade_schema", "errors", "proto"]
