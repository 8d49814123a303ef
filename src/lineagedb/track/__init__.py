"""lineagedb.track: capture that records lineage by itself.

    from lineagedb import track

    with track.step("Trainer", pipeline="churn", run="2026-12-03") as step:
        step.input("data/train.csv", type="Dataset")
        step.param("learning_rate", 0.1)
        ...
        step.output("model/", type="Model")
        step.metric("auc", 0.91)

Each step becomes one MLMD execution written with one PutExecution (see
lineagedb.track.writer for the exact shape), with its code version, environment, times,
status and the content digests of its local inputs and outputs. Where steps go is set by
`track.configure(...)` or the environment (lineagedb.track.settings). A store that cannot
be reached leaves steps in a local journal; `lineagedb track flush` sends them.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from lineagedb.track.settings import TrackConfigurationError, TrackSettings, resolve
from lineagedb.track.step import Step, StepSpec, current, step
from lineagedb.track.tracker import FlushReport, Tracker, TrackingError

__all__ = [
    "FlushReport",
    "Step",
    "StepSpec",
    "TrackConfigurationError",
    "TrackSettings",
    "Tracker",
    "TrackingError",
    "configure",
    "current",
    "default_tracker",
    "flush",
    "step",
]

_default: Tracker | None = None
_default_lock = threading.Lock()


def configure(
    store: Any = None,
    *,
    target: str | None = None,
    token: str | None = None,
    namespace: str | None = None,
    database_url: str | None = None,
    directory: str | os.PathLike[str] | None = None,
    max_hash_bytes: int | None = None,
    timeout_s: float | None = None,
    pipeline: str | None = None,
    run: str | None = None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> Tracker:
    """Set where this process's steps go (replacing the default built from the environment).
    `store` is any client with MLMD's methods (lineagedb.client.MetadataStore, or the
    official one); otherwise a target or a database URL, else the environment."""
    global _default
    settings = resolve(
        target=target,
        token=token,
        namespace=namespace,
        database_url=database_url,
        directory=directory,
        max_hash_bytes=max_hash_bytes,
        timeout_s=timeout_s,
        pipeline=pipeline,
        run=run,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    tracker = Tracker(settings, store=store)
    with _default_lock:
        previous, _default = _default, tracker
    if previous is not None:
        previous.close()
    return tracker


def default_tracker() -> Tracker:
    """The process's tracker: the last `configure()`, else one from the environment."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Tracker(resolve())
        return _default


def flush() -> FlushReport:
    """Send the journalled steps of the default tracker's journal."""
    return default_tracker().flush()
