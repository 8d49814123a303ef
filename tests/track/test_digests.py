"""Content digests: streamed SHA-256 of files and directories, the size cap, and the cache
that spares an unchanged large file a second read (counted in bytes, not timed)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from lineagedb import track
from lineagedb.track import digests
from lineagedb.track.digests import STATS, DigestCache, fingerprint
from lineagedb.track.settings import resolve

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


def test_unchanged_1_gib_file_is_not_read_again_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sparse 1 GiB file (no disk used) as a step's input: the first run reads all of it,
    a second run (a new tracker on the same directory, as the next process would open it)
    reads none of it and records the same digest (a changed file is read again: see
    test_changed_file_is_hashed_again)."""
    for name in ("LINEAGEDB_TARGET", "LINEAGEDB_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "dataset.bin"
    with open(path, "wb") as handle:
        handle.truncate(GIB)
        handle.seek(GIB - 5)
        handle.write(b"tail!")

    def run_once() -> tuple[int, int, int, str | None]:
        tracker = track.Tracker(resolve(directory=tmp_path / "track"))  # no store: steps stay in the journal
        before = (STATS.files_hashed, STATS.bytes_hashed, STATS.cache_hits)
        with track.step("Trainer", tracker=tracker) as step:
            step.input(path, type="Dataset")
        tracker.close()
        after = (STATS.files_hashed, STATS.bytes_hashed, STATS.cache_hits)
        return (*(a - b for a, b in zip(after, before, strict=True)), step.record.inputs[0].sha256)

    first = run_once()
    assert first[:3] == (1, GIB, 0)
    second = run_once()
    assert second[:3] == (0, 0, 1)
    assert second[3] == first[3] is not None


def test_unreadable_input_is_recorded_without_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: str) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(digests, "_hash_file", refuse)
    path = tmp_path / "secret.csv"
    path.write_text("x")
    tracker = track.Tracker(resolve(directory=tmp_path / "track"))
    with track.step("S", tracker=tracker) as step:
        step.input(path)
    tracker.close()
    (item,) = step.record.inputs
    assert (item.sha256, item.identity, item.skipped_reason) == (None, None, "not hashed: Permission denied")


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
