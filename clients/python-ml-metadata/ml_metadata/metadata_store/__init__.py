"""ml_metadata.metadata_store: LineageDB's MetadataStore under the official name."""

from ml_metadata.metadata_store.metadata_store import ListOptions, MetadataStore, OrderByField, downgrade_schema

__all__ = ["ListOptions", "MetadataStore", "OrderByField", "downgrade_schema"]
