"""Content digests of local files and directories: SHA-256, streamed, capped and cached.

A file's digest is the SHA-256 of its bytes. A directory's digest is the SHA-256 of one line
per regular file below it, in sorted order of the relative POSIX path:
``<relative path> NUL <file sha256 hex> LF`` (symbolic links to files are followed, links to
directories are not, so a loop cannot hang the walk; empty directories do not count).

Hashing is skipped above a size cap (a file's size, or the sum over a directory): the
artifact then records its size and modification time instead and says why. A digest once
computed is kept in a small SQLite cache keyed by (path, size, mtime_ns, inode), so an
unchanged large file is not read again by the next run; any change to one of the four
reads the file again.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1 << 20
DEFAULT_MAX_HASH_BYTES = 8 << 30  # 8 GiB: about ten seconds of SHA-256 on one core


@dataclass
class HashStats:
    """What this process hashed (read from disk) and what the cache answered: tests and
    curious users can see that an unchanged file was not read."""

    files_hashed: int = 0
    bytes_hashed: int = 0
    cache_hits: int = 0


STATS = HashStats()


@dataclass(frozen=True)
class Fingerprint:
    """What was learned about a local path. `sha256` is None when hashing was skipped
    (`skipped_reason` says why) or the path does not exist (`exists` False)."""

    path: str
    exists: bool
    is_dir: bool = False
    size: int = 0
    mtime_ns: int = 0
    file_count: int = 0
    sha256: str | None = None
    skipped_reason: str | None = None

    @property
    def identity(self) -> str | None:
        """What makes two observations of the path the same content: the digest, or size and
        modification time when it was not hashed; None for a missing path."""
        if not self.exists:
            return None
        if self.sha256 is not None:
            return f"sha256:{self.sha256}"
        return f"size={self.size},mtime_ns={self.mtime_ns}"


class DigestCache:
    """(path, size, mtime_ns, inode) -> SHA-256 hex, in one SQLite file. A cache that cannot
    be opened or written is ignored (hashing still works, just again next time)."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=5, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS file_digest (path TEXT NOT NULL, size INTEGER NOT NULL, "
                "mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, sha256 TEXT NOT NULL, "
                "PRIMARY KEY (path, size, mtime_ns, inode))"
            )
        except (OSError, sqlite3.Error):
            self._db = None

    def get(self, path: str, st: os.stat_result) -> str | None:
        if self._db is None:
            return None
        try:
            with self._lock:
                row = self._db.execute(
                    "SELECT sha256 FROM file_digest WHERE path = ? AND size = ? AND mtime_ns = ? AND inode = ?",
                    (path, st.st_size, st.st_mtime_ns, st.st_ino),
                ).fetchone()
        except sqlite3.Error:
            return None
        return None if row is None else str(row[0])

    def put(self, path: str, st: os.stat_result, sha256: str) -> None:
        if self._db is None:
            return
        try:
            with self._lock:
                # One row per path: an older version of the file can never match again.
                self._db.execute("DELETE FROM file_digest WHERE path = ?", (path,))
                self._db.execute(
                    "INSERT INTO file_digest (path, size, mtime_ns, inode, sha256) VALUES (?, ?, ?, ?, ?)",
                    (path, st.st_size, st.st_mtime_ns, st.st_ino, sha256),
                )
        except sqlite3.Error:
            pass

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _hash_file(path: str) -> str:
    digest = hashlib.sha256()
    read = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            read += len(chunk)
    STATS.files_hashed += 1
    STATS.bytes_hashed += read
    return digest.hexdigest()


def _file_digest(path: str, st: os.stat_result, cache: DigestCache) -> str:
    cached = cache.get(path, st)
    if cached is not None:
        STATS.cache_hits += 1
        return cached
    sha = _hash_file(path)
    after = os.stat(path)
    if (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino):
        cache.put(path, st, sha)  # never cache a digest of a file that changed while it was read
    return sha


def _walk_files(root: str) -> list[tuple[str, str, os.stat_result]]:
    """(relative POSIX path, absolute path, stat) of every regular file below root, sorted."""
    found: list[tuple[str, str, os.stat_result]] = []
    for directory, subdirs, files in os.walk(root, followlinks=False):
        subdirs.sort()
        for name in files:
            full = os.path.join(directory, name)
            try:
                st = os.stat(full)  # follows a link to a file
            except OSError:
                continue  # a dangling link
            if stat.S_ISREG(st.st_mode):
                found.append((Path(os.path.relpath(full, root)).as_posix(), full, st))
    found.sort(key=lambda item: item[0])
    return found


def fingerprint(path: str, cache: DigestCache, max_hash_bytes: int = DEFAULT_MAX_HASH_BYTES) -> Fingerprint:
    """The digest (or size and time, over the cap) of a local file or directory."""
    full = os.path.abspath(path)
    try:
        st = os.stat(full)
    except OSError:
        return Fingerprint(path=full, exists=False)
    if not stat.S_ISDIR(st.st_mode):
        if st.st_size > max_hash_bytes:
            return Fingerprint(
                path=full,
                exists=True,
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                file_count=1,
                skipped_reason=f"not hashed: {st.st_size} bytes is over the cap of {max_hash_bytes}",
            )
        sha = _file_digest(full, st, cache)
        return Fingerprint(path=full, exists=True, size=st.st_size, mtime_ns=st.st_mtime_ns, file_count=1, sha256=sha)
    files = _walk_files(full)
    total = sum(item[2].st_size for item in files)
    newest = max((item[2].st_mtime_ns for item in files), default=st.st_mtime_ns)
    if total > max_hash_bytes:
        return Fingerprint(
            path=full,
            exists=True,
            is_dir=True,
            size=total,
            mtime_ns=newest,
            file_count=len(files),
            skipped_reason=f"not hashed: {total} bytes in {len(files)} files is over the cap of {max_hash_bytes}",
        )
    listing = hashlib.sha256()
    for relative, absolute, file_stat in files:
        sha = _file_digest(absolute, file_stat, cache)
        listing.update(os.fsencode(relative) + b"\0" + sha.encode() + b"\n")
    return Fingerprint(
        path=full,
        exists=True,
        is_dir=True,
        size=total,
        mtime_ns=newest,
        file_count=len(files),
        sha256=listing.hexdigest(),
    )
