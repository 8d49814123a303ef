"""Builds the lineagedb.client MetadataStore that capture writes through."""

from __future__ import annotations

from typing import Any

from lineagedb.track.settings import TrackConfigurationError, TrackSettings


def open_store(settings: TrackSettings) -> Any:
    try:
        import lineagedb.client as client  # lands with issue 15 item 1
    except ImportError as error:
        raise TrackConfigurationError("lineagedb.client is not installed here") from error
    if settings.target:
        return client.MetadataStore(settings.target, token=settings.token, namespace=settings.namespace)
    if settings.database_url:
        return client.MetadataStore(settings.database_url)
    raise TrackConfigurationError("no store configured: set LINEAGEDB_TARGET or call track.configure(...)")
