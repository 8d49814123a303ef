"""Content digests: streamed SHA-256 of files and directories, the size cap, and the cache
that spares an unchanged large file a second read (counted in bytes, not timed)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from lineagedb.track import digests
from lineagedb.track.digests import STATS, DigestCache, fingerprint

GIB = 1 << 30


@pytest.fixture
def cache(tmp_path: Path) -> DigestCache:
    made = DigestCache(tmp_path / "cache" / "digests.sqlite")
    yield made
    made.close()


def test_file_digest_is_sha256_of_its_bytes(tmp_path: Path, cache: DigestCache) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n" * 1000)
    found = fingerprint(str(path), cache)
    assert found.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert found.identity == f"sha256:{found.sha256}"
    assert (found.exists, found.is_dir, found.size, found.file_count) == (True, False, 8000, 1)


def test_directory_digest_covers_sorted_relative_paths_and_contents(tmp_path: Path, cache: DigestCache) -> None:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "b.bin").write_bytes(b"bee")
    (root / "sub" / "a.txt").write_bytes(b"ay")
    (root / "empty").mkdir()
    lines = b"".join(
        name.encode() + b"\0" + hashlib.sha256(data).hexdigest().encode() + b"\n"
        for name, data in (("b.bin", b"bee"), ("sub/a.txt", b"ay"))
    )
    found = fingerprint(str(root), cache)
    assert found.is_dir and found.file_count == 2 and found.size == 5
    assert found.sha256 == hashlib.sha256(lines).hexdigest()
    # A renamed file changes the digest even though no content changed.
    (root / "b.bin").rename(root / "c.bin")
    assert fingerprint(str(root), cache).sha256 != found.sha256


def test_missing_path_has_no_identity(tmp_path: Path, cache: DigestCache) -> None:
    found = fingerprint(str(tmp_path / "nothing"), cache)
    assert not found.exists and found.identity is None


def test_over_the_cap_records_size_and_time_and_says_so(tmp_path: Path, cache: DigestCache) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 2048)
    before = STATS.bytes_hashed
    found = fingerprint(str(path), cache, max_hash_bytes=1024)
    assert STATS.bytes_hashed == before
    assert found.sha256 is None and found.size == 2048
    assert found.skipped_reason == "not hashed: 2048 bytes is over the cap of 1024"
    assert found.identity == f"size=2048,mtime_ns={path.stat().st_mtime_ns}"


def test_changed_file_is_hashed_again(tmp_path: Path, cache: DigestCache) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"one")
    first = fingerprint(str(path), cache).sha256
    path.write_bytes(b"two")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert fingerprint(str(path), cache).sha256 == hashlib.sha256(b"two").hexdigest() != first


def test_unchanged_1_gib_file_is_not_read_again(tmp_path: Path) -> None:
    """A sparse 1 GiB file (no disk used): the first run reads all of it, a second run
    (a new cache object on the same file, as a new process would open it) reads nothing."""
    path = tmp_path / "dataset.bin"
    with open(path, "wb") as handle:
        handle.truncate(GIB)
        handle.seek(GIB - 5)
        handle.write(b"tail!")
    cache_file = tmp_path / "cache" / "digests.sqlite"

    first_cache = DigestCache(cache_file)
    start = (STATS.files_hashed, STATS.bytes_hashed, STATS.cache_hits)
    first = fingerprint(str(path), first_cache)
    first_cache.close()
    assert (STATS.files_hashed - start[0], STATS.bytes_hashed - start[1]) == (1, GIB)

    second_cache = DigestCache(cache_file)
    middle = (STATS.files_hashed, STATS.bytes_hashed, STATS.cache_hits)
    second = fingerprint(str(path), second_cache)
    second_cache.close()
    assert (STATS.files_hashed - middle[0], STATS.bytes_hashed - middle[1], STATS.cache_hits - middle[2]) == (0, 0, 1)
    assert second.sha256 == first.sha256 is not None


def test_unusable_cache_still_hashes(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("file where the cache directory should be")
    cache = DigestCache(blocker / "digests.sqlite")
    path = tmp_path / "data"
    path.write_bytes(b"abc")
    assert fingerprint(str(path), cache).sha256 == hashlib.sha256(b"abc").hexdigest()


def test_chunked_reading_matches_one_read(tmp_path: Path, cache: DigestCache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digests, "CHUNK_BYTES", 7)
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 3)
    assert fingerprint(str(path), cache).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
