"""Artifacts in a local directory (`--artifact-root /some/dir`, by default `mlartifacts`).

A file lives at the root joined with its path segments. The resolved location (symbolic links
followed) must still lie inside the root, checked before every use and again just before an
upload is renamed into place. An upload is written to a temporary file beside its target,
opened with O_EXCL | O_NOFOLLOW (never through a link planted at that name), and renamed into
place when complete, so a reader never sees half a file; listings hide those temporary files.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import IO

from lineagedb.config import ConfigurationError
from lineagedb.ops.artifact_store import CHUNK_BYTES, ArtifactEntry, ArtifactPathError

_PARTIAL = ".upload-"


class LocalArtifactStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = Path(root).absolute()
        self._real = ""

    def describe(self) -> str:
        return f"directory {self.path}"

    def check(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigurationError(
                f"cannot use {self.path} as the artifact root (--artifact-root): {error.strerror or error}"
            ) from error
        self._real = os.path.realpath(self.path)

    def location(self, segments: list[str]) -> Path:
        """Where `segments` live; refuses any location that symbolic links take outside the root."""
        candidate = self.path.joinpath(*segments)
        self._check_inside(candidate)
        return candidate

    def _check_inside(self, candidate: Path) -> None:
        if not self._real:
            self.check()
        real = os.path.realpath(candidate)
        if real != self._real and not real.startswith(self._real + os.sep):
            raise ArtifactPathError("Invalid path")

    def entries(self, segments: list[str]) -> list[ArtifactEntry]:
        directory = self.location(segments)
        if not directory.is_dir():
            return []
        found: list[ArtifactEntry] = []
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.startswith(".") and _PARTIAL in entry.name:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    found.append(ArtifactEntry(entry.name, True))
                elif entry.is_file(follow_symlinks=False):
                    found.append(ArtifactEntry(entry.name, False, entry.stat().st_size))
        return found

    def open(self, segments: list[str]) -> _LocalDownload | None:
        location = self.location(segments)
        try:
            handle = location.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            handle.close()
            return None
        return _LocalDownload(handle, info.st_size)

    def begin_upload(self, segments: list[str]) -> _LocalUpload:
        target = self.location(segments)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as error:
            raise ArtifactPathError("a parent of the path is a file") from error
        self._check_inside(target.parent)
        if target.is_dir():
            raise ArtifactPathError("the path is a directory")
        partial = target.with_name(f".{target.name}{_PARTIAL}{secrets.token_hex(8)}")
        # O_EXCL | O_NOFOLLOW: never write through a link planted at the temporary name.
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        return _LocalUpload(self, target, partial, os.fdopen(descriptor, "wb", buffering=CHUNK_BYTES))

    def delete(self, segments: list[str]) -> None:
        location = self.location(segments)
        if location.is_symlink() or location.is_file():
            location.unlink(missing_ok=True)
        elif location.is_dir():
            shutil.rmtree(location)


class _LocalDownload:
    def __init__(self, handle: IO[bytes], size: int) -> None:
        self._handle = handle
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def read(self) -> bytes:
        return self._handle.read(CHUNK_BYTES)

    def close(self) -> None:
        self._handle.close()


class _LocalUpload:
    def __init__(self, store: LocalArtifactStore, target: Path, partial: Path, handle: IO[bytes]) -> None:
        self._store = store
        self._target = target
        self._partial = partial
        self._handle = handle

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)

    def commit(self) -> None:
        self._handle.close()
        self._store._check_inside(self._target)
        os.replace(self._partial, self._target)

    def abort(self) -> None:
        self._handle.close()
        self._partial.unlink(missing_ok=True)
