"""The local journal: steps not (yet) in the store, one JSON file per step.

Every finished step is written here first (write, fsync, rename, fsync of the directory),
then sent; a step the store accepted is removed. So a step survives a server that cannot
be reached, a process killed while sending, and a store that refused it; `lineagedb track
flush` sends what is left. The step id inside each file makes a resend after a partial
success (the store committed, the answer was lost) harmless: the writer recognizes the
execution by its external id and does not write it twice.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lineagedb.track.record import StepRecord

SUFFIX = ".step.json"


class Journal:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _ensure(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path_of(self, record: StepRecord) -> Path:
        # Start time first: a directory listing replays steps in the order they ran.
        return self.directory / f"{record.started_ms:015d}-{record.step_id}{SUFFIX}"

    def append(self, record: StepRecord) -> Path:
        """Write the step durably; returns its file."""
        self._ensure()
        final = self.path_of(record)
        temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        data = record.to_json().encode()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, final)
        self._sync_directory()
        return final

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._sync_directory()

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def pending(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith("."))

    @staticmethod
    def read(path: Path) -> StepRecord:
        return StepRecord.from_json(path.read_text(encoding="utf-8"))

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held by a flush, so two flushes at once do not send the same steps together."""
        self._ensure()
        fd = os.open(self.directory / ".flush.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
