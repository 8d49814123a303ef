"""Builds the lineagedb.client MetadataStore that capture writes through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lineagedb.track.settings import TrackConfigurationError, TrackSettings

# Attempts per call (ABORTED, and UNAVAILABLE for reads): a few absorb a lost race or a blip;
# more would only delay the fall-back to the journal when the server is really gone.
MAX_ATTEMPTS = 3


def _read(path: str | None, name: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise TrackConfigurationError(f"{name}: cannot read {path}: {error.strerror}") from None


def open_store(settings: TrackSettings) -> Any:
    """A server ("host:port", or "grpcs://host:port" for TLS with the system's CAs; PEM files
    for a private CA and mTLS) with the token and namespace, each call bounded by the
    settings' timeout; or an embedded database."""
    from lineagedb.client import MetadataStore

    if settings.target:
        return MetadataStore(
            settings.target,
            token=settings.token,
            namespace=settings.namespace,
            timeout=settings.timeout_s,
            max_retries=MAX_ATTEMPTS,
            root_certificates=_read(settings.tls_ca, "tls_ca"),
            private_key=_read(settings.tls_key, "tls_key"),
            certificate_chain=_read(settings.tls_cert, "tls_cert"),
        )
    if settings.database_url:
        return MetadataStore(settings.database_url, timeout=settings.timeout_s, max_retries=MAX_ATTEMPTS)
    raise TrackConfigurationError("no store configured: set LINEAGEDB_TARGET or call track.configure(...)")
