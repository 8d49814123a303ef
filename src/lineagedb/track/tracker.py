"""One configured capture: where steps go, the journal, the digest cache, and the writer.

Every finished step is put in the journal first, then sent; the journal file is removed
once the store has the step. A store that cannot be reached leaves the step in the journal
with a warning on stderr (the caller's script goes on); `lineagedb track flush` (or
`Tracker.flush()`) sends it later.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lineagedb.track.digests import DigestCache
from lineagedb.track.journal import Journal
from lineagedb.track.record import StepRecord
from lineagedb.track.settings import TrackSettings
from lineagedb.track.writer import Writer, WriteResult, is_unreachable

log = logging.getLogger("lineagedb.track")


class TrackingError(RuntimeError):
    """The store refused a step for a reason other than being unreachable (a permission, a
    conflicting type...). The step stays in the journal; fix the cause and flush."""


@dataclass
class FlushReport:
    sent: list[str] = field(default_factory=list)  # step ids written now
    already: list[str] = field(default_factory=list)  # step ids the store had (a replay)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (journal file, reason), kept
    unreachable: bool = False  # stopped early: the store could not be reached

    @property
    def remaining(self) -> int:
        return len(self.failed)


def _warn(message: str) -> None:
    print(f"lineagedb.track: {message}", file=sys.stderr, flush=True)


class Tracker:
    def __init__(self, settings: TrackSettings, store: Any = None, store_factory: Callable[[], Any] | None = None):
        self.settings = settings
        self.journal = Journal(settings.journal_dir)
        self.cache = DigestCache(settings.cache_file)
        self._store = store
        self._store_factory = store_factory
        self._writer: Writer | None = None
        self._lock = threading.Lock()

    # -- the store ------------------------------------------------------------------------

    def describe_store(self) -> str:
        if self._store is not None and not (self.settings.target or self.settings.database_url):
            return "the store"  # an object given by the caller
        return self.settings.describe_store()

    @property
    def configured(self) -> bool:
        settings = self.settings
        return bool(self._store is not None or self._store_factory or settings.target or settings.database_url)

    def writer(self) -> Writer:
        with self._lock:
            if self._writer is None:
                store = self._store if self._store is not None else self._connect()
                self._store = store
                self._writer = Writer(store)
            return self._writer

    def _connect(self) -> Any:
        if self._store_factory is not None:
            return self._store_factory()
        return connect(self.settings)

    def close(self) -> None:
        with self._lock:
            store, self._store, self._writer = self._store, None, None
        if store is not None and self._store_factory is None and hasattr(store, "close"):
            store.close()
        self.cache.close()

    # -- steps ----------------------------------------------------------------------------

    def submit(self, record: StepRecord, raise_on_refusal: bool = True) -> WriteResult | None:
        """Journal the step, send it, and drop it from the journal once stored. None when it
        stays in the journal (unreachable store, or a refusal with raise_on_refusal off)."""
        step = f"step {record.step_name} ({record.step_id})"
        try:
            path: Path | None = self.journal.append(record)
        except OSError as error:  # a full or read-only disk: sending may still save the step
            path = None
            _warn(f"{step} could not be journalled in {self.settings.journal_dir}: {error}")
        kept = f"kept in {path}" if path is not None else "NOT KEPT ANYWHERE (the journal failed too)"
        if not self.configured:
            _warn(f"no store configured (LINEAGEDB_TARGET); {step} {kept}")
            return None
        try:
            result = self.writer().write(record)
        except Exception as error:
            if is_unreachable(error):
                _warn(
                    f"{self.describe_store()} cannot be reached; {step} {kept}: "
                    "run `lineagedb track flush` when it is back"
                )
                self._forget_store()
                if path is None and raise_on_refusal:
                    raise TrackingError(f"{step} could be neither sent nor journalled") from error
                return None
            message = f"{self.describe_store()} refused {step}: {error}"
            _warn(f"{message}; {kept}")
            if raise_on_refusal:
                raise TrackingError(message) from error
            return None
        if path is not None:
            self.journal.remove(path)
        return result

    def _forget_store(self) -> None:
        # An unreachable server's channel may be in backoff: the next step builds a fresh one.
        with self._lock:
            store, self._writer = self._store, None
            if self._store_factory is not None or self.settings.target or self.settings.database_url:
                self._store = None  # rebuilt by the next write; a store object given by the caller is kept
        if store is not None and self._store is None and hasattr(store, "close"):
            try:
                store.close()
            except Exception:  # closing a broken channel must not hide the journal message
                log.debug("closing the unreachable store failed", exc_info=True)

    def flush(self) -> FlushReport:
        """Send every journalled step, oldest first; each exactly once in the store."""
        report = FlushReport()
        with self.journal.exclusive():
            for path in self.journal.pending():
                try:
                    record = Journal.read(path)
                except (OSError, ValueError, TypeError) as error:
                    report.failed.append((str(path), f"unreadable: {error}"))
                    continue
                try:
                    writer = self.writer()
                    known = writer.already_recorded(record)
                    if known is not None:
                        report.already.append(record.step_id)
                    else:
                        result = writer.write(record)
                        (report.already if result.already_recorded else report.sent).append(record.step_id)
                except Exception as error:
                    if is_unreachable(error):
                        report.unreachable = True
                        report.failed.extend((str(p), "store unreachable") for p in self._from(path))
                        self._forget_store()
                        break
                    report.failed.append((str(path), str(error)))
                    continue
                self.journal.remove(path)
        return report

    def _from(self, path: Path) -> list[Path]:
        return [p for p in self.journal.pending() if p.name >= path.name]


def connect(settings: TrackSettings) -> Any:
    """A lineagedb.client.MetadataStore for the settings' server or embedded database."""
    from lineagedb.track.connect import open_store

    return open_store(settings)
