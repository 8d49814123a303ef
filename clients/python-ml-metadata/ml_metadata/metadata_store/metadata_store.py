"""ml_metadata.metadata_store.metadata_store: the module the official client defines its API in."""

from lineagedb.client.store import (
    MAX_NUM_RESULT,
    ExtraOptions,
    ListOptions,
    MetadataStore,
    OrderByField,
    downgrade_schema,
)

__all__ = ["MAX_NUM_RESULT", "ExtraOptions", "ListOptions", "MetadataStore", "OrderByField", "downgrade_schema"]
