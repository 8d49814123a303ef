"""Where MLflow's proxied artifacts live: a small interface with one implementation per kind of store.

The HTTP layer (lineagedb.ops.http.mlflow_artifacts) authorizes a request, checks its path
(lineagedb.service.mlflow_artifacts.path_segments: no empty, `.` or `..` segment, nothing absolute)
and then hands the store a list of segments; it never knows which store it talks to.

* `local.LocalArtifactStore`: a directory (`--artifact-root /some/dir`, the default).
* `s3.S3ArtifactStore`: an S3 bucket or S3-compatible server (`--artifact-root s3://bucket[/prefix]`;
  endpoint and credentials as MLflow takes them, see that module).

Every method is blocking (the HTTP layer calls it from a worker thread). Bodies move in chunks both
ways: an upload is a sequence of `write` calls ended by `commit` (or `abort`), readers never see a
half-written file, and a download is read chunk by chunk. Errors a caller can act on are
`ArtifactPathError` (400); a store that cannot be reached or refuses the server is
`ArtifactStoreUnavailable` (503), whose message names neither credentials nor secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

CHUNK_BYTES = 1024 * 1024


class ArtifactPathError(Exception):
    """The path cannot be used in this store (e.g. a parent is a file): the caller's mistake."""


class ArtifactStoreUnavailable(Exception):
    """The store cannot answer (unreachable, refused the server's credentials, missing bucket).
    The message is safe to show a caller: it never holds credentials."""


@dataclass(frozen=True)
class ArtifactEntry:
    """One entry of a listing: its name in the listed directory, and the size of a file."""

    name: str
    is_dir: bool
    size: int | None = None


class Download(Protocol):
    """An open file: `size` bytes, read by `read` in chunks (b"" at the end), then `close`d."""

    @property
    def size(self) -> int: ...

    def read(self) -> bytes: ...

    def close(self) -> None: ...


class Upload(Protocol):
    """A file being written: `write` chunks, then `commit` (it appears whole) or `abort` (nothing)."""

    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class ArtifactStore(Protocol):
    """Files addressed by path segments, already checked for traversal by the caller."""

    def describe(self) -> str:
        """Where the files are, for the log (never credentials)."""
        ...

    def check(self) -> None:
        """At startup: make sure the store can be used (ConfigurationError with the reason if not)."""
        ...

    def entries(self, segments: list[str]) -> list[ArtifactEntry]:
        """The entries directly under the directory `segments`, by name; a file or a missing path
        lists as nothing."""
        ...

    def open(self, segments: list[str]) -> Download | None:
        """The file at `segments`, or None when there is no file there."""
        ...

    def begin_upload(self, segments: list[str]) -> Upload:
        """A new file at `segments` (replacing any file there once committed)."""
        ...

    def delete(self, segments: list[str]) -> None:
        """Remove the file or the whole directory at `segments` (nothing there is not an error)."""
        ...


def is_s3(root: str) -> bool:
    return root.lower().startswith("s3://")


def open_store(root: str) -> ArtifactStore:
    """The store for `--artifact-root`: `s3://bucket[/prefix]` or a directory. Raises
    ConfigurationError for an unusable root (nothing is contacted yet: see `check`)."""
    if is_s3(root):
        from lineagedb.ops.artifact_store.s3 import S3ArtifactStore

        return S3ArtifactStore.from_uri(root)
    from lineagedb.ops.artifact_store.local import LocalArtifactStore

    return LocalArtifactStore(root)
